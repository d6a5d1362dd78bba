//! Load: many users at once through the fake Telegram, two fake ComfyUIs, the real app
//! in-process. Every user goes /start → own prompt → photo → prompt → ✅ Start, each step for
//! all users at once; one heavy user has 10 jobs queued ahead of everyone. Checks: every job
//! completes (or is refused with a message), the heavy user's jobs do not make anyone wait behind
//! all 10 (round-robin between users), and the process's peak memory stays bounded.
//! `QWENEDIT_LOAD_USERS` changes the 1,000 users.

use std::time::Instant;

use qwenedit::domain::{JobId, UserId};

use crate::support::app::TestApp;
use crate::support::bot::jpeg;
use crate::support::fake_comfy::{Behavior, FakeComfy};
use crate::support::fake_telegram::FakeTelegram;

const HEAVY: i64 = 90_000_000;
const HEAVY_JOBS: usize = 10;

fn users() -> i64 {
    std::env::var("QWENEDIT_LOAD_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

/// Peak resident memory of this (test) process, MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap()
        / 1024.0
}

/// The newest bot message in `chat` with a button whose callback data is `data`: its id.
fn message_with(tg: &FakeTelegram, chat: i64, label: &str) -> (i32, String) {
    let m = tg
        .messages(chat)
        .into_iter()
        .rev()
        .find(|m| m.buttons().iter().any(|b| b == label))
        .unwrap_or_else(|| panic!("no {label:?} in chat {chat}:\n{}", tg.transcript(chat)));
    (m.id, m.callback_data(label))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_users_at_once_all_served_fairly_in_bounded_memory() {
    let n = users();
    let tg = FakeTelegram::start().await;
    let comfies = [FakeComfy::start().await, FakeComfy::start().await];
    for c in &comfies {
        c.set_default(Behavior::Succeed {
            steps: 1,
            step_ms: 0,
        });
    }
    let urls: Vec<_> = comfies.iter().map(FakeComfy::url).collect();
    let extra = format!(
        "[telegram]\ntoken = {:?}\napi_url = {:?}\nflood_per_minute = 1000\n\
         max_active_jobs = {HEAVY_JOBS}\n[billing]\nweekly_bonus = 0\n",
        FakeTelegram::TOKEN,
        tg.api_url().as_str()
    );
    let t = TestApp::start(&urls, &extra).await;
    tg.wait_idle().await;
    let started = Instant::now();
    let chats: Vec<i64> = (0..n).map(|i| 91_000_000 + i).collect();

    // Everyone to the confirm card, one step for all at a time.
    for &c in &chats {
        tg.set_language(c, "en");
        tg.send_text(c, "/start");
    }
    tg.wait_idle().await;
    for &c in &chats {
        let (id, data) = message_with(&tg, c, "✍️ Own prompt");
        tg.press(c, id, &data);
    }
    tg.wait_idle().await;
    let photo = jpeg(64, 48);
    for &c in &chats {
        tg.send_photo(c, photo.clone());
    }
    tg.wait_idle().await;
    for &c in &chats {
        tg.send_text(c, "make the sky purple");
    }
    tg.wait_idle().await;
    let setup = started.elapsed();

    // ComfyUI goes away so that the queue fills: first the heavy user's 10 jobs, then one job
    // of every other user, all confirmed at once.
    for c in &comfies {
        c.set_down(true);
    }
    let heavy = t.user(HEAVY, 1_000);
    let input = t.input(&crate::support::app::png(64, 48));
    let heavy_jobs: Vec<JobId> = (0..HEAVY_JOBS)
        .map(|_| t.submit(heavy, vec![input.clone()], 30))
        .collect();
    let confirm_at = Instant::now();
    for &c in &chats {
        let (id, data) = message_with(&tg, c, "✅ Start");
        tg.press(c, id, &data);
    }
    tg.wait_idle().await;
    let queueing = confirm_at.elapsed();

    // Fair order: no user's job waits behind more than one of the heavy user's.
    let job_of = |c: i64| -> JobId {
        let jobs = t.app.queue.recent_for_user(UserId::new(c), 10).unwrap();
        assert_eq!(jobs.len(), 1, "chat {c}:\n{}", tg.transcript(c));
        jobs[0].id
    };
    let jobs: Vec<JobId> = chats.iter().map(|&c| job_of(c)).collect();
    let heavy_pos: Vec<usize> = heavy_jobs
        .iter()
        .map(|j| t.app.queue.position(*j).unwrap())
        .collect();
    let mut worst_ahead = 0;
    for j in &jobs {
        let pos = t.app.queue.position(*j).expect("queued");
        let ahead = heavy_pos.iter().filter(|h| **h < pos).count();
        worst_ahead = worst_ahead.max(ahead);
    }
    assert!(
        worst_ahead <= 1,
        "a user waits behind {worst_ahead} of the heavy user's jobs"
    );

    // ComfyUI is back: everything runs.
    let run_at = Instant::now();
    let mut events = t.app.events.subscribe();
    for c in &comfies {
        c.set_down(false);
    }
    let (mut completed, mut refused) = (0, 0);
    for &c in &chats {
        let m = tg
            .wait_for_message(c, |m| {
                m.kind == "photo" || m.text.contains("could not") || m.text.contains("busy")
            })
            .await;
        if m.kind == "photo" {
            completed += 1;
        } else {
            refused += 1;
        }
    }
    // The heavy user's last jobs end after everyone else's: wait on job events for them.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let states: Vec<_> = heavy_jobs
            .iter()
            .map(|j| t.app.queue.get(*j).unwrap().unwrap().state())
            .collect();
        if states.iter().all(|s| s.is_terminal()) {
            assert!(
                states
                    .iter()
                    .all(|s| *s == qwenedit::domain::JobState::Succeeded),
                "{states:?}"
            );
            break;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("the heavy user's jobs did not end: {states:?} ({other:?})"),
        }
    }
    let running = run_at.elapsed();
    // The lease order kept the fair order: counted on when each job was first leased.
    let leased_ms = |j: &JobId| t.app.queue.get(*j).unwrap().unwrap().started_ms.unwrap();
    let heavy_leased: Vec<i64> = heavy_jobs.iter().map(leased_ms).collect();
    let mut worst_leased_ahead = 0;
    for j in &jobs {
        let at = leased_ms(j);
        worst_leased_ahead =
            worst_leased_ahead.max(heavy_leased.iter().filter(|h| **h < at).count());
    }
    let per_backend: Vec<usize> = comfies.iter().map(|c| c.finished().len()).collect();
    let peak = peak_rss_mb();
    eprintln!(
        "load: {n} users + 1 with {HEAVY_JOBS} jobs; setup {:.1} s, {n} confirms queued in {:.1} s, \
         all run in {:.1} s; {completed} completed, {refused} refused; at most {worst_ahead} heavy \
         job(s) queued ahead of anyone, {worst_leased_ahead} leased ahead; per backend \
         {per_backend:?}; peak RSS of the test process {peak:.0} MB",
        setup.as_secs_f64(),
        queueing.as_secs_f64(),
        running.as_secs_f64(),
    );
    assert_eq!(completed + refused, n as usize);
    assert_eq!(refused, 0, "nothing should be refused at this load");
    // Leases follow the order, give or take what the two backends took at once (2 x depth 2).
    assert!(worst_leased_ahead <= 1 + 4, "{worst_leased_ahead}");
    let check = t.app.store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
    // The fakes hold every photo and message too; the bound is for the whole test process.
    assert!(peak < 1_000.0, "peak RSS {peak:.0} MB");
    t.stop().await;
}
