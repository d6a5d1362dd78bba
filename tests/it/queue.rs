//! The durable job queue: idempotent enqueue, leases and their expiry, fairness between users,
//! retries with backoff, dead letters, cancellation, recovery after a reopen, history retention.
//! Time is injected (`now_ms`); nothing here sleeps.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use qwenedit::domain::{JobError, JobId, JobSpec, JobState, Lane, Points, UserId};
use qwenedit::queue::{
    Enqueued, FailOutcome, JobRecord, JobResult, LeasedJob, OpenReport, Queue, QueueConfig,
    QueueError,
};

/// A plausible "now" (Nov 2023), so job ids made from it look like real ULIDs.
const T0: i64 = 1_700_000_000_000;
const TTL: Duration = Duration::from_secs(60);

fn config() -> QueueConfig {
    QueueConfig {
        max_attempts: 3,
        backoff_base: Duration::from_secs(5),
        backoff_max: Duration::from_secs(60),
        history_limit: 1000,
        fsync: false,
    }
}

fn spec(user: i64) -> JobSpec {
    spec_in(user, Lane::Normal)
}

fn spec_in(user: i64, lane: Lane) -> JobSpec {
    JobSpec {
        user: UserId::new(user),
        chat: Some(user * 10),
        inputs: vec![format!("inputs/{user}.png")],
        preset: Some("anime".into()),
        prompt: Some("make it pop".into()),
        workflow: "qwen-image-edit-2511".into(),
        seed: 42,
        price: Points::new(30),
        lane,
    }
}

fn open(dir: &Path, config: QueueConfig, now_ms: i64) -> (Queue, OpenReport) {
    Queue::open(dir, config, now_ms).expect("open the queue")
}

/// Enqueues a new job created at `created_ms` (distinct times give ids in creation order).
fn enqueue(q: &Queue, spec: &JobSpec, created_ms: i64) -> JobId {
    let id = JobId::at(created_ms as u64);
    let outcome = q
        .enqueue(JobRecord::new(id, spec, created_ms), created_ms)
        .expect("enqueue");
    assert_eq!(outcome, Enqueued::New);
    id
}

fn lease(q: &Queue, backend: &str, now_ms: i64) -> LeasedJob {
    q.lease_next(backend, now_ms, TTL)
        .expect("lease_next")
        .expect("a job is ready")
}

fn result(name: &str) -> JobResult {
    JobResult {
        outputs: vec![format!("outputs/{name}.png")],
    }
}

fn state(q: &Queue, id: JobId) -> JobState {
    q.get(id).unwrap().expect("the job is known").state()
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

#[track_caller]
fn assert_stale<T: Debug>(r: Result<T, QueueError>, job: JobId) {
    match r {
        Err(QueueError::StaleLease(id)) => assert_eq!(id, job),
        other => panic!("expected StaleLease({job}), got {other:?}"),
    }
}

#[track_caller]
fn assert_not_cancellable(r: Result<JobRecord, QueueError>, job: JobId, expected: JobState) {
    match r {
        Err(QueueError::NotCancellable { job: id, state }) => {
            assert_eq!(id, job);
            assert_eq!(state, expected);
        }
        other => panic!("expected NotCancellable({job}, {expected:?}), got {other:?}"),
    }
}

#[track_caller]
fn expect_retry(outcome: FailOutcome) -> i64 {
    match outcome {
        FailOutcome::Retry { at_ms } => at_ms,
        FailOutcome::Final(r) => panic!("expected a retry, got final {:?}", r.state()),
    }
}

#[track_caller]
fn expect_final(outcome: FailOutcome) -> JobRecord {
    match outcome {
        FailOutcome::Final(r) => r,
        FailOutcome::Retry { at_ms } => panic!("expected a final outcome, got a retry at {at_ms}"),
    }
}

#[test]
fn enqueue_is_idempotent_by_job_id() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let id = enqueue(&q, &spec(1), T0);
    let original = q.get(id).unwrap().unwrap();

    // The same id again (even with another request body) changes nothing.
    let again = q
        .enqueue(JobRecord::new(id, &spec(2), T0 + 5), T0 + 5)
        .unwrap();
    assert_eq!(again, Enqueued::Existing(JobState::Queued));
    assert_eq!(q.get(id).unwrap().unwrap(), original);
    assert_eq!(q.active_jobs().len(), 1);
    assert_eq!(q.depth().normal, 1);
    assert_eq!(q.active_count(UserId::new(1)), 1);
    assert_eq!(q.active_count(UserId::new(2)), 0);
    assert_eq!(q.recent_for_user(UserId::new(1), 10).unwrap().len(), 1);
    assert!(q.recent_for_user(UserId::new(2), 10).unwrap().is_empty());

    // While it runs, and after it finished, a repeat reports the current state.
    let l = lease(&q, "gpu-a", T0 + 10);
    assert_eq!(l.id(), id);
    assert!(q.lease_next("gpu-b", T0 + 10, TTL).unwrap().is_none());
    let again = q
        .enqueue(JobRecord::new(id, &spec(1), T0 + 11), T0 + 11)
        .unwrap();
    assert_eq!(again, Enqueued::Existing(JobState::Running));
    assert!(q.lease_next("gpu-b", T0 + 12, TTL).unwrap().is_none());
    q.complete(&l, result("a"), T0 + 20).unwrap();
    let again = q
        .enqueue(JobRecord::new(id, &spec(1), T0 + 21), T0 + 21)
        .unwrap();
    assert_eq!(again, Enqueued::Existing(JobState::Succeeded));

    // Nothing was duplicated: no second run, one history entry, one record.
    assert!(q.lease_next("gpu-b", T0 + 22, TTL).unwrap().is_none());
    assert!(q.active_jobs().is_empty());
    assert_eq!(q.depth().waiting(), 0);
    let finished = q.recent_finished(10).unwrap();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].id, id);
    assert_eq!(finished[0].attempts, 1);
    assert_eq!(q.recent_for_user(UserId::new(1), 10).unwrap().len(), 1);
}

