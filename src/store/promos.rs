//! Promocodes: created in batches, redeemed atomically (a code with one use left is never
//! redeemed twice; one user redeems a code once).

use redb::ReadableTable;

use super::ledger::{Credit, Posted, post};
use super::records::PromoRecord;
use super::tables::*;
use super::{Store, StoreError, db};
use crate::codec::{decode, encode};
use crate::domain::{Reason, UserId};

/// Why a code could not be redeemed, in words the bot turns into a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redeemed {
    Credited { points: u32, balance: i64 },
    Unknown,
    UsedUp,
    Expired,
    AlreadyUsedByYou,
}

/// Codes are case-insensitive and trimmed.
pub fn normalize_code(code: &str) -> String {
    code.trim().to_uppercase()
}

impl Store {
    /// Stores new codes; an existing code is refused (the caller generates fresh ones).
    pub fn create_promos(&self, promos: &[PromoRecord]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(PROMOCODES).map_err(db)?;
            for p in promos {
                if t.get(p.code.as_str()).map_err(db)?.is_some() {
                    return Err(StoreError::KeyConflict {
                        key: p.code.clone(),
                    });
                }
                t.insert(p.code.as_str(), encode(p).as_slice())
                    .map_err(db)?;
            }
            Ok(())
        })
    }

    pub fn promos(&self) -> Result<Vec<PromoRecord>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(PROMOCODES).map_err(db)?;
            t.iter()
                .map_err(db)?
                .map(|row| {
                    let (_, v) = row.map_err(db)?;
                    decode(v.value()).map_err(StoreError::from)
                })
                .collect()
        })
    }

    pub fn set_promo_disabled(
        &self,
        code: &str,
        disabled: bool,
    ) -> Result<Option<PromoRecord>, StoreError> {
        let code = normalize_code(code);
        self.write(|txn| {
            let mut t = txn.open_table(PROMOCODES).map_err(db)?;
            let mut p: PromoRecord = match t.get(code.as_str()).map_err(db)? {
                Some(g) => decode(g.value())?,
                None => return Ok(None),
            };
            p.disabled = disabled;
            t.insert(code.as_str(), encode(&p).as_slice()).map_err(db)?;
            Ok(Some(p))
        })
    }

    /// Redeems `code` for `user`: checks, uses and credits in one transaction.
    pub fn redeem_promo(
        &self,
        code: &str,
        user: UserId,
        now_ms: i64,
    ) -> Result<Redeemed, StoreError> {
        let code = normalize_code(code);
        self.write(|txn| {
            let mut promos = txn.open_table(PROMOCODES).map_err(db)?;
            let mut p: PromoRecord = match promos.get(code.as_str()).map_err(db)? {
                Some(g) => decode(g.value())?,
                None => return Ok(Redeemed::Unknown),
            };
            if p.disabled {
                return Ok(Redeemed::Unknown);
            }
            if p.expires_ms.is_some_and(|e| now_ms >= e) {
                return Ok(Redeemed::Expired);
            }
            let mut redemptions = txn.open_table(PROMO_REDEMPTIONS).map_err(db)?;
            if redemptions
                .get((code.as_str(), user.get()))
                .map_err(db)?
                .is_some()
            {
                return Ok(Redeemed::AlreadyUsedByYou);
            }
            if p.used >= p.max_uses {
                return Ok(Redeemed::UsedUp);
            }
            p.used += 1;
            promos
                .insert(code.as_str(), encode(&p).as_slice())
                .map_err(db)?;
            redemptions
                .insert((code.as_str(), user.get()), ())
                .map_err(db)?;
            drop(promos);
            drop(redemptions);
            let posted = post(
                txn,
                &Credit {
                    user,
                    delta: i64::from(p.points),
                    reason: Reason::Promo,
                    key: format!("promo:{code}:{user}"),
                    job: None,
                    reference: Some(code.clone()),
                    note: None,
                    at_ms: now_ms,
                },
            )?;
            match posted {
                Posted::Applied { balance, .. } => Ok(Redeemed::Credited {
                    points: p.points,
                    balance,
                }),
                Posted::Duplicate { .. } => Err(StoreError::KeyConflict {
                    key: format!("promo:{code}:{user}"),
                }),
            }
        })
    }
}
