//! Proof benchmarks (issue 8), each printing its figures:
//! - `throughput`: jobs through the app in-process (hold, queue, two fake ComfyUIs that execute
//!   instantly, `/history`, `/view`, save, complete, capture), jobs/s;
//! - `menu`: menu buttons pressed by many users at once through the fake Telegram, each
//!   handled as callback → edited message, updates/s;
//! - `memory`: the resident memory of the real `qwenedit serve` process (`/proc/<pid>/status`)
//!   idle, with 1,000 queued jobs, and while 100 users' 12 MP photo uploads are in flight;
//! - `overhead`: one user's sequential jobs through the fake Telegram (own prompt: 1 MP JPEG
//!   photo → prompt text → ✅ Start → result) with a ComfyUI that executes instantly. The bot's
//!   time per job: for each of the three updates, from `getUpdates` handing it out to the
//!   bot's answer arriving at the fake Telegram, summed, minus the fake ComfyUI's own run time;
//!   each step alone; and the wall clock the simulated user sees (it also holds the fake
//!   building the photo update and the user's reactions).
//!
//! Run: `cargo bench --bench proof` (all) or `cargo bench --bench proof -- menu` (one).
//! Without `--bench` (as `cargo test` runs benches) each does a small quick pass.

#[path = "../tests/it/support/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../tests/it/support/fake_comfy.rs"]
mod fake_comfy;
#[path = "../tests/it/support/fake_telegram.rs"]
#[allow(dead_code)]
mod fake_telegram;
#[path = "../tests/it/support/multipart.rs"]
mod multipart;

#[path = "../tests/it/support/process.rs"]
#[allow(dead_code)]
mod process;

/// The binary `process` starts (see `tests/it/support/mod.rs`).
fn bin() -> String {
    std::env::var("QWENEDIT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_qwenedit").into())
}

use std::time::Instant;

mod support;

use app::TestApp;
use fake_comfy::{Behavior, FakeComfy};
use fake_telegram::FakeTelegram;
use qwenedit::domain::JobId;
use qwenedit::worker::JobEventKind;
use serde_json::json;
use support::{jpeg, percentile};
use tokio::sync::broadcast::error::RecvError;

/// Telegram settings for an in-process app talking to `tg`.
fn telegram_config(tg: &FakeTelegram, extra: &str) -> String {
    format!(
        "[telegram]\ntoken = {:?}\napi_url = {:?}\nflood_per_minute = 100000\n{extra}\n\
         [billing]\nweekly_bonus = 0\nwelcome_points = 1000000\n",
        FakeTelegram::TOKEN,
        tg.api_url().as_str()
    )
}

