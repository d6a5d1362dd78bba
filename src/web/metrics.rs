//! `/metrics` in the Prometheus text exposition format (version 0.0.4), written by hand: a
//! few dozen series do not need a metrics library.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::error::ApiError;
use crate::app::App;
use crate::ops::MetricsView;

pub async fn metrics(State(app): State<App>) -> Result<impl IntoResponse, ApiError> {
    let view = app.blocking(crate::ops::metrics).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&view),
    ))
}

/// Writes one metric family at a time: `# HELP`, `# TYPE`, then its samples.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A family with a single unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &crate::telemetry::Histogram) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (le, n) in h.cumulative() {
            self.sample(&bucket, &[("le", &number(le))], n as f64);
        }
        self.sample(&format!("{name}_sum"), &[], h.sum_s);
        self.sample(&format!("{name}_count"), &[], h.count as f64);
    }
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// Reads one number of a backend.
type BackendValue = fn(&crate::ops::BackendView) -> f64;

pub fn render(v: &MetricsView) -> String {
    let mut e = Exposition { out: String::new() };
    let c = &v.counters;

    e.family(
        "qwenedit_jobs",
        "gauge",
        "Jobs in the queue by state (queued jobs by lane; delayed: waiting for a retry).",
    );
    for (state, lane, n) in [
        ("queued", "priority", v.depth.priority),
        ("queued", "normal", v.depth.normal),
        ("delayed", "", v.depth.delayed),
        ("running", "", v.depth.running),
    ] {
        let mut labels = vec![("state", state)];
        if !lane.is_empty() {
            labels.push(("lane", lane));
        }
        e.sample("qwenedit_jobs", &labels, n as f64);
    }
    e.single(
        "qwenedit_queue_depth",
        "gauge",
        "Jobs waiting to run (ready and delayed).",
        v.depth.waiting() as f64,
    );
    e.single(
        "qwenedit_queue_oldest_wait_seconds",
        "gauge",
        "How long the oldest queued job has waited.",
        v.oldest_wait_ms as f64 / 1000.0,
    );
    e.family(
        "qwenedit_jobs_finished_total",
        "counter",
        "Jobs that reached a final state since the process started.",
    );
    for state in ["succeeded", "failed", "dead_lettered", "cancelled"] {
        let n = c.jobs_finished.get(state).copied().unwrap_or(0);
        e.sample(
            "qwenedit_jobs_finished_total",
            &[("state", state)],
            n as f64,
        );
    }
    e.single(
        "qwenedit_job_attempts_failed_total",
        "counter",
        "Job attempts that failed (retried or final).",
        c.attempts_failed as f64,
    );
    e.histogram(
        "qwenedit_job_wait_seconds",
        "Time from accepting a job to its first start.",
        &c.wait,
    );
    e.histogram(
        "qwenedit_job_run_seconds",
        "Time from a job's first start to its success.",
        &c.run,
    );

    e.family(
        "qwenedit_backend_up",
        "gauge",
        "1 when the ComfyUI backend answers.",
    );
    for b in &v.backends {
        e.sample(
            "qwenedit_backend_up",
            &[("backend", &b.url)],
            f64::from(u8::from(b.health.up)),
        );
    }
    let per_backend: [(&str, &str, &str, BackendValue); 5] = [
        (
            "qwenedit_backend_jobs_done_total",
            "counter",
            "Jobs a backend finished.",
            |b| b.health.jobs_done as f64,
        ),
        (
            "qwenedit_backend_jobs_failed_total",
            "counter",
            "Job attempts that failed on a backend.",
            |b| b.health.jobs_failed as f64,
        ),
        (
            "qwenedit_backend_busy_seconds_total",
            "counter",
            "Run time of the jobs a backend finished.",
            |b| b.health.busy_ms as f64 / 1000.0,
        ),
        (
            "qwenedit_backend_vram_free_bytes",
            "gauge",
            "Free VRAM of the backend's GPU.",
            |b| b.health.vram_free as f64,
        ),
        (
            "qwenedit_backend_vram_total_bytes",
            "gauge",
            "VRAM of the backend's GPU.",
            |b| b.health.vram_total as f64,
        ),
    ];
    for (name, kind, help, value) in per_backend {
        e.family(name, kind, help);
        for b in &v.backends {
            e.sample(name, &[("backend", &b.url)], value(b));
        }
    }

    e.family(
        "qwenedit_telegram_errors_total",
        "counter",
        "Failed Telegram Bot API requests by kind (too_many_requests: 429 flood control).",
    );
    for kind in [
        crate::telemetry::TelegramError::TooManyRequests,
        crate::telemetry::TelegramError::Api,
        crate::telemetry::TelegramError::Network,
    ] {
        let n = c.telegram_errors.get(&kind).copied().unwrap_or(0);
        e.sample(
            "qwenedit_telegram_errors_total",
            &[("kind", kind.as_str())],
            n as f64,
        );
    }

    e.family(
        "qwenedit_payments",
        "gauge",
        "Provider payments recorded, by rail and state.",
    );
    for ((rail, state, currency), (n, _)) in &v.payments {
        e.sample(
            "qwenedit_payments",
            &[("rail", rail), ("state", state), ("currency", currency)],
            *n as f64,
        );
    }
    e.family(
        "qwenedit_payments_amount",
        "gauge",
        "Sum of provider payments in the currency's smallest unit (Stars; kopecks), by rail and state.",
    );
    for ((rail, state, currency), (_, amount)) in &v.payments {
        e.sample(
            "qwenedit_payments_amount",
            &[("rail", rail), ("state", state), ("currency", currency)],
            *amount as f64,
        );
    }
    e.family(
        "qwenedit_orders",
        "gauge",
        "Orders (invoices and payment links) created, by rail and state.",
    );
    for ((rail, state), n) in &v.orders {
        e.sample(
            "qwenedit_orders",
            &[("rail", rail), ("state", state)],
            *n as f64,
        );
    }

    e.family(
        "qwenedit_ledger_entries",
        "gauge",
        "Ledger entries by reason.",
    );
    for (reason, (n, _)) in &v.ledger.by_reason {
        e.sample("qwenedit_ledger_entries", &[("reason", reason)], *n as f64);
    }
    e.family(
        "qwenedit_ledger_points",
        "gauge",
        "Sum of ledger deltas by reason, in points.",
    );
    for (reason, (_, sum)) in &v.ledger.by_reason {
        e.sample("qwenedit_ledger_points", &[("reason", reason)], *sum as f64);
    }
    e.single(
        "qwenedit_points_outstanding",
        "gauge",
        "Points users hold (the sum of all balances).",
        v.ledger.outstanding as f64,
    );
    e.single(
        "qwenedit_users",
        "gauge",
        "Registered users.",
        v.users as f64,
    );
    e.single(
        "qwenedit_build_info",
        "gauge",
        &format!("qwenedit {}.", env!("CARGO_PKG_VERSION")),
        1.0,
    );
    e.out
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn numbers_in_prometheus_spelling() {
        assert_eq!(super::number(f64::INFINITY), "+Inf");
        assert_eq!(super::number(2.5), "2.5");
        assert_eq!(super::number(3.0), "3");
    }
}
