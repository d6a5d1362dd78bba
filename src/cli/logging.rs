//! Log set-up: human lines on a terminal, JSON when configured; level from config or RUST_LOG.

use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

/// The storage engines log routine maintenance at info; keep them to warnings unless asked.
const QUIET_DEPS: &str = "fjall=warn,lsm_tree=warn";

fn with_quiet_deps(level: &str) -> String {
    if level.contains("fjall") || level.contains("lsm_tree") {
        level.to_string()
    } else {
        format!("{level},{QUIET_DEPS}")
    }
}

pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(with_quiet_deps(&log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Quiet logging for one-shot commands: warnings and errors only.
pub fn init_quiet() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_writer(std::io::stderr)
        .try_init();
}
