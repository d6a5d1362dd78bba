//! Crash points in a job's life: the real `qwenedit serve` against a fake Telegram and a fake
//! ComfyUI, with real stores in a temp dir, SIGKILLed by itself at a named point
//! (`QWENEDIT_CRASH_AT`, see `src/faults.rs`), then restarted without the hook.
//!
//! One run: a new user goes /start → own prompt → photo → prompt → ✅ Start; the process dies at
//! the point (its exit must be SIGKILL, logged at that point); it starts again on the same data
//! dir; the user asks /balance (answered only after the bot's startup backlog — results finished
//! meanwhile, chats to tell — is done); the job's end is awaited in the chat. Then:
//! - no job lost: the job succeeded and its result is in the chat, or (`confirm` only, the
//!   process died before anything was held) no job exists, nothing was charged and the chat was
//!   told so;
//! - nothing charged twice or left held: the user's ledger is exactly welcome + hold + capture
//!   (or welcome alone), the balance is their sum, no other job was made;
//! - result messages: exactly one, two at most in the `delivered` window (sent, not yet marked);
//! - `/api/v1/ledger/verify`: every balance equals its ledger sum, none negative.
//!
//! Each point's runs share one data dir, so every run also checks the users of the runs before.
//! `QWENEDIT_CRASH_RUNS` changes the number of runs per point (20).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::support::process::{Daemon, wait_exit};
use crate::support::rig::{
    EXIT_WITHIN, Log, PRICE, Rig, WELCOME, assert_crashed_at, balance_answered, confirm, ledger,
    result_photos, to_confirm_card,
};

