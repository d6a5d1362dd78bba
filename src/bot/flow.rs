//! The edit flow: choosing presets, the own prompt, the confirm card, queuing, cancelling, and
//! the buttons under a result.

use super::callback::Callback;
use super::ctx::Ctx;
use super::dialog::{Draft, JobMessages, Step};
use super::keyboards;
use super::photos::MAX_PHOTOS;
use super::tg::Markup;
use crate::domain::preset::{Category, Preset};
use crate::domain::{JobId, JobSpec, JobState, Lane, Points};
use crate::ops::{self, OpsError};
use crate::queue::JobRecord;

/// Shows the categories (editing `message` when there is one).
pub async fn categories(ctx: &Ctx, message: Option<i32>) {
    let presets = ctx.app().presets.get();
    let markup = keyboards::categories(&ctx.s.texts, ctx.lang, &presets, None);
    ctx.edit_or_say(message, &ctx.t("categories"), markup).await;
}

pub async fn category(ctx: &Ctx, message: Option<i32>, category: Category, page: u8) {
    let presets = ctx.app().presets.get();
    let list = presets.in_category(category);
    if list.is_empty() {
        return categories(ctx, message).await;
    }
    let label = keyboards::category_label(&ctx.s.texts, ctx.lang, category);
    let text = ctx.tr("category-title", &[("category", (&label).into())]);
    let markup =
        keyboards::category_page(&ctx.s.texts, ctx.lang, category, &list, usize::from(page));
    ctx.edit_or_say(message, &text, markup).await;
}

/// A preset was picked: with enough photos at hand, straight to the confirm card; otherwise
/// ask for them.
pub async fn preset(ctx: &Ctx, key: &str) {
    let presets = ctx.app().presets.get();
    let Some(p) = presets.get(key) else {
        ctx.say(&ctx.t("stale-button"), Default::default()).await;
        return;
    };
    let mut d = ctx.dialog();
    let photos = d.photos();
    let need = usize::from(p.images);
    if photos.len() >= need {
        let photos = photos[..need].to_vec();
        d.step = Step::Idle;
        ctx.save(d);
        return confirm_card(ctx, None, photos, Some(key.to_string()), None).await;
    }
    d.step = Step::AwaitPhotos {
        preset: Some(key.to_string()),
        need: p.images,
        got: photos,
    };
    ctx.save(d);
    let lang = ctx.lang.code();
    let mut text = ctx.tr(
        "preset-chosen",
        &[
            ("emoji", (&p.emoji).into()),
            ("title", p.title.get(lang).into()),
            ("description", p.description.get(lang).into()),
        ],
    );
    text.push_str("\n\n");
    text.push_str(&if need == 1 {
        ctx.t("send-photo")
    } else {
        ctx.tr("send-photos", &[("n", need.into())])
    });
    ctx.say(
        &text,
        Markup::Inline(vec![vec![(ctx.t("btn-cancel"), Callback::CancelDraft)]]),
    )
    .await;
}

/// "Own prompt": with photos at hand, ask for the text; else ask for a photo first.
pub async fn own_prompt(ctx: &Ctx) {
    let mut d = ctx.dialog();
    let photos = d.photos();
    if photos.is_empty() {
        d.step = Step::AwaitPhotos {
            preset: None,
            need: 1,
            got: Vec::new(),
        };
        ctx.save(d);
        ctx.say(&ctx.t("own-ask-photo"), Default::default()).await;
    } else {
        d.step = Step::AwaitPrompt { photos };
        ctx.save(d);
        ctx.say(&ctx.t("own-ask"), Default::default()).await;
    }
}

/// "Two photos": collect two, then a prompt or a combine preset.
pub async fn two_photos(ctx: &Ctx) {
    let mut d = ctx.dialog();
    d.step = Step::AwaitPhotos {
        preset: None,
        need: 2,
        got: Vec::new(),
    };
    ctx.save(d);
    let presets = ctx.app().presets.get();
    let list: Vec<_> = presets.all().filter(|p| p.images == 2).collect();
    ctx.say(
        &ctx.t("two-ask"),
        keyboards::category_page(&ctx.s.texts, ctx.lang, Category::Combine, &list, 0),
    )
    .await;
}