#[test]
fn expired_lease_is_re_leased_and_the_stale_holder_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let id = enqueue(&q, &spec(1), T0);
    let ttl = Duration::from_secs(30);

    let first = q.lease_next("gpu-a", T0, ttl).unwrap().unwrap();
    assert_eq!(first.id(), id);
    assert_eq!(first.record.attempts, 1);
    assert_eq!(first.record.state(), JobState::Running);
    assert_eq!(first.record.lease.as_ref().unwrap().expires_ms, T0 + 30_000);

    // Still held just before the expiry.
    assert!(q.lease_next("gpu-b", T0 + 29_999, ttl).unwrap().is_none());
    assert_eq!(state(&q, id), JobState::Running);

    // Past the expiry another backend gets the same job, with a new token.
    let second = q.lease_next("gpu-b", T0 + 30_001, ttl).unwrap().unwrap();
    assert_eq!(second.id(), id);
    assert_ne!(second.token, first.token);
    assert_eq!(second.record.attempts, 2);
    assert_eq!(second.record.backend.as_deref(), Some("gpu-b"));

    // The stale holder can do nothing with it.
    assert_stale(q.complete(&first, result("stale"), T0 + 30_002), id);
    assert_stale(
        q.fail(&first, &JobError::transient("boom"), T0 + 30_003),
        id,
    );
    assert_stale(q.fail(&first, &JobError::permanent("bad"), T0 + 30_004), id);
    assert_stale(q.extend(&first, T0 + 30_005, ttl), id);
    let current = q.get(id).unwrap().unwrap();
    assert_eq!(current.state(), JobState::Running);
    assert_eq!(current.attempts, 2);
    assert_eq!(current.lease_token(), Some(second.token));
    assert_eq!(current.result, None);

    // The new holder completes it; nobody can complete it again.
    let done = q.complete(&second, result("fresh"), T0 + 40_000).unwrap();
    assert_eq!(done.state(), JobState::Succeeded);
    assert_eq!(done.result, Some(result("fresh")));
    assert_eq!(done.finished_ms, Some(T0 + 40_000));
    assert_eq!(done.started_ms, Some(T0));
    assert_eq!(q.get(id).unwrap().unwrap(), done);
    assert_stale(q.complete(&second, result("twice"), T0 + 40_001), id);
    assert_stale(q.complete(&first, result("stale"), T0 + 40_002), id);
    assert!(q.lease_next("gpu-c", T0 + 100_000, ttl).unwrap().is_none());
}

#[test]
fn extend_keeps_a_lease_alive_past_its_original_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let id = enqueue(&q, &spec(1), T0);
    let ttl = Duration::from_secs(30);
    let holder = q.lease_next("gpu-a", T0, ttl).unwrap().unwrap();

    q.extend(&holder, T0 + 20_000, ttl).unwrap();
    let r = q.get(id).unwrap().unwrap();
    assert_eq!(r.lease.as_ref().unwrap().expires_ms, T0 + 50_000);

    // Past the original expiry (T0 + 30s) the job is still held.
    assert!(q.lease_next("gpu-b", T0 + 40_000, ttl).unwrap().is_none());
    assert_eq!(q.expire_leases(T0 + 40_000).unwrap(), 0);
    assert_eq!(state(&q, id), JobState::Running);
    assert_eq!(q.depth().running, 1);

    q.extend(&holder, T0 + 45_000, ttl).unwrap();
    assert!(q.lease_next("gpu-b", T0 + 74_999, ttl).unwrap().is_none());
    assert_eq!(state(&q, id), JobState::Running);

    // Not extended again: it expires at the extended time, and the holder lost it.
    let other = q.lease_next("gpu-b", T0 + 75_000, ttl).unwrap().unwrap();
    assert_eq!(other.id(), id);
    assert_eq!(other.record.attempts, 2);
    assert_stale(q.extend(&holder, T0 + 75_001, ttl), id);
    assert_stale(q.complete(&holder, result("late"), T0 + 75_002), id);
    q.complete(&other, result("b"), T0 + 80_000).unwrap();
    assert_eq!(state(&q, id), JobState::Succeeded);
}

