//! `[web]` as written, and its checks into [`Web`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::fields::{secret, text};
use crate::config::{ConfigError, Web};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWeb {
    #[serde(deserialize_with = "text::req")]
    listen: String,
    #[serde(deserialize_with = "text::opt")]
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    api_remote: bool,
}

impl Default for RawWeb {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            admin_token: None,
            admin_token_file: None,
            api_remote: false,
        }
    }
}

impl RawWeb {
    pub(super) fn validate(self, base: &Path) -> Result<Web, ConfigError> {
        let web = Web {
            listen: self.listen.parse::<SocketAddr>().map_err(|_| {
                ConfigError::key(
                    "web.listen",
                    format!(
                        "{:?} is not an address:port like \"127.0.0.1:8080\"",
                        self.listen
                    ),
                )
            })?,
            admin_token: secret(
                "web.admin_token",
                self.admin_token,
                self.admin_token_file,
                base,
            )?,
            api_remote: self.api_remote,
        };
        if let Some(token) = &web.admin_token
            && token.expose_secret().len() < 16
        {
            return Err(ConfigError::key(
                "web.admin_token",
                "must be at least 16 characters long",
            ));
        }
        Ok(web)
    }
}
