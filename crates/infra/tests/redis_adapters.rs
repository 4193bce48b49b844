//! The Redis adapters against a real Redis: `SAFEBOX_TEST_REDIS_URL`, for example
//! `redis://127.0.0.1:6379`. Without it every test prints a notice and passes
//! (under `CI=true` it fails instead). Each test works under a prefix of its own
//! and deletes its keys afterwards, so they run in parallel on one Redis.

use std::net::{SocketAddr, TcpListener};

use sha2::Digest as _;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use safebox_domain::ports::{
    AttemptLimiter, LockoutPolicy, RateLimiter, RefreshRotation, SessionRepository,
};
use safebox_domain::{RepoError, Session, SessionId, SessionKind, Timestamp, TokenDigest, UserId};
use safebox_infra::testing::{FaultyProxy, TestRedis, contracts, in_ci, service_url};
use safebox_infra::{
    RedisAttemptLimiter, RedisConnectError, RedisRateLimiter, RedisSessionRepository,
    RedisSettings, RedisStore,
};

const URL_VAR: &str = "SAFEBOX_TEST_REDIS_URL";

fn redis(test: &str) -> Option<TestRedis> {
    service_url(URL_VAR, test).map(|url| TestRedis::connect(&url))
}

/// Another "instance": its own pool on the same Redis and prefix.
fn second_store(redis: &TestRedis) -> RedisStore {
    let url = std::env::var(URL_VAR).unwrap();
    RedisStore::connect(&RedisSettings {
        prefix: redis.store().prefix().to_owned(),
        ..RedisSettings::new(url)
    })
    .unwrap()
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

fn session(user: UserId, kind: SessionKind, at: i64, expires: i64) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user,
        kind,
        created_at: Timestamp(at),
        last_used_at: Timestamp(at),
        expires_at: Timestamp(expires),
        client_ip: Some("192.0.2.1".into()),
        user_agent: Some("curl/8".into()),
    }
}

fn digest(text: &str) -> TokenDigest {
    TokenDigest(format!("digest-{text}"))
}

fn pttl(redis: &TestRedis, key: &str) -> i64 {
    redis.query(redis::cmd("PTTL").arg(redis.key(key)))
}

/// Asserts that `key` expires in about `secs` seconds (PTTL rounds down, and the
/// expiry is in whole seconds).
fn assert_expires_in(redis: &TestRedis, key: &str, secs: i64) {
    let ms = pttl(redis, key);
    assert!(
        (secs - 2) * 1000 <= ms && ms <= secs * 1000,
        "{key}: PTTL {ms} ms, expected about {secs} s"
    );
}

