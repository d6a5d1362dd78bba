//! Schema versions and the steps between them. A new step gets a test that opens a database
//! written in the previous format (see `tests` below).
//!
//! - 1: the first format, without the per-user ledger index.
//! - 2: adds `ledger_by_user`, built from the ledger.

use redb::{Database, ReadableTable, TableHandle};

use super::tables::*;
use super::{StoreError, db};

pub const SCHEMA_VERSION: u64 = 2;

pub fn run(database: &Database) -> Result<(), StoreError> {
    let txn = database.begin_write().map_err(db)?;
    let fresh = !txn
        .list_tables()
        .map_err(db)?
        .any(|t| t.name() == META.name());
    let found = if fresh {
        SCHEMA_VERSION
    } else {
        let meta = txn.open_table(META).map_err(db)?;
        let v = meta.get("schema_version").map_err(db)?.map(|g| g.value());
        v.unwrap_or(1)
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    // Every table exists from the start, so readers never meet a missing one.
    txn.open_table(META).map_err(db)?;
    txn.open_table(USERS).map_err(db)?;
    txn.open_table(BALANCES).map_err(db)?;
    txn.open_table(LEDGER).map_err(db)?;
    txn.open_table(IDEMPOTENCY).map_err(db)?;
    txn.open_table(HOLDS).map_err(db)?;
    txn.open_table(OPEN_HOLDS).map_err(db)?;
    txn.open_table(INTENTS).map_err(db)?;
    txn.open_table(PAYMENTS).map_err(db)?;
    txn.open_table(PROMOCODES).map_err(db)?;
    txn.open_table(BOT_STATE).map_err(db)?;
    txn.open_table(PROMO_REDEMPTIONS).map_err(db)?;
    txn.open_table(YOOKASSA_ORDERS).map_err(db)?;
    txn.open_table(CUSTOMER_EMAILS).map_err(db)?;
    txn.open_table(API_REPLAYS).map_err(db)?;
    if found < 2 {
        build_ledger_index(&txn)?;
        tracing::info!(from = found, to = 2, "store schema migrated");
    }
    txn.open_table(LEDGER_BY_USER).map_err(db)?;
    txn.open_table(META)
        .map_err(db)?
        .insert("schema_version", SCHEMA_VERSION)
        .map_err(db)?;
    txn.commit().map_err(db)?;
    Ok(())
}

fn build_ledger_index(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let ledger = txn.open_table(LEDGER).map_err(db)?;
    let mut index = txn.open_table(LEDGER_BY_USER).map_err(db)?;
    for row in ledger.iter().map_err(db)? {
        let (id, bytes) = row.map_err(db)?;
        let entry: super::LedgerEntry = crate::codec::decode(bytes.value())?;
        index
            .insert((entry.user.get(), id.value()), ())
            .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Reason, UserId};
    use crate::store::{LedgerEntry, Store};

    /// Writes a database the way schema 1 did: user records of version 1, a ledger with no
    /// per-user index, `schema_version = 1`.
    fn write_schema_1(path: &std::path::Path) {
        let database = Database::create(path).unwrap();
        let txn = database.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("schema_version", 1).unwrap();
            meta.insert("next_ledger_id", 3).unwrap();
            let mut users = txn.open_table(USERS).unwrap();
            // UserRecord v1: id, username, language, created_ms, admin, unlimited, banned.
            let mut v1 = vec![1u8];
            v1.extend(
                postcard::to_allocvec(&(
                    UserId::new(42),
                    Some("ann".to_string()),
                    Some("ru".to_string()),
                    1_000i64,
                    false,
                    false,
                    false,
                ))
                .unwrap(),
            );
            users.insert(42, v1.as_slice()).unwrap();
            let mut balances = txn.open_table(BALANCES).unwrap();
            balances.insert(42, 90).unwrap();
            let mut ledger = txn.open_table(LEDGER).unwrap();
            let mut idem = txn.open_table(IDEMPOTENCY).unwrap();
            for (id, delta, reason, key) in [
                (1u64, 60i64, Reason::Welcome, "welcome:42"),
                (2, 30, Reason::Topup, "t1"),
            ] {
                let e = LedgerEntry {
                    id,
                    user: UserId::new(42),
                    delta,
                    reason,
                    key: key.into(),
                    job: None,
                    reference: None,
                    note: None,
                    at_ms: 1_000,
                };
                ledger
                    .insert(id, crate::codec::encode(&e).as_slice())
                    .unwrap();
                idem.insert(key, id).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    #[test]
    fn opens_a_schema_1_database_and_migrates_it() {
        let dir = tempfile::tempdir().unwrap();
        write_schema_1(&dir.path().join(crate::store::FILE_NAME));

        let store = Store::open(dir.path()).unwrap();
        let user = store.user(UserId::new(42)).unwrap().unwrap();
        assert_eq!(user.username.as_deref(), Some("ann"));
        assert_eq!(user.last_seen_ms, 1_000);
        let tail = store.ledger_tail(UserId::new(42), 10).unwrap();
        assert_eq!(
            tail.len(),
            2,
            "the per-user index was built from the ledger"
        );
        assert!(store.verify_ledger().unwrap().is_consistent());
        // The next entry continues the old sequence.
        let posted = store
            .credit(crate::store::Credit::topup(
                UserId::new(42),
                5,
                "t2",
                None,
                2_000,
            ))
            .unwrap();
        assert_eq!(posted.entry_id(), 3);
        drop(store);

        // Opening again is a no-op.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.ledger_tail(UserId::new(42), 10).unwrap().len(), 3);
    }

    #[test]
    fn refuses_a_database_from_the_future() {
        let dir = tempfile::tempdir().unwrap();
        {
            let database = Database::create(dir.path().join(crate::store::FILE_NAME)).unwrap();
            let txn = database.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", 99)
                .unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
