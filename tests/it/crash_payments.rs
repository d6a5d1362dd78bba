//! A payment in flight during a kill is credited exactly once after the restart: the real
//! `qwenedit serve` against a fake Telegram and a fake YooKassa, SIGKILLed by itself at a payment
//! crash point (`QWENEDIT_CRASH_AT`, see `src/faults.rs`), then restarted without the hook.
//!
//! YooKassa (`yookassa_paid`: the re-read answered succeeded, nothing credited;
//! `yookassa_credited`: credited, the notification not answered): a new user opens a card
//! top-up (/start → Profile → Top up → 99 ₽), the payment succeeds at the fake, its notification
//! comes (or the 1 s reconciliation re-reads it first); the process dies at the point. Restarted,
//! YooKassa delivers the notification again (it was never answered 200) while reconciliation
//! runs too.
//!
//! Stars (`stars_paid`: `successful_payment` arrived, nothing credited; `stars_credited`:
//! credited, the user not told): a new user takes the 50 ⭐ invoice and pays; the process dies at
//! the point. Restarted, Telegram delivers the update again when its offset was not confirmed,
//! and the start-up Stars reconciliation (`getStarTransactions`) finds the charge in any case.
//!
//! Checks per run: the balance becomes welcome + the pack's points (at a `_paid` point once the
//! user is told, which follows the credit's commit),
//! the user's ledger has exactly one entry for the payment (`payment:<rail>:<id>`) next to the
//! welcome, `/api/v1/ledger/verify` is clean, and after a clean stop the chat holds at most one
//! "Payment received" message (exactly one where the credit happened after the restart through a
//! path that tells the user). The runs of a point share a data dir; a final start rechecks every
//! user. `QWENEDIT_CRASH_PAY_RUNS` changes the number of runs per point (6).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::fake_telegram::{BotMessage, FakeTelegram};
use crate::support::fake_yookassa::FakeYooKassa;
use crate::support::rig::{
    Api, Rig, WELCOME, assert_crashed_at, balance_answered, last_id, ledger,
};

/// The smallest pack: 100 points for 99 ₽ or 50 ⭐.
const PACK_POINTS: i64 = 100;
const STARS: u32 = 50;
const CREDITED: &str = "Payment received: +";