#[test]
fn sessions_are_stored_found_touched_listed_and_ended() {
    let Some(redis) = redis("sessions_are_stored_found_touched_listed_and_ended") else {
        return;
    };
    let sessions = RedisSessionRepository::new(redis.store().clone());
    let (alice, bob) = (UserId::generate(), UserId::generate());
    let t = now();
    // Still in Redis, but expired by the time the later sessions are created
    // (their clock says t + 1000): creating one must delete it.
    let expired = session(alice, SessionKind::Bearer, t, t + 500);
    let older = session(alice, SessionKind::Bearer, t + 1_000, t + 5_000);
    let newer = session(alice, SessionKind::Cookie, t + 1_001, t + 5_000);
    let bobs = session(bob, SessionKind::Bearer, t + 1_000, t + 5_000);
    sessions.create(&expired, &digest("e")).unwrap();
    assert_eq!(sessions.find(&expired.id).unwrap(), Some(expired.clone()));
    sessions.create(&older, &digest("older")).unwrap();
    sessions.create(&newer, &digest("cookie")).unwrap();
    sessions.create(&bobs, &digest("bob")).unwrap();

    assert_eq!(sessions.find(&older.id).unwrap(), Some(older.clone()));
    assert_eq!(sessions.find(&SessionId::generate()).unwrap(), None);
    assert_eq!(
        sessions.find_by_cookie(&digest("cookie")).unwrap(),
        Some(newer.clone())
    );
    // A bearer session's credential is its refresh token, never a cookie.
    assert_eq!(sessions.find_by_cookie(&digest("older")).unwrap(), None);
    assert_eq!(sessions.find_by_cookie(&digest("nothing")).unwrap(), None);
    // Creating a session swept the user's expired one, with its refresh token.
    assert_eq!(sessions.find(&expired.id).unwrap(), None);
    assert_eq!(
        sessions
            .rotate_refresh(&digest("e"), &digest("e2"), Timestamp(t + 1_000))
            .unwrap(),
        RefreshRotation::Unknown
    );
    assert!(
        !redis
            .keys()
            .iter()
            .any(|key| key.contains(&expired.id.to_string()) || key.contains("digest-e")),
        "{:?}",
        redis.keys()
    );

    sessions.touch(&older.id, Timestamp(t + 1_500)).unwrap();
    assert_eq!(
        sessions.find(&older.id).unwrap().unwrap().last_used_at,
        Timestamp(t + 1_500)
    );
    // Touching an unknown session neither fails nor creates a key.
    let keys = redis.keys();
    sessions
        .touch(&SessionId::generate(), Timestamp(t + 1_500))
        .unwrap();
    assert_eq!(redis.keys(), keys);

    let listed: Vec<SessionId> = sessions
        .list(&alice, Timestamp(t + 2_000))
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [newer.id, older.id]);
    // Nothing is live at the sessions' end.
    assert!(
        sessions
            .list(&alice, Timestamp(t + 5_000))
            .unwrap()
            .is_empty()
    );
    assert!(
        sessions
            .list(&UserId::generate(), Timestamp(t))
            .unwrap()
            .is_empty()
    );

    assert_eq!(sessions.end_others(&alice, &newer.id).unwrap(), 1);
    assert_eq!(sessions.find(&older.id).unwrap(), None);
    assert!(sessions.end(&newer.id).unwrap());
    assert!(!sessions.end(&newer.id).unwrap());
    assert_eq!(sessions.find_by_cookie(&digest("cookie")).unwrap(), None);
    assert!(sessions.find(&bobs.id).unwrap().is_some());
    assert_eq!(sessions.end_all(&bob).unwrap(), 1);
    assert_eq!(sessions.end_all(&bob).unwrap(), 0);
    // Ended sessions leave nothing behind: no hash, index, cookie or token.
    assert_eq!(redis.keys(), Vec::<String>::new());
}

#[test]
fn sessions_of_equal_age_list_by_id_descending_and_end_all_ends_every_one() {
    let Some(redis) =
        redis("sessions_of_equal_age_list_by_id_descending_and_end_all_ends_every_one")
    else {
        return;
    };
    let sessions = RedisSessionRepository::new(redis.store().clone());
    let user = UserId::generate();
    let t = now();
    let mut made: Vec<Session> = (0..5)
        .map(|i| {
            let kind = if i % 2 == 0 {
                SessionKind::Cookie
            } else {
                SessionKind::Bearer
            };
            let s = session(user, kind, t - 10 + i / 2, t + 3_600);
            sessions.create(&s, &digest(&format!("s{i}"))).unwrap();
            s
        })
        .collect();
    made.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id.0)));
    let listed = sessions.list(&user, Timestamp(t)).unwrap();
    assert_eq!(listed, made);
    // end_others keeps exactly the one named.
    assert_eq!(sessions.end_others(&user, &made[2].id).unwrap(), 4);
    assert_eq!(
        sessions.list(&user, Timestamp(t)).unwrap(),
        [made[2].clone()]
    );
    assert_eq!(sessions.end_all(&user).unwrap(), 1);
    assert!(sessions.list(&user, Timestamp(t)).unwrap().is_empty());
    assert_eq!(redis.keys(), Vec::<String>::new());
}

