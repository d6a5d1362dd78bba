//! `[storage]` as written, and its checks into [`Storage`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::fields::{positive_duration, resolve, text};
use crate::config::{ConfigError, Storage};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStorage {
    data_dir: PathBuf,
    queue_fsync: bool,
    #[serde(deserialize_with = "text::req")]
    retention: String,
    min_free_mb: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            data_dir: "/var/lib/qwenedit".into(),
            queue_fsync: true,
            retention: "7d".into(),
            min_free_mb: 200,
        }
    }
}

impl RawStorage {
    pub(super) fn validate(self, base: &Path) -> Result<Storage, ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::key("storage.data_dir", "must not be empty"));
        }
        Ok(Storage {
            data_dir: resolve(base, self.data_dir),
            queue_fsync: self.queue_fsync,
            retention: positive_duration("storage.retention", &self.retention)?,
            min_free_mb: self.min_free_mb,
        })
    }
}
