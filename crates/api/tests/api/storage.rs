use std::path::Path;

use crate::helpers::{PASSWORD, spawn_app};

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn no_password_or_secret_is_stored_in_plain_text() {
    let app = spawn_app().await;
    let secret = "PLAINTEXT-CANARY-secret-7d1f0c";
    let password = "PLAINTEXT-needle-password-93ab";
    assert_eq!(
        app.register("canary@example.com", "canary", password)
            .await
            .status(),
        201
    );
    let response = app
        .login(&serde_json::json!({ "email": "canary@example.com", "password": password }))
        .await;
    let token: serde_json::Value = response.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    assert_eq!(app.set_secret(&token, "canary", secret).await.status(), 200);
    let _other = app.user_with_token("other").await;

    let files = files_under(app.data_dir.path());
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "safebox.db"),
        "the database lives in the data dir: {names:?}"
    );
    let mut scanned = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        scanned += bytes.len();
        for needle in [secret, password, PASSWORD, "CANARY", "needle-password"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} found in {}",
                file.display()
            );
        }
        // The token is not stored either.
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    }
    // The scan looked at real data: the WAL or the database holds the rows.
    assert!(scanned > 4096, "only {scanned} bytes scanned");
    // And the usernames, which are not secret, are there: the scan can find text.
    let all: Vec<u8> = files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(all.windows(6).any(|w| w == b"canary"));
}

#[tokio::test]
async fn without_configured_keys_the_app_generates_private_development_keys() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.master_key = None;
        config.jwt_secret = None;
    })
    .await;
    // The app works end to end on the generated keys.
    let token = app.user_with_token("devkeys").await;
    assert_eq!(app.set_secret(&token, "devkeys", "v").await.status(), 200);
    assert_eq!(app.get_secret(&token, "devkeys").await.status(), 200);
    for file in ["master.key", "jwt.key"] {
        let path = app.data_dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            safebox_infra::KeyBytes::from_base64(&text).is_ok(),
            "{file}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
}
