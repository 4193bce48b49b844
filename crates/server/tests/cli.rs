//! The `safebox` binary's commands, run as a process.

use std::collections::HashSet;
use std::process::{Command, Output};
use std::time::Duration;

use safebox_domain::ports::{
    AuditLog, CipherError, DataKeyRepository, SecretCipher, SecretRepository, UserRepository,
    VersionWrite, WriteOutcome,
};
use safebox_domain::{
    AuditAction, AuditOutcome, AuditQuery, DataKeyId, Email, KeyId, NewUser, PasswordHash, Role,
    SealedData, SecretName, SecretValue, SecretVersion, Timestamp, User, UserData, UserId,
    Username, WrappedDataKey,
};
use safebox_infra::{
    AesGcmSecretCipher, DieselAuditLog, DieselSecretRepository, DieselUserRepository, KeyBytes,
    MasterKey, MasterKeyEntry, MasterKeyRing, SystemClock, db,
};

fn safebox(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safebox"))
        .args(args)
        .env_clear()
        .env("SAFEBOX_DATA_DIR", data_dir)
        .env("SAFEBOX_LOG", "error")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn keygen_prints_a_fresh_32_byte_base64_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = safebox(dir.path(), &["keygen"]);
    let second = safebox(dir.path(), &["keygen"]);
    assert!(first.status.success());
    let key = text(&first.stdout);
    assert_eq!(KeyBytes::from_base64(&key).unwrap().expose().len(), 32);
    assert_ne!(key, text(&second.stdout));
}

#[test]
fn migrate_applies_the_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = safebox(dir.path(), &["migrate"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).starts_with("applied migrations: "));
    assert!(dir.path().join("safebox.db").exists());
    let second = safebox(dir.path(), &["migrate"]);
    assert_eq!(text(&second.stdout).trim(), "database is up to date");
}

#[test]
fn a_bad_setting_stops_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_safebox"))
        .arg("serve")
        .env_clear()
        .env("SAFEBOX_DATA_DIR", dir.path())
        .env("SAFEBOX_MASTER_KEY", "dG9vIHNob3J0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("SAFEBOX_MASTER_KEY: must be base64 of at least 32 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("dG9vIHNob3J0"), "the key is not echoed");
}

