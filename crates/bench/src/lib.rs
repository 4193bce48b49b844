//! # safebox-bench
//!
//! Helpers for `make bench` (see `crates/bench/run.py` and `docs/performance.md`):
//!
//! - `bench-baseline`: a minimal actix-web 4 server answering `GET /get_secret` with
//!   a fixed JSON body, with no authentication, database or cryptography. It is the
//!   ceiling safebox's read path is compared with, on the same machine and in the
//!   same run.
//! - `bench-bcrypt`: times `bcrypt::verify` at a given cost, so the driver can work
//!   out how many logins per second the machine's cores can check at most.
//!
//! This crate is not part of the service and is never published.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// The body the baseline answers `GET /get_secret` with: the same shape and about
/// the same size as safebox's answer for a short secret.
pub const BASELINE_BODY: &str = r#"{"secret":"myTopSecretValue"}"#;

/// The number of CPUs this process may run on, as actix-web and safebox count them.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Reads `--name value` from `args`, or `default` when absent.
///
/// # Errors
/// A message naming the flag when the flag has no value or the value does not parse.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|arg| arg == name) {
        None => Ok(default),
        Some(index) => {
            let raw = args
                .get(index + 1)
                .ok_or_else(|| format!("{name} needs a value"))?;
            raw.parse()
                .map_err(|_| format!("{name}: cannot parse {raw:?}"))
        }
    }
}

/// Timings of `runs` calls of `f`, sorted from fastest to slowest.
pub fn time_runs(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let began = Instant::now();
            f();
            began.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

/// The median of sorted `samples` (the mean of the middle two for an even count).
///
/// # Panics
/// If `samples` is empty.
pub fn median(samples: &[Duration]) -> Duration {
    assert!(!samples.is_empty(), "median of no samples");
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_or_default() {
        let args: Vec<String> = ["x", "--port", "8080", "--bad"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(flag(&args, "--port", 0_u16), Ok(8080));
        assert_eq!(flag(&args, "--workers", 3_usize), Ok(3));
        assert!(flag(&args, "--bad", 0_u32).is_err());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(1), ms(2), ms(9)]), ms(2));
        assert_eq!(median(&[ms(1), ms(3)]), ms(2));
    }

    #[test]
    fn the_baseline_body_is_the_secret_response_shape() {
        assert!(BASELINE_BODY.starts_with(r#"{"secret":""#));
    }
}
