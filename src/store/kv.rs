//! A small key-value table for the bot's own records (dialogues, job messages, the update
//! offset). The bot encodes and versions them; this module only stores bytes.

use redb::ReadableTable;

use super::tables::BOT_STATE;
use super::{Store, StoreError, db};

impl Store {
    pub fn bot_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(BOT_STATE).map_err(db)?;
            Ok(t.get(key).map_err(db)?.map(|g| g.value().to_vec()))
        })
    }

    pub fn bot_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(BOT_STATE)
                .map_err(db)?
                .insert(key, value)
                .map_err(db)?;
            Ok(())
        })
    }

    pub fn bot_delete(&self, key: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(BOT_STATE)
                .map_err(db)?
                .remove(key)
                .map_err(db)?;
            Ok(())
        })
    }

    /// Every (key, value) whose key starts with `prefix`.
    pub fn bot_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(BOT_STATE).map_err(db)?;
            let mut out = Vec::new();
            for row in t.range(prefix..).map_err(db)? {
                let (k, v) = row.map_err(db)?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// Every user id, for broadcasts and stats.
    pub fn user_ids(&self) -> Result<Vec<crate::domain::UserId>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(super::tables::USERS).map_err(db)?;
            t.iter()
                .map_err(db)?
                .map(|row| {
                    let (k, _) = row.map_err(db)?;
                    Ok(crate::domain::UserId::new(k.value()))
                })
                .collect()
        })
    }
}
