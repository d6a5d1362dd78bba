//! `/metrics` parsed strictly as Prometheus text (format 0.0.4), before and after jobs run
//! through a fake ComfyUI.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::app::{TestApp, png};
use crate::support::fake_comfy::FakeComfy;

/// A sample: metric name and its labels (sorted).
type Series = (String, BTreeMap<String, String>);

#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<Series, f64>,
}

impl Exposition {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// `name{a="x",b="y"}` → name and labels; label values unescaped (`\\`, `\"`, `\n` only).
fn parse_series(text: &str) -> Result<Series, String> {
    let Some(open) = text.find('{') else {
        return Ok((text.to_string(), BTreeMap::new()));
    };
    let name = &text[..open];
    let body = text[open + 1..]
        .strip_suffix('}')
        .ok_or_else(|| format!("unclosed labels in {text:?}"))?;
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if !valid_name(&key) || key.starts_with("__") {
            return Err(format!("bad label name {key:?}"));
        }
        if chars.next() != Some('"') {
            return Err(format!("label {key} not quoted"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some('"') => break,
                Some('\n') | None => return Err(format!("unterminated value of {key}")),
                Some(c) => value.push(c),
            }
        }
        if labels.insert(key.clone(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        match chars.next() {
            Some(',') | None => {}
            other => return Err(format!("expected , after a label, got {other:?}")),
        }
    }
    Ok((name.to_string(), labels))
}

fn parse(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let mut helped = BTreeSet::new();
    let mut done_families = BTreeSet::new();
    let mut current: Option<String> = None;
    if !text.ends_with('\n') {
        return Err("the text must end with a line feed".into());
    }
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_name(name) {
                return Err(err("bad metric name".into()));
            }
            match kw {
                "HELP" => {
                    if !helped.insert(name.to_string()) {
                        return Err(err("HELP twice".into()));
                    }
                }
                "TYPE" => {
                    let kind = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err(format!("unknown type {kind}")));
                    }
                    if e.types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(err("TYPE twice".into()));
                    }
                    if let Some(prev) = current.replace(name.to_string()) {
                        done_families.insert(prev);
                    }
                }
                _ => return Err(err("unknown comment keyword".into())),
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(err("stray line".into()));
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| err("no value".into()))?;
        let value = parse_value(value).map_err(err)?;
        let (name, labels) = parse_series(series).map_err(err)?;
        if !valid_name(&name) {
            return Err(err("bad metric name".into()));
        }
        let family = current
            .clone()
            .ok_or_else(|| err("sample before any TYPE".into()))?;
        let kind = &e.types[&family];
        let belongs = name == family
            || (kind == "histogram"
                && [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count"),
                ]
                .contains(&name));
        if !belongs || done_families.contains(&name) {
            return Err(err(format!("sample outside its family {family}")));
        }
        if kind == "counter" && value < 0.0 {
            return Err(err("negative counter".into()));
        }
        if name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(err("bucket without le".into()));
        }
        if e.samples.insert((name, labels), value).is_some() {
            return Err(err("the same series twice".into()));
        }
    }
    // Histograms: cumulative buckets ending in +Inf, which equals _count.
    for (family, kind) in &e.types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: Vec<(f64, f64)> = e
            .samples
            .iter()
            .filter(|((n, _), _)| *n == format!("{family}_bucket"))
            .map(|((_, l), v)| (parse_value(&l["le"]).unwrap(), *v))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!("{family}: no +Inf bucket"));
        }
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{family}: buckets not cumulative"));
        }
        let count = e.get(&format!("{family}_count"), &[]);
        if count != buckets.last().map(|b| b.1) {
            return Err(format!("{family}: +Inf bucket differs from _count"));
        }
    }
    Ok(e)
}

