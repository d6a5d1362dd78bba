//! One update, start to finish: who it is from, guards (bans, flooding), then what to do.

use super::admin;
use super::callback::Callback;
use super::ctx::{Ctx, Shared};
use super::flood::Verdict;
use super::flow;
use super::incoming::{Incoming, Input};
use super::keyboards;
use super::payments;
use super::photos;
use super::profile;
use super::promo;
use super::texts::Lang;
use crate::domain::UserId;
use crate::ops;
use crate::store::NewUser;

/// What a lane processes.
pub enum Work {
    Update(Incoming),
    /// An album's debounce ran out.
    AlbumDone {
        chat: i64,
        user: i64,
        group: String,
    },
}

pub async fn handle(s: &Shared, work: Work) {
    match work {
        Work::Update(inc) => update(s, inc).await,
        Work::AlbumDone { chat, user, group } => {
            if let Some((ctx, _, false)) = context(s, chat, user, None, None) {
                photos::album_done(&ctx, &group).await;
            }
        }
    }
}

/// Registers (idempotent: welcome points once) and builds the handler context.
/// Returns the context, whether the user is new, and whether they are banned.
fn context(
    s: &Shared,
    chat: i64,
    user: i64,
    username: Option<String>,
    language: Option<String>,
) -> Option<(Ctx, bool, bool)> {
    let app = &s.app;
    let id = UserId::new(user);
    let registered = match ops::register_user(
        app,
        id,
        NewUser {
            username,
            language: None,
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%id, error = %e, "cannot register a user");
            return None;
        }
    };
    let lang = match registered.user.language.as_deref().and_then(Lang::parse) {
        Some(l) => l,
        None => {
            let l = Lang::from_telegram(language.as_deref());
            let _ = app
                .store
                .update_user(id, |u| u.language = Some(l.code().to_string()));
            l
        }
    };
    let is_admin = app.config.telegram.admins.contains(&user) || registered.user.admin;
    let ctx = Ctx {
        s: s.clone(),
        chat,
        user: id,
        lang,
        is_admin,
    };
    Some((ctx, registered.created, registered.user.banned && !is_admin))
}

async fn update(s: &Shared, inc: Incoming) {
    tracing::debug!(update_id = inc.update_id, chat = inc.chat, "update");
    let Some((mut ctx, created, banned)) = context(
        s,
        inc.chat,
        inc.user,
        inc.username.clone(),
        inc.language.clone(),
    ) else {
        return;
    };
    // Money first: a payment Telegram has taken is credited whatever the guards below say.
    if let Input::SuccessfulPayment {
        payload,
        currency,
        total,
        charge_id,
    } = inc.input
    {
        payments::successful(&ctx, payload, currency, total, charge_id).await;
        return;
    }
    let callback_id = match &inc.input {
        Input::Callback { id, .. } => Some(id.clone()),
        _ => None,
    };
    if banned {
        if let Some(id) = &callback_id {
            s.tg.answer_callback(id, None).await;
        }
        ctx.say(&ctx.t("banned"), Default::default()).await;
        return;
    }
    match s.flood.check(inc.user, s.app.now_ms()) {
        Verdict::Ok => {}
        Verdict::Warn => {
            if let Some(id) = &callback_id {
                s.tg.answer_callback(id, None).await;
            }
            ctx.say(&ctx.t("slow-down"), Default::default()).await;
            return;
        }
        Verdict::Drop => {
            if let Some(id) = &callback_id {
                s.tg.answer_callback(id, None).await;
            }
            return;
        }
    }
    match inc.input {
        Input::Command { name, args } => command(&mut ctx, &name, &args, created).await,
        Input::Text(text) => match keyboards::menu_entry(&s.texts, &text) {
            Some(entry) => menu(&mut ctx, entry, None).await,
            None => flow::text(&ctx, &text).await,
        },
        Input::Photo {
            file_id,
            size,
            group,
        }
        | Input::Document {
            file_id,
            size,
            group,
        } => {
            photos::received(&ctx, &file_id, size, group).await;
        }
        Input::Unsupported { group: Some(group) } => photos::album_unsupported(&ctx, group).await,
        Input::Unsupported { group: None } => {
            ctx.say(&ctx.t("bad-video"), Default::default()).await;
        }
        Input::Callback {
            id,
            data,
            message_id,
        } => {
            // Answer at once: the spinner stops, and a slow action does not look frozen.
            let cb = data.as_deref().and_then(Callback::decode);
            match cb {
                Some(cb) => {
                    s.tg.answer_callback(&id, None).await;
                    callback(&mut ctx, cb, message_id).await;
                }
                None => {
                    tracing::info!(user = %ctx.user, data = ?data, "unknown or forged button");
                    s.tg.answer_callback(&id, Some(&ctx.t("stale-button")))
                        .await;
                }
            }
        }
        // Both are handled before: pre-checkouts by the poller, payments above.
        Input::PreCheckout { .. } | Input::SuccessfulPayment { .. } => {}
        Input::Other => {
            ctx.say(
                &ctx.t("unknown-input"),
                keyboards::inline_menu(&s.texts, ctx.lang),
            )
            .await;
        }
    }
}