#[test]
fn admin_grant_and_revoke_change_the_role_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    assert!(safebox(dir.path(), &["migrate"]).status.success());
    let url = dir.path().join("safebox.db").display().to_string();
    let pool = db::connect(&url, 2, Duration::from_secs(2)).unwrap();
    let users = DieselUserRepository::new(pool.clone());
    let id = UserId::generate();
    users
        .create(&NewUser {
            user: User {
                id,
                username: Username::parse("carol").unwrap(),
                email: Some(Email::parse("carol@example.com").unwrap()),
                password_hash: PasswordHash("$2b$04$x".into()),
                role: Role::User,
                data: UserData::empty(),
                created_at: Timestamp(1),
            },
            data_key: WrappedDataKey {
                id: DataKeyId::generate(),
                sealed: SealedData {
                    key_id: KeyId("mk".into()),
                    bytes: vec![0; 8],
                },
            },
        })
        .unwrap();

    let output = safebox(dir.path(), &["admin", "grant", "Carol"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), "carol is now admin");
    assert_eq!(users.find_by_id(&id).unwrap().unwrap().role, Role::Admin);

    let output = safebox(dir.path(), &["admin", "revoke", "carol"]);
    assert!(output.status.success());
    assert_eq!(users.find_by_id(&id).unwrap().unwrap().role, Role::User);

    let output = safebox(dir.path(), &["admin", "grant", "nobody"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no account is named nobody"));

    let audit = DieselAuditLog::start(
        pool,
        Duration::from_secs(86_400),
        std::sync::Arc::new(SystemClock),
    );
    let events: Vec<_> = audit
        .list(&AuditQuery {
            user: None,
            before: None,
            limit: 10,
        })
        .unwrap()
        .into_iter()
        .map(|record| {
            (
                record.event.action,
                record.event.outcome,
                record.event.user_id,
                record.event.client_ip,
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (AuditAction::AdminGrant, AuditOutcome::Failure, None, None),
            (
                AuditAction::AdminRevoke,
                AuditOutcome::Success,
                Some(id),
                None
            ),
            (
                AuditAction::AdminGrant,
                AuditOutcome::Success,
                Some(id),
                None
            ),
        ]
    );
}

// ---------------------------------------------------------------------------
// `safebox keys`: generate, rotate and status

/// [`safebox`] with extra environment variables.
fn safebox_env(data_dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_safebox"));
    command
        .args(args)
        .env_clear()
        .env("SAFEBOX_DATA_DIR", data_dir)
        .env("SAFEBOX_LOG", "error");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

/// `safebox keys ARGS` with `SAFEBOX_MASTER_KEYS=ring`.
fn keys_with_ring(data_dir: &std::path::Path, args: &[&str], ring: &str) -> Output {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    safebox_env(data_dir, &all, &[("SAFEBOX_MASTER_KEYS", ring)])
}

fn b64(key: &KeyBytes) -> String {
    key.to_base64().as_str().to_owned()
}

fn entry(id: &str, key: &KeyBytes) -> String {
    format!("{id}:{}", b64(key))
}

/// A cipher holding the master keys `ring` (`(id, material)`, oldest first).
fn cipher(ring: &[(&str, &KeyBytes)]) -> AesGcmSecretCipher {
    AesGcmSecretCipher::new(
        MasterKeyRing::new(
            ring.iter()
                .map(|(id, key)| MasterKey::with_id(KeyId((*id).into()), key))
                .collect(),
        )
        .unwrap(),
    )
}

/// `YYYYMMDD` (UTC) of a Unix time, counted the long way.
fn utc_date(secs: u64) -> String {
    let leap = |year: u64| {
        (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
    };
    let mut days = secs / 86_400;
    let mut year = 1970;
    while days >= if leap(year) { 366 } else { 365 } {
        days -= if leap(year) { 366 } else { 365 };
        year += 1;
    }
    let months = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    format!("{year:04}{:02}{:02}", month + 1, days + 1)
}

fn today() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    utc_date(now.as_secs())
}

/// The one line `keys generate` printed, split into id and key.
fn generated_entry(output: &Output) -> (String, KeyBytes) {
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let line = stdout.strip_suffix('\n').expect("one line");
    assert!(!line.contains('\n'), "{stdout}");
    let (id, key) = line.split_once(':').expect("ID:base64");
    let key = KeyBytes::from_base64(key).unwrap();
    assert_eq!(key.expose().len(), 32);
    // What it prints is a ring of exactly that one entry.
    let ring = MasterKeyEntry::parse_ring(line).unwrap();
    assert_eq!(ring.len(), 1);
    assert_eq!(ring[0].id.as_deref(), Some(id));
    assert_eq!(ring[0].material.expose(), key.expose());
    (id.to_owned(), key)
}

#[test]
fn keys_generate_prints_a_fresh_entry_with_a_dated_default_id() {
    let dir = tempfile::tempdir().unwrap();
    let before = today();
    let entries: Vec<(String, KeyBytes)> = (0..3)
        .map(|_| generated_entry(&safebox(dir.path(), &["keys", "generate"])))
        .collect();
    let after = today();
    for (id, _) in &entries {
        // mk-YYYYMMDD-xxxxxxxx
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0], "mk", "{id}");
        assert!(
            parts[1] == before || parts[1] == after,
            "{id}: today is {after}"
        );
        assert_eq!(parts[2].len(), 8, "{id}");
        assert!(
            parts[2]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{id}"
        );
    }
    let ids: HashSet<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    let keys: HashSet<Vec<u8>> = entries.iter().map(|(_, k)| k.expose().to_vec()).collect();
    assert_eq!((ids.len(), keys.len()), (3, 3), "never the same twice");
    // It needs no configuration and touches no database.
    assert!(!dir.path().join("safebox.db").exists());
}

#[test]
fn keys_generate_uses_the_given_id_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (id, first) = generated_entry(&safebox(
        dir.path(),
        &["keys", "generate", "--id", "team-2026"],
    ));
    assert_eq!(id, "team-2026");
    let (id, second) = generated_entry(&safebox(
        dir.path(),
        &["keys", "generate", "--id", "team-2026"],
    ));
    assert_eq!(id, "team-2026");
    assert_ne!(first.expose(), second.expose());
    let longest = "a".repeat(64);
    let (id, _) = generated_entry(&safebox(
        dir.path(),
        &["keys", "generate", "--id", &longest],
    ));
    assert_eq!(id, longest);

    let too_long = "a".repeat(65);
    for bad in ["bad id", "", &too_long, "a:b", "x,y", "tëam", "team/1"] {
        let output = safebox(dir.path(), &["keys", "generate", "--id", bad]);
        assert!(!output.status.success(), "--id {bad:?} was accepted");
        assert!(
            output.stdout.is_empty(),
            "--id {bad:?}: {}",
            text(&output.stdout)
        );
        let stderr = text(&output.stderr);
        assert!(stderr.contains("--id"), "--id {bad:?}: {stderr}");
    }
}

