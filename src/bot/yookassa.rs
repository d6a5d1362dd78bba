//! Card and SBP top-ups through YooKassa in the bot: the "Card / SBP" rows of the top-up screen,
//! the receipt e-mail (asked once when 54-FZ receipts are on), the payment link with a
//! "Check payment" button, and the check itself (settled by `ops`, which re-reads the payment).

use super::callback::Callback;
use super::ctx::Ctx;
use super::dialog::Step;
use super::keyboards;
use super::texts::{Lang, Texts};
use super::tg::Markup;
use crate::ops::{self, Settled, YooKassaError};

/// One row per pack with a ruble price: pay by card or SBP.
pub fn card_pack_rows(
    t: &Texts,
    lang: Lang,
    packs: &[crate::config::Pack],
) -> Vec<Vec<(String, Callback)>> {
    packs
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((u8::try_from(i).ok()?, p, p.rub?)))
        .map(|(i, p, rub)| {
            let what = keyboards::pack_points(t, lang, p.points, p.bonus);
            vec![(
                t.get(
                    lang,
                    "pack-card",
                    &[("what", what.as_str().into()), ("rub", rub.into())],
                ),
                Callback::CardPack { pack: i },
            )]
        })
        .collect()
}

/// "Card / SBP" for a pack: the e-mail first if receipts need one, then the link.
pub async fn card(ctx: &Ctx, pack: u8) {
    let user = ctx.user;
    let needed = ctx
        .app()
        .blocking(move |a| ops::receipt_email_needed(a, user))
        .await;
    match needed {
        Ok(true) => ask_email(ctx, pack).await,
        Ok(false) => link(ctx, pack).await,
        Err(e) => {
            tracing::error!(%user, error = %e, "cannot read the receipt e-mail");
            ctx.say(&ctx.t("error-generic"), Default::default()).await;
        }
    }
}

/// The next text is the receipt e-mail for `pack`.
async fn ask_email(ctx: &Ctx, pack: u8) {
    let mut d = ctx.dialog();
    d.step = Step::AwaitEmail { pack };
    ctx.save(d);
    ctx.say(&ctx.t("yk-email-ask"), Default::default()).await;
}

/// The text sent while waiting for the receipt e-mail.
pub async fn email(ctx: &Ctx, text: &str, pack: u8) {
    let (user, typed) = (ctx.user, text.to_string());
    let saved = ctx
        .app()
        .blocking(move |a| ops::set_receipt_email(a, user, &typed))
        .await;
    match saved {
        Ok(email) => {
            let mut d = ctx.dialog();
            d.step = Step::Idle;
            ctx.save(d);
            ctx.say(
                &ctx.tr("yk-email-saved", &[("email", email.as_str().into())]),
                Default::default(),
            )
            .await;
            link(ctx, pack).await;
        }
        Err(YooKassaError::BadEmail) => {
            ctx.say(&ctx.t("yk-email-bad"), Default::default()).await;
        }
        Err(e) => {
            tracing::error!(%user, error = %e, "cannot save the receipt e-mail");
            ctx.say(&ctx.t("error-generic"), Default::default()).await;
        }
    }
}

/// Creates (or reuses) the order and sends its payment link with "Check payment".
async fn link(ctx: &Ctx, pack: u8) {
    let user = ctx.user;
    match ops::create_yookassa_order(ctx.app(), user, usize::from(pack)).await {
        Ok(l) => {
            let Some(order) = l
                .order_id
                .strip_prefix("order:")
                .and_then(|u| ulid::Ulid::from_string(u).ok())
            else {
                tracing::error!(%user, order = %l.order_id, "order id is not order:<ulid>");
                ctx.say(&ctx.t("error-generic"), Default::default()).await;
                return;
            };
            let what = keyboards::pack_points(&ctx.s.texts, ctx.lang, l.points, l.bonus);
            let text = ctx.tr(
                "yk-link",
                &[("what", what.as_str().into()), ("rub", l.rub.into())],
            );
            let markup = Markup::Links {
                links: vec![(ctx.tr("btn-yk-pay", &[("rub", l.rub.into())]), l.url)],
                rows: vec![vec![(
                    ctx.t("btn-yk-check"),
                    Callback::CheckPayment { order },
                )]],
            };
            ctx.say(&text, markup).await;
        }
        Err(YooKassaError::RateLimited) => {
            ctx.say(&ctx.t("topup-rate-limited"), Default::default())
                .await;
        }
        Err(YooKassaError::Off) => {
            ctx.say(
                &ctx.t("topup-off"),
                keyboards::inline_menu(&ctx.s.texts, ctx.lang),
            )
            .await;
        }
        Err(YooKassaError::UnknownPack) => {
            // A button from before the operator changed the packs.
            super::payments::screen(ctx, None).await;
        }
        Err(YooKassaError::EmailRequired) => ask_email(ctx, pack).await,
        Err(e) => {
            // YooKassa down, slow or refusing: the user may try again (same order, same key).
            tracing::warn!(%user, error = %e, "no YooKassa link");
            ctx.say(&ctx.t("yk-unavailable"), Default::default()).await;
        }
    }
}

/// "Check payment": re-reads the payment and says what came of it.
pub async fn check(ctx: &Ctx, order: ulid::Ulid) {
    let user = ctx.user;
    let order_id = format!("order:{order}");
    let checked = ops::check_yookassa_order(ctx.app(), user, &order_id).await;
    let balance = || ctx.app().store.balance(user).unwrap_or(0);
    let text = match checked {
        Ok(Settled::Credited {
            points, balance, ..
        }) => ctx.tr(
            "payment-credited",
            &[("n", points.into()), ("balance", balance.into())],
        ),
        Ok(Settled::AlreadyCredited { .. }) => {
            ctx.tr("yk-already", &[("balance", balance().into())])
        }
        Ok(Settled::Pending { .. }) => ctx.t("yk-pending"),
        Ok(Settled::Canceled { .. }) => ctx.t("yk-canceled"),
        Ok(Settled::Rejected(why)) => {
            tracing::error!(%user, order = %order_id, ?why, "checked payment does not match its order");
            ctx.t("yk-problem")
        }
        Err(YooKassaError::UnknownOrder) => ctx.t("stale-button"),
        Err(e) => {
            tracing::warn!(%user, order = %order_id, error = %e, "cannot check a YooKassa payment");
            ctx.t("yk-check-unavailable")
        }
    };
    ctx.say(&text, keyboards::inline_menu(&ctx.s.texts, ctx.lang))
        .await;
}
