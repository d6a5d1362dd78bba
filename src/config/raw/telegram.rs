//! `[telegram]` as written, and its checks into [`Telegram`].

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::fields::{duration, looks_like_bot_token, resolve, secret, text, url};
use crate::config::{ConfigError, Telegram};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTelegram {
    #[serde(deserialize_with = "text::opt")]
    token: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(deserialize_with = "text::req")]
    api_url: String,
    admins: Vec<i64>,
    #[serde(deserialize_with = "text::opt")]
    support: Option<String>,
    #[serde(deserialize_with = "text::req")]
    album_debounce: String,
    max_active_jobs: usize,
    prompt_min: usize,
    prompt_max: usize,
    deny_list: Option<PathBuf>,
    flood_per_minute: u32,
}

impl Default for RawTelegram {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            api_url: "https://api.telegram.org".into(),
            admins: Vec::new(),
            support: None,
            album_debounce: "800ms".into(),
            max_active_jobs: 2,
            prompt_min: 5,
            prompt_max: 1000,
            deny_list: None,
            flood_per_minute: 30,
        }
    }
}

impl RawTelegram {
    pub(super) fn validate(self, base: &Path) -> Result<Telegram, ConfigError> {
        let token = secret("telegram.token", self.token, self.token_file, base)?;
        if let Some(t) = &token
            && !looks_like_bot_token(t.expose_secret())
        {
            return Err(ConfigError::key(
                "telegram.token",
                "is not a bot token (digits, a colon, then letters, as @BotFather gives it)",
            ));
        }
        let telegram = Telegram {
            token,
            api_url: url("telegram.api_url", &self.api_url)?,
            admins: self.admins,
            support: self.support.filter(|s| !s.trim().is_empty()),
            album_debounce: duration("telegram.album_debounce", &self.album_debounce)?,
            max_active_jobs: self.max_active_jobs.max(1),
            prompt_min: self.prompt_min,
            prompt_max: self.prompt_max,
            deny_list: self.deny_list.map(|p| resolve(base, p)),
            flood_per_minute: self.flood_per_minute.max(1),
        };
        if telegram.prompt_min == 0
            || telegram.prompt_min > telegram.prompt_max
            || telegram.prompt_max > 2000
        {
            return Err(ConfigError::key(
                "telegram.prompt_max",
                "prompt_min must be at least 1 and at most prompt_max, prompt_max at most 2000",
            ));
        }
        Ok(telegram)
    }
}
