//! The config as written (serde), and its conversion into the typed [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::values::{parse_duration, parse_time, parse_weekday};
use super::{
    Billing, Comfyui, Config, ConfigError, Log, LogFormat, Presets, Queue, Storage, Telegram, Web,
};

/// Text keys also take numbers and booleans: an environment override such as
/// `QWENEDIT_WEB__ADMIN_TOKEN=1234567890123456` reads as a TOML integer.
mod text {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }

    impl From<Scalar> for String {
        fn from(v: Scalar) -> String {
            match v {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            }
        }
    }

    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Scalar>::deserialize(d)?.map(String::from))
    }

    pub fn req<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(Scalar::deserialize(d)?.into())
    }
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    in_dir: PathBuf,
    out_dir: Option<PathBuf>,
    preset: Option<String>,
    prompt: Option<String>,
    user: Option<i64>,
    interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPresets {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTelegram {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    data_dir: PathBuf,
    queue_fsync: bool,
    #[serde(deserialize_with = "text::req")]
    retention: String,
    min_free_mb: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            data_dir: "/var/lib/qwenedit".into(),
            queue_fsync: true,
            retention: "7d".into(),
            min_free_mb: 200,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawComfyui {
    backends: Vec<String>,
    workflows_dir: PathBuf,
    extra_workflows_dir: Option<PathBuf>,
    default_workflow: String,
    #[serde(deserialize_with = "text::req")]
    job_timeout: String,
    pipeline_depth: usize,
    #[serde(deserialize_with = "text::opt")]
    diffusion_model: Option<String>,
    #[serde(deserialize_with = "text::opt")]
    text_encoder: Option<String>,
    #[serde(deserialize_with = "text::opt")]
    vae: Option<String>,
    #[serde(deserialize_with = "text::opt")]
    lora: Option<String>,
    steps: Option<u32>,
    cfg: Option<f64>,
    megapixels: Option<f64>,
}

impl Default for RawComfyui {
    fn default() -> Self {
        Self {
            backends: vec!["http://127.0.0.1:8188".into()],
            workflows_dir: "/usr/share/qwenedit/workflows".into(),
            extra_workflows_dir: None,
            default_workflow: "qwen-image-edit-2511".into(),
            job_timeout: "10m".into(),
            pipeline_depth: 2,
            diffusion_model: None,
            text_encoder: None,
            vae: None,
            lora: None,
            steps: None,
            cfg: None,
            megapixels: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWeb {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBilling {
    welcome_points: u32,
    edit_price: u32,
    weekly_bonus: u32,
    #[serde(deserialize_with = "text::req")]
    weekly_bonus_day: String,
    #[serde(deserialize_with = "text::req")]
    weekly_bonus_time: String,
    unlimited_users: Vec<i64>,
    test_mode: bool,
    #[serde(deserialize_with = "text::req")]
    time_zone: String,
    packs: Vec<super::Pack>,
    payments_per_minute: u32,
    payments_enabled: bool,
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
            time_zone: "Europe/Moscow".into(),
            packs: vec![
                super::Pack {
                    points: 100,
                    stars: 50,
                    rub: Some(99),
                    bonus: 0,
                },
                super::Pack {
                    points: 300,
                    stars: 140,
                    rub: Some(279),
                    bonus: 30,
                },
                super::Pack {
                    points: 1000,
                    stars: 400,
                    rub: Some(790),
                    bonus: 150,
                },
            ],
            payments_per_minute: 5,
            payments_enabled: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawQueue {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawYooKassa {
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
    fn validate(self, base: &Path) -> Result<Option<super::YooKassa>, ConfigError> {
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
            Some(super::Receipt {
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
        Ok(Some(super::YooKassa {
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
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let token = secret(
            "telegram.token",
            self.telegram.token,
            self.telegram.token_file,
            base,
        )?;
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
            api_url: url("telegram.api_url", &self.telegram.api_url)?,
            admins: self.telegram.admins,
            support: self.telegram.support.filter(|s| !s.trim().is_empty()),
            album_debounce: duration("telegram.album_debounce", &self.telegram.album_debounce)?,
            max_active_jobs: self.telegram.max_active_jobs.max(1),
            prompt_min: self.telegram.prompt_min,
            prompt_max: self.telegram.prompt_max,
            deny_list: self.telegram.deny_list.map(|p| resolve(base, p)),
            flood_per_minute: self.telegram.flood_per_minute.max(1),
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
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::key("storage.data_dir", "must not be empty"));
        }
        let storage = Storage {
            data_dir: resolve(base, self.storage.data_dir),
            queue_fsync: self.storage.queue_fsync,
            retention: positive_duration("storage.retention", &self.storage.retention)?,
            min_free_mb: self.storage.min_free_mb,
        };
        let backends = self
            .comfyui
            .backends
            .iter()
            .map(|b| url("comfyui.backends", b))
            .collect::<Result<Vec<_>, _>>()?;
        if backends.is_empty() {
            return Err(ConfigError::key(
                "comfyui.backends",
                "list at least one ComfyUI URL, e.g. [\"http://127.0.0.1:8188\"]",
            ));
        }
        let c = self.comfyui;
        if !(1..=8).contains(&c.pipeline_depth) {
            return Err(ConfigError::key("comfyui.pipeline_depth", "must be 1 to 8"));
        }
        if c.steps.is_some_and(|s| !(1..=200).contains(&s)) {
            return Err(ConfigError::key("comfyui.steps", "must be 1 to 200"));
        }
        if c.cfg.is_some_and(|v| !(0.0..=30.0).contains(&v)) {
            return Err(ConfigError::key("comfyui.cfg", "must be 0 to 30"));
        }
        if c.megapixels.is_some_and(|v| !(0.1..=16.0).contains(&v)) {
            return Err(ConfigError::key("comfyui.megapixels", "must be 0.1 to 16"));
        }
        if c.default_workflow.trim().is_empty() {
            return Err(ConfigError::key(
                "comfyui.default_workflow",
                "must not be empty",
            ));
        }
        let comfyui = Comfyui {
            backends,
            workflows_dir: resolve(base, c.workflows_dir),
            extra_workflows_dir: c.extra_workflows_dir.map(|d| resolve(base, d)),
            default_workflow: c.default_workflow,
            job_timeout: positive_duration("comfyui.job_timeout", &c.job_timeout)?,
            pipeline_depth: c.pipeline_depth,
            models: crate::comfy::ModelSettings {
                unet: c.diffusion_model,
                clip: c.text_encoder,
                vae: c.vae,
                lora: c.lora,
                steps: c.steps,
                cfg: c.cfg,
                megapixels: c.megapixels,
            },
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
            api_remote: self.web.api_remote,
        };
        if let Some(token) = &web.admin_token
            && token.expose_secret().len() < 16
        {
            return Err(ConfigError::key(
                "web.admin_token",
                "must be at least 16 characters long",
            ));
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
            time_zone: self.billing.time_zone.clone(),
            packs: self.billing.packs.clone(),
            payments_per_minute: self.billing.payments_per_minute.max(1),
            payments_enabled: self.billing.payments_enabled,
        };
        for (i, p) in billing.packs.iter().enumerate() {
            if p.points == 0 || p.stars == 0 || p.stars > 100_000 || p.rub == Some(0) {
                return Err(ConfigError::key(
                    format!("billing.packs[{i}]"),
                    "points and stars must be positive (stars at most 100000), rub positive if set",
                ));
            }
        }
        if billing.packs.len() > 8 {
            return Err(ConfigError::key("billing.packs", "at most 8 packs"));
        }
        if jiff::tz::TimeZone::get(&billing.time_zone).is_err() {
            return Err(ConfigError::key(
                "billing.time_zone",
                format!(
                    "{:?} is not a time zone name like \"Europe/Moscow\"",
                    billing.time_zone
                ),
            ));
        }
        if self.queue.max_attempts == 0 {
            return Err(ConfigError::key("queue.max_attempts", "must be at least 1"));
        }
        let backoff_base = duration("queue.backoff_base", &self.queue.backoff_base)?;
        let backoff_max = duration("queue.backoff_max", &self.queue.backoff_max)?;
        if backoff_base > backoff_max {
            return Err(ConfigError::key(
                "queue.backoff_base",
                format!(
                    "{:?} is longer than queue.backoff_max {:?}",
                    self.queue.backoff_base, self.queue.backoff_max
                ),
            ));
        }
        let queue = Queue {
            max_attempts: self.queue.max_attempts,
            lease_ttl: positive_duration("queue.lease_ttl", &self.queue.lease_ttl)?,
            backoff_base,
            backoff_max,
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
        if !has_levels(&self.log.level) {
            return Err(ConfigError::key(
                "log.level",
                format!(
                    "{:?} names no level; write e.g. \"info\" or \"qwenedit=debug,warn\"",
                    self.log.level
                ),
            ));
        }
        let log = Log {
            level: self.log.level,
            format,
        };
        let watch = match self.watch {
            None => None,
            Some(w) => {
                if w.preset.is_some() == w.prompt.is_some() {
                    return Err(ConfigError::key(
                        "watch.preset",
                        "give exactly one of watch.preset and watch.prompt",
                    ));
                }
                let in_dir = resolve(base, w.in_dir);
                Some(super::Watch {
                    out_dir: w
                        .out_dir
                        .map(|d| resolve(base, d))
                        .unwrap_or_else(|| in_dir.join("edited")),
                    in_dir,
                    preset: w.preset,
                    prompt: w.prompt,
                    user: w.user,
                    interval: match &w.interval {
                        Some(t) => positive_duration("watch.interval", t)?,
                        None => std::time::Duration::from_secs(2),
                    },
                })
            }
        };
        let presets = Presets {
            dir: resolve(base, self.presets.dir),
            extra_dir: self.presets.extra_dir.map(|d| resolve(base, d)),
        };
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

/// Resolves a path relative to the config file's folder, dropping `.` and `..` lexically so
/// messages show `/srv/qwenedit/data`, not `/srv/qwenedit/examples/../data`.
fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    use std::path::Component;
    let joined = if path.is_absolute() {
        path
    } else {
        base.join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
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
/// `123456:ABC-def_ghi`: what @BotFather hands out (never shown in errors).
fn looks_like_bot_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, rest)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Every directive of a log filter ends in a level (`info`, `qwenedit=debug`).
fn has_levels(filter: &str) -> bool {
    const LEVELS: [&str; 12] = [
        "trace", "debug", "info", "warn", "error", "off", "0", "1", "2", "3", "4", "5",
    ];
    let mut parts = filter.split(',').map(str::trim).filter(|p| !p.is_empty());
    let mut any = false;
    parts.all(|p| {
        any = true;
        let level = p.rsplit_once('=').map_or(p, |(_, l)| l);
        LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim()))
    }) && any
}

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
            if text.trim().is_empty() {
                return Err(ConfigError::key(
                    format!("{key}_file"),
                    format!("{} is empty", path.display()),
                ));
            }
            // Lines starting with `#` are comments: the .deb installs a credentials file with
            // only a comment, which means "no token yet".
            let mut lines = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'));
            match (lines.next(), lines.next()) {
                (None, _) => Ok(None),
                (Some(secret), None) => Ok(Some(SecretString::from(secret.to_string()))),
                (Some(_), Some(_)) => Err(ConfigError::key(
                    format!("{key}_file"),
                    format!("{} has more than one line besides comments", path.display()),
                )),
            }
        }
        (None, None) => Ok(None),
    }
}
