//! Stored record types of the redb store, each versioned. Domain types do not double as these.

use serde::{Deserialize, Serialize};

use crate::codec::{CodecError, Versioned, decode_body};
use crate::domain::{JobId, Reason, UserId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub username: Option<String>,
    pub language: Option<String>,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub admin: bool,
    pub unlimited: bool,
    pub banned: bool,
}

/// Version 1 of the user record, before `last_seen_ms`; kept to read old databases.
#[derive(Deserialize)]
struct UserRecordV1 {
    id: UserId,
    username: Option<String>,
    language: Option<String>,
    created_ms: i64,
    admin: bool,
    unlimited: bool,
    banned: bool,
}

impl Versioned for UserRecord {
    const NAME: &'static str = "user";
    const VERSION: u8 = 2;

    fn upgrade(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        match version {
            1 => {
                let v1: UserRecordV1 = decode_body(Self::NAME, body)?;
                Ok(UserRecord {
                    id: v1.id,
                    username: v1.username,
                    language: v1.language,
                    created_ms: v1.created_ms,
                    last_seen_ms: v1.created_ms,
                    admin: v1.admin,
                    unlimited: v1.unlimited,
                    banned: v1.banned,
                })
            }
            _ => Err(CodecError::UnknownVersion {
                name: Self::NAME,
                version,
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub id: u64,
    pub user: UserId,
    pub delta: i64,
    pub reason: Reason,
    pub key: String,
    pub job: Option<JobId>,
    /// A payment id, promocode or other outside reference.
    pub reference: Option<String>,
    /// Free text from the operator ("--reason").
    pub note: Option<String>,
    pub at_ms: i64,
}

impl Versioned for LedgerEntry {
    const NAME: &'static str = "ledger entry";
    const VERSION: u8 = 1;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldState {
    Held,
    Captured,
    Released,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub job: JobId,
    pub user: UserId,
    pub amount: u32,
    pub state: HoldState,
    pub created_ms: i64,
    pub settled_ms: Option<i64>,
}

impl Versioned for HoldRecord {
    const NAME: &'static str = "hold";
    const VERSION: u8 = 1;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoRecord {
    /// Normalised: trimmed, upper case.
    pub code: String,
    pub points: u32,
    pub max_uses: u32,
    pub used: u32,
    pub expires_ms: Option<i64>,
    pub created_ms: i64,
    pub disabled: bool,
    /// The batch it was created in, for listing.
    pub batch: String,
}

impl Versioned for PromoRecord {
    const NAME: &'static str = "promocode";
    const VERSION: u8 = 1;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rail {
    Stars,
    YooKassa,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Canceled,
    Refunded,
}

/// An order (`order:<id>`, what the user asked to buy) or a payment (`stars:<charge id>`,
/// `yookassa:<id>`: what the provider reported), in the payments table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub id: String,
    pub order_id: String,
    pub user: UserId,
    pub rail: Rail,
    pub status: PaymentStatus,
    /// In the currency's smallest unit (Stars; kopecks).
    pub amount: u64,
    pub currency: String,
    /// Points credited (or to credit), bonus included.
    pub points: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Versioned for PaymentRecord {
    const NAME: &'static str = "payment";
    const VERSION: u8 = 1;
}
