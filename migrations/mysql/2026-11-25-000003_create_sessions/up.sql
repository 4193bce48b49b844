-- Login sessions. Every access token names one (its `sid` claim); deleting the row
-- ends the session, and every token and cookie of it fails at once. safebox
-- deletes a session's refresh tokens and an account's sessions itself; the
-- foreign keys are a second line where the database enforces them.
CREATE TABLE sessions (
    id           VARCHAR(36)  NOT NULL,             -- UUID
    user_id      VARCHAR(36)  NOT NULL,
    kind         VARCHAR(16)  NOT NULL,             -- 'bearer' or 'cookie'
    cookie_hash  VARCHAR(64)      NULL,             -- SHA-256 of the cookie, hex; cookie sessions only
    created_at   BIGINT       NOT NULL,
    last_used_at BIGINT       NOT NULL,
    expires_at   BIGINT       NOT NULL,             -- absolute; refreshing never moves it
    client_ip    VARCHAR(64)      NULL,
    user_agent   VARCHAR(256)     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY sessions_cookie_hash (cookie_hash),
    KEY sessions_user_id (user_id, created_at),
    CONSTRAINT sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Refresh tokens, only as SHA-256 digests. A spent token is kept (spent_at set)
-- until its session ends, so that presenting it again is recognised as a replay.
CREATE TABLE refresh_tokens (
    token_hash VARCHAR(64) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    created_at BIGINT      NOT NULL,
    spent_at   BIGINT          NULL,
    PRIMARY KEY (token_hash),
    KEY refresh_tokens_session_id (session_id),
    CONSTRAINT refresh_tokens_session FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
