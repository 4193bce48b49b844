-- Login sessions. Every access token names one (its `sid` claim); deleting the row
-- ends the session, and every token and cookie of it fails at once. A deleted
-- account takes its sessions with it.
CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,      -- UUID, made by the application
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL,                  -- 'bearer' or 'cookie'
    cookie_hash  TEXT             UNIQUE,           -- SHA-256 of the cookie; cookie sessions only
    created_at   BIGINT  NOT NULL,
    last_used_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,                  -- absolute; refreshing never moves it
    client_ip    TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);

-- Refresh tokens, only as SHA-256 digests. A spent token is kept (spent_at set)
-- until its session ends, so that presenting it again is recognised as a replay.
CREATE TABLE refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