#[test]
fn every_key_of_a_session_expires_with_it() {
    let Some(redis) = redis("every_key_of_a_session_expires_with_it") else {
        return;
    };
    let sessions = RedisSessionRepository::new(redis.store().clone());
    let user = UserId::generate();
    let t = now();
    let bearer = session(user, SessionKind::Bearer, t, t + 1_000);
    let cookie = session(user, SessionKind::Cookie, t, t + 5_000);
    let short = session(user, SessionKind::Cookie, t, t + 2_000);
    sessions.create(&bearer, &digest("r1")).unwrap();
    sessions.create(&cookie, &digest("c1")).unwrap();
    sessions.create(&short, &digest("c2")).unwrap();

    let b = bearer.id.to_string();
    let c = cookie.id.to_string();
    let mut expected = vec![
        format!("cookie:{}", digest("c1").0),
        format!("cookie:{}", digest("c2").0),
        format!("refresh:{}", digest("r1").0),
        format!("session-refresh:{b}"),
        format!("session:{b}"),
        format!("session:{c}"),
        format!("session:{}", short.id),
        format!("user-sessions:{user}"),
    ];
    expected.sort();
    assert_eq!(redis.keys(), expected);
    assert_expires_in(&redis, &format!("session:{b}"), 1_000);
    assert_expires_in(&redis, &format!("refresh:{}", digest("r1").0), 1_000);
    assert_expires_in(&redis, &format!("session-refresh:{b}"), 1_000);
    assert_expires_in(&redis, &format!("session:{c}"), 5_000);
    assert_expires_in(&redis, &format!("cookie:{}", digest("c1").0), 5_000);
    assert_expires_in(&redis, &format!("cookie:{}", digest("c2").0), 2_000);
    // The index outlives the user's longest session, not the last one created.
    assert_expires_in(&redis, &format!("user-sessions:{user}"), 5_000);

    // Rotating and touching keep every expiry, and the new token gets its
    // session's.
    sessions.touch(&bearer.id, Timestamp(t + 60)).unwrap();
    assert!(matches!(
        sessions
            .rotate_refresh(&digest("r1"), &digest("r2"), Timestamp(t + 60))
            .unwrap(),
        RefreshRotation::Rotated(_)
    ));
    assert_expires_in(&redis, &format!("session:{b}"), 1_000);
    assert_expires_in(&redis, &format!("refresh:{}", digest("r1").0), 1_000);
    assert_expires_in(&redis, &format!("refresh:{}", digest("r2").0), 1_000);
    assert_expires_in(&redis, &format!("session-refresh:{b}"), 1_000);
    // No key anywhere lacks an expiry.
    for key in redis.keys() {
        assert!(pttl(&redis, &key) > 0, "{key} has no expiry");
    }
}

#[test]
fn sessions_vanish_when_redis_expires_them_and_list_prunes_their_index_entries() {
    let Some(redis) =
        redis("sessions_vanish_when_redis_expires_them_and_list_prunes_their_index_entries")
    else {
        return;
    };
    let sessions = RedisSessionRepository::new(redis.store().clone());
    let user = UserId::generate();
    let t = now();
    // Already past by Redis' clock: stored as nothing at all.
    let past = session(user, SessionKind::Cookie, t - 100, t - 10);
    sessions.create(&past, &digest("past")).unwrap();
    assert_eq!(redis.keys(), Vec::<String>::new());
    assert_eq!(sessions.find(&past.id).unwrap(), None);

    let brief = session(user, SessionKind::Bearer, t, t + 1);
    let long = session(user, SessionKind::Bearer, t, t + 3_600);
    sessions.create(&brief, &digest("brief")).unwrap();
    sessions.create(&long, &digest("long")).unwrap();
    let index = format!("user-sessions:{user}");
    let members: i64 = redis.query(redis::cmd("ZCARD").arg(redis.key(&index)));
    assert_eq!(members, 2);
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(sessions.find(&brief.id).unwrap(), None);
    assert_eq!(
        sessions
            .rotate_refresh(&digest("brief"), &digest("b2"), Timestamp(now()))
            .unwrap(),
        RefreshRotation::Unknown
    );
    let listed = sessions.list(&user, Timestamp(t)).unwrap();
    assert_eq!(listed, [long]);
    let members: i64 = redis.query(redis::cmd("ZCARD").arg(redis.key(&index)));
    assert_eq!(members, 1, "list left the expired session in the index");
    assert!(
        !redis
            .keys()
            .iter()
            .any(|key| key.contains(&brief.id.to_string())),
        "{:?}",
        redis.keys()
    );
}

