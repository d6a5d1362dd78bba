//! Top-ups with Telegram Stars: an order per invoice, the pre-checkout check (answered in the
//! bot's handler, within Telegram's 10 s), and the credit on `successful_payment`, once per
//! `telegram_payment_charge_id`.

use serde::{Deserialize, Serialize};

use super::OpsError;
use crate::app::App;
use crate::domain::UserId;
use crate::store::{Credited, PaymentRecord, PaymentStatus, Rail};

/// An unpaid order older than this is refused at pre-checkout.
const ORDER_TTL_MS: i64 = 24 * 3_600_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Order {
    /// Goes into the invoice payload.
    pub id: String,
    pub points: u32,
    pub bonus: u32,
    pub stars: u32,
}

/// Why a pre-checkout is refused (the bot words it for the user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownOrder,
    Stale,
    Mismatch,
    Off,
}

/// Creates the order behind a Stars invoice for pack `pack` (0-based), rate-limited per user.
pub fn create_stars_order(app: &App, user: UserId, pack: usize) -> Result<Order, OpsError> {
    let billing = &app.config.billing;
    if !billing.payments_enabled {
        return Err(OpsError::Invalid("payments are off".into()));
    }
    let p = billing
        .packs
        .get(pack)
        .ok_or_else(|| OpsError::Invalid(format!("no pack {pack}")))?;
    let now = app.now_ms();
    let recent = app
        .store
        .payments()?
        .iter()
        .filter(|r| r.user == user && r.id.starts_with("order:") && now - r.created_ms < 60_000)
        .count();
    if recent >= billing.payments_per_minute as usize {
        return Err(OpsError::RateLimited);
    }
    let id = format!("order:{}", ulid::Ulid::new());
    app.store.put_payment(&PaymentRecord {
        id: id.clone(),
        order_id: id.clone(),
        user,
        rail: Rail::Stars,
        status: PaymentStatus::Pending,
        amount: u64::from(p.stars),
        currency: "XTR".into(),
        points: p.total_points(),
        created_ms: now,
        updated_ms: now,
    })?;
    tracing::info!(%user, order = %id, stars = p.stars, "Stars order created");
    Ok(Order {
        id,
        points: p.points,
        bonus: p.bonus,
        stars: p.stars,
    })
}

/// The pre-checkout check: the order exists, is this user's, unpaid, fresh, and the amount
/// and currency are the order's.
pub fn pre_checkout(
    app: &App,
    user: UserId,
    payload: &str,
    currency: &str,
    total: u32,
) -> Result<(), Refusal> {
    if !app.config.billing.payments_enabled {
        return Err(Refusal::Off);
    }
    let order = match app.store.payment(payload) {
        Ok(Some(o)) if o.id.starts_with("order:") && o.user == user => o,
        _ => return Err(Refusal::UnknownOrder),
    };
    if order.status != PaymentStatus::Pending || app.now_ms() - order.created_ms > ORDER_TTL_MS {
        return Err(Refusal::Stale);
    }
    if currency != "XTR" || u64::from(total) != order.amount {
        return Err(Refusal::Mismatch);
    }
    Ok(())
}

/// Credits a successful Stars payment once per charge id.
pub fn credit_stars(
    app: &App,
    user: UserId,
    payload: &str,
    currency: &str,
    total: u32,
    charge_id: &str,
) -> Result<Credited, OpsError> {
    let order = app.store.payment(payload)?.filter(|o| o.user == user);
    let Some(order) = order else {
        // Telegram took the Stars but we have no order: never guess the points.
        tracing::error!(%user, payload, charge_id, "paid for an unknown order; refund or credit by hand");
        return Err(OpsError::Invalid("unknown order".into()));
    };
    if currency != "XTR" || u64::from(total) != order.amount {
        tracing::error!(%user, payload, charge_id, currency, total, "paid amount differs from the order; refund or credit by hand");
        return Err(OpsError::Invalid("amount differs from the order".into()));
    }
    crate::faults::crash_point("stars_paid");
    let now = app.now_ms();
    let credited = app.store.credit_payment(&PaymentRecord {
        id: format!("stars:{charge_id}"),
        order_id: order.id.clone(),
        user,
        rail: Rail::Stars,
        status: PaymentStatus::Succeeded,
        amount: order.amount,
        currency: "XTR".into(),
        points: order.points,
        created_ms: now,
        updated_ms: now,
    })?;
    if matches!(credited, Credited::Applied { .. }) {
        crate::faults::crash_point("stars_credited");
    }
    tracing::info!(%user, charge_id, points = order.points, duplicate = matches!(credited, Credited::Duplicate), "Stars payment");
    Ok(credited)
}

/// A user's successful payments, newest first.
pub fn payment_history(app: &App, user: UserId) -> Result<Vec<PaymentRecord>, OpsError> {
    Ok(app
        .store
        .payments()?
        .into_iter()
        .filter(|p| p.user == user && !p.id.starts_with("order:"))
        .collect())
}
