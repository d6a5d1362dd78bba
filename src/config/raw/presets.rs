//! `[presets]` as written, and its conversion into [`Presets`] (nothing to check).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::fields::resolve;
use crate::config::{ConfigError, Presets};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPresets {
    dir: PathBuf,
    extra_dir: Option<PathBuf>,
}

impl Default for RawPresets {
    fn default() -> Self {
        Self {
            dir: "/usr/share/qwenedit/presets".into(),
            extra_dir: None,
        }
    }
}

impl RawPresets {
    pub(super) fn validate(self, base: &Path) -> Result<Presets, ConfigError> {
        Ok(Presets {
            dir: resolve(base, self.dir),
            extra_dir: self.extra_dir.map(|d| resolve(base, d)),
        })
    }
}
