//! Photos and documents from users: size checks, download, the engine's upload checks, albums
//! collected with a short debounce, then what the dialogue does with them.

use super::ctx::Ctx;
use super::dialog::{Album, Step};
use super::flow;
use super::keyboards;
use crate::media::Rejection;

/// Telegram's download limit for bots (without a local Bot API server).
const TELEGRAM_MAX: u32 = 20 * 1024 * 1024;
/// Photos one edit takes at most (Qwen-Image-Edit: image1..image3).
pub const MAX_PHOTOS: usize = 3;

/// Downloads and checks one file; on failure tells the user why and returns `None`.
async fn fetch(ctx: &Ctx, file_id: &str, size: u32) -> Option<String> {
    let limits = ctx.app().media.limits().clone();
    if u64::from(size) > limits.max_bytes || size > TELEGRAM_MAX {
        let mb = limits.max_bytes / (1024 * 1024);
        ctx.say(
            &ctx.tr("bad-too-big", &[("mb", (mb as i64).into())]),
            Default::default(),
        )
        .await;
        return None;
    }
    if crate::ops::disk_full(ctx.app()) {
        ctx.say(&ctx.t("busy-disk"), Default::default()).await;
        return None;
    }
    let _admitted = ctx.app().media.admit().await;
    let bytes = match ctx.s.tg.download(file_id).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(chat = ctx.chat, error = %e, "download failed");
            ctx.say(&ctx.t("bad-download"), Default::default()).await;
            return None;
        }
    };
    let target = ctx.app().config.input_pixels();
    match ctx.app().media.check(bytes, target.max(1_000_000)).await {
        Ok(n) => match store(ctx, n.png).await {
            Ok(name) => Some(name),
            Err(e) => {
                tracing::error!(error = %e, "cannot store an input");
                ctx.say(&ctx.t("busy-disk"), Default::default()).await;
                None
            }
        },
        Err(r) => {
            tracing::info!(chat = ctx.chat, user = %ctx.user, rejection = r.code(), "upload refused");
            ctx.say(&rejection_text(ctx, &r), Default::default()).await;
            None
        }
    }
}

/// Stores a checked input under a name of ours, off the async runtime (a 1 MP PNG is ≈ 2 MB).
pub async fn store(ctx: &Ctx, png: Vec<u8>) -> std::io::Result<String> {
    let data_dir = ctx.app().config.storage.data_dir.clone();
    tokio::task::spawn_blocking(move || crate::files::store_input(&data_dir, &png))
        .await
        .map_err(std::io::Error::other)?
}

pub fn rejection_text(ctx: &Ctx, r: &Rejection) -> String {
    match r {
        Rejection::Heic => ctx.t("bad-heic"),
        Rejection::Gif => ctx.t("bad-gif"),
        Rejection::Video => ctx.t("bad-video"),
        Rejection::Pdf => ctx.t("bad-pdf"),
        Rejection::Svg => ctx.t("bad-svg"),
        Rejection::TooBig { max, .. } => ctx.tr(
            "bad-too-big",
            &[("mb", ((max / (1024 * 1024)) as i64).into())],
        ),
        Rejection::TooWide { max_side, .. } => {
            ctx.tr("bad-too-wide", &[("side", (*max_side).into())])
        }
        Rejection::TooManyPixels { max_pixels, .. } => ctx.tr(
            "bad-too-many-pixels",
            &[("mp", ((max_pixels / 1_000_000) as i64).into())],
        ),
        Rejection::Corrupt | Rejection::Empty => ctx.t("bad-corrupt"),
        Rejection::Unsupported(_) => ctx.t("bad-format"),
    }
}

/// A photo or document arrived.
pub async fn received(ctx: &Ctx, file_id: &str, size: u32, group: Option<String>) {
    match group {
        None => {
            if let Some(name) = fetch(ctx, file_id, size).await {
                add(ctx, vec![name]).await;
            }
        }
        Some(group) => {
            let fetched = fetch_quiet(ctx, file_id, size).await;
            album_item(ctx, group, fetched).await;
        }
    }
}

/// In an album, failures are reported once, when the album is complete.
async fn fetch_quiet(ctx: &Ctx, file_id: &str, size: u32) -> Result<String, ()> {
    let mut d = ctx.dialog();
    if d.album
        .as_ref()
        .is_some_and(|a| a.photos.len() >= MAX_PHOTOS)
    {
        return Err(());
    }
    drop(d.album.take());
    fetch(ctx, file_id, size).await.ok_or(())
}

