//! Telegram Stars after the purchase: refunds (`refundStarPayment`, then the points taken back
//! once per charge id, the part already spent as an explicit debt) and reconciliation with
//! `getStarTransactions` (a charge Telegram lists that we never credited is credited, with the
//! same key as `credit_stars`; a refund we never recorded is debited).
//!
//! Telegram is reached through [`Telegram`], which the bot module implements, so `ops` stays
//! free of teloxide.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::{OpsError, credit_stars};
use crate::app::App;
use crate::domain::UserId;
use crate::store::{Credited, PaymentStatus, Refunded};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One entry of `getStarTransactions` that concerns a user's invoice payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StarTransaction {
    /// For a payment: its `telegram_payment_charge_id`; a refund has the same id.
    pub id: String,
    pub user: UserId,
    /// Stars.
    pub amount: u32,
    pub payload: Option<String>,
    /// The bot paid the user back (a refund), rather than the user paying the bot.
    pub refund: bool,
}

/// The weekly bonus a user just got, for the notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeeklyNotice {
    pub user: UserId,
    pub points: u32,
    pub balance: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("the charge was refunded before")]
    AlreadyRefunded,
    #[error("{0}")]
    Failed(String),
}

/// What `ops` needs from Telegram; the bot module implements it over the Bot API.
pub trait Telegram: Send + Sync {
    /// `refundStarPayment`.
    fn refund_star_payment<'a>(
        &'a self,
        user: UserId,
        charge_id: &'a str,
    ) -> BoxFuture<'a, Result<(), TelegramError>>;

    /// One page of `getStarTransactions` (only users' invoice payments and their refunds; the
    /// length of the raw page is returned too, to know when the list ends).
    fn star_transactions(
        &self,
        offset: u32,
        limit: u32,
    ) -> BoxFuture<'_, Result<(Vec<StarTransaction>, usize), TelegramError>>;

    /// Tells users about their weekly bonus (those who did not switch it off), paced under
    /// Telegram's limits; returns how many were sent.
    fn weekly_notices(&self, notices: Vec<WeeklyNotice>) -> BoxFuture<'_, usize>;

    /// Tells a user that a payment made outside the chat (YooKassa) was credited.
    fn payment_credited(&self, _user: UserId, _points: u32, _balance: i64) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// What a refund did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RefundOutcome {
    pub charge_id: String,
    pub user: i64,
    /// Stars given back.
    pub stars: u64,
    /// Points taken back in all.
    pub points: u32,
    /// Of those, the part the balance did not cover (now owed).
    pub debt: u32,
    pub balance: i64,
    /// Refunded before: nothing changed now.
    pub already: bool,
}

fn payment_id(charge_id: &str) -> String {
    format!("stars:{charge_id}")
}

/// Refunds a Stars payment: Telegram first (a refund it already made counts as made), then the
/// points, once per charge id. After a crash between the two, reconciliation finds Telegram's
/// refund and takes the points back.
pub async fn refund_stars(app: &App, charge_id: &str) -> Result<RefundOutcome, OpsError> {
    // `admin user` shows the payment as `stars:<charge id>`: either form is accepted.
    let trimmed = charge_id.trim();
    let charge = trimmed
        .strip_prefix("stars:")
        .unwrap_or(trimmed)
        .to_string();
    if charge.is_empty() || charge.len() > 256 || charge.chars().any(char::is_whitespace) {
        return Err(OpsError::Invalid(format!(
            "{charge_id:?} is not a Telegram payment charge id"
        )));
    }
    let id = payment_id(&charge);
    let lookup = id.clone();
    let payment = app
        .blocking(move |a| a.store.payment(&lookup))
        .await?
        .filter(|p| p.status == PaymentStatus::Succeeded || p.status == PaymentStatus::Refunded)
        .ok_or_else(|| OpsError::Invalid(format!("no credited Stars payment {charge}")))?;
    if payment.status == PaymentStatus::Succeeded {
        let tg = app.telegram.as_ref().ok_or_else(|| {
            OpsError::Invalid("telegram.token is not set: cannot reach Telegram".into())
        })?;
        match tg.refund_star_payment(payment.user, &charge).await {
            Ok(()) => {}
            Err(TelegramError::AlreadyRefunded) => {
                tracing::warn!(charge_id = %charge, "Telegram had refunded this charge already")
            }
            Err(TelegramError::Failed(e)) => {
                return Err(OpsError::Invalid(format!(
                    "Telegram refused the refund: {e}"
                )));
            }
        }
    }
    let now = app.now_ms();
    let refunded = app
        .blocking(move |a| a.store.refund_payment(&id, now))
        .await?;
    let outcome = |points, debt, balance, already| RefundOutcome {
        charge_id: charge.clone(),
        user: payment.user.get(),
        stars: payment.amount,
        points,
        debt,
        balance,
        already,
    };
    Ok(match refunded {
        Refunded::Applied {
            points,
            debt,
            balance,
            ..
        } => {
            tracing::info!(user = %payment.user, charge_id = %charge, points, debt, "Stars payment refunded");
            outcome(points, debt, balance, false)
        }
        Refunded::Already { balance, .. } => outcome(payment.points, 0, balance, true),
        Refunded::Unknown => {
            return Err(OpsError::Invalid(format!(
                "no credited Stars payment {charge}"
            )));
        }
    })
}

