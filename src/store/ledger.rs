//! The points ledger: append-only entries, each with a unique idempotency key, and the cached
//! balance they move, both written in one transaction.

use std::collections::BTreeMap;

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::records::LedgerEntry;
use super::tables::*;
use super::{Store, StoreError, db};
use crate::codec::{decode, encode};
use crate::domain::{JobId, Reason, UserId};

/// A request to change a balance.
#[derive(Clone, Debug)]
pub struct Credit {
    pub user: UserId,
    pub delta: i64,
    pub reason: Reason,
    /// Unique across the whole ledger: a second request with the same key changes nothing.
    pub key: String,
    pub job: Option<JobId>,
    pub reference: Option<String>,
    pub note: Option<String>,
    pub at_ms: i64,
}

impl Credit {
    pub fn topup(
        user: UserId,
        points: u32,
        key: impl Into<String>,
        note: Option<String>,
        at_ms: i64,
    ) -> Self {
        Self {
            user,
            delta: i64::from(points),
            reason: Reason::Topup,
            key: key.into(),
            job: None,
            reference: None,
            note,
            at_ms,
        }
    }
}

/// What posting a credit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posted {
    Applied {
        entry_id: u64,
        balance: i64,
    },
    /// The key was used before; nothing changed.
    Duplicate {
        entry_id: u64,
        balance: i64,
    },
}

impl Posted {
    pub fn entry_id(self) -> u64 {
        match self {
            Posted::Applied { entry_id, .. } | Posted::Duplicate { entry_id, .. } => entry_id,
        }
    }

    pub fn balance(self) -> i64 {
        match self {
            Posted::Applied { balance, .. } | Posted::Duplicate { balance, .. } => balance,
        }
    }

    pub fn is_duplicate(self) -> bool {
        matches!(self, Posted::Duplicate { .. })
    }
}

/// Posts one entry inside a write transaction: the building block of every balance change.
/// Refuses to take a balance below zero, except with a `Debt` entry (the uncovered part of a
/// refund); a balance below zero still takes credits (they pay the debt off).
pub(super) fn post(txn: &WriteTransaction, c: &Credit) -> Result<Posted, StoreError> {
    let mut idem = txn.open_table(IDEMPOTENCY).map_err(db)?;
    let mut balances = txn.open_table(BALANCES).map_err(db)?;
    let balance = balances.get(c.user.get()).map_err(db)?.map(|g| g.value());
    if let Some(entry_id) = idem.get(c.key.as_str()).map_err(db)?.map(|g| g.value()) {
        // The same key must mean the same change: same user, same amount, same reason.
        let same = match txn
            .open_table(LEDGER)
            .map_err(db)?
            .get(entry_id)
            .map_err(db)?
        {
            Some(bytes) => {
                let e: LedgerEntry = decode(bytes.value())?;
                e.user == c.user && e.delta == c.delta && e.reason == c.reason
            }
            None => false,
        };
        if !same {
            return Err(StoreError::KeyConflict { key: c.key.clone() });
        }
        return Ok(Posted::Duplicate {
            entry_id,
            balance: balance.unwrap_or(0),
        });
    }
    if txn
        .open_table(USERS)
        .map_err(db)?
        .get(c.user.get())
        .map_err(db)?
        .is_none()
    {
        return Err(StoreError::UnknownUser(c.user));
    }
    let balance = balance.unwrap_or(0);
    let new_balance = balance
        .checked_add(c.delta)
        .ok_or(StoreError::InsufficientPoints {
            need: u32::MAX,
            have: balance,
        })?;
    if new_balance < 0 && c.delta < 0 && c.reason != Reason::Debt {
        return Err(StoreError::InsufficientPoints {
            need: u32::try_from(-c.delta).unwrap_or(u32::MAX),
            have: balance,
        });
    }
    let mut meta = txn.open_table(META).map_err(db)?;
    let entry_id = meta
        .get("next_ledger_id")
        .map_err(db)?
        .map_or(1, |g| g.value());
    meta.insert("next_ledger_id", entry_id + 1).map_err(db)?;
    let entry = LedgerEntry {
        id: entry_id,
        user: c.user,
        delta: c.delta,
        reason: c.reason,
        key: c.key.clone(),
        job: c.job,
        reference: c.reference.clone(),
        note: c.note.clone(),
        at_ms: c.at_ms,
    };
    txn.open_table(LEDGER)
        .map_err(db)?
        .insert(entry_id, encode(&entry).as_slice())
        .map_err(db)?;
    txn.open_table(LEDGER_BY_USER)
        .map_err(db)?
        .insert((c.user.get(), entry_id), ())
        .map_err(db)?;
    idem.insert(c.key.as_str(), entry_id).map_err(db)?;
    balances.insert(c.user.get(), new_balance).map_err(db)?;
    Ok(Posted::Applied {
        entry_id,
        balance: new_balance,
    })
}

