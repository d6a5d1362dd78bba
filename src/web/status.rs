//! `/healthz` and the status JSON.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::App;
use crate::queue::Depth;

pub async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize, Debug)]
pub struct BackendStatus {
    pub url: String,
    #[serde(flatten)]
    pub health: crate::worker::Health,
    pub average_ms: Option<u64>,
}

#[derive(Serialize, Debug)]
pub struct StatusReport {
    pub version: &'static str,
    pub queue: Depth,
    pub backends: Vec<BackendStatus>,
    pub users: u64,
    pub store_bytes: u64,
    pub queue_bytes: u64,
    /// The watched folder's batch, when one runs.
    pub watch: Option<crate::watch::WatchStatus>,
}

pub fn status_report(app: &App) -> StatusReport {
    StatusReport {
        version: env!("CARGO_PKG_VERSION"),
        queue: app.queue.depth(),
        backends: app
            .backends
            .all()
            .iter()
            .map(|b| {
                let health = b.health();
                BackendStatus {
                    url: b.name.clone(),
                    average_ms: health.average_ms(),
                    health,
                }
            })
            .collect(),
        users: app.store.user_count().unwrap_or(0),
        store_bytes: app.store.file_size(),
        queue_bytes: app.queue.disk_space(),
        watch: crate::ops::watch_status(app),
    }
}

pub async fn status_json(State(app): State<App>) -> Json<StatusReport> {
    Json(app.blocking(status_report).await)
}
