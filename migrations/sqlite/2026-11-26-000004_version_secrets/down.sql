-- Back to one value per secret: the newest version of each. Older versions,
-- metadata and soft deletes are lost; soft-deleted secrets come back live.
-- Versions sealed by this release (format 2) do not open in the release before it.
ALTER TABLE secrets ADD COLUMN key_id     TEXT NOT NULL DEFAULT '';
ALTER TABLE secrets ADD COLUMN ciphertext BLOB NOT NULL DEFAULT x'';
UPDATE secrets SET
    key_id = (SELECT v.key_id FROM secret_versions v
              WHERE v.user_id = secrets.user_id AND v.name = secrets.name
                AND v.version = secrets.version),
    ciphertext = (SELECT v.ciphertext FROM secret_versions v
                  WHERE v.user_id = secrets.user_id AND v.name = secrets.name
                    AND v.version = secrets.version);
DROP TABLE secret_versions;
ALTER TABLE secrets DROP COLUMN deleted_at;
ALTER TABLE secrets DROP COLUMN metadata;
ALTER TABLE secrets DROP COLUMN oldest_version;
ALTER TABLE secrets DROP COLUMN version;
