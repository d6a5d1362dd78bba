//! The admin API's `Idempotency-Key` records: the first request with a key reserves it (with a
//! fingerprint of the request), its success response is stored, and a repeat gets that response
//! back. The check-and-reserve is one write transaction, so two concurrent requests with the
//! same key cannot both run. Keys are forgotten after `storage.retention` ([`Store::replays_trim`]).

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::tables::API_REPLAYS;
use super::{Store, StoreError, db};
use crate::codec::{Versioned, decode, encode};

/// What a key stands for: the request that used it first and, once done, its response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiReplay {
    /// Method, path and canonical body of the first request.
    pub fingerprint: String,
    pub created_ms: i64,
    /// `None` while the first request runs.
    pub status: Option<u16>,
    pub body: Vec<u8>,
}

impl Versioned for ApiReplay {
    const NAME: &'static str = "api replay";
    const VERSION: u8 = 1;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayBegin {
    /// The key is new (or its earlier attempt was abandoned): it is reserved for this request.
    Reserved,
    /// The same request finished before: here is its response.
    Done { status: u16, body: Vec<u8> },
    /// The same request is running right now.
    InProgress,
    /// The key was used for a different request.
    Conflict,
}

impl Store {
    /// Reserves `key` for a request, unless it was used before. A reservation older than
    /// `stale_before_ms` without a response was abandoned (a crash) and is taken over.
    pub fn replay_begin(
        &self,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<ReplayBegin, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(API_REPLAYS).map_err(db)?;
            let existing: Option<ApiReplay> = t
                .get(key)
                .map_err(db)?
                .map(|g| decode(g.value()))
                .transpose()?;
            if let Some(r) = existing {
                if r.fingerprint != fingerprint {
                    return Ok(ReplayBegin::Conflict);
                }
                match r.status {
                    Some(status) => {
                        return Ok(ReplayBegin::Done {
                            status,
                            body: r.body,
                        });
                    }
                    None if r.created_ms > stale_before_ms => return Ok(ReplayBegin::InProgress),
                    None => {}
                }
            }
            let record = ApiReplay {
                fingerprint: fingerprint.to_string(),
                created_ms: now_ms,
                status: None,
                body: Vec::new(),
            };
            t.insert(key, encode(&record).as_slice()).map_err(db)?;
            Ok(ReplayBegin::Reserved)
        })
    }

    /// Stores the response of a reserved key.
    pub fn replay_finish(&self, key: &str, status: u16, body: &[u8]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(API_REPLAYS).map_err(db)?;
            let existing: Option<ApiReplay> = t
                .get(key)
                .map_err(db)?
                .map(|g| decode(g.value()))
                .transpose()?;
            if let Some(mut r) = existing {
                r.status = Some(status);
                r.body = body.to_vec();
                t.insert(key, encode(&r).as_slice()).map_err(db)?;
            }
            Ok(())
        })
    }

    /// Frees a reserved key whose request failed, so it can be tried again.
    pub fn replay_abort(&self, key: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(API_REPLAYS).map_err(db)?;
            let pending = match t.get(key).map_err(db)? {
                Some(g) => decode::<ApiReplay>(g.value())?.status.is_none(),
                None => false,
            };
            if pending {
                t.remove(key).map_err(db)?;
            }
            Ok(())
        })
    }

    /// Forgets every key first used before `before_ms` (answered or abandoned): the table
    /// would otherwise grow with every POST for ever. Returns how many went.
    pub fn replays_trim(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(API_REPLAYS).map_err(db)?;
            let before = t.len().map_err(db)?;
            // A record that cannot be read is kept: nothing is dropped on a guess.
            t.retain(|_, v| match decode::<ApiReplay>(v) {
                Ok(r) => r.created_ms >= before_ms,
                Err(_) => true,
            })
            .map_err(db)?;
            Ok(before - t.len().map_err(db)?)
        })
    }
}