fn runs() -> usize {
    std::env::var("QWENEDIT_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// What one run ended with.
#[derive(Debug, Default)]
struct Tally {
    succeeded: usize,
    never_accepted: usize,
    duplicates: usize,
    retried: usize,
}

async fn one_run(rig: &Rig, point: &str, chat: i64, tally: &mut Tally) {
    let tg = &rig.tg;
    let daemon = rig.start(Some(point));
    let card = to_confirm_card(tg, chat).await;
    confirm(tg, chat, &card);
    assert_crashed_at(daemon, point);

    let daemon = rig.start(None);
    let api = rig.api(&daemon);
    balance_answered(tg, chat).await;
    let user = api.user(chat).await;
    let jobs = user["jobs"].as_array().unwrap().clone();
    assert!(
        jobs.len() <= 1,
        "one confirm made {} jobs: {user}",
        jobs.len()
    );
    let ledger_before = ledger(&user);
    if jobs.is_empty() {
        // Died before the hold: nothing was accepted, and the chat says so.
        assert_eq!(point, "confirm", "the job was lost: {user}");
        let status = tg
            .wait_for_message(chat, |m| {
                m.id == card.id && m.text.contains("did not start")
            })
            .await;
        assert!(status.buttons().iter().any(|b| b.contains("Menu")) || !status.keyboard.is_empty());
        assert_eq!(user["balance"], WELCOME, "{user}");
        assert!(
            ledger_before.keys().all(|k| k.starts_with("welcome")),
            "{user}"
        );
        tally.never_accepted += 1;
    } else {
        let job = jobs[0]["id"].as_str().unwrap().to_string();
        // The job ends: its result is in the chat.
        tg.wait_for_message(chat, |m| m.kind == "photo" || m.kind == "document")
            .await;
        // The result can reach the chat a moment before the capture is posted (the queue
        // records success, delivery and settling follow it): when it is not there yet, this
        // process settles it and logs so.
        let capture = format!("capture:{job}");
        let mut user = api.user(chat).await;
        if !ledger(&user).contains_key(&capture) {
            Log::default().wait(&daemon, &job, &["hold settled"]);
            user = api.user(chat).await;
        }
        let job_view = &user["jobs"][0];
        assert_eq!(job_view["state"], "succeeded", "{user}");
        if job_view["attempts"].as_u64().unwrap() > 1 {
            tally.retried += 1;
        }
        let entries = ledger(&user);
        let mut want = BTreeMap::new();
        for (k, v) in &entries {
            if k.starts_with("welcome") {
                want.insert(k.clone(), *v);
            }
        }
        want.insert(format!("hold:{job}"), -PRICE);
        want.insert(format!("capture:{job}"), 0);
        assert_eq!(entries, want, "charged once, captured once: {user}");
        assert_eq!(user["balance"], WELCOME - PRICE, "{user}");
        tally.succeeded += 1;
    }
    api.assert_ledger_consistent().await;
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert!(status.success(), "a clean stop: {status:?}");

    // After a clean stop nothing more can arrive: count what the user got.
    let photos = result_photos(tg, chat);
    let allowed = if point == "delivered" { 2 } else { 1 };
    let expected_min = usize::from(!jobs.is_empty());
    assert!(
        (expected_min..=allowed).contains(&photos),
        "{photos} result messages after a crash at {point}:\n{}",
        tg.transcript(chat)
    );
    if photos == 2 {
        tally.duplicates += 1;
    }
}

/// `runs()` crash-and-restart runs at `point`, one new user each, on one data dir.
async fn crash_runs(point: &str, chat_base: i64) {
    let rig = Rig::new("").await;
    let started = Instant::now();
    let mut tally = Tally::default();
    let n = runs();
    for run in 0..n {
        one_run(&rig, point, chat_base + run as i64, &mut tally).await;
    }
    // Every user of every run, once more, on a fresh start.
    let daemon = rig.start(None);
    let api = rig.api(&daemon);
    let check = api.assert_ledger_consistent().await;
    for run in 0..n {
        let chat = chat_base + run as i64;
        let user = api.user(chat).await;
        let jobs = user["jobs"].as_array().unwrap();
        assert!(jobs.iter().all(|j| j["state"] == "succeeded"), "{user}");
    }
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert!(status.success());
    eprintln!(
        "crash at {point}: {n} runs in {:.1} s ({:.2} s a run): {} succeeded ({} re-leased), \
         {} never accepted (user told), {} duplicate result messages; ledger: {check}",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() / n as f64,
        tally.succeeded,
        tally.retried,
        tally.never_accepted,
        tally.duplicates,
    );
    if point != "confirm" {
        assert_eq!(tally.never_accepted, 0);
    }
}

macro_rules! crash_point_tests {
    ($($name:ident: $point:literal, $base:literal;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            crash_runs($point, $base).await;
        }
    )*};
}

crash_point_tests! {
    crash_after_confirm_before_hold: "confirm", 61_000_000;
    crash_after_hold_before_enqueue: "held", 62_000_000;
    crash_leased_before_submit: "leased", 63_000_000;
    crash_while_comfyui_runs: "running", 64_000_000;
    crash_after_comfyui_before_complete: "finished", 65_000_000;
    crash_after_complete_before_capture: "completed", 66_000_000;
    crash_after_delivery_before_marked: "delivered", 67_000_000;
}

/// A job that kills the process every time it is leased: after `max_attempts` (3) such deaths
/// the next start dead-letters it, releases its points and tells the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_crashes_the_worker_every_time_is_dead_lettered_with_points_released() {
    let rig = Rig::new("").await;
    let chat = 68_000_001;
    let tg = &rig.tg;
    let daemon = rig.start(Some("leased"));
    let card = to_confirm_card(tg, chat).await;
    confirm(tg, chat, &card);
    assert_crashed_at(daemon, "leased");
    // Attempts 2 and 3 die as soon as the job is leased again, maybe before listening.
    for _ in 2..=3 {
        let (child, logs) = Daemon::spawn(&rig.config, &[(qwenedit::faults::CRASH_AT, "leased")]);
        let (status, logs) = tokio::task::block_in_place(|| wait_exit(child, logs, EXIT_WITHIN));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{}", logs.join("\n"));
    }
    // Still armed: but the job is out of attempts, so it is never leased again.
    let daemon = rig.start(Some("leased"));
    let api = rig.api(&daemon);
    balance_answered(tg, chat).await;
    let status = tg
        .wait_for_message(chat, |m| m.id == card.id && m.text.contains("returned"))
        .await;
    assert!(
        status.text.contains("30 points returned"),
        "{}",
        status.text
    );
    let user = api.user(chat).await;
    let job = &user["jobs"][0];
    assert_eq!(job["state"], "dead_lettered", "{user}");
    assert_eq!(job["attempts"], 3, "{user}");
    assert_eq!(user["balance"], WELCOME, "{user}");
    let id = job["id"].as_str().unwrap();
    let entries = ledger(&user);
    assert_eq!(entries[&format!("hold:{id}")], -PRICE);
    assert_eq!(entries[&format!("release:{id}")], PRICE);
    assert_eq!(result_photos(tg, chat), 0);
    assert!(rig.comfy[0].prompts().is_empty(), "never reached ComfyUI");
    api.assert_ledger_consistent().await;
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert!(status.success());
}
