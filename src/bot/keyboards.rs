//! Menus and buttons.

use super::callback::Callback;
use super::texts::{Lang, Texts};
use super::tg::Markup;
use crate::domain::JobId;
use crate::domain::preset::{Category, Preset};
use crate::presets::Presets;

/// Presets per page of a category.
pub const PAGE: usize = 8;

/// The reply-keyboard labels, in both languages (a button pressed under an old language must
/// still work).
pub const MENU_KEYS: [&str; 5] = [
    "menu-styles",
    "menu-own",
    "menu-two",
    "menu-profile",
    "menu-help",
];

pub fn reply_menu(t: &Texts, lang: Lang) -> Markup {
    let l = |k: &str| t.t(lang, k);
    Markup::Reply(vec![
        vec![l("menu-styles"), l("menu-own")],
        vec![l("menu-two"), l("menu-profile")],
        vec![l("menu-help")],
    ])
}

pub fn inline_menu(t: &Texts, lang: Lang) -> Markup {
    let l = |k: &str| t.t(lang, k);
    Markup::Inline(vec![
        vec![
            (l("menu-styles"), Callback::Categories),
            (l("menu-own"), Callback::OwnPrompt),
        ],
        vec![
            (l("menu-two"), Callback::TwoPhotos),
            (l("menu-profile"), Callback::Profile),
        ],
        vec![(l("menu-help"), Callback::Help)],
    ])
}

/// Which menu entry a text is, if it is one (in either language).
pub fn menu_entry(t: &Texts, text: &str) -> Option<&'static str> {
    MENU_KEYS.into_iter().find(|k| {
        [Lang::Ru, Lang::En]
            .into_iter()
            .any(|lang| t.t(lang, k) == text)
    })
}

pub fn category_label(t: &Texts, lang: Lang, c: Category) -> String {
    t.t(lang, &format!("cat-{}", c.as_str()))
}

/// Categories with at least one preset of at most `max_images` photos.
pub fn categories(t: &Texts, lang: Lang, presets: &Presets, max_images: Option<u8>) -> Markup {
    let mut buttons: Vec<(String, Callback)> = Category::ALL
        .into_iter()
        .filter(|c| {
            presets
                .in_category(*c)
                .iter()
                .any(|p| max_images.is_none_or(|m| p.images <= m))
        })
        .map(|c| {
            (
                category_label(t, lang, c),
                Callback::Category {
                    category: c,
                    page: 0,
                },
            )
        })
        .collect();
    let mut rows: Vec<Vec<(String, Callback)>> = Vec::new();
    while !buttons.is_empty() {
        let rest = buttons.split_off(buttons.len().min(2));
        rows.push(std::mem::replace(&mut buttons, rest));
    }
    rows.push(vec![(t.t(lang, "menu-back"), Callback::Menu)]);
    Markup::Inline(rows)
}

/// One page of a category: preset buttons, then ◀️ page ▶️, then back.
pub fn category_page(
    t: &Texts,
    lang: Lang,
    category: Category,
    list: &[&Preset],
    page: usize,
) -> Markup {
    let pages = list.len().div_ceil(PAGE).max(1);
    let page = page.min(pages - 1);
    let mut rows: Vec<Vec<(String, Callback)>> = list
        .iter()
        .skip(page * PAGE)
        .take(PAGE)
        .map(|p| {
            vec![(
                format!("{} {}", p.emoji, p.title.get(lang.code())),
                Callback::Preset { key: p.key.clone() },
            )]
        })
        .collect();
    if pages > 1 {
        let mut nav = Vec::new();
        if page > 0 {
            nav.push((
                t.t(lang, "nav-prev"),
                Callback::Category {
                    category,
                    page: (page - 1) as u8,
                },
            ));
        }
        nav.push((
            t.get(
                lang,
                "page",
                &[("page", (page + 1).into()), ("pages", pages.into())],
            ),
            Callback::Category {
                category,
                page: page as u8,
            },
        ));
        if page + 1 < pages {
            nav.push((
                t.t(lang, "nav-next"),
                Callback::Category {
                    category,
                    page: (page + 1) as u8,
                },
            ));
        }
        rows.push(nav);
    }
    rows.push(vec![(t.t(lang, "nav-back"), Callback::Categories)]);
    Markup::Inline(rows)
}