/// The id is checked as it is given, not as a ring entry (which would trim the
/// spaces and split on the comma).
#[test]
fn keys_generate_refuses_ids_that_only_parse_after_trimming_or_splitting() {
    let dir = tempfile::tempdir().unwrap();
    let other = b64(&KeyBytes::generate().unwrap());
    let smuggled = format!("{other},team");
    for bad in [" team", "team ", smuggled.as_str()] {
        let output = safebox(dir.path(), &["keys", "generate", "--id", bad]);
        assert!(
            !output.status.success(),
            "--id {bad:?} was accepted and printed {:?}",
            text(&output.stdout)
        );
        assert!(text(&output.stderr).contains("--id"));
    }
}

/// One row of the `keys status` table: id, data keys, state.
fn status_rows(stdout: &str) -> Vec<(String, u64, String)> {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("master key"))
        .skip(1)
        .map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next().unwrap().to_owned();
            let count = fields.next().unwrap().parse().unwrap();
            (id, count, fields.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

fn row<'a>(rows: &'a [(String, u64, String)], id: &str) -> &'a (String, u64, String) {
    rows.iter()
        .find(|(row, _, _)| row == id)
        .unwrap_or_else(|| panic!("no row for {id} in {rows:?}"))
}

fn secret_value(raw: &str) -> SecretValue {
    SecretValue::parse(raw.into(), 1024, "value").unwrap()
}

/// A migrated database in `dir` with accounts whose data keys `sealing` wraps,
/// each with the secret `default` sealed as "value of userN". Returns each
/// account's id and wrapped data key.
fn accounts(
    dir: &std::path::Path,
    sealing: &AesGcmSecretCipher,
    prefix: &str,
    count: usize,
) -> Vec<(UserId, WrappedDataKey)> {
    let migrated = safebox(dir, &["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let pool = db::connect(
        &dir.join("safebox.db").display().to_string(),
        2,
        Duration::from_secs(5),
    )
    .unwrap();
    let users = DieselUserRepository::new(pool.clone());
    let secrets = DieselSecretRepository::new(pool);
    (0..count)
        .map(|i| {
            let id = UserId::generate();
            let data_key = sealing.new_data_key(&id).unwrap();
            let username = format!("{prefix}{i}");
            users
                .create(&NewUser {
                    user: User {
                        id,
                        username: Username::parse(&username).unwrap(),
                        email: None,
                        password_hash: PasswordHash("$2b$04$x".into()),
                        role: Role::User,
                        data: UserData::empty(),
                        created_at: Timestamp(1),
                    },
                    data_key: data_key.clone(),
                })
                .unwrap();
            let name = SecretName::default_name();
            let sealed = sealing
                .seal(
                    &data_key,
                    &id,
                    &name,
                    SecretVersion(1),
                    &secret_value(&format!("value of {username}")),
                )
                .unwrap();
            let outcome = secrets
                .write(&VersionWrite {
                    owner: id,
                    name,
                    base: None,
                    sealed,
                    metadata: None,
                    now: Timestamp(2),
                    keep_versions: 10,
                    max_secrets: 10,
                })
                .unwrap();
            assert!(matches!(outcome, WriteOutcome::Written(_)));
            (id, data_key)
        })
        .collect()
}

fn repositories(dir: &std::path::Path) -> (DieselUserRepository, DieselSecretRepository) {
    let pool = db::connect(
        &dir.join("safebox.db").display().to_string(),
        2,
        Duration::from_secs(5),
    )
    .unwrap();
    (
        DieselUserRepository::new(pool.clone()),
        DieselSecretRepository::new(pool),
    )
}

fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("rewrapped "))
        .collect()
}