/// Text typed outside a menu: the prompt when one is expected.
pub async fn text(ctx: &Ctx, text: &str) {
    let d = ctx.dialog();
    match &d.step {
        Step::AwaitPromo => super::promo::redeem(ctx, text).await,
        Step::AwaitEmail { pack } => super::yookassa::email(ctx, text, *pack).await,
        Step::AwaitPrompt { photos } | Step::HavePhotos { photos } => {
            let photos = photos.clone();
            if let Some(prompt) = check_prompt(ctx, text).await {
                confirm_card(ctx, None, photos, None, Some(prompt)).await;
            }
        }
        Step::Confirming { draft, .. } if draft.preset.is_none() => {
            let photos = draft.photos.clone();
            if let Some(prompt) = check_prompt(ctx, text).await {
                confirm_card(ctx, None, photos, None, Some(prompt)).await;
            }
        }
        Step::AwaitPhotos { got, need, .. } => {
            let text = if *need == 1 {
                ctx.t("send-photo")
            } else {
                ctx.tr(
                    "send-photo-n",
                    &[("got", got.len().into()), ("n", (*need).into())],
                )
            };
            ctx.say(&text, Default::default()).await;
        }
        _ => {
            let key = if text.chars().count() >= ctx.app().config.telegram.prompt_min {
                "own-ask-photo"
            } else {
                "unknown-input"
            };
            ctx.say(&ctx.t(key), keyboards::inline_menu(&ctx.s.texts, ctx.lang))
                .await;
        }
    }
}

/// The prompt as the model gets it, or `None` after telling the user why not.
async fn check_prompt(ctx: &Ctx, text: &str) -> Option<String> {
    // Control characters become spaces; bidi embeddings, overrides and isolates are dropped
    // (they would turn the echoed card around); plain RTL/LTR marks stay.
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let tg = &ctx.app().config.telegram;
    let n = cleaned.chars().count();
    if n < tg.prompt_min {
        ctx.say(
            &ctx.tr("prompt-too-short", &[("min", tg.prompt_min.into())]),
            Default::default(),
        )
        .await;
        return None;
    }
    if n > tg.prompt_max {
        ctx.say(
            &ctx.tr("prompt-too-long", &[("max", tg.prompt_max.into())]),
            Default::default(),
        )
        .await;
        return None;
    }
    if let Some(term) = ctx.s.deny.check(&cleaned) {
        // The audit trail: who asked for what.
        tracing::warn!(target: "qwenedit::audit", user = %ctx.user, chat = ctx.chat, term, prompt = %cleaned, "prompt refused by the deny-list");
        let key = format!("audit:{:013}:{}", ctx.app().now_ms(), ctx.user);
        let _ = ctx.app().store.bot_put(&key, cleaned.as_bytes());
        ctx.say(&ctx.t("prompt-refused"), Default::default()).await;
        return None;
    }
    Some(cleaned)
}

/// Shows the confirm card for an edit (editing `message` when given).
pub async fn confirm_card(
    ctx: &Ctx,
    message: Option<i32>,
    photos: Vec<String>,
    preset: Option<String>,
    prompt: Option<String>,
) {
    let app = ctx.app();
    let presets = app.presets.get();
    let p = preset.as_deref().and_then(|k| presets.get(k));
    let listed = Points::new(
        p.and_then(|p| p.price)
            .map_or(app.config.billing.edit_price, Points::get),
    );
    let price = match ops::price_for(app, ctx.user, listed) {
        Ok(p) => p,
        Err(e) => return error(ctx, e).await,
    };
    let balance = app.store.balance(ctx.user).unwrap_or(0);
    let Some(what) = what(ctx, p, photos.len(), prompt.as_deref()) else {
        return ctx
            .say(&ctx.t("stale-button"), Default::default())
            .await
            .map_or((), drop);
    };
    let nonce: u32 = rand::random();
    let mut d = ctx.dialog();
    d.step = Step::Confirming {
        draft: Draft {
            photos,
            preset,
            prompt,
            seed: rand::random(),
        },
        nonce,
    };
    ctx.save(d);
    let (text, markup) = if price.is_zero() {
        let why = if app.config.billing.test_mode {
            "free-test"
        } else if ctx.is_admin {
            "free-admin"
        } else {
            "free-unlimited"
        };
        (
            ctx.tr(
                "confirm-free",
                &[
                    ("what", (&what).into()),
                    ("why", ctx.t(why).as_str().into()),
                ],
            ),
            keyboards::confirm(&ctx.s.texts, ctx.lang, nonce),
        )
    } else if balance < price.as_i64() {
        (
            ctx.tr(
                "confirm-low",
                &[
                    ("what", (&what).into()),
                    ("n", price.get().into()),
                    ("balance", balance.into()),
                ],
            ),
            keyboards::low_balance(&ctx.s.texts, ctx.lang),
        )
    } else {
        (
            ctx.tr(
                "confirm-card",
                &[
                    ("what", (&what).into()),
                    ("n", price.get().into()),
                    ("balance", balance.into()),
                ],
            ),
            keyboards::confirm(&ctx.s.texts, ctx.lang, nonce),
        )
    };
    ctx.edit_or_say(message, &text, markup).await;
}

