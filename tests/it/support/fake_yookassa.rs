//! A fake YooKassa API v3 on 127.0.0.1:0, following `../shared/protocols/yookassa.md`:
//! Basic auth checked, `Idempotence-Key` honoured (same key + same body → the same payment; same
//! key + another body → an error), every request recorded. A test moves payments along
//! (`set_status`, `set_amount`, `set_test`), adds foreign ones, and injects faults (5xx, a
//! request that never answers, a create whose answer is lost after the payment was made).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const SHOP_ID: &str = "506751";
pub const SECRET_KEY: &str = "test_Fh8hUAVVBGUGbjmlzba6TB0iyUbos_lueTHE-axOwM0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 with YooKassa's error body.
    ServerError,
    /// Never answers (the client times out); nothing is created.
    Hang,
    /// Creates the payment, then never answers: the answer is lost on the way.
    LoseResponse,
    /// 400 `invalid_request` (a request YooKassa will never accept).
    Refuse,
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorized: bool,
    pub idempotence_key: Option<String>,
    pub body: Option<Value>,
}

#[derive(Default)]
struct Inner {
    payments: BTreeMap<String, Value>,
    /// Idempotence-Key → (request body, payment id).
    keys: HashMap<String, (Value, String)>,
    requests: Vec<Recorded>,
    create_faults: VecDeque<Fault>,
    get_faults: VecDeque<Fault>,
    /// The `test` flag of new payments (a test shop: true).
    test: bool,
    next: u64,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    auth: String,
}

pub struct FakeYooKassa {
    addr: SocketAddr,
    sh: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeYooKassa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeYooKassa {
    pub async fn start() -> FakeYooKassa {
        // The Authorization header reqwest sends for these credentials.
        let auth = reqwest::Client::new()
            .get("http://127.0.0.1/")
            .basic_auth(SHOP_ID, Some(SECRET_KEY))
            .build()
            .unwrap()
            .headers()["authorization"]
            .to_str()
            .unwrap()
            .to_string();
        let sh = Shared {
            inner: Arc::new(Mutex::new(Inner {
                test: true,
                ..Inner::default()
            })),
            auth,
        };
        let app = Router::new()
            .route("/v3/payments", post(create))
            .route("/v3/payments/{id}", get(read))
            .route("/v3/me", get(me))
            .with_state(sh.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeYooKassa { addr, sh, task }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.sh.inner.lock().unwrap()
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/v3/", self.addr)
    }

    /// The `[yookassa]` section for this fake (a test shop), plus `extra` keys.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[yookassa]\nenabled = true\nshop_id = {SHOP_ID:?}\nsecret_key = {SECRET_KEY:?}\n\
             api_url = {:?}\nreturn_url = \"https://t.me/qwenedit_bot\"\ntest = true\n\
             timeout = \"500ms\"\n{extra}\n",
            self.api_url()
        )
    }

    /// The next `n` creates fail with `fault`.
    pub fn fail_create(&self, fault: Fault, n: usize) {
        self.lock()
            .create_faults
            .extend(std::iter::repeat_n(fault, n));
    }

    /// The next `n` reads fail with `fault`.
    pub fn fail_get(&self, fault: Fault, n: usize) {
        self.lock().get_faults.extend(std::iter::repeat_n(fault, n));
    }

