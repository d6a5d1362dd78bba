//! The config as written (serde), and its conversion into the typed [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use super::values::{parse_duration, parse_time, parse_weekday};
use super::{Billing, Comfyui, Config, ConfigError, Log, LogFormat, Queue, Storage, Telegram, Web};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    telegram: RawTelegram,
    storage: RawStorage,
    comfyui: RawComfyui,
    web: RawWeb,
    billing: RawBilling,
    queue: RawQueue,
    log: RawLog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTelegram {
    token: Option<String>,
    token_file: Option<PathBuf>,
    api_url: String,
    admins: Vec<i64>,
}

impl Default for RawTelegram {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            api_url: "https://api.telegram.org".into(),
            admins: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    data_dir: PathBuf,
    queue_fsync: bool,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            data_dir: "/var/lib/qwenedit".into(),
            queue_fsync: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawComfyui {
    backends: Vec<String>,
    workflows_dir: PathBuf,
    job_timeout: String,
}

impl Default for RawComfyui {
    fn default() -> Self {
        Self {
            backends: vec!["http://127.0.0.1:8188".into()],
            workflows_dir: "/usr/share/qwenedit/workflows".into(),
            job_timeout: "10m".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWeb {
    listen: String,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
}

impl Default for RawWeb {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            admin_token: None,
            admin_token_file: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBilling {
    welcome_points: u32,
    edit_price: u32,
    weekly_bonus: u32,
    weekly_bonus_day: String,
    weekly_bonus_time: String,
    unlimited_users: Vec<i64>,
    test_mode: bool,
}

impl Default for RawBilling {
    fn default() -> Self {
        Self {
            welcome_points: 60,
            edit_price: 30,
            weekly_bonus: 10,
            weekly_bonus_day: "monday".into(),
            weekly_bonus_time: "12:00".into(),
            unlimited_users: Vec::new(),
            test_mode: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawQueue {
    max_attempts: u32,
    lease_ttl: String,
    backoff_base: String,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: String,
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

impl RawConfig {
    pub fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().to_string();
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
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let telegram = Telegram {
            token: secret(
                "telegram.token",
                self.telegram.token,
                self.telegram.token_file,
                base,
            )?,
            api_url: url("telegram.api_url", &self.telegram.api_url)?,
            admins: self.telegram.admins,
        };
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::key("storage.data_dir", "must not be empty"));
        }
        let storage = Storage {
            data_dir: resolve(base, self.storage.data_dir),
            queue_fsync: self.storage.queue_fsync,
        };
        let backends = self
            .comfyui
            .backends
            .iter()
            .map(|b| url("comfyui.backends", b))
            .collect::<Result<Vec<_>, _>>()?;
        let comfyui = Comfyui {
            backends,
            workflows_dir: resolve(base, self.comfyui.workflows_dir),
            job_timeout: duration("comfyui.job_timeout", &self.comfyui.job_timeout)?,
        };
        let web = Web {
            listen: self.web.listen.parse::<SocketAddr>().map_err(|_| {
                ConfigError::key(
                    "web.listen",
                    format!(
                        "{:?} is not an address:port like \"127.0.0.1:8080\"",
                        self.web.listen
                    ),
                )
            })?,
            admin_token: secret(
                "web.admin_token",
                self.web.admin_token,
                self.web.admin_token_file,
                base,
            )?,
        };
        if let Some(token) = &web.admin_token {
            use secrecy::ExposeSecret;
            if token.expose_secret().len() < 16 {
                return Err(ConfigError::key(
                    "web.admin_token",
                    "must be at least 16 characters long",
                ));
            }
        }
        let billing = Billing {
            welcome_points: self.billing.welcome_points,
            edit_price: self.billing.edit_price,
            weekly_bonus: self.billing.weekly_bonus,
            weekly_bonus_day: parse_weekday(&self.billing.weekly_bonus_day)
                .map_err(|m| ConfigError::key("billing.weekly_bonus_day", m))?,
            weekly_bonus_time: parse_time(&self.billing.weekly_bonus_time)
                .map_err(|m| ConfigError::key("billing.weekly_bonus_time", m))?,
            unlimited_users: self.billing.unlimited_users,
            test_mode: self.billing.test_mode,
        };
        if self.queue.max_attempts == 0 {
            return Err(ConfigError::key("queue.max_attempts", "must be at least 1"));
        }
        let queue = Queue {
            max_attempts: self.queue.max_attempts,
            lease_ttl: positive_duration("queue.lease_ttl", &self.queue.lease_ttl)?,
            backoff_base: duration("queue.backoff_base", &self.queue.backoff_base)?,
            backoff_max: duration("queue.backoff_max", &self.queue.backoff_max)?,
            history_limit: self.queue.history_limit,
            priority_users: self.queue.priority_users,
        };
        let format = match self.log.format.as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::key(
                    "log.format",
                    format!("{other:?} is not \"human\" or \"json\""),
                ));
            }
        };
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::key("log.level", format!("{:?}: {e}", self.log.level)))?;
        let log = Log {
            level: self.log.level,
            format,
        };
        Ok(Config {
            telegram,
            storage,
            comfyui,
            web,
            billing,
            queue,
            log,
        })
    }
}

fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

fn url(key: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
    let parsed = reqwest::Url::parse(text).map_err(|e| {
        ConfigError::key(
            key,
            format!("{text:?} is not a URL ({e}); write e.g. \"http://127.0.0.1:8188\""),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::key(
            key,
            format!("{text:?} must start with http:// or https://"),
        ));
    }
    Ok(parsed)
}

fn duration(key: &str, text: &str) -> Result<std::time::Duration, ConfigError> {
    parse_duration(text).map_err(|m| ConfigError::key(key, m))
}

fn positive_duration(key: &str, text: &str) -> Result<std::time::Duration, ConfigError> {
    let d = duration(key, text)?;
    if d.is_zero() {
        return Err(ConfigError::key(key, "must be longer than zero"));
    }
    Ok(d)
}

/// A secret given inline or as `<key>_file`; both at once is a mistake.
fn secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Option<SecretString>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::key(
            key,
            format!("set either `{key}` or `{key}_file`, not both"),
        )),
        (Some(v), None) if v.trim().is_empty() => Ok(None),
        (Some(v), None) => Ok(Some(SecretString::from(v.trim().to_string()))),
        (None, Some(path)) => {
            let path = resolve(base, path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::key(
                    format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(ConfigError::key(
                    format!("{key}_file"),
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(SecretString::from(text.to_string())))
        }
        (None, None) => Ok(None),
    }
}
