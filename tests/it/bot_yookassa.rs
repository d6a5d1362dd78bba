//! Card / SBP top-ups (YooKassa) in the bot, through the fake Bot API and the fake YooKassa:
//! the top-up screen's card rows, the receipt e-mail, the payment link with "Check payment",
//! YooKassa being down (a friendly message, then a retry gives the link of the same payment),
//! a notification crediting before the user checks (the bot tells the user), and the service's
//! own reconciliation crediting when nobody checks and no notification comes.

use qwenedit::app::Clock;
use serde_json::json;

use crate::support::bot::{BotTest, Setup, ru_en};
use crate::support::fake_yookassa::{FakeYooKassa, Fault};

const ALICE: i64 = 1001;
/// Wednesday 2026-12-02 10:00 UTC (payment history shows dates).
const NOW: i64 = 1_796_205_600_000;

async fn started(yk: &FakeYooKassa, keys: &str, lang: &str) -> BotTest {
    let b = BotTest::with(
        Setup::default()
            .no_comfy()
            .clock(Clock::manual(NOW))
            .section(&yk.config(&format!(
                "trusted_header = \"X-Real-IP\"\nreconcile_interval = \"1h\"\n{keys}"
            ))),
    )
    .await;
    b.tg.set_language(ALICE, lang);
    b.say(ALICE, "/start").await;
    b
}

/// The one payment the fake holds.
fn only_payment(yk: &FakeYooKassa) -> serde_json::Value {
    let payments = yk.payments();
    assert_eq!(payments.len(), 1, "{payments:?}");
    payments[0].clone()
}

ru_en!(card_top_up);
/// Profile → Top up → "Card / SBP" for a pack → the receipt e-mail (a wrong one first) → the
/// link and "Check payment" → not paid yet → paid → credited → checked again: credited once.
async fn card_top_up(lang: &str) {
    let yk = FakeYooKassa::start().await;
    let b = started(&yk, "receipt = true", lang).await;
    b.say(ALICE, &b.t(lang, "menu-profile")).await;
    b.press_key(ALICE, lang, "btn-topup").await;
    b.press(ALICE, "279 ₽").await;
    b.say(ALICE, "ann at example").await;
    b.say(ALICE, "ann@example.ru").await;
    let payment = only_payment(&yk);
    let link = b.with_button(ALICE, &b.t(lang, "btn-yk-check"));
    assert_eq!(
        link.callback_data("💳"),
        payment["confirmation"]["confirmation_url"]
            .as_str()
            .unwrap(),
        "the pay button opens YooKassa's page"
    );
    assert_eq!(payment["amount"]["value"], "279.00");
    assert_eq!(
        payment["receipt"],
        serde_json::Value::Null,
        "the fake keeps no receipt"
    );
    let sent = yk.requests()[0].body.clone().unwrap();
    assert_eq!(sent["receipt"]["customer"]["email"], "ann@example.ru");

    b.press_key(ALICE, lang, "btn-yk-check").await;
    assert_eq!(b.balance(ALICE), 60);
    yk.set_status(payment["id"].as_str().unwrap(), "succeeded");
    b.press_key(ALICE, lang, "btn-yk-check").await;
    assert_eq!(b.balance(ALICE), 60 + 330);
    b.press_key(ALICE, lang, "btn-yk-check").await;
    assert_eq!(b.balance(ALICE), 60 + 330, "credited once");
    // The e-mail is kept: the next card payment goes straight to the link.
    b.press_key(ALICE, lang, "btn-topup").await;
    b.press(ALICE, "99 ₽").await;
    b.press_key(ALICE, lang, "btn-payments").await;
    insta::assert_snapshot!(format!("card_top_up_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_top_up_while_yookassa_is_down_then_notified() {
    let yk = FakeYooKassa::start().await;
    let b = started(&yk, "", "en").await;
    b.say(ALICE, &b.t("en", "menu-profile")).await;
    b.press_key(ALICE, "en", "btn-topup").await;
    yk.fail_create(Fault::ServerError, 3);
    // Three attempts with pauses: wait for the answer, not for a quiet moment.
    b.press(ALICE, "99 ₽").await;
    b.wait_text(ALICE, "not available right now").await;
    assert!(yk.payments().is_empty());
    b.press(ALICE, "99 ₽").await;
    let check = b.t("en", "btn-yk-check");
    b.tg.wait_for_message(ALICE, |m| m.buttons().contains(&check))
        .await;
    b.tg.wait_idle().await;
    let payment = only_payment(&yk);
    // Every attempt was for the same order, with its key.
    let keys: std::collections::BTreeSet<_> = yk
        .requests()
        .into_iter()
        .filter_map(|r| r.idempotence_key)
        .collect();
    assert_eq!(keys.len(), 1);
    // YooKassa notifies before the user checks.
    let id = payment["id"].as_str().unwrap();
    yk.set_status(id, "succeeded");
    let status = reqwest::Client::new()
        .post(format!("http://{}/webhooks/yookassa", b.app().addr))
        .header("X-Real-IP", "77.75.156.11")
        .json(&json!({"type": "notification", "event": "payment.succeeded", "object": {"id": id}}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(b.balance(ALICE), 160);
    // The user paid outside the chat: the bot tells them.
    b.wait_text(ALICE, "Payment received: +100 points").await;
    b.press_key(ALICE, "en", "btn-yk-check").await;
    assert_eq!(b.balance(ALICE), 160);
    insta::assert_snapshot!("card_top_up_down_then_notified", b.transcript(ALICE));
    b.stop().await;
}

/// Nobody presses "Check payment" and no notification comes: the service's own reconciliation
/// (every second here) finds the paid payment, credits it once and tells the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconciles_on_its_own() {
    let yk = FakeYooKassa::start().await;
    let b = BotTest::with(
        Setup::default()
            .no_comfy()
            .section(&yk.config("trusted_header = \"X-Real-IP\"\nreconcile_interval = \"1s\"")),
    )
    .await;
    b.tg.set_language(ALICE, "en");
    b.say(ALICE, "/start").await;
    b.say(ALICE, &b.t("en", "menu-profile")).await;
    b.press_key(ALICE, "en", "btn-topup").await;
    b.press(ALICE, "99 ₽").await;
    let payment = only_payment(&yk);
    yk.set_status(payment["id"].as_str().unwrap(), "succeeded");
    // The user is told once the credit is committed.
    b.tg.wait_for_message(ALICE, |m| m.text.contains("Payment received: +100"))
        .await;
    assert_eq!(b.balance(ALICE), 60 + 100);
    b.stop().await;
}