/// The first line of a confirm card: the preset and its photos, or the own prompt.
fn what(ctx: &Ctx, preset: Option<&Preset>, photos: usize, prompt: Option<&str>) -> Option<String> {
    match (preset, prompt) {
        (Some(p), _) => Some(ctx.tr(
            "what-preset",
            &[
                ("emoji", (&p.emoji).into()),
                ("title", p.title.get(ctx.lang.code()).into()),
                ("n", photos.into()),
            ],
        )),
        (None, Some(prompt)) => Some(ctx.tr("what-own", &[("prompt", prompt.into())])),
        (None, None) => None,
    }
}

/// Confirm pressed on the card `message`.
pub async fn confirm(ctx: &Ctx, message: Option<i32>, nonce: u32) {
    let d = ctx.dialog();
    let Step::Confirming {
        draft,
        nonce: current,
    } = d.step.clone()
    else {
        return stale_confirm(ctx, message).await;
    };
    if current != nonce {
        return stale_confirm(ctx, message).await;
    }
    // The same confirm again (Telegram repeats an update a crash left unconfirmed): its card
    // already became a job's status message, so that job is the one.
    if is_status_message(ctx, message) {
        let mut d = ctx.dialog();
        d.step = Step::Idle;
        ctx.save(d);
        return;
    }
    let app = ctx.app().clone();
    let active = app.queue.active_count(ctx.user);
    let max = app.config.telegram.max_active_jobs;
    if active >= max {
        ctx.say(
            &ctx.tr("too-many-jobs", &[("n", active.into())]),
            Default::default(),
        )
        .await;
        return;
    }
    if ops::disk_full(&app) {
        ctx.say(&ctx.t("busy-disk"), Default::default()).await;
        return;
    }
    let presets = app.presets.get();
    let p = draft.preset.as_deref().and_then(|k| presets.get(k));
    let workflow = p
        .and_then(|p| p.workflow.clone())
        .unwrap_or_else(|| app.config.comfyui.default_workflow.clone());
    let listed = p
        .and_then(|p| p.price)
        .map_or(app.config.billing.edit_price, Points::get);
    let job = JobId::new();
    let spec = JobSpec {
        user: ctx.user,
        chat: Some(ctx.chat),
        inputs: draft.photos.clone(),
        preset: draft.preset.clone(),
        prompt: p.map(|p| p.prompt.clone()).or(draft.prompt.clone()),
        workflow,
        seed: draft.seed,
        price: Points::new(listed),
        lane: Lane::Normal,
    };
    // Where to report, saved before the job exists so a fast worker finds it.
    let Some(status_message) = message else {
        return;
    };
    let messages = JobMessages {
        chat: ctx.chat,
        status_message,
        lang: ctx.lang,
        delivered: false,
        price: 0,
    };
    let _ = messages.save(&app.store, job);
    // The card turns into the status message before the job exists: once it is queued, a fast
    // worker's "starting" (or even the result) must not be overwritten by "queued".
    let ahead = app.queue.depth().waiting();
    ctx.edit_or_say(
        Some(status_message),
        &queued_text(ctx, ahead),
        keyboards::queued(&ctx.s.texts, ctx.lang, job),
    )
    .await;
    let (photos, prompt) = (draft.photos.len(), draft.prompt.clone());
    crate::faults::crash_point("confirm");
    let submitted = app
        .blocking(move |app| ops::submit_edit(app, job, spec))
        .await;
    match submitted {
        Ok(s) => {
            let _ = JobMessages {
                price: s.price,
                ..messages
            }
            .save(&app.store, job);
            let mut d = ctx.dialog();
            d.step = Step::Idle;
            ctx.save(d);
            // A better position only while others are ahead (so it cannot have started yet).
            if let Some(position) = s.position.filter(|p| *p > 0 && *p != ahead) {
                ctx.edit_or_say(
                    Some(status_message),
                    &queued_text(ctx, position),
                    keyboards::queued(&ctx.s.texts, ctx.lang, job),
                )
                .await;
            }
        }
        Err(e) => {
            let _ = app.store.bot_delete(&JobMessages::key(job));
            let (text, markup) = match e {
                OpsError::InsufficientPoints { need, have } => (
                    ctx.tr(
                        "confirm-low",
                        &[
                            (
                                "what",
                                what(ctx, p, photos, prompt.as_deref())
                                    .unwrap_or_default()
                                    .as_str()
                                    .into(),
                            ),
                            ("n", need.into()),
                            ("balance", have.into()),
                        ],
                    ),
                    keyboards::low_balance(&ctx.s.texts, ctx.lang),
                ),
                OpsError::Banned(_) => (ctx.t("banned"), Markup::None),
                OpsError::DiskFull => (
                    ctx.t("busy-disk"),
                    keyboards::inline_menu(&ctx.s.texts, ctx.lang),
                ),
                other => {
                    tracing::error!(chat = ctx.chat, user = %ctx.user, error = %other, "cannot submit an edit");
                    (
                        ctx.t("error-generic"),
                        keyboards::inline_menu(&ctx.s.texts, ctx.lang),
                    )
                }
            };
            ctx.edit_or_say(Some(status_message), &text, markup).await;
        }
    }
}

