//! The real process's JSON log: every line about a job names the job and its user, and the
//! bot token never appears, not even in the errors of a Bot API that cannot be reached.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::app::png;
use crate::support::fake_comfy::FakeComfy;
use crate::support::process::{Daemon, admin_token};

const BOT_TOKEN: &str = "123456789:AAE-log-test-SECRET-token";

/// Whether a JSON log line carries `key` in its fields or in any of its spans.
fn has(line: &Value, key: &str) -> bool {
    !line["fields"][key].is_null()
        || !line["span"][key].is_null()
        || line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| !s[key].is_null()))
}

#[test]
fn job_lines_name_job_and_user_and_secrets_stay_out() {
    let comfy = FakeComfy::start_in_thread();
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[telegram]
token = "{BOT_TOKEN}"
api_url = "http://127.0.0.1:9"

[storage]
data_dir = "data"

[comfyui]
backends = ["{}"]
workflows_dir = "{root}/workflows"

[presets]
dir = "{root}/presets"

[web]
listen = "127.0.0.1:0"

[log]
level = "info,qwenedit=debug"
format = "json"
"#,
            comfy.url()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("inputs")).unwrap();
    std::fs::write(data.join("inputs/in.png"), png(32, 32)).unwrap();

    let daemon = Daemon::start(&config);
    let token = admin_token(&data);
    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: Value| {
        let r = client
            .post(daemon.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json::<Value>().unwrap()
    };
    post(
        "/api/v1/users/4242/topup",
        json!({ "points": 100, "create": true }),
    );
    let job = post(
        "/api/v1/jobs",
        json!({ "user": 4242, "inputs": ["inputs/in.png"], "prompt": "make it blue" }),
    )["job"]
        .as_str()
        .unwrap()
        .to_string();

    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = daemon
            .logs
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no 'job succeeded' line; saw {lines:#?}"));
        let done = line.contains("job succeeded") && line.contains(&job);
        lines.push(line);
        if done {
            break;
        }
    }
    assert!(daemon.terminate().success());

    let mut about_job = 0;
    for line in &lines {
        assert!(!line.contains("SECRET"), "the bot token leaked: {line}");
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if line.contains(&job) {
            about_job += 1;
            assert!(has(&v, "user"), "a job line without its user: {line}");
        }
    }
    assert!(about_job >= 3, "accepted, submitted, succeeded: {lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("getUpdates failed")),
        "the unreachable Bot API was logged (without its token)"
    );
}
