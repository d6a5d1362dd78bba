//! Per-user message rate: a sliding one-minute window kept in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub struct Flood {
    per_minute: u32,
    seen: Mutex<HashMap<i64, VecDeque<i64>>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Over the limit: tell the user once.
    Warn,
    /// Still over the limit: ignore silently.
    Drop,
}

impl Flood {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, user: i64, now_ms: i64) -> Verdict {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, q| q.back().is_some_and(|t| now_ms - t < 60_000));
        }
        let q = seen.entry(user).or_default();
        while q.front().is_some_and(|t| now_ms - t >= 60_000) {
            q.pop_front();
        }
        q.push_back(now_ms);
        let n = q.len() as u32;
        if n <= self.per_minute {
            Verdict::Ok
        } else if n == self.per_minute + 1 {
            Verdict::Warn
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_then_drops_then_recovers() {
        let f = Flood::new(3);
        assert_eq!(f.check(1, 0), Verdict::Ok);
        assert_eq!(f.check(1, 1), Verdict::Ok);
        assert_eq!(f.check(1, 2), Verdict::Ok);
        assert_eq!(f.check(1, 3), Verdict::Warn);
        assert_eq!(f.check(1, 4), Verdict::Drop);
        assert_eq!(f.check(2, 4), Verdict::Ok);
        assert_eq!(f.check(1, 70_000), Verdict::Ok);
    }
}