/// The queue line: position and a wait estimate from measured job times.
pub fn queued_text(ctx: &Ctx, position: usize) -> String {
    let wait_s = ctx.app().backends.wait_estimate_s(position);
    ctx.tr(
        "queued",
        &[("position", position.into()), ("wait", wait_s.into())],
    )
}

/// A confirm that no longer matches. A second tap on a card that already became a job's status
/// message is ignored: that message keeps showing the job. Any other card expires.
async fn stale_confirm(ctx: &Ctx, message: Option<i32>) {
    if !is_status_message(ctx, message) {
        stale(ctx, message).await;
    }
}

/// Whether `message` is the status message of one of the user's recent jobs.
fn is_status_message(ctx: &Ctx, message: Option<i32>) -> bool {
    let app = ctx.app();
    message.is_some_and(|id| {
        app.queue
            .recent_for_user(ctx.user, 5)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| JobMessages::load(&app.store, r.id).ok().flatten())
            .any(|m| m.chat == ctx.chat && m.status_message == id)
    })
}

async fn stale(ctx: &Ctx, message: Option<i32>) {
    ctx.edit_or_say(
        message,
        &ctx.t("stale-button"),
        keyboards::inline_menu(&ctx.s.texts, ctx.lang),
    )
    .await;
}

pub async fn error(ctx: &Ctx, e: OpsError) {
    match e {
        OpsError::Banned(_) => {
            ctx.say(&ctx.t("banned"), Default::default()).await;
        }
        other => {
            tracing::error!(chat = ctx.chat, user = %ctx.user, error = %other, "bot action failed");
            ctx.say(&ctx.t("error-generic"), Default::default()).await;
        }
    }
}

/// "Change" on a confirm card: back to choosing, with the same photos.
pub async fn change(ctx: &Ctx, message: Option<i32>) {
    let mut d = ctx.dialog();
    let photos = d.photos();
    if photos.is_empty() {
        return categories(ctx, message).await;
    }
    d.step = Step::HavePhotos { photos };
    ctx.save(d);
    ctx.edit_or_say(
        message,
        &ctx.t("photo-first"),
        keyboards::photo_first(&ctx.s.texts, ctx.lang),
    )
    .await;
}

pub async fn cancel_draft(ctx: &Ctx, message: Option<i32>) {
    let mut d = ctx.dialog();
    let had = d.step != Step::Idle;
    d.step = Step::Idle;
    d.album = None;
    ctx.save(d);
    let text = ctx.t(if had {
        "cancelled"
    } else {
        "nothing-to-cancel"
    });
    ctx.edit_or_say(
        message,
        &text,
        keyboards::inline_menu(&ctx.s.texts, ctx.lang),
    )
    .await;
}

