//! `qwenedit watch IN_DIR --preset KEY | --prompt TEXT [--out OUT_DIR]`: a watched folder.
//!
//! With the service stopped it runs standalone: the stores and the workers in this process
//! (no bot, no web). With the service running (it holds the stores' locks) it works through
//! the service's operator API: upload, submit under its own job id, follow, download. Either
//! way the bookkeeping is the same state file in OUT_DIR, so a folder can move between the
//! two without a file being edited twice. The service can also watch a folder itself with a
//! `[watch]` config section.

use std::path::{Path, PathBuf};

use clap::Args;

use super::target::{Target, connect};
use super::{CliError, load_config, logging};
use crate::app::App;
use crate::config::Watch;
use crate::watch::{Watcher, remote::ApiEngine, run_watcher};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The folder to watch.
    pub in_dir: PathBuf,
    /// The preset to apply to every image.
    #[arg(long, conflicts_with = "prompt", required_unless_present = "prompt")]
    pub preset: Option<String>,
    /// Or your own instruction.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Where results go (default IN_DIR/edited); failures go to OUT_DIR/failed.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The Telegram user to charge (default: free, as the watch user 0).
    #[arg(long)]
    pub user: Option<i64>,
    /// Seconds between scans.
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
}

pub fn run(config_path: &Path, args: WatchArgs) -> Result<(), CliError> {
    let mut config = load_config(config_path)?;
    logging::init(&config.log);
    let cwd = std::env::current_dir()?;
    let in_dir = cwd.join(&args.in_dir);
    let watch = Watch {
        out_dir: args
            .out
            .map(|o| cwd.join(o))
            .unwrap_or_else(|| in_dir.join("edited")),
        in_dir,
        preset: args.preset,
        prompt: args.prompt,
        user: args.user,
        interval: std::time::Duration::from_secs(args.interval.max(1)),
    };
    config.watch = None;
    let interval = watch.interval;
    match connect(config)? {
        Target::Direct(app) => standalone(app, watch, interval),
        Target::Daemon(d) => {
            tracing::info!("the service is running: submitting through its API");
            let engine =
                ApiEngine::new(d.base(), d.token()).map_err(|e| CliError(e.to_string()))?;
            let watcher = Watcher::with_engine(Box::new(engine), watch)
                .map_err(|e| CliError(e.to_string()))?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(run_watcher(watcher, interval, stop_rx, log_status));
                super::serve::shutdown_signal().await;
                let _ = stop_tx.send(true);
                let _ = task.await;
            });
            Ok(())
        }
    }
}

fn log_status(s: crate::watch::WatchStatus) {
    tracing::debug!(
        done = s.done,
        running = s.running,
        waiting = s.waiting,
        failed = s.failed,
        "watched folder"
    );
}

/// The stores and the workers in this process.
fn standalone(app: App, watch: Watch, interval: std::time::Duration) -> Result<(), CliError> {
    let watcher = Watcher::open(app.clone(), watch).map_err(|e| CliError(e.to_string()))?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let report = app
            .blocking(crate::ops::reconcile)
            .await
            .map_err(|e| CliError(e.to_string()))?;
        if !report.is_empty() {
            tracing::warn!(?report, "reconciled the stores after an unclean stop");
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = crate::worker::spawn_all(&app, stop_rx.clone());
        let board = app.watch.clone();
        tasks.push(tokio::spawn(run_watcher(
            watcher,
            interval,
            stop_rx,
            move |s| {
                log_status(s.clone());
                board.set(s);
            },
        )));
        super::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    })
}
