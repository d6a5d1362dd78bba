//! Users and balances: registration with the welcome bonus, operator top-ups, summaries.

use serde::Serialize;

use super::OpsError;
use crate::app::App;
use crate::domain::{Points, UserId};
use crate::queue::JobRecord;
use crate::store::{Credit, LedgerCheck, LedgerEntry, UserRecord};

pub use crate::store::{NewUser, Registered};

/// Registers a user on first contact (welcome points credited exactly once).
/// A known user seen this recently is not written again: every update registers its sender,
/// and a durable write per button press would cap the bot at the disk's fsync rate.
const SEEN_AGAIN_WITHIN_MS: i64 = 60_000;

pub fn register_user(app: &App, id: UserId, who: NewUser) -> Result<Registered, OpsError> {
    let now = app.now_ms();
    if let Some(user) = app.store.user(id)?
        && (0..SEEN_AGAIN_WITHIN_MS).contains(&(now - user.last_seen_ms))
        && (who.username.is_none() || who.username == user.username)
    {
        return Ok(Registered {
            user,
            created: false,
            welcome: None,
        });
    }
    let welcome = app.config.billing.welcome_points;
    Ok(app.store.register(id, who, welcome, now)?)
}

#[derive(Clone, Debug)]
pub struct TopupRequest {
    pub user: UserId,
    pub points: Points,
    pub note: Option<String>,
    /// Create the user if unknown (points promised before their first /start).
    pub create: bool,
    /// Makes a repeated request harmless; a fresh one is made when absent.
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TopupOutcome {
    pub user: i64,
    pub points: u32,
    pub balance: i64,
    /// The same idempotency key was used before: nothing changed.
    pub duplicate: bool,
    pub created_user: bool,
}

pub fn topup(app: &App, req: TopupRequest) -> Result<TopupOutcome, OpsError> {
    let now = app.now_ms();
    let mut created_user = false;
    if app.store.user(req.user)?.is_none() {
        if !req.create {
            return Err(OpsError::UnknownUser(req.user));
        }
        created_user = app.store.ensure_user(req.user, now)?;
    }
    let key = match req.idempotency_key {
        Some(k) if k.trim().is_empty() || k.len() > 200 => {
            return Err(OpsError::Invalid(
                "the idempotency key must be 1 to 200 characters".into(),
            ));
        }
        Some(k) => format!("topup:{}", k.trim()),
        None => format!("topup:{}", ulid::Ulid::new()),
    };
    let posted = app.store.credit(Credit::topup(
        req.user,
        req.points.get(),
        key,
        req.note.filter(|n| !n.trim().is_empty()),
        now,
    ))?;
    tracing::info!(user = %req.user, points = req.points.get(), duplicate = posted.is_duplicate(), "top-up");
    Ok(TopupOutcome {
        user: req.user.get(),
        points: req.points.get(),
        balance: posted.balance(),
        duplicate: posted.is_duplicate(),
        created_user,
    })
}

#[derive(Clone, Debug)]
pub struct UserSummary {
    pub user: UserRecord,
    pub balance: i64,
    pub ledger: Vec<LedgerEntry>,
    pub jobs: Vec<JobRecord>,
    /// Payments (both rails) and YooKassa orders not paid (pending, canceled), newest first.
    pub payments: Vec<crate::store::PaymentRecord>,
}

pub fn user_summary(app: &App, id: UserId, tail: usize) -> Result<UserSummary, OpsError> {
    let user = app.store.user(id)?.ok_or(OpsError::UnknownUser(id))?;
    Ok(UserSummary {
        user,
        balance: app.store.balance(id)?,
        ledger: app.store.ledger_tail(id, tail)?,
        jobs: app.queue.recent_for_user(id, tail)?,
        payments: app
            .store
            .payments()?
            .into_iter()
            .filter(|p| {
                p.user == id
                    && (!p.id.starts_with("order:")
                        || (p.rail == crate::store::Rail::YooKassa
                            && p.status != crate::store::PaymentStatus::Succeeded))
            })
            .take(tail)
            .collect(),
    })
}

pub fn verify_ledger(app: &App) -> Result<LedgerCheck, OpsError> {
    Ok(app.store.verify_ledger()?)
}
