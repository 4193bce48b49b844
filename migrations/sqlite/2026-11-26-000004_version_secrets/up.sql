-- The vault: each secret keeps its newest versions, can be soft-deleted, and has
-- metadata. `secrets` becomes the header of a secret; its sealed values move to
-- `secret_versions`. Every existing secret becomes version 1 of itself.
ALTER TABLE secrets ADD COLUMN version        BIGINT NOT NULL DEFAULT 1; -- the newest
ALTER TABLE secrets ADD COLUMN oldest_version BIGINT NOT NULL DEFAULT 1; -- the oldest kept
ALTER TABLE secrets ADD COLUMN metadata       TEXT   NOT NULL DEFAULT '{}'; -- JSON object of strings, plaintext
ALTER TABLE secrets ADD COLUMN deleted_at     BIGINT;                   -- set while soft-deleted

-- One row per kept version, sealed by the owner's data key for its owner, name
-- and version; never plaintext.
CREATE TABLE secret_versions (
    user_id    TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    BIGINT  NOT NULL,
    key_id     TEXT    NOT NULL,                     -- the data key that sealed it
    ciphertext BLOB    NOT NULL,                     -- format || nonce || ciphertext || tag
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (user_id, name, version),
    FOREIGN KEY (user_id, name) REFERENCES secrets (user_id, name) ON DELETE CASCADE
);

INSERT INTO secret_versions (user_id, name, version, key_id, ciphertext, created_at)
    SELECT user_id, name, 1, key_id, ciphertext, updated_at FROM secrets;

ALTER TABLE secrets DROP COLUMN key_id;
ALTER TABLE secrets DROP COLUMN ciphertext;
