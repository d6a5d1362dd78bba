//! Foundation benchmarks: durable queue cycles (enqueue + lease + complete, fsynced) measured
//! over the 1st thousand, up to 10k and up to 100k cycles (the rate must stay flat), and ledger
//! hold + capture per second.
//!
//! Run: `cargo bench --bench foundation` (QWENEDIT_BENCH_CYCLES=N to change the 100k).

use std::time::{Duration, Instant};

use qwenedit::domain::{JobId, JobSpec, Lane, Points, UserId};
use qwenedit::queue::{JobRecord, JobResult, Queue, QueueConfig};
use qwenedit::store::{NewUser, Store};

fn spec(user: i64) -> JobSpec {
    JobSpec {
        user: UserId::new(user),
        chat: Some(user),
        inputs: vec!["inputs/0123456789.png".into()],
        preset: Some("anime".into()),
        prompt: None,
        workflow: "qwen-image-edit-2511".into(),
        seed: 42,
        price: Points::new(30),
        lane: Lane::Normal,
    }
}

fn queue_cycles(total: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = QueueConfig {
        max_attempts: 3,
        backoff_base: Duration::from_secs(5),
        backoff_max: Duration::from_secs(300),
        history_limit: 10_000,
        fsync: true,
    };
    let (queue, _) = Queue::open(dir.path(), config, 0).unwrap();
    let marks = [1_000u64, 10_000, total];
    let mut done = 0u64;
    let mut now = 1_000_000i64;
    println!("durable queue cycles (enqueue + lease + complete, fsync on):");
    for (i, &mark) in marks.iter().enumerate() {
        if mark <= done {
            continue;
        }
        let start = Instant::now();
        let from = done;
        while done < mark {
            now += 1;
            let id = JobId::at(now as u64);
            queue
                .enqueue(JobRecord::new(id, &spec((done % 50) as i64), now), now)
                .unwrap();
            let lease = queue
                .lease_next("bench", now, Duration::from_secs(60))
                .unwrap()
                .expect("a job is ready");
            queue.complete(&lease, JobResult::default(), now).unwrap();
            done += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  cycles {:>6}..{:<6} {:>8.0} cycles/s{}",
            from,
            mark,
            (mark - from) as f64 / secs,
            if i == marks.len() - 1 {
                "  (final window)"
            } else {
                ""
            }
        );
    }
    println!("  queue on disk: {} MiB", queue.disk_space() / (1 << 20));
}

fn ledger_cycles(total: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let user = UserId::new(1);
    store
        .register(user, NewUser::default(), 1_000_000_000, 0)
        .unwrap();
    let start = Instant::now();
    for i in 0..total {
        let job = JobId::at(i + 1);
        store.hold(job, user, 30, b"", i as i64).unwrap();
        store.capture(job, i as i64).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ledger hold + capture (2 fsynced redb transactions): {:.0} pairs/s over {total}",
        total as f64 / secs
    );
    assert!(store.verify_ledger().unwrap().is_consistent());
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it quickly instead.
    let quick = !std::env::args().any(|a| a == "--bench");
    let total: u64 = std::env::var("QWENEDIT_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 100_000 });
    queue_cycles(total);
    ledger_cycles(if quick { 200 } else { 5_000 });
}
