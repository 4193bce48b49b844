-- Roles: 'user' or 'admin', managed with `safebox admin grant|revoke`.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user';

-- The audit log. Never a password, secret, token or key: who, from where, what,
-- when and how it ended. user_id has no foreign key: events outlive accounts.
CREATE TABLE audit_events (
    id        TEXT    NOT NULL PRIMARY KEY,   -- UUIDv7: time-ordered, the page cursor
    at        BIGINT  NOT NULL,               -- Unix seconds
    user_id   TEXT,
    client_ip TEXT,
    event     TEXT    NOT NULL,               -- register, login, lockout, secret.read, ...
    outcome   TEXT    NOT NULL                -- success, failure, locked
);
CREATE INDEX audit_events_user_id ON audit_events (user_id, id);
CREATE INDEX audit_events_at ON audit_events (at);
