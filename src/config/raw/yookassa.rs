//! `[yookassa]` as written (card and SBP payments), and its checks into [`YooKassa`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::fields::{positive_duration, secret, text, url};
use crate::config::{ConfigError, Receipt, YooKassa};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawYooKassa {
    enabled: bool,
    #[serde(deserialize_with = "text::opt")]
    shop_id: Option<String>,
    #[serde(deserialize_with = "text::opt")]
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    #[serde(deserialize_with = "text::req")]
    api_url: String,
    #[serde(deserialize_with = "text::opt")]
    return_url: Option<String>,
    test: bool,
    receipt: bool,
    vat_code: u8,
    #[serde(deserialize_with = "text::req")]
    receipt_description: String,
    #[serde(deserialize_with = "text::opt")]
    trusted_header: Option<String>,
    #[serde(deserialize_with = "text::req")]
    reconcile_interval: String,
    #[serde(deserialize_with = "text::req")]
    timeout: String,
}

impl Default for RawYooKassa {
    fn default() -> Self {
        Self {
            enabled: false,
            shop_id: None,
            secret_key: None,
            secret_key_file: None,
            api_url: "https://api.yookassa.ru/v3/".into(),
            return_url: None,
            test: false,
            receipt: false,
            vat_code: 1,
            receipt_description: "Points for photo edits".into(),
            trusted_header: None,
            reconcile_interval: "10m".into(),
            timeout: "10s".into(),
        }
    }
}

impl RawYooKassa {
    pub(super) fn validate(self, base: &Path) -> Result<Option<YooKassa>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let shop_id = self
            .shop_id
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConfigError::key(
                    "yookassa.shop_id",
                    "is required when yookassa.enabled = true",
                )
            })?;
        let secret_key = secret(
            "yookassa.secret_key",
            self.secret_key,
            self.secret_key_file,
            base,
        )?
        .ok_or_else(|| {
            ConfigError::key(
                "yookassa.secret_key",
                "is required when yookassa.enabled = true (or set yookassa.secret_key_file)",
            )
        })?;
        let mut api_url = url("yookassa.api_url", &self.api_url)?;
        if !api_url.path().ends_with('/') {
            // Relative joins ("payments") would otherwise drop the last path segment.
            let path = format!("{}/", api_url.path());
            api_url.set_path(&path);
        }
        let return_url = url(
            "yookassa.return_url",
            self.return_url.as_deref().ok_or_else(|| {
                ConfigError::key(
                    "yookassa.return_url",
                    "is required when yookassa.enabled = true, e.g. \"https://t.me/your_bot\"",
                )
            })?,
        )?;
        let receipt = if self.receipt {
            if !(1..=12).contains(&self.vat_code) {
                return Err(ConfigError::key("yookassa.vat_code", "must be 1 to 12"));
            }
            let description = self.receipt_description.trim().to_string();
            if description.is_empty() || description.chars().count() > 128 {
                return Err(ConfigError::key(
                    "yookassa.receipt_description",
                    "must be 1 to 128 characters",
                ));
            }
            Some(Receipt {
                vat_code: self.vat_code,
                description,
            })
        } else {
            None
        };
        let trusted_header = match self.trusted_header.map(|h| h.trim().to_string()) {
            Some(h) if h.is_empty() => None,
            Some(h) => {
                if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(ConfigError::key(
                        "yookassa.trusted_header",
                        format!("{h:?} is not a header name like \"X-Real-IP\""),
                    ));
                }
                Some(h)
            }
            None => None,
        };
        Ok(Some(YooKassa {
            shop_id,
            secret_key,
            api_url,
            return_url,
            test: self.test,
            receipt,
            trusted_header,
            reconcile_interval: positive_duration(
                "yookassa.reconcile_interval",
                &self.reconcile_interval,
            )?,
            timeout: positive_duration("yookassa.timeout", &self.timeout)?,
        }))
    }
}
