//! What workers tell the rest of the process about jobs: the bot's status messages and the
//! status page subscribe. Lossy by design (a slow subscriber skips progress ticks).

use serde::Serialize;
use tokio::sync::broadcast;

use crate::domain::{JobId, UserId};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum JobEventKind {
    /// Submitted to a backend's ComfyUI queue.
    Submitted { backend: String },
    /// ComfyUI started running it.
    Started { backend: String },
    /// Sampling progress, 0..=100.
    Progress { percent: u8 },
    /// Done; output files relative to the data dir.
    Succeeded { outputs: Vec<String> },
    /// Will be tried again.
    Retrying { at_ms: i64 },
    /// Final failure; its points were released.
    Failed { reason: String },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobEvent {
    pub job: JobId,
    pub user: UserId,
    pub chat: Option<i64>,
    pub kind: JobEventKind,
}

/// A broadcast of job events.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<JobEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl Events {
    pub fn publish(&self, event: JobEvent) {
        // No subscribers is fine.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.tx.subscribe()
    }
}
