//! The bot end to end: the real app in-process with its Telegram side pointed at the fake Bot
//! API and its worker at a fake ComfyUI (or at a closed port, so that jobs stay queued).
//! Helpers read like what a user does; transcripts are normalised for snapshots.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use qwenedit::app::Clock;
use qwenedit::bot::{Lang, Texts};
use qwenedit::domain::{JobId, UserId};

use super::app::TestApp;
use super::fake_comfy::FakeComfy;
use super::fake_telegram::{BotMessage, FakeTelegram};

/// Two tests of one conversation, `$flow::ru` and `$flow::en`: `ru_en!(x)` over `async fn x(lang)`.
macro_rules! ru_en {
    ($flow:ident) => {
        mod $flow {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ru() {
                super::$flow("ru").await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn en() {
                super::$flow("en").await;
            }
        }
    };
}
pub(crate) use ru_en;

/// A ComfyUI address nothing listens on: the backend stays down and jobs stay queued.
const DEAD_BACKEND: &str = "http://127.0.0.1:9/";

/// What a test changes in the config.
#[derive(Clone)]
pub struct Setup {
    /// Extra keys of the `[telegram]` table (`admins = [1]`, ...).
    pub telegram: String,
    /// Keys of the `[billing]` table.
    pub billing: String,
    /// With a fake ComfyUI; without one the only backend is down.
    pub comfy: bool,
    /// The app's clock (the system clock unless a test drives time).
    pub clock: Clock,
    /// Whole sections appended to the config (`[yookassa]` ...).
    pub sections: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            telegram: String::new(),
            billing: String::new(),
            comfy: true,
            clock: Clock::System,
            sections: String::new(),
        }
    }
}

impl Setup {
    pub fn telegram(mut self, keys: &str) -> Self {
        self.telegram.push_str(keys);
        self.telegram.push('\n');
        self
    }

    pub fn billing(mut self, keys: &str) -> Self {
        self.billing.push_str(keys);
        self.billing.push('\n');
        self
    }

    pub fn no_comfy(mut self) -> Self {
        self.comfy = false;
        self
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Appends whole config sections.
    pub fn section(mut self, text: &str) -> Self {
        self.sections.push_str(text);
        self.sections.push('\n');
        self
    }
}

pub struct BotTest {
    app: Option<TestApp>,
    pub tg: FakeTelegram,
    pub comfy: Option<FakeComfy>,
    config: PathBuf,
    clock: Clock,
    texts: Texts,
    /// Per chat, the transcript lengths (in lines) at each restart, to mark them.
    restarts: Mutex<HashMap<i64, Vec<usize>>>,
}

impl BotTest {
    /// The app with its bot (and a fake ComfyUI unless `setup.no_comfy()`); by default 60
    /// welcome points and edits at 30, as the shipped config.
    pub async fn with(setup: Setup) -> BotTest {
        let tg = FakeTelegram::start().await;
        let comfy = if setup.comfy {
            Some(FakeComfy::start().await)
        } else {
            None
        };
        let backend = match &comfy {
            Some(c) => c.url(),
            None => reqwest::Url::parse(DEAD_BACKEND).unwrap(),
        };
        // A generous flood limit unless the test sets its own (TOML refuses a key twice).
        let flood = if setup.telegram.contains("flood_per_minute") {
            ""
        } else {
            "flood_per_minute = 1000\n"
        };
        // No weekly bonus unless set: it is credited at start once its weekday and time have
        // passed, which would move balances at a restart.
        let weekly = if setup.billing.contains("weekly_bonus") {
            ""
        } else {
            "weekly_bonus = 0\n"
        };
        let extra = format!(
            "[telegram]\ntoken = {:?}\napi_url = {:?}\nalbum_debounce = \"100ms\"\n{flood}{}\n\
             [billing]\n{weekly}{}\n{}",
            FakeTelegram::TOKEN,
            tg.api_url().as_str(),
            setup.telegram,
            setup.billing,
            setup.sections,
        );
        let app = TestApp::start_with_clock(&[backend], &extra, setup.clock.clone()).await;
        let config = app.dir.path().join("config.toml");
        BotTest {
            app: Some(app),
            tg,
            comfy,
            config,
            clock: setup.clock,
            texts: Texts::default(),
            restarts: Mutex::default(),
        }
    }

    pub fn app(&self) -> &TestApp {
        self.app.as_ref().expect("the app is running")
    }