/// The result of recomputing every balance from the ledger.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct LedgerCheck {
    pub users: u64,
    pub entries: u64,
    /// (user, cached balance, sum of entries) wherever they differ.
    #[schema(value_type = Vec<Vec<i64>>)]
    pub mismatches: Vec<(i64, i64, i64)>,
    /// Users whose balance went below zero other than through a `Debt` entry.
    pub negative: Vec<i64>,
    /// Users who owe points (balance below zero through a refund's `Debt` entry): allowed,
    /// listed for the operator.
    #[serde(default)]
    pub debts: Vec<(i64, i64)>,
    /// Idempotency keys that point at a missing or different entry.
    pub bad_keys: Vec<String>,
}

impl LedgerCheck {
    pub fn is_consistent(&self) -> bool {
        self.mismatches.is_empty() && self.negative.is_empty() && self.bad_keys.is_empty()
    }
}

impl Store {
    /// Applies one balance change (idempotent by its key).
    pub fn credit(&self, c: Credit) -> Result<Posted, StoreError> {
        self.write(|txn| post(txn, &c))
    }

    pub fn balance(&self, user: UserId) -> Result<i64, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(BALANCES).map_err(db)?;
            Ok(t.get(user.get()).map_err(db)?.map_or(0, |g| g.value()))
        })
    }

    /// The user's newest `limit` entries, newest first.
    pub fn ledger_tail(&self, user: UserId, limit: usize) -> Result<Vec<LedgerEntry>, StoreError> {
        self.read(|txn| {
            let index = txn.open_table(LEDGER_BY_USER).map_err(db)?;
            let ledger = txn.open_table(LEDGER).map_err(db)?;
            let mut out = Vec::new();
            let range = index
                .range((user.get(), 0)..=(user.get(), u64::MAX))
                .map_err(db)?;
            for row in range.rev().take(limit) {
                let (key, _) = row.map_err(db)?;
                let (_, id) = key.value();
                if let Some(bytes) = ledger.get(id).map_err(db)? {
                    out.push(decode(bytes.value())?);
                }
            }
            Ok(out)
        })
    }

    /// Up to `limit` of the user's entries older than entry `before` (all when `None`),
    /// newest first: a page of the ledger.
    pub fn ledger_page(
        &self,
        user: UserId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let end = before.unwrap_or(u64::MAX);
        self.read(|txn| {
            let index = txn.open_table(LEDGER_BY_USER).map_err(db)?;
            let ledger = txn.open_table(LEDGER).map_err(db)?;
            let mut out = Vec::new();
            let range = index
                .range((user.get(), 0)..(user.get(), end))
                .map_err(db)?;
            for row in range.rev().take(limit) {
                let (key, _) = row.map_err(db)?;
                let (_, id) = key.value();
                if let Some(bytes) = ledger.get(id).map_err(db)? {
                    out.push(decode(bytes.value())?);
                }
            }
            Ok(out)
        })
    }

    /// Recomputes every balance from the ledger and compares with the cached ones.
    pub fn verify_ledger(&self) -> Result<LedgerCheck, StoreError> {
        self.read(|txn| {
            let ledger = txn.open_table(LEDGER).map_err(db)?;
            // Entries are replayed in posting order (ids increase), so the running sum is
            // the balance as it was after each entry.
            let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
            let mut keys: BTreeMap<String, u64> = BTreeMap::new();
            let mut check = LedgerCheck::default();
            for row in ledger.iter().map_err(db)? {
                let (id, bytes) = row.map_err(db)?;
                let entry: LedgerEntry = decode(bytes.value())?;
                let running = sums.entry(entry.user.get()).or_default();
                *running += entry.delta;
                if *running < 0
                    && entry.delta < 0
                    && entry.reason != Reason::Debt
                    && !check.negative.contains(&entry.user.get())
                {
                    check.negative.push(entry.user.get());
                }
                if let Some(previous) = keys.insert(entry.key.clone(), id.value()) {
                    check.bad_keys.push(format!(
                        "{} (entries {previous} and {})",
                        entry.key,
                        id.value()
                    ));
                }
                check.entries += 1;
            }
            let balances = txn.open_table(BALANCES).map_err(db)?;
            for row in balances.iter().map_err(db)? {
                let (user, cached) = row.map_err(db)?;
                let (user, cached) = (user.value(), cached.value());
                let computed = sums.remove(&user).unwrap_or(0);
                if cached != computed {
                    check.mismatches.push((user, cached, computed));
                }
                if cached < 0 {
                    check.debts.push((user, cached));
                }
            }
            // Entries whose user has no cached balance at all.
            for (user, computed) in sums {
                if computed != 0 {
                    check.mismatches.push((user, 0, computed));
                }
            }
            let idem = txn.open_table(IDEMPOTENCY).map_err(db)?;
            for row in idem.iter().map_err(db)? {
                let (key, id) = row.map_err(db)?;
                if keys.remove(key.value()) != Some(id.value()) {
                    check.bad_keys.push(key.value().to_string());
                }
            }
            check.bad_keys.extend(keys.into_keys());
            check.users = txn.open_table(USERS).map_err(db)?.len().map_err(db)?;
            Ok(check)
        })
    }
}