#[test]
fn refresh_tokens_rotate_once_and_a_replay_is_recognised() {
    let Some(redis) = redis("refresh_tokens_rotate_once_and_a_replay_is_recognised") else {
        return;
    };
    let sessions = RedisSessionRepository::new(redis.store().clone());
    let t = now();
    let live = session(UserId::generate(), SessionKind::Bearer, t, t + 5_000);
    sessions.create(&live, &digest("r1")).unwrap();

    let rotated = sessions
        .rotate_refresh(&digest("r1"), &digest("r2"), Timestamp(t + 200))
        .unwrap();
    let RefreshRotation::Rotated(rotated) = rotated else {
        panic!("{rotated:?}");
    };
    assert_eq!(rotated.id, live.id);
    assert_eq!(rotated.last_used_at, Timestamp(t + 200));
    assert_eq!(
        sessions.find(&live.id).unwrap().unwrap().last_used_at,
        Timestamp(t + 200)
    );
    // r1 is spent: presenting it again is a replay, and changes nothing.
    let keys = redis.keys();
    let replay = sessions
        .rotate_refresh(&digest("r1"), &digest("r3"), Timestamp(t + 300))
        .unwrap();
    assert_eq!(replay, RefreshRotation::Reused(rotated.clone()));
    assert_eq!(redis.keys(), keys);
    assert_eq!(sessions.find(&live.id).unwrap(), Some(rotated.clone()));
    assert_eq!(
        sessions
            .rotate_refresh(&digest("r3"), &digest("r4"), Timestamp(t + 300))
            .unwrap(),
        RefreshRotation::Unknown
    );
    // r2 is live.
    assert!(matches!(
        sessions
            .rotate_refresh(&digest("r2"), &digest("r5"), Timestamp(t + 400))
            .unwrap(),
        RefreshRotation::Rotated(_)
    ));
    // A replacement that is already stored is refused, and changes nothing.
    let keys = redis.keys();
    let err = sessions
        .rotate_refresh(&digest("r5"), &digest("r1"), Timestamp(t + 500))
        .unwrap_err();
    assert!(matches!(err, RepoError::Internal(_)), "{err:?}");
    assert!(!err.to_string().contains("digest-"), "{err}");
    assert_eq!(redis.keys(), keys);
    // Ending the session forgets all of its refresh tokens, spent or live.
    assert!(sessions.end(&live.id).unwrap());
    for token in ["r1", "r2", "r5"] {
        assert_eq!(
            sessions
                .rotate_refresh(&digest(token), &digest("x"), Timestamp(t + 600))
                .unwrap(),
            RefreshRotation::Unknown
        );
    }
    assert_eq!(redis.keys(), Vec::<String>::new());
}

#[test]
fn a_stored_session_id_or_credential_is_not_overwritten() {
    let Some(redis) = redis("a_stored_session_id_or_credential_is_not_overwritten") else {
        return;
    };
    let sessions = RedisSessionRepository::new(redis.store().clone());
    let t = now();
    let first = session(UserId::generate(), SessionKind::Cookie, t, t + 100);
    sessions.create(&first, &digest("c")).unwrap();
    let same_id = Session {
        user_id: UserId::generate(),
        ..first.clone()
    };
    assert!(matches!(
        sessions.create(&same_id, &digest("other")),
        Err(RepoError::Internal(_))
    ));
    let same_cookie = session(UserId::generate(), SessionKind::Cookie, t, t + 100);
    let err = sessions.create(&same_cookie, &digest("c")).unwrap_err();
    assert!(matches!(err, RepoError::Internal(_)), "{err:?}");
    assert!(!err.to_string().contains("digest-c"), "{err}");
    assert_eq!(sessions.find_by_cookie(&digest("c")).unwrap(), Some(first));
    assert_eq!(sessions.find(&same_cookie.id).unwrap(), None);
}