#[test]
fn keys_rotate_rewraps_every_data_key_resumably_and_status_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (KeyBytes::generate().unwrap(), KeyBytes::generate().unwrap());
    let old = cipher(&[("k1", &a)]);
    let before = accounts(dir.path(), &old, "user", 5);
    let ring = format!("{},{}", entry("k1", &a), entry("k2", &b));

    let status = keys_with_ring(dir.path(), &["status"], &ring);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let rows = status_rows(&text(&status.stdout));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (_, count, state) = row(&rows, "k1");
    assert_eq!(*count, 5);
    assert!(state.contains("still needed"), "{state}");
    let (_, count, state) = row(&rows, "k2");
    assert_eq!(*count, 0);
    assert!(state.contains("seals new data keys"), "{state}");

    // An earlier run was interrupted after re-wrapping one data key.
    let (users, secrets) = repositories(dir.path());
    let both = cipher(&[("k1", &a), ("k2", &b)]);
    let (owner, key) = &before[0];
    let rewrapped = both.rewrap(key, owner).unwrap().unwrap();
    assert!(users.replace(owner, key, &rewrapped).unwrap());

    let refused = keys_with_ring(dir.path(), &["rotate", "--batch", "0"], &ring);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--batch"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        users.data_key(&before[1].0).unwrap(),
        Some(before[1].1.clone()),
        "a refused run changes nothing"
    );

    let rotate = keys_with_ring(dir.path(), &["rotate", "--batch", "2"], &ring);
    let (stdout, stderr) = (text(&rotate.stdout), text(&rotate.stderr));
    assert!(rotate.status.success(), "{stderr}");
    assert_eq!(
        progress_lines(&stderr),
        ["rewrapped 2/4 data keys", "rewrapped 4/4 data keys"],
        "{stderr}"
    );
    assert!(
        stdout.contains("rotation complete: 4 data keys re-wrapped under k2"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("rewrapped "),
        "progress goes to stderr: {stdout}"
    );

    let status = keys_with_ring(dir.path(), &["status"], &ring);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let rows = status_rows(&text(&status.stdout));
    let (_, count, state) = row(&rows, "k1");
    assert_eq!(*count, 0);
    assert!(state.contains("can be removed"), "{state}");
    let (_, count, state) = row(&rows, "k2");
    assert_eq!(*count, 5);
    assert!(state.contains("seals new data keys"), "{state}");

    // Running it again is a successful no-op.
    let again = keys_with_ring(dir.path(), &["rotate"], &ring);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(progress_lines(&text(&again.stderr)).is_empty());
    assert!(
        text(&again.stdout).contains("rotation complete: 0 data keys re-wrapped under k2"),
        "{}",
        text(&again.stdout)
    );

    // Every data key is the same key, now wrapped by k2 alone: a cipher without
    // k1 opens the secrets sealed before the rotation.
    let new_only = cipher(&[("k2", &b)]);
    let name = SecretName::default_name();
    for (i, (owner, old_key)) in before.iter().enumerate() {
        let key = users.data_key(owner).unwrap().unwrap();
        assert_eq!(key.id, old_key.id);
        assert_eq!(key.sealed.key_id, KeyId("k2".into()));
        assert_ne!(key.sealed.bytes, old_key.sealed.bytes);
        assert!(new_only.rewrap(&key, owner).unwrap().is_none());
        let (_, stored) = secrets.read(owner, &name, None).unwrap().unwrap();
        let value = new_only
            .open(
                &key,
                owner,
                &name,
                SecretVersion(1),
                &stored.unwrap().sealed,
            )
            .unwrap();
        assert_eq!(value.expose(), format!("value of user{i}"));
        assert!(matches!(
            old.rewrap(&key, owner),
            Err(CipherError::UnknownKey(KeyId(ref id))) if id == "k2"
        ));
    }
    let counts = users.count_by_master_key().unwrap();
    assert_eq!(counts, [(KeyId("k2".into()), 5)]);

    // The old entry can go.
    let status = keys_with_ring(dir.path(), &["status"], &entry("k2", &b));
    assert!(status.status.success(), "{}", text(&status.stderr));
    let rows = status_rows(&text(&status.stdout));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(row(&rows, "k2").1, 5);
}

