//! Workers: one runner per ComfyUI backend, all sharing the durable queue. A runner keeps up to
//! `comfyui.pipeline_depth` jobs submitted to its ComfyUI (which runs them one at a time), so
//! the GPU never waits for the next job. `Runner::step(now)` does everything time-driven (probe,
//! connect, timeouts, lease extension, filling the pipeline) over the app's clock, so tests can
//! drive it; `run` calls it on events, on a tick and when a job is queued.

mod backends;
mod events;
mod finish;
mod runner;
mod submit;

pub use backends::{Backend, Backends, Health};
pub use events::{Events, JobEvent, JobEventKind};
pub use runner::Runner;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;

/// Starts one runner per backend; they stop when `stop` turns true.
pub fn spawn_all(app: &App, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    app.backends
        .all()
        .iter()
        .map(|backend| {
            let runner = Runner::new(app.clone(), backend.clone());
            tokio::spawn(runner.run(stop.clone()))
        })
        .collect()
}