#[test]
fn concurrent_rotations_of_one_token_let_exactly_one_win_across_instances() {
    let Some(redis) =
        redis("concurrent_rotations_of_one_token_let_exactly_one_win_across_instances")
    else {
        return;
    };
    let instances = [
        RedisSessionRepository::new(redis.store().clone()),
        RedisSessionRepository::new(second_store(&redis)),
    ];
    let t = now();
    for round in 0..5 {
        let live = session(UserId::generate(), SessionKind::Bearer, t, t + 5_000);
        let token = digest(&format!("round{round}"));
        instances[0].create(&live, &token).unwrap();
        let threads = 8;
        let barrier = Barrier::new(threads);
        let outcomes: Vec<RefreshRotation> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let sessions = &instances[i % 2];
                    let (barrier, token) = (&barrier, &token);
                    scope.spawn(move || {
                        barrier.wait();
                        sessions
                            .rotate_refresh(
                                token,
                                &digest(&format!("round{round}-n{i}")),
                                Timestamp(t + 100),
                            )
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = outcomes
            .iter()
            .filter(|o| matches!(o, RefreshRotation::Rotated(s) if s.id == live.id))
            .count();
        let replays = outcomes
            .iter()
            .filter(|o| matches!(o, RefreshRotation::Reused(s) if s.id == live.id))
            .count();
        assert_eq!((won, replays), (1, threads - 1), "{outcomes:?}");
        // The session holds the first token and exactly one replacement.
        let tokens: i64 = redis
            .query(redis::cmd("SCARD").arg(redis.key(&format!("session-refresh:{}", live.id))));
        assert_eq!(tokens, 2);
    }
}

#[test]
fn an_instance_sees_another_instances_sessions_and_their_end() {
    let Some(redis) = redis("an_instance_sees_another_instances_sessions_and_their_end") else {
        return;
    };
    let a = RedisSessionRepository::new(redis.store().clone());
    let b = RedisSessionRepository::new(second_store(&redis));
    let t = now();
    let s = session(UserId::generate(), SessionKind::Cookie, t, t + 600);
    a.create(&s, &digest("c")).unwrap();
    assert_eq!(b.find_by_cookie(&digest("c")).unwrap(), Some(s.clone()));
    assert!(b.end(&s.id).unwrap());
    assert_eq!(a.find_by_cookie(&digest("c")).unwrap(), None);
    assert_eq!(a.find(&s.id).unwrap(), None);
}

fn policy() -> LockoutPolicy {
    contracts::lockout_policy()
}

#[test]
fn attempts_keep_the_port_contract() {
    let Some(redis) = redis("attempts_keep_the_port_contract") else {
        return;
    };
    let limiter = RedisAttemptLimiter::new(redis.store().clone());
    // The window runs on the clock the caller passes, not Redis'.
    contracts::attempts_lock_after_the_threshold_within_the_window(&limiter);
    let fresh = TestRedis::connect(&service_url(URL_VAR, "").unwrap());
    contracts::failures_outside_the_window_do_not_count(&RedisAttemptLimiter::new(
        fresh.store().clone(),
    ));
}

#[test]
fn reset_forgets_failures_and_leaves_no_key() {
    let Some(redis) = redis("reset_forgets_failures_and_leaves_no_key") else {
        return;
    };
    let limiter = RedisAttemptLimiter::new(redis.store().clone());
    let key = format!("{}@example.com", "ü".repeat(150));
    limiter
        .record_failure(&key, Timestamp(0), &policy())
        .unwrap();
    limiter.reset(&key).unwrap();
    assert_eq!(redis.keys(), Vec::<String>::new());
    contracts::reset_forgets_failures(&limiter);
}

#[test]
fn attempt_keys_expire_and_other_instances_see_the_lock() {
    let Some(redis) = redis("attempt_keys_expire_and_other_instances_see_the_lock") else {
        return;
    };
    let limiter = RedisAttemptLimiter::new(redis.store().clone());
    let other = RedisAttemptLimiter::new(second_store(&redis));
    let t = now();
    let policy = LockoutPolicy {
        threshold: 2,
        window_secs: 900,
        duration_secs: 1,
    };
    assert!(
        !limiter
            .record_failure("user:a", Timestamp(t), &policy)
            .unwrap()
    );
    // The failures vanish a window after the last one (plus a second's slack).
    // Keys are named by a digest of the lockout key, never by what was typed.
    let hashed = hex::encode(sha2::Sha256::digest(b"user:a"));
    let failures = format!("attempt-failures:{hashed}");
    let lock = format!("attempt-lock:{hashed}");
    assert_expires_in(&redis, &failures, 901);
    // The second failure comes in through the other instance.
    assert!(
        other
            .record_failure("user:a", Timestamp(t), &policy)
            .unwrap()
    );
    assert_eq!(limiter.locked_for("user:a", Timestamp(t)).unwrap(), Some(1));
    assert_eq!(redis.keys(), std::slice::from_ref(&lock));
    assert_expires_in(&redis, &lock, 2);
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(redis.keys(), Vec::<String>::new());
    assert_eq!(limiter.locked_for("user:a", Timestamp(t)).unwrap(), None);

    // Absurd policies are clamped to expiries Redis accepts, not errors.
    let forever = LockoutPolicy {
        threshold: 1,
        window_secs: u64::MAX,
        duration_secs: u64::MAX,
    };
    assert!(
        limiter
            .record_failure("user:b", Timestamp(t), &forever)
            .unwrap()
    );
    assert!(
        limiter
            .locked_for("user:b", Timestamp(t))
            .unwrap()
            .is_some_and(|secs| secs > 1_000_000_000)
    );
}

#[test]
fn buckets_allow_a_burst_then_refuse_with_a_wait() {
    let Some(redis) = redis("buckets_allow_a_burst_then_refuse_with_a_wait") else {
        return;
    };
    let limiter = RedisRateLimiter::new(redis.store().clone(), 3, 60);
    contracts::buckets_allow_a_burst_then_refuse_with_a_wait(&limiter);
    // Another instance draws from the same bucket.
    let other = RedisRateLimiter::new(second_store(&redis), 3, 60);
    assert!(other.acquire("ip:192.0.2.1").unwrap().is_some());

    // One a minute: the wait is (nearly) a minute, rounded up.
    let slow = RedisRateLimiter::new(redis.store().clone(), 1, 1);
    assert_eq!(slow.acquire("slow").unwrap(), None);
    let wait = slow.acquire("slow").unwrap().unwrap();
    assert!((59..=60).contains(&wait), "{wait}");
    // The bucket vanishes once it would be full again (a minute, plus 1 ms).
    let ms = pttl(&redis, "rate:slow");
    assert!((58_000..=60_001).contains(&ms), "PTTL {ms} ms");
    // No refill at all: the wait is "never" and still a number.
    let never = RedisRateLimiter::new(redis.store().clone(), 1, 0);
    assert_eq!(never.acquire("never").unwrap(), None);
    assert!(never.acquire("never").unwrap().unwrap() > 1_000_000_000);
}

#[test]
fn buckets_refill_over_time() {
    let Some(redis) = redis("buckets_refill_over_time") else {
        return;
    };
    let limiter = RedisRateLimiter::new(redis.store().clone(), 1, 300); // 5 a second
    contracts::buckets_refill_over_time(&limiter);
    // A full bucket expires: 200 ms to refill one token, plus a millisecond.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(redis.keys(), Vec::<String>::new());
}

#[test]
fn an_unreachable_redis_fails_connect_fast_and_clearly() {
    // No Redis needed, but it runs with the others.
    if service_url(
        URL_VAR,
        "an_unreachable_redis_fails_connect_fast_and_clearly",
    )
    .is_none()
    {
        return;
    }
    let settings = RedisSettings {
        timeout: Duration::from_millis(200),
        ..RedisSettings::new("redis://user:hunter2@127.0.0.1:1")
    };
    let started = Instant::now();
    let err = RedisStore::connect(&settings).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(err, RedisConnectError::Unreachable { .. }),
        "{err:?}"
    );
    let text = format!("{err} / {err:?}");
    assert!(
        text.contains("cannot reach Redis at redis://user:<redacted>@127.0.0.1:1"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    // A server that accepts but never answers: the handshake times out.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let settings = RedisSettings {
        timeout: Duration::from_millis(200),
        ..RedisSettings::new(format!("redis://{addr}"))
    };
    let started = Instant::now();
    let err = RedisStore::connect(&settings).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(err, RedisConnectError::Unreachable { .. }),
        "{err:?}"
    );
    drop(silent);
}

#[test]
fn wrong_credentials_are_named_as_such() {
    let Some(url) = service_url(URL_VAR, "wrong_credentials_are_named_as_such") else {
        return;
    };
    let Some((_, _, addr)) = tcp_addr(&url) else {
        eprintln!("SKIPPED wrong_credentials_are_named_as_such: {URL_VAR} is not TCP");
        return;
    };
    let settings = RedisSettings {
        timeout: Duration::from_millis(500),
        ..RedisSettings::new(format!("redis://nobody:hunter2@{addr}"))
    };
    let err = RedisStore::connect(&settings).unwrap_err();
    assert!(matches!(err, RedisConnectError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// The host, port and address of the Redis at `url`, when it is reached over
/// TCP.
fn tcp_addr(url: &str) -> Option<(String, u16, SocketAddr)> {
    let client = redis::Client::open(url).ok()?;
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))
                .ok()?
                .next()?;
            Some((host.clone(), *port, addr))
        }
        _ => None,
    }
}

