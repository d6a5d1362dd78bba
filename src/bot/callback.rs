//! Inline-button data: one typed enum with one `encode` and one `decode`. Telegram allows 1 to 64
//! bytes; a round-trip test checks every variant at its longest.

use crate::domain::JobId;
use crate::domain::preset::{Category, valid_key};

use super::texts::Lang;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Callback {
    Menu,
    /// The preset categories.
    Categories,
    Category {
        category: Category,
        page: u8,
    },
    Preset {
        key: String,
    },
    OwnPrompt,
    TwoPhotos,
    Profile,
    Help,
    /// Confirm the draft with this nonce (a stale card's nonce no longer matches).
    Confirm {
        nonce: u32,
    },
    /// Back to choosing what to do with the same photos.
    Change,
    CancelDraft,
    CancelJob {
        job: JobId,
    },
    AsFile {
        job: JobId,
    },
    Again {
        job: JobId,
    },
    AnotherStyle {
        job: JobId,
    },
    EditFurther {
        job: JobId,
    },
    /// Send a finished job's result again (profile → recent edits).
    Result {
        job: JobId,
    },
    Recent,
    Payments,
    Promo,
    TopUp,
    SetLang {
        lang: Lang,
    },
    /// Buy pack `pack` (0-based, as in `billing.packs`) with Telegram Stars.
    StarsPack {
        pack: u8,
    },
    /// Weekly bonus notices on or off (the profile's switch).
    WeeklyNotices {
        on: bool,
    },
    /// "No more of these" under a weekly bonus notice.
    StopNotices,
}

pub const MAX_LEN: usize = 64;

impl Callback {
    pub fn encode(&self) -> String {
        match self {
            Callback::Menu => "m".into(),
            Callback::Categories => "cats".into(),
            Callback::Category { category, page } => format!("c:{}:{page}", category.as_str()),
            Callback::Preset { key } => format!("p:{key}"),
            Callback::OwnPrompt => "own".into(),
            Callback::TwoPhotos => "two".into(),
            Callback::Profile => "prof".into(),
            Callback::Help => "help".into(),
            Callback::Confirm { nonce } => format!("ok:{nonce}"),
            Callback::Change => "chg".into(),
            Callback::CancelDraft => "x".into(),
            Callback::CancelJob { job } => format!("cj:{job}"),
            Callback::AsFile { job } => format!("f:{job}"),
            Callback::Again { job } => format!("a:{job}"),
            Callback::AnotherStyle { job } => format!("s:{job}"),
            Callback::EditFurther { job } => format!("e:{job}"),
            Callback::Result { job } => format!("r:{job}"),
            Callback::Recent => "rec".into(),
            Callback::Payments => "pay".into(),
            Callback::Promo => "promo".into(),
            Callback::TopUp => "top".into(),
            Callback::SetLang { lang } => format!("l:{}", lang.code()),
            Callback::StarsPack { pack } => format!("xtr:{pack}"),
            Callback::WeeklyNotices { on } => format!("wn:{}", u8::from(*on)),
            Callback::StopNotices => "wn:stop".into(),
        }
    }

    /// Parses button data; anything forged, stale or malformed is `None`.
    pub fn decode(data: &str) -> Option<Callback> {
        if data.is_empty() || data.len() > MAX_LEN {
            return None;
        }
        let (tag, rest) = data.split_once(':').unwrap_or((data, ""));
        let job = || rest.parse::<JobId>().ok();
        Some(match (tag, rest) {
            ("m", "") => Callback::Menu,
            ("cats", "") => Callback::Categories,
            ("c", _) => {
                let (cat, page) = rest.split_once(':')?;
                Callback::Category {
                    category: Category::parse(cat)?,
                    page: page.parse().ok()?,
                }
            }
            ("p", key) if valid_key(key) => Callback::Preset { key: key.into() },
            ("own", "") => Callback::OwnPrompt,
            ("two", "") => Callback::TwoPhotos,
            ("prof", "") => Callback::Profile,
            ("help", "") => Callback::Help,
            ("ok", n) => Callback::Confirm {
                nonce: n.parse().ok()?,
            },
            ("chg", "") => Callback::Change,
            ("x", "") => Callback::CancelDraft,
            ("cj", _) => Callback::CancelJob { job: job()? },
            ("f", _) => Callback::AsFile { job: job()? },
            ("a", _) => Callback::Again { job: job()? },
            ("s", _) => Callback::AnotherStyle { job: job()? },
            ("e", _) => Callback::EditFurther { job: job()? },
            ("r", _) => Callback::Result { job: job()? },
            ("rec", "") => Callback::Recent,
            ("pay", "") => Callback::Payments,
            ("promo", "") => Callback::Promo,
            ("top", "") => Callback::TopUp,
            ("l", code) => Callback::SetLang {
                lang: Lang::parse(code)?,
            },
            ("xtr", n) => Callback::StarsPack {
                pack: n.parse().ok()?,
            },
            ("wn", "0") => Callback::WeeklyNotices { on: false },
            ("wn", "1") => Callback::WeeklyNotices { on: true },
            ("wn", "stop") => Callback::StopNotices,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<Callback> {
        let job = JobId::from_u128(u128::MAX);
        let mut v = vec![
            Callback::Menu,
            Callback::Categories,
            Callback::Preset {
                key: "a".repeat(crate::domain::preset::MAX_KEY_LEN),
            },
            Callback::OwnPrompt,
            Callback::TwoPhotos,
            Callback::Profile,
            Callback::Help,
            Callback::Confirm { nonce: u32::MAX },
            Callback::Change,
            Callback::CancelDraft,
            Callback::CancelJob { job },
            Callback::AsFile { job },
            Callback::Again { job },
            Callback::AnotherStyle { job },
            Callback::EditFurther { job },
            Callback::Result { job },
            Callback::Recent,
            Callback::Payments,
            Callback::Promo,
            Callback::TopUp,
            Callback::SetLang { lang: Lang::Ru },
            Callback::SetLang { lang: Lang::En },
            Callback::StarsPack { pack: u8::MAX },
            Callback::WeeklyNotices { on: false },
            Callback::WeeklyNotices { on: true },
            Callback::StopNotices,
        ];
        for category in Category::ALL {
            v.push(Callback::Category {
                category,
                page: u8::MAX,
            });
        }
        v
    }

    #[test]
    fn every_variant_round_trips_within_64_bytes() {
        for cb in every_variant() {
            let data = cb.encode();
            assert!(
                !data.is_empty() && data.len() <= MAX_LEN,
                "{cb:?} encodes to {} bytes",
                data.len()
            );
            assert_eq!(Callback::decode(&data), Some(cb));
        }
    }

    #[test]
    fn forged_and_malformed_data_is_refused() {
        for bad in [
            "",
            "zzz",
            "p:",
            "p:../../etc",
            "p:UPPER",
            "c:nope:0",
            "c:styles:999",
            "c:styles",
            "ok:-1",
            "ok:x",
            "cj:not-a-job",
            "l:de",
            "xtr:",
            "xtr:256",
            "wn:2",
            "m:extra",
            &"m".repeat(65),
        ] {
            assert_eq!(Callback::decode(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = Callback::decode(&s);
        }
    }
}