pub fn photo_first(t: &Texts, lang: Lang) -> Markup {
    Markup::Inline(vec![
        vec![(t.t(lang, "choose-style"), Callback::Categories)],
        vec![(t.t(lang, "write-own"), Callback::OwnPrompt)],
        vec![(t.t(lang, "btn-cancel"), Callback::CancelDraft)],
    ])
}

pub fn confirm(t: &Texts, lang: Lang, nonce: u32) -> Markup {
    Markup::Inline(vec![vec![
        (t.t(lang, "btn-confirm"), Callback::Confirm { nonce }),
        (t.t(lang, "btn-change"), Callback::Change),
        (t.t(lang, "btn-cancel"), Callback::CancelDraft),
    ]])
}

pub fn low_balance(t: &Texts, lang: Lang) -> Markup {
    Markup::Inline(vec![vec![
        (t.t(lang, "btn-topup"), Callback::TopUp),
        (t.t(lang, "btn-change"), Callback::Change),
        (t.t(lang, "btn-cancel"), Callback::CancelDraft),
    ]])
}

pub fn queued(t: &Texts, lang: Lang, job: JobId) -> Markup {
    Markup::Inline(vec![vec![(
        t.t(lang, "btn-cancel-job"),
        Callback::CancelJob { job },
    )]])
}

pub fn result(t: &Texts, lang: Lang, job: JobId) -> Markup {
    Markup::Inline(vec![
        vec![(t.t(lang, "btn-as-file"), Callback::AsFile { job })],
        vec![
            (t.t(lang, "btn-again"), Callback::Again { job }),
            (t.t(lang, "btn-another"), Callback::AnotherStyle { job }),
        ],
        vec![
            (t.t(lang, "btn-further"), Callback::EditFurther { job }),
            (t.t(lang, "btn-menu"), Callback::Menu),
        ],
    ])
}

/// `notices`: whether the weekly bonus notice is on (the button switches it).
pub fn profile(t: &Texts, lang: Lang, notices: bool) -> Markup {
    let notices = if notices {
        (
            t.t(lang, "btn-notices-on"),
            Callback::WeeklyNotices { on: false },
        )
    } else {
        (
            t.t(lang, "btn-notices-off-state"),
            Callback::WeeklyNotices { on: true },
        )
    };
    Markup::Inline(vec![
        vec![
            (t.t(lang, "btn-topup"), Callback::TopUp),
            (t.t(lang, "btn-promo"), Callback::Promo),
        ],
        vec![
            (t.t(lang, "btn-recent"), Callback::Recent),
            (t.t(lang, "btn-payments"), Callback::Payments),
        ],
        vec![notices],
        vec![(
            t.t(lang, "btn-lang"),
            Callback::SetLang { lang: lang.other() },
        )],
        vec![(t.t(lang, "menu-back"), Callback::Menu)],
    ])
}

/// "100 points" or "300 + 30 bonus points": a pack as the user sees it (button, invoice title).
pub fn pack_points(t: &Texts, lang: Lang, points: u32, bonus: u32) -> String {
    if bonus == 0 {
        t.get(lang, "pack-points", &[("n", points.into())])
    } else {
        t.get(
            lang,
            "pack-points-bonus",
            &[("n", points.into()), ("bonus", bonus.into())],
        )
    }
}

/// One row per pack, paid with Stars. Other ways to pay add their own rows (see `topup`).
pub fn stars_pack_rows(
    t: &Texts,
    lang: Lang,
    packs: &[crate::config::Pack],
) -> Vec<Vec<(String, Callback)>> {
    packs
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((u8::try_from(i).ok()?, p)))
        .map(|(i, p)| {
            vec![(
                t.get(
                    lang,
                    "pack-stars",
                    &[
                        (
                            "what",
                            pack_points(t, lang, p.points, p.bonus).as_str().into(),
                        ),
                        ("stars", p.stars.into()),
                    ],
                ),
                Callback::StarsPack { pack: i },
            )]
        })
        .collect()
}

/// The top-up screen's buttons: the packs' rows, then back to the menu.
pub fn topup(t: &Texts, lang: Lang, packs: &[crate::config::Pack]) -> Markup {
    let mut rows = stars_pack_rows(t, lang, packs);
    rows.push(vec![(t.t(lang, "menu-back"), Callback::Menu)]);
    Markup::Inline(rows)
}
