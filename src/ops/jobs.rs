//! Submitting, cancelling and settling jobs: the hold/queue protocol between the two stores.
//!
//! The job id is the idempotency key of both the hold (redb) and the job (fjall). The hold and
//! the intent (the job's record) are written first, in one redb transaction; then the job is
//! enqueued; then the intent is cleared. `reconcile` finishes whatever a crash interrupted.

use serde::Serialize;

use super::OpsError;
use crate::app::App;
use crate::codec::encode;
use crate::domain::{JobId, JobSpec, Points, UserId};
use crate::queue::JobRecord;
use crate::store::{HoldOutcome, SettleOutcome, StoreError};

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Submitted {
    pub job: String,
    pub price: u32,
    pub balance: i64,
    /// Jobs that run before this one (0 = next).
    pub position: Option<usize>,
    /// The same job id was submitted before; nothing new was charged.
    pub duplicate: bool,
}

/// What a job costs this user: free for admins, unlimited users and in test mode.
pub fn price_for(app: &App, user: UserId, listed: Points) -> Result<Points, OpsError> {
    let billing = &app.config.billing;
    if billing.test_mode
        || billing.unlimited_users.contains(&user.get())
        || app.config.telegram.admins.contains(&user.get())
    {
        return Ok(Points::ZERO);
    }
    match app.store.user(user)? {
        Some(u) if u.admin || u.unlimited => Ok(Points::ZERO),
        Some(_) => Ok(listed),
        None => Err(OpsError::UnknownUser(user)),
    }
}

/// Accepts a job: holds its price, then queues it. Idempotent by `job`.
pub fn submit_edit(app: &App, job: JobId, mut spec: JobSpec) -> Result<Submitted, OpsError> {
    let user = app
        .store
        .user(spec.user)?
        .ok_or(OpsError::UnknownUser(spec.user))?;
    if user.banned {
        return Err(OpsError::Banned(spec.user));
    }
    if disk_full(app) {
        return Err(OpsError::DiskFull);
    }
    spec.price = price_for(app, spec.user, spec.price)?;
    if app.config.queue.priority_users.contains(&spec.user.get()) {
        spec.lane = crate::domain::Lane::Priority;
    }
    let now = app.now_ms();
    let record = JobRecord::new(job, &spec, now);
    let (balance, duplicate) =
        match app
            .store
            .hold(job, spec.user, spec.price.get(), &encode(&record), now)?
        {
            HoldOutcome::Held { balance } => (balance, false),
            HoldOutcome::AlreadyHeld(_) => (app.store.balance(spec.user)?, true),
        };
    crate::faults::crash_point("held");
    let record = if duplicate {
        // A repeat: the job as first submitted is the one that counts.
        match app.queue.get(job)? {
            Some(existing) => existing,
            None => record,
        }
    } else {
        record
    };
    if !record.state().is_terminal() {
        app.queue.enqueue(record.clone(), now)?;
        // Wake every idle worker; a busy one finds the permit when it next waits.
        app.jobs_changed.notify_waiters();
        app.jobs_changed.notify_one();
    }
    app.store.clear_intent(job)?;
    tracing::info!(%job, user = %spec.user, price = spec.price.get(), duplicate, "job accepted");
    Ok(Submitted {
        job: job.to_string(),
        price: record.price().get(),
        balance,
        position: app.queue.position(job),
        duplicate,
    })
}

/// Below `storage.min_free_mb` free on the data dir no job is accepted: its input, result and
/// records need room, and a full disk must not corrupt what is already there.
pub fn disk_full(app: &App) -> bool {
    let floor = app.config.storage.min_free_mb.saturating_mul(1 << 20);
    crate::files::free_bytes(&app.config.storage.data_dir).is_some_and(|free| free < floor)
}

/// Cancels a job that has not started and returns its points.
pub fn cancel_job(app: &App, job: JobId) -> Result<JobRecord, OpsError> {
    let record = app.queue.cancel(job, app.now_ms())?;
    settle_job(app, &record)?;
    tracing::info!(%job, user = %record.user(), "job cancelled");
    Ok(record)
}

/// Captures or releases the hold of a job that reached a terminal state. Idempotent.
pub fn settle_job(app: &App, record: &JobRecord) -> Result<(), OpsError> {
    let now = app.now_ms();
    let outcome = match record.state().settles_hold() {
        None => return Ok(()),
        Some(true) => app.store.capture(record.id, now),
        Some(false) => app.store.release(record.id, now),
    };
    match outcome {
        Ok(SettleOutcome::Settled(_)) => {
            tracing::debug!(job = %record.id, user = %record.user(), state = record.state().as_str(), "hold settled");
            app.telemetry.job_finished(record);
            Ok(())
        }
        Ok(SettleOutcome::AlreadySettled(_)) => Ok(()),
        // Jobs that never held points (none today) have nothing to settle.
        Err(StoreError::NoHold(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn job(app: &App, job: JobId) -> Result<JobRecord, OpsError> {
    app.queue.get(job)?.ok_or(OpsError::UnknownJob(job))
}