#[test]
fn keys_status_fails_naming_a_master_key_the_ring_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (KeyBytes::generate().unwrap(), KeyBytes::generate().unwrap());
    accounts(dir.path(), &cipher(&[("k1", &a)]), "old", 2);
    accounts(dir.path(), &cipher(&[("k2", &b)]), "new", 1);
    let ring = entry("k2", &b);

    let status = keys_with_ring(dir.path(), &["status"], &ring);
    let (stdout, stderr) = (text(&status.stdout), text(&status.stderr));
    assert_eq!(status.status.code(), Some(1), "{stdout}");
    assert!(
        stderr.contains("master key k1 wraps 2 data keys but is not in the ring"),
        "{stderr}"
    );
    let rows = status_rows(&stdout);
    assert_eq!(row(&rows, "k1").1, 2);
    assert!(row(&rows, "k1").2.contains("NOT IN RING"), "{stdout}");
    assert_eq!(row(&rows, "k2").1, 1);
    for output in [&stdout, &stderr] {
        assert!(!output.contains(&b64(&b)[..12]), "key material: {output}");
    }

    // Rotating cannot re-wrap them either, says why, and changes nothing.
    let rotate = keys_with_ring(dir.path(), &["rotate"], &ring);
    assert!(!rotate.status.success());
    let stderr = text(&rotate.stderr);
    assert!(stderr.contains("unknown key k1"), "{stderr}");
    let (users, _) = repositories(dir.path());
    let mut counts = users.count_by_master_key().unwrap();
    counts.sort_by(|x, y| x.0.0.cmp(&y.0.0));
    assert_eq!(counts, [(KeyId("k1".into()), 2), (KeyId("k2".into()), 1)]);
}

#[test]
fn a_bad_master_key_ring_stops_keys_naming_the_variable_without_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (KeyBytes::generate().unwrap(), KeyBytes::generate().unwrap());
    let (a64, b64_) = (b64(&a), b64(&b));
    let rings = [
        format!("k1:{a64},k2:dG9vIHNob3J0"),
        format!("k1:{a64},k1:{b64_}"),
        format!("bad id:{a64},k2:{b64_}"),
        format!("k1:{a64},,k2:{b64_}"),
        format!("k1:{a64},k2:{b64_}!!"),
        format!("k1:{a64},{b64_}:k2"),
        // Two bare entries of the same material share a fingerprint id.
        format!("{a64},{a64}"),
    ];
    for ring in &rings {
        for command in [["keys", "status"].as_slice(), ["keys", "rotate"].as_slice()] {
            let output = safebox_env(dir.path(), command, &[("SAFEBOX_MASTER_KEYS", ring)]);
            let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
            assert!(
                !output.status.success(),
                "{command:?} with {ring:?}: {stdout}"
            );
            assert!(
                stderr.contains("SAFEBOX_MASTER_KEYS"),
                "{command:?} with {ring:?}: {stderr}"
            );
            for secret in [&a64[..12], &b64_[..12], "dG9vIHNob3J0"] {
                assert!(
                    !stdout.contains(secret) && !stderr.contains(secret),
                    "{command:?} with {ring:?} printed key material: {stdout} {stderr}"
                );
            }
        }
    }
    // Both forms at once.
    let output = safebox_env(
        dir.path(),
        &["keys", "status"],
        &[
            ("SAFEBOX_MASTER_KEY", &a64),
            ("SAFEBOX_MASTER_KEYS", &entry("k2", &b)),
        ],
    );
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("SAFEBOX_MASTER_KEYS"), "{stderr}");
    assert!(
        !stderr.contains(&a64[..12]) && !stderr.contains(&b64_[..12]),
        "{stderr}"
    );
}