/// One instance's adapters, and what the operations below work on.
struct Adapters {
    sessions: RedisSessionRepository,
    attempts: RedisAttemptLimiter,
    rates: RedisRateLimiter,
    session: Session,
    t: i64,
}

type Op = fn(&Adapters) -> Result<(), RepoError>;

/// Every adapter operation.
const OPERATIONS: [(&str, Op); 13] = [
    ("create", |a| a.sessions.create(&a.session, &digest("x"))),
    ("find", |a| a.sessions.find(&a.session.id).map(drop)),
    ("find_by_cookie", |a| {
        a.sessions.find_by_cookie(&digest("x")).map(drop)
    }),
    ("touch", |a| a.sessions.touch(&a.session.id, Timestamp(a.t))),
    ("list", |a| {
        a.sessions
            .list(&a.session.user_id, Timestamp(a.t))
            .map(drop)
    }),
    ("end", |a| a.sessions.end(&a.session.id).map(drop)),
    ("end_others", |a| {
        a.sessions
            .end_others(&a.session.user_id, &a.session.id)
            .map(drop)
    }),
    ("end_all", |a| {
        a.sessions.end_all(&a.session.user_id).map(drop)
    }),
    ("rotate_refresh", |a| {
        a.sessions
            .rotate_refresh(&digest("x"), &digest("y"), Timestamp(a.t))
            .map(drop)
    }),
    ("locked_for", |a| {
        a.attempts.locked_for("k", Timestamp(a.t)).map(drop)
    }),
    ("record_failure", |a| {
        a.attempts
            .record_failure("k", Timestamp(a.t), &policy())
            .map(drop)
    }),
    ("reset", |a| a.attempts.reset("k")),
    ("acquire", |a| a.rates.acquire("ip").map(drop)),
];