/// A job of this user, or `None` (and a "stale" note) for anyone else's or an unknown one.
pub async fn own_job(ctx: &Ctx, job: JobId) -> Option<JobRecord> {
    match ctx.app().queue.get(job) {
        Ok(Some(r)) if r.user() == ctx.user => Some(r),
        _ => {
            ctx.say(&ctx.t("stale-button"), Default::default()).await;
            None
        }
    }
}

pub async fn cancel_job(ctx: &Ctx, message: Option<i32>, job: JobId) {
    let Some(record) = own_job(ctx, job).await else {
        return;
    };
    if record.state() != JobState::Queued {
        ctx.say(&ctx.t("job-cancel-late"), Default::default()).await;
        return;
    }
    match ctx
        .app()
        .blocking(move |app| ops::cancel_job(app, job))
        .await
    {
        Ok(r) => {
            if let Ok(Some(mut m)) = JobMessages::load(&ctx.app().store, job) {
                m.delivered = true;
                let _ = m.save(&ctx.app().store, job);
            }
            let text = ctx.points("job-cancelled", r.price().as_i64());
            ctx.edit_or_say(
                message,
                &text,
                keyboards::inline_menu(&ctx.s.texts, ctx.lang),
            )
            .await;
        }
        Err(OpsError::NotCancellable { .. }) => {
            ctx.say(&ctx.t("job-cancel-late"), Default::default()).await;
        }
        Err(e) => error(ctx, e).await,
    }
}

/// "Another take": the same edit with a new seed.
pub async fn again(ctx: &Ctx, job: JobId) {
    let Some(r) = own_job(ctx, job).await else {
        return;
    };
    let spec = r.spec();
    if !inputs_exist(ctx, &spec.inputs) {
        ctx.say(&ctx.t("result-gone"), Default::default()).await;
        return;
    }
    let prompt = if spec.preset.is_some() {
        None
    } else {
        spec.prompt
    };
    confirm_card(ctx, None, spec.inputs, spec.preset, prompt).await;
}

/// "Another style": the same photos, back to the presets.
pub async fn another_style(ctx: &Ctx, job: JobId) {
    let Some(r) = own_job(ctx, job).await else {
        return;
    };
    let photos = r.spec().inputs;
    if !inputs_exist(ctx, &photos) {
        ctx.say(&ctx.t("result-gone"), Default::default()).await;
        return;
    }
    let mut d = ctx.dialog();
    d.step = Step::HavePhotos { photos };
    ctx.save(d);
    categories(ctx, None).await;
}

/// "Edit further": the result becomes the new photo.
pub async fn edit_further(ctx: &Ctx, job: JobId) {
    let Some(r) = own_job(ctx, job).await else {
        return;
    };
    let data_dir = ctx.app().config.storage.data_dir.clone();
    let Some(bytes) = r
        .result
        .as_ref()
        .and_then(|res| res.outputs.first())
        .and_then(|o| crate::files::read(&data_dir, o).ok())
    else {
        ctx.say(&ctx.t("result-gone"), Default::default()).await;
        return;
    };
    let target = ctx.app().config.input_pixels();
    let name = match ctx.app().media.check(bytes, target.max(1_000_000)).await {
        Ok(n) => super::photos::store(ctx, n.png).await.ok(),
        Err(_) => None,
    };
    let Some(name) = name else {
        ctx.say(&ctx.t("error-generic"), Default::default()).await;
        return;
    };
    let mut d = ctx.dialog();
    d.step = Step::HavePhotos { photos: vec![name] };
    ctx.save(d);
    ctx.say(
        &ctx.t("further-ask"),
        keyboards::photo_first(&ctx.s.texts, ctx.lang),
    )
    .await;
}

fn inputs_exist(ctx: &Ctx, inputs: &[String]) -> bool {
    let dir = &ctx.app().config.storage.data_dir;
    !inputs.is_empty()
        && inputs.len() <= MAX_PHOTOS
        && inputs
            .iter()
            .all(|i| crate::files::resolve(dir, i).is_ok_and(|p| p.exists()))
}
