//! Profile, balance, recent edits, language, help.

use super::callback::Callback;
use super::ctx::Ctx;
use super::delivery;
use super::keyboards;
use super::texts::Lang;
use super::tg::Markup;
use crate::domain::{JobId, JobState, Reason};

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
    ctx.edit_or_say(message, &text, keyboards::profile(&ctx.s.texts, ctx.lang))
        .await;
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

pub async fn payments(ctx: &Ctx) {
    let entries = ctx
        .app()
        .store
        .ledger_tail(ctx.user, 200)
        .unwrap_or_default();
    let lines: Vec<String> = entries
        .iter()
        .filter(|e| e.reason == Reason::Payment)
        .take(20)
        .map(|e| {
            let date = jiff::Timestamp::from_millisecond(e.at_ms)
                .map(|t| t.strftime("%d.%m.%Y").to_string())
                .unwrap_or_default();
            format!(
                "{date}  +{}  {}",
                e.delta,
                e.reference.as_deref().unwrap_or("")
            )
        })
        .collect();
    let text = if lines.is_empty() {
        ctx.t("payments-empty")
    } else {
        lines.join("\n")
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
