//! The operator's view of the running service: backends, queue, jobs, throughput, users,
//! revenue and storage. One struct, rendered as the status page and as `/api/status`.
//! No secrets and no photos: jobs show who and what preset, never prompts or files.

use std::path::Path;

use serde::Serialize;

use super::OpsError;
use crate::app::App;
use crate::domain::{JobState, Lane};
use crate::queue::JobRecord;
use crate::store::{PaymentStatus, Rail};

/// Rows of each job table.
const RUNNING_ROWS: usize = 30;
const RECENT_ROWS: usize = 20;
/// Days of revenue shown, today included.
const REVENUE_DAYS: i64 = 7;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    pub version: &'static str,
    pub now_ms: i64,
    /// The IANA zone days and times are shown in (`billing.time_zone`).
    pub time_zone: String,
    pub backends: Vec<BackendView>,
    pub queue: QueueView,
    /// Queued and running jobs, oldest first.
    pub active: Vec<JobRow>,
    /// Finished jobs, newest first.
    pub recent: Vec<JobRow>,
    pub last_hour: Throughput,
    pub last_day: Throughput,
    pub users: UsersView,
    /// Succeeded payments per day and rail, newest day first.
    pub revenue: Vec<RevenueRow>,
    pub storage: StorageView,
    /// The watched folder's batch, when one runs in this process.
    pub watch: Option<crate::watch::WatchStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BackendView {
    /// The backend's URL without credentials.
    pub url: String,
    #[serde(flatten)]
    pub health: crate::worker::Health,
    pub average_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct QueueView {
    /// Ready in the priority lane.
    pub priority: usize,
    /// Ready in the normal lane.
    pub normal: usize,
    /// Waiting for a retry backoff.
    pub delayed: usize,
    pub running: usize,
    pub waiting: usize,
    /// How long the oldest queued job of each lane has waited.
    pub oldest_wait_ms: Option<i64>,
    pub oldest_priority_ms: Option<i64>,
    pub oldest_normal_ms: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobRow {
    pub id: String,
    pub user: i64,
    /// The preset key, or `None` for an own prompt.
    pub preset: Option<String>,
    pub state: &'static str,
    pub lane: &'static str,
    pub attempts: u32,
    pub backend: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// Queued to started (or to now while it waits).
    pub wait_ms: Option<i64>,
    /// Started to finished (or to now while it runs).
    pub run_ms: Option<i64>,
    /// The reason of a failure (or of the last failed attempt).
    pub error: Option<String>,
    /// ComfyUI's progress of a running job, 0..=100.
    pub progress: Option<u8>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Throughput {
    pub finished: u64,
    pub succeeded: u64,
    /// Failed or dead-lettered.
    pub failed: u64,
    pub cancelled: u64,
    /// Succeeded out of succeeded + failed, in percent; `None` when nothing ran.
    pub success_rate: Option<f64>,
    pub average_run_ms: Option<u64>,
    pub average_wait_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct UsersView {
    pub total: u64,
    /// Seen since midnight in `time_zone`.
    pub active_today: u64,
    pub new_today: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RevenueRow {
    /// `YYYY-MM-DD` in `time_zone`.
    pub day: String,
    pub rail: &'static str,
    pub currency: String,
    pub payments: u64,
    /// In the currency's smallest unit (Stars; kopecks).
    pub amount: u64,
    pub points: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StorageView {
    pub store_bytes: u64,
    pub queue_bytes: u64,
    pub inputs_bytes: u64,
    pub inputs_files: u64,
    pub results_bytes: u64,
    pub results_files: u64,
    /// Free and total space of the data dir's file system.
    pub disk_free_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
}

pub fn rail_name(rail: Rail) -> &'static str {
    match rail {
        Rail::Stars => "stars",
        Rail::YooKassa => "yookassa",
    }
}

/// Builds the whole view. Blocking (reads both stores and walks the data dir).
pub fn status(app: &App) -> Result<StatusView, OpsError> {
    let now = app.now_ms();
    let tz =
        jiff::tz::TimeZone::get(&app.config.billing.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let midnight = start_of_day(now, &tz);

    let backends = backends(app);
    let progress_of = |job: &str| {
        backends
            .iter()
            .find(|b| b.health.current_job.as_deref() == Some(job))
            .map(|b| b.health.progress)
    };

    let active = app.queue.active_jobs();
    let depth = app.queue.depth();
    let oldest = |lane: Option<Lane>| {
        active
            .iter()
            .filter(|r| r.state() == JobState::Queued && lane.is_none_or(|l| r.lane() == l))
            .map(|r| now - r.created_ms)
            .max()
    };
    let queue = QueueView {
        priority: depth.priority,
        normal: depth.normal,
        delayed: depth.delayed,
        running: depth.running,
        waiting: depth.waiting(),
        oldest_wait_ms: oldest(None),
        oldest_priority_ms: oldest(Some(Lane::Priority)),
        oldest_normal_ms: oldest(Some(Lane::Normal)),
    };
    let active_rows = active
        .iter()
        .take(RUNNING_ROWS)
        .map(|r| {
            let mut row = job_row(r, now);
            row.progress = progress_of(&row.id);
            row
        })
        .collect();

    let finished = app.queue.recent_finished(app.config.queue.history_limit)?;
    let recent = finished
        .iter()
        .take(RECENT_ROWS)
        .map(|r| job_row(r, now))
        .collect();
    let last_hour = throughput(&finished, now - HOUR_MS);
    let last_day = throughput(&finished, now - DAY_MS);

    let users = app.store.users()?;
    let users = UsersView {
        total: users.len() as u64,
        active_today: users.iter().filter(|u| u.last_seen_ms >= midnight).count() as u64,
        new_today: users.iter().filter(|u| u.created_ms >= midnight).count() as u64,
    };

    let revenue = revenue(app, now, &tz)?;
    let storage = storage(app);
    Ok(StatusView {
        version: env!("CARGO_PKG_VERSION"),
        now_ms: now,
        time_zone: tz.iana_name().unwrap_or("UTC").to_string(),
        backends,
        queue,
        active: active_rows,
        recent,
        last_hour,
        last_day,
        users,
        revenue,
        storage,
        watch: app.watch.get(),
    })
}

/// Every backend's health, in config order.
pub fn backends(app: &App) -> Vec<BackendView> {
    app.backends
        .all()
        .iter()
        .map(|b| {
            let health = b.health();
            BackendView {
                url: without_credentials(&b.name),
                average_ms: health.average_ms(),
                health,
            }
        })
        .collect()
}

fn job_row(r: &JobRecord, now: i64) -> JobRow {
    let state = r.state();
    let spec = r.spec();
    let end = r.finished_ms.unwrap_or(now);
    JobRow {
        id: r.id.to_string(),
        user: r.user().get(),
        preset: spec.preset,
        state: state.as_str(),
        lane: r.lane().as_str(),
        attempts: r.attempts,
        backend: r.backend.as_deref().map(without_credentials),
        created_ms: r.created_ms,
        started_ms: r.started_ms,
        finished_ms: r.finished_ms,
        wait_ms: match r.started_ms {
            Some(s) => Some(s - r.created_ms),
            None if state == JobState::Queued => Some(now - r.created_ms),
            None => None,
        },
        run_ms: r.started_ms.map(|s| end - s),
        error: r.last_error.clone(),
        progress: None,
    }
}

fn throughput(finished: &[JobRecord], since_ms: i64) -> Throughput {
    let mut t = Throughput::default();
    let (mut run_sum, mut run_n, mut wait_sum, mut wait_n) = (0i64, 0i64, 0i64, 0i64);
    for r in finished {
        if r.finished_ms.unwrap_or(r.created_ms) < since_ms {
            continue;
        }
        t.finished += 1;
        match r.state() {
            JobState::Succeeded => {
                t.succeeded += 1;
                if let (Some(s), Some(f)) = (r.started_ms, r.finished_ms) {
                    run_sum += f - s;
                    run_n += 1;
                }
            }
            JobState::Failed | JobState::DeadLettered => t.failed += 1,
            JobState::Cancelled => t.cancelled += 1,
            JobState::Queued | JobState::Running => {}
        }
        if let Some(s) = r.started_ms {
            wait_sum += s - r.created_ms;
            wait_n += 1;
        }
    }
    let ran = t.succeeded + t.failed;
    t.success_rate = (ran > 0).then(|| t.succeeded as f64 * 100.0 / ran as f64);
    t.average_run_ms = (run_n > 0).then(|| (run_sum / run_n).max(0) as u64);
    t.average_wait_ms = (wait_n > 0).then(|| (wait_sum / wait_n).max(0) as u64);
    t
}

/// Succeeded provider payments (not orders) of the last days, by day and rail.
fn revenue(app: &App, now: i64, tz: &jiff::tz::TimeZone) -> Result<Vec<RevenueRow>, OpsError> {
    let since = start_of_day(now, tz) - (REVENUE_DAYS - 1) * DAY_MS;
    let mut rows: std::collections::BTreeMap<(String, &'static str, String), RevenueRow> =
        Default::default();
    for p in app.store.payments()? {
        if p.id.starts_with("order:") || p.status != PaymentStatus::Succeeded {
            continue;
        }
        let at = p.created_ms;
        if at < since {
            continue;
        }
        let day = day_of(at, tz);
        let rail = rail_name(p.rail);
        let row = rows
            .entry((day.clone(), rail, p.currency.clone()))
            .or_insert_with(|| RevenueRow {
                day,
                rail,
                currency: p.currency.clone(),
                payments: 0,
                amount: 0,
                points: 0,
            });
        row.payments += 1;
        row.amount += p.amount;
        row.points += u64::from(p.points);
    }
    let mut out: Vec<RevenueRow> = rows.into_values().collect();
    out.sort_by(|a, b| b.day.cmp(&a.day).then(a.rail.cmp(b.rail)));
    Ok(out)
}

fn storage(app: &App) -> StorageView {
    let dir = &app.config.storage.data_dir;
    let (inputs_files, inputs_bytes) = dir_size(&dir.join(crate::files::INPUTS));
    let (results_files, results_bytes) = dir_size(&dir.join(crate::files::RESULTS));
    let disk = rustix::fs::statvfs(dir.as_path()).ok();
    StorageView {
        store_bytes: app.store.file_size(),
        queue_bytes: app.queue.disk_space(),
        inputs_bytes,
        inputs_files,
        results_bytes,
        results_files,
        disk_free_bytes: disk.as_ref().map(|s| s.f_bavail.saturating_mul(s.f_frsize)),
        disk_total_bytes: disk.as_ref().map(|s| s.f_blocks.saturating_mul(s.f_frsize)),
    }
}

/// Files and bytes under `dir` (recursively; missing folders count as empty).
pub fn dir_size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => {
                    files += 1;
                    bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    (files, bytes)
}

/// Local midnight of the day `ms` falls in, as a Unix millisecond.
pub fn start_of_day(ms: i64, tz: &jiff::tz::TimeZone) -> i64 {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|t| t.to_zoned(tz.clone()).start_of_day().ok())
        .map_or(ms - ms.rem_euclid(DAY_MS), |z| {
            z.timestamp().as_millisecond()
        })
}

fn day_of(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(tz.clone()).date().to_string())
        .unwrap_or_default()
}

/// A URL for display: user name and password cut out.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_shown() {
        assert_eq!(
            without_credentials("http://me:secret@gpu:8188"),
            "http://gpu:8188"
        );
        assert_eq!(without_credentials("http://gpu:8188"), "http://gpu:8188");
    }

    #[test]
    fn days_start_at_local_midnight() {
        let tz = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        // 2026-12-02 00:30 in Moscow is 2026-12-01 21:30 UTC.
        let t: jiff::Timestamp = "2026-12-01T21:30:00Z".parse().unwrap();
        let m: jiff::Timestamp = "2026-12-01T21:00:00Z".parse().unwrap();
        assert_eq!(start_of_day(t.as_millisecond(), &tz), m.as_millisecond());
        assert_eq!(day_of(t.as_millisecond(), &tz), "2026-12-02");
    }
}
