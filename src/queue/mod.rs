//! The durable job queue on fjall. Only this module knows fjall.
//!
//! Records live in two keyspaces: `active` (queued and running jobs) and `finished` (terminal
//! jobs, trimmed to `history_limit`), plus `by_user` (user ‖ job id) for "my recent edits".
//! The order of ready jobs is kept in memory (`sched`) and rebuilt on open, so dequeueing never
//! scans the store. Every write is an atomic fjall batch; transitions that must survive a power
//! loss (enqueue, terminal states) are fsynced after the in-memory lock is released, so
//! concurrent callers share one fsync. Leases are written to OS buffers only: they survive a
//! killed process (so a job that keeps crashing the worker runs out of attempts), and a power
//! loss at worst forgets one attempt count.

mod record;
mod sched;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

pub use record::{JobRecord, JobResult, Lease};

use crate::codec::{CodecError, decode, encode};
use crate::domain::{JobError, JobId, JobState, Lane, LeaseToken, UserId};
use sched::Sched;

/// The folder of the fjall database inside the data dir.
pub const DIR_NAME: &str = "queue";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is in use by another process (is `qwenedit serve` running?)")]
    Locked,
    #[error("queue storage error: {0}")]
    Storage(fjall::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the lease of job {0} is no longer valid")]
    StaleLease(JobId),
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    #[error("job {job} is {} and cannot be cancelled", state.as_str())]
    NotCancellable { job: JobId, state: JobState },
}

impl From<fjall::Error> for QueueError {
    fn from(e: fjall::Error) -> Self {
        match e {
            fjall::Error::Locked => QueueError::Locked,
            other => QueueError::Storage(other),
        }
    }
}

#[derive(Clone, Debug)]
pub struct QueueConfig {
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub history_limit: usize,
    /// fsync durable transitions (off: OS buffers only; survives a kill, not a power loss).
    pub fsync: bool,
}

impl QueueConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            max_attempts: c.queue.max_attempts,
            backoff_base: c.queue.backoff_base,
            backoff_max: c.queue.backoff_max,
            history_limit: c.queue.history_limit,
            fsync: c.storage.queue_fsync,
        }
    }

    /// The wait before attempt `attempts + 1`: doubling from `backoff_base`, capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// A job leased to a worker. Only the holder of the current token may finish it.
#[derive(Clone, Debug)]
pub struct LeasedJob {
    pub record: JobRecord,
    pub token: LeaseToken,
}

impl LeasedJob {
    pub fn id(&self) -> JobId {
        self.record.id
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueued {
    New,
    /// A job with this id exists already (a repeated request); nothing changed.
    Existing(JobState),
}

// Returned once per failed attempt: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum FailOutcome {
    /// It will run again, not before `at_ms`.
    Retry { at_ms: i64 },
    /// Final: `Failed` or `DeadLettered`.
    Final(JobRecord),
}

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub active: usize,
    pub finished: usize,
    /// Leases of the previous process whose jobs went back to the queue.
    pub returned: usize,
    /// Jobs whose attempts ran out while leased (they crashed the worker every time).
    pub dead_lettered: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    pub priority: usize,
    pub normal: usize,
    pub delayed: usize,
    pub running: usize,
}

impl Depth {
    pub fn waiting(&self) -> usize {
        self.priority + self.normal + self.delayed
    }
}

struct State {
    /// Every queued or running job.
    jobs: HashMap<JobId, JobRecord>,
    sched: Sched,
    /// Finished job ids, oldest first, for retention and "recent jobs".
    finished: VecDeque<JobId>,
}

struct Inner {
    db: Database,
    active: Keyspace,
    finished: Keyspace,
    by_user: Keyspace,
    state: Mutex<State>,
    config: QueueConfig,
}

/// A cheap-clone handle to the durable queue.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

fn user_key(user: UserId, job: JobId) -> [u8; 24] {
    let mut k = [0u8; 24];
    // Flip the sign bit so negative ids sort before positive ones.
    k[..8].copy_from_slice(&((user.get() as u64) ^ (1 << 63)).to_be_bytes());
    k[8..].copy_from_slice(&job.to_bytes());
    k
}