async fn throughput(jobs: usize, photo: (u32, u32)) {
    let comfies = [FakeComfy::start().await, FakeComfy::start().await];
    for c in &comfies {
        c.set_default(Behavior::Succeed {
            steps: 1,
            step_ms: 0,
        });
    }
    let urls: Vec<_> = comfies.iter().map(FakeComfy::url).collect();
    let t = TestApp::start(&urls, "").await;
    let input = {
        let n = t
            .app
            .media
            .check(jpeg(photo.0, photo.1), 1_000_000)
            .await
            .unwrap();
        t.input(&n.png)
    };
    let users: Vec<_> = (0..50).map(|i| t.user(1_000 + i, 100_000_000)).collect();
    let mut events = t.app.events.subscribe();
    let start = Instant::now();
    let ids: Vec<JobId> = (0..jobs)
        .map(|i| t.submit(users[i % users.len()], vec![input.clone()], 1))
        .collect();
    let submitted = start.elapsed();
    let mut done = 0;
    while done < jobs {
        match events.recv().await {
            Ok(ev) => {
                if let JobEventKind::Succeeded { .. } = ev.kind {
                    done += 1;
                }
                assert!(!matches!(ev.kind, JobEventKind::Failed { .. }), "{ev:?}");
            }
            Err(RecvError::Lagged(_)) => {
                done = ids
                    .iter()
                    .filter(|id| {
                        t.app.queue.get(**id).unwrap().unwrap().state()
                            == qwenedit::domain::JobState::Succeeded
                    })
                    .count();
            }
            Err(e) => panic!("{e}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let per_backend: Vec<usize> = comfies.iter().map(|c| c.finished().len()).collect();
    println!(
        "  end-to-end throughput, 2 instant backends, {}x{} input  {:>7.1} jobs/s   ({jobs} jobs in {elapsed:.2} s; \
         submitting took {:.2} s; per backend {per_backend:?})",
        photo.0,
        photo.1,
        jobs as f64 / elapsed,
        submitted.as_secs_f64(),
    );
    t.stop().await;
}

/// The newest bot message of `chat` with an inline keyboard: (id, data of its first button).
fn menu_message(tg: &FakeTelegram, chat: i64) -> (i32, String) {
    let m = tg
        .messages(chat)
        .into_iter()
        .rev()
        .find(|m| !m.keyboard.is_empty())
        .unwrap_or_else(|| panic!("no inline menu in chat {chat}:\n{}", tg.transcript(chat)));
    (m.id, m.keyboard[0][0].1.clone())
}

async fn menu(users: i64) {
    let tg = FakeTelegram::start().await;
    let t = TestApp::start(
        &[reqwest::Url::parse("http://127.0.0.1:9/").unwrap()],
        &telegram_config(&tg, ""),
    )
    .await;
    tg.wait_idle().await;
    let chats: Vec<i64> = (0..users).map(|i| 500_000 + i).collect();
    for &c in &chats {
        tg.set_language(c, "en");
        tg.send_text(c, "/start");
    }
    tg.wait_idle().await;
    // Two rounds: main menu → styles (categories), then the first category (presets page).
    for round in ["menu → styles", "styles → first category"] {
        let presses: Vec<(i64, i32, String)> = chats
            .iter()
            .map(|&c| {
                let (id, data) = menu_message(&tg, c);
                (c, id, data)
            })
            .collect();
        let before = tg.calls().len();
        let start = Instant::now();
        for (c, id, data) in &presses {
            tg.press(*c, *id, data);
        }
        tg.wait_idle().await;
        let calls = tg.calls();
        let edits: Vec<_> = calls[before..]
            .iter()
            .filter(|c| c.method == "editMessageText")
            .collect();
        assert_eq!(edits.len(), chats.len(), "every press edited its message");
        let last = edits.iter().map(|c| c.time).max().unwrap();
        let secs = (last - start).as_secs_f64();
        println!(
            "  menu interactions ({round:<24}) {:>7.0} updates/s   ({} callbacks → edited messages in {secs:.2} s)",
            chats.len() as f64 / secs,
            chats.len()
        );
    }
    t.stop().await;
}

/// VmRSS and VmHWM (peak) of a process, in MB.
fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap()
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn memory(jobs: usize, uploads: i64) {
    use process::{Daemon, admin_token};
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let config = dir.path().join("config.toml");
    // The only backend is down: jobs stay queued.
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"data\"\n[comfyui]\nbackends = [\"http://127.0.0.1:9/\"]\n\
             workflows_dir = \"{root}/workflows\"\n[presets]\ndir = \"{root}/presets\"\n\
             [web]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn,qwenedit::web=info\"\nformat = \"json\"\n\
             [telegram]\nmax_active_jobs = 10\n{}",
            telegram_config(&tg, "").replace("[telegram]\n", "")
        ),
    )
    .unwrap();
    let mut daemon = tokio::task::block_in_place(|| Daemon::start_env(&config, &[]));
    let pid = daemon.pid();
    tg.wait_idle().await;
    let (idle, _) = rss_mb(pid);

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = admin_token(&dir.path().join("data"));
    let base = daemon.url("/api/v1");
    for u in 0..100 {
        let r = http
            .post(format!("{base}/users/{}/topup", 900_000 + u))
            .bearer_auth(&token)
            .json(&json!({"points": 1_000_000, "create": true, "idempotency_key": format!("m{u}")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    for i in 0..jobs {
        let r = http
            .post(format!("{base}/jobs"))
            .bearer_auth(&token)
            .json(&json!({
                "job_id": JobId::new().to_string(),
                "user": 900_000 + (i % 100),
                "price": 1,
                "prompt": "make the sky purple",
                "inputs": ["in.png"],
                "seed": i,
            }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let (queued, _) = rss_mb(pid);

    // `uploads` users each send a 12 MP photo at once: downloads and checks in flight.
    let photo = jpeg(4000, 3000);
    let mb = photo.len() as f64 / 1e6;
    for u in 0..uploads {
        let chat = 800_000 + u;
        tg.set_language(chat, "en");
        tg.send_photo(chat, photo.clone());
    }
    // Each chat's answer (what to do with the photo, or a refusal) ends its upload.
    for u in 0..uploads {
        tg.wait_for_message(800_000 + u, |m| !m.text.is_empty())
            .await;
    }
    let answered = uploads;
    let (after, peak) = rss_mb(pid);
    println!(
        "  resident memory, real process   idle {idle:>6.1} MB   {jobs} queued jobs {queued:>6.1} MB   \
         {uploads} uploads of {mb:.1} MB at once: peak {peak:>6.1} MB, after {after:>6.1} MB \
         ({answered} of {uploads} answered)"
    );
    tokio::task::block_in_place(|| daemon.terminate());
}

/// The newest bot message in `chat` newer than `after` matching `pred`.
async fn next_message(
    tg: &FakeTelegram,
    chat: i64,
    after: i32,
    pred: impl Fn(&fake_telegram::BotMessage) -> bool,
) -> fake_telegram::BotMessage {
    tg.wait_for_message(chat, |m| m.id > after && pred(m)).await
}

fn last_id(tg: &FakeTelegram, chat: i64) -> i32 {
    tg.last_message_id(chat)
}

async fn overhead(jobs: usize) {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::Succeed {
        steps: 1,
        step_ms: 0,
    });
    let tg = FakeTelegram::start().await;
    let t = TestApp::start(&[comfy.url()], &telegram_config(&tg, "")).await;
    tg.wait_idle().await;
    let chat = 700_000;
    tg.set_language(chat, "en");
    let photo = jpeg(1200, 840); // ≈1 MP
    let warmup = 3;
    // The bot's own time per job, in ms: each update handed out by getUpdates → the bot's
    // answer to it (photo → "Describe…", prompt → confirm card, ✅ Start → result sent, the last
    // minus ComfyUI's run time). The user's side (building the update, reacting) is left out.
    let mut bot: Vec<[f64; 3]> = Vec::with_capacity(jobs);
    // Wall clock as the simulated user sees it, photo sent → result, minus ComfyUI's run time:
    // also holds the fake building the photo update (its thumbnail) and the user's reactions.
    let mut wall: Vec<f64> = Vec::with_capacity(jobs);
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    for _ in 0..jobs + warmup {
        // Untimed: /start → ✍️ Own prompt → "Send a photo".
        let mark = last_id(&tg, chat);
        tg.send_text(chat, "/start");
        let own = "✍️ Own prompt";
        let menu = next_message(&tg, chat, mark, |m| m.buttons().iter().any(|b| b == own)).await;
        tg.press(chat, menu.id, &menu.callback_data(own));
        next_message(&tg, chat, menu.id, |m| m.text.contains("Send a photo")).await;
        // Timed: photo → "Describe…" → prompt → card → ✅ Start → result.
        let answered = |m: &[&str]| tg.last_call_time(m).expect("the bot answered");
        let mark = last_id(&tg, chat);
        let start = Instant::now();
        tg.send_photo(chat, photo.clone());
        next_message(&tg, chat, mark, |m| m.text.contains("Describe")).await;
        let photo_step = (tg.last_hand_out().unwrap(), answered(&["sendMessage"]));
        let mark = last_id(&tg, chat);
        tg.send_text(chat, "make the sky purple");
        let card = next_message(&tg, chat, mark, |m| {
            m.buttons().iter().any(|b| b == "✅ Start")
        })
        .await;
        let prompt_step = (tg.last_hand_out().unwrap(), answered(&["sendMessage"]));
        let mark = last_id(&tg, chat);
        tg.press(chat, card.id, &card.callback_data("✅ Start"));
        next_message(&tg, chat, mark, |m| {
            m.kind == "photo" || m.kind == "document"
        })
        .await;
        let pressed = tg.last_hand_out().unwrap();
        let sent = answered(&["sendPhoto", "sendDocument"]);
        // Sequential jobs: the newest finished prompt is this job's.
        let comfy_ms = comfy
            .finished()
            .last()
            .map_or(0, |(_, start, end)| end - start) as f64;
        bot.push([
            ms(photo_step.0, photo_step.1),
            ms(prompt_step.0, prompt_step.1),
            ms(pressed, sent) - comfy_ms,
        ]);
        wall.push(ms(start, sent) - comfy_ms);
    }
    let bot = bot.split_off(warmup);
    let wall = wall.split_off(warmup);
    let report = |label: &str, mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        println!(
            "  overhead per job, {label:<28} p50 {:>6.1} ms   p90 {:>6.1} ms   p99 {:>6.1} ms   max {:>6.1} ms   ({} jobs)",
            percentile(&v, 0.5),
            percentile(&v, 0.9),
            percentile(&v, 0.99),
            v[v.len() - 1],
            v.len()
        );
    };
    report(
        "photo → result, bot's time",
        bot.iter().map(|b| b.iter().sum()).collect(),
    );
    report(
        "  photo → \"Describe…\"",
        bot.iter().map(|b| b[0]).collect(),
    );
    report(
        "  prompt → confirm card",
        bot.iter().map(|b| b[1]).collect(),
    );
    report(
        "  ✅ Start → result sent",
        bot.iter().map(|b| b[2]).collect(),
    );
    report("photo → result, wall clock", wall);
    t.stop().await;
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("proof (fakes on loopback):");
    runtime.block_on(async {
        if want("throughput") {
            let jobs = if quick { 50 } else { 2_000 };
            throughput(jobs, (1200, 800)).await;
            throughput(jobs, (64, 48)).await;
        }
        if want("menu") {
            menu(if quick { 50 } else { 2_000 }).await;
        }
        if want("memory") {
            let (jobs, uploads) = if quick { (20, 5) } else { (1_000, 100) };
            memory(jobs, uploads).await;
        }
        if want("overhead") {
            overhead(if quick { 50 } else { 200 }).await;
        }
    });
}
