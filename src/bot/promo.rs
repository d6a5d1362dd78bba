//! Promocode entry: Profile → Promo code, then the user types the code (trimmed and
//! case-insensitive in `ops::redeem_promo`).

use super::ctx::Ctx;
use super::dialog::Step;
use super::keyboards;
use crate::ops;
use crate::store::Redeemed;

/// Asks for the code; the next text message is taken as one.
pub async fn ask(ctx: &Ctx) {
    let mut d = ctx.dialog();
    d.step = Step::AwaitPromo;
    ctx.save(d);
    ctx.say(&ctx.t("promo-ask"), Default::default()).await;
}

pub async fn redeem(ctx: &Ctx, text: &str) {
    let mut d = ctx.dialog();
    d.step = Step::Idle;
    ctx.save(d);
    let (user, code) = (ctx.user, text.to_string());
    let outcome = ctx
        .app()
        .blocking(move |a| ops::redeem_promo(a, user, &code))
        .await;
    let reply = match outcome {
        Ok(Redeemed::Credited { points, balance }) => ctx.tr(
            "promo-ok",
            &[("n", points.into()), ("balance", balance.into())],
        ),
        Ok(Redeemed::Unknown) => ctx.t("promo-unknown"),
        Ok(Redeemed::UsedUp) => ctx.t("promo-used-up"),
        Ok(Redeemed::Expired) => ctx.t("promo-expired"),
        Ok(Redeemed::AlreadyUsedByYou) => ctx.t("promo-already"),
        Err(e) => {
            tracing::error!(%user, error = %e, "promocode redemption failed");
            ctx.t("error-generic")
        }
    };
    ctx.say(&reply, keyboards::inline_menu(&ctx.s.texts, ctx.lang))
        .await;
}
