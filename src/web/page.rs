//! The status page at `/`: server-rendered HTML (maud), readable on a phone. A few lines of
//! inline script fetch `/status/live` (the `<main>` part) every few seconds and swap it in,
//! so the page stays current without a reload. No external scripts, fonts or images.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::error::ApiError;
use crate::app::App;
use crate::ops::{BackendView, JobRow, StatusView, Throughput};

/// Seconds between refreshes (`?refresh=N` on the page's URL overrides it).
const REFRESH_S: u32 = 5;

pub async fn page(State(app): State<App>) -> Result<impl IntoResponse, ApiError> {
    let view = app.blocking(crate::ops::status).await?;
    Ok(no_store(Html(render_page(&view).into_string())))
}

pub async fn live(State(app): State<App>) -> Result<impl IntoResponse, ApiError> {
    let view = app.blocking(crate::ops::status).await?;
    Ok(no_store(Html(render_live(&view).into_string())))
}

fn no_store(body: impl IntoResponse) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], body)
}

pub fn render_page(v: &StatusView) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { "qwenedit status" }
                link rel="icon" href="data:,";
                style { (PreEscaped(CSS)) }
            }
            body data-refresh=(REFRESH_S) {
                header {
                    h1 { "qwenedit" }
                    span.ver { "v" (v.version) }
                    span #conn .dot.ok title="live" {}
                }
                main #live { (render_live(v)) }
                footer {
                    "JSON: " a href="api/status" { "/api/status" }
                    " · Prometheus: " a href="metrics" { "/metrics" }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// The part that refreshes.
pub fn render_live(v: &StatusView) -> Markup {
    let t = Fmt::new(v);
    let up = v.backends.iter().filter(|b| b.health.up).count();
    html! {
        p.updated { "Updated " span #updated { (t.time(v.now_ms)) } " · " (v.time_zone) }
        section.tiles {
            (tile("Waiting", html! { span #queue-waiting { (v.queue.waiting) } },
                html! { @if let Some(w) = v.queue.oldest_wait_ms { "oldest " (dur(w)) } @else { "queue empty" } }))
            (tile("Running", html! { span #queue-running { (v.queue.running) } },
                html! { (up) " of " (v.backends.len()) " GPUs up" }))
            (tile("Last hour", html! { (v.last_hour.succeeded) }, rate_note(&v.last_hour)))
            (tile("Last 24 h", html! { (v.last_day.succeeded) }, rate_note(&v.last_day)))
            (tile("Users", html! { span #users-total { (v.users.total) } },
                html! { (v.users.active_today) " active today · " (v.users.new_today) " new" }))
            (tile("Disk free", html! { (opt_bytes(v.storage.disk_free_bytes)) },
                html! { "of " (opt_bytes(v.storage.disk_total_bytes)) }))
        }

        section {
            h2 { "GPUs" }
            div.cards {
                @for b in &v.backends { (backend_card(b)) }
            }
        }

        section {
            h2 { "Queue" }
            div.scroll { table {
                thead { tr { th { "lane" } th.n { "jobs" } th.n { "oldest wait" } } }
                tbody {
                    tr { td { "priority" } td.n { (v.queue.priority) } td.n { (opt_dur(v.queue.oldest_priority_ms)) } }
                    tr { td { "normal" } td.n { (v.queue.normal) } td.n { (opt_dur(v.queue.oldest_normal_ms)) } }
                    tr { td { "retry backoff" } td.n { (v.queue.delayed) } td.n { "" } }
                    tr { td { "running" } td.n { (v.queue.running) } td.n { "" } }
                }
            } }
        }

        section {
            h2 { "Jobs now" }
            @if v.active.is_empty() {
                p.empty { "Nothing queued or running." }
            } @else {
                (job_table(&v.active, &t, false))
            }
        }

        section {
            h2 { "Recent jobs" }
            @if v.recent.is_empty() {
                p.empty { "No finished jobs yet." }
            } @else {
                (job_table(&v.recent, &t, true))
            }
        }

        section {
            h2 { "Throughput" }
            div.scroll { table {
                thead { tr {
                    th { "window" } th.n { "done" } th.n { "ok" } th.n { "failed" }
                    th.n { "cancelled" } th.n { "success" } th.n { "avg run" } th.n { "avg wait" }
                } }
                tbody {
                    (throughput_row("last hour", &v.last_hour))
                    (throughput_row("last 24 h", &v.last_day))
                }
            } }
        }

        section {
            h2 { "Revenue" }
            @if v.revenue.is_empty() {
                p.empty { "No payments in the last 7 days." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "day" } th { "rail" } th.n { "payments" } th.n { "amount" } th.n { "points" } } }
                    tbody {
                        @for r in &v.revenue {
                            tr {
                                td { (r.day) } td { (rail_label(r.rail)) } td.n { (r.payments) }
                                td.n { (money(r.amount, &r.currency)) } td.n { (r.points) }
                            }
                        }
                    }
                } }
            }
        }

        @if let Some(w) = &v.watch {
            (watch_section(w))
        }

        section {
            h2 { "Storage" }
            dl.kv {
                dt { "database" } dd { (bytes(v.storage.store_bytes)) }
                dt { "queue" } dd { (bytes(v.storage.queue_bytes)) }
                dt { "input photos" } dd { (bytes(v.storage.inputs_bytes)) " in " (v.storage.inputs_files) " files" }
                dt { "results" } dd { (bytes(v.storage.results_bytes)) " in " (v.storage.results_files) " files" }
                dt { "disk free" } dd { (opt_bytes(v.storage.disk_free_bytes)) " of " (opt_bytes(v.storage.disk_total_bytes)) }
            }
        }
    }
}

/// The watched folder's batch (only when one runs).
fn watch_section(w: &crate::watch::WatchStatus) -> Markup {
    html! {
        section #watch {
            h2 { "Watched folder" }
            dl.kv {
                dt { "folder" } dd { (w.in_dir) }
                dt { "results" } dd { (w.out_dir) }
                dt { "batch" } dd {
                    (w.done) " done · " (w.running) " running · " (w.waiting) " arriving · "
                    (w.failed) " failed"
                }
            }
            @if !w.recent_failures.is_empty() {
                div.scroll { table {
                    thead { tr { th { "file" } th { "why it failed" } } }
                    tbody {
                        @for (file, why) in &w.recent_failures {
                            tr { td { (file) } td { (why) } }
                        }
                    }
                } }
            }
        }
    }
}

fn tile(label: &str, value: Markup, note: Markup) -> Markup {
    html! {
        div.tile {
            div.label { (label) }
            div.value { (value) }
            div.note { (note) }
        }
    }
}

fn rate_note(t: &Throughput) -> Markup {
    html! {
        @match t.success_rate {
            Some(r) => { "succeeded · " (format!("{r:.0}")) "% success" }
            None => { "no runs" }
        }
        @if t.failed > 0 { " · " span.bad { (t.failed) " failed" } }
    }
}

fn backend_card(b: &BackendView) -> Markup {
    let h = &b.health;
    let vram_used = h.vram_total.saturating_sub(h.vram_free);
    html! {
        div.card {
            div.head {
                span.name { (b.url) }
                @if h.draining { span.badge.warn { "draining" } }
                @if h.up { span.badge.up { "up" } } @else { span.badge.down { "down" } }
            }
            @if !h.up {
                @if let Some(e) = &h.last_error { p.err { (e) } }
            }
            dl.kv {
                dt { "ComfyUI" } dd { (h.version.as_deref().unwrap_or("?")) }
                dt { "device" } dd { (h.device.as_deref().unwrap_or("?")) }
                @if h.vram_total > 0 {
                    dt { "VRAM" }
                    dd {
                        (bytes(vram_used)) " / " (bytes(h.vram_total))
                        (bar((vram_used * 100 / h.vram_total) as u8))
                    }
                }
                dt { "now" }
                dd {
                    @match &h.current_job {
                        Some(job) => { code title=(job) { (short_id(job)) } " " (h.progress) "%" (bar(h.progress)) }
                        None => { span.muted { "idle" } }
                    }
                }
                dt { "jobs" } dd { (h.jobs_done) " done · " (h.jobs_failed) " failed" }
                dt { "avg" } dd { @match b.average_ms { Some(m) => { (dur(m as i64)) " per job" } None => { "–" } } }
            }
        }
    }
}

fn job_table(rows: &[JobRow], t: &Fmt, finished: bool) -> Markup {
    html! {
        div.scroll { table.jobs {
            thead { tr {
                th { "job" } th { "user" } th { "preset" } th { "state" }
                th { @if finished { "finished" } @else { "queued" } }
                th.n { "wait" } th.n { "run" } th { "GPU" }
            } }
            tbody {
                @for r in rows {
                    tr {
                        td { code title=(r.id) { (short_id(&r.id)) } }
                        td { (r.user) }
                        td { (r.preset.as_deref().unwrap_or("own prompt")) }
                        td {
                            span class=(format!("state {}", r.state)) { (r.state.replace('_', " ")) }
                            @if let Some(p) = r.progress { " " (p) "%" }
                            @if r.attempts > 1 { " " span.muted { "try " (r.attempts) } }
                        }
                        td { @if finished { (t.opt_time(r.finished_ms)) } @else { (t.time(r.created_ms)) } }
                        td.n { (opt_dur(r.wait_ms)) }
                        td.n { (opt_dur(r.run_ms)) }
                        td { (r.backend.as_deref().map(host_of).unwrap_or_default()) }
                    }
                    @if let Some(e) = r.error.as_deref().filter(|_| matches!(r.state, "failed" | "dead_lettered") || !finished) {
                        tr.reason { td colspan="8" { "↳ " (e) } }
                    }
                }
            }
        } }
    }
}

fn throughput_row(label: &str, t: &Throughput) -> Markup {
    html! {
        tr {
            td { (label) }
            td.n { (t.finished) }
            td.n { (t.succeeded) }
            td.n { @if t.failed > 0 { span.bad { (t.failed) } } @else { "0" } }
            td.n { (t.cancelled) }
            td.n { @match t.success_rate { Some(r) => { (format!("{r:.1}")) "%" } None => { "–" } } }
            td.n { (opt_dur(t.average_run_ms.map(|m| m as i64))) }
            td.n { (opt_dur(t.average_wait_ms.map(|m| m as i64))) }
        }
    }
}

fn bar(percent: u8) -> Markup {
    html! { span.bar { span style=(format!("width:{}%", percent.min(100))) {} } }
}

fn rail_label(rail: &str) -> &str {
    match rail {
        "stars" => "Telegram Stars",
        "yookassa" => "YooKassa",
        other => other,
    }
}

/// Amounts are stored in the smallest unit: Stars are whole, rubles have kopecks.
pub fn money(amount: u64, currency: &str) -> String {
    match currency {
        "XTR" => format!("{amount} ★"),
        "RUB" => format!("{}.{:02} ₽", amount / 100, amount % 100),
        other => format!("{amount} {other}"),
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn opt_bytes(n: Option<u64>) -> String {
    n.map(bytes).unwrap_or_else(|| "?".into())
}

/// A duration for people: `850 ms`, `12 s`, `3 m 05 s`, `1 h 02 m`, `2 d 3 h`.
pub fn dur(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..=59 => format!("{s} s"),
        60..=3599 => format!("{} m {:02} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {:02} m", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn opt_dur(ms: Option<i64>) -> String {
    ms.map(dur).unwrap_or_else(|| "–".into())
}

/// The last 8 characters of a job id: enough to tell jobs apart on screen (full id on hover).
fn short_id(id: &str) -> String {
    let n = id.chars().count();
    format!(
        "…{}",
        id.chars().skip(n.saturating_sub(8)).collect::<String>()
    )
}

/// `http://10.0.0.2:8188` → `10.0.0.2:8188`.
fn host_of(url: &str) -> String {
    url.split("://").nth(1).unwrap_or(url).to_string()
}

/// Times in the configured zone: `16:31:05` today, `12-01 16:31` before.
struct Fmt {
    tz: jiff::tz::TimeZone,
    today: jiff::civil::Date,
}

impl Fmt {
    fn new(v: &StatusView) -> Self {
        let tz = jiff::tz::TimeZone::get(&v.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let today = zoned(v.now_ms, &tz).map(|z| z.date()).unwrap_or_default();
        Self { tz, today }
    }

    fn time(&self, ms: i64) -> String {
        match zoned(ms, &self.tz) {
            Some(z) if z.date() == self.today => z.strftime("%H:%M:%S").to_string(),
            Some(z) => z.strftime("%m-%d %H:%M").to_string(),
            None => "?".into(),
        }
    }

    fn opt_time(&self, ms: Option<i64>) -> String {
        ms.map(|m| self.time(m)).unwrap_or_else(|| "–".into())
    }
}

fn zoned(ms: i64, tz: &jiff::tz::TimeZone) -> Option<jiff::Zoned> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_zoned(tz.clone()))
}

const SCRIPT: &str = r#"
(function () {
  var live = document.getElementById('live');
  var dot = document.getElementById('conn');
  var q = new URLSearchParams(location.search).get('refresh');
  var every = 1000 * (parseFloat(q) || parseFloat(document.body.dataset.refresh) || 5);
  function tick() {
    fetch('status/live', { cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.text(); })
      .then(function (html) { live.innerHTML = html; dot.className = 'dot ok'; dot.title = 'live'; })
      .catch(function (e) { dot.className = 'dot stale'; dot.title = 'not updating: ' + e.message; })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"#;

const CSS: &str = r#"
:root { --bg:#f5f6f8; --card:#fff; --fg:#1b1f24; --muted:#6a737d; --line:#e3e6ea;
  --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --accent:#0969da; }
@media (prefers-color-scheme: dark) {
  :root { --bg:#0d1117; --card:#161b22; --fg:#e6edf3; --muted:#8b949e; --line:#30363d;
    --ok:#3fb950; --bad:#f85149; --warn:#d29922; --accent:#58a6ff; } }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; }
header { display:flex; align-items:center; gap:.6rem; padding:.8rem 1rem;
  background:var(--card); border-bottom:1px solid var(--line); position:sticky; top:0; z-index:1; }
h1 { font-size:1.15rem; margin:0; }
h2 { font-size:.8rem; text-transform:uppercase; letter-spacing:.06em; color:var(--muted);
  margin:1.4rem 0 .5rem; }
.ver { color:var(--muted); font-size:.85rem; }
.dot { width:.65rem; height:.65rem; border-radius:50%; margin-left:auto; background:var(--muted); }
.dot.ok { background:var(--ok); } .dot.stale { background:var(--bad); }
main, footer { max-width:68rem; margin:0 auto; padding:0 1rem; }
footer { color:var(--muted); font-size:.85rem; padding-bottom:2rem; margin-top:1.5rem; }
a { color:var(--accent); }
.updated { color:var(--muted); font-size:.85rem; margin:.8rem 0 0; }
.tiles { display:grid; grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr)); gap:.6rem; margin-top:.6rem; }
.tile, .card { background:var(--card); border:1px solid var(--line); border-radius:.6rem; padding:.7rem .8rem; }
.tile .label { color:var(--muted); font-size:.8rem; }
.tile .value { font-size:1.6rem; font-weight:600; font-variant-numeric:tabular-nums; }
.tile .note { color:var(--muted); font-size:.8rem; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(19rem,1fr)); gap:.6rem; }
.card .head { display:flex; align-items:center; gap:.5rem; margin-bottom:.4rem; }
.card .name { font-weight:600; overflow-wrap:anywhere; margin-right:auto; }
.badge { font-size:.75rem; font-weight:600; padding:.1rem .5rem; border-radius:1rem; color:#fff; }
.badge.up { background:var(--ok); } .badge.down { background:var(--bad); } .badge.warn { background:var(--warn); }
.err { color:var(--bad); margin:.2rem 0 .5rem; font-size:.9rem; overflow-wrap:anywhere; }
dl.kv { display:grid; grid-template-columns:auto 1fr; gap:.15rem .8rem; margin:0; }
dl.kv dt { color:var(--muted); } dl.kv dd { margin:0; font-variant-numeric:tabular-nums; }
section > dl.kv { background:var(--card); border:1px solid var(--line); border-radius:.6rem; padding:.7rem .8rem; }
.bar { display:block; height:.35rem; background:var(--line); border-radius:.2rem; margin-top:.2rem; overflow:hidden; }
.bar > span { display:block; height:100%; background:var(--accent); }
.scroll { overflow-x:auto; background:var(--card); border:1px solid var(--line); border-radius:.6rem; }
table { border-collapse:collapse; width:100%; font-size:.9rem; }
th, td { text-align:left; padding:.4rem .6rem; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--muted); font-weight:500; font-size:.8rem; }
tbody tr:last-child td { border-bottom:0; }
.n { text-align:right; font-variant-numeric:tabular-nums; }
tr.reason td { color:var(--bad); white-space:normal; font-size:.85rem; padding-top:0; }
.state { font-weight:600; }
.state.succeeded { color:var(--ok); } .state.failed, .state.dead_lettered { color:var(--bad); }
.state.running { color:var(--accent); } .state.cancelled, .state.queued, .muted, .empty { color:var(--muted); }
.bad { color:var(--bad); }
.empty { margin:.2rem 0; }
code { font:.85rem ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(dur(850), "850 ms");
        assert_eq!(dur(12_400), "12 s");
        assert_eq!(dur(185_000), "3 m 05 s");
        assert_eq!(dur(3_720_000), "1 h 02 m");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(money(12_345, "RUB"), "123.45 ₽");
        assert_eq!(money(50, "XTR"), "50 ★");
        assert_eq!(short_id("01JABCDEFGHJKMNPQRSTVWXYZ0"), "…STVWXYZ0");
    }
}
