//! YooKassa against the fake API server: payment creation with a stable Idempotence-Key,
//! notifications (accepted from YooKassa's addresses only, acted on only through the re-read),
//! exactly-once credit, reconciliation of lost notifications, faults on both calls, config.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;

use qwenedit::app::Clock;
use qwenedit::config::Config;
use qwenedit::domain::UserId;
use qwenedit::ops::{self, Rejection, Settled, YooKassaError, YooKassaLink};
use qwenedit::store::{PaymentStatus, Rail};
use qwenedit::yookassa::YooError;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::app::TestApp;
use crate::support::fake_yookassa::{FakeYooKassa, Fault, SECRET_KEY};

/// An address inside YooKassa's 185.71.76.0/27.
const YOOKASSA_IP: &str = "185.71.76.10";
/// Pack 0 of the shipped config: 100 points for 99 rubles.
const PACK0_POINTS: i64 = 100;
/// The ComfyUI backend: nothing listens there, and no test here submits a job.
const NO_COMFYUI: &str = "http://127.0.0.1:9";
/// `[yookassa]` key: the service sits behind a proxy that names the peer in `X-Real-IP`.
const BEHIND_PROXY: &str = "trusted_header = \"X-Real-IP\"";
/// `[yookassa]` key: the service's own reconciliation first runs after an hour, so within a
/// test only the test reconciles.
const HOURLY: &str = "reconcile_interval = \"1h\"";

/// The service taking card payments through a fake YooKassa, and the clock it runs on.
/// Derefs to the running service.
struct Shop {
    service: TestApp,
    yk: FakeYooKassa,
    clock: Clock,
}

/// The shop most tests want: behind a proxy ([`BEHIND_PROXY`]), reconciled only by the test
/// ([`HOURLY`]), on the system clock; `keys` are more `[yookassa]` keys.
async fn shop(keys: &str) -> Shop {
    let keys = format!("{BEHIND_PROXY}\n{HOURLY}\n{keys}");
    open_shop("", &keys, Clock::System).await
}

/// That shop on a manual clock, for tests that compare lists of orders (ordered by when they
/// were made) or let time pass.
async fn shop_on_manual_clock() -> Shop {
    open_shop("", &format!("{BEHIND_PROXY}\n{HOURLY}"), manual_clock()).await
}

/// A clock that stands still until the test moves it.
fn manual_clock() -> Clock {
    Clock::manual(1_795_424_340_000)
}

/// Starts a fake YooKassa and the service on `clock`, set up to take payments through it:
/// `[billing]` with no weekly bonus and the `billing` keys, `[yookassa]` with the fake's shop
/// and the `yookassa` keys.
async fn open_shop(billing: &str, yookassa: &str, clock: Clock) -> Shop {
    let yk = FakeYooKassa::start().await;
    let extra = format!(
        "[billing]\nweekly_bonus = 0\n{billing}{}",
        yk.config(yookassa)
    );
    let service =
        TestApp::start_with_clock(&[NO_COMFYUI.parse().unwrap()], &extra, clock.clone()).await;
    Shop { service, yk, clock }
}

impl Deref for Shop {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.service
    }
}

