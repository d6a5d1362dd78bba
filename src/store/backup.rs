//! Online backup: redb has no backup API, so every table is copied through one read
//! transaction (a consistent snapshot) into a fresh database file.

use std::path::Path;

use redb::{Database, ReadableTable};

use super::tables::*;
use super::{Store, StoreError, db};

macro_rules! copy_tables {
    ($src:expr, $dst:expr, $($table:expr),+ $(,)?) => {{
        $(
            let from = $src.open_table($table).map_err(db)?;
            let mut to = $dst.open_table($table).map_err(db)?;
            for row in from.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                to.insert(k.value(), v.value()).map_err(db)?;
            }
        )+
    }};
}

impl Store {
    /// Writes a consistent copy of the whole store to `dest` (a new file).
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(db(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", dest.display()),
            )));
        }
        let target = Database::create(dest).map_err(db)?;
        self.read(|src| {
            let dst = target.begin_write().map_err(db)?;
            copy_tables!(
                src,
                dst,
                META,
                USERS,
                BALANCES,
                LEDGER,
                LEDGER_BY_USER,
                IDEMPOTENCY,
                HOLDS,
                OPEN_HOLDS,
                INTENTS,
                PAYMENTS,
                PROMOCODES,
                BOT_STATE,
                PROMO_REDEMPTIONS,
                YOOKASSA_ORDERS,
                CUSTOMER_EMAILS,
                API_REPLAYS,
            );
            dst.commit().map_err(db)?;
            Ok(())
        })
    }
}