#[test]
fn a_deployment_on_safebox_master_key_rotates_to_a_ring_with_a_bare_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (KeyBytes::generate().unwrap(), KeyBytes::generate().unwrap());
    let single = AesGcmSecretCipher::new(MasterKeyRing::single(MasterKey::derive(&a)));
    let fingerprint = single.sealing_key().0;
    assert!(fingerprint.starts_with("mk-"), "{fingerprint}");
    let before = accounts(dir.path(), &single, "user", 3);

    // The single key is known by its fingerprint.
    let status = safebox_env(
        dir.path(),
        &["keys", "status"],
        &[("SAFEBOX_MASTER_KEY", &b64(&a))],
    );
    assert!(status.status.success(), "{}", text(&status.stderr));
    let rows = status_rows(&text(&status.stdout));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(row(&rows, &fingerprint).1, 3);
    assert!(row(&rows, &fingerprint).2.contains("seals new data keys"));

    // The same material as a bare ring entry is the same key.
    let ring = format!("{},{}", b64(&a), entry("k2", &b));
    let rotate = keys_with_ring(dir.path(), &["rotate"], &ring);
    assert!(rotate.status.success(), "{}", text(&rotate.stderr));
    assert!(
        text(&rotate.stdout).contains("rotation complete: 3 data keys re-wrapped under k2"),
        "{}",
        text(&rotate.stdout)
    );
    let rows = status_rows(&text(&rotate.stdout));
    assert_eq!(row(&rows, &fingerprint).1, 0);
    assert!(row(&rows, &fingerprint).2.contains("can be removed"));
    assert_eq!(row(&rows, "k2").1, 3);

    let (users, secrets) = repositories(dir.path());
    let new_only = cipher(&[("k2", &b)]);
    let name = SecretName::default_name();
    for (i, (owner, _)) in before.iter().enumerate() {
        let key = users.data_key(owner).unwrap().unwrap();
        let (_, stored) = secrets.read(owner, &name, None).unwrap().unwrap();
        let value = new_only
            .open(
                &key,
                owner,
                &name,
                SecretVersion(1),
                &stored.unwrap().sealed,
            )
            .unwrap();
        assert_eq!(value.expose(), format!("value of user{i}"));
    }
}