/// A non-photo item of an album (a video).
pub async fn album_unsupported(ctx: &Ctx, group: String) {
    let mut d = ctx.dialog();
    let album = start_album(&mut d.album, &group);
    album.mixed = true;
    ctx.save(d);
    super::schedule_album_flush(ctx, group);
}

async fn album_item(ctx: &Ctx, group: String, fetched: Result<String, ()>) {
    let mut d = ctx.dialog();
    let fresh = d.album.as_ref().is_none_or(|a| a.group != group);
    let album = start_album(&mut d.album, &group);
    match fetched {
        Ok(name) if album.photos.len() < MAX_PHOTOS => album.photos.push(name),
        Ok(_) => album.too_many = true,
        Err(()) if album.photos.len() >= MAX_PHOTOS => album.too_many = true,
        Err(()) => album.mixed = true,
    }
    ctx.save(d);
    if fresh {
        super::schedule_album_flush(ctx, group);
    }
}

fn start_album<'a>(slot: &'a mut Option<Album>, group: &str) -> &'a mut Album {
    if slot.as_ref().is_none_or(|a| a.group != group) {
        *slot = Some(Album {
            group: group.to_string(),
            ..Album::default()
        });
    }
    slot.as_mut().expect("just set")
}

/// The album's debounce ran out: use what was collected.
pub async fn album_done(ctx: &Ctx, group: &str) {
    let mut d = ctx.dialog();
    let Some(album) = d.album.take().filter(|a| a.group == group) else {
        return;
    };
    ctx.save(d);
    if album.too_many {
        ctx.say(
            &ctx.tr("album-too-big", &[("max", MAX_PHOTOS.into())]),
            Default::default(),
        )
        .await;
        return;
    }
    if album.mixed {
        ctx.say(&ctx.t("album-mixed"), Default::default()).await;
        return;
    }
    if !album.photos.is_empty() {
        add(ctx, album.photos).await;
    }
}

/// New photos for the dialogue.
pub async fn add(ctx: &Ctx, names: Vec<String>) {
    let mut d = ctx.dialog();
    match std::mem::take(&mut d.step) {
        Step::AwaitPhotos {
            preset,
            need,
            mut got,
        } => {
            got.extend(names);
            got.truncate(MAX_PHOTOS);
            if got.len() >= usize::from(need) {
                match preset {
                    Some(key) => {
                        got.truncate(usize::from(need));
                        ctx.save(d);
                        flow::confirm_card(ctx, None, got, Some(key), None).await;
                    }
                    None => {
                        let n = got.len();
                        d.step = Step::AwaitPrompt { photos: got };
                        ctx.save(d);
                        if n >= 2 {
                            photos_menu(ctx, n).await;
                        } else {
                            ctx.say(&ctx.t("own-ask"), Default::default()).await;
                        }
                    }
                }
            } else {
                let got_n = got.len();
                d.step = Step::AwaitPhotos { preset, need, got };
                ctx.save(d);
                ctx.say(
                    &ctx.tr("send-photo-n", &[("got", got_n.into()), ("n", need.into())]),
                    Default::default(),
                )
                .await;
            }
        }
        Step::AwaitPrompt { mut photos } if photos.len() < MAX_PHOTOS => {
            photos.extend(names);
            photos.truncate(MAX_PHOTOS);
            let n = photos.len();
            d.step = Step::AwaitPrompt { photos };
            ctx.save(d);
            photos_menu(ctx, n).await;
        }
        _ => {
            let mut photos = names;
            photos.truncate(MAX_PHOTOS);
            let n = photos.len();
            d.step = Step::HavePhotos { photos };
            ctx.save(d);
            photos_menu(ctx, n).await;
        }
    }
}

/// "Got your photo(s): what shall I do?" — for two or more photos, the combine presets.
async fn photos_menu(ctx: &Ctx, n: usize) {
    if n == 1 {
        ctx.say(
            &ctx.t("photo-first"),
            keyboards::photo_first(&ctx.s.texts, ctx.lang),
        )
        .await;
        return;
    }
    let presets = ctx.app().presets.get();
    let list: Vec<_> = presets
        .all()
        .filter(|p| usize::from(p.images) == n)
        .collect();
    let category = crate::domain::preset::Category::Combine;
    let mut markup = keyboards::category_page(&ctx.s.texts, ctx.lang, category, &list, 0);
    if let super::tg::Markup::Inline(rows) = &mut markup {
        rows.insert(
            0,
            vec![(ctx.t("write-own"), super::callback::Callback::OwnPrompt)],
        );
    }
    ctx.say(&ctx.tr("photo-first-two", &[("n", n.into())]), markup)
        .await;
}
