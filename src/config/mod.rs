//! Configuration: one TOML file plus `QWENEDIT_<SECTION>__<KEY>` environment overrides, parsed
//! once into typed, validated values. Errors name the key and say what was expected.

mod env;
mod raw;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::civil::{Time, Weekday};
use secrecy::SecretString;

pub use values::parse_duration;

/// The path used when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/qwenedit/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub telegram: Telegram,
    pub storage: Storage,
    pub comfyui: Comfyui,
    pub web: Web,
    pub billing: Billing,
    pub queue: Queue,
    pub presets: Presets,
    pub log: Log,
    /// Card and SBP payments through YooKassa; `None` unless `yookassa.enabled`.
    pub yookassa: Option<YooKassa>,
    /// A watched folder run by the service (`[watch]`).
    pub watch: Option<Watch>,
}

/// A folder whose new images become jobs; results go to `out_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub in_dir: PathBuf,
    pub out_dir: PathBuf,
    pub preset: Option<String>,
    pub prompt: Option<String>,
    /// The user charged; when absent, jobs run free as the operator's watch user (id 0).
    pub user: Option<i64>,
    /// Time between scans of `in_dir`.
    pub interval: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Presets {
    /// Shipped presets.
    pub dir: PathBuf,
    /// The operator's presets; a file with the same key replaces a shipped one.
    pub extra_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Telegram {
    /// `None` when no token is configured: the bot part stays off.
    pub token: Option<SecretString>,
    pub api_url: reqwest::Url,
    pub admins: Vec<i64>,
    /// Shown in /help ("@support_account" or an e-mail).
    pub support: Option<String>,
    /// How long to wait for more photos of an album.
    pub album_debounce: Duration,
    /// Jobs a user may have queued or running at once.
    pub max_active_jobs: usize,
    pub prompt_min: usize,
    pub prompt_max: usize,
    /// Extra deny-list terms (one per line), on top of the built-in list.
    pub deny_list: Option<PathBuf>,
    /// Messages a user may send per minute before being asked to slow down.
    pub flood_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    /// fsync every queue transition (`true`, the default) or leave it in OS buffers, which
    /// survives a killed process but not a power loss.
    pub queue_fsync: bool,
    /// Input photos and results older than this are deleted (default 7 days).
    pub retention: Duration,
    /// Below this much free space (MB) on the data dir's file system, new uploads and jobs
    /// are refused (default 200), so a full disk never corrupts the stores.
    pub min_free_mb: u64,
}

#[derive(Debug, Clone)]
pub struct Comfyui {
    pub backends: Vec<reqwest::Url>,
    /// Shipped workflows; `extra_workflows_dir` (the operator's) overrides files of the same name.
    pub workflows_dir: PathBuf,
    pub extra_workflows_dir: Option<PathBuf>,
    /// The workflow of jobs that name none (own prompts).
    pub default_workflow: String,
    pub job_timeout: Duration,
    /// Jobs kept submitted to one ComfyUI at once, so its GPU never waits for the next.
    pub pipeline_depth: usize,
    /// Values written into workflows at their `qwenedit:` marks (unset: the workflow's own).
    pub models: crate::comfy::ModelSettings,
}

#[derive(Debug, Clone)]
pub struct Web {
    pub listen: SocketAddr,
    /// The admin API token; when absent one is generated into the data dir on first start.
    pub admin_token: Option<SecretString>,
    /// Let the operator API (`/api/v1`) answer peers that are not on this machine.
    pub api_remote: bool,
}

#[derive(Debug, Clone)]
pub struct Billing {
    pub welcome_points: u32,
    pub edit_price: u32,
    pub weekly_bonus: u32,
    pub weekly_bonus_day: Weekday,
    pub weekly_bonus_time: Time,
    pub unlimited_users: Vec<i64>,
    pub test_mode: bool,
    /// The time zone of `weekly_bonus_day`/`weekly_bonus_time` (IANA name).
    pub time_zone: String,
    /// Point packs sold for Telegram Stars (and rubles where YooKassa is on).
    pub packs: Vec<Pack>,
    /// Top-up links a user may create per minute.
    pub payments_per_minute: u32,
    /// False turns top-ups off entirely.
    pub payments_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    pub points: u32,
    /// Price in Telegram Stars (XTR).
    pub stars: u32,
    /// Price in rubles, for YooKassa.
    #[serde(default)]
    pub rub: Option<u32>,
    /// Extra points on top, shown and credited exactly as shown.
    #[serde(default)]
    pub bonus: u32,
}

impl Pack {
    pub fn total_points(&self) -> u32 {
        self.points + self.bonus
    }
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub max_attempts: u32,
    pub lease_ttl: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Finished jobs kept for "my recent edits" and the status page.
    pub history_limit: usize,
    /// Users whose jobs go to the priority lane.
    pub priority_users: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub level: String,
    pub format: LogFormat,
}

/// The `[yookassa]` section, when enabled.
#[derive(Debug, Clone)]
pub struct YooKassa {
    pub shop_id: String,
    pub secret_key: SecretString,
    /// `https://api.yookassa.ru/v3/` (tests point it at a fake).
    pub api_url: reqwest::Url,
    /// Where YooKassa sends the user after paying (e.g. `https://t.me/your_bot`).
    pub return_url: reqwest::Url,
    /// The shop is a test shop: payments must carry `test: true` (and `false` otherwise).
    pub test: bool,
    /// 54-FZ receipts, sent with each payment (the bot then asks for an e-mail).
    pub receipt: Option<Receipt>,
    /// The header holding the client address set by a reverse proxy; unset: the socket peer.
    pub trusted_header: Option<String>,
    /// How often pending payments are re-read (settles lost notifications).
    pub reconcile_interval: Duration,
    /// Timeout of one request to YooKassa.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Receipt {
    /// YooKassa's `vat_code` (1 = no VAT, ...).
    pub vat_code: u8,
    /// The receipt item's text (at most 128 characters).
    pub description: String,
}

impl Config {
    /// Reads the file at `path` and applies the process environment's overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path, std::env::vars())
    }

    /// Parses config text with the given environment (tests pass their own).
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        env::apply_overrides(&mut table, env)?;
        let raw = raw::RawConfig::from_table(table)?;
        raw.validate(path.parent().unwrap_or(Path::new(".")))
    }

    /// The workflow folders in load order (the operator's last, so it overrides).
    pub fn workflow_dirs(&self) -> Vec<&Path> {
        let mut dirs = vec![self.comfyui.workflows_dir.as_path()];
        dirs.extend(self.comfyui.extra_workflows_dir.as_deref());
        dirs
    }

    /// The preset folders in load order (the operator's last, so it overrides).
    pub fn preset_dirs(&self) -> Vec<&Path> {
        let mut dirs = vec![self.presets.dir.as_path()];
        dirs.extend(self.presets.extra_dir.as_deref());
        dirs
    }

    /// The pixel count input images are scaled to (`comfyui.megapixels`, default 1 MP).
    pub fn input_pixels(&self) -> u64 {
        (self.comfyui.models.megapixels.unwrap_or(1.0) * 1_000_000.0) as u64
    }

    /// The path of the generated admin token inside the data dir.
    pub fn admin_token_path(&self) -> PathBuf {
        self.storage.data_dir.join("admin.token")
    }
}
