//! Telegram Stars through the fake Bot API: the top-up screen, the invoice, pre-checkout
//! answers (ok, unknown, someone else's, wrong amount, already paid, expired), the credit once
//! per charge id, refunds (admin bot command and the admin API the CLI uses, Telegram called
//! once, points debited once, the part already spent as a debt) and reconciliation of a
//! payment whose update was lost.

use qwenedit::app::Clock;
use qwenedit::domain::Reason;
use qwenedit::ops;
use secrecy::ExposeSecret;

use crate::support::app::TestApp;
use crate::support::bot::{BotTest, Setup, ru_en};
use crate::support::fake_telegram::FakeTelegram;

const ADMIN: i64 = 1;
const ALICE: i64 = 1001;
const BOB: i64 = 1002;
/// Wednesday 2026-12-02 10:00 UTC.
const NOW: i64 = 1_796_205_600_000;

/// The payload (our order id) of the newest invoice in the chat.
fn invoice_payload(b: &BotTest, user: i64) -> String {
    b.tg.messages(user)
        .iter()
        .rev()
        .find_map(|m| m.invoice.as_ref().map(|i| i.payload.clone()))
        .expect("an invoice")
}

async fn checkout(b: &BotTest, user: i64, payload: &str, total: u32) {
    b.act(|| {
        b.tg.pre_checkout(user, payload, "XTR", total);
    })
    .await;
}

async fn pay(b: &BotTest, user: i64, payload: &str, total: u32, charge: &str) {
    b.act(|| b.tg.successful_payment(user, payload, "XTR", total, charge))
        .await;
}

fn refund_calls(b: &BotTest) -> usize {
    b.tg.calls()
        .iter()
        .filter(|c| c.method == "refundStarPayment")
        .count()
}