#[test]
fn extended_holder_completes_after_the_original_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let id = enqueue(&q, &spec(1), T0);
    let ttl = Duration::from_secs(30);
    let holder = q.lease_next("gpu-a", T0, ttl).unwrap().unwrap();
    q.extend(&holder, T0 + 25_000, ttl).unwrap();
    assert!(q.lease_next("gpu-b", T0 + 35_000, ttl).unwrap().is_none());
    let done = q.complete(&holder, result("a"), T0 + 50_000).unwrap();
    assert_eq!(done.id, id);
    assert_eq!(done.state(), JobState::Succeeded);
    assert_eq!(done.attempts, 1);
}

/// Leases everything ready, checking before each lease that `position()` of every waiting job
/// is its index in the order still to come.
fn drain_checking_positions(q: &Queue, expected: &[JobId], now_ms: i64) -> Vec<JobId> {
    let mut order = Vec::new();
    for step in 0..expected.len() {
        for (i, id) in expected[step..].iter().enumerate() {
            assert_eq!(
                q.position(*id),
                Some(i),
                "position of job #{} before lease #{step}",
                step + i
            );
        }
        let l = lease(q, "gpu", now_ms);
        assert_eq!(q.position(l.id()), None, "a running job has no position");
        order.push(l.id());
    }
    assert!(q.lease_next("gpu", now_ms, TTL).unwrap().is_none());
    order
}

#[test]
fn fairness_round_robin_between_users_fifo_within_and_priority_first() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let mut t = T0;
    let mut a = Vec::new();
    for _ in 0..10 {
        t += 1;
        a.push(enqueue(&q, &spec(1), t));
    }
    t += 1;
    let b1 = enqueue(&q, &spec(2), t);
    t += 1;
    let c1 = enqueue(&q, &spec(3), t);

    let mut expected = vec![a[0], b1, c1];
    expected.extend_from_slice(&a[1..]);
    for (i, id) in expected.iter().enumerate() {
        assert_eq!(q.position(*id), Some(i), "position of job #{i}");
    }

    // A priority job, enqueued last by the user at the end of the ring, goes first.
    t += 1;
    let p = enqueue(&q, &spec_in(3, Lane::Priority), t);
    assert_eq!(q.position(p), Some(0));
    expected.insert(0, p);
    assert_eq!(q.depth().priority, 1);
    assert_eq!(q.depth().normal, 12);

    let order = drain_checking_positions(&q, &expected, t + 1);
    assert_eq!(order, expected);
    assert_eq!(q.position(JobId::at(1)), None);
}

#[test]
fn fairness_a_late_user_gets_a_turn_in_the_next_round() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let mut t = T0;
    let mut a = Vec::new();
    for _ in 0..5 {
        t += 1;
        a.push(enqueue(&q, &spec(1), t));
    }
    t += 1;
    let b1 = enqueue(&q, &spec(2), t);
    assert_eq!(lease(&q, "gpu", t).id(), a[0]);
    assert_eq!(lease(&q, "gpu", t).id(), b1);
    // A has the floor alone; D arrives and is served after A's next job.
    t += 1;
    let d1 = enqueue(&q, &spec(4), t);
    t += 1;
    let d2 = enqueue(&q, &spec(4), t);
    let expected = vec![a[1], d1, a[2], d2, a[3], a[4]];
    let order = drain_checking_positions(&q, &expected, t + 1);
    assert_eq!(order, expected);
}

#[test]
fn fairness_priority_lane_is_round_robin_too() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let n1 = enqueue(&q, &spec(1), T0 + 1);
    let p1 = enqueue(&q, &spec_in(1, Lane::Priority), T0 + 2);
    let p2 = enqueue(&q, &spec_in(1, Lane::Priority), T0 + 3);
    let q1 = enqueue(&q, &spec_in(2, Lane::Priority), T0 + 4);
    let n2 = enqueue(&q, &spec(2), T0 + 5);
    let expected = vec![p1, q1, p2, n1, n2];
    let order = drain_checking_positions(&q, &expected, T0 + 10);
    assert_eq!(order, expected);
}

