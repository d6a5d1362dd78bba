//! The ComfyUI backends and what is known of their health, shared by the workers, the status
//! page and `doctor`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::comfy::ComfyClient;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    pub up: bool,
    /// Why it is down, for the operator.
    pub last_error: Option<String>,
    pub version: Option<String>,
    pub device: Option<String>,
    pub vram_total: u64,
    pub vram_free: u64,
    /// The job it is running and its progress.
    pub current_job: Option<String>,
    pub progress: u8,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    /// Sum of run times of finished jobs, for the average.
    pub busy_ms: u64,
    pub draining: bool,
}

impl Health {
    pub fn average_ms(&self) -> Option<u64> {
        (self.jobs_done > 0).then(|| self.busy_ms / self.jobs_done)
    }
}

pub struct Backend {
    pub name: String,
    pub client: ComfyClient,
    /// Watched, so that a change can be awaited (tests, the status page's live view).
    health: watch::Sender<Health>,
}

impl Backend {
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut Health)) {
        self.health.send_modify(f);
    }

    /// Follows the health as it changes.
    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }
}

/// All backends, in config order.
#[derive(Clone)]
pub struct Backends(Arc<Vec<Arc<Backend>>>);

impl Backends {
    pub fn new(urls: &[reqwest::Url], timeout: Duration) -> Self {
        Self(Arc::new(
            urls.iter()
                .map(|url| {
                    Arc::new(Backend {
                        name: url.as_str().trim_end_matches('/').to_string(),
                        client: ComfyClient::new(url.clone(), timeout),
                        health: watch::Sender::new(Health::default()),
                    })
                })
                .collect(),
        ))
    }

    pub fn all(&self) -> &[Arc<Backend>] {
        &self.0
    }

    /// Seconds until the job at `position` (0 = next) is done, from measured job times spread
    /// over the backends; 0 while nothing has been measured.
    pub fn wait_estimate_s(&self, position: usize) -> i64 {
        let backends = self.0.len().max(1);
        self.average_job_ms().map_or(0, |ms| {
            (ms as usize * (position + 1) / backends / 1000) as i64
        })
    }

    /// Average seconds per job over all backends that finished any, for wait estimates.
    pub fn average_job_ms(&self) -> Option<u64> {
        let (done, busy) = self.0.iter().fold((0u64, 0u64), |(d, b), be| {
            let h = be.health();
            (d + h.jobs_done, b + h.busy_ms)
        });
        (done > 0).then(|| busy / done)
    }
}