ru_en!(stars_top_up);
/// Invoice → pre-checkout ok → bad checkouts refused → paid twice, credited once → history →
/// refund by the admin (once) → a lost payment found by reconciliation → refunded through the
/// admin API.
async fn stars_top_up(lang: &str) {
    let clock = Clock::manual(NOW);
    let b = BotTest::with(
        Setup::default()
            .no_comfy()
            .clock(clock.clone())
            .telegram(&format!("admins = [{ADMIN}]")),
    )
    .await;
    b.tg.wait_for_call("getStarTransactions", |_| true).await;
    for user in [ADMIN, ALICE, BOB] {
        b.tg.set_language(user, lang);
        b.say(user, "/start").await;
    }
    b.say(ALICE, &b.t(lang, "menu-profile")).await;
    b.press_key(ALICE, lang, "btn-topup").await;
    b.press(ALICE, "— 140 ⭐").await;
    let invoice = b.tg.last_message(ALICE);
    let info = invoice.invoice.clone().expect("an invoice");
    assert_eq!((info.currency.as_str(), info.amount), ("XTR", 140));
    let send = b.tg.wait_for_call("sendInvoice", |_| true).await;
    assert_eq!(send.params["provider_token"], "");
    assert_eq!(send.params["prices"].as_array().unwrap().len(), 1);
    let payload = invoice_payload(&b, ALICE);
    assert!(payload.starts_with("order:") && payload.len() <= 128);

    checkout(&b, ALICE, &payload, 140).await;
    checkout(&b, ALICE, "order:forged", 140).await;
    checkout(&b, BOB, &payload, 140).await;
    checkout(&b, ALICE, &payload, 14).await;
    assert_eq!(b.balance(ALICE), 60);

    // Delivered twice: credited once, told once.
    pay(&b, ALICE, &payload, 140, "charge-1").await;
    pay(&b, ALICE, &payload, 140, "charge-1").await;
    assert_eq!(b.balance(ALICE), 390);
    // Paid orders cannot be paid again.
    checkout(&b, ALICE, &payload, 140).await;
    // An invoice left for more than a day has expired.
    b.press(ALICE, "— 50 ⭐").await;
    let old = invoice_payload(&b, ALICE);
    clock.advance_ms(25 * 3_600_000);
    checkout(&b, ALICE, &old, 50).await;
    b.press_key(ALICE, lang, "menu-profile").await;
    b.press_key(ALICE, lang, "btn-payments").await;

    // The admin refunds it: Telegram once, the points once.
    b.say(ADMIN, &format!("/user {ALICE}")).await;
    b.say(ADMIN, "/refund charge-1").await;
    b.say(ADMIN, "/refund stars:charge-1").await;
    b.say(ADMIN, "/refund no-such-charge").await;
    assert_eq!(refund_calls(&b), 1);
    assert_eq!(b.tg.refunds(), 1);
    assert_eq!(b.balance(ALICE), 60);

    // A payment whose update is lost is found by reconciliation, once.
    b.press(ALICE, "— 50 ⭐").await;
    let lost = invoice_payload(&b, ALICE);
    checkout(&b, ALICE, &lost, 50).await;
    b.tg.payment_update_lost(ALICE, &lost, "XTR", 50, "charge-2");
    let app = b.app().app.clone();
    let report = ops::reconcile_stars_now(&app).await.unwrap();
    assert_eq!(report.credited, vec!["charge-2".to_string()]);
    assert_eq!(b.balance(ALICE), 160);
    let again = ops::reconcile_stars_now(&app).await.unwrap();
    assert!(again.credited.is_empty() && again.debited.is_empty());
    assert_eq!(b.balance(ALICE), 160);

    // Refunded through the admin API (what `qwenedit admin refund-stars` uses while the service
    // runs), twice: once.
    let url = format!("http://{}/api/v1/payments/stars/refund", b.app().addr);
    let token = app.admin_token.expose_secret().to_string();
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r: ops::RefundOutcome = client
            .post(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({ "charge_id": "charge-2" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answers.push((r.points, r.debt, r.balance, r.already));
    }
    assert_eq!(answers, vec![(100, 0, 60, false), (100, 0, 60, true)]);
    assert_eq!(refund_calls(&b), 2);
    // Reconciliation sees both refunds as recorded.
    let after = ops::reconcile_stars_now(&app).await.unwrap();
    assert!(after.credited.is_empty() && after.debited.is_empty());
    assert_eq!(b.balance(ALICE), 60);
    assert!(app.store.verify_ledger().unwrap().is_consistent());

    let transcript = format!(
        "{}\n\n---- admin ----\n{}",
        b.transcript(ALICE).replace(&payload, "<order 1>"),
        b.transcript(ADMIN)
    );
    insta::assert_snapshot!(format!("stars_top_up_{lang}"), transcript);
    b.stop().await;
}

/// Points already spent when the payment is refunded become an explicit debt: the balance goes
/// below zero only through it, new credits pay it off, and nothing can be spent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_of_spent_points_leaves_an_explicit_debt() {
    let tg = FakeTelegram::start().await;
    let extra = format!(
        "[telegram]\ntoken = {:?}\napi_url = {:?}\n[billing]\nweekly_bonus = 0\n",
        FakeTelegram::TOKEN,
        tg.api_url().as_str()
    );
    let t = TestApp::start(&["http://127.0.0.1:9".parse().unwrap()], &extra).await;
    // The start-up reconciliation has run (it would otherwise race the one below).
    tg.wait_for_call("getStarTransactions", |_| true).await;
    let alice = t.user(ALICE, 0);
    let order = ops::create_stars_order(&t.app, alice, 0).unwrap();
    tg.payment_update_lost(ALICE, &order.id, "XTR", 50, "charge-9");
    let r = ops::reconcile_stars_now(&t.app).await.unwrap();
    assert_eq!(r.credited, vec!["charge-9".to_string()]);
    assert_eq!(t.balance(alice), 100);
    // 70 of the 100 points are spent on a job.
    t.submit(alice, vec![t.input(&crate::support::app::png(16, 16))], 70);
    assert_eq!(t.balance(alice), 30);

    let o = ops::refund_stars(&t.app, "charge-9").await.unwrap();
    assert_eq!(
        (o.points, o.debt, o.balance, o.already),
        (100, 70, -70, false)
    );
    assert_eq!(tg.refunds(), 1);
    let reasons: Vec<(Reason, i64)> = t
        .app
        .store
        .ledger_tail(alice, 2)
        .unwrap()
        .iter()
        .map(|e| (e.reason, e.delta))
        .collect();
    assert_eq!(reasons, vec![(Reason::Debt, -70), (Reason::Refund, -30)]);
    let check = t.app.store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert_eq!(check.debts, vec![(ALICE, -70)]);

    // A repeat changes nothing and does not call Telegram again.
    let again = ops::refund_stars(&t.app, "charge-9").await.unwrap();
    assert!(again.already);
    assert_eq!(t.balance(alice), -70);
    let calls = tg
        .calls()
        .iter()
        .filter(|c| c.method == "refundStarPayment")
        .count();
    assert_eq!(calls, 1);
    // Nothing can be spent in debt; a top-up pays it off.
    assert!(matches!(
        ops::submit_edit(
            &t.app,
            qwenedit::domain::JobId::new(),
            qwenedit::domain::JobSpec {
                user: alice,
                chat: None,
                inputs: vec![t.input(&crate::support::app::png(16, 16))],
                preset: None,
                prompt: Some("x".into()),
                workflow: "qwen-image-edit-2511".into(),
                seed: 1,
                price: qwenedit::domain::Points::new(1),
                lane: qwenedit::domain::Lane::Normal,
            }
        ),
        Err(ops::OpsError::InsufficientPoints { .. })
    ));
    ops::topup(
        &t.app,
        ops::TopupRequest {
            user: alice,
            points: qwenedit::domain::Points::new(50),
            note: None,
            create: false,
            idempotency_key: Some("pay-off".into()),
        },
    )
    .unwrap();
    assert_eq!(t.balance(alice), -20);
    assert!(t.app.store.verify_ledger().unwrap().is_consistent());
    // Unknown charges are refused without calling Telegram.
    assert!(ops::refund_stars(&t.app, "nope").await.is_err());
    assert!(ops::refund_stars(&t.app, " ").await.is_err());
    assert_eq!(tg.refunds(), 1);
    t.stop().await;
}

/// `qwenedit admin refund-stars` with the service stopped: the CLI opens the store itself and
/// calls Telegram with the configured token; twice is once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_stars_from_the_command_line() {
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[telegram]\ntoken = {:?}\napi_url = {:?}\n",
        FakeTelegram::TOKEN,
        tg.api_url().as_str()
    );
    let config = crate::support::write_config(dir.path(), "127.0.0.1:0", &extra);
    {
        // The store alone (the queue's background threads could hold its lock a moment after
        // an App is dropped): a user, an order and its credited payment, as the bot leaves them.
        use qwenedit::store::{PaymentRecord, PaymentStatus, Rail, Store};
        let store = Store::open(&dir.path().join("data")).unwrap();
        let alice = qwenedit::domain::UserId::new(ALICE);
        store.register(alice, Default::default(), 0, 0).unwrap();
        let record = |id: &str, status| PaymentRecord {
            id: id.into(),
            order_id: "order:1".into(),
            user: alice,
            rail: Rail::Stars,
            status,
            amount: 50,
            currency: "XTR".into(),
            points: 100,
            created_ms: NOW,
            updated_ms: NOW,
        };
        store
            .put_payment(&record("order:1", PaymentStatus::Pending))
            .unwrap();
        store
            .credit_payment(&record("stars:charge-cli", PaymentStatus::Succeeded))
            .unwrap();
        tg.payment_update_lost(ALICE, "order:1", "XTR", 50, "charge-cli");
    }
    let run = |args: &'static [&'static str]| {
        let (config, dir) = (config.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(crate::support::bin())
                .env_remove("QWENEDIT_CONFIG")
                .env_remove("RUST_LOG")
                .current_dir(dir)
                .arg("--config")
                .arg(config)
                .args(args)
                .output()
                .unwrap();
            format!(
                "$ qwenedit {}\n{}{}[exit {}]\n",
                args.join(" "),
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
                out.status.code().unwrap_or(-1)
            )
        })
    };
    let mut transcript = String::new();
    for args in [
        &["admin", "refund-stars", "charge-cli"][..],
        &["admin", "refund-stars", "charge-cli"],
        &["admin", "refund-stars", "no-such-charge"],
        &["admin", "ledger", "--verify"],
    ] {
        transcript.push_str(&run(args).await.unwrap());
    }
    assert_eq!(tg.refunds(), 1, "{transcript}");
    insta::assert_snapshot!("refund_stars_cli", transcript);
}

