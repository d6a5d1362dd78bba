//! `Idempotency-Key` bookkeeping for the admin API: a key is reserved by its first request,
//! remembers that request's fingerprint and success response, and replays it to repeats.

use super::OpsError;
use crate::app::App;

pub use crate::store::ReplayBegin;

/// A reservation without a response older than this was abandoned (the process stopped).
const ABANDONED_AFTER_MS: i64 = 60_000;

pub fn replay_begin(app: &App, key: &str, fingerprint: &str) -> Result<ReplayBegin, OpsError> {
    let now = app.now_ms();
    Ok(app
        .store
        .replay_begin(key, fingerprint, now, now - ABANDONED_AFTER_MS)?)
}

pub fn replay_finish(app: &App, key: &str, status: u16, body: &[u8]) -> Result<(), OpsError> {
    Ok(app.store.replay_finish(key, status, body)?)
}

pub fn replay_abort(app: &App, key: &str) -> Result<(), OpsError> {
    Ok(app.store.replay_abort(key)?)
}

/// Forgets `Idempotency-Key`s older than `storage.retention` (kept as long as the photos).
pub fn forget_old_replays(app: &App) -> Result<u64, OpsError> {
    let before = app.now_ms() - app.config.storage.retention.as_millis() as i64;
    let forgotten = app.store.replays_trim(before)?;
    if forgotten > 0 {
        tracing::info!(
            forgotten,
            "old Idempotency-Keys forgotten (storage.retention)"
        );
    }
    Ok(forgotten)
}