    /// Stops the app (bot, workers, web) and starts it again on the same data dir and config.
    pub async fn restart(&mut self) {
        self.tg.wait_idle().await;
        {
            let mut restarts = self.restarts.lock().unwrap();
            let chats: Vec<i64> = restarts.keys().copied().collect();
            for chat in chats {
                let lines = self.tg.transcript(chat).lines().count();
                restarts.entry(chat).or_default().push(lines);
            }
        }
        let dir = self.app.take().expect("running").stop().await;
        self.app = Some(TestApp::start_in(dir, &self.config, self.clock.clone()).await);
        // The new bot says hello to the API (setMyCommands...) before polling.
        self.tg.wait_idle().await;
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    /// A text in the language (`"ru"` or `"en"`).
    pub fn t(&self, lang: &str, key: &str) -> String {
        self.texts.t(Lang::parse(lang).expect("ru or en"), key)
    }

    // ---- the user acts, then the bot has answered ----

    pub async fn say(&self, user: i64, text: &str) {
        self.act_in(Some(user), || self.tg.send_text(user, text))
            .await;
    }

    pub async fn photo(&self, user: i64, jpeg: Vec<u8>) {
        self.act_in(Some(user), || self.tg.send_photo(user, jpeg))
            .await;
    }

    pub async fn album(&self, user: i64, photos: Vec<Vec<u8>>) {
        self.act_in(Some(user), || self.tg.send_album(user, photos))
            .await;
    }

    /// Runs a user action that queues updates, then waits until the bot has fetched them
    /// (its next poll confirms them) and has gone quiet. (`wait_idle` alone may return between
    /// the fetch and the bot's first request.)
    pub async fn act(&self, action: impl FnOnce()) {
        self.act_in(None, action).await;
    }

    async fn act_in(&self, user: Option<i64>, action: impl FnOnce()) {
        if let Some(user) = user {
            self.restarts.lock().unwrap().entry(user).or_default();
        }
        let before = self.polled_offset();
        action();
        self.tg
            .wait_for_call("getUpdates", |p| {
                p.get("offset").and_then(|o| o.as_i64()).unwrap_or(0) > before
            })
            .await;
        self.tg.wait_idle().await;
    }

    /// The highest offset the bot has confirmed so far.
    fn polled_offset(&self) -> i64 {
        self.tg
            .calls()
            .iter()
            .filter(|c| c.method == "getUpdates")
            .filter_map(|c| c.params.get("offset").and_then(|o| o.as_i64()))
            .max()
            .unwrap_or(0)
    }

    /// Presses the button whose label is `label` (or the only one containing it) on the newest
    /// bot message that has such a button.
    pub async fn press(&self, user: i64, label: &str) -> BotMessage {
        let msg = self.with_button(user, label);
        self.act_in(Some(user), || {
            self.tg.press(user, msg.id, &msg.callback_data(label))
        })
        .await;
        msg
    }

    /// Presses the button with the text `key` in `lang`.
    pub async fn press_key(&self, user: i64, lang: &str, key: &str) -> BotMessage {
        self.press(user, &self.t(lang, key)).await
    }

    /// The newest bot message with a button labelled (or containing) `label`.
    pub fn with_button(&self, user: i64, label: &str) -> BotMessage {
        let exact = |m: &BotMessage| m.buttons().iter().any(|b| b == label);
        let partial =
            |m: &BotMessage| m.buttons().iter().filter(|b| b.contains(label)).count() == 1;
        let messages = self.tg.messages(user);
        messages
            .iter()
            .rev()
            .find(|m| exact(m))
            .or_else(|| messages.iter().rev().find(|m| partial(m)))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no button {label:?} in chat {user}; transcript:\n{}",
                    self.tg.transcript(user)
                )
            })
    }

    /// The id of the newest bot message in the chat (0 when there is none).
    pub fn mark(&self, user: i64) -> i32 {
        self.tg.last_message_id(user)
    }

    /// Waits for a result photo sent after the message `after`, then until no status message in
    /// the chat still says a job is starting, drawing or retrying (its last edit comes in the
    /// chat's next edit turn, up to a second after the result), then for the bot to go quiet.
    pub async fn wait_result(&self, user: i64, after: i32) -> BotMessage {
        let m = self
            .tg
            .wait_for_message(user, |m| m.kind == "photo" && m.id > after)
            .await;
        let running = self.running_statuses();
        self.tg
            .wait_until_chat(user, |messages| {
                !messages
                    .iter()
                    .any(|m| running.iter().any(|r| m.text.starts_with(r.as_str())))
            })
            .await;
        self.tg.wait_idle().await;
        m
    }

    /// How a running job's status message starts, in both languages.
    fn running_statuses(&self) -> Vec<String> {
        let mut statuses = Vec::new();
        for lang in [Lang::Ru, Lang::En] {
            statuses.push(self.texts.t(lang, "starting"));
            statuses.push(self.texts.t(lang, "retrying"));
            // The drawing line up to its progress bar.
            let drawing = self.texts.get(
                lang,
                "running",
                &[("bar", "\u{1}".into()), ("percent", 0i64.into())],
            );
            let prefix = drawing.split('\u{1}').next().unwrap_or_default();
            statuses.push(prefix.trim_end_matches([' ', '\u{2068}']).to_string());
        }
        statuses
    }

    /// Waits until a bot message (new or edited) contains `text`, then for quiet.
    pub async fn wait_text(&self, user: i64, text: &str) -> BotMessage {
        let m = self
            .tg
            .wait_for_message(user, |m| m.text.contains(text))
            .await;
        self.tg.wait_idle().await;
        m
    }

    // ---- what happened ----

    pub fn balance(&self, user: i64) -> i64 {
        self.app().balance(UserId::new(user))
    }

    /// The user's jobs, oldest first.
    pub fn jobs(&self, user: i64) -> Vec<JobId> {
        let mut jobs: Vec<JobId> = self
            .app()
            .app
            .queue
            .recent_for_user(UserId::new(user), 1000)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        jobs.reverse();
        jobs
    }

    /// The chat's transcript with unstable parts normalised: job ids become `<job 1>`, ...;
    /// queue wait estimates (measured job times) are dropped; a run of progress edits becomes
    /// one line.
    pub fn transcript(&self, user: i64) -> String {
        // The fake quotes pressed labels with `{:?}`, which escapes emoji variation selectors.
        let mut text = self.tg.transcript(user).replace("\\u{fe0f}", "\u{fe0f}");
        for (i, job) in self.jobs(user).iter().enumerate() {
            text = text.replace(&job.to_string(), &format!("<job {}>", i + 1));
        }
        if let Some(at) = self.restarts.lock().unwrap().get(&user) {
            let mut lines: Vec<&str> = text.lines().collect();
            for n in at.iter().rev() {
                lines.insert(*n, "-- the app restarts --");
            }
            text = lines.join("\n");
        }
        text = drop_numbered(&text, ", about ", " s to wait");
        text = drop_numbered(&text, ", ожидание около ", " с");
        collapse_progress(&text)
    }
}

