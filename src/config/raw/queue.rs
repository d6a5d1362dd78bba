//! `[queue]` as written, and its checks into [`Queue`].

use serde::Deserialize;

use super::fields::{duration, positive_duration, text};
use crate::config::{ConfigError, Queue};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawQueue {
    max_attempts: u32,
    #[serde(deserialize_with = "text::req")]
    lease_ttl: String,
    #[serde(deserialize_with = "text::req")]
    backoff_base: String,
    #[serde(deserialize_with = "text::req")]
    backoff_max: String,
    history_limit: usize,
    priority_users: Vec<i64>,
}

impl Default for RawQueue {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            lease_ttl: "60s".into(),
            backoff_base: "5s".into(),
            backoff_max: "5m".into(),
            history_limit: 10_000,
            priority_users: Vec::new(),
        }
    }
}

impl RawQueue {
    pub(super) fn validate(self) -> Result<Queue, ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::key("queue.max_attempts", "must be at least 1"));
        }
        let backoff_base = duration("queue.backoff_base", &self.backoff_base)?;
        let backoff_max = duration("queue.backoff_max", &self.backoff_max)?;
        if backoff_base > backoff_max {
            return Err(ConfigError::key(
                "queue.backoff_base",
                format!(
                    "{:?} is longer than queue.backoff_max {:?}",
                    self.backoff_base, self.backoff_max
                ),
            ));
        }
        Ok(Queue {
            max_attempts: self.max_attempts,
            lease_ttl: positive_duration("queue.lease_ttl", &self.lease_ttl)?,
            backoff_base,
            backoff_max,
            history_limit: self.history_limit,
            priority_users: self.priority_users,
        })
    }
}