async fn scrape(t: &TestApp) -> Exposition {
    let r = reqwest::get(format!("http://{}/metrics", t.addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn the_parser_refuses_broken_text() {
    for bad in [
        "x 1\n",                            // no TYPE
        "# TYPE x gauge\nx{a=\"1} 1\n",     // unterminated value
        "# TYPE x gauge\nx{a=\"\\q\"} 1\n", // bad escape
        "# TYPE x gauge\nx 1\nx 2\n",       // duplicate series
        "# TYPE x counter\nx -1\n",         // negative counter
        "# TYPE x gauge\nx one\n",          // not a number
        "# TYPE x gauge\nx 1",              // no final line feed
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
    let good = "# HELP x a \\\\ help\n# TYPE x gauge\nx{a=\"q\\\"uote\\n\"} 1.5\n";
    assert_eq!(
        parse(good).unwrap().get("x", &[("a", "q\"uote\n")]),
        Some(1.5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_follow_the_jobs() {
    let comfy = FakeComfy::start().await;
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let backend = comfy.url().as_str().trim_end_matches('/').to_string();
    let user = t.user(1, 100);

    let before = scrape(&t).await;
    let succeeded = [("state", "succeeded")];
    assert_eq!(
        before.get("qwenedit_jobs_finished_total", &succeeded),
        Some(0.0)
    );
    assert_eq!(before.get("qwenedit_job_run_seconds_count", &[]), Some(0.0));
    assert_eq!(before.get("qwenedit_users", &[]), Some(1.0));
    assert_eq!(
        before.get("qwenedit_ledger_points", &[("reason", "topup")]),
        None,
        "registered with a welcome credit only"
    );
    assert_eq!(before.get("qwenedit_points_outstanding", &[]), Some(100.0));
    assert_eq!(before.types["qwenedit_job_wait_seconds"], "histogram");

    for _ in 0..2 {
        let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
        let done = t.wait_done(job).await;
        assert!(
            matches!(done, qwenedit::worker::JobEventKind::Succeeded { .. }),
            "{done:?}"
        );
    }
    let after = scrape(&t).await;
    assert_eq!(
        after.get("qwenedit_jobs_finished_total", &succeeded),
        Some(2.0)
    );
    assert_eq!(after.get("qwenedit_job_run_seconds_count", &[]), Some(2.0));
    assert_eq!(after.get("qwenedit_job_wait_seconds_count", &[]), Some(2.0));
    assert_eq!(
        after.get("qwenedit_backend_up", &[("backend", &backend)]),
        Some(1.0)
    );
    assert_eq!(
        after.get("qwenedit_backend_jobs_done_total", &[("backend", &backend)]),
        Some(2.0)
    );
    assert_eq!(
        after.get("qwenedit_ledger_entries", &[("reason", "capture")]),
        Some(2.0)
    );
    assert_eq!(
        after.get("qwenedit_ledger_points", &[("reason", "hold")]),
        Some(-60.0)
    );
    assert_eq!(after.get("qwenedit_points_outstanding", &[]), Some(40.0));
    assert_eq!(after.get("qwenedit_queue_depth", &[]), Some(0.0));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_counted_by_rail_and_state() {
    let w = crate::support::web::WebApp::start("").await;
    w.seed();
    let text = w.text("/metrics").await;
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let stars = [
        ("rail", "stars"),
        ("state", "succeeded"),
        ("currency", "XTR"),
    ];
    assert_eq!(m.get("qwenedit_payments", &stars), Some(3.0));
    assert_eq!(m.get("qwenedit_payments_amount", &stars), Some(240.0));
    let rub = [
        ("rail", "yookassa"),
        ("state", "succeeded"),
        ("currency", "RUB"),
    ];
    assert_eq!(m.get("qwenedit_payments_amount", &rub), Some(27_900.0));
    assert_eq!(
        m.get(
            "qwenedit_jobs",
            &[("state", "queued"), ("lane", "priority")]
        ),
        Some(1.0)
    );
    assert_eq!(m.get("qwenedit_jobs", &[("state", "running")]), Some(1.0));
    assert_eq!(
        m.get("qwenedit_jobs_finished_total", &[("state", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("qwenedit_jobs_finished_total", &[("state", "cancelled")]),
        Some(1.0)
    );
    assert_eq!(m.get("qwenedit_queue_oldest_wait_seconds", &[]), Some(5.2));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_errors_and_429s_are_counted() {
    use crate::support::bot::{BotTest, Setup};
    let b = BotTest::with(Setup::default().no_comfy()).await;
    b.say(42, "/start").await;
    let count = |m: &Exposition, kind: &str| {
        m.get("qwenedit_telegram_errors_total", &[("kind", kind)])
            .unwrap()
    };
    let before = scrape(b.app()).await;
    // The API error first: the 429 is waited out (and counted before the wait).
    b.tg.fail_next("sendMessage", 400, "Bad Request: chat not found", None);
    b.tg.fail_next(
        "sendMessage",
        429,
        "Too Many Requests: retry after 1",
        Some(1),
    );
    b.say(42, "/help").await;
    b.say(42, "/help").await;
    let after = scrape(b.app()).await;
    assert_eq!(
        count(&after, "too_many_requests") - count(&before, "too_many_requests"),
        1.0
    );
    assert_eq!(count(&after, "api") - count(&before, "api"), 1.0);
    assert_eq!(count(&after, "network"), 0.0);
    b.stop().await;
}