/// Reconciliation of a list in any order: a payment we missed and its refund, listed refund
/// first, end credited and taken back in one run; a charge for an order that is not ours, or
/// for a different amount, is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_takes_the_list_in_any_order() {
    let t = TestApp::start(&["http://127.0.0.1:9".parse().unwrap()], "").await;
    let alice = t.user(ALICE, 0);
    let order = ops::create_stars_order(&t.app, alice, 0).unwrap();
    let other = ops::create_stars_order(&t.app, alice, 1).unwrap();
    let tx = |id: &str, payload: &str, amount, refund| ops::StarTransaction {
        id: id.into(),
        user: alice,
        amount,
        payload: Some(payload.into()),
        refund,
    };
    let list = vec![
        tx("c1", &order.id, 50, true),
        tx("c1", &order.id, 50, false),
        tx("c2", "someone-elses-bot-payload", 10, false),
        tx("c3", &other.id, 1, false),
    ];
    let r = ops::reconcile_stars(&t.app, &list).unwrap();
    assert_eq!(r.credited, vec!["c1".to_string()]);
    assert_eq!(r.debited, vec!["c1".to_string()]);
    assert_eq!(r.unmatched, vec!["c3".to_string()]);
    assert_eq!(t.balance(alice), 0);
    let again = ops::reconcile_stars(&t.app, &list).unwrap();
    assert!(again.credited.is_empty() && again.debited.is_empty());
    assert!(t.app.store.verify_ledger().unwrap().is_consistent());
    t.stop().await;
}

