//! Users: created once (with the welcome bonus when they come through /start), flags for admin,
//! unlimited and banned.

use redb::{ReadableTable, ReadableTableMetadata};

use super::ledger::{Credit, Posted, post};
use super::records::UserRecord;
use super::tables::*;
use super::{Store, StoreError, db};
use crate::codec::{decode, encode};
use crate::domain::{Reason, UserId};

/// Who a user is, as known when they first appear.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub username: Option<String>,
    pub language: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub user: UserRecord,
    pub created: bool,
    /// The welcome credit, when one was posted now.
    pub welcome: Option<Posted>,
}

impl Store {
    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(USERS).map_err(db)?;
            t.get(id.get())
                .map_err(db)?
                .map(|g| decode(g.value()).map_err(StoreError::from))
                .transpose()
        })
    }

    /// Creates the user if unknown, crediting `welcome` points exactly once (keyed by the user
    /// id), all in one transaction. A known user only gets `last_seen` updated.
    pub fn register(
        &self,
        id: UserId,
        who: NewUser,
        welcome: u32,
        now_ms: i64,
    ) -> Result<Registered, StoreError> {
        self.write(|txn| {
            let mut users = txn.open_table(USERS).map_err(db)?;
            let existing: Option<UserRecord> = users
                .get(id.get())
                .map_err(db)?
                .map(|g| decode(g.value()))
                .transpose()?;
            let (mut record, created) = match existing {
                Some(r) => (r, false),
                None => (
                    UserRecord {
                        id,
                        username: who.username.clone(),
                        language: who.language.clone(),
                        created_ms: now_ms,
                        last_seen_ms: now_ms,
                        admin: false,
                        unlimited: false,
                        banned: false,
                    },
                    true,
                ),
            };
            record.last_seen_ms = now_ms;
            if who.username.is_some() {
                record.username = who.username;
            }
            users
                .insert(id.get(), encode(&record).as_slice())
                .map_err(db)?;
            drop(users);
            let welcome = if created && welcome > 0 {
                Some(post(
                    txn,
                    &Credit {
                        user: id,
                        delta: i64::from(welcome),
                        reason: Reason::Welcome,
                        key: format!("welcome:{id}"),
                        job: None,
                        reference: None,
                        note: None,
                        at_ms: now_ms,
                    },
                )?)
            } else {
                None
            };
            Ok(Registered {
                user: record,
                created,
                welcome,
            })
        })
    }

    /// Creates a user the operator names before they used the bot (no welcome points; never
    /// seen, so not "active"). A known user is left as is. Returns whether it was created.
    pub fn ensure_user(&self, id: UserId, now_ms: i64) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut users = txn.open_table(USERS).map_err(db)?;
            if users.get(id.get()).map_err(db)?.is_some() {
                return Ok(false);
            }
            let record = UserRecord {
                id,
                username: None,
                language: None,
                created_ms: now_ms,
                last_seen_ms: 0,
                admin: false,
                unlimited: false,
                banned: false,
            };
            users
                .insert(id.get(), encode(&record).as_slice())
                .map_err(db)?;
            Ok(true)
        })
    }

    /// Changes a user's record; `UnknownUser` if there is none.
    pub fn update_user(
        &self,
        id: UserId,
        change: impl FnOnce(&mut UserRecord),
    ) -> Result<UserRecord, StoreError> {
        self.write(|txn| {
            let mut users = txn.open_table(USERS).map_err(db)?;
            let mut record: UserRecord = match users.get(id.get()).map_err(db)? {
                Some(g) => decode(g.value())?,
                None => return Err(StoreError::UnknownUser(id)),
            };
            change(&mut record);
            users
                .insert(id.get(), encode(&record).as_slice())
                .map_err(db)?;
            Ok(record)
        })
    }

    /// Every user record (for stats and broadcasts).
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(USERS).map_err(db)?;
            t.iter()
                .map_err(db)?
                .map(|row| {
                    let (_, v) = row.map_err(db)?;
                    decode(v.value()).map_err(StoreError::from)
                })
                .collect()
        })
    }

    pub fn user_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| txn.open_table(USERS).map_err(db)?.len().map_err(db))
    }
}
