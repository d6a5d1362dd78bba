//! Loading presets from `presets/*.toml` (the shipped folder, then the operator's, which
//! overrides same-named files). A bad file is refused with its path and the field at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::Points;
use crate::domain::preset::{Category, Localized, Preset, valid_key};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("preset {file}: {field}: {message}")]
pub struct PresetError {
    pub file: String,
    pub field: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocalized {
    ru: String,
    en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreset {
    key: String,
    category: String,
    emoji: String,
    title: RawLocalized,
    description: RawLocalized,
    prompt: String,
    price: Option<i64>,
    workflow: Option<String>,
    #[serde(default = "one")]
    images: i64,
}

fn one() -> i64 {
    1
}

/// All presets, in a stable order (category, then key).
#[derive(Clone, Debug, Default)]
pub struct Presets {
    by_key: BTreeMap<String, Preset>,
}

impl Presets {
    pub fn get(&self, key: &str) -> Option<&Preset> {
        self.by_key.get(key)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = &Preset> {
        let mut v: Vec<&Preset> = self.by_key.values().collect();
        v.sort_by(|a, b| (a.category, &a.key).cmp(&(b.category, &b.key)));
        v.into_iter()
    }

    pub fn in_category(&self, category: Category) -> Vec<&Preset> {
        self.all().filter(|p| p.category == category).collect()
    }

    /// Loads every `*.toml` of `dirs` in order; a later folder's file replaces an earlier
    /// preset with the same key. Missing folders are skipped.
    pub fn load(dirs: &[&Path]) -> Result<Self, PresetError> {
        let mut by_key = BTreeMap::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            let mut seen = BTreeMap::new();
            for path in paths {
                let preset = parse_file(&path)?;
                if let Some(other) = seen.insert(preset.key.clone(), path.clone()) {
                    return Err(PresetError {
                        file: path.display().to_string(),
                        field: "key".into(),
                        message: format!("{:?} is also the key of {}", preset.key, other.display()),
                    });
                }
                by_key.insert(preset.key.clone(), preset);
            }
        }
        Ok(Self { by_key })
    }
}

pub fn parse_file(path: &Path) -> Result<Preset, PresetError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PresetError {
        file: file.clone(),
        field: "(file)".into(),
        message: e.to_string(),
    })?;
    parse(&file, &text)
}

pub fn parse(file: &str, text: &str) -> Result<Preset, PresetError> {
    let err = |field: &str, message: String| PresetError {
        file: file.to_string(),
        field: field.to_string(),
        message,
    };
    let table: toml::Table =
        toml::from_str(text).map_err(|e| err("(syntax)", e.message().to_string()))?;
    let raw: RawPreset =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let field = e.path().to_string();
            err(&field, e.into_inner().message().trim().to_string())
        })?;
    if !valid_key(&raw.key) {
        return Err(err(
            "key",
            format!("{:?} must be 1 to 32 of a-z, 0-9, _ and -", raw.key),
        ));
    }
    let category = Category::parse(&raw.category).ok_or_else(|| {
        let known: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        err(
            "category",
            format!("{:?} is not one of {}", raw.category, known.join(", ")),
        )
    })?;
    if raw.emoji.trim().is_empty() || raw.emoji.chars().count() > 8 {
        return Err(err("emoji", "must be one emoji".into()));
    }
    for (field, value, max) in [
        ("title.ru", &raw.title.ru, 40),
        ("title.en", &raw.title.en, 40),
        ("description.ru", &raw.description.ru, 300),
        ("description.en", &raw.description.en, 300),
        ("prompt", &raw.prompt, 2000),
    ] {
        let n = value.trim().chars().count();
        if n == 0 || n > max {
            return Err(err(
                field,
                format!("must be 1 to {max} characters, has {n}"),
            ));
        }
    }
    let price = match raw.price {
        None => None,
        Some(p) if (0..=1_000_000).contains(&p) => Some(Points::new(p as u32)),
        Some(p) => return Err(err("price", format!("{p} is not 0 to 1000000 points"))),
    };
    if !(1..=3).contains(&raw.images) {
        return Err(err("images", format!("{} is not 1, 2 or 3", raw.images)));
    }
    if category == Category::Combine && raw.images < 2 {
        return Err(err("images", "a combine preset takes 2 or 3 photos".into()));
    }
    Ok(Preset {
        key: raw.key,
        category,
        emoji: raw.emoji.trim().to_string(),
        title: Localized {
            ru: raw.title.ru.trim().to_string(),
            en: raw.title.en.trim().to_string(),
        },
        description: Localized {
            ru: raw.description.ru.trim().to_string(),
            en: raw.description.en.trim().to_string(),
        },
        prompt: raw.prompt.trim().to_string(),
        price,
        workflow: raw.workflow.filter(|w| !w.trim().is_empty()),
        images: raw.images as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
key = "anime"
category = "styles"
emoji = "🎌"
prompt = "Redraw the photo as a clean anime illustration."
[title]
ru = "Аниме"
en = "Anime"
[description]
ru = "Рисунок в стиле аниме"
en = "An anime drawing"
"#;

    #[test]
    fn parses_a_preset() {
        let p = parse("anime.toml", GOOD).unwrap();
        assert_eq!(p.key, "anime");
        assert_eq!(p.category, Category::Styles);
        assert_eq!(p.images, 1);
        assert_eq!(p.title.get("en"), "Anime");
        assert_eq!(p.title.get("ru"), "Аниме");
    }

    #[test]
    fn names_the_field_at_fault() {
        let bad = GOOD.replace("styles", "nope");
        assert_eq!(parse("x.toml", &bad).unwrap_err().field, "category");
        let bad = GOOD.replace("key = \"anime\"", "key = \"Anime!\"");
        assert_eq!(parse("x.toml", &bad).unwrap_err().field, "key");
        let bad = GOOD.replace("en = \"Anime\"", "en = 5");
        assert_eq!(parse("x.toml", &bad).unwrap_err().field, "title.en");
        let bad = format!("images = 4\n{GOOD}");
        assert_eq!(parse("x.toml", &bad).unwrap_err().field, "images");
        let bad = format!("colour = 4\n{GOOD}");
        assert!(
            parse("x.toml", &bad)
                .unwrap_err()
                .message
                .contains("colour")
        );
    }
}
