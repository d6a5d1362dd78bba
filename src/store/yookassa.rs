//! YooKassa's side of an order: which YooKassa payment pays it (known once the create call
//! answered) and its payment link; and the e-mail a user gave for 54-FZ receipts.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::records::{PaymentRecord, PaymentStatus};
use super::tables::{CUSTOMER_EMAILS, PAYMENTS, YOOKASSA_ORDERS};
use super::{Store, StoreError, db};
use crate::codec::{Versioned, decode, encode};
use crate::domain::UserId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct YooKassaOrderRecord {
    /// `order:<ulid>`, the key of the order in the payments table.
    pub order_id: String,
    /// The pack (0-based) it buys.
    pub pack: u32,
    /// YooKassa's payment id, once a create call answered.
    pub payment_id: Option<String>,
    pub confirmation_url: Option<String>,
    /// The receipt e-mail sent with the create call (part of its body, so of its idempotency).
    pub email: Option<String>,
}

impl Versioned for YooKassaOrderRecord {
    const NAME: &'static str = "yookassa order";
    const VERSION: u8 = 1;
}

impl Store {
    /// Writes a new order and its YooKassa record together.
    pub fn put_yookassa_order(
        &self,
        order: &PaymentRecord,
        yk: &YooKassaOrderRecord,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(PAYMENTS)
                .map_err(db)?
                .insert(order.id.as_str(), encode(order).as_slice())
                .map_err(db)?;
            txn.open_table(YOOKASSA_ORDERS)
                .map_err(db)?
                .insert(yk.order_id.as_str(), encode(yk).as_slice())
                .map_err(db)?;
            Ok(())
        })
    }

    pub fn yookassa_order(
        &self,
        order_id: &str,
    ) -> Result<Option<YooKassaOrderRecord>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(YOOKASSA_ORDERS).map_err(db)?;
            t.get(order_id)
                .map_err(db)?
                .map(|g| decode(g.value()).map_err(StoreError::from))
                .transpose()
        })
    }

    /// Remembers the YooKassa payment of an order (and its link, when known). An order keeps
    /// the first payment id it learnt.
    pub fn set_yookassa_payment(
        &self,
        order_id: &str,
        payment_id: &str,
        confirmation_url: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(YOOKASSA_ORDERS).map_err(db)?;
            let rec: Option<YooKassaOrderRecord> = t
                .get(order_id)
                .map_err(db)?
                .map(|g| decode(g.value()))
                .transpose()?;
            let Some(mut rec) = rec else {
                return Ok(());
            };
            let before = rec.clone();
            if rec.payment_id.is_none() {
                rec.payment_id = Some(payment_id.to_string());
            }
            if rec.payment_id.as_deref() == Some(payment_id) && rec.confirmation_url.is_none() {
                rec.confirmation_url = confirmation_url.map(str::to_string);
            }
            if rec != before {
                t.insert(order_id, encode(&rec).as_slice()).map_err(db)?;
            }
            Ok(())
        })
    }

    /// Marks a still pending order canceled; `false` when it was not pending (paid, say).
    pub fn cancel_order(&self, order_id: &str, at_ms: i64) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(PAYMENTS).map_err(db)?;
            let order: Option<PaymentRecord> = t
                .get(order_id)
                .map_err(db)?
                .map(|g| decode(g.value()))
                .transpose()?;
            match order {
                Some(mut o) if o.status == PaymentStatus::Pending => {
                    o.status = PaymentStatus::Canceled;
                    o.updated_ms = at_ms;
                    t.insert(order_id, encode(&o).as_slice()).map_err(db)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    pub fn customer_email(&self, user: UserId) -> Result<Option<String>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(CUSTOMER_EMAILS).map_err(db)?;
            Ok(t.get(user.get())
                .map_err(db)?
                .map(|g| g.value().to_string()))
        })
    }

    pub fn set_customer_email(&self, user: UserId, email: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(CUSTOMER_EMAILS)
                .map_err(db)?
                .insert(user.get(), email)
                .map_err(db)?;
            Ok(())
        })
    }
}
