//! A fixed pool of threads for password hashing, with a bounded queue.
//!
//! bcrypt is deliberately slow. Run on the async workers it would stall every other
//! request; run on an unbounded blocking pool, a login flood would queue for seconds
//! and take memory and threads with it. This pool runs at most `workers` hashes at a
//! time and lets at most `queue` more wait; past that, [`HashingPool::run`] refuses
//! at once so the route can answer 503 in milliseconds.
//!
//! The hashing threads run at a lower CPU priority (nice 10): when a login flood
//! and ordinary requests compete for the cores, the request threads are scheduled
//! first, so reads keep their latency; when the cores are otherwise idle, bcrypt
//! still gets all of them.
//!
//! Admission is counted, not left to the channel: a job is admitted while fewer
//! than `workers + queue` jobs are running or waiting. (A rendezvous channel would
//! refuse work in the instant a worker is between two jobs.) The queue also admits
//! a job only if the pool is expected to start it within [`QUEUE_WAIT_BUDGET`], at
//! the pace its recent jobs took: when other work takes the cores from the
//! (lower-priority) hashing threads, a job takes seconds instead of a quarter of
//! one, and a full queue would hold a login for several of them. A job is the
//! whole use case on the hashing thread (bcrypt and its database statements), so a
//! slow database slows the pace too, and quick jobs (a locked account's login,
//! which skips bcrypt) speed it up: the average is of what the queue waits for.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Why a job did not run to completion.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full, or too slow to start the job
    /// within [`QUEUE_WAIT_BUDGET`].
    #[error("hashing pool saturated")]
    Saturated,
    /// The job panicked or the pool shut down before it ran.
    #[error("hashing job lost (panicked or pool shut down)")]
    Lost,
}

/// The pool. Dropping it lets the workers finish queued jobs and exit.
pub struct HashingPool {
    sender: Sender<Job>,
    workers: usize,
    queue: usize,
    /// Jobs admitted and not finished; never above `workers + queue`.
    in_flight: Arc<AtomicUsize>,
    /// What the pool has done, for metrics.
    stats: Arc<Stats>,
}

/// Counters shared between the pool, its jobs and whoever reads them.
#[derive(Debug, Default)]
struct Stats {
    /// Jobs admitted that no worker has started yet.
    waiting: AtomicUsize,
    /// Jobs refused because the pool was saturated.
    rejections: AtomicU64,
    /// A moving average of the wall time of one job on a hashing thread, in
    /// nanoseconds; 0 until the first job has finished.
    job_nanos: AtomicU64,
}

/// How long a job let into the queue may expect to wait for a hashing thread.
/// A job that would wait longer, at the pace of the pool's recent jobs, is refused
/// like one that finds the queue full. At cost 12 a job takes about a quarter of a
/// second on an idle core, so the default queue (twice the cores) fits with room;
/// the budget bites when other work slows the hashing threads down.
pub const QUEUE_WAIT_BUDGET: Duration = Duration::from_secs(1);

impl Stats {
    /// Folds one finished job's wall time into the moving average (weight 1/4,
    /// so a change of pace shows within a few jobs).
    fn record_job(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .job_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |average| {
                Some(next_average(average, took))
            });
    }
}

/// The moving average after a job that took `took` nanoseconds; the first job
/// sets it.
fn next_average(average: u64, took: u64) -> u64 {
    if average == 0 {
        took
    } else {
        average - average / 4 + took / 4
    }
}

/// Whether a job may be admitted when `in_flight` jobs are already running or
/// waiting: a worker is free, or the job's place in the queue is within `queue`
/// and the jobs ahead of it, at `job_nanos` each spread over the workers, leave
/// it waiting no longer than [`QUEUE_WAIT_BUDGET`]. With no job finished yet
/// (`job_nanos` 0) only the count applies.
fn admits(in_flight: usize, workers: usize, queue: usize, job_nanos: u64) -> bool {
    if in_flight < workers {
        return true;
    }
    // This job's place in the queue, from 1.
    let place = in_flight + 1 - workers;
    if place > queue {
        return false;
    }
    let wait = u128::from(job_nanos) * place as u128;
    wait <= QUEUE_WAIT_BUDGET.as_nanos() * workers as u128
}

/// A read-only view of a [`HashingPool`]'s counters, for the metrics endpoint
/// (which may run in another server than the pool's users).
#[derive(Debug, Clone)]
pub struct HashingStats(Arc<Stats>);

impl HashingStats {
    /// Jobs admitted and waiting for a worker (not yet running).
    pub fn queue_depth(&self) -> usize {
        self.0.waiting.load(Ordering::Acquire)
    }

    /// Jobs refused since start because every worker was busy and the queue full
    /// (or too slow to start them within [`QUEUE_WAIT_BUDGET`]).
    pub fn rejections(&self) -> u64 {
        self.0.rejections.load(Ordering::Relaxed)
    }

    /// The recent wall time of one job on a hashing thread (a moving average);
    /// zero until a job has finished.
    pub fn job_time(&self) -> Duration {
        Duration::from_nanos(self.0.job_nanos.load(Ordering::Acquire))
    }
}

