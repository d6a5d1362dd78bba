//! Counters and histograms kept since the process started, for `/metrics`: finished jobs by
//! state, wait and run times, failed attempts, Telegram API errors. Gauges (queue depth,
//! backend health, payments, ledger) are read from the stores when scraped instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::queue::JobRecord;

/// Upper bounds (seconds) of the wait and run time histograms.
pub const TIME_BUCKETS_S: [f64; 13] = [
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0,
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket of [`TIME_BUCKETS_S`] (not cumulative), then the overflow.
    pub counts: [u64; TIME_BUCKETS_S.len() + 1],
    pub sum_s: f64,
    pub count: u64,
}

impl Histogram {
    fn observe_ms(&mut self, ms: i64) {
        let s = ms.max(0) as f64 / 1000.0;
        let i = TIME_BUCKETS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(TIME_BUCKETS_S.len());
        self.counts[i] += 1;
        self.sum_s += s;
        self.count += 1;
    }

    /// `(le, cumulative count)` for each bucket, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        let mut out: Vec<(f64, u64)> = TIME_BUCKETS_S
            .iter()
            .zip(self.counts)
            .map(|(le, n)| {
                acc += n;
                (*le, acc)
            })
            .collect();
        out.push((f64::INFINITY, self.count));
        out
    }
}

/// Why a Telegram request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TelegramError {
    /// 429 Too Many Requests (flood control).
    TooManyRequests,
    /// Any other error answer of the Bot API.
    Api,
    /// The request did not get an answer.
    Network,
}

impl TelegramError {
    pub fn as_str(self) -> &'static str {
        match self {
            TelegramError::TooManyRequests => "too_many_requests",
            TelegramError::Api => "api",
            TelegramError::Network => "network",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Finished jobs by final state (`succeeded`, `failed`, `dead_lettered`, `cancelled`).
    pub jobs_finished: BTreeMap<&'static str, u64>,
    /// Attempts that failed (retried or final).
    pub attempts_failed: u64,
    /// Queued to started, of jobs that started.
    pub wait: Histogram,
    /// Started to finished, of jobs that succeeded.
    pub run: Histogram,
    pub telegram_errors: BTreeMap<TelegramError, u64>,
}

/// A cheap-clone handle to the process's counters.
#[derive(Clone, Default)]
pub struct Telemetry(Arc<Mutex<Counters>>);

impl Telemetry {
    fn with(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// A job reached its final state (counted once: when its hold is settled).
    pub fn job_finished(&self, record: &JobRecord) {
        self.with(|c| {
            *c.jobs_finished.entry(record.state().as_str()).or_default() += 1;
            if let Some(started) = record.started_ms {
                c.wait.observe_ms(started - record.created_ms);
                if let (crate::domain::JobState::Succeeded, Some(done)) =
                    (record.state(), record.finished_ms)
                {
                    c.run.observe_ms(done - started);
                }
            }
        });
    }

    pub fn attempt_failed(&self) {
        self.with(|c| c.attempts_failed += 1);
    }

    pub fn telegram_error(&self, kind: TelegramError) {
        self.with(|c| *c.telegram_errors.entry(kind).or_default() += 1);
    }

    pub fn snapshot(&self) -> Counters {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        h.observe_ms(500);
        h.observe_ms(1000);
        h.observe_ms(7000);
        h.observe_ms(100_000_000);
        let c = h.cumulative();
        assert_eq!(c[0], (1.0, 2));
        assert_eq!(c[3], (10.0, 3));
        assert_eq!(c.last(), Some(&(f64::INFINITY, 4)));
        assert_eq!(c[c.len() - 2].1, 3);
    }
}
