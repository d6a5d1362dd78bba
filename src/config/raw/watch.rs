//! `[watch]` as written (the section is optional), and its checks into [`Watch`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::fields::{positive_duration, resolve};
use crate::config::{ConfigError, Watch};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    in_dir: PathBuf,
    out_dir: Option<PathBuf>,
    preset: Option<String>,
    prompt: Option<String>,
    user: Option<i64>,
    interval: Option<String>,
}

impl RawWatch {
    pub(super) fn validate(self, base: &Path) -> Result<Watch, ConfigError> {
        if self.preset.is_some() == self.prompt.is_some() {
            return Err(ConfigError::key(
                "watch.preset",
                "give exactly one of watch.preset and watch.prompt",
            ));
        }
        let in_dir = resolve(base, self.in_dir);
        Ok(Watch {
            out_dir: self
                .out_dir
                .map(|d| resolve(base, d))
                .unwrap_or_else(|| in_dir.join("edited")),
            in_dir,
            preset: self.preset,
            prompt: self.prompt,
            user: self.user,
            interval: match &self.interval {
                Some(t) => positive_duration("watch.interval", t)?,
                None => std::time::Duration::from_secs(2),
            },
        })
    }
}