impl std::fmt::Debug for HashingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingPool")
            .field("workers", &self.workers)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl HashingPool {
    /// Starts `workers` threads (at least one) and lets `queue` more jobs wait. A
    /// queue of 0 admits a job only when a worker is free.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        // Unbounded, because admission in `run` already bounds what is sent.
        let (sender, receiver) = crossbeam_channel::unbounded::<Job>();
        for index in 0..workers {
            let receiver = receiver.clone();
            thread::Builder::new()
                .name(format!("safebox-hash-{index}"))
                .spawn(move || {
                    lower_priority();
                    for job in receiver {
                        job();
                    }
                })
                .expect("the OS refused to start a hashing thread");
        }
        Self {
            sender,
            workers,
            queue,
            in_flight: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(Stats::default()),
        }
    }

    /// The pool's counters: queue depth and rejections.
    pub fn stats(&self) -> HashingStats {
        HashingStats(Arc::clone(&self.stats))
    }

    /// Threads in the pool.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs accepted and not yet finished (running or queued).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Submits `job` to the pool at once and returns a future of its result that
    /// does not block the caller's thread. Fails at once with
    /// [`PoolError::Saturated`] when every worker is busy and the queue is full,
    /// or when the queue is too slow to start the job within [`QUEUE_WAIT_BUDGET`].
    pub fn run<F, R>(&self, job: F) -> impl Future<Output = Result<R, PoolError>> + 'static
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                let job_nanos = self.stats.job_nanos.load(Ordering::Acquire);
                admits(count, self.workers, self.queue, job_nanos).then_some(count + 1)
            })
            .is_ok();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let submitted = if admitted {
            let guard = InFlight(Arc::clone(&self.in_flight));
            let stats = Arc::clone(&self.stats);
            stats.waiting.fetch_add(1, Ordering::AcqRel);
            let waiting = Waiting(Arc::clone(&stats));
            let wrapped: Job = Box::new(move || {
                // Running now, not waiting.
                drop(waiting);
                let started = Instant::now();
                let result = catch_unwind(AssertUnwindSafe(job));
                // The pace is recorded before the slot is freed: an admission
                // that sees the free slot also sees this job's time.
                stats.record_job(started.elapsed());
                // Not in flight any more once the caller can see the result.
                drop(guard);
                // A panicked job drops `tx`, which the caller sees as `Lost`.
                if let Ok(result) = result {
                    let _ = tx.send(result);
                }
            });
            // Sending fails only once every worker has exited; the job (and its
            // guard) is dropped with the error.
            self.sender
                .send(wrapped)
                .map(|()| rx)
                .map_err(|_| PoolError::Lost)
        } else {
            self.stats.rejections.fetch_add(1, Ordering::Relaxed);
            Err(PoolError::Saturated)
        };
        async move { submitted?.await.map_err(|_| PoolError::Lost) }
    }
}

/// The niceness of the hashing threads.
const HASH_THREAD_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`HASH_THREAD_NICE`]. Lowering
/// needs no privilege; if the OS refuses anyway, hashing runs at normal priority.
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    // thread-priority maps 0..=99 onto nice 19..=-20; 22 is nice 10.
    let result = ThreadPriorityValue::try_from(22_u8)
        .map_err(|err| err.to_string())
        .and_then(|value| {
            set_current_thread_priority(ThreadPriority::Crossplatform(value))
                .map_err(|err| format!("{err:?}"))
        });
    if let Err(err) = result {
        tracing::warn!(error = %err, nice = HASH_THREAD_NICE, "cannot lower the hashing threads' priority");
    }
}

