//! Ledger totals for `/metrics`: entries and points per reason, and the points users hold.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::records::LedgerEntry;
use super::tables::{BALANCES, LEDGER};
use super::{Store, StoreError, db};
use crate::codec::decode;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LedgerTotals {
    /// Reason → (entries, sum of deltas).
    pub by_reason: BTreeMap<&'static str, (u64, i64)>,
    /// The sum of all cached balances: points users hold right now.
    pub outstanding: i64,
}

impl Store {
    /// Sums the whole ledger by reason (one read transaction).
    pub fn ledger_totals(&self) -> Result<LedgerTotals, StoreError> {
        self.read(|txn| {
            let mut totals = LedgerTotals::default();
            let ledger = txn.open_table(LEDGER).map_err(db)?;
            for row in ledger.iter().map_err(db)? {
                let (_, bytes) = row.map_err(db)?;
                let entry: LedgerEntry = decode(bytes.value())?;
                let t = totals.by_reason.entry(entry.reason.as_str()).or_default();
                t.0 += 1;
                t.1 += entry.delta;
            }
            let balances = txn.open_table(BALANCES).map_err(db)?;
            for row in balances.iter().map_err(db)? {
                let (_, balance) = row.map_err(db)?;
                totals.outstanding += balance.value();
            }
            Ok(totals)
        })
    }
}