/// What one reconciliation run found and fixed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StarsReport {
    pub transactions: usize,
    /// Charges credited now (the `successful_payment` never reached us).
    pub credited: Vec<String>,
    /// Refunds made outside `refund_stars` (or interrupted) whose points were taken now.
    pub debited: Vec<String>,
    /// Charges for one of our orders that cannot be credited (amount differs...): by hand.
    pub unmatched: Vec<String>,
}

/// Applies a list of Star transactions: idempotent, so the whole list can be given each time.
pub fn reconcile_stars(app: &App, txs: &[StarTransaction]) -> Result<StarsReport, OpsError> {
    let mut report = StarsReport {
        transactions: txs.len(),
        ..Default::default()
    };
    // Payments before refunds, whatever order Telegram lists them in: a refund of a payment we
    // also missed is then applied in the same run.
    let (payments, refunds): (Vec<&StarTransaction>, Vec<&StarTransaction>) =
        txs.iter().partition(|tx| !tx.refund);
    for tx in payments.into_iter().chain(refunds) {
        let Some(payload) = tx.payload.as_deref().filter(|p| p.starts_with("order:")) else {
            continue;
        };
        let known = app.store.payment(&payment_id(&tx.id))?;
        if tx.refund {
            if known.is_some_and(|p| p.status == PaymentStatus::Succeeded)
                && let Refunded::Applied { points, debt, .. } = app
                    .store
                    .refund_payment(&payment_id(&tx.id), app.now_ms())?
            {
                tracing::warn!(user = %tx.user, charge_id = %tx.id, points, debt, "reconciliation: a Stars refund we had not recorded; points taken back");
                report.debited.push(tx.id.clone());
            }
            continue;
        }
        if known.is_some() {
            continue;
        }
        match credit_stars(app, tx.user, payload, "XTR", tx.amount, &tx.id) {
            Ok(Credited::Applied { balance }) => {
                tracing::warn!(user = %tx.user, charge_id = %tx.id, balance, "reconciliation: a Stars payment we had not credited; credited now");
                report.credited.push(tx.id.clone());
            }
            Ok(Credited::Duplicate) => {}
            Err(OpsError::Invalid(_)) => report.unmatched.push(tx.id.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// Reads every page of `getStarTransactions` and reconciles them.
pub async fn reconcile_stars_now(app: &App) -> Result<StarsReport, OpsError> {
    const PAGE: u32 = 100;
    const MAX_PAGES: u32 = 10_000;
    let Some(tg) = app.telegram.clone() else {
        return Ok(StarsReport::default());
    };
    let mut all = Vec::new();
    for page in 0..MAX_PAGES {
        let (txs, raw) = tg
            .star_transactions(page * PAGE, PAGE)
            .await
            .map_err(|e| OpsError::Invalid(format!("getStarTransactions failed: {e}")))?;
        all.extend(txs);
        if raw < PAGE as usize {
            break;
        }
    }
    app.blocking(move |a| reconcile_stars(a, &all)).await
}

/// The periodic Stars check of `serve`: logs what it fixed.
pub async fn stars_task(app: &App) {
    if app.telegram.is_none() {
        return;
    }
    match reconcile_stars_now(app).await {
        Ok(r) if !r.credited.is_empty() || !r.debited.is_empty() || !r.unmatched.is_empty() => {
            tracing::warn!(credited = ?r.credited, debited = ?r.debited, unmatched = ?r.unmatched, "Stars reconciliation fixed payments");
            tell_credited(app, &r.credited).await;
        }
        Ok(r) => tracing::debug!(
            transactions = r.transactions,
            "Stars reconciliation: all in order"
        ),
        Err(e) => tracing::warn!(error = %e, "Stars reconciliation failed"),
    }
}

/// Tells each user whose Stars payment the reconciliation credited: they paid in the chat and
/// were never told (the `successful_payment` was lost, or the process died handling it).
async fn tell_credited(app: &App, charges: &[String]) {
    let Some(tg) = app.telegram.clone() else {
        return;
    };
    for charge in charges {
        let id = payment_id(charge);
        let found = app
            .blocking(
                move |a| -> Result<Option<(UserId, u32, i64)>, crate::store::StoreError> {
                    let Some(p) = a.store.payment(&id)? else {
                        return Ok(None);
                    };
                    Ok(Some((p.user, p.points, a.store.balance(p.user)?)))
                },
            )
            .await;
        match found {
            Ok(Some((user, points, balance))) => tg.payment_credited(user, points, balance).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(charge_id = %charge, error = %e, "cannot tell a user of a reconciled Stars payment")
            }
        }
    }
}
