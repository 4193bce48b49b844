-- Accounts. Usernames and emails are stored in canonical (lower-case) form, so the
-- unique indexes are case-insensitive in effect.
CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,      -- UUID, made by the application
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT             UNIQUE,           -- NULL for accounts made without one
    password_hash TEXT    NOT NULL,                  -- bcrypt, never the password
    data          TEXT    NOT NULL DEFAULT '{}',     -- the account's JSON object
    created_at    BIGINT  NOT NULL                   -- Unix seconds
);

-- One data key per user, only ever stored wrapped (AES-256-GCM) by a master key.
CREATE TABLE data_keys (
    user_id       TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    id            TEXT    NOT NULL UNIQUE,           -- UUID of the data key
    master_key_id TEXT    NOT NULL,                  -- which master key wrapped it
    wrapped_key   BLOB    NOT NULL,
    created_at    BIGINT  NOT NULL
);
CREATE INDEX data_keys_master_key_id ON data_keys (master_key_id);

-- Secrets, sealed by the owner's data key; never plaintext.
CREATE TABLE secrets (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,                     -- the data key that sealed it
    ciphertext BLOB    NOT NULL,                     -- version || nonce || ciphertext || tag
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (user_id, name)
);
