-- MySQL-compatible (MySQL 8, MariaDB 10.6+, TiDB, Vitess) twin of
-- migrations/sqlite/2026-11-22-000001. Every table is utf8mb4 with the binary
-- collation: comparisons and ordering are by bytes, as in SQLite, so secret names
-- that differ only in case are different secrets. Indexed text columns are
-- bounded VARCHARs; sealed values are binary columns; ids are made by the
-- application (no AUTO_INCREMENT, which sharded databases cannot share).

-- Accounts. Usernames and emails are stored in canonical (lower-case) form.
CREATE TABLE users (
    id            VARCHAR(36)  NOT NULL,            -- UUID
    username      VARCHAR(64)  NOT NULL,
    email         VARCHAR(254)     NULL,            -- NULL for accounts made without one
    password_hash VARCHAR(255) NOT NULL,            -- bcrypt, never the password
    data          MEDIUMTEXT   NOT NULL,            -- the account's JSON object
    created_at    BIGINT       NOT NULL,            -- Unix seconds
    PRIMARY KEY (id),
    UNIQUE KEY users_username (username),
    UNIQUE KEY users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One data key per user, only ever stored wrapped (AES-256-GCM) by a master key.
CREATE TABLE data_keys (
    user_id       VARCHAR(36)  NOT NULL,
    id            VARCHAR(36)  NOT NULL,            -- UUID of the data key
    master_key_id VARCHAR(64)  NOT NULL,            -- which master key wrapped it
    wrapped_key   VARBINARY(512) NOT NULL,
    created_at    BIGINT       NOT NULL,
    PRIMARY KEY (user_id),
    UNIQUE KEY data_keys_id (id),
    KEY data_keys_master_key_id (master_key_id),
    CONSTRAINT data_keys_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Secrets, sealed by the owner's data key; never plaintext.
CREATE TABLE secrets (
    user_id    VARCHAR(36)  NOT NULL,
    name       VARCHAR(128) NOT NULL,
    key_id     VARCHAR(64)  NOT NULL,               -- the data key that sealed it
    ciphertext MEDIUMBLOB   NOT NULL,               -- version || nonce || ciphertext || tag
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (user_id, name),
    CONSTRAINT secrets_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
