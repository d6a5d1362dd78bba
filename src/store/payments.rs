//! Orders and payments. A provider payment id is credited exactly once: the payment record and
//! its ledger entry are written in one transaction, keyed by that id.

use redb::ReadableTable;

use super::ledger::{Credit, Posted, post};
use super::records::{PaymentRecord, PaymentStatus};
use super::tables::*;
use super::{Store, StoreError, db};
use crate::codec::{decode, encode};
use crate::domain::Reason;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credited {
    Applied {
        balance: i64,
    },
    /// This payment id was credited before.
    Duplicate,
}

impl Store {
    pub fn put_payment(&self, record: &PaymentRecord) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(PAYMENTS)
                .map_err(db)?
                .insert(record.id.as_str(), encode(record).as_slice())
                .map_err(db)?;
            Ok(())
        })
    }

    pub fn payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(PAYMENTS).map_err(db)?;
            t.get(id)
                .map_err(db)?
                .map(|g| decode(g.value()).map_err(StoreError::from))
                .transpose()
        })
    }

    /// Every order and payment, newest first.
    pub fn payments(&self) -> Result<Vec<PaymentRecord>, StoreError> {
        let mut v: Vec<PaymentRecord> = self.read(|txn| {
            let t = txn.open_table(PAYMENTS).map_err(db)?;
            t.iter()
                .map_err(db)?
                .map(|row| {
                    let (_, v) = row.map_err(db)?;
                    decode(v.value()).map_err(StoreError::from)
                })
                .collect()
        })?;
        v.sort_by_key(|p| std::cmp::Reverse(p.created_ms));
        Ok(v)
    }

    /// Records a successful payment and credits its points, once per `payment.id`; the order
    /// it pays is marked paid in the same transaction.
    pub fn credit_payment(&self, payment: &PaymentRecord) -> Result<Credited, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(PAYMENTS).map_err(db)?;
            if t.get(payment.id.as_str()).map_err(db)?.is_some() {
                return Ok(Credited::Duplicate);
            }
            t.insert(payment.id.as_str(), encode(payment).as_slice())
                .map_err(db)?;
            let order: Option<PaymentRecord> = t
                .get(payment.order_id.as_str())
                .map_err(db)?
                .map(|g| decode(g.value()))
                .transpose()?;
            if let Some(mut order) = order {
                order.status = PaymentStatus::Succeeded;
                order.updated_ms = payment.updated_ms;
                t.insert(order.id.as_str(), encode(&order).as_slice())
                    .map_err(db)?;
            }
            drop(t);
            let posted = post(
                txn,
                &Credit {
                    user: payment.user,
                    delta: i64::from(payment.points),
                    reason: Reason::Payment,
                    key: format!("payment:{}", payment.id),
                    job: None,
                    reference: Some(payment.id.clone()),
                    note: Some(format!("{} {}", payment.amount, payment.currency)),
                    at_ms: payment.updated_ms,
                },
            )?;
            match posted {
                Posted::Applied { balance, .. } => Ok(Credited::Applied { balance }),
                Posted::Duplicate { .. } => Err(StoreError::KeyConflict {
                    key: format!("payment:{}", payment.id),
                }),
            }
        })
    }
}

/// What refunding a payment did to the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refunded {
    /// The points were taken back: `covered` from the balance, the rest as a debt.
    Applied {
        user: crate::domain::UserId,
        points: u32,
        covered: u32,
        debt: u32,
        balance: i64,
    },
    /// This payment was refunded before; nothing changed.
    Already {
        user: crate::domain::UserId,
        balance: i64,
    },
    /// No such payment.
    Unknown,
}

impl Store {
    /// Marks a credited payment refunded and takes its points back, once per payment id, in one
    /// transaction: a `Refund` entry for what the balance covers and a `Debt` entry for the
    /// rest (points already spent), which is the only way a balance goes below zero.
    pub fn refund_payment(&self, payment_id: &str, at_ms: i64) -> Result<Refunded, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(PAYMENTS).map_err(db)?;
            let mut payment: PaymentRecord = match t.get(payment_id).map_err(db)? {
                Some(g) => decode(g.value())?,
                None => return Ok(Refunded::Unknown),
            };
            let balance = txn
                .open_table(BALANCES)
                .map_err(db)?
                .get(payment.user.get())
                .map_err(db)?
                .map_or(0, |g| g.value());
            if payment.status == PaymentStatus::Refunded {
                return Ok(Refunded::Already {
                    user: payment.user,
                    balance,
                });
            }
            if payment.status != PaymentStatus::Succeeded {
                // Never credited (pending or canceled): nothing to take back.
                return Ok(Refunded::Unknown);
            }
            payment.status = PaymentStatus::Refunded;
            payment.updated_ms = at_ms;
            t.insert(payment_id, encode(&payment).as_slice())
                .map_err(db)?;
            drop(t);
            let points = payment.points;
            let covered = u32::try_from(balance.clamp(0, i64::from(points))).unwrap_or(0);
            let debt = points - covered;
            let mut balance = balance;
            for (reason, amount, key) in [
                (Reason::Refund, covered, format!("refund:{payment_id}")),
                (Reason::Debt, debt, format!("debt:{payment_id}")),
            ] {
                if amount == 0 {
                    continue;
                }
                let posted = post(
                    txn,
                    &Credit {
                        user: payment.user,
                        delta: -i64::from(amount),
                        reason,
                        key: key.clone(),
                        job: None,
                        reference: Some(payment_id.to_string()),
                        note: Some(format!("refund of {} {}", payment.amount, payment.currency)),
                        at_ms,
                    },
                )?;
                match posted {
                    Posted::Applied { balance: b, .. } => balance = b,
                    Posted::Duplicate { .. } => return Err(StoreError::KeyConflict { key }),
                }
            }
            Ok(Refunded::Applied {
                user: payment.user,
                points,
                covered,
                debt,
                balance,
            })
        })
    }
}