/// Removes every `prefix` + digits + `suffix`.
fn drop_numbered(text: &str, prefix: &str, suffix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 && after[digits..].starts_with(suffix) {
            out.push_str(&rest[..at]);
            rest = &after[digits + suffix.len()..];
        } else {
            out.push_str(&rest[..at + prefix.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Progress edits depend on timing: a run of them becomes one `<~ 🎨 Drawing… [progress]`.
fn collapse_progress(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let progress = ["<~ 🎨 Drawing…", "<~ 🎨 Рисую…"]
            .into_iter()
            .find(|p| line.starts_with(p));
        match progress {
            Some(p) => {
                let collapsed = format!("{p} [progress]");
                if out.last() != Some(&collapsed) {
                    out.push(collapsed);
                }
            }
            None => out.push(line.to_string()),
        }
    }
    out.join("\n")
}

/// A JPEG as a phone camera would send (Telegram recompresses photos to JPEG).
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// An ISO BMFF `ftyp` box of a HEIC photo (what an iPhone sends "as file").
pub fn heic() -> Vec<u8> {
    let brands: [&[u8; 4]; 2] = [b"mif1", b"heic"];
    let len = 16 + 4 * brands.len();
    let mut b = (len as u32).to_be_bytes().to_vec();
    b.extend_from_slice(b"ftyp");
    b.extend_from_slice(b"heic");
    b.extend_from_slice(&[0, 0, 0, 0]);
    for brand in brands {
        b.extend_from_slice(brand);
    }
    b.extend_from_slice(&[0, 0, 0, 8]);
    b.extend_from_slice(b"mdat");
    b
}

#[test]
fn bot_transcripts_drop_wait_estimates_and_collapse_progress() {
    assert_eq!(
        drop_numbered(
            "⏳ In the queue: next, about 12 s to wait.",
            ", about ",
            " s to wait"
        ),
        "⏳ In the queue: next."
    );
    assert_eq!(
        drop_numbered("a, about x s to wait", ", about ", " s to wait"),
        "a, about x s to wait"
    );
    assert_eq!(
        collapse_progress(
            "<~ 🎨 Starting…\n<~ 🎨 Drawing… ▓░ 10%\n<~ 🎨 Drawing… ▓▓ 20%\n<~ ✅ Done!"
        ),
        "<~ 🎨 Starting…\n<~ 🎨 Drawing… [progress]\n<~ ✅ Done!"
    );
}
