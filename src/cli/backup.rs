//! `qwenedit backup DIR`: a consistent copy of both stores, online or offline.

use std::path::{Path, PathBuf};

use clap::Args;

use super::target::{Target, connect};
use super::{CliError, load_config, logging};
use crate::ops::{self, BackupReport};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// A new (or empty) folder for the copy.
    pub dir: PathBuf,
}

pub fn run(config_path: &Path, args: BackupArgs) -> Result<(), CliError> {
    logging::init_quiet();
    let config = load_config(config_path)?;
    let dir = std::path::absolute(&args.dir)?;
    let report: BackupReport = match connect(config)? {
        Target::Direct(app) => ops::backup(&app, &dir)?,
        Target::Daemon(d) => d.post("/backup", &serde_json::json!({ "dir": dir }))?,
    };
    println!(
        "backup written to {}\n  store: {} bytes\n  queue: {} bytes\nrestore: stop the service, replace the data dir's qwenedit.redb and queue/ with these, start it again",
        report.dir, report.store_bytes, report.queue_bytes
    );
    Ok(())
}