impl Shop {
    /// Sends a notification as YooKassa would; `from` goes into the trusted header.
    async fn notify(&self, from: Option<&str>, payment_id: &str) -> StatusCode {
        let body = json!({
            "type": "notification",
            "event": "payment.succeeded",
            "object": {
                "id": payment_id, "status": "succeeded", "paid": true,
                "amount": {"value": "99.00", "currency": "RUB"},
                "metadata": {"order_id": "whatever"}, "test": true,
                "payment_method": {"type": "bank_card", "id": payment_id, "saved": false},
            }
        });
        webhook(self.addr, from)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `user` taps pack `pack`: an order and its YooKassa payment, made or reused.
    async fn order(&self, user: UserId, pack: usize) -> Result<YooKassaLink, YooKassaError> {
        ops::create_yookassa_order(&self.app, user, pack).await
    }

    /// `user` orders pack 0: a YooKassa payment, created and still pending; returns its id.
    async fn pending_payment(&self, user: UserId) -> String {
        let before = self.yk.payments().len();
        let link = self.order(user, 0).await.unwrap();
        let payments = self.yk.payments();
        assert_eq!(payments.len(), before + 1);
        let p = payments
            .iter()
            .find(|p| p["metadata"]["order_id"] == link.order_id.as_str())
            .unwrap();
        assert_eq!(
            link.url,
            p["confirmation"]["confirmation_url"].as_str().unwrap()
        );
        p["id"].as_str().unwrap().to_string()
    }

    /// `user` orders pack 0 and pays at YooKassa; the service has not heard of it yet.
    /// Returns the payment's id.
    async fn pays(&self, user: UserId) -> String {
        let id = self.pending_payment(user).await;
        self.yk.set_status(&id, "succeeded");
        id
    }

    /// The statuses of `user`'s orders.
    fn order_status(&self, user: UserId) -> Vec<PaymentStatus> {
        self.app
            .store
            .payments()
            .unwrap()
            .iter()
            .filter(|p| p.user == user && p.id.starts_with("order:"))
            .map(|p| p.status)
            .collect()
    }

    /// The Idempotence-Keys the service has sent YooKassa so far, each once.
    fn idempotence_keys(&self) -> BTreeSet<String> {
        self.yk
            .requests()
            .into_iter()
            .filter_map(|r| r.idempotence_key)
            .collect()
    }

    /// The id of the first payment in the fake's list.
    fn first_payment(&self) -> String {
        self.yk.payments()[0]["id"].as_str().unwrap().to_string()
    }

    /// The id of a payment in the fake's list other than `id`.
    fn payment_other_than(&self, id: &str) -> String {
        self.yk.payments().iter().find(|p| p["id"] != id).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Stops the service; returns its data dir.
    async fn stop(self) -> tempfile::TempDir {
        self.service.stop().await
    }
}

/// A POST to the YooKassa webhook of the service at `addr`; `from` goes into the trusted header.
fn webhook(addr: SocketAddr, from: Option<&str>) -> reqwest::RequestBuilder {
    let req = reqwest::Client::new().post(format!("http://{addr}/webhooks/yookassa"));
    match from {
        Some(ip) => req.header("X-Real-IP", ip),
        None => req,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_sends_the_payment_and_retries_with_the_same_key_after_a_5xx() {
    let shop = shop("").await;
    let user = shop.user(7, 0);
    shop.yk.fail_create(Fault::ServerError, 1);
    let link = shop.order(user, 1).await.unwrap();
    assert_eq!((link.points, link.bonus, link.rub), (300, 30, 279));
    assert_eq!(shop.yk.payments().len(), 1, "one payment");
    let posts: Vec<_> = shop
        .yk
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "the 5xx was retried");
    assert!(
        posts.iter().all(|r| r.authorized),
        "Basic auth shopId:secretKey"
    );
    assert_eq!(posts[0].idempotence_key, posts[1].idempotence_key);
    assert_eq!(posts[0].body, posts[1].body);
    let key = posts[0].idempotence_key.clone().unwrap();
    assert!(
        key.len() <= 64 && key.contains(&link.order_id[6..]),
        "{key}"
    );
    let mut body = posts[0].body.clone().unwrap();
    assert_eq!(body["metadata"]["order_id"], link.order_id.as_str());
    assert_eq!(body["metadata"]["user_id"], "7");
    let description = body["description"].as_str().unwrap().to_string();
    assert!(description.contains(&link.order_id), "{description}");
    body["metadata"]["order_id"] = json!("[order id]");
    body["description"] = json!(description.replace(&link.order_id, "[order id]"));
    insta::assert_json_snapshot!("yookassa_create_body", body);
    // The order is stored with its payment; asking again for the same pack reuses it.
    let again = shop.order(user, 1).await.unwrap();
    assert_eq!(again, link);
    assert_eq!(
        shop.yk.count("POST", "/v3/payments"),
        2,
        "no new create call"
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_tells_the_caller_and_a_retry_makes_one_payment() {
    let shop = shop("").await;
    let user = shop.user(7, 0);
    // 5xx on every attempt: the caller gets a retryable error.
    shop.yk.fail_create(Fault::ServerError, 3);
    let err = shop.order(user, 0).await.unwrap_err();
    assert!(
        matches!(&err, YooKassaError::Provider(e) if e.is_retryable()),
        "{err:?}"
    );
    assert!(shop.yk.payments().is_empty());
    // YooKassa made the payment but its answer was lost, then it timed out: a retry of the
    // user's order gets that same payment back.
    shop.yk.fail_create(Fault::LoseResponse, 1);
    shop.yk.fail_create(Fault::Hang, 2);
    let err = shop.order(user, 0).await.unwrap_err();
    assert!(
        matches!(err, YooKassaError::Provider(YooError::Timeout)),
        "{err:?}"
    );
    assert_eq!(shop.yk.payments().len(), 1);
    let link = shop.order(user, 0).await.unwrap();
    assert_eq!(shop.yk.payments().len(), 1, "still one payment");
    assert_eq!(
        shop.idempotence_keys().len(),
        1,
        "every attempt used the order's key"
    );
    assert_eq!(shop.order_status(user), vec![PaymentStatus::Pending]);
    assert_eq!(
        shop.yk.payments()[0]["metadata"]["order_id"],
        link.order_id.as_str()
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_from_yookassa_credits_once_however_often_it_comes() {
    let shop = shop("").await;
    let user = shop.user(7, 0);
    let id = shop.pays(user).await;
    assert_eq!(shop.notify(Some(YOOKASSA_IP), &id).await, StatusCode::OK);
    assert_eq!(shop.balance(user), PACK0_POINTS);
    assert_eq!(shop.notify(Some(YOOKASSA_IP), &id).await, StatusCode::OK);
    let burst: Vec<_> = (0..10)
        .map(|i| {
            let (addr, id) = (shop.addr, id.clone());
            tokio::spawn(async move {
                let body = json!({"type": "notification", "event": "payment.succeeded",
                                  "object": {"id": id}});
                webhook(addr, Some(&format!("77.75.153.{i}")))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for h in burst {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(shop.balance(user), PACK0_POINTS, "credited once");
    assert!(
        shop.yk.count("GET", "/v3/payments/") >= 12,
        "every notification was re-read"
    );
    let payment = shop
        .app
        .store
        .payment(&format!("yookassa:{id}"))
        .unwrap()
        .unwrap();
    assert_eq!(payment.rail, Rail::YooKassa);
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!((payment.amount, payment.currency.as_str()), (9_900, "RUB"));
    assert_eq!(shop.order_status(user), vec![PaymentStatus::Succeeded]);
    let history = ops::payment_history(&shop.app, user).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].points, PACK0_POINTS as u32);
    assert!(shop.app.store.verify_ledger().unwrap().is_consistent());
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_notifications_credit_nothing() {
    let shop = shop("").await;
    let user = shop.user(7, 0);

    // From outside YooKassa's ranges, or with no address at all: refused before any re-read.
    let paid = shop.pays(user).await;
    let reads = shop.yk.count("GET", "/v3/payments/");
    for from in [
        Some("1.2.3.4"),
        Some("185.71.76.32"),
        Some("not an ip"),
        None,
    ] {
        assert_eq!(
            shop.notify(from, &paid).await,
            StatusCode::FORBIDDEN,
            "{from:?}"
        );
    }
    assert_eq!(
        shop.yk.count("GET", "/v3/payments/"),
        reads,
        "not even re-read"
    );
    assert_eq!(shop.balance(user), 0);

    // From YooKassa's address, but the re-read says pending: the body's "succeeded" is ignored.
    let other = shop.user(8, 0);
    let pending = shop.pending_payment(other).await;
    assert_eq!(
        shop.notify(Some(YOOKASSA_IP), &pending).await,
        StatusCode::OK
    );
    assert_eq!(shop.balance(other), 0);
    assert_eq!(shop.order_status(other), vec![PaymentStatus::Pending]);

    // The re-read says canceled: the order is canceled, nothing credited.
    shop.yk.set_status(&pending, "canceled");
    assert_eq!(
        shop.notify(Some(YOOKASSA_IP), &pending).await,
        StatusCode::OK
    );
    assert_eq!(shop.balance(other), 0);
    assert_eq!(shop.order_status(other), vec![PaymentStatus::Canceled]);

    // Succeeded, but for a different amount.
    let third = shop.user(9, 0);
    let cheap = shop.pays(third).await;
    shop.yk.set_amount(&cheap, "1.00", "RUB");
    assert_eq!(shop.notify(Some(YOOKASSA_IP), &cheap).await, StatusCode::OK);
    assert_eq!(
        ops::settle_yookassa(&shop.app, &cheap).await.unwrap(),
        Settled::Rejected(Rejection::AmountMismatch)
    );
    shop.yk.set_amount(&cheap, "99.00", "USD");
    assert_eq!(
        ops::settle_yookassa(&shop.app, &cheap).await.unwrap(),
        Settled::Rejected(Rejection::AmountMismatch)
    );
    assert_eq!(shop.balance(third), 0);

    // Succeeded, but a real payment where we expect a test one.
    let fourth = shop.user(10, 0);
    let live = shop.pays(fourth).await;
    shop.yk.set_test(&live, false);
    assert_eq!(shop.notify(Some(YOOKASSA_IP), &live).await, StatusCode::OK);
    assert_eq!(
        ops::settle_yookassa(&shop.app, &live).await.unwrap(),
        Settled::Rejected(Rejection::TestMismatch)
    );
    assert_eq!(shop.balance(fourth), 0);

    // A payment id YooKassa does not know.
    assert_eq!(
        shop.notify(Some(YOOKASSA_IP), "2f5bffff-000f-5000-8000-00000000ffff")
            .await,
        StatusCode::OK
    );
    assert_eq!(
        ops::settle_yookassa(&shop.app, "2f5bffff-000f-5000-8000-00000000ffff")
            .await
            .unwrap(),
        Settled::Rejected(Rejection::UnknownPayment)
    );

    // Someone else's succeeded payment in the shop, one naming our order for another user, and
    // one naming an order that does not exist.
    let order = shop.app.store.payments().unwrap();
    let our_order = &order.iter().find(|o| o.user == fourth).unwrap().id;
    for metadata in [
        json!({"cms": "other"}),
        json!({"order_id": our_order, "user_id": "8"}),
        json!({"order_id": "order:01JFAKEFAKEFAKEFAKEFAKEFAK", "user_id": "10"}),
    ] {
        let foreign = shop.yk.add_payment(metadata.clone(), "99.00", "succeeded");
        assert_eq!(
            shop.notify(Some(YOOKASSA_IP), &foreign).await,
            StatusCode::OK
        );
        assert_eq!(
            ops::settle_yookassa(&shop.app, &foreign).await.unwrap(),
            Settled::Rejected(Rejection::NotOurs),
            "{metadata}"
        );
    }

    // Not a notification at all.
    let garbage = webhook(shop.addr, Some(YOOKASSA_IP))
        .body("{\"object\": {\"id\": \"../../admin\"}}")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);

    for u in [user, other, third, fourth] {
        assert_eq!(shop.balance(u), 0, "{u}");
    }
    assert!(
        shop.app
            .store
            .payments()
            .unwrap()
            .iter()
            .all(|p| !p.id.starts_with("yookassa:")),
        "no payment recorded"
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trusted_header_the_socket_peer_decides() {
    let shop = open_shop("", HOURLY, Clock::System).await;
    let user = shop.user(7, 0);
    let id = shop.pays(user).await;
    // The test connects from 127.0.0.1; a header claiming YooKassa's address counts for nothing.
    assert_eq!(
        shop.notify(Some(YOOKASSA_IP), &id).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(shop.notify(None, &id).await, StatusCode::FORBIDDEN);
    assert_eq!(shop.balance(user), 0);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_is_settled_by_reconciliation() {
    let shop = shop("").await;
    let (a, b, c) = (shop.user(7, 0), shop.user(8, 0), shop.user(9, 0));
    let paid = shop.pending_payment(a).await;
    let canceled = shop.pending_payment(b).await;
    let _waiting = shop.pending_payment(c).await;
    shop.yk.set_status(&paid, "succeeded");
    shop.yk.set_status(&canceled, "canceled");
    let report = ops::reconcile_yookassa(&shop.app).await.unwrap();
    assert_eq!(
        (
            report.checked,
            report.credited,
            report.canceled,
            report.failed
        ),
        (3, 1, 1, 0)
    );
    assert_eq!(
        (shop.balance(a), shop.balance(b), shop.balance(c)),
        (PACK0_POINTS, 0, 0)
    );
    // Settled orders are not re-read again; the late notification changes nothing.
    let report = ops::reconcile_yookassa(&shop.app).await.unwrap();
    assert_eq!((report.checked, report.credited), (1, 0));
    assert_eq!(shop.notify(Some(YOOKASSA_IP), &paid).await, StatusCode::OK);
    assert_eq!(shop.balance(a), PACK0_POINTS);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_re_read_loses_nothing() {
    let shop = shop("").await;
    let user = shop.user(7, 0);
    let id = shop.pays(user).await;
    shop.yk.fail_get(Fault::ServerError, 1);
    assert_eq!(shop.notify(Some(YOOKASSA_IP), &id).await, StatusCode::OK);
    shop.yk.fail_get(Fault::Hang, 1);
    assert_eq!(shop.notify(Some(YOOKASSA_IP), &id).await, StatusCode::OK);
    assert_eq!(
        shop.balance(user),
        0,
        "nothing credited without a good re-read"
    );
    shop.yk.fail_get(Fault::ServerError, 1);
    let report = ops::reconcile_yookassa(&shop.app).await.unwrap();
    assert_eq!((report.checked, report.failed, report.credited), (1, 1, 0));
    let report = ops::reconcile_yookassa(&shop.app).await.unwrap();
    assert_eq!((report.checked, report.credited), (1, 1));
    assert_eq!(shop.balance(user), PACK0_POINTS);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_payment_settles_the_users_own_order() {
    let shop = shop("").await;
    let (user, stranger) = (shop.user(7, 0), shop.user(8, 0));
    let link = shop.order(user, 0).await.unwrap();
    let id = shop.first_payment();
    let check = || ops::check_yookassa_order(&shop.app, user, &link.order_id);
    assert_eq!(check().await.unwrap(), Settled::Pending { user });
    assert!(matches!(
        ops::check_yookassa_order(&shop.app, stranger, &link.order_id).await,
        Err(YooKassaError::UnknownOrder)
    ));
    shop.yk.set_status(&id, "succeeded");
    assert_eq!(
        check().await.unwrap(),
        Settled::Credited {
            user,
            points: 100,
            balance: 100
        }
    );
    assert_eq!(check().await.unwrap(), Settled::AlreadyCredited { user });
    assert_eq!(shop.balance(user), 100);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_rate_limited_with_stars_invoices() {
    let shop = open_shop("payments_per_minute = 2\n", BEHIND_PROXY, Clock::System).await;
    let user = shop.user(7, 0);
    ops::create_stars_order(&shop.app, user, 0).unwrap();
    shop.order(user, 0).await.unwrap();
    // The same pack again reuses the order; a new one is over the limit.
    shop.order(user, 0).await.unwrap();
    assert!(matches!(
        shop.order(user, 1).await,
        Err(YooKassaError::RateLimited)
    ));
    assert_eq!(shop.yk.payments().len(), 1);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_need_an_e_mail_first() {
    let shop = shop("receipt = true\nvat_code = 1\nreceipt_description = \"Баллы для фото\"").await;
    let user = shop.user(7, 0);
    assert!(ops::receipt_email_needed(&shop.app, user).unwrap());
    assert!(matches!(
        shop.order(user, 0).await,
        Err(YooKassaError::EmailRequired)
    ));
    for bad in [
        "",
        "ann",
        "ann@",
        "@x.ru",
        "ann@localhost",
        "a b@x.ru",
        "ann@x..ru",
        "a@b@c.ru",
    ] {
        assert!(
            matches!(
                ops::set_receipt_email(&shop.app, user, bad),
                Err(YooKassaError::BadEmail)
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        ops::set_receipt_email(&shop.app, user, "  ann@example.ru ").unwrap(),
        "ann@example.ru"
    );
    assert!(!ops::receipt_email_needed(&shop.app, user).unwrap());
    shop.order(user, 0).await.unwrap();
    let body = shop.yk.requests()[0].body.clone().unwrap();
    insta::assert_json_snapshot!("yookassa_create_body_with_receipt", body["receipt"]);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_unless_enabled() {
    let t = TestApp::start(&[NO_COMFYUI.parse().unwrap()], "").await;
    let user = t.user(7, 0);
    assert!(matches!(
        ops::create_yookassa_order(&t.app, user, 0).await,
        Err(YooKassaError::Off)
    ));
    let status = webhook(t.addr, Some(YOOKASSA_IP))
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.stop().await;
}

fn load(dir: &Path, yookassa: &str) -> Result<Config, String> {
    let path = dir.join("config.toml");
    std::fs::write(&path, format!("[yookassa]\n{yookassa}")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    Config::from_toml(&text, &path, std::iter::empty()).map_err(|e| e.to_string())
}

#[test]
fn config_is_checked_and_the_key_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        load(dir.path(), "").unwrap().yookassa.is_none(),
        "off by default"
    );
    let base = "enabled = true\nreturn_url = \"https://t.me/bot\"\n";
    let err = load(dir.path(), &format!("{base}secret_key = \"k\"")).unwrap_err();
    assert!(err.contains("yookassa.shop_id"), "{err}");
    let err = load(dir.path(), &format!("{base}shop_id = 1")).unwrap_err();
    assert!(err.contains("yookassa.secret_key"), "{err}");
    let err = load(
        dir.path(),
        "enabled = true\nshop_id = 1\nsecret_key = \"k\"",
    )
    .unwrap_err();
    assert!(err.contains("yookassa.return_url"), "{err}");
    let err = load(
        dir.path(),
        &format!("{base}shop_id = 1\nsecret_key = \"k\"\nreceipt = true\nvat_code = 13"),
    )
    .unwrap_err();
    assert!(err.contains("yookassa.vat_code"), "{err}");
    let err = load(
        dir.path(),
        &format!("{base}shop_id = 1\nsecret_key = \"k\"\ntrusted_header = \"X Real IP\""),
    )
    .unwrap_err();
    assert!(err.contains("yookassa.trusted_header"), "{err}");

    std::fs::write(dir.path().join("yookassa.key"), format!("{SECRET_KEY}\n")).unwrap();
    let config = load(
        dir.path(),
        &format!("{base}shop_id = 506751\nsecret_key_file = \"yookassa.key\"\napi_url = \"http://127.0.0.1:1/v3\""),
    )
    .unwrap();
    let yk = config.yookassa.clone().unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(yk.secret_key.expose_secret(), SECRET_KEY);
    assert_eq!(yk.shop_id, "506751");
    assert_eq!(yk.api_url.as_str(), "http://127.0.0.1:1/v3/");
    assert!(!yk.test && yk.receipt.is_none() && yk.trusted_header.is_none());
    let shown = format!("{config:?} {:?}", qwenedit::yookassa::Client::new(&yk));
    assert!(!shown.contains(SECRET_KEY), "the key shows in Debug");
}

#[test]
fn every_documented_key_of_the_example_config_parses() {
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.toml"))
            .unwrap();
    let section = &example[example.find("# [yookassa]").expect("documented")..];
    let mut keys = Vec::new();
    let mut text = String::new();
    for line in section.lines() {
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        if rest == "[yookassa]" {
            text.push_str("[yookassa]\n");
            continue;
        }
        if rest.starts_with('[') {
            // The next section's documentation.
            break;
        }
        let Some((key, _)) = rest.split_once(" = ") else {
            continue;
        };
        if key.contains(' ') || keys.contains(&key) {
            continue;
        }
        keys.push(key);
        let value = match key {
            "enabled" | "receipt" | "test" => "true".to_string(),
            "shop_id" => "\"123456\"".into(),
            "secret_key" => "\"test_key\"".into(),
            // Either the key or its file.
            "secret_key_file" => continue,
            _ => rest[key.len() + 3..].to_string(),
        };
        text.push_str(&format!("{key} = {value}\n"));
    }
    for key in [
        "api_url",
        "return_url",
        "vat_code",
        "receipt_description",
        "trusted_header",
        "reconcile_interval",
        "timeout",
    ] {
        assert!(keys.contains(&key), "{key} is not documented");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let config = Config::from_toml(&text, &path, std::iter::empty())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let yk = config.yookassa.unwrap();
    assert!(yk.test && yk.receipt.is_some());
    assert_eq!(yk.trusted_header.as_deref(), Some("X-Real-IP"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_user_lists_yookassa_payments_and_orders() {
    let shop = open_shop("", "", manual_clock()).await;
    let user = shop.user(7, 0);
    let paid = shop.pending_payment(user).await;
    shop.clock.advance_ms(60_000);
    shop.order(user, 1).await.unwrap();
    let canceled = shop.payment_other_than(&paid);
    shop.clock.advance_ms(60_000);
    shop.yk.set_status(&paid, "succeeded");
    shop.yk.set_status(&canceled, "canceled");
    ops::reconcile_yookassa(&shop.app).await.unwrap();
    // What the CLI gets from a running service.
    use secrecy::ExposeSecret;
    let view: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/api/v1/users/7", shop.addr))
        .bearer_auth(shop.app.admin_token.expose_secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<_> = view["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["rail"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
                p["amount"].as_u64().unwrap(),
                p["points"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("yookassa".to_string(), "succeeded".to_string(), 9_900, 100),
            ("yookassa".to_string(), "canceled".to_string(), 27_900, 330),
        ]
    );
    let dir = shop.stop().await;
    let out = assert_cmd::Command::new(crate::support::bin())
        .env_remove("QWENEDIT_CONFIG")
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .args(["admin", "user", "7"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::from_utf8(out.stdout).unwrap();
    for (i, id) in [&paid, &canceled].into_iter().enumerate() {
        text = text.replace(id.as_str(), &format!("[payment {}]", i + 1));
    }
    for o in t_orders(&dir) {
        text = text.replace(&o, "order:[ulid]");
    }
    insta::assert_snapshot!("yookassa_admin_user", text);
}

/// The order ids in a stopped app's store.
fn t_orders(dir: &tempfile::TempDir) -> Vec<String> {
    let store = qwenedit::store::Store::open(&dir.path().join("data")).unwrap();
    store
        .payments()
        .unwrap()
        .into_iter()
        .map(|p| p.order_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_link_is_not_handed_out_again() {
    let shop = shop_on_manual_clock().await;
    let user = shop.user(7, 0);
    let first = shop.order(user, 0).await.unwrap();
    shop.clock.advance_ms(1_000);
    let id = shop.first_payment();
    // Paid, the notification not in yet: the next tap settles it and makes a new payment.
    shop.yk.set_status(&id, "succeeded");
    let second = shop.order(user, 0).await.unwrap();
    assert_eq!(shop.balance(user), PACK0_POINTS);
    assert_ne!(second.order_id, first.order_id);
    assert_eq!(shop.yk.payments().len(), 2);
    shop.clock.advance_ms(1_000);
    // Canceled by YooKassa (expired): likewise a new one.
    let id2 = shop.payment_other_than(&id);
    shop.yk.set_status(&id2, "canceled");
    let third = shop.order(user, 0).await.unwrap();
    assert_ne!(third.order_id, second.order_id);
    assert_eq!(shop.yk.payments().len(), 3);
    // Still open: the same link.
    assert_eq!(shop.order(user, 0).await.unwrap(), third);
    assert_eq!(
        shop.order_status(user),
        vec![
            PaymentStatus::Pending,
            PaymentStatus::Canceled,
            PaymentStatus::Succeeded
        ]
    );
    shop.stop().await;
}

/// The `yookassa` lines of `qwenedit doctor` for the fake's config with `keys`, edited by `edit`.
async fn doctor_lines(
    yk: &FakeYooKassa,
    dir: &Path,
    keys: &str,
    edit: &[(&str, &str)],
) -> Vec<String> {
    let path = dir.join("config.toml");
    let mut text = format!("[storage]\ndata_dir = \"data\"\n{}", yk.config(keys));
    for (from, to) in edit {
        text = text.replace(from, to);
    }
    let config = Config::from_toml(&text, &path, std::iter::empty()).unwrap();
    ops::doctor(&config, &path)
        .await
        .checks
        .into_iter()
        .filter(|c| c.what == "yookassa")
        .map(|c| format!("{:?}: {}", c.status, c.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_shop() {
    let yk = FakeYooKassa::start().await;
    let dir = tempfile::tempdir().unwrap();
    let header = BEHIND_PROXY;
    assert_eq!(
        doctor_lines(&yk, dir.path(), header, &[]).await,
        ["Ok: shop 506751 answers (test shop)"]
    );
    // Receipts on a shop without fiscalization; no trusted header behind a loopback listener.
    let out = doctor_lines(&yk, dir.path(), "receipt = true", &[]).await;
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(
        out[1].starts_with("Warn: yookassa.receipt is on"),
        "{out:?}"
    );
    assert!(out[2].contains("set trusted_header"), "{out:?}");
    // A wrong key, a real-shop config against a test shop, an unreachable API.
    let api = yk.api_url();
    for (edit, expect) in [
        (
            (SECRET_KEY, "test_wrong"),
            "Fail: the shop id or secret key was rejected",
        ),
        (
            ("test = true", "test = false"),
            "Fail: shop 506751 is a test shop but yookassa.test = false",
        ),
        (
            (api.as_str(), "http://127.0.0.1:9/v3/"),
            "Fail: http://127.0.0.1:9/v3/ does not answer",
        ),
    ] {
        let out = doctor_lines(&yk, dir.path(), header, &[edit]).await;
        assert!(out.len() == 1 && out[0].starts_with(expect), "{out:?}");
        assert!(!out[0].contains(SECRET_KEY) && !out[0].contains("test_wrong"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_abandoned_orders_are_closed() {
    let shop = shop_on_manual_clock().await;
    let user = shop.user(7, 0);
    // Refused for good: no retry, the order is closed, the next tap is a new order (new key).
    shop.yk.fail_create(Fault::Refuse, 1);
    let err = shop.order(user, 0).await.unwrap_err();
    assert!(
        matches!(&err, YooKassaError::Provider(YooError::Api { status: 400, code, .. }) if code == "invalid_request"),
        "{err:?}"
    );
    assert_eq!(
        shop.yk.count("POST", "/v3/payments"),
        1,
        "a 400 is not retried"
    );
    assert_eq!(shop.order_status(user), vec![PaymentStatus::Canceled]);
    shop.clock.advance_ms(1_000);
    let link = shop.order(user, 0).await.unwrap();
    shop.clock.advance_ms(1_000);
    assert_eq!(shop.idempotence_keys().len(), 2);
    // YooKassa unreachable for a pack: the order stays open for a retry, then is given up.
    shop.yk.fail_create(Fault::ServerError, 3);
    assert!(shop.order(user, 1).await.is_err());
    let report = ops::reconcile_yookassa(&shop.app).await.unwrap();
    assert_eq!((report.checked, report.abandoned), (1, 0));
    shop.clock.advance_ms(3_600_000);
    let report = ops::reconcile_yookassa(&shop.app).await.unwrap();
    assert_eq!((report.checked, report.abandoned), (1, 1));
    assert_eq!(
        shop.order_status(user),
        vec![
            PaymentStatus::Canceled,
            PaymentStatus::Pending,
            PaymentStatus::Canceled
        ]
    );
    // The open order with a payment is untouched and still settles.
    let id = shop.first_payment();
    assert_eq!(
        shop.yk.payments()[0]["metadata"]["order_id"],
        link.order_id.as_str()
    );
    shop.yk.set_status(&id, "succeeded");
    assert_eq!(shop.notify(Some(YOOKASSA_IP), &id).await, StatusCode::OK);
    assert_eq!(shop.balance(user), PACK0_POINTS);
    shop.stop().await;
}