#[test]
fn transient_failure_retries_not_before_the_backoff() {
    let cfg = config();
    assert_eq!(cfg.backoff(1), Duration::from_secs(5));
    assert_eq!(cfg.backoff(2), Duration::from_secs(10));
    assert_eq!(cfg.backoff(3), Duration::from_secs(20));
    assert_eq!(cfg.backoff(5), Duration::from_secs(60), "capped");
    assert_eq!(
        cfg.backoff(40),
        Duration::from_secs(60),
        "capped, no overflow"
    );

    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), cfg.clone(), T0);
    let x = enqueue(&q, &spec(1), T0);

    let l1 = lease(&q, "gpu-a", T0 + 100);
    assert_eq!(l1.record.attempts, 1);
    let now = T0 + 1_000;
    let at = expect_retry(
        q.fail(&l1, &JobError::transient("comfy timed out"), now)
            .unwrap(),
    );
    assert_eq!(at, now + ms(cfg.backoff(1)));
    let r = q.get(x).unwrap().unwrap();
    assert_eq!(r.state(), JobState::Queued);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.not_before_ms, at);
    assert_eq!(r.lease, None);
    assert_eq!(r.last_error.as_deref(), Some("comfy timed out"));
    assert_eq!(q.depth().delayed, 1);
    assert_stale(q.complete(&l1, result("x"), now + 1), x);

    // A job enqueued meanwhile is not held up by the waiting retry.
    let y = enqueue(&q, &spec(2), now + 10);
    assert_eq!(lease(&q, "gpu-a", now + 20).id(), y);
    assert!(q.lease_next("gpu-a", at - 1, TTL).unwrap().is_none());

    let l2 = lease(&q, "gpu-b", at);
    assert_eq!(l2.id(), x);
    assert_eq!(l2.record.attempts, 2);
    assert_eq!(q.depth().delayed, 0);

    let now = at + 500;
    let at = expect_retry(q.fail(&l2, &JobError::transient("again"), now).unwrap());
    assert_eq!(at, now + ms(cfg.backoff(2)));
    assert_eq!(at - now, 10_000, "the backoff doubles");
    assert!(q.lease_next("gpu-a", at - 1, TTL).unwrap().is_none());
    let l3 = lease(&q, "gpu-a", at);
    assert_eq!(l3.id(), x);
    assert_eq!(l3.record.attempts, 3);
    let done = q.complete(&l3, result("x"), at + 1).unwrap();
    assert_eq!(done.state(), JobState::Succeeded);
    assert_eq!(done.attempts, 3);
}

#[test]
fn dead_letter_after_max_attempts_of_transient_failures() {
    let cfg = config();
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), cfg.clone(), T0);
    let x = enqueue(&q, &spec(1), T0);
    let mut now = T0;
    for attempt in 1..=cfg.max_attempts {
        let l = lease(&q, "gpu", now);
        assert_eq!(l.id(), x);
        assert_eq!(l.record.attempts, attempt);
        let outcome = q
            .fail(&l, &JobError::transient(format!("try {attempt}")), now + 1)
            .unwrap();
        if attempt < cfg.max_attempts {
            now = expect_retry(outcome);
        } else {
            let r = expect_final(outcome);
            assert_eq!(r.id, x);
            assert_eq!(r.state(), JobState::DeadLettered);
            assert_eq!(r.attempts, cfg.max_attempts);
            assert_eq!(r.finished_ms, Some(now + 1));
            assert_eq!(r.last_error.as_deref(), Some("try 3"));
            assert_eq!(r.lease, None);
        }
    }
    assert_eq!(state(&q, x), JobState::DeadLettered);
    assert!(q.lease_next("gpu", now + 3_600_000, TTL).unwrap().is_none());
    assert_eq!(q.depth().waiting(), 0);
    assert_eq!(q.depth().running, 0);
    assert_eq!(q.active_count(UserId::new(1)), 0);
    assert_eq!(q.recent_finished(10).unwrap()[0].id, x);
}

#[test]
fn permanent_error_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let x = enqueue(&q, &spec(1), T0);
    let l = lease(&q, "gpu", T0 + 1);
    let r = expect_final(
        q.fail(&l, &JobError::permanent("workflow rejected"), T0 + 2)
            .unwrap(),
    );
    assert_eq!(r.id, x);
    assert_eq!(r.state(), JobState::Failed);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.finished_ms, Some(T0 + 2));
    assert_eq!(r.last_error.as_deref(), Some("workflow rejected"));
    assert_eq!(state(&q, x), JobState::Failed);
    assert!(q.lease_next("gpu", T0 + 3_600_000, TTL).unwrap().is_none());
    assert_eq!(q.depth().delayed, 0);
}

#[test]
fn expired_leases_use_up_attempts_and_end_dead_lettered() {
    let cfg = config();
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), cfg.clone(), T0);
    let x = enqueue(&q, &spec(1), T0);
    let ttl = Duration::from_secs(10);
    let mut now = T0;
    for attempt in 1..=cfg.max_attempts {
        let l = q.lease_next("gpu", now, ttl).unwrap().unwrap();
        assert_eq!(l.id(), x);
        assert_eq!(l.record.attempts, attempt);
        now += 10_000; // the worker never comes back
    }
    assert_eq!(q.expire_leases(now).unwrap(), 1);
    let r = q.get(x).unwrap().unwrap();
    assert_eq!(r.state(), JobState::DeadLettered);
    assert_eq!(r.attempts, cfg.max_attempts);
    assert!(q.lease_next("gpu", now + 1, ttl).unwrap().is_none());
}

