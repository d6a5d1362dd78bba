//! The real `qwenedit serve` under test, for the crash suites: a config on fakes in a temp dir
//! ([`Rig`]), its admin API ([`Api`]), its JSON log ([`Log`]), and the user's steps in the chat.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::bot::jpeg;
use super::fake_comfy::FakeComfy;
use super::fake_telegram::{BotMessage, FakeTelegram};
use super::process::{Daemon, admin_token};

/// The rig's welcome bonus and price of an edit.
pub const WELCOME: i64 = 60;
pub const PRICE: i64 = 30;
/// How long a crashing daemon may take to die.
pub const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// A fake Telegram, fake ComfyUIs and a data dir, shared by the runs of one test.
pub struct Rig {
    pub tg: FakeTelegram,
    pub comfy: Vec<FakeComfy>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Rig {
    /// One fake ComfyUI, two jobs submitted at a time; `extra` is appended to the config.
    pub async fn new(extra: &str) -> Rig {
        Rig::build(1, 2, "", extra).await
    }

    /// `backends` fake ComfyUIs, `depth` jobs submitted to each at a time, `queue` lines added
    /// to the `[queue]` section and `extra` appended to the config.
    pub async fn build(backends: usize, depth: u32, queue: &str, extra: &str) -> Rig {
        let tg = FakeTelegram::start().await;
        let mut comfy = Vec::new();
        for _ in 0..backends {
            comfy.push(FakeComfy::start().await);
        }
        let urls: Vec<String> = comfy.iter().map(|c| c.url().to_string()).collect();
        let dir = tempfile::tempdir().unwrap();
        let root = env!("CARGO_MANIFEST_DIR");
        let text = format!(
            r#"
[storage]
data_dir = "data"
queue_fsync = true

[comfyui]
backends = {urls:?}
workflows_dir = "{root}/workflows"
pipeline_depth = {depth}

[presets]
dir = "{root}/presets"

[queue]
max_attempts = 3
backoff_base = "1ms"
backoff_max = "10ms"
{queue}

[web]
listen = "127.0.0.1:0"

[telegram]
token = {token:?}
api_url = {api:?}
album_debounce = "100ms"
flood_per_minute = 1000

[billing]
welcome_points = {WELCOME}
edit_price = {PRICE}
weekly_bonus = 0

[log]
level = "info,qwenedit=debug"
format = "json"
{extra}
"#,
            token = FakeTelegram::TOKEN,
            api = tg.api_url().as_str(),
        );
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        Rig {
            tg,
            comfy,
            dir,
            config,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the daemon (with `crash_at` armed) and waits until it listens.
    pub fn start(&self, crash_at: Option<&str>) -> Daemon {
        let env: Vec<(&str, &str)> = crash_at
            .map(|p| vec![(qwenedit::faults::CRASH_AT, p)])
            .unwrap_or_default();
        tokio::task::block_in_place(|| Daemon::start_env(&self.config, &env))
    }

    pub fn api(&self, daemon: &Daemon) -> Api {
        Api {
            base: daemon.url(""),
            token: admin_token(&self.data()),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }
}

/// The admin API of a running daemon.
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub async fn get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    pub async fn user(&self, user: i64) -> Value {
        self.get(&format!("/api/v1/users/{user}")).await
    }

    /// Every balance equals the sum of its entries, none is negative, every key is sound.
    pub async fn assert_ledger_consistent(&self) -> Value {
        let check = self.get("/api/v1/ledger/verify").await;
        for field in ["mismatches", "negative", "bad_keys"] {
            assert_eq!(
                check[field],
                serde_json::json!([]),
                "ledger/verify: {check}"
            );
        }
        check
    }
}

// ---- a user in the chat ----

/// The newest bot message with this button (waiting up to 20 s for one newer than `after`).
pub async fn button(tg: &FakeTelegram, chat: i64, after: i32, label: &str) -> BotMessage {
    tg.wait_for_message(chat, |m| {
        m.id > after && m.buttons().iter().any(|b| b == label)
    })
    .await
}

/// The id of the chat's newest bot message (0 when there is none).
pub fn last_id(tg: &FakeTelegram, chat: i64) -> i32 {
    tg.last_message_id(chat)
}

/// /start → own prompt → photo → prompt: the confirm card. Returns it.
pub async fn to_confirm_card(tg: &FakeTelegram, chat: i64) -> BotMessage {
    tg.set_language(chat, "en");
    let mark = last_id(tg, chat);
    tg.send_text(chat, "/start");
    let menu = button(tg, chat, mark, "✍️ Own prompt").await;
    tg.press(chat, menu.id, &menu.callback_data("✍️ Own prompt"));
    let mark = menu.id;
    tg.wait_for_message(chat, |m| m.id > mark && m.text.contains("Send a photo"))
        .await;
    let mark = last_id(tg, chat);
    tg.send_photo(chat, jpeg(64, 48));
    tg.wait_for_message(chat, |m| m.id > mark && m.text.contains("Describe"))
        .await;
    let mark = last_id(tg, chat);
    tg.send_text(chat, "make the sky purple");
    button(tg, chat, mark, "✅ Start").await
}

/// Presses ✅ Start on the card.
pub fn confirm(tg: &FakeTelegram, chat: i64, card: &BotMessage) {
    tg.press(chat, card.id, &card.callback_data("✅ Start"));
}

/// Sends /balance and waits for the answer: by then the restarted bot has worked through its
/// startup backlog (it reads updates only after that) and every update before this one.
pub async fn balance_answered(tg: &FakeTelegram, chat: i64) {
    let mark = last_id(tg, chat);
    tg.send_text(chat, "/balance");
    tg.wait_for_message(chat, |m| m.id > mark && m.text.starts_with("You have"))
        .await;
}

pub fn result_photos(tg: &FakeTelegram, chat: i64) -> usize {
    tg.messages(chat)
        .iter()
        .filter(|m| m.kind == "photo" || m.kind == "document")
        .count()
}

/// Waits for the crashed daemon's exit: it must be its own SIGKILL at `point`.
pub fn assert_crashed_at(daemon: Daemon, point: &str) {
    use std::os::unix::process::ExitStatusExt;
    let (status, logs) = tokio::task::block_in_place(|| daemon.wait_exit(EXIT_WITHIN));
    assert_eq!(
        status.signal(),
        Some(9),
        "{status:?}; log:\n{}",
        logs.join("\n")
    );
    let at_point = logs.iter().any(|l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["fields"]["message"] == "crash point reached: SIGKILL"
                && v["fields"]["point"] == point
        })
    });
    assert!(
        at_point,
        "no crash at {point} in the log:\n{}",
        logs.join("\n")
    );
}