/// Runs every adapter operation, each of which must come back `Unavailable`
/// within `limit`.
fn assert_every_operation_is_unavailable(store: &RedisStore, limit: Duration) {
    let t = now();
    let adapters = Arc::new(Adapters {
        sessions: RedisSessionRepository::new(store.clone()),
        attempts: RedisAttemptLimiter::new(store.clone()),
        rates: RedisRateLimiter::new(store.clone(), 5, 60),
        session: session(UserId::generate(), SessionKind::Bearer, t, t + 60),
        t,
    });
    for (name, op) in OPERATIONS {
        let adapters = Arc::clone(&adapters);
        let started = Instant::now();
        let result = within(limit, name, move || op(&adapters));
        let took = started.elapsed();
        assert!(
            matches!(result, Err(RepoError::Unavailable(_))),
            "{name}: {result:?}"
        );
        assert!(took < limit, "{name} took {took:?}");
    }
}

/// Runs `op` on a thread of its own and returns what it returns, or fails the
/// test if it takes longer than `limit`: a hang must fail, not hang the suite.
fn within<T: Send + 'static>(
    limit: Duration,
    name: &str,
    op: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(op()));
    result
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{name} did not return within {limit:?}"))
}

/// A test Redis, a proxy in front of it, and a store that reaches it through
/// the proxy; `None` when the test Redis is not configured.
fn behind_a_proxy(test: &str) -> Option<(TestRedis, FaultyProxy, RedisStore)> {
    let url = service_url(URL_VAR, test)?;
    let Some((_, _, upstream)) = tcp_addr(&url) else {
        assert!(!in_ci(), "{test}: {URL_VAR} must be a TCP URL in CI");
        eprintln!("SKIPPED {test}: {URL_VAR} is not TCP");
        return None;
    };
    let redis = TestRedis::connect(&url);
    let proxy = FaultyProxy::start(&upstream.to_string());
    let store = store_behind(&proxy, &url, &redis);
    Some((redis, proxy, store))
}