#[test]
fn cancel_only_a_queued_job() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    // One user each, so they are leased in this order.
    let running = enqueue(&q, &spec(1), T0 + 1);
    let finished = enqueue(&q, &spec(2), T0 + 2);
    let retrying = enqueue(&q, &spec(3), T0 + 3);
    let queued = enqueue(&q, &spec(4), T0 + 4);

    let run_lease = lease(&q, "gpu", T0 + 10);
    assert_eq!(run_lease.id(), running);
    let fin_lease = lease(&q, "gpu", T0 + 10);
    assert_eq!(fin_lease.id(), finished);
    q.complete(&fin_lease, result("f"), T0 + 11).unwrap();
    let retry_lease = lease(&q, "gpu", T0 + 12);
    assert_eq!(retry_lease.id(), retrying);
    let at = expect_retry(
        q.fail(&retry_lease, &JobError::transient("busy"), T0 + 13)
            .unwrap(),
    );

    // Queued -> Cancelled.
    assert_eq!(q.position(queued), Some(0));
    let r = q.cancel(queued, T0 + 20).unwrap();
    assert_eq!(r.id, queued);
    assert_eq!(r.state(), JobState::Cancelled);
    assert_eq!(r.finished_ms, Some(T0 + 20));
    assert_eq!(state(&q, queued), JobState::Cancelled);
    assert_eq!(q.position(queued), None);
    assert_not_cancellable(q.cancel(queued, T0 + 21), queued, JobState::Cancelled);

    // A retry waiting for its backoff is queued too, and does not come back.
    let r = q.cancel(retrying, T0 + 22).unwrap();
    assert_eq!(r.state(), JobState::Cancelled);
    assert_eq!(q.depth().delayed, 0);
    assert!(q.lease_next("gpu", at + 1, TTL).unwrap().is_none());

    // Running and finished jobs cannot be cancelled; nothing changes.
    assert_not_cancellable(q.cancel(running, T0 + 23), running, JobState::Running);
    assert_eq!(state(&q, running), JobState::Running);
    assert_not_cancellable(q.cancel(finished, T0 + 24), finished, JobState::Succeeded);
    assert_eq!(state(&q, finished), JobState::Succeeded);
    q.complete(&run_lease, result("r"), T0 + 25).unwrap();
    assert_not_cancellable(q.cancel(running, T0 + 26), running, JobState::Succeeded);

    let unknown = JobId::at(T0 as u64 + 99);
    match q.cancel(unknown, T0 + 27) {
        Err(QueueError::UnknownJob(id)) => assert_eq!(id, unknown),
        other => panic!("expected UnknownJob, got {other:?}"),
    }
    assert!(q.active_jobs().is_empty());
}

#[test]
fn reopen_recovers_every_job_and_returns_leases() {
    let dir = tempfile::tempdir().unwrap();
    let (q, report) = open(dir.path(), config(), T0);
    assert_eq!(report, OpenReport::default());
    let specs = [
        spec(1),
        spec(1),
        spec(2),
        spec_in(3, Lane::Priority),
        spec(2),
        spec(3),
    ];
    let ids: Vec<JobId> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| enqueue(&q, s, T0 + i as i64))
        .collect();

    // The priority job first; complete it. Then lease one and keep it leased.
    let done = lease(&q, "gpu", T0 + 10);
    assert_eq!(done.id(), ids[3]);
    let done = q.complete(&done, result("p"), T0 + 11).unwrap();
    let held = lease(&q, "gpu", T0 + 12);
    assert_eq!(held.id(), ids[0]);
    let cancelled = q.cancel(ids[5], T0 + 13).unwrap();
    let before: HashMap<JobId, JobRecord> =
        q.active_jobs().into_iter().map(|r| (r.id, r)).collect();
    assert_eq!(before.len(), 4);
    drop(q);

    let now = T0 + 1_000;
    let (q, report) = open(dir.path(), config(), now);
    assert_eq!(
        report,
        OpenReport {
            active: 4,
            finished: 2,
            returned: 1,
            dead_lettered: 0,
        }
    );
    // Every queued job is there unchanged; the leased one is queued again, attempts kept.
    let after = q.active_jobs();
    assert_eq!(after.len(), 4);
    for r in &after {
        let old = &before[&r.id];
        assert_eq!(r.spec(), old.spec());
        assert_eq!(r.attempts, old.attempts);
        assert_eq!(r.created_ms, old.created_ms);
        assert_eq!(r.state(), JobState::Queued);
        assert_eq!(r.lease, None);
    }
    let returned = q.get(held.id()).unwrap().unwrap();
    assert_eq!(returned.state(), JobState::Queued);
    assert_eq!(returned.attempts, 1);
    assert_eq!(returned.spec(), specs[0]);
    // Finished jobs stay readable.
    assert_eq!(q.get(done.id).unwrap().unwrap(), done);
    assert_eq!(q.get(cancelled.id).unwrap().unwrap(), cancelled);
    assert_eq!(q.get(ids[3]).unwrap().unwrap().spec(), specs[3]);
    // Idempotency survives the reopen.
    for (i, id) in ids.iter().enumerate() {
        let again = q.enqueue(JobRecord::new(*id, &specs[i], now), now).unwrap();
        assert!(
            matches!(again, Enqueued::Existing(_)),
            "job #{i}: {again:?}"
        );
    }
    // The old process's lease is worthless now.
    assert_stale(q.complete(&held, result("old"), now), held.id());
    assert_eq!(q.depth().normal, 4);
    assert_eq!(q.depth().running, 0);
    assert_eq!(q.active_count(UserId::new(1)), 2);
    assert_eq!(q.active_count(UserId::new(2)), 2);
    assert_eq!(q.active_count(UserId::new(3)), 0);

    // All four run, once each; the returned one counts its second attempt.
    let mut seen = HashSet::new();
    while let Some(l) = q.lease_next("gpu", now + 1, TTL).unwrap() {
        assert!(seen.insert(l.id()));
        assert_eq!(l.record.attempts, if l.id() == held.id() { 2 } else { 1 });
        q.complete(&l, result("x"), now + 2).unwrap();
    }
    let expected: HashSet<JobId> = [ids[0], ids[1], ids[2], ids[4]].into();
    assert_eq!(seen, expected);
    let u1: Vec<JobId> = q
        .recent_for_user(UserId::new(1), 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(u1, vec![ids[1], ids[0]]);
}

