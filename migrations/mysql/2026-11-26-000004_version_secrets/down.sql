-- Back to one value per secret: the newest version of each. Older versions,
-- metadata and soft deletes are lost; soft-deleted secrets come back live.
-- Versions sealed by this release (format 2) do not open in the release before it.
ALTER TABLE secrets
    ADD COLUMN key_id     VARCHAR(64) NULL,
    ADD COLUMN ciphertext MEDIUMBLOB  NULL;
UPDATE secrets s JOIN secret_versions v
    ON v.user_id = s.user_id AND v.name = s.name AND v.version = s.version
    SET s.key_id = v.key_id, s.ciphertext = v.ciphertext;
DROP TABLE secret_versions;
ALTER TABLE secrets
    MODIFY COLUMN key_id     VARCHAR(64) NOT NULL,
    MODIFY COLUMN ciphertext MEDIUMBLOB  NOT NULL,
    DROP COLUMN deleted_at,
    DROP COLUMN metadata,
    DROP COLUMN oldest_version,
    DROP COLUMN version;
