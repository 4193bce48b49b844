-- The vault: each secret keeps its newest versions, can be soft-deleted, and has
-- metadata. `secrets` becomes the header of a secret; its sealed values move to
-- `secret_versions`. Every existing secret becomes version 1 of itself.
-- (MySQL gives TEXT columns no literal default, so metadata is filled in, then
-- made NOT NULL.)
ALTER TABLE secrets
    ADD COLUMN version        BIGINT     NOT NULL DEFAULT 1,   -- the newest
    ADD COLUMN oldest_version BIGINT     NOT NULL DEFAULT 1,   -- the oldest kept
    ADD COLUMN metadata       MEDIUMTEXT     NULL,             -- JSON object of strings, plaintext
    ADD COLUMN deleted_at     BIGINT         NULL;             -- set while soft-deleted
UPDATE secrets SET metadata = '{}';
ALTER TABLE secrets MODIFY COLUMN metadata MEDIUMTEXT NOT NULL;

-- One row per kept version, sealed by the owner's data key for its owner, name
-- and version; never plaintext.
CREATE TABLE secret_versions (
    user_id    VARCHAR(36)  NOT NULL,
    name       VARCHAR(128) NOT NULL,
    version    BIGINT       NOT NULL,
    key_id     VARCHAR(64)  NOT NULL,               -- the data key that sealed it
    ciphertext MEDIUMBLOB   NOT NULL,               -- format || nonce || ciphertext || tag
    created_at BIGINT       NOT NULL,
    PRIMARY KEY (user_id, name, version),
    CONSTRAINT secret_versions_secret FOREIGN KEY (user_id, name)
        REFERENCES secrets (user_id, name) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO secret_versions (user_id, name, version, key_id, ciphertext, created_at)
    SELECT user_id, name, 1, key_id, ciphertext, updated_at FROM secrets;

ALTER TABLE secrets DROP COLUMN key_id, DROP COLUMN ciphertext;
