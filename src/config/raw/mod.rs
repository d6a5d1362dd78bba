//! The config as written (serde), and its conversion into the typed [`Config`].

mod billing;
mod comfyui;
mod fields;
mod log;
mod presets;
mod queue;
mod storage;
mod telegram;
mod watch;
mod web;
mod yookassa;

use std::path::Path;

use serde::Deserialize;

use super::{Config, ConfigError};
use billing::RawBilling;
use comfyui::RawComfyui;
use log::RawLog;
use presets::RawPresets;
use queue::RawQueue;
use storage::RawStorage;
use telegram::RawTelegram;
use watch::RawWatch;
use web::RawWeb;
use yookassa::RawYooKassa;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    telegram: RawTelegram,
    storage: RawStorage,
    comfyui: RawComfyui,
    web: RawWeb,
    billing: RawBilling,
    queue: RawQueue,
    presets: RawPresets,
    log: RawLog,
    yookassa: RawYooKassa,
    watch: Option<RawWatch>,
}

impl RawConfig {
    pub fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().message().trim().to_string();
            // serde names a bad section field only in its message; keep the key we know.
            ConfigError::key(
                if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                message,
            )
        })
    }

    /// Checks every value and builds the typed config. `base` resolves relative file paths.
    // Sections are checked in this order, so the first bad key reported stays the same.
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let telegram = self.telegram.validate(base)?;
        let storage = self.storage.validate(base)?;
        let comfyui = self.comfyui.validate(base)?;
        let web = self.web.validate(base)?;
        let billing = self.billing.validate()?;
        let queue = self.queue.validate()?;
        let log = self.log.validate()?;
        let watch = self.watch.map(|w| w.validate(base)).transpose()?;
        let presets = self.presets.validate(base)?;
        let yookassa = self.yookassa.validate(base)?;
        Ok(Config {
            telegram,
            storage,
            comfyui,
            web,
            billing,
            queue,
            presets,
            log,
            yookassa,
            watch,
        })
    }
}