/// A store on `redis`' prefix that reaches Redis through `proxy`.
fn store_behind(proxy: &FaultyProxy, url: &str, redis: &TestRedis) -> RedisStore {
    let (host, port, _) = tcp_addr(url).unwrap();
    let proxy = format!("127.0.0.1:{}", proxy.port());
    let with_port = format!("{host}:{port}");
    let proxied = if url.contains(&with_port) {
        url.replacen(&with_port, &proxy, 1)
    } else {
        url.replacen(&host, &proxy, 1)
    };
    assert_ne!(proxied, url, "cannot point {URL_VAR} at the proxy");
    RedisStore::connect(&RedisSettings {
        pool_size: 2,
        timeout: Duration::from_millis(300),
        prefix: redis.store().prefix().to_owned(),
        url: proxied,
    })
    .unwrap()
}

/// Retries `op` for a few seconds: the pool reconnects in the background.
fn eventually(op: impl Fn() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if op() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_redis_that_stops_answering_makes_operations_unavailable_quickly() {
    let Some((_redis, proxy, store)) =
        behind_a_proxy("a_redis_that_stops_answering_makes_operations_unavailable_quickly")
    else {
        return;
    };
    let sessions = RedisSessionRepository::new(store.clone());
    let t = now();
    let s = session(UserId::generate(), SessionKind::Cookie, t, t + 60);
    sessions.create(&s, &digest("c")).unwrap();
    store.ping().unwrap();

    proxy.stall();
    let pinged = store.clone();
    let err = within(Duration::from_secs(1), "ping", move || pinged.ping()).unwrap_err();
    assert!(
        matches!(
            err.reason(),
            "redis timed out" | "timed out waiting for a connection"
        ),
        "{err}"
    );
    // The read timeout trips: well under a second per operation, not a hang.
    assert_every_operation_is_unavailable(&store, Duration::from_secs(1));

    proxy.restore();
    assert!(
        eventually(|| sessions
            .find(&s.id)
            .is_ok_and(|found| found == Some(s.clone()))),
        "the store did not recover"
    );
    // No connection is left out of step by a reply that arrived late.
    for _ in 0..20 {
        assert_eq!(sessions.find(&s.id).unwrap(), Some(s.clone()));
        assert_eq!(
            sessions.find_by_cookie(&digest("c")).unwrap(),
            Some(s.clone())
        );
    }
}

#[test]
fn a_redis_that_went_away_makes_operations_unavailable_quickly() {
    let Some((_redis, proxy, store)) =
        behind_a_proxy("a_redis_that_went_away_makes_operations_unavailable_quickly")
    else {
        return;
    };
    let limiter = RedisAttemptLimiter::new(store.clone());
    limiter
        .record_failure("k", Timestamp(now()), &policy())
        .unwrap();

    proxy.down();
    // Let the pumps notice and close the pooled connections.
    std::thread::sleep(Duration::from_millis(100));
    assert_every_operation_is_unavailable(&store, Duration::from_secs(1));
    let pinged = store.clone();
    let err = within(Duration::from_secs(1), "ping", move || pinged.ping()).unwrap_err();
    assert!(!err.reason().is_empty());

    proxy.restore();
    assert!(
        eventually(|| limiter.locked_for("k", Timestamp(now())).is_ok()),
        "the store did not recover"
    );
    assert!(store.connections().idle + store.connections().in_use >= 1);
}

#[test]
fn ping_and_connection_counts() {
    let Some(redis) = redis("ping_and_connection_counts") else {
        return;
    };
    redis.store().ping().unwrap();
    let counts = redis.store().connections();
    assert_eq!(counts.in_use, 0);
    assert!(counts.idle >= 1);
    let debug = format!("{:?}", redis.store());
    assert!(debug.contains(redis.store().prefix()), "{debug}");
}