#[test]
fn a_job_that_crashes_the_process_every_time_is_dead_lettered_on_open() {
    let cfg = config();
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), cfg.clone(), T0);
    let x = enqueue(&q, &spec(1), T0);
    let other = enqueue(&q, &spec(2), T0 + 1);
    let mut q = q;
    let mut now = T0;
    for attempt in 1..=cfg.max_attempts {
        let l = lease(&q, "gpu", now);
        assert_eq!(l.id(), x);
        assert_eq!(l.record.attempts, attempt);
        // The process dies while the job runs.
        drop(q);
        now += 60_000;
        let (reopened, report) = open(dir.path(), cfg.clone(), now);
        q = reopened;
        if attempt < cfg.max_attempts {
            assert_eq!(report.returned, 1);
            assert_eq!(report.dead_lettered, 0);
            assert_eq!(report.active, 2);
            let r = q.get(x).unwrap().unwrap();
            assert_eq!(r.state(), JobState::Queued);
            assert_eq!(r.attempts, attempt);
            // Put x first again: it is the oldest, and the other job is still queued.
            assert_eq!(q.position(x), Some(0));
        } else {
            assert_eq!(report.dead_lettered, 1);
            assert_eq!(report.active, 1);
            assert_eq!(report.finished, 1);
        }
    }
    let r = q.get(x).unwrap().unwrap();
    assert_eq!(r.state(), JobState::DeadLettered);
    assert_eq!(r.attempts, cfg.max_attempts);
    assert_eq!(r.finished_ms, Some(now));
    assert_eq!(r.lease, None);
    assert_eq!(q.recent_finished(10).unwrap()[0].id, x);
    assert_eq!(lease(&q, "gpu", now).id(), other);
    assert!(q.lease_next("gpu", now, TTL).unwrap().is_none());

    // And it stays dead-lettered through another reopen.
    drop(q);
    let (q, report) = open(dir.path(), cfg, now + 1);
    assert_eq!(report.dead_lettered, 0);
    assert_eq!(state(&q, x), JobState::DeadLettered);
}

#[test]
fn history_keeps_only_the_newest_finished_jobs() {
    let cfg = QueueConfig {
        history_limit: 5,
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), cfg.clone(), T0);
    let mut ids = Vec::new();
    let mut t = T0;
    for i in 0..12 {
        t += 1;
        let id = enqueue(&q, &spec(1 + i % 2), t);
        let l = lease(&q, "gpu", t);
        assert_eq!(l.id(), id);
        q.complete(&l, result(&i.to_string()), t).unwrap();
        ids.push(id);
    }
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();
    let kept: Vec<JobId> = q
        .recent_finished(100)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(kept, newest_first[..5]);
    for id in &ids[..7] {
        assert_eq!(q.get(*id).unwrap(), None, "trimmed job {id}");
    }
    for id in &ids[7..] {
        assert_eq!(state(&q, *id), JobState::Succeeded);
    }
    let limited: Vec<JobId> = q.recent_finished(2).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(limited, newest_first[..2]);

    // Per user, newest first, only what is retained, plus active jobs.
    let user_ids = |q: &Queue, user: i64, limit: usize| -> Vec<JobId> {
        q.recent_for_user(UserId::new(user), limit)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    // Jobs 7..12: user 2 has 7, 9, 11 and user 1 has 8, 10.
    assert_eq!(user_ids(&q, 2, 10), vec![ids[11], ids[9], ids[7]]);
    assert_eq!(user_ids(&q, 1, 10), vec![ids[10], ids[8]]);
    t += 1;
    let active = enqueue(&q, &spec(1), t);
    assert_eq!(user_ids(&q, 1, 10), vec![active, ids[10], ids[8]]);
    assert_eq!(user_ids(&q, 1, 2), vec![active, ids[10]]);
    assert!(user_ids(&q, 3, 10).is_empty());

    // The same after a reopen; the next finished job trims the oldest retained one.
    drop(q);
    let (q, report) = open(dir.path(), cfg, t + 1);
    assert_eq!(report.finished, 5);
    let kept_after: Vec<JobId> = q
        .recent_finished(100)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(kept_after, kept);
    assert_eq!(user_ids(&q, 1, 10), vec![active, ids[10], ids[8]]);
    let l = lease(&q, "gpu", t + 2);
    q.complete(&l, result("last"), t + 2).unwrap();
    assert_eq!(q.get(ids[7]).unwrap(), None);
    let kept: Vec<JobId> = q
        .recent_finished(100)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(kept, vec![active, ids[11], ids[10], ids[9], ids[8]]);
    assert_eq!(user_ids(&q, 2, 10), vec![ids[11], ids[9]]);
}

