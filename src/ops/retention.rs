//! Data care: input photos and results older than `storage.retention` are deleted (never the
//! inputs of a job still queued or running), and the redb file is compacted on demand while
//! the service is stopped.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::app::App;
use crate::config::Config;
use crate::files::{INPUTS, RESULTS};
use crate::store::{Store, StoreError};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanReport {
    pub inputs_removed: u64,
    /// Result folders (one per job) removed.
    pub results_removed: u64,
    pub bytes_freed: u64,
}

impl CleanReport {
    pub fn is_empty(&self) -> bool {
        self.inputs_removed == 0 && self.results_removed == 0
    }
}

/// Deletes inputs and results last written before `now - storage.retention`. Inputs of active
/// jobs stay whatever their age; a file that cannot be removed is logged and skipped.
pub fn clean_files(app: &App) -> CleanReport {
    let cutoff_ms = app.now_ms() - app.config.storage.retention.as_millis() as i64;
    let cutoff = SystemTime::UNIX_EPOCH + Duration::from_millis(cutoff_ms.max(0) as u64);
    let dir = &app.config.storage.data_dir;
    let in_use: std::collections::HashSet<String> = app
        .queue
        .active_jobs()
        .iter()
        .flat_map(|r| r.spec().inputs)
        .collect();
    let mut report = CleanReport::default();
    let old = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff)
    };

    for entry in read_dir(&dir.join(INPUTS)) {
        let path = entry.path();
        let name = format!("{INPUTS}/{}", entry.file_name().to_string_lossy());
        if !path.is_file() || in_use.contains(&name) || !old(&path) {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                report.inputs_removed += 1;
                report.bytes_freed += size;
            }
            Err(e) => tracing::warn!(file = %name, error = %e, "cannot remove an old input"),
        }
    }

    for entry in read_dir(&dir.join(RESULTS)) {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        // A job's folder goes when every file in it is old.
        let files = read_dir(&path);
        if !files.iter().all(|f| old(&f.path())) || (files.is_empty() && !old(&path)) {
            continue;
        }
        let (_, size) = super::dir_size(&path);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                report.results_removed += 1;
                report.bytes_freed += size;
            }
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove old results")
            }
        }
    }
    if !report.is_empty() {
        tracing::info!(
            inputs = report.inputs_removed,
            results = report.results_removed,
            bytes = report.bytes_freed,
            "old photos removed (storage.retention)"
        );
    }
    report
}

fn read_dir(dir: &Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir)
        .map(|it| it.flatten().collect())
        .unwrap_or_default()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    pub before_bytes: u64,
    pub after_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(
        "the service is running and holds the database: stop it first (systemctl stop qwenedit), run `qwenedit admin compact`, then start it again"
    )]
    Running,
    #[error(transparent)]
    Store(StoreError),
}

/// Compacts the redb file (it never shrinks by itself). Needs the service stopped.
pub fn compact(config: &Config) -> Result<CompactReport, CompactError> {
    let store = Store::open(&config.storage.data_dir).map_err(|e| match e {
        StoreError::Locked => CompactError::Running,
        other => CompactError::Store(other),
    })?;
    let before_bytes = store.file_size();
    let path = store.path().to_path_buf();
    store.compact().map_err(CompactError::Store)?;
    let after_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    tracing::info!(before_bytes, after_bytes, "database compacted");
    Ok(CompactReport {
        before_bytes,
        after_bytes,
    })
}
