//! `qwenedit watch IN_DIR --preset KEY | --prompt TEXT [--out OUT_DIR]`: a watched folder run
//! standalone, with the stores and workers in this process (no bot, no web).
//!
//! The stores are locked by a running service, so with the service running the folder is the
//! service's job: a `[watch]` section in its config. One owner per data dir keeps the
//! exactly-once bookkeeping (the state file and the idempotent job ids) in one process.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliError, load_config, logging};
use crate::app::{App, Clock};
use crate::config::Watch;

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
    };
    config.watch = None;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let data_dir = config.storage.data_dir.clone();
        let (app, _) = App::open(config, Clock::System).map_err(|e| {
            if e.is_locked() {
                CliError(format!(
                    "the service is running on {}: add a [watch] section to its config instead \
                     (in_dir, out_dir, preset or prompt, user), or stop it to run this command",
                    data_dir.display()
                ))
            } else {
                CliError(e.to_string())
            }
        })?;
        // Fail fast on a wrong folder or preset, before starting workers.
        {
            let (app, w) = (app.clone(), watch.clone());
            app.blocking(move |app| crate::watch::Watcher::open(app.clone(), w).map(|_| ()))
                .await
                .map_err(|e| CliError(e.to_string()))?;
        }
        let report = app
            .blocking(crate::ops::reconcile)
            .await
            .map_err(|e| CliError(e.to_string()))?;
        if !report.is_empty() {
            tracing::warn!(?report, "reconciled the stores after an unclean stop");
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = crate::worker::spawn_all(&app, stop_rx.clone());
        tasks.push(tokio::spawn(crate::watch::run(
            app.clone(),
            watch,
            std::time::Duration::from_secs(args.interval.max(1)),
            stop_rx,
        )));
        super::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    })
}
