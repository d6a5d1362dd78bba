//! Profile, balance, recent edits, language, help.

use super::callback::Callback;
use super::ctx::Ctx;
use super::delivery;
use super::keyboards;
use super::prefs::Prefs;
use super::texts::Lang;
use super::tg::Markup;
use crate::domain::{JobId, JobState};
use crate::ops;
use crate::store::{PaymentStatus, Rail};

pub async fn profile(ctx: &Ctx, message: Option<i32>) {
    let app = ctx.app();
    let balance = app.store.balance(ctx.user).unwrap_or(0);
    let edits = app
        .queue
        .recent_for_user(ctx.user, 10_000)
        .map(|jobs| {
            jobs.iter()
                .filter(|r| r.state() == JobState::Succeeded)
                .count()
        })
        .unwrap_or(0);
    let lang_name = match ctx.lang {
        Lang::Ru => "русский",
        Lang::En => "English",
    };
    let mut text = ctx.tr(
        "profile",
        &[
            ("n", balance.into()),
            ("edits", edits.into()),
            ("lang", lang_name.into()),
        ],
    );
    if app.config.billing.test_mode {
        text.push('\n');
        text.push_str(&ctx.t("profile-test"));
    }
    let notices = Prefs::load(&app.store, ctx.user)
        .map(|p| p.weekly_notices)
        .unwrap_or(true);
    ctx.edit_or_say(
        message,
        &text,
        keyboards::profile(&ctx.s.texts, ctx.lang, notices),
    )
    .await;
}

/// Switches the weekly bonus notice on or off. From the profile (`message`), the profile is
/// redrawn with the new button; from a notice, a short confirmation is sent.
pub async fn set_notices(ctx: &Ctx, on: bool, message: Option<i32>) {
    let store = &ctx.app().store;
    let saved = Prefs::load(store, ctx.user).and_then(|mut p| {
        p.weekly_notices = on;
        p.save(store, ctx.user)
    });
    if let Err(e) = saved {
        tracing::error!(user = %ctx.user, error = %e, "cannot save the notice setting");
        ctx.say(&ctx.t("error-generic"), Default::default()).await;
        return;
    }
    match message {
        Some(m) => profile(ctx, Some(m)).await,
        None => {
            ctx.say(&ctx.t("notices-stopped"), Default::default()).await;
        }
    }
}

pub async fn balance(ctx: &Ctx) {
    let balance = ctx.app().store.balance(ctx.user).unwrap_or(0);
    ctx.say(&ctx.points("balance", balance), Default::default())
        .await;
}

/// The last 10 edits, each a button to get its result again.
pub async fn recent(ctx: &Ctx) {
    let jobs = ctx
        .app()
        .queue
        .recent_for_user(ctx.user, 10)
        .unwrap_or_default();
    if jobs.is_empty() {
        ctx.say(
            &ctx.t("recent-empty"),
            keyboards::inline_menu(&ctx.s.texts, ctx.lang),
        )
        .await;
        return;
    }
    let presets = ctx.app().presets.get();
    let rows = jobs
        .iter()
        .map(|r| {
            let spec = r.spec();
            let what = match spec.preset.as_deref().and_then(|k| presets.get(k)) {
                Some(p) => format!("{} {}", p.emoji, p.title.get(ctx.lang.code())),
                None => {
                    let prompt = spec.prompt.unwrap_or_default();
                    let short: String = prompt.chars().take(24).collect();
                    format!("✍️ {short}")
                }
            };
            let mark = match r.state() {
                JobState::Succeeded => "✅",
                JobState::Queued | JobState::Running => "⏳",
                JobState::Cancelled => "✖️",
                _ => "⚠️",
            };
            let date = jiff::Timestamp::from_millisecond(r.created_ms)
                .map(|t| t.strftime("%d.%m %H:%M").to_string())
                .unwrap_or_default();
            vec![(
                format!("{mark} {date} {what}"),
                Callback::Result { job: r.id },
            )]
        })
        .collect();
    ctx.say(&ctx.t("recent-title"), Markup::Inline(rows)).await;
}