fn runs() -> usize {
    std::env::var("QWENEDIT_CRASH_PAY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// /start → 👤 Profile → 💳 Top up: the top-up screen.
async fn top_up_screen(tg: &FakeTelegram, chat: i64) -> BotMessage {
    tg.set_language(chat, "en");
    let mark = last_id(tg, chat);
    tg.send_text(chat, "/start");
    tg.wait_for_message(chat, |m| m.id > mark && m.text.contains("What shall we do"))
        .await;
    let mark = last_id(tg, chat);
    tg.send_text(chat, "👤 Profile");
    let profile = tg
        .wait_for_message(chat, |m| {
            m.id > mark && m.buttons().iter().any(|b| b == "💳 Top up")
        })
        .await;
    let mark = last_id(tg, chat);
    tg.press(chat, profile.id, &profile.callback_data("💳 Top up"));
    tg.wait_for_message(chat, |m| {
        m.id > mark && m.buttons().iter().any(|b| b.contains("99 ₽"))
    })
    .await
}

fn credited_messages(tg: &FakeTelegram, chat: i64) -> usize {
    tg.messages(chat)
        .iter()
        .filter(|m| m.text.contains(CREDITED))
        .count()
}

/// Sends a notification as YooKassa would (from one of its addresses, through the trusted
/// header); `None` when the connection broke (the process died answering it).
async fn notify(daemon_url: &str, payment_id: &str) -> Option<u16> {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .post(format!("{daemon_url}/webhooks/yookassa"))
        .header("X-Real-IP", "77.75.156.11")
        .json(&json!({
            "type": "notification", "event": "payment.succeeded",
            "object": {"id": payment_id, "status": "succeeded"},
        }))
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

/// The user once the payment is credited. At a `_paid` point the credit happens after the
/// restart (by a redelivery or a reconciliation run) and the user is told once it is committed,
/// so the "Payment received" message is the signal; at a `_credited` point it was committed
/// before the kill.
async fn user_after_credit(tg: &FakeTelegram, api: &Api, chat: i64, point: &str) -> Value {
    if point.ends_with("_paid") {
        tg.wait_for_message(chat, |m| m.text.contains(CREDITED))
            .await;
    }
    api.user(chat).await
}

/// Exactly welcome + one credit of the pack, keyed by the payment.
fn assert_credited_once(user: &Value, payment_key: &str) {
    let entries = ledger(user);
    let mut want: BTreeMap<String, i64> = entries
        .iter()
        .filter(|(k, _)| k.starts_with("welcome"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    want.insert(payment_key.to_string(), PACK_POINTS);
    assert_eq!(entries, want, "credited once: {user}");
    assert_eq!(user["balance"], WELCOME + PACK_POINTS, "{user}");
}

#[derive(Debug, Default)]
struct Tally {
    told: usize,
    not_told: usize,
    /// Stars: credited by the start-up reconciliation (`getStarTransactions`), not the update.
    by_reconciliation: usize,
}

async fn yookassa_run(rig: &Rig, yk: &FakeYooKassa, point: &str, chat: i64, tally: &mut Tally) {
    let tg = &rig.tg;
    let daemon = rig.start(Some(point));
    let screen = top_up_screen(tg, chat).await;
    let mark = last_id(tg, chat);
    tg.press(chat, screen.id, &screen.callback_data("— 99 ₽"));
    tg.wait_for_message(chat, |m| {
        m.id > mark && m.buttons().iter().any(|b| b == "🔄 Check payment")
    })
    .await;
    let payment = yk
        .payments()
        .into_iter()
        .find(|p| p["metadata"].to_string().contains(&chat.to_string()))
        .expect("the user's payment at YooKassa");
    let id = payment["id"].as_str().unwrap().to_string();
    yk.set_status(&id, "succeeded");
    // The notification dies with the process (or reconciliation got there first and the
    // process is already gone): never answered 200.
    let answered = notify(&daemon.url(""), &id).await;
    assert_ne!(answered, Some(200), "answered before the crash at {point}");
    assert_crashed_at(daemon, point);

    let daemon = rig.start(None);
    let api = rig.api(&daemon);
    // YooKassa delivers it again; the 1 s reconciliation may settle it at the same time.
    assert_eq!(notify(&daemon.url(""), &id).await, Some(200));
    let user = user_after_credit(tg, &api, chat, point).await;
    assert_credited_once(&user, &format!("payment:yookassa:{id}"));
    // Another notification after the credit changes nothing.
    assert_eq!(notify(&daemon.url(""), &id).await, Some(200));
    balance_answered(tg, chat).await;
    let user = api.user(chat).await;
    assert_credited_once(&user, &format!("payment:yookassa:{id}"));
    api.assert_ledger_consistent().await;
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert!(status.success(), "a clean stop: {status:?}");
    let told = credited_messages(tg, chat);
    assert!(
        told <= 1,
        "{told} credited messages:\n{}",
        tg.transcript(chat)
    );
    if told == 1 {
        tally.told += 1;
    } else {
        tally.not_told += 1;
    }
}

async fn stars_run(rig: &Rig, point: &str, chat: i64, tally: &mut Tally) {
    let tg = &rig.tg;
    let daemon = rig.start(Some(point));
    let screen = top_up_screen(tg, chat).await;
    let mark = last_id(tg, chat);
    tg.press(chat, screen.id, &screen.callback_data("100 points — 50 ⭐"));
    let invoice = tg
        .wait_for_message(chat, |m| m.id > mark && m.invoice.is_some())
        .await;
    let payload = invoice.invoice.unwrap().payload;
    let charge = format!("charge-{chat}");
    tg.successful_payment(chat, &payload, "XTR", STARS, &charge);
    assert_crashed_at(daemon, point);

    let daemon = rig.start(None);
    let api = rig.api(&daemon);
    // Answered after the start-up backlog and every earlier update (a redelivered
    // `successful_payment` among them).
    balance_answered(tg, chat).await;
    let user = user_after_credit(tg, &api, chat, point).await;
    assert_credited_once(&user, &format!("payment:stars:{charge}"));
    // Telegram delivers the update once more: nothing changes, nothing is said.
    tg.successful_payment(chat, &payload, "XTR", STARS, &charge);
    balance_answered(tg, chat).await;
    let user = api.user(chat).await;
    assert_credited_once(&user, &format!("payment:stars:{charge}"));
    api.assert_ledger_consistent().await;
    // The credit is logged before it is visible through the API, so its line is there by now.
    if daemon
        .logs
        .try_iter()
        .any(|l| l.contains("a Stars payment we had not credited"))
    {
        tally.by_reconciliation += 1;
    }
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert!(status.success(), "a clean stop: {status:?}");
    let told = credited_messages(tg, chat);
    assert!(
        told <= 1,
        "{told} credited messages:\n{}",
        tg.transcript(chat)
    );
    if told == 1 {
        tally.told += 1;
    } else {
        tally.not_told += 1;
    }
}

/// `runs()` crash-and-restart runs at `point`, one new user each, on one data dir.
async fn payment_runs(point: &str, chat_base: i64) {
    let yk = FakeYooKassa::start().await;
    let rig =
        Rig::new(&yk.config("trusted_header = \"X-Real-IP\"\nreconcile_interval = \"1s\"")).await;
    let started = Instant::now();
    let mut tally = Tally::default();
    let n = runs();
    for run in 0..n {
        let chat = chat_base + run as i64;
        if point.starts_with("yookassa") {
            yookassa_run(&rig, &yk, point, chat, &mut tally).await;
        } else {
            stars_run(&rig, point, chat, &mut tally).await;
        }
    }
    // Every user of every run, once more, on a fresh start.
    let daemon = rig.start(None);
    let api = rig.api(&daemon);
    let check = api.assert_ledger_consistent().await;
    for run in 0..n {
        let user = api.user(chat_base + run as i64).await;
        assert_eq!(user["balance"], WELCOME + PACK_POINTS, "{user}");
    }
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert!(status.success());
    eprintln!(
        "crash at {point}: {n} runs in {:.1} s ({:.2} s a run): {n} credited exactly once, \
         {} users told once, {} not told, {} (Stars) credited by the start-up reconciliation; \
         ledger: {check}",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() / n as f64,
        tally.told,
        tally.not_told,
        tally.by_reconciliation,
    );
    if point == "yookassa_paid" || point == "stars_paid" {
        // Credited after the restart (by the update or the reconciliation): told once.
        assert_eq!(tally.told, n);
    }
}

macro_rules! payment_crash_tests {
    ($($name:ident: $point:literal, $base:literal;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            payment_runs($point, $base).await;
        }
    )*};
}

payment_crash_tests! {
    yookassa_crash_after_paid_before_credit: "yookassa_paid", 71_000_000;
    yookassa_crash_after_credit_before_answer: "yookassa_credited", 72_000_000;
    stars_crash_after_successful_payment_before_credit: "stars_paid", 73_000_000;
    stars_crash_after_credit_before_told: "stars_credited", 74_000_000;
}
