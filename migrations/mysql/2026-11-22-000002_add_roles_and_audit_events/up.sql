-- Roles: 'user' or 'admin', managed with `safebox admin grant|revoke`.
ALTER TABLE users ADD COLUMN role VARCHAR(16) NOT NULL DEFAULT 'user';

-- The audit log. Never a password, secret, token or key: who, from where, what,
-- when and how it ended. user_id has no foreign key: events outlive accounts.
CREATE TABLE audit_events (
    id        VARCHAR(36) NOT NULL,   -- UUIDv7: time-ordered, the page cursor
    at        BIGINT      NOT NULL,   -- Unix seconds
    user_id   VARCHAR(36)     NULL,
    client_ip VARCHAR(64)     NULL,
    event     VARCHAR(64) NOT NULL,   -- register, login, lockout, secret.read, ...
    outcome   VARCHAR(16) NOT NULL,   -- success, failure, locked
    PRIMARY KEY (id),
    KEY audit_events_user_id (user_id, id),
    KEY audit_events_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
