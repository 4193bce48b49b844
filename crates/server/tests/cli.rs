//! The `safebox` binary's commands, run as a process.

use std::process::{Command, Output};
use std::time::Duration;

use safebox_domain::ports::{AuditLog, UserRepository};
use safebox_domain::{
    AuditAction, AuditOutcome, AuditQuery, DataKeyId, Email, KeyId, NewUser, PasswordHash, Role,
    SealedData, Timestamp, User, UserData, UserId, Username, WrappedDataKey,
};
use safebox_infra::{DieselAuditLog, DieselUserRepository, KeyBytes, SystemClock, db};

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