    pub fn payments(&self) -> Vec<Value> {
        self.lock().payments.values().cloned().collect()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests to `method` whose path starts with `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path))
            .count()
    }

    fn edit(&self, id: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
        let mut inner = self.lock();
        let p = inner
            .payments
            .get_mut(id)
            .unwrap_or_else(|| panic!("no payment {id}"));
        f(p.as_object_mut().unwrap());
    }

    /// Moves a payment to `status` (`succeeded` also sets `paid`).
    pub fn set_status(&self, id: &str, status: &str) {
        self.edit(id, |p| {
            p.insert("status".into(), json!(status));
            p.insert("paid".into(), json!(status == "succeeded"));
            if status == "canceled" {
                p.insert(
                    "cancellation_details".into(),
                    json!({"party": "yoo_money", "reason": "expired_on_confirmation"}),
                );
            }
        });
    }

    pub fn set_amount(&self, id: &str, value: &str, currency: &str) {
        self.edit(id, |p| {
            p.insert(
                "amount".into(),
                json!({"value": value, "currency": currency}),
            );
        });
    }

    pub fn set_test(&self, id: &str, test: bool) {
        self.edit(id, |p| {
            p.insert("test".into(), json!(test));
        });
    }

    /// Adds a payment nobody created through the API (someone else's, in the same shop).
    pub fn add_payment(&self, metadata: Value, value: &str, status: &str) -> String {
        let mut inner = self.lock();
        let id = next_id(&mut inner);
        let test = inner.test;
        inner.payments.insert(
            id.clone(),
            json!({
                "id": id, "status": status, "paid": status == "succeeded",
                "amount": {"value": value, "currency": "RUB"}, "metadata": metadata,
                "test": test, "created_at": "2026-12-01T10:00:00.000Z", "refundable": false,
            }),
        );
        id
    }
}

fn next_id(inner: &mut Inner) -> String {
    inner.next += 1;
    format!("2f5b{:04x}-000f-5000-8000-{:012x}", inner.next, inner.next)
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "type": "error", "id": "0196-fake", "code": code, "description": description,
        })),
    )
        .into_response()
}

fn record(
    sh: &Shared,
    method: &str,
    path: String,
    headers: &HeaderMap,
    body: Option<Value>,
) -> bool {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == sh.auth);
    sh.inner.lock().unwrap().requests.push(Recorded {
        method: method.into(),
        path,
        authorized,
        idempotence_key: headers
            .get("idempotence-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    });
    authorized
}

async fn create(State(sh): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    if !record(&sh, "POST", "/v3/payments".into(), &headers, parsed.clone()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Login or password is invalid",
        );
    }
    let Some(key) = headers.get("idempotence-key").and_then(|v| v.to_str().ok()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Idempotence key is missing",
        );
    };
    if key.is_empty() || key.len() > 64 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Idempotence key is too long",
        );
    }
    let Some(req) = parsed else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Body is not JSON",
        );
    };
    let fault = sh.inner.lock().unwrap().create_faults.pop_front();
    match fault {
        Some(Fault::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "Try later",
            );
        }
        Some(Fault::Hang) => std::future::pending::<()>().await,
        Some(Fault::Refuse) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid receipt: customer email is invalid",
            );
        }
        _ => {}
    }
    let payment = {
        let mut inner = sh.inner.lock().unwrap();
        match inner.keys.get(key).cloned() {
            Some((first, id)) if first == req => inner.payments[&id].clone(),
            Some(_) => {
                drop(inner);
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Idempotence key duplicated with another request",
                );
            }
            None => {
                let id = next_id(&mut inner);
                let p = json!({
                    "id": id,
                    "status": "pending",
                    "paid": false,
                    "amount": req["amount"],
                    "description": req["description"],
                    "metadata": req["metadata"],
                    "recipient": {"account_id": SHOP_ID, "gateway_id": "2045"},
                    "created_at": "2026-12-01T10:00:00.000Z",
                    "confirmation": {
                        "type": "redirect",
                        "return_url": req["confirmation"]["return_url"],
                        "confirmation_url": format!("https://yoomoney.ru/checkout/payments/v2/contract?orderId={id}"),
                    },
                    "test": inner.test,
                    "refundable": false,
                });
                inner.keys.insert(key.to_string(), (req, id.clone()));
                inner.payments.insert(id, p.clone());
                p
            }
        }
    };
    if fault == Some(Fault::LoseResponse) {
        std::future::pending::<()>().await;
    }
    axum::Json(payment).into_response()
}

async fn read(State(sh): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !record(&sh, "GET", format!("/v3/payments/{id}"), &headers, None) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Login or password is invalid",
        );
    }
    let fault = sh.inner.lock().unwrap().get_faults.pop_front();
    match fault {
        Some(Fault::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "Try later",
            );
        }
        Some(Fault::Hang | Fault::LoseResponse) => std::future::pending::<()>().await,
        Some(Fault::Refuse) => {
            return error(StatusCode::BAD_REQUEST, "invalid_request", "Bad payment id");
        }
        None => {}
    }
    let found = sh.inner.lock().unwrap().payments.get(&id).cloned();
    match found {
        Some(p) => axum::Json(p).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "Payment not found"),
    }
}

async fn me(State(sh): State<Shared>, headers: HeaderMap) -> Response {
    if !record(&sh, "GET", "/v3/me".into(), &headers, None) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Login or password is invalid",
        );
    }
    let test = sh.inner.lock().unwrap().test;
    axum::Json(json!({
        "account_id": SHOP_ID, "test": test, "fiscalization_enabled": false,
        "payment_methods": ["bank_card", "sbp"], "status": "enabled",
    }))
    .into_response()
}
