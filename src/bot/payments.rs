//! Top-ups with Telegram Stars in the bot: the pack screen, one invoice per pack, the
//! pre-checkout answer (straight from the poller, never behind a lane or the job queue:
//! Telegram waits 10 s), and the credit on `successful_payment`, once per charge id.

use super::ctx::{Ctx, Shared};
use super::incoming::Incoming;
use super::keyboards;
use super::texts::Lang;
use super::tg::Invoice;
use crate::domain::UserId;
use crate::ops::{self, OpsError, Refusal};
use crate::store::Credited;

/// The top-up screen: each pack with its price and honest bonus, a button per pack.
pub async fn screen(ctx: &Ctx, message: Option<i32>) {
    let billing = &ctx.app().config.billing;
    if !billing.payments_enabled || billing.packs.is_empty() {
        ctx.edit_or_say(
            message,
            &ctx.t("topup-off"),
            keyboards::inline_menu(&ctx.s.texts, ctx.lang),
        )
        .await;
        return;
    }
    let balance = ctx.app().store.balance(ctx.user).unwrap_or(0);
    let mut text = ctx.points("topup-title", balance);
    if billing.test_mode {
        text.push('\n');
        text.push_str(&ctx.t("profile-test"));
    }
    ctx.edit_or_say(
        message,
        &text,
        keyboards::topup(&ctx.s.texts, ctx.lang, &billing.packs),
    )
    .await;
}

/// A pack was chosen: an order, then its Stars invoice.
pub async fn buy(ctx: &Ctx, pack: u8) {
    let user = ctx.user;
    let order = ctx
        .app()
        .blocking(move |a| ops::create_stars_order(a, user, usize::from(pack)))
        .await;
    let order = match order {
        Ok(o) => o,
        Err(OpsError::RateLimited) => {
            ctx.say(&ctx.t("topup-rate-limited"), Default::default())
                .await;
            return;
        }
        Err(OpsError::Invalid(_)) if !ctx.app().config.billing.payments_enabled => {
            ctx.say(
                &ctx.t("topup-off"),
                keyboards::inline_menu(&ctx.s.texts, ctx.lang),
            )
            .await;
            return;
        }
        Err(OpsError::Invalid(_)) => {
            // A pack button from before the operator changed the packs.
            screen(ctx, None).await;
            return;
        }
        Err(e) => {
            tracing::error!(%user, error = %e, "cannot create a Stars order");
            ctx.say(&ctx.t("error-generic"), Default::default()).await;
            return;
        }
    };
    let label = keyboards::pack_points(&ctx.s.texts, ctx.lang, order.points, order.bonus);
    let invoice = Invoice {
        title: truncate(&label, 32),
        description: truncate(
            &ctx.tr(
                if order.bonus == 0 {
                    "invoice-description"
                } else {
                    "invoice-description-bonus"
                },
                &[
                    ("n", order.points.into()),
                    ("bonus", order.bonus.into()),
                    ("total", (order.points + order.bonus).into()),
                ],
            ),
            255,
        ),
        payload: order.id.clone(),
        label,
        stars: order.stars,
    };
    if let Err(e) = ctx.s.tg.send_invoice(ctx.chat, &invoice).await {
        tracing::error!(%user, order = %order.id, error = %e, "sendInvoice failed");
        ctx.say(&ctx.t("error-generic"), Default::default()).await;
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Answers a pre-checkout query; called by the poller on its own task, so nothing queued
/// before it (other chats' work, a broadcast, the job queue) can make it miss Telegram's 10 s.
pub async fn pre_checkout(s: Shared, inc: Incoming) {
    let super::incoming::Input::PreCheckout {
        id,
        payload,
        currency,
        total,
    } = inc.input
    else {
        return;
    };
    let user = UserId::new(inc.user);
    let checked = s
        .app
        .blocking(move |a| ops::pre_checkout(a, user, &payload, &currency, total))
        .await;
    let refusal = match checked {
        Ok(()) => None,
        Err(why) => {
            tracing::info!(%user, ?why, "pre-checkout refused");
            let lang = s
                .app
                .store
                .user(user)
                .ok()
                .flatten()
                .and_then(|u| u.language)
                .as_deref()
                .and_then(Lang::parse)
                .unwrap_or_else(|| Lang::from_telegram(inc.language.as_deref()));
            let key = match why {
                Refusal::UnknownOrder => "checkout-unknown",
                Refusal::Stale => "checkout-stale",
                Refusal::Mismatch => "checkout-mismatch",
                Refusal::Off => "checkout-off",
            };
            Some(s.texts.t(lang, key))
        }
    };
    if let Err(e) = s.tg.answer_pre_checkout(&id, refusal.as_deref()).await {
        tracing::warn!(%user, error = %e, "answerPreCheckoutQuery failed");
    }
}

/// `successful_payment`: credited once per charge id; a repeated delivery says nothing.
pub async fn successful(ctx: &Ctx, payload: String, currency: String, total: u32, charge: String) {
    let user = ctx.user;
    let charge_id = charge.clone();
    let credited = ctx
        .app()
        .blocking(move |a| ops::credit_stars(a, user, &payload, &currency, total, &charge_id))
        .await;
    match credited {
        Ok(Credited::Applied { balance }) => {
            let points = ctx
                .app()
                .store
                .payment(&format!("stars:{charge}"))
                .ok()
                .flatten()
                .map_or(0, |p| p.points);
            ctx.say(
                &ctx.tr(
                    "payment-credited",
                    &[("n", points.into()), ("balance", balance.into())],
                ),
                keyboards::inline_menu(&ctx.s.texts, ctx.lang),
            )
            .await;
        }
        Ok(Credited::Duplicate) => {
            tracing::info!(%user, charge_id = %charge, "successful_payment delivered again");
        }
        Err(OpsError::Invalid(e)) => {
            // Logged with the details by ops; the support contact sorts it out.
            tracing::error!(%user, charge_id = %charge, error = %e, "a Stars payment could not be credited");
            ctx.say(&ctx.t("payment-unmatched"), Default::default())
                .await;
        }
        Err(e) => {
            // Storage trouble: the Stars reconciliation credits it on its next run.
            tracing::error!(%user, charge_id = %charge, error = %e, "a Stars payment is left to reconciliation");
            ctx.say(&ctx.t("payment-later"), Default::default()).await;
        }
    }
}