/// Sends a finished job's result again.
pub async fn result(ctx: &Ctx, job: JobId, as_file: bool) {
    let Some(r) = super::flow::own_job(ctx, job).await else {
        return;
    };
    let data_dir = &ctx.app().config.storage.data_dir;
    let Some(bytes) = r
        .result
        .as_ref()
        .and_then(|res| res.outputs.first())
        .and_then(|o| crate::files::read(data_dir, o).ok())
    else {
        ctx.say(&ctx.t("result-gone"), Default::default()).await;
        return;
    };
    if as_file {
        if let Err(e) = ctx
            .s
            .tg
            .send_document(ctx.chat, bytes, &format!("{job}.png"), "", &Markup::None)
            .await
        {
            tracing::warn!(%job, user = %ctx.user, error = %e, "could not send the file");
            ctx.say(&ctx.t("error-generic"), Default::default()).await;
        }
    } else {
        delivery::send_result(&ctx.s, ctx.chat, ctx.lang, job, bytes).await;
    }
}

/// Payment history, both rails (Stars and YooKassa), newest first.
pub async fn payments(ctx: &Ctx) {
    let user = ctx.user;
    let history = ctx
        .app()
        .blocking(move |a| ops::payment_history(a, user))
        .await
        .unwrap_or_default();
    let lines: Vec<String> = history
        .iter()
        .take(20)
        .map(|p| {
            let date = jiff::Timestamp::from_millisecond(p.created_ms)
                .map(|t| t.strftime("%d.%m.%Y").to_string())
                .unwrap_or_default();
            let paid = match p.rail {
                Rail::Stars => ctx.tr("paid-stars", &[("n", (p.amount as i64).into())]),
                Rail::YooKassa => {
                    let rub = format!("{}.{:02}", p.amount / 100, p.amount % 100);
                    let rub = rub.strip_suffix(".00").unwrap_or(&rub).to_string();
                    ctx.tr("paid-rub", &[("rub", rub.as_str().into())])
                }
            };
            let status = match p.status {
                PaymentStatus::Succeeded => String::new(),
                PaymentStatus::Pending => format!(" ({})", ctx.t("payment-pending")),
                PaymentStatus::Canceled => format!(" ({})", ctx.t("payment-canceled")),
                PaymentStatus::Refunded => format!(" ({})", ctx.t("payment-refunded")),
            };
            format!(
                "{date}  {paid} → {}{status}",
                ctx.points("points", i64::from(p.points))
            )
        })
        .collect();
    let text = if lines.is_empty() {
        ctx.t("payments-empty")
    } else {
        format!("{}\n{}", ctx.t("payments-title"), lines.join("\n"))
    };
    ctx.say(&text, keyboards::inline_menu(&ctx.s.texts, ctx.lang))
        .await;
}

pub async fn help(ctx: &Ctx, message: Option<i32>) {
    let mut text = ctx.points("help", i64::from(ctx.app().config.billing.edit_price));
    if let Some(support) = &ctx.app().config.telegram.support {
        text.push('\n');
        text.push_str(&ctx.tr("help-support", &[("support", support.into())]));
    }
    ctx.edit_or_say(
        message,
        &text,
        keyboards::inline_menu(&ctx.s.texts, ctx.lang),
    )
    .await;
}

/// Switches the language and shows the menu in it.
pub async fn set_lang(ctx: &mut Ctx, lang: Lang) {
    if let Err(e) = ctx
        .app()
        .store
        .update_user(ctx.user, |u| u.language = Some(lang.code().to_string()))
    {
        tracing::error!(error = %e, "cannot save the language");
    }
    ctx.lang = lang;
    ctx.say(
        &ctx.t("lang-set"),
        keyboards::reply_menu(&ctx.s.texts, lang),
    )
    .await;
}
