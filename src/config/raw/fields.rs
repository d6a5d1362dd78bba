//! Helpers the sections share: text keys, paths, URLs, durations, secrets, token and log checks.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::config::ConfigError;
use crate::config::values::parse_duration;

/// Text keys also take numbers and booleans: an environment override such as
/// `QWENEDIT_WEB__ADMIN_TOKEN=1234567890123456` reads as a TOML integer.
pub(super) mod text {
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

/// Resolves a path relative to the config file's folder, dropping `.` and `..` lexically so
/// messages show `/srv/qwenedit/data`, not `/srv/qwenedit/examples/../data`.
pub(super) fn resolve(base: &Path, path: PathBuf) -> PathBuf {
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

pub(super) fn url(key: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
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

pub(super) fn duration(key: &str, text: &str) -> Result<std::time::Duration, ConfigError> {
    parse_duration(text).map_err(|m| ConfigError::key(key, m))
}

pub(super) fn positive_duration(key: &str, text: &str) -> Result<std::time::Duration, ConfigError> {
    let d = duration(key, text)?;
    if d.is_zero() {
        return Err(ConfigError::key(key, "must be longer than zero"));
    }
    Ok(d)
}

/// `123456:ABC-def_ghi`: what @BotFather hands out (never shown in errors).
pub(super) fn looks_like_bot_token(token: &str) -> bool {
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
pub(super) fn has_levels(filter: &str) -> bool {
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

/// A secret given inline or as `<key>_file`; both at once is a mistake.
pub(super) fn secret(
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
