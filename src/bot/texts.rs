//! The bot's texts: Fluent files in `locales/{ru,en}/main.ftl`, compiled into the binary.
//! Russian plurals ("1 балл", "2 балла", "5 баллов") come from Fluent's plural rules.

use std::sync::Arc;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

/// A language the bot speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// From Telegram's `language_code`: English for English speakers, Russian otherwise.
    pub fn from_telegram(code: Option<&str>) -> Lang {
        match code.map(|c| c.split(['-', '_']).next().unwrap_or("")) {
            Some("en") => Lang::En,
            _ => Lang::Ru,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Ru => Lang::En,
            Lang::En => Lang::Ru,
        }
    }
}

const RU: &str = include_str!("../../locales/ru/main.ftl");
const EN: &str = include_str!("../../locales/en/main.ftl");

/// Both languages' bundles; cheap to clone.
#[derive(Clone)]
pub struct Texts {
    ru: Arc<FluentBundle<FluentResource>>,
    en: Arc<FluentBundle<FluentResource>>,
}

fn bundle(lang: &str, source: &str) -> FluentBundle<FluentResource> {
    let resource = FluentResource::try_new(source.to_string())
        .unwrap_or_else(|(_, errors)| panic!("locales/{lang}/main.ftl: {errors:?}"));
    let id: unic_langid::LanguageIdentifier = lang.parse().expect("language id");
    let mut b = FluentBundle::new_concurrent(vec![id]);
    // No Unicode isolation marks around variables: Telegram shows them as garbage.
    b.set_use_isolating(false);
    b.add_resource(resource)
        .unwrap_or_else(|errors| panic!("locales/{lang}/main.ftl: {errors:?}"));
    b
}

impl Default for Texts {
    fn default() -> Self {
        Self {
            ru: Arc::new(bundle("ru", RU)),
            en: Arc::new(bundle("en", EN)),
        }
    }
}

/// An argument value.
pub enum Arg<'a> {
    Num(i64),
    Str(&'a str),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Num(v)
    }
}

impl From<u8> for Arg<'_> {
    fn from(v: u8) -> Self {
        Arg::Num(i64::from(v))
    }
}

impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Arg::Num(i64::from(v))
    }
}

impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Num(i64::from(v))
    }
}

impl From<usize> for Arg<'_> {
    fn from(v: usize) -> Self {
        Arg::Num(v as i64)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Str(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Str(v)
    }
}

impl Texts {
    fn bundle(&self, lang: Lang) -> &FluentBundle<FluentResource> {
        match lang {
            Lang::Ru => &self.ru,
            Lang::En => &self.en,
        }
    }

    /// The text `key` in `lang`. A missing key shows as the key itself (and is caught by the
    /// test that every key exists in both languages).
    pub fn get(&self, lang: Lang, key: &str, args: &[(&str, Arg<'_>)]) -> String {
        let bundle = self.bundle(lang);
        let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
            tracing::error!(key, lang = lang.code(), "missing text");
            return key.to_string();
        };
        let mut fargs = FluentArgs::new();
        for (name, value) in args {
            match value {
                Arg::Num(n) => fargs.set(*name, FluentValue::from(*n)),
                Arg::Str(s) => fargs.set(*name, FluentValue::from(*s)),
            }
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fargs), &mut errors);
        if !errors.is_empty() {
            tracing::error!(key, lang = lang.code(), ?errors, "text formatting failed");
        }
        text.into_owned()
    }

    /// A text without arguments.
    pub fn t(&self, lang: Lang, key: &str) -> String {
        self.get(lang, key, &[])
    }
}

/// Every message id in a Fluent source, for the completeness test.
#[cfg(test)]
pub fn message_ids(source: &str) -> Vec<String> {
    source
        .lines()
        .filter(|l| !l.starts_with([' ', '#', '\t']) && l.contains(" ="))
        .filter_map(|l| l.split(" =").next())
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_keys() {
        let mut ru = message_ids(RU);
        let mut en = message_ids(EN);
        ru.sort();
        en.sort();
        assert_eq!(ru, en);
        assert!(ru.len() > 50);
    }

    #[test]
    fn russian_plurals() {
        let t = Texts::default();
        let p = |n: i64| t.get(Lang::Ru, "balance", &[("n", n.into())]);
        assert_eq!(p(1), "На счёте 1 балл.");
        assert_eq!(p(2), "На счёте 2 балла.");
        assert_eq!(p(5), "На счёте 5 баллов.");
        assert_eq!(p(21), "На счёте 21 балл.");
        assert_eq!(p(12), "На счёте 12 баллов.");
        assert_eq!(
            t.get(Lang::En, "balance", &[("n", 1.into())]),
            "You have 1 point."
        );
        assert_eq!(
            t.get(Lang::En, "balance", &[("n", 30.into())]),
            "You have 30 points."
        );
    }

    #[test]
    fn every_message_formats_in_both_languages() {
        let t = Texts::default();
        for id in message_ids(RU) {
            for lang in [Lang::Ru, Lang::En] {
                let text = t.get(
                    lang,
                    &id,
                    &[
                        ("n", 2.into()),
                        ("min", 5.into()),
                        ("max", 1000.into()),
                        ("balance", 10.into()),
                        ("position", 3.into()),
                        ("wait", 20.into()),
                        ("percent", 50.into()),
                        ("page", 1.into()),
                        ("pages", 2.into()),
                        ("got", 1.into()),
                        ("edits", 4.into()),
                        ("mb", 20.into()),
                        ("side", 12000.into()),
                        ("mp", 50.into()),
                        ("users", 1.into()),
                        ("active", 1.into()),
                        ("jobs", 1.into()),
                        ("queue", 1.into()),
                        ("running", 1.into()),
                        ("sent", 1.into()),
                        ("failed", 0.into()),
                        ("user", 42.into()),
                        ("emoji", "🎌".into()),
                        ("title", "T".into()),
                        ("description", "D".into()),
                        ("first", "a".into()),
                        ("second", "b".into()),
                        ("what", "W".into()),
                        ("why", "Y".into()),
                        ("prompt", "P".into()),
                        ("bar", "▓▓░░".into()),
                        ("category", "C".into()),
                        ("lang", "L".into()),
                        ("support", "@help".into()),
                        ("backends", "B".into()),
                        ("usage", "U".into()),
                        ("bonus", 30.into()),
                        ("stars", 140.into()),
                        ("total", 330.into()),
                        ("rub", "279".into()),
                        ("debt", 0.into()),
                        ("email", "ann@example.ru".into()),
                        ("admin", "no".into()),
                        ("unlimited", "no".into()),
                        ("banned", "no".into()),
                        ("job", "J".into()),
                        ("state", "queued".into()),
                        ("attempts", 1.into()),
                        ("error", "-".into()),
                        ("backend", "B0".into()),
                        ("reason", "R".into()),
                    ],
                );
                assert!(!text.is_empty(), "{id} ({lang:?}) is empty");
                assert!(
                    !text.contains('$'),
                    "{id} ({lang:?}) left a variable: {text}"
                );
            }
        }
    }
}
