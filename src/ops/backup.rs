//! A consistent copy of both stores. The redb store is copied first, then the queue: whatever
//! happens between the two snapshots, restoring them and reconciling on start gives a
//! consistent pair (a job finished after the first copy is settled from the queue's record).

use std::path::Path;

use serde::Serialize;

use super::OpsError;
use crate::app::App;

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct BackupReport {
    pub dir: String,
    pub store_bytes: u64,
    pub queue_bytes: u64,
}

pub fn backup(app: &App, dir: &Path) -> Result<BackupReport, OpsError> {
    let non_empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty {
        return Err(OpsError::Invalid(format!(
            "{} is not empty; back up into a new folder",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| OpsError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    let store_path = dir.join(crate::store::FILE_NAME);
    app.store.backup_to(&store_path)?;
    let queue_path = dir.join(crate::queue::DIR_NAME);
    app.queue.backup_to(&queue_path)?;
    let report = BackupReport {
        dir: dir.display().to_string(),
        store_bytes: std::fs::metadata(&store_path).map(|m| m.len()).unwrap_or(0),
        queue_bytes: dir_size(&queue_path),
    };
    tracing::info!(dir = %dir.display(), "backup written");
    Ok(report)
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