fn config_check(file: &std::path::Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_safebox"));
    command
        .args(["config", "check", "--config"])
        .arg(file)
        .env_clear()
        .env("SAFEBOX_LOG", "error");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

#[test]
fn config_check_prints_the_file_under_the_environment_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("safebox.toml");
    let master = KeyBytes::generate().unwrap().to_base64();
    let jwt = KeyBytes::generate().unwrap().to_base64();
    std::fs::write(
        &file,
        format!(
            "port = 8200\nbcrypt_cost = 11\nmaster_keys = [\"k1:{}\"]\njwt_secret = \"{}\"\n\
             database_url = \"mysql://app:hunter2@127.0.0.1/safebox\"\n",
            master.as_str(),
            jwt.as_str()
        ),
    )
    .unwrap();
    let output = config_check(&file, &[("SAFEBOX_PORT", "8300")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("\nport = 8300\n"), "{stdout}");
    assert!(stdout.contains("\nbcrypt_cost = 11\n"), "{stdout}");
    assert!(
        stdout.contains("master_keys = [\"k1:<redacted>\"]"),
        "{stdout}"
    );
    assert!(stdout.contains("jwt_secret = \"<redacted>\""), "{stdout}");
    for secret in [master.as_str(), jwt.as_str(), "hunter2"] {
        assert!(!stdout.contains(secret) && !text(&output.stderr).contains(secret));
    }
    // It wrote nothing: no data dir, no development keys.
    assert!(!dir.path().join("safebox-data").exists());
}

#[test]
fn config_check_fails_naming_the_bad_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("safebox.toml");
    std::fs::write(&file, "bcrypt_cost = 99\n").unwrap();
    let output = config_check(&file, &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("SAFEBOX_BCRYPT_COST: must be between 4 and 31 (set as `bcrypt_cost` in"),
        "{stderr}"
    );
    std::fs::write(&file, "prot = 1\n").unwrap();
    let stderr = text(&config_check(&file, &[]).stderr);
    assert!(stderr.contains("unknown key `prot`"), "{stderr}");
    std::fs::write(&file, "port = [\n").unwrap();
    assert!(!config_check(&file, &[]).status.success());
    // The environment is checked too, and wins.
    std::fs::write(&file, "port = 8200\n").unwrap();
    let output = config_check(&file, &[("SAFEBOX_PORT", "http")]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("SAFEBOX_PORT"));
    let output = config_check(&dir.path().join("missing.toml"), &[]);
    assert!(text(&output.stderr).contains("no such file"));
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one HTTP/1.1 request on `stream` and reads the whole response.
fn http(stream: &mut std::net::TcpStream, method: &str, path: &str, body: &str) -> String {
    use std::io::{Read as _, Write as _};
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_safebox"))
        .arg("serve")
        .env_clear()
        .env("SAFEBOX_DATA_DIR", dir.path())
        .env("SAFEBOX_PORT", port.to_string())
        // bcrypt at the default cost makes a login slow enough to be in flight.
        .env("SAFEBOX_BCRYPT_COST", "12")
        .env("SAFEBOX_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    let connect = || std::net::TcpStream::connect(&address);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while connect().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "safebox did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let account = r#"{"username":"shutdown","email":"shutdown@example.com","password":"correct horse battery staple"}"#;
    let registered = http(&mut connect().unwrap(), "POST", "/register", account);
    if !registered.starts_with("HTTP/1.1 201") {
        server.kill().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();
        panic!("register answered {registered:?}; server said:\n{stderr}");
    }

    let mut stream = connect().unwrap();
    let login = std::thread::spawn(move || {
        http(
            &mut stream,
            "POST",
            "/login",
            r#"{"email":"shutdown@example.com","password":"correct horse battery staple"}"#,
        )
    });
    // Let the login reach bcrypt (about 0.2 s at cost 12), then ask for a stop.
    std::thread::sleep(Duration::from_millis(100));
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let response = login.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"token\""), "{response}");
    let status = server.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("SIGTERM received; starting graceful shutdown"),
        "{stderr}"
    );
    // And it no longer listens.
    assert!(connect().is_err());
}

#[test]
fn key_commands_neither_migrate_the_database_nor_make_a_key() {
    let dir = tempfile::tempdir().unwrap();
    // No key configured and no development key file: refused, and none is made.
    let output = safebox(dir.path(), &["keys", "status"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("SAFEBOX_MASTER_KEYS: is not set"),
        "{}",
        text(&output.stderr)
    );
    assert!(!dir.path().join("master.key").exists());
    assert!(!dir.path().join("jwt.key").exists());
    // A database the servers have not migrated yet is left alone.
    let ring = format!("k1:{}", KeyBytes::generate().unwrap().to_base64().as_str());
    let output = Command::new(env!("CARGO_BIN_EXE_safebox"))
        .args(["keys", "rotate"])
        .env_clear()
        .env("SAFEBOX_DATA_DIR", dir.path())
        .env("SAFEBOX_MASTER_KEYS", &ring)
        .env("SAFEBOX_LOG", "error")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("run `safebox migrate`"), "{stderr}");
    let migrated = safebox(dir.path(), &["migrate"]);
    assert!(text(&migrated.stdout).starts_with("applied migrations: "));
}

fn copy(from: &str, to: &str) -> Output {
    // The URLs go through the environment, as the help text advises.
    let dir = tempfile::tempdir().unwrap();
    safebox_env(
        dir.path(),
        &["db", "copy"],
        &[("SAFEBOX_COPY_FROM", from), ("SAFEBOX_COPY_TO", to)],
    )
}

