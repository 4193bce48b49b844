//! Brute-force protection: account lockout, per-IP limits, and load shedding of
//! password hashing.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{PASSWORD, assert_json, detail, spawn_app_with};

const WRONG: &str = "not the right password";

async fn login(
    app: &crate::helpers::TestApp,
    identifier: (&str, &str),
    password: &str,
) -> reqwest::Response {
    app.login(&json!({ identifier.0: identifier.1, "password": password }))
        .await
}

#[tokio::test]
async fn the_sixth_bad_login_is_429_and_the_lock_lifts_after_its_duration() {
    let app = spawn_app_with(|config| {
        config.lockout_duration = Duration::from_secs(2);
    })
    .await;
    app.register("victim@example.com", "victim", PASSWORD).await;

    // Five failures, by email and by username: they add up on the one account.
    for identifier in [
        ("email", "victim@example.com"),
        ("username", "victim"),
        ("email", "VICTIM@example.com"),
        ("username", "Victim"),
        ("email", "victim@example.com"),
    ] {
        let response = login(&app, identifier, WRONG).await;
        assert_json(
            response,
            401,
            json!({ "detail": "Invalid email or password" }),
        )
        .await;
    }

    // Locked: the right and the wrong password get the same answer.
    let mut bodies = Vec::new();
    for password in [PASSWORD, WRONG] {
        let response = login(&app, ("email", "victim@example.com"), password).await;
        assert_eq!(response.status(), 429);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
        bodies.push(response.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&bodies[0]).unwrap(),
        json!({ "detail": "Too many failed login attempts; try again later" })
    );

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let response = login(&app, ("email", "victim@example.com"), PASSWORD).await;
    assert_eq!(
        response.status(),
        200,
        "the lock lifts after SAFEBOX_LOCKOUT_DURATION"
    );
}

#[tokio::test]
async fn a_success_resets_the_count() {
    let app = spawn_app_with(|_| {}).await;
    app.register("user@example.com", "user", PASSWORD).await;
    for _ in 0..4 {
        assert_eq!(login(&app, ("username", "user"), WRONG).await.status(), 401);
    }
    assert_eq!(
        login(&app, ("username", "user"), PASSWORD).await.status(),
        200
    );
    for _ in 0..4 {
        assert_eq!(login(&app, ("username", "user"), WRONG).await.status(), 401);
    }
    assert_eq!(
        login(&app, ("username", "user"), PASSWORD).await.status(),
        200
    );
}