/// The friendly refusals of the top-up screen: too many invoices in a minute, payments off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_rate_limit_and_payments_off_are_explained() {
    let b = BotTest::with(Setup::default().no_comfy()).await;
    b.tg.set_language(ALICE, "en");
    b.say(ALICE, "/start").await;
    b.press_key(ALICE, "en", "menu-profile").await;
    b.press_key(ALICE, "en", "btn-topup").await;
    for _ in 0..6 {
        b.press(ALICE, "— 50 ⭐").await;
    }
    let invoices =
        b.tg.calls()
            .iter()
            .filter(|c| c.method == "sendInvoice")
            .count();
    assert_eq!(invoices, 5, "billing.payments_per_minute = 5");
    assert_eq!(
        b.tg.last_message(ALICE).text,
        b.t("en", "topup-rate-limited")
    );
    // The poller asks Telegram for pre-checkout queries (and messages, which carry payments).
    let poll = b.tg.wait_for_call("getUpdates", |_| true).await;
    let kinds = poll.params["allowed_updates"].as_array().unwrap().clone();
    for kind in ["message", "callback_query", "pre_checkout_query"] {
        assert!(kinds.iter().any(|k| k == kind), "{kinds:?}");
    }
    b.stop().await;

    let b = BotTest::with(
        Setup::default()
            .no_comfy()
            .billing("payments_enabled = false\ntest_mode = true"),
    )
    .await;
    b.tg.set_language(ALICE, "en");
    b.say(ALICE, "/start").await;
    b.press_key(ALICE, "en", "menu-profile").await;
    b.press_key(ALICE, "en", "btn-topup").await;
    insta::assert_snapshot!("topup_off_test_mode", b.transcript(ALICE));
    b.stop().await;
}

