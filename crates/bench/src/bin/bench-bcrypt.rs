//! `bench-bcrypt [--cost 12] [--runs 7]`: hashes one password at `cost`, then times
//! `--runs` calls of `bcrypt::verify` on one thread and prints one JSON line:
//! `{"cost":12,"runs":7,"median_s":…,"min_s":…,"max_s":…,"cores":2}`.
//!
//! Run it on an idle machine: the driver divides the cores by `median_s` to get the
//! bcrypt bound, the most logins per second the machine can check.

use std::process::ExitCode;

use safebox_bench::{cores, flag, median, time_runs};

const PASSWORD: &str = "correct horse battery staple";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let settings =
        flag(&args, "--cost", 12_u32).and_then(|cost| Ok((cost, flag(&args, "--runs", 7_usize)?)));
    let (cost, runs) = match settings {
        Ok((cost, runs)) if runs > 0 && (4..=31).contains(&cost) => (cost, runs),
        Ok(_) => {
            eprintln!("bench-bcrypt: --cost must be 4..=31 and --runs at least 1");
            return ExitCode::from(2);
        }
        Err(message) => {
            eprintln!("bench-bcrypt: {message}");
            return ExitCode::from(2);
        }
    };
    let hash = match bcrypt::hash(PASSWORD, cost) {
        Ok(hash) => hash,
        Err(err) => {
            eprintln!("bench-bcrypt: {err}");
            return ExitCode::FAILURE;
        }
    };
    // One untimed verify warms caches and the CPU's clock.
    let _ = bcrypt::verify(PASSWORD, &hash);
    let samples = time_runs(runs, || {
        assert!(
            bcrypt::verify(PASSWORD, &hash).unwrap_or(false),
            "verify failed"
        );
    });
    println!(
        "{{\"cost\":{cost},\"runs\":{runs},\"median_s\":{:.6},\"min_s\":{:.6},\"max_s\":{:.6},\"cores\":{}}}",
        median(&samples).as_secs_f64(),
        samples[0].as_secs_f64(),
        samples[samples.len() - 1].as_secs_f64(),
        cores()
    );
    ExitCode::SUCCESS
}