/// The retained history is ordered by when jobs finished, not when they were created, and a
/// reopen must not change that order.
#[test]
fn history_order_by_finish_time_survives_a_reopen() {
    let cfg = QueueConfig {
        history_limit: 3,
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), cfg.clone(), T0);
    // The oldest job fails once and finishes last.
    let old = enqueue(&q, &spec(1), T0 + 1);
    let l = lease(&q, "gpu", T0 + 2);
    let at = expect_retry(q.fail(&l, &JobError::transient("busy"), T0 + 3).unwrap());
    let b = enqueue(&q, &spec(2), T0 + 4);
    let c = enqueue(&q, &spec(3), T0 + 5);
    for _ in 0..2 {
        let l = lease(&q, "gpu", T0 + 6);
        q.complete(&l, result("x"), T0 + 7).unwrap();
    }
    let l = lease(&q, "gpu", at);
    assert_eq!(l.id(), old);
    q.complete(&l, result("old"), at).unwrap();
    let ids = |q: &Queue| -> Vec<JobId> {
        q.recent_finished(10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    let before = ids(&q);
    assert_eq!(before, vec![old, c, b], "newest finished first");
    drop(q);

    let (q, _) = open(dir.path(), cfg, at + 1);
    assert_eq!(ids(&q), before, "recent_finished order after a reopen");
    // The next finished job must trim the job that finished first, not `old`.
    let d = enqueue(&q, &spec(4), at + 2);
    let l = lease(&q, "gpu", at + 3);
    assert_eq!(l.id(), d);
    q.complete(&l, result("d"), at + 4).unwrap();
    assert!(
        q.get(old).unwrap().is_some(),
        "the most recently finished job (before d) was trimmed"
    );
    assert_eq!(ids(&q)[..2], [d, old]);
}

#[test]
fn depth_and_active_count_track_queued_and_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path(), config(), T0);
    let (u1, u2, u3) = (UserId::new(1), UserId::new(2), UserId::new(3));
    assert_eq!(q.depth(), Default::default());
    assert_eq!(q.active_count(u1), 0);

    let a1 = enqueue(&q, &spec(1), T0 + 1);
    let a2 = enqueue(&q, &spec(1), T0 + 2);
    let a3 = enqueue(&q, &spec(1), T0 + 3);
    let b1 = enqueue(&q, &spec(2), T0 + 4);
    let bp = enqueue(&q, &spec_in(2, Lane::Priority), T0 + 5);
    let d = q.depth();
    assert_eq!(
        (d.priority, d.normal, d.delayed, d.running),
        (1, 4, 0, 0),
        "{d:?}"
    );
    assert_eq!(d.waiting(), 5);
    assert_eq!(
        (q.active_count(u1), q.active_count(u2), q.active_count(u3)),
        (3, 2, 0)
    );

    let lp = lease(&q, "gpu", T0 + 10);
    assert_eq!(lp.id(), bp);
    let d = q.depth();
    assert_eq!(
        (d.priority, d.normal, d.delayed, d.running),
        (1 - 1, 4, 0, 1)
    );
    assert_eq!(q.active_count(u2), 2, "running jobs count as active");

    let la = lease(&q, "gpu", T0 + 10);
    assert_eq!(la.id(), a1);
    let d = q.depth();
    assert_eq!((d.priority, d.normal, d.delayed, d.running), (0, 3, 0, 2));

    let at = expect_retry(q.fail(&la, &JobError::transient("x"), T0 + 11).unwrap());
    let d = q.depth();
    assert_eq!((d.priority, d.normal, d.delayed, d.running), (0, 3, 1, 1));
    assert_eq!(d.waiting(), 4);
    assert_eq!(q.active_count(u1), 3, "a waiting retry is still active");

    q.complete(&lp, result("p"), T0 + 12).unwrap();
    let d = q.depth();
    assert_eq!((d.priority, d.normal, d.delayed, d.running), (0, 3, 1, 0));
    assert_eq!(q.active_count(u2), 1);

    q.cancel(a3, T0 + 13).unwrap();
    assert_eq!(q.depth().normal, 2);
    assert_eq!(q.active_count(u1), 2);

    // After the backoff the retry is back in line: user 2 has the turn, then a1 before a2.
    let l = lease(&q, "gpu", at);
    assert_eq!(l.id(), b1);
    let d = q.depth();
    assert_eq!((d.priority, d.normal, d.delayed, d.running), (0, 2, 0, 1));
    q.complete(&l, result("b1"), at).unwrap();
    assert_eq!(q.position(a1), Some(0));
    assert_eq!(q.position(a2), Some(1));
    let l = lease(&q, "gpu", at);
    assert_eq!(l.id(), a1);
    assert_eq!(l.record.attempts, 2);
    assert_eq!(lease(&q, "gpu", at).id(), a2);
    let d = q.depth();
    assert_eq!((d.priority, d.normal, d.delayed, d.running), (0, 0, 0, 2));
    assert_eq!(d.waiting(), 0);
    assert_eq!((q.active_count(u1), q.active_count(u2)), (2, 0));
    q.complete(&l, result("a1"), at + 1).unwrap();
    assert_eq!(q.active_count(u1), 1);
    assert_eq!(q.depth().running, 1);
}