/// Every secret of `accounts` opens, from the database at `url`, to the value
/// `accounts()` sealed.
fn every_secret_opens(
    url: &str,
    cipher: &AesGcmSecretCipher,
    accounts: &[(UserId, WrappedDataKey)],
) {
    let pool = db::connect(url, 1, Duration::from_secs(5)).unwrap();
    let users = DieselUserRepository::new(pool.clone());
    let secrets = DieselSecretRepository::new(pool);
    for (id, _) in accounts {
        let user = users
            .find_by_id(id)
            .unwrap()
            .expect("the account was copied");
        let key = users
            .data_key(id)
            .unwrap()
            .expect("its data key was copied");
        let name = SecretName::default_name();
        let (_, stored) = secrets
            .read(id, &name, None)
            .unwrap()
            .expect("its secret was copied");
        let stored = stored.expect("the newest version was copied");
        let value = cipher
            .open(&key, id, &name, stored.version, &stored.sealed)
            .expect("the copied ciphertext opens with the original key");
        assert_eq!(value.expose(), format!("value of {}", user.username));
    }
}

fn summary(url: &str) -> Vec<db::copy::TableSummary> {
    db::copy::summarize(&db::connect(url, 1, Duration::from_secs(5)).unwrap()).unwrap()
}

#[test]
fn db_copy_copies_every_row_verifies_it_and_refuses_a_non_empty_target() {
    let dir = tempfile::tempdir().unwrap();
    let cipher = cipher(&[("mk-1", &KeyBytes::generate().unwrap())]);
    let accounts = accounts(dir.path(), &cipher, "user", 12);
    let source = format!("sqlite://{}", dir.path().join("safebox.db").display());
    let target = format!("sqlite://{}", dir.path().join("copy.db").display());

    let output = copy(&source, &target);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("copy verified: "), "{stdout}");
    assert!(
        stderr.contains("users                    12/12 rows"),
        "{stderr}"
    );
    assert!(
        stderr.contains("secret_versions          12/12 rows"),
        "{stderr}"
    );
    assert_eq!(summary(&source), summary(&target));
    assert_eq!(summary(&target)[0].rows, 12);
    every_secret_opens(&target, &cipher, &accounts);

    // Into a database that now holds rows: refused, and nothing is added.
    let again = copy(&source, &target);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("the target database is not empty (users has 12 rows)"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(summary(&source), summary(&target));

    // Nonsense is refused with a message naming it, and a URL's password never
    // appears in the output.
    let bad = copy(&source, "postgres://app:hunter2@db/x");
    assert!(!bad.status.success());
    let stderr = text(&bad.stderr);
    assert!(
        stderr.contains("unsupported scheme \"postgres\""),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let same = copy(&source, &source);
    assert!(text(&same.stderr).contains("the same database"));
}

#[test]
fn db_copy_round_trips_sqlite_to_mysql_and_back() {
    let Some(mysql) =
        safebox_infra::testing::TestDatabase::mysql("db_copy_round_trips_sqlite_to_mysql_and_back")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cipher = cipher(&[("mk-1", &KeyBytes::generate().unwrap())]);
    let accounts = accounts(dir.path(), &cipher, "user", 20);
    let source = format!("sqlite://{}", dir.path().join("safebox.db").display());
    let back = format!("sqlite://{}", dir.path().join("back.db").display());

    let there = copy(&source, mysql.url());
    assert!(there.status.success(), "{}", text(&there.stderr));
    let stderr = text(&there.stderr);
    assert!(stderr.contains(":<redacted>@"), "{stderr}");
    let password = mysql
        .url()
        .rsplit_once('@')
        .unwrap()
        .0
        .rsplit_once(':')
        .unwrap()
        .1;
    assert!(!stderr.contains(&format!(":{password}@")), "{stderr}");
    let home = copy(mysql.url(), &back);
    assert!(home.status.success(), "{}", text(&home.stderr));

    let original = summary(&source);
    assert_eq!(original, summary(mysql.url()));
    assert_eq!(original, summary(&back));
    every_secret_opens(mysql.url(), &cipher, &accounts);
    every_secret_opens(&back, &cipher, &accounts);
}
