//! Identifiers. Job ids are ULIDs: sortable by creation time, and used verbatim as ComfyUI's
//! `prompt_id` and as the idempotency key of the points hold.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Telegram user id (Telegram uses signed 64-bit integers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserId(i64);

impl UserId {
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(Self)
    }
}

/// A job id: a ULID, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(ulid::Ulid);

impl JobId {
    pub fn new() -> Self {
        Self(ulid::Ulid::new())
    }

    /// A job id created at a given time (milliseconds since the epoch), for injected clocks.
    pub fn at(unix_ms: u64) -> Self {
        Self(ulid::Ulid::from_parts(unix_ms, rand::random()))
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(ulid::Ulid::from_bytes(bytes))
    }

    pub fn as_u128(self) -> u128 {
        self.0.0
    }

    pub fn from_u128(v: u128) -> Self {
        Self(ulid::Ulid(v))
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = ulid::DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s.trim()).map(Self)
    }
}

/// Proof that a worker holds the lease of a job. A job re-leased by someone else gets a new
/// token, so a stale holder can no longer complete or fail it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseToken(u64);

impl LeaseToken {
    pub fn random() -> Self {
        Self(rand::random())
    }

    pub const fn from_raw(v: u64) -> Self {
        Self(v)
    }

    pub const fn raw(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_round_trips_through_text_and_bytes() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert_eq!(JobId::from_bytes(id.to_bytes()), id);
        assert_eq!(JobId::from_u128(id.as_u128()), id);
    }

    #[test]
    fn job_ids_sort_by_time() {
        assert!(JobId::at(1_000) < JobId::at(2_000));
    }
}