/// Decrements the in-flight count however the job ends (ran, panicked, refused).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Decrements the waiting count when a worker starts the job, or when the job is
/// dropped unrun (the pool shut down).
struct Waiting(Arc<Stats>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Barrier, mpsc};
    use std::time::{Duration, Instant};

    use super::*;

    /// Occupies one of `pool`'s workers until the returned barrier is waited on;
    /// returns once the job is running, with the job's future.
    fn occupy_a_worker(
        pool: &HashingPool,
    ) -> (Arc<Barrier>, impl Future<Output = Result<(), PoolError>>) {
        let release = Arc::new(Barrier::new(2));
        let (started_tx, started_rx) = mpsc::channel();
        let held = {
            let release = Arc::clone(&release);
            pool.run(move || {
                started_tx.send(()).unwrap();
                release.wait();
            })
        };
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        (release, held)
    }

    #[tokio::test]
    async fn runs_jobs_off_the_calling_thread() {
        let pool = HashingPool::new(2, 4);
        let caller = thread::current().id();
        let (name, id) = pool
            .run(|| {
                (
                    thread::current().name().map(str::to_owned),
                    thread::current().id(),
                )
            })
            .await
            .unwrap();
        assert_ne!(id, caller);
        assert!(name.unwrap().starts_with("safebox-hash-"));
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = HashingPool::new(1, 1);
        let (release, held) = occupy_a_worker(&pool);
        // Fill the queue's one slot.
        let queued = pool.run(|| 1);
        assert_eq!(pool.stats().queue_depth(), 1);
        assert_eq!(pool.stats().rejections(), 0);
        // The next job is refused without waiting.
        let began = Instant::now();
        assert!(matches!(pool.run(|| 2).await, Err(PoolError::Saturated)));
        assert!(began.elapsed() < Duration::from_millis(100));
        assert_eq!(pool.stats().rejections(), 1);
        release.wait();
        held.await.unwrap();
        assert_eq!(queued.await.unwrap(), 1);
        assert_eq!(pool.stats().queue_depth(), 0);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority() {
        let pool = HashingPool::new(1, 0);
        let stat = pool
            .run(|| std::fs::read_to_string("/proc/thread-self/stat").unwrap())
            .await
            .unwrap();
        // Field 19 is the nice value; the command name (field 2) may hold spaces,
        // so count from the closing parenthesis.
        let after_name = stat.rsplit_once(')').unwrap().1;
        let nice: i32 = after_name
            .split_whitespace()
            .nth(16)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(nice, HASH_THREAD_NICE);
    }

    #[tokio::test]
    async fn a_queue_of_zero_admits_sequential_jobs_every_time() {
        let pool = HashingPool::new(1, 0);
        for n in 0..200 {
            assert_eq!(pool.run(move || n).await.unwrap(), n);
        }
    }

    #[test]
    fn the_job_time_average_starts_at_the_first_job_and_moves_a_quarter_of_the_way() {
        assert_eq!(next_average(0, 100), 100);
        assert_eq!(next_average(100, 500), 200);
        assert_eq!(next_average(200, 200), 200);
        let mut average = 250_000_000;
        for _ in 0..40 {
            average = next_average(average, 1_300_000_000);
        }
        assert!(
            (1_290_000_000..=1_300_000_000).contains(&average),
            "{average}"
        );
    }

    #[test]
    fn the_queue_admits_only_jobs_that_would_start_within_the_budget() {
        let ms = |n: u64| n * 1_000_000;
        // Before any job has finished, only the count applies: 2 running + 4 waiting.
        assert!((0..6).all(|in_flight| admits(in_flight, 2, 4, 0)));
        assert!(!admits(6, 2, 4, 0));
        // At a quarter of a second a job (an idle machine, cost 12) the whole queue
        // fits: the 4th waiting job starts after about 4 x 250 ms / 2 workers.
        assert!((0..6).all(|in_flight| admits(in_flight, 2, 4, ms(250))));
        assert!(!admits(6, 2, 4, ms(250)));
        // At 1.3 s a job (hashing threads starved by other work) one may wait.
        assert!(admits(2, 2, 4, ms(1_300)));
        assert!(!admits(3, 2, 4, ms(1_300)));
        // Slower still, none may wait, but a free worker always takes a job.
        assert!(admits(1, 2, 4, ms(2_500)));
        assert!(!admits(2, 2, 4, ms(2_500)));
        // Exactly at the budget is still in it.
        assert!(admits(1, 1, 4, ms(1_000)));
        assert!(!admits(1, 1, 4, ms(1_001)));
    }

    #[tokio::test]
    async fn a_finished_job_sets_the_pace() {
        let pool = HashingPool::new(1, 0);
        assert_eq!(pool.stats().job_time(), Duration::ZERO);
        pool.run(|| thread::sleep(Duration::from_millis(50)))
            .await
            .unwrap();
        assert!(pool.stats().job_time() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_slow_pool_refuses_what_its_queue_could_not_start_in_time() {
        let pool = HashingPool::new(1, 4);
        // Recent jobs took 600 ms each: one waiting job would start within the
        // second, a second one would not.
        pool.stats.record_job(Duration::from_millis(600));
        let (release, held) = occupy_a_worker(&pool);
        let queued = pool.run(|| 1);
        assert_eq!(pool.stats().queue_depth(), 1);
        // Admission is decided in `run`, before its future is polled.
        let refused = pool.run(|| 2);
        assert_eq!(pool.stats().rejections(), 1);
        assert_eq!(pool.stats().queue_depth(), 1);
        let refused = tokio::time::timeout(Duration::from_secs(5), refused).await;
        assert!(matches!(refused, Ok(Err(PoolError::Saturated))));
        release.wait();
        held.await.unwrap();
        assert_eq!(queued.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_panicking_job_is_lost_but_the_worker_survives() {
        let pool = HashingPool::new(1, 1);
        let result = pool.run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(result, Err(PoolError::Lost)));
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_still_sets_the_pace() {
        let pool = HashingPool::new(1, 0);
        let result = pool
            .run(|| -> u8 {
                thread::sleep(Duration::from_millis(40));
                panic!("boom")
            })
            .await;
        assert!(matches!(result, Err(PoolError::Lost)));
        // The time it held the thread counts: the queue waited for it all the same.
        assert!(pool.stats().job_time() >= Duration::from_millis(40));
        assert_eq!(pool.stats().queue_depth(), 0);
    }
}
