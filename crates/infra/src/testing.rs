//! Helpers for tests that need a real external service (MySQL, Redis), for this
//! workspace's own test suites. Behind the `testing` feature; never in a release
//! build.
//!
//! A test that needs a service asks [`service_url`] for its URL. When the variable
//! is unset the test prints a notice and skips, so that `make test` passes on a
//! fresh machine; under `CI=true` an unset variable fails the test instead, so a
//! missing service can never turn into a green CI run.

/// Whether this is a CI run (`CI=true`), where every service must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The URL in `var` (for example `SAFEBOX_TEST_MYSQL_URL`), or `None` after
/// printing a skip notice naming `test` when it is unset or empty.
///
/// # Panics
/// Under `CI=true` when `var` is unset: CI must run every test.
pub fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => panic!("{test}: {var} is not set, and CI=true requires this service"),
        _ => {
            eprintln!(
                "SKIPPED {test}: set {var} to run it (see docs/deployment.md, `make test-all`)"
            );
            None
        }
    }
}
