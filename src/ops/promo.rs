//! Promocodes: batches created by the operator, redeemed by users in the bot.

use serde::{Deserialize, Serialize};

use super::OpsError;
use crate::app::App;
use crate::domain::UserId;
use crate::store::{PromoRecord, Redeemed};

/// Letters and digits that cannot be confused when typed (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoBatch {
    pub points: u32,
    pub count: u32,
    /// Uses per code (each user once).
    pub uses: u32,
    pub expires_ms: Option<i64>,
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PromoView {
    pub code: String,
    pub points: u32,
    pub uses: u32,
    pub used: u32,
    pub expires_ms: Option<i64>,
    pub disabled: bool,
    pub batch: String,
}

impl From<&PromoRecord> for PromoView {
    fn from(p: &PromoRecord) -> Self {
        Self {
            code: p.code.clone(),
            points: p.points,
            uses: p.max_uses,
            used: p.used,
            expires_ms: p.expires_ms,
            disabled: p.disabled,
            batch: p.batch.clone(),
        }
    }
}

pub fn create_promos(app: &App, b: PromoBatch) -> Result<Vec<PromoView>, OpsError> {
    if b.points == 0 || b.points > 1_000_000 {
        return Err(OpsError::Invalid("points must be 1 to 1000000".into()));
    }
    if b.count == 0 || b.count > 10_000 {
        return Err(OpsError::Invalid("count must be 1 to 10000".into()));
    }
    if b.uses == 0 || b.uses > 1_000_000 {
        return Err(OpsError::Invalid("uses must be 1 to 1000000".into()));
    }
    let prefix = b
        .prefix
        .as_deref()
        .map(crate::store::normalize_code)
        .unwrap_or_default();
    if prefix.len() > 16
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(OpsError::Invalid(
            "the prefix must be up to 16 letters, digits or dashes".into(),
        ));
    }
    let now = app.now_ms();
    if b.expires_ms.is_some_and(|e| e <= now) {
        return Err(OpsError::Invalid("the expiry date is in the past".into()));
    }
    let batch = ulid::Ulid::new().to_string();
    let records: Vec<PromoRecord> = (0..b.count)
        .map(|_| {
            let random: String = (0..CODE_LEN)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
                .collect();
            PromoRecord {
                code: format!("{prefix}{random}"),
                points: b.points,
                max_uses: b.uses,
                used: 0,
                expires_ms: b.expires_ms,
                created_ms: now,
                disabled: false,
                batch: batch.clone(),
            }
        })
        .collect();
    app.store.create_promos(&records)?;
    tracing::info!(count = b.count, points = b.points, %batch, "promocodes created");
    Ok(records.iter().map(PromoView::from).collect())
}

pub fn list_promos(app: &App) -> Result<Vec<PromoView>, OpsError> {
    let mut v: Vec<PromoView> = app.store.promos()?.iter().map(PromoView::from).collect();
    v.sort_by(|a, b| (&a.batch, &a.code).cmp(&(&b.batch, &b.code)));
    Ok(v)
}

pub fn disable_promo(app: &App, code: &str) -> Result<PromoView, OpsError> {
    app.store
        .set_promo_disabled(code, true)?
        .map(|p| PromoView::from(&p))
        .ok_or_else(|| OpsError::UnknownPromo(code.to_string()))
}

pub fn redeem_promo(app: &App, user: UserId, code: &str) -> Result<Redeemed, OpsError> {
    if code.trim().is_empty() || code.len() > 64 {
        return Ok(Redeemed::Unknown);
    }
    let r = app.store.redeem_promo(code, user, app.now_ms())?;
    tracing::info!(%user, outcome = ?r, "promocode redemption");
    Ok(r)
}