/// Payment history lists both rails, with the refunded one marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_history_lists_both_rails() {
    use qwenedit::store::{PaymentRecord, PaymentStatus, Rail};
    let b = BotTest::with(Setup::default().no_comfy().clock(Clock::manual(NOW))).await;
    b.tg.set_language(ALICE, "en");
    b.say(ALICE, "/start").await;
    let store = b.app().app.store.clone();
    let alice = qwenedit::domain::UserId::new(ALICE);
    for (i, (id, rail, amount, currency, points)) in [
        ("stars:c1", Rail::Stars, 140, "XTR", 330),
        ("yookassa:p1", Rail::YooKassa, 27900, "RUB", 330),
        ("yookassa:p2", Rail::YooKassa, 9950, "RUB", 100),
    ]
    .into_iter()
    .enumerate()
    {
        let at = NOW + i as i64 * 86_400_000;
        store
            .credit_payment(&PaymentRecord {
                id: id.into(),
                order_id: format!("order:{i}"),
                user: alice,
                rail,
                status: PaymentStatus::Succeeded,
                amount,
                currency: currency.into(),
                points,
                created_ms: at,
                updated_ms: at,
            })
            .unwrap();
    }
    store.refund_payment("stars:c1", NOW).unwrap();
    b.press_key(ALICE, "en", "menu-profile").await;
    b.press_key(ALICE, "en", "btn-payments").await;
    insta::assert_snapshot!("payment_history", b.tg.last_message(ALICE).text);
    b.stop().await;
}

/// A pre-checkout is answered at once even when its chat's lane is busy: here the admin's
/// broadcast (paced, seconds long) holds the lane that user 17 shares with the admin (chat ids
/// equal modulo 16), and the answer still comes before the broadcast ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_checkout_is_not_queued_behind_a_busy_lane() {
    const SAME_LANE: i64 = ADMIN + 16;
    let b = BotTest::with(
        Setup::default()
            .no_comfy()
            .telegram(&format!("admins = [{ADMIN}]")),
    )
    .await;
    for user in [ADMIN, SAME_LANE] {
        b.tg.set_language(user, "en");
        b.say(user, "/start").await;
    }
    // 60 more users make the broadcast take over two seconds (40 ms each).
    for u in 0..60 {
        b.app().user(50_000 + u, 0);
    }
    let order =
        ops::create_stars_order(&b.app().app, qwenedit::domain::UserId::new(SAME_LANE), 0).unwrap();
    b.tg.send_text(ADMIN, "/broadcast News!");
    b.tg.wait_for_call("sendMessage", |p| p["text"] == "News!")
        .await;
    b.tg.pre_checkout(SAME_LANE, &order.id, "XTR", 50);
    b.tg.wait_for_call("answerPreCheckoutQuery", |_| true).await;
    let report =
        b.tg.wait_for_message(ADMIN, |m| m.text.starts_with("Broadcast finished"))
            .await;
    let calls = b.tg.calls();
    let answered = calls
        .iter()
        .position(|c| c.method == "answerPreCheckoutQuery")
        .unwrap();
    let reported = calls
        .iter()
        .position(|c| c.method == "sendMessage" && c.params["text"] == report.text.as_str())
        .unwrap();
    assert!(answered < reported, "the answer waited for the broadcast");
    assert_eq!(calls[answered].params["ok"], true);
    b.tg.wait_idle().await;
    b.stop().await;
}
