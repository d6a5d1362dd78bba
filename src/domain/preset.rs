//! Presets: ready-made edits users pick from a menu.

use super::Points;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Styles,
    Portraits,
    Products,
    Lighting,
    Animation,
    Enhancement,
    /// Presets that take two or three photos (try-on, combine).
    Combine,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Styles,
        Category::Portraits,
        Category::Products,
        Category::Lighting,
        Category::Animation,
        Category::Enhancement,
        Category::Combine,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Styles => "styles",
            Category::Portraits => "portraits",
            Category::Products => "products",
            Category::Lighting => "lighting",
            Category::Animation => "animation",
            Category::Enhancement => "enhancement",
            Category::Combine => "combine",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Text in the two languages the bot speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Localized {
    pub ru: String,
    pub en: String,
}

impl Localized {
    pub fn get(&self, lang: &str) -> &str {
        if lang == "en" { &self.en } else { &self.ru }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Stable: stored in jobs and callback data. Lowercase letters, digits, `_` and `-`.
    pub key: String,
    pub category: Category,
    pub emoji: String,
    pub title: Localized,
    pub description: Localized,
    /// What is asked of the model (our own wording, in English).
    pub prompt: String,
    /// Overrides `billing.edit_price`.
    pub price: Option<Points>,
    /// Overrides `comfyui.default_workflow`.
    pub workflow: Option<String>,
    /// Photos it takes: 1 to 3.
    pub images: u8,
}

/// The longest key that still fits callback data with room to spare.
pub const MAX_KEY_LEN: usize = 32;

pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
