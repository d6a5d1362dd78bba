//! Startup reconciliation of the two stores (CRATES.md trap 3). After a crash at any point there
//! is neither a charged job that does not exist nor a queued job that holds no points.

use serde::Serialize;

use super::{OpsError, settle_job};
use crate::app::App;
use crate::codec::decode;
use crate::queue::JobRecord;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Intents rolled forward into the queue.
    pub enqueued: usize,
    /// Intents whose job was already queued.
    pub confirmed: usize,
    /// Holds captured or released because their job had finished.
    pub settled: usize,
    /// Holds released because their job was nowhere (should never happen).
    pub orphans_released: usize,
}

impl ReconcileReport {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

pub fn reconcile(app: &App) -> Result<ReconcileReport, OpsError> {
    let mut report = ReconcileReport::default();
    let now = app.now_ms();
    for (job, bytes) in app.store.intents()? {
        let record: JobRecord = decode(&bytes).map_err(crate::store::StoreError::from)?;
        let user = record.user();
        match app.queue.enqueue(record, now)? {
            crate::queue::Enqueued::New => report.enqueued += 1,
            crate::queue::Enqueued::Existing(_) => report.confirmed += 1,
        }
        app.store.clear_intent(job)?;
        tracing::info!(%job, user = %user, "reconcile: intent confirmed in the queue");
    }
    for hold in app.store.open_holds()? {
        match app.queue.get(hold.job)? {
            Some(record) if record.state().is_terminal() => {
                settle_job(app, &record)?;
                report.settled += 1;
                tracing::info!(job = %hold.job, user = %hold.user, state = record.state().as_str(), "reconcile: hold settled");
            }
            Some(_) => {}
            None => {
                app.store.release(hold.job, now)?;
                report.orphans_released += 1;
                tracing::error!(job = %hold.job, user = %hold.user, "reconcile: hold without a job released");
            }
        }
    }
    Ok(report)
}