#[test]
fn two_thousand_jobs_from_fifty_users_survive_a_reopen_without_loss_or_duplicates() {
    const JOBS: usize = 2_000;
    const USERS: usize = 50;
    let cfg = QueueConfig {
        history_limit: 10_000,
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), cfg.clone(), T0);
    let mut now = T0;
    let mut owner: HashMap<JobId, UserId> = HashMap::new();
    let mut completed: HashSet<JobId> = HashSet::new();
    let mut completions = 0usize;
    let mut failed_once: HashSet<JobId> = HashSet::new();
    let mut leases = 0usize;

    // One step of a worker: lease, then every 37th lease fails transiently (once per job).
    let mut work = |q: &Queue,
                    now: i64,
                    completed: &mut HashSet<JobId>,
                    completions: &mut usize,
                    failed_once: &mut HashSet<JobId>|
     -> bool {
        let Some(l) = q.lease_next("gpu", now, TTL).unwrap() else {
            return false;
        };
        leases += 1;
        if leases.is_multiple_of(37) && failed_once.insert(l.id()) {
            expect_retry(q.fail(&l, &JobError::transient("flaky"), now).unwrap());
        } else {
            let r = q.complete(&l, result("ok"), now).unwrap();
            assert_eq!(r.state(), JobState::Succeeded);
            assert!(completed.insert(l.id()), "job {} completed twice", l.id());
            *completions += 1;
        }
        true
    };

    let mut held: Vec<LeasedJob> = Vec::new();
    for i in 0..JOBS {
        now += 10;
        if i == JOBS / 2 {
            // Leave a few jobs leased, then the process goes away.
            for _ in 0..7 {
                held.push(lease(&q, "gpu-old", now));
            }
            let active_before = q.active_jobs().len();
            drop(q);
            let (reopened, report) = open(dir.path(), cfg.clone(), now);
            q = reopened;
            assert_eq!(report.returned, held.len());
            assert_eq!(report.dead_lettered, 0);
            assert_eq!(report.active, active_before);
            assert_eq!(report.finished, completed.len());
            for h in &held {
                assert_stale(q.complete(h, result("old"), now), h.id());
                assert_eq!(state(&q, h.id()), JobState::Queued);
            }
        }
        let user = ((i * 7 + i / 13) % USERS) as i64;
        let id = enqueue(&q, &spec(user), now);
        owner.insert(id, UserId::new(user));
        if i % 4 != 0 {
            assert!(work(
                &q,
                now,
                &mut completed,
                &mut completions,
                &mut failed_once
            ));
        }
    }
    // Drain, moving the clock on when only retries wait.
    let mut idle = 0;
    while completed.len() < JOBS {
        now += 1;
        if work(&q, now, &mut completed, &mut completions, &mut failed_once) {
            idle = 0;
        } else {
            assert!(
                q.depth().delayed > 0,
                "jobs lost: {}",
                JOBS - completed.len()
            );
            now += ms(cfg.backoff_max);
            idle += 1;
            assert!(idle < 10, "the queue stalled");
        }
    }
    assert_eq!(completions, JOBS);
    assert!(q.lease_next("gpu", now + 3_600_000, TTL).unwrap().is_none());
    assert_eq!(q.depth(), Default::default());
    assert!(q.active_jobs().is_empty());
    assert!(!failed_once.is_empty());

    let held_ids: HashSet<JobId> = held.iter().map(|h| h.id()).collect();
    for (id, user) in &owner {
        let r = q.get(*id).unwrap().expect("every job is still known");
        assert_eq!(r.state(), JobState::Succeeded);
        assert_eq!(r.user(), *user);
        let expected_attempts =
            1 + u32::from(held_ids.contains(id)) + u32::from(failed_once.contains(id));
        assert_eq!(r.attempts, expected_attempts, "attempts of {id}");
    }
    let history = q.recent_finished(JOBS * 2).unwrap();
    assert_eq!(history.len(), JOBS);
    let unique: HashSet<JobId> = history.iter().map(|r| r.id).collect();
    assert_eq!(unique.len(), JOBS);
    for u in 0..USERS as i64 {
        let n = owner.values().filter(|x| x.get() == u).count();
        assert_eq!(
            q.recent_for_user(UserId::new(u), JOBS).unwrap().len(),
            n,
            "history of user {u}"
        );
        assert_eq!(q.active_count(UserId::new(u)), 0);
    }

    // And all of it again after one more reopen.
    drop(q);
    let (q, report) = open(dir.path(), cfg, now + 1);
    assert_eq!(
        report,
        OpenReport {
            active: 0,
            finished: JOBS,
            returned: 0,
            dead_lettered: 0,
        }
    );
    assert_eq!(q.recent_finished(JOBS * 2).unwrap().len(), JOBS);
}