async fn command(ctx: &mut Ctx, name: &str, args: &str, created: bool) {
    match name {
        "start" => start(ctx, created).await,
        "menu" => menu(ctx, "menu", None).await,
        "help" => profile::help(ctx, None).await,
        "balance" => profile::balance(ctx).await,
        "cancel" => flow::cancel_draft(ctx, None).await,
        "lang" => {
            let other = ctx.lang.other();
            profile::set_lang(ctx, other).await;
        }
        "profile" => profile::profile(ctx, None).await,
        n if admin::is_admin_command(n) => admin::command(ctx, n, args).await,
        _ => {
            ctx.say(
                &ctx.t("unknown-input"),
                keyboards::inline_menu(&ctx.s.texts, ctx.lang),
            )
            .await;
        }
    }
}

/// /start: the welcome (points on the very first contact) and both menus.
async fn start(ctx: &mut Ctx, created: bool) {
    let balance = ctx.app().store.balance(ctx.user).unwrap_or(0);
    let key = if created {
        "start-welcome"
    } else {
        "start-again"
    };
    ctx.say(
        &ctx.points(key, balance),
        keyboards::reply_menu(&ctx.s.texts, ctx.lang),
    )
    .await;
    let mut d = ctx.dialog();
    d.step = Default::default();
    ctx.save(d);
    ctx.say(
        &ctx.t("main-menu"),
        keyboards::inline_menu(&ctx.s.texts, ctx.lang),
    )
    .await;
}

/// A main-menu entry, from the reply keyboard or a button; works in any state.
async fn menu(ctx: &mut Ctx, entry: &str, message: Option<i32>) {
    let d = ctx.dialog();
    if d.step == super::dialog::Step::AwaitPromo {
        let mut d = d;
        d.step = Default::default();
        ctx.save(d);
    }
    match entry {
        "menu-styles" => flow::categories(ctx, message).await,
        "menu-own" => flow::own_prompt(ctx).await,
        "menu-two" => flow::two_photos(ctx).await,
        "menu-profile" => profile::profile(ctx, message).await,
        "menu-help" => profile::help(ctx, message).await,
        _ => {
            ctx.edit_or_say(
                message,
                &ctx.t("main-menu"),
                keyboards::inline_menu(&ctx.s.texts, ctx.lang),
            )
            .await
        }
    }
}

async fn callback(ctx: &mut Ctx, cb: Callback, message: Option<i32>) {
    match cb {
        Callback::Menu => menu(ctx, "menu", message).await,
        Callback::Categories => flow::categories(ctx, message).await,
        Callback::Category { category, page } => flow::category(ctx, message, category, page).await,
        Callback::Preset { key } => flow::preset(ctx, &key).await,
        Callback::OwnPrompt => flow::own_prompt(ctx).await,
        Callback::TwoPhotos => flow::two_photos(ctx).await,
        Callback::Profile => profile::profile(ctx, message).await,
        Callback::Help => profile::help(ctx, message).await,
        Callback::Confirm { nonce } => flow::confirm(ctx, message, nonce).await,
        Callback::Change => flow::change(ctx, message).await,
        Callback::CancelDraft => flow::cancel_draft(ctx, message).await,
        Callback::CancelJob { job } => flow::cancel_job(ctx, message, job).await,
        Callback::AsFile { job } => profile::result(ctx, job, true).await,
        Callback::Result { job } => profile::result(ctx, job, false).await,
        Callback::Again { job } => flow::again(ctx, job).await,
        Callback::AnotherStyle { job } => flow::another_style(ctx, job).await,
        Callback::EditFurther { job } => flow::edit_further(ctx, job).await,
        Callback::Recent => profile::recent(ctx).await,
        Callback::Payments => profile::payments(ctx).await,
        Callback::SetLang { lang } => profile::set_lang(ctx, lang).await,
        Callback::TopUp => payments::screen(ctx, None).await,
        Callback::StarsPack { pack } => payments::buy(ctx, pack).await,
        Callback::Promo => promo::ask(ctx).await,
        Callback::WeeklyNotices { on } => profile::set_notices(ctx, on, message).await,
        Callback::StopNotices => profile::set_notices(ctx, false, None).await,
    }
}
