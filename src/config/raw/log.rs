//! `[log]` as written, and its checks into [`Log`].

use serde::Deserialize;

use super::fields::{has_levels, text};
use crate::config::{ConfigError, Log, LogFormat};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    level: String,
    #[serde(deserialize_with = "text::req")]
    format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "human".into(),
        }
    }
}

impl RawLog {
    pub(super) fn validate(self) -> Result<Log, ConfigError> {
        let format = match self.format.as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::key(
                    "log.format",
                    format!("{other:?} is not \"human\" or \"json\""),
                ));
            }
        };
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .map_err(|e| ConfigError::key("log.level", format!("{:?}: {e}", self.level)))?;
        if !has_levels(&self.level) {
            return Err(ConfigError::key(
                "log.level",
                format!(
                    "{:?} names no level; write e.g. \"info\" or \"qwenedit=debug,warn\"",
                    self.level
                ),
            ));
        }
        Ok(Log {
            level: self.level,
            format,
        })
    }
}