#[tokio::test]
async fn unknown_accounts_lock_out_exactly_like_real_ones() {
    let app = spawn_app_with(|_| {}).await;
    for _ in 0..5 {
        let response = login(&app, ("email", "ghost@example.com"), WRONG).await;
        assert_eq!(response.status(), 401);
    }
    let response = login(&app, ("email", "ghost@example.com"), WRONG).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn the_threshold_is_configurable_and_other_accounts_are_unaffected() {
    let app = spawn_app_with(|config| config.lockout_threshold = 2).await;
    app.register("a@example.com", "aaa", PASSWORD).await;
    app.register("b@example.com", "bbb", PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(login(&app, ("username", "aaa"), WRONG).await.status(), 401);
    }
    assert_eq!(
        login(&app, ("username", "aaa"), PASSWORD).await.status(),
        429
    );
    assert_eq!(
        login(&app, ("username", "bbb"), PASSWORD).await.status(),
        200
    );
}

#[tokio::test]
async fn one_ip_is_limited_on_the_credential_routes_whatever_the_account() {
    let app = spawn_app_with(|config| {
        config.ip_rate_burst = 3;
        config.ip_rate_per_minute = 1;
    })
    .await;
    // Three attempts on three unknown accounts use up the burst...
    for n in 0..3 {
        let response = login(&app, ("email", &format!("nobody{n}@example.com")), WRONG).await;
        assert_eq!(response.status(), 401);
    }
    // ...and the fourth request, on any limited route, is refused before any work.
    let response = app.register("new@example.com", "newbie", PASSWORD).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(
        detail(response, 429).await,
        "Too many requests from this address; try again later"
    );
    // A spoofed X-Forwarded-For changes nothing when the peer address is the source.
    let response = app
        .client
        .post(app.url("/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({ "email": "x@example.com", "password": WRONG }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    // Routes that do not take credentials are not limited.
    let response = app
        .client
        .get(app.url("/get_secret?username=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let app = spawn_app_with(|config| {
        config.ip_rate_burst = 1;
        config.ip_rate_per_minute = 1;
        config.client_ip_source = safebox_infra::ClientIpSource::XForwardedFor { hops: 1 };
    })
    .await;
    let send = |forwarded: &'static str| {
        app.client
            .post(app.url("/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "email": "x@example.com", "password": WRONG }))
            .send()
    };
    assert_eq!(send("198.51.100.1").await.unwrap().status(), 401);
    assert_eq!(send("198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(send("198.51.100.2").await.unwrap().status(), 401);
    // The client cannot escape by prepending entries: only the proxy's hop counts.
    assert_eq!(send("10.9.9.9, 198.51.100.2").await.unwrap().status(), 429);
}

#[tokio::test]
async fn an_overflowing_login_is_shed_with_503_while_reads_still_answer() {
    let app = spawn_app_with(|config| {
        config.bcrypt_cost = 12;
        config.hash_workers = 1;
        config.hash_queue = 0;
        config.workers = 2;
    })
    .await;
    let token = app.user_with_token("reader").await;
    assert_eq!(
        app.set_secret(&token, "reader", "still here")
            .await
            .status(),
        200
    );

    let started = Instant::now();
    let logins: Vec<_> = (0..6)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/login");
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&json!({ "username": "reader", "password": PASSWORD }))
                    .send()
                    .await
                    .unwrap();
                let retry_after = response.headers().get("retry-after").cloned();
                (response.status().as_u16(), retry_after, started.elapsed())
            })
        })
        .collect();
    // While the one hashing thread is busy, `GET /` and an authenticated read are
    // served.
    let home = app.client.get(app.url("/")).send().await.unwrap();
    let read = app.get_secret(&token, "reader").await;
    let read_done = started.elapsed();
    assert_json(home, 200, json!({ "message": "Hello World" })).await;
    assert_json(read, 200, json!({ "secret": "still here" })).await;

    let mut results = Vec::new();
    for login in logins {
        results.push(login.await.unwrap());
    }
    let first_success = results
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .map(|(_, _, at)| *at)
        .min()
        .expect("at least one login ran");
    let shed: Vec<_> = results
        .iter()
        .filter(|(status, _, _)| *status == 503)
        .collect();
    assert!(!shed.is_empty(), "some logins were shed: {results:?}");
    for (_, retry_after, at) in &shed {
        assert!(retry_after.is_some(), "503 carries Retry-After");
        // Shed at once: answered before the bcrypt run of the admitted login ended.
        assert!(
            *at < first_success,
            "shed at {at:?}, first success at {first_success:?}"
        );
    }
    // The read did not wait behind bcrypt either.
    assert!(
        read_done < first_success,
        "read at {read_done:?}, first login at {first_success:?}"
    );
}

/// Reads from `stream` until the server closes it or `limit` passes; returns what
/// arrived.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut received = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::AsyncWriteExt as _;
    let app = spawn_app_with(|_| {}).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"POST /login HTTP/1.1\r\nHost: safebox\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let received = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the connection was not closed"
    );
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "{received}"
    );
}

#[tokio::test]
async fn a_body_trickled_in_too_slowly_gets_408() {
    use tokio::io::AsyncWriteExt as _;
    let app = spawn_app_with(|_| {}).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: safebox\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(
        received.contains(r#"{"detail":"request body not received in time"}"#),
        "{received}"
    );
}
