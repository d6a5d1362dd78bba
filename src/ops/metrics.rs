//! What `/metrics` exposes, gathered in one place: the process's counters plus gauges read
//! from the queue, the backends and the store when scraped.

use std::collections::BTreeMap;

use super::OpsError;
use super::status::{BackendView, rail_name};
use crate::app::App;
use crate::queue::Depth;
use crate::store::{LedgerTotals, PaymentStatus};
use crate::telemetry::Counters;

#[derive(Clone, Debug)]
pub struct MetricsView {
    pub counters: Counters,
    pub depth: Depth,
    /// How long the oldest queued job has waited.
    pub oldest_wait_ms: i64,
    pub backends: Vec<BackendView>,
    /// (rail, state, currency) → (count, amount in the smallest unit), provider payments only.
    pub payments: BTreeMap<(&'static str, &'static str, String), (u64, u64)>,
    /// (rail, state) → count of orders (invoices or payment links created).
    pub orders: BTreeMap<(&'static str, &'static str), u64>,
    pub ledger: LedgerTotals,
    pub users: u64,
}

pub fn payment_state(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Canceled => "canceled",
        PaymentStatus::Refunded => "refunded",
    }
}

pub fn metrics(app: &App) -> Result<MetricsView, OpsError> {
    let now = app.now_ms();
    let oldest_wait_ms = app
        .queue
        .active_jobs()
        .iter()
        .filter(|r| r.state() == crate::domain::JobState::Queued)
        .map(|r| now - r.created_ms)
        .max()
        .unwrap_or(0)
        .max(0);
    let mut payments: BTreeMap<_, (u64, u64)> = BTreeMap::new();
    let mut orders: BTreeMap<_, u64> = BTreeMap::new();
    for p in app.store.payments()? {
        let (rail, state) = (rail_name(p.rail), payment_state(p.status));
        if p.id.starts_with("order:") {
            *orders.entry((rail, state)).or_default() += 1;
        } else {
            let e = payments
                .entry((rail, state, p.currency.clone()))
                .or_default();
            e.0 += 1;
            e.1 += p.amount;
        }
    }
    Ok(MetricsView {
        counters: app.telemetry.snapshot(),
        depth: app.queue.depth(),
        oldest_wait_ms,
        backends: super::status::backends(app),
        payments,
        orders,
        ledger: app.store.ledger_totals()?,
        users: app.store.user_count()?,
    })
}
