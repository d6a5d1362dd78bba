//! `qwenedit serve`: everything in one process until SIGINT or SIGTERM.

use std::path::Path;

use tokio::net::TcpListener;

use super::{CliError, load_config, logging, systemd};
use crate::app::{self, App, Clock};

pub fn run(config_path: &Path) -> Result<(), CliError> {
    let config = load_config(config_path)?;
    logging::init(&config.log);
    crate::faults::init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listen = config.web.listen;
        let data_dir = config.storage.data_dir.clone();
        let (app, report) = App::open(config, Clock::System).map_err(|e| {
            if e.is_locked() {
                CliError(format!(
                    "the data dir {} is in use by another qwenedit process",
                    data_dir.display()
                ))
            } else {
                CliError(e.to_string())
            }
        })?;
        tracing::info!(
            data_dir = %data_dir.display(),
            active_jobs = report.active,
            returned_leases = report.returned,
            dead_lettered = report.dead_lettered,
            "stores open"
        );
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| CliError(format!("cannot listen on {listen}: {e}")))?;
        let watchdog = tokio::spawn(systemd::watchdog());
        systemd::ready();
        let stopped = async {
            shutdown_signal().await;
            systemd::stopping();
        };
        let served = app::run(app, listener, stopped).await;
        watchdog.abort();
        served.map_err(|e| CliError(e.to_string()))?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM (systemd stops services with SIGTERM).
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}
