//! The redb store: users, the points ledger, holds, payments, promocodes, idempotency keys.
//! Only this module knows redb. Every balance change is a ledger entry written in the same
//! write transaction as the cached balance it moves.

mod backup;
mod holds;
mod kv;
mod ledger;
mod migrate;
mod payments;
mod promos;
pub mod records;
mod replays;
mod tables;
mod totals;
mod users;
mod yookassa;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase};

pub use holds::{HoldOutcome, SettleOutcome};
pub use ledger::{Credit, LedgerCheck, Posted};
pub use migrate::SCHEMA_VERSION;
pub use payments::{Credited, Refunded};
pub use promos::{Redeemed, normalize_code};
pub use records::{
    HoldRecord, HoldState, LedgerEntry, PaymentRecord, PaymentStatus, PromoRecord, Rail, UserRecord,
};
pub use replays::{ApiReplay, ReplayBegin};
pub use totals::LedgerTotals;
pub use users::{NewUser, Registered};
pub use yookassa::YooKassaOrderRecord;

use crate::codec::CodecError;
use crate::domain::{JobId, UserId};

/// The file name of the redb database inside the data dir.
pub const FILE_NAME: &str = "qwenedit.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is in use by another process (is `qwenedit serve` running?)")]
    Locked,
    #[error("the store was written by a newer qwenedit (schema {found}, this one knows {known})")]
    TooNew { found: u64, known: u64 },
    #[error("storage error: {0}")]
    Db(#[from] redb::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    #[error("not enough points: need {need}, have {have}")]
    InsufficientPoints { need: u32, have: i64 },
    #[error("the idempotency key {key:?} was already used for something else")]
    KeyConflict { key: String },
    #[error("no hold for job {0}")]
    NoHold(JobId),
    #[error("the hold of job {job} is already {state:?}")]
    HoldSettled { job: JobId, state: HoldState },
}

/// Turns any of redb's many error types into [`StoreError::Db`].
pub(crate) fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

/// A cheap-clone handle to the redb database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| db(redb::StorageError::Io(e)))?;
        let path = data_dir.join(FILE_NAME);
        let database = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            other => db(other),
        })?;
        migrate::run(&database)?;
        Ok(Self {
            db: Arc::new(database),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the database file in bytes.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        let out = f(&txn)?;
        txn.commit().map_err(db)?;
        Ok(out)
    }

    /// A write that need not survive a crash by itself (it is persisted with the next durable
    /// commit); for bookkeeping that reconciliation redoes anyway.
    pub(crate) fn write_lazy<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write().map_err(db)?;
        txn.set_durability(redb::Durability::None).map_err(db)?;
        let out = f(&txn)?;
        txn.commit().map_err(db)?;
        Ok(out)
    }

    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        f(&txn)
    }

    /// Compacts the file. Needs exclusive access: only when no other handle is alive.
    pub fn compact(self) -> Result<bool, StoreError> {
        let mut database = Arc::try_unwrap(self.db).map_err(|_| StoreError::Locked)?;
        database.compact().map_err(db)
    }
}