/// The user's ledger (from `/api/v1/users/{id}`) as key → delta; a key twice fails the test.
pub fn ledger(user: &Value) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for e in user["ledger"].as_array().unwrap() {
        let key = e["key"].as_str().unwrap().to_string();
        assert!(
            out.insert(key.clone(), e["delta"].as_i64().unwrap())
                .is_none(),
            "ledger key {key} twice: {user}"
        );
    }
    out
}

/// The daemon's JSON log lines, read as they come and kept.
#[derive(Default)]
pub struct Log {
    pub lines: Vec<Value>,
}

impl Log {
    /// Takes the lines that have come so far.
    pub fn drain(&mut self, daemon: &Daemon) {
        for line in daemon.logs.try_iter() {
            if let Ok(v) = serde_json::from_str(&line) {
                self.lines.push(v);
            }
        }
    }

    /// The `message` of the first kept line about `job` that is one of `messages`.
    pub fn find(&self, job: &str, messages: &[&str]) -> Option<String> {
        self.lines.iter().find_map(|v| {
            let msg = v["fields"]["message"].as_str()?;
            (messages.contains(&msg) && v["fields"]["job"] == job).then(|| msg.to_string())
        })
    }

    /// Waits (up to 20 s, on the log channel) for one of `messages` about `job`.
    pub fn wait(&mut self, daemon: &Daemon, job: &str, messages: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(m) = self.find(job, messages) {
                return m;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::task::block_in_place(|| daemon.logs.recv_timeout(left));
            match line {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str(&line) {
                        self.lines.push(v);
                    }
                }
                Err(_) => panic!("no {messages:?} for job {job} in the log within 20 s"),
            }
        }
    }
}