fn job_id_from_key(key: &[u8]) -> Option<JobId> {
    let bytes: [u8; 16] = key.get(key.len().checked_sub(16)?..)?.try_into().ok()?;
    Some(JobId::from_bytes(bytes))
}

impl Queue {
    /// Opens (or creates) the queue in `data_dir`. Every lease of a previous process goes back
    /// to the queue: the file lock proves that process is gone. A job whose attempts ran out
    /// while leased is dead-lettered.
    pub fn open(
        data_dir: &Path,
        config: QueueConfig,
        now_ms: i64,
    ) -> Result<(Self, OpenReport), QueueError> {
        let db = Database::builder(data_dir.join(DIR_NAME)).open()?;
        let active = db.keyspace("active", KeyspaceCreateOptions::default)?;
        let finished = db.keyspace("finished", KeyspaceCreateOptions::default)?;
        let by_user = db.keyspace("by_user", KeyspaceCreateOptions::default)?;
        let mut state = State {
            jobs: HashMap::new(),
            sched: Sched::default(),
            finished: VecDeque::new(),
        };
        // History is ordered by when jobs finished (keys are ids, i.e. creation order).
        let mut history = Vec::new();
        for kv in finished.iter() {
            let (_, value) = kv.into_inner()?;
            let record: JobRecord = decode(&value)?;
            history.push((record.finished_ms.unwrap_or(record.created_ms), record.id));
        }
        history.sort();
        state.finished.extend(history.into_iter().map(|(_, id)| id));
        let mut report = OpenReport::default();
        let mut batch = db.batch();
        let mut newly_finished = Vec::new();
        for kv in active.iter() {
            let (_, value) = kv.into_inner()?;
            let mut record: JobRecord = decode(&value)?;
            if record.state() == JobState::Running {
                record.lease = None;
                if record.attempts >= config.max_attempts {
                    record.set_state(JobState::DeadLettered);
                    record.finished_ms = Some(now_ms);
                    record.last_error = Some("the worker stopped during every attempt".to_string());
                    report.dead_lettered += 1;
                    batch.remove(&active, record.id.to_bytes());
                    batch.insert(&finished, record.id.to_bytes(), encode(&record));
                    newly_finished.push(record.id);
                    continue;
                }
                record.set_state(JobState::Queued);
                report.returned += 1;
                batch.insert(&active, record.id.to_bytes(), encode(&record));
            }
            state.sched.push(
                record.id,
                record.user(),
                record.lane(),
                record.not_before_ms,
                now_ms,
            );
            state.jobs.insert(record.id, record);
        }
        batch = batch.durability(Some(PersistMode::SyncData));
        batch.commit()?;
        state.finished.extend(newly_finished);
        report.active = state.jobs.len();
        report.finished = state.finished.len();
        let queue = Self {
            inner: Arc::new(Inner {
                db,
                active,
                finished,
                by_user,
                state: Mutex::new(state),
                config,
            }),
        };
        Ok((queue, report))
    }

    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (writes happen before the
        // in-memory change), so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// fsyncs the journal, outside the state lock so concurrent writers share the cost.
    fn sync(&self) -> Result<(), QueueError> {
        if self.inner.config.fsync {
            self.inner.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn batch(&self) -> fjall::OwnedWriteBatch {
        self.inner.db.batch().durability(Some(PersistMode::Buffer))
    }

    /// Adds a job; idempotent by job id. Durable when it returns.
    pub fn enqueue(&self, record: JobRecord, now_ms: i64) -> Result<Enqueued, QueueError> {
        {
            let mut st = self.lock();
            if let Some(existing) = st.jobs.get(&record.id) {
                return Ok(Enqueued::Existing(existing.state()));
            }
            if let Some(bytes) = self.inner.finished.get(record.id.to_bytes())? {
                let existing: JobRecord = decode(&bytes)?;
                return Ok(Enqueued::Existing(existing.state()));
            }
            let mut batch = self.batch();
            batch.insert(&self.inner.active, record.id.to_bytes(), encode(&record));
            batch.insert(&self.inner.by_user, user_key(record.user(), record.id), []);
            batch.commit()?;
            st.sched.push(
                record.id,
                record.user(),
                record.lane(),
                record.not_before_ms,
                now_ms,
            );
            st.jobs.insert(record.id, record);
        }
        self.sync()?;
        Ok(Enqueued::New)
    }

    /// Returns expired leases to the queue (or dead-letters them when out of attempts).
    /// Called by `lease_next`; a periodic tick may call it too.
    pub fn expire_leases(&self, now_ms: i64) -> Result<usize, QueueError> {
        let mut finished_any = false;
        let n = {
            let mut st = self.lock();
            let expired: Vec<JobId> = st
                .jobs
                .values()
                .filter(|r| r.lease.as_ref().is_some_and(|l| l.expires_ms <= now_ms))
                .map(|r| r.id)
                .collect();
            for id in &expired {
                let Some(mut record) = st.jobs.get(id).cloned() else {
                    continue;
                };
                record.lease = None;
                record.last_error = Some("the lease expired (worker lost or stuck)".into());
                if record.attempts >= self.inner.config.max_attempts {
                    record.set_state(JobState::DeadLettered);
                    record.finished_ms = Some(now_ms);
                    self.finish_locked(&mut st, record)?;
                    finished_any = true;
                } else {
                    record.set_state(JobState::Queued);
                    let mut batch = self.batch();
                    batch.insert(&self.inner.active, record.id.to_bytes(), encode(&record));
                    batch.commit()?;
                    st.sched
                        .push(record.id, record.user(), record.lane(), now_ms, now_ms);
                    st.jobs.insert(record.id, record);
                }
            }
            expired.len()
        };
        if finished_any {
            self.sync()?;
        }
        Ok(n)
    }

    /// Leases the next job for `backend` until `now + ttl`. The attempt counts from here.
    pub fn lease_next(
        &self,
        backend: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<Option<LeasedJob>, QueueError> {
        self.expire_leases(now_ms)?;
        let mut st = self.lock();
        let Some(id) = st.sched.pop(now_ms) else {
            return Ok(None);
        };
        let Some(mut record) = st.jobs.get(&id).cloned() else {
            return Ok(None);
        };
        let token = LeaseToken::random();
        record.set_state(JobState::Running);
        record.attempts += 1;
        record.lease = Some(Lease {
            token: token.raw(),
            backend: backend.to_string(),
            expires_ms: now_ms.saturating_add(ttl.as_millis() as i64),
        });
        record.backend = Some(backend.to_string());
        record.started_ms.get_or_insert(now_ms);
        let mut batch = self.batch();
        batch.insert(&self.inner.active, id.to_bytes(), encode(&record));
        if let Err(e) = batch.commit() {
            // Put it back where it was; nothing changed on disk.
            let old = &st.jobs[&id];
            let (user, lane, nb) = (old.user(), old.lane(), old.not_before_ms);
            st.sched.push(id, user, lane, nb, now_ms);
            return Err(e.into());
        }
        st.jobs.insert(id, record.clone());
        Ok(Some(LeasedJob { record, token }))
    }

    /// The current record of a leased job, if the lease is still the holder's.
    fn check_lease(st: &State, lease: &LeasedJob) -> Result<JobRecord, QueueError> {
        match st.jobs.get(&lease.id()) {
            Some(r) if r.state() == JobState::Running && r.lease_token() == Some(lease.token) => {
                Ok(r.clone())
            }
            _ => Err(QueueError::StaleLease(lease.id())),
        }
    }

    /// Keeps a running job's lease alive until `now + ttl`.
    pub fn extend(&self, lease: &LeasedJob, now_ms: i64, ttl: Duration) -> Result<(), QueueError> {
        let mut st = self.lock();
        let mut record = Self::check_lease(&st, lease)?;
        if let Some(l) = record.lease.as_mut() {
            l.expires_ms = now_ms.saturating_add(ttl.as_millis() as i64);
        }
        let mut batch = self.batch();
        batch.insert(&self.inner.active, record.id.to_bytes(), encode(&record));
        batch.commit()?;
        st.jobs.insert(record.id, record);
        Ok(())
    }

    /// Finishes a job successfully. Rejected when the lease is stale.
    pub fn complete(
        &self,
        lease: &LeasedJob,
        result: JobResult,
        now_ms: i64,
    ) -> Result<JobRecord, QueueError> {
        let record = {
            let mut st = self.lock();
            let mut record = Self::check_lease(&st, lease)?;
            record.set_state(JobState::Succeeded);
            record.lease = None;
            record.result = Some(result);
            record.finished_ms = Some(now_ms);
            self.finish_locked(&mut st, record.clone())?;
            record
        };
        self.sync()?;
        Ok(record)
    }

    /// Records a failed attempt: a transient error retries after a backoff while attempts
    /// remain, else the job ends `DeadLettered`; a permanent error ends it `Failed`.
    pub fn fail(
        &self,
        lease: &LeasedJob,
        error: &JobError,
        now_ms: i64,
    ) -> Result<FailOutcome, QueueError> {
        let outcome = {
            let mut st = self.lock();
            let mut record = Self::check_lease(&st, lease)?;
            record.lease = None;
            record.last_error = Some(error.message.clone());
            if error.transient && record.attempts < self.inner.config.max_attempts {
                let at_ms = now_ms
                    .saturating_add(self.inner.config.backoff(record.attempts).as_millis() as i64);
                record.set_state(JobState::Queued);
                record.not_before_ms = at_ms;
                let mut batch = self.batch();
                batch.insert(&self.inner.active, record.id.to_bytes(), encode(&record));
                batch.commit()?;
                st.sched
                    .push(record.id, record.user(), record.lane(), at_ms, now_ms);
                st.jobs.insert(record.id, record);
                return Ok(FailOutcome::Retry { at_ms });
            }
            record.set_state(if error.transient {
                JobState::DeadLettered
            } else {
                JobState::Failed
            });
            record.finished_ms = Some(now_ms);
            self.finish_locked(&mut st, record.clone())?;
            FailOutcome::Final(record)
        };
        self.sync()?;
        Ok(outcome)
    }

    /// Gives a leased job back without spending an attempt (its backend went away before the
    /// job could run). It is ready again at once.
    pub fn abandon(&self, lease: &LeasedJob, reason: &str, now_ms: i64) -> Result<(), QueueError> {
        let mut st = self.lock();
        let mut record = Self::check_lease(&st, lease)?;
        record.lease = None;
        record.attempts = record.attempts.saturating_sub(1);
        record.last_error = Some(reason.to_string());
        record.set_state(JobState::Queued);
        let mut batch = self.batch();
        batch.insert(&self.inner.active, record.id.to_bytes(), encode(&record));
        batch.commit()?;
        st.sched
            .push(record.id, record.user(), record.lane(), now_ms, now_ms);
        st.jobs.insert(record.id, record);
        Ok(())
    }

    /// Cancels a job that has not started.
    pub fn cancel(&self, job: JobId, now_ms: i64) -> Result<JobRecord, QueueError> {
        let record = {
            let mut st = self.lock();
            let Some(mut record) = st.jobs.get(&job).cloned() else {
                // Not active: finished (read without `get`, which would take the lock again)
                // or unknown.
                return match self.finished_record(job)? {
                    Some(r) => Err(QueueError::NotCancellable {
                        job,
                        state: r.state(),
                    }),
                    None => Err(QueueError::UnknownJob(job)),
                };
            };
            if record.state() != JobState::Queued {
                return Err(QueueError::NotCancellable {
                    job,
                    state: record.state(),
                });
            }
            record.set_state(JobState::Cancelled);
            record.finished_ms = Some(now_ms);
            self.finish_locked(&mut st, record.clone())?;
            record
        };
        self.sync()?;
        Ok(record)
    }

    /// Moves a job to `finished` (one batch), trims history, updates memory. Caller syncs.
    fn finish_locked(&self, st: &mut State, record: JobRecord) -> Result<(), QueueError> {
        let mut batch = self.batch();
        batch.remove(&self.inner.active, record.id.to_bytes());
        batch.insert(&self.inner.finished, record.id.to_bytes(), encode(&record));
        let mut trimmed = Vec::new();
        let limit = self.inner.config.history_limit;
        while st.finished.len() + 1 - trimmed.len() > limit.max(1) {
            let Some(&old) = st.finished.get(trimmed.len()) else {
                break;
            };
            if let Some(bytes) = self.inner.finished.get(old.to_bytes())? {
                let old_record: JobRecord = decode(&bytes)?;
                batch.remove(&self.inner.by_user, user_key(old_record.user(), old));
            }
            batch.remove(&self.inner.finished, old.to_bytes());
            trimmed.push(old);
        }
        batch.commit()?;
        st.finished.drain(..trimmed.len());
        st.finished.push_back(record.id);
        if let Some(old) = st.jobs.remove(&record.id) {
            st.sched.remove(record.id, old.user(), old.lane());
        }
        Ok(())
    }

    /// The record of any job still known (active or in the retained history).
    pub fn get(&self, job: JobId) -> Result<Option<JobRecord>, QueueError> {
        if let Some(r) = self.lock().jobs.get(&job) {
            return Ok(Some(r.clone()));
        }
        self.finished_record(job)
    }

    /// A job from the retained history; takes no lock.
    fn finished_record(&self, job: JobId) -> Result<Option<JobRecord>, QueueError> {
        match self.inner.finished.get(job.to_bytes())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// How many jobs run before this one (0 = next). `None` unless it is waiting.
    pub fn position(&self, job: JobId) -> Option<usize> {
        let st = self.lock();
        let r = st.jobs.get(&job)?;
        if r.state() != JobState::Queued {
            return None;
        }
        st.sched.position(job, r.user(), r.lane())
    }

    pub fn depth(&self) -> Depth {
        let st = self.lock();
        let running = st
            .jobs
            .values()
            .filter(|r| r.state() == JobState::Running)
            .count();
        Depth {
            priority: st.sched.ready(Lane::Priority),
            normal: st.sched.ready(Lane::Normal),
            delayed: st.sched.delayed(),
            running,
        }
    }

    /// Queued and running jobs of one user (for per-user limits).
    pub fn active_count(&self, user: UserId) -> usize {
        self.lock()
            .jobs
            .values()
            .filter(|r| r.user() == user)
            .count()
    }

    /// Every queued or running job, oldest first.
    pub fn active_jobs(&self) -> Vec<JobRecord> {
        let mut v: Vec<_> = self.lock().jobs.values().cloned().collect();
        v.sort_by_key(|r| r.id);
        v
    }

    /// A user's newest jobs (active and retained history), newest first.
    pub fn recent_for_user(
        &self,
        user: UserId,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        let lo = user_key(user, JobId::from_u128(0));
        let hi = user_key(user, JobId::from_u128(u128::MAX));
        let mut out = Vec::new();
        for kv in self.inner.by_user.range(lo..=hi).rev() {
            if out.len() >= limit {
                break;
            }
            let key = kv.key()?;
            if let Some(id) = job_id_from_key(&key)
                && let Some(r) = self.get(id)?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The newest finished jobs, newest first.
    pub fn recent_finished(&self, limit: usize) -> Result<Vec<JobRecord>, QueueError> {
        let ids: Vec<JobId> = self
            .lock()
            .finished
            .iter()
            .rev()
            .take(limit)
            .copied()
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(bytes) = self.inner.finished.get(id.to_bytes())? {
                out.push(decode(&bytes)?);
            }
        }
        Ok(out)
    }

    /// Disk space used by the queue, in bytes.
    pub fn disk_space(&self) -> u64 {
        self.inner.db.disk_space().unwrap_or(0)
    }

    /// Writes a consistent copy of the queue into a new fjall database at `dest`.
    pub fn backup_to(&self, dest: &Path) -> Result<(), QueueError> {
        let target = Database::builder(dest).open()?;
        let snapshot = self.inner.db.snapshot();
        for (name, source) in [
            ("active", &self.inner.active),
            ("finished", &self.inner.finished),
            ("by_user", &self.inner.by_user),
        ] {
            let to = target.keyspace(name, KeyspaceCreateOptions::default)?;
            let mut batch = target.batch();
            for kv in snapshot.iter(source) {
                let (k, v) = kv.into_inner()?;
                batch.insert(&to, k, v);
            }
            batch.commit()?;
        }
        target.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}
