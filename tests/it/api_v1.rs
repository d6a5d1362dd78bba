//! The operator API over HTTP: every endpoint, auth failures, bad input with the documented
//! error codes, paging, and `Idempotency-Key` replays. The real app in-process, a fake ComfyUI.

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use qwenedit::app::Clock;
use qwenedit::domain::{JobState, UserId};
use qwenedit::store::{NewUser, PaymentRecord, PaymentStatus, Rail};
use qwenedit::worker::JobEventKind;

use crate::support::app::{TestApp, config_text, png};
use crate::support::fake_comfy::{Behavior, FakeComfy};

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Api {
    fn new(t: &TestApp) -> Self {
        Self {
            base: format!("http://{}/api/v1", t.addr),
            token: t.app.admin_token.expose_secret().to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(k) = key {
            rb = rb.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            headers,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(&self.token), None, None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&self.token), None, Some(body))
            .await
    }

    async fn post_keyed(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&self.token), Some(key), Some(body))
            .await
    }
}

impl Answer {
    #[track_caller]
    fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        &self.body
    }

    /// An error answer with this status and code, and a message.
    #[track_caller]
    fn err(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body["code"].as_str()),
            (status, Some(code)),
            "{}",
            self.body
        );
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(
            qwenedit::web::ERROR_CODES
                .iter()
                .any(|(c, s, _)| *c == code && *s == status),
            "{code} is not a documented code for {status}"
        );
    }
}

fn dead() -> reqwest::Url {
    "http://127.0.0.1:9".parse().unwrap()
}

/// Fills a path template with ids that exist in shape.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1").replace("{code}", "X")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_needs_the_token_except_the_spec_and_the_docs() {
    let t = TestApp::start(&[dead()], "").await;
    let api = Api::new(&t);
    for (method, path) in qwenedit::web::api_routes() {
        let m: Method = method.to_uppercase().parse().unwrap();
        let url = concrete(&path);
        if path == "/openapi.json" || path == "/docs" {
            let a = api.call(m, &url, None, None, None).await;
            assert_eq!(a.status, StatusCode::OK, "{path}");
            continue;
        }
        api.call(m.clone(), &url, None, None, Some(json!({})))
            .await
            .err(401, "unauthorized");
        api.call(
            m.clone(),
            &url,
            Some("wrong-token-wrong-token"),
            None,
            Some(json!({})),
        )
        .await
        .err(401, "unauthorized");
        // A wrong scheme is no token either.
        let a = api
            .http
            .request(m, format!("{}{url}", api.base))
            .header("Authorization", format!("Basic {}", api.token))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    api.get("/nope").await.err(404, "not_found");
    api.call(Method::DELETE, "/users", Some(&api.token), None, None)
        .await
        .err(405, "method_not_allowed");
    t.stop().await;
}

#[test]
fn the_api_answers_loopback_peers_unless_exposed() {
    use qwenedit::web::remote_allowed;
    let lan: std::net::IpAddr = "192.168.1.20".parse().unwrap();
    let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    assert!(remote_allowed(Some("127.0.0.1".parse().unwrap()), false));
    assert!(remote_allowed(Some("::1".parse().unwrap()), false));
    assert!(remote_allowed(Some(mapped), false));
    assert!(!remote_allowed(Some(lan), false));
    assert!(remote_allowed(Some(lan), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_listed_page_by_page_searched_banned_and_made_unlimited() {
    let t = TestApp::start(&[dead()], "").await;
    let api = Api::new(&t);
    for (id, name) in [
        (10, "alice"),
        (11, "bob"),
        (12, "Alina"),
        (13, "carl"),
        (14, "dora"),
    ] {
        t.app
            .store
            .register(
                UserId::new(id),
                NewUser {
                    username: Some(name.into()),
                    ..Default::default()
                },
                60,
                0,
            )
            .unwrap();
    }
    // Pages of two, by id, no gaps, no repeats.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let a = api.get(&format!("/users?limit=2&cursor={cursor}")).await;
        let page = a.ok().clone();
        assert!(page["items"].as_array().unwrap().len() <= 2);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, vec![10, 11, 12, 13, 14]);
    let found = api.get("/users?q=ALI").await;
    let ids: Vec<i64> = found.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![10, 12]);
    assert_eq!(
        api.get("/users?q=13").await.ok()["items"][0]["username"],
        "carl"
    );

    // Limits and types.
    api.get("/users?limit=201").await.err(400, "bad_request");
    api.get("/users?limit=0").await.err(400, "bad_request");
    api.get("/users?limit=-5").await.err(400, "bad_request");
    api.get("/users?limit=ten").await.err(400, "bad_request");
    api.get("/users?banned=maybe").await.err(400, "bad_request");
    api.get("/users?sort=name").await.err(400, "bad_request");
    api.get("/users?cursor=abc").await.err(400, "bad_request");
    assert_eq!(
        api.get("/users?limit=200").await.ok()["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // One user; ban and unban; unlimited.
    let u = api.get("/users/11").await;
    assert_eq!(u.ok()["balance"], 60);
    assert_eq!(u.body["ledger"][0]["reason"], "welcome");
    api.get("/users/99").await.err(404, "unknown_user");
    api.get("/users/abc").await.err(400, "bad_request");
    assert_eq!(
        api.post("/users/11/ban", json!({})).await.ok()["banned"],
        true
    );
    assert_eq!(
        api.get("/users?banned=true").await.ok()["items"][0]["id"],
        11
    );
    assert_eq!(
        api.post("/users/11/unban", json!({})).await.ok()["banned"],
        false
    );
    api.post("/users/99/ban", json!({}))
        .await
        .err(404, "unknown_user");
    let a = api
        .post("/users/12/unlimited", json!({"unlimited": true}))
        .await;
    assert_eq!(a.ok()["unlimited"], true);
    api.post("/users/12/unlimited", json!({"unlimited": "yes"}))
        .await
        .err(400, "bad_request");
    api.post("/users/12/unlimited", json!({}))
        .await
        .err(400, "bad_request");
    api.post("/users/77/unlimited", json!({"unlimited": true}))
        .await
        .err(404, "unknown_user");
    let made = api
        .post(
            "/users/77/unlimited",
            json!({"unlimited": true, "create": true}),
        )
        .await;
    assert_eq!(made.ok()["unlimited"], true);
    assert_eq!(made.body["balance"], 0, "created without welcome points");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_ups_are_checked_and_replayed_by_idempotency_key() {
    let t = TestApp::start(&[dead()], "").await;
    let api = Api::new(&t);
    let user = t.user(20, 60);

    // Bad input.
    for bad in [
        json!({"points": -5}),
        json!({"points": 0}),
        json!({"points": "ten"}),
        json!({"points": 1.5}),
        json!({}),
        json!({"points": 5, "colour": "red"}),
    ] {
        api.post("/users/20/topup", bad)
            .await
            .err(400, "bad_request");
    }
    api.post("/users/21/topup", json!({"points": 5}))
        .await
        .err(404, "unknown_user");
    api.post("/users/x/topup", json!({"points": 5}))
        .await
        .err(400, "bad_request");
    api.post_keyed("/users/20/topup", "", json!({"points": 5}))
        .await
        .err(400, "bad_request");
    let r = api
        .http
        .post(format!("{}/users/20/topup", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "bad_request");
    assert_eq!(t.balance(user), 60, "nothing applied");

    // Same key, same body: the same answer, applied once.
    let body = json!({"points": 40, "reason": "ticket 7"});
    let first = api
        .post_keyed("/users/20/topup", "ticket-7", body.clone())
        .await;
    assert_eq!(first.ok()["balance"], 100);
    assert_eq!(first.body["duplicate"], false);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = api
        .post_keyed(
            "/users/20/topup",
            "ticket-7",
            json!({"reason": "ticket 7", "points": 40}),
        )
        .await;
    assert_eq!(again.ok(), first.ok(), "the stored answer, byte for byte");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(t.balance(user), 100);

    // Same key, another body or another endpoint: a conflict, nothing applied.
    api.post_keyed(
        "/users/20/topup",
        "ticket-7",
        json!({"points": 41, "reason": "ticket 7"}),
    )
    .await
    .err(409, "idempotency_conflict");
    api.post_keyed(
        "/promocodes",
        "ticket-7",
        json!({"points": 5, "count": 1, "uses": 1}),
    )
    .await
    .err(409, "idempotency_conflict");
    assert_eq!(t.balance(user), 100);

    // A failed request does not use up its key.
    api.post_keyed("/users/22/topup", "later", json!({"points": 5}))
        .await
        .err(404, "unknown_user");
    t.user(22, 0);
    assert_eq!(
        api.post_keyed("/users/22/topup", "later", json!({"points": 5}))
            .await
            .ok()["balance"],
        5
    );

    // The same key through the old body field is the same ledger key.
    let old = api
        .post(
            "/users/20/topup",
            json!({"points": 40, "idempotency_key": "ticket-7"}),
        )
        .await;
    assert_eq!(old.ok()["duplicate"], true);
    assert_eq!(t.balance(user), 100);

    // Balance and ledger pages.
    let b = api.get("/users/20/balance").await;
    assert_eq!(b.ok(), &json!({"user": 20, "balance": 100, "held": 0}));
    api.get("/users/404/balance").await.err(404, "unknown_user");
    let p1 = api.get("/users/20/ledger?limit=1").await;
    assert_eq!(p1.ok()["items"][0]["delta"], 40);
    let c = p1.body["next_cursor"].as_str().unwrap().to_string();
    let p2 = api
        .get(&format!("/users/20/ledger?limit=1&cursor={c}"))
        .await;
    assert_eq!(p2.ok()["items"][0]["reason"], "welcome");
    assert_eq!(p2.body["next_cursor"], Value::Null);
    api.get("/users/20/ledger?limit=500")
        .await
        .err(400, "bad_request");
    api.get("/users/404/ledger").await.err(404, "unknown_user");
    let v = api.get("/ledger/verify").await;
    assert_eq!(v.ok()["mismatches"], json!([]));
    assert_eq!(v.body["users"], 2);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_submitted_listed_downloaded_cancelled_and_retried() {
    let comfy = FakeComfy::start().await;
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let api = Api::new(&t);
    let user = t.user(30, 200);

    // Inputs are uploaded as raw bytes and checked like Telegram photos.
    let up = api
        .http
        .post(format!("{}/inputs", api.base))
        .bearer_auth(&api.token)
        .body(png(64, 48))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), StatusCode::OK);
    let input = up.json::<Value>().await.unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = api
        .http
        .post(format!("{}/inputs", api.base))
        .bearer_auth(&api.token)
        .body("just some text")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["code"],
        "unsupported_image"
    );

    api.post("/jobs", json!({"user": 30, "inputs": [input]}))
        .await
        .err(400, "bad_request");
    api.post(
        "/jobs",
        json!({"user": 30, "inputs": [input], "preset": "no-such"}),
    )
    .await
    .err(400, "bad_request");
    api.post(
        "/jobs",
        json!({"user": 31, "inputs": [input], "prompt": "x"}),
    )
    .await
    .err(404, "unknown_user");
    let sub = api
        .post(
            "/jobs",
            json!({"user": 30, "inputs": [input], "preset": "anime", "seed": 5}),
        )
        .await;
    let job: qwenedit::domain::JobId = sub.ok()["job"].as_str().unwrap().parse().unwrap();
    assert!(matches!(
        t.wait_done(job).await,
        JobEventKind::Succeeded { .. }
    ));

    let j = api.get(&format!("/jobs/{job}")).await;
    let j = j.ok();
    assert_eq!(j["state"], "succeeded");
    assert_eq!(j["preset"], "anime");
    assert_eq!(j["backend"], comfy.url().as_str().trim_end_matches('/'));
    assert!(j["wait_ms"].as_i64().unwrap() >= 0 && j["run_ms"].as_i64().unwrap() >= 0);
    api.get("/jobs/not-a-job").await.err(400, "bad_request");
    api.get(&format!("/jobs/{}", qwenedit::domain::JobId::new()))
        .await
        .err(404, "unknown_job");

    let r = api
        .http
        .get(format!("{}/jobs/{job}/result", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(image::load_from_memory(&r.bytes().await.unwrap()).is_ok());
    api.get(&format!("/jobs/{job}/result?index=3"))
        .await
        .err(409, "no_result");
    api.get(&format!("/jobs/{job}/result?index=-1"))
        .await
        .err(400, "bad_request");
    api.post(&format!("/jobs/{job}/cancel"), json!({}))
        .await
        .err(409, "not_cancellable");
    api.post(&format!("/jobs/{job}/retry"), json!({}))
        .await
        .err(409, "not_retryable");

    // A job ComfyUI fails: no result; a retry is a new job, charged again.
    comfy.set_default(Behavior::ExecutionError);
    let failed = t.submit(user, vec![input.clone()], 30);
    assert!(matches!(
        t.wait_done(failed).await,
        JobEventKind::Failed { .. }
    ));
    comfy.set_default(Behavior::default());
    let failed_state = t.app.queue.get(failed).unwrap().unwrap().state();
    api.get(&format!("/jobs/{failed}/result"))
        .await
        .err(409, "no_result");
    let before = t.balance(user);
    let retried = api
        .post_keyed(&format!("/jobs/{failed}/retry"), "retry-1", json!({}))
        .await;
    let new_job: qwenedit::domain::JobId = retried.ok()["job"].as_str().unwrap().parse().unwrap();
    assert_ne!(new_job, failed);
    let replay = api
        .post_keyed(&format!("/jobs/{failed}/retry"), "retry-1", json!({}))
        .await;
    assert_eq!(replay.ok()["job"], retried.body["job"], "one retry per key");
    assert!(matches!(
        t.wait_done(new_job).await,
        JobEventKind::Succeeded { .. }
    ));
    assert_eq!(t.balance(user), before - 30);

    // Lists by state, user and time.
    let all = api.get("/jobs?user=30").await;
    assert_eq!(all.ok()["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        all.body["items"][0]["id"],
        new_job.to_string(),
        "newest first"
    );
    let f = api
        .get(&format!("/jobs?state={}", failed_state.as_str()))
        .await;
    assert_eq!(f.ok()["items"].as_array().unwrap().len(), 1);
    assert_eq!(f.body["items"][0]["id"], failed.to_string());
    assert_eq!(
        api.get("/jobs?user=31").await.ok()["items"],
        json!([]),
        "another user's"
    );
    assert_eq!(api.get("/jobs?until_ms=1").await.ok()["items"], json!([]));
    let paged = api.get("/jobs?limit=2").await;
    let c = paged.ok()["next_cursor"].as_str().unwrap().to_string();
    let rest = api.get(&format!("/jobs?limit=2&cursor={c}")).await;
    assert_eq!(rest.ok()["items"].as_array().unwrap().len(), 1);
    api.get("/jobs?state=lost").await.err(400, "bad_request");
    api.get("/jobs?since_ms=yesterday")
        .await
        .err(400, "bad_request");
    api.get("/jobs?limit=1000").await.err(400, "bad_request");

    // Cancelling a queued job returns its points.
    comfy.set_down(true);
    let queued = t.submit(user, vec![input], 30);
    let c = api.post(&format!("/jobs/{queued}/cancel"), json!({})).await;
    assert_eq!(c.ok()["state"], "cancelled");
    let s = api.get("/stats").await;
    assert_eq!(s.ok()["users"], 1);
    assert!(s.body["jobs_today"].as_u64().unwrap() >= 3);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_and_promocodes() {
    let t = TestApp::start(&[dead()], "").await;
    let api = Api::new(&t);
    let user = t.user(40, 0);
    for (i, status) in [PaymentStatus::Succeeded, PaymentStatus::Refunded]
        .into_iter()
        .enumerate()
    {
        t.app
            .store
            .put_payment(&PaymentRecord {
                id: format!("stars:charge-{i}"),
                order_id: format!("order:{i}"),
                user,
                rail: Rail::Stars,
                status,
                amount: 50,
                currency: "XTR".into(),
                points: 100,
                created_ms: 1000 + i as i64,
                updated_ms: 1000 + i as i64,
            })
            .unwrap();
    }
    t.app
        .store
        .put_payment(&PaymentRecord {
            id: "order:x".into(),
            order_id: "order:x".into(),
            user,
            rail: Rail::Stars,
            status: PaymentStatus::Pending,
            amount: 50,
            currency: "XTR".into(),
            points: 100,
            created_ms: 5000,
            updated_ms: 5000,
        })
        .unwrap();
    let all = api.get("/payments").await;
    let ids: Vec<&str> = all.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["stars:charge-1", "stars:charge-0"],
        "newest first, no orders"
    );
    assert_eq!(
        api.get("/payments?orders=true&limit=1").await.ok()["items"][0]["id"],
        "order:x"
    );
    let p = api.get("/payments?status=refunded").await;
    assert_eq!(p.ok()["items"][0]["id"], "stars:charge-1");
    assert_eq!(api.get("/payments?user=41").await.ok()["items"], json!([]));
    let first = api.get("/payments?limit=1").await;
    let c = first.ok()["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(
        api.get(&format!("/payments?limit=1&cursor={c}")).await.ok()["items"][0]["id"],
        "stars:charge-0"
    );
    api.get("/payments?rail=paypal")
        .await
        .err(400, "bad_request");
    api.get("/payments?status=lost")
        .await
        .err(400, "bad_request");
    let one = api.get("/payments/stars:charge-0").await;
    assert_eq!(one.ok()["points"], 100);
    assert_eq!(one.body["rail"], "stars");
    api.get("/payments/stars:nope")
        .await
        .err(404, "unknown_payment");

    // Promocodes.
    let made = api
        .post(
            "/promocodes",
            json!({"points": 25, "count": 3, "uses": 1, "prefix": "spring-"}),
        )
        .await;
    let codes: Vec<String> = made
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 3);
    for bad in [
        json!({"points": -1, "count": 1, "uses": 1}),
        json!({"points": 0, "count": 1, "uses": 1}),
        json!({"points": 5, "count": 1}),
        json!({"points": 5, "count": "many", "uses": 1}),
    ] {
        api.post("/promocodes", bad).await.err(400, "bad_request");
    }
    let page = api.get("/promocodes?limit=2").await;
    assert_eq!(page.ok()["items"].as_array().unwrap().len(), 2);
    let c = page.body["next_cursor"].as_str().unwrap().to_string();
    let rest = api.get(&format!("/promocodes?limit=2&cursor={c}")).await;
    assert_eq!(rest.ok()["items"].as_array().unwrap().len(), 1);
    api.get("/promocodes?limit=201")
        .await
        .err(400, "bad_request");
    let d = api
        .post(
            &format!("/promocodes/{}/disable", codes[0].to_lowercase()),
            json!({}),
        )
        .await;
    assert_eq!(d.ok()["disabled"], true);
    api.post("/promocodes/NOPE-1234/disable", json!({}))
        .await
        .err(404, "unknown_promocode");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_are_listed_and_reloaded_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("my-presets");
    std::fs::create_dir_all(&extra).unwrap();
    let text = config_text(&[dead()], "").replace(
        "[presets]\n",
        &format!("[presets]\nextra_dir = {:?}\n", extra.display().to_string()),
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let t = TestApp::start_in(dir, &path, Clock::System).await;
    let api = Api::new(&t);
    let list = api.get("/presets").await;
    let n = list.ok().as_array().unwrap().len();
    assert!(n >= 40);
    assert!(
        list.body
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["key"] == "anime")
    );

    std::fs::write(
        extra.join("sepia.toml"),
        r#"key = "sepia-test"
category = "styles"
emoji = "🟤"
prompt = "Make it sepia"
[title]
ru = "Сепия"
en = "Sepia"
[description]
ru = "Старое фото."
en = "An old photo."
"#,
    )
    .unwrap();
    let r = api.post("/presets/reload", json!({})).await;
    assert_eq!(r.ok()["presets"], n + 1);
    assert!(
        t.app.presets.get().get("sepia-test").is_some(),
        "the bot sees it too"
    );

    std::fs::write(extra.join("broken.toml"), "key = \"broken\"\n").unwrap();
    let bad = api.post("/presets/reload", json!({})).await;
    bad.err(422, "invalid_presets");
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .contains("broken.toml")
    );
    assert_eq!(
        api.get("/presets").await.ok().as_array().unwrap().len(),
        n + 1,
        "unchanged"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_are_listed_and_drained_over_the_api() {
    let comfy = FakeComfy::start().await;
    let t = TestApp::start(&[comfy.url()], "").await;
    let api = Api::new(&t);
    let list = api.get("/backends").await;
    assert_eq!(list.ok()[0]["id"], 0);
    assert_eq!(
        list.body[0]["url"],
        comfy.url().as_str().trim_end_matches('/')
    );
    assert_eq!(list.body[0]["draining"], false);
    let d = api.post("/backends/0/drain", json!({})).await;
    assert_eq!(d.ok()["draining"], true);
    assert_eq!(api.get("/backends").await.ok()[0]["draining"], true);
    let u = api.post("/backends/0/undrain", json!({})).await;
    assert_eq!(u.ok()["draining"], false);
    api.post("/backends/7/drain", json!({}))
        .await
        .err(404, "unknown_backend");
    api.post("/backends/first/drain", json!({}))
        .await
        .err(400, "bad_request");
    t.stop().await;
}

/// A drained backend finishes the job it has and takes no new one until undrained: the job
/// queued while draining is leased only after the undrain, although with a pipeline of two it
/// would otherwise have been sent to ComfyUI while the first ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backend_finishes_its_job_and_takes_no_new_ones() {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::Succeed {
        steps: 4,
        step_ms: 150,
    });
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let api = Api::new(&t);
    let user = t.user(1, 500);
    let input = t.input(&png(40, 30));
    let first = t.submit(user, vec![input.clone()], 10);
    t.wait_for(first, |k| matches!(k, JobEventKind::Progress { .. }))
        .await;
    api.post("/backends/0/drain", json!({})).await.ok();
    let second = t.submit(user, vec![input], 10);
    assert!(matches!(
        t.wait_done(first).await,
        JobEventKind::Succeeded { .. }
    ));
    let first_done = t
        .app
        .queue
        .get(first)
        .unwrap()
        .unwrap()
        .finished_ms
        .unwrap();
    let r = t.app.queue.get(second).unwrap().unwrap();
    assert_eq!(r.state(), JobState::Queued, "not taken while draining");
    assert_eq!(r.attempts, 0);
    let undrained_at = t.app.now_ms();
    api.post("/backends/0/undrain", json!({})).await.ok();
    assert!(matches!(
        t.wait_done(second).await,
        JobEventKind::Succeeded { .. }
    ));
    let r = t.app.queue.get(second).unwrap().unwrap();
    assert!(r.started_ms.unwrap() >= undrained_at && undrained_at >= first_done);
    assert_eq!(comfy.prompts().len(), 2);
    t.stop().await;
}

/// The key bookkeeping under the middleware: one reservation at a time, a repeat while the
/// first runs is told so, an abandoned reservation (a crash) is taken over after a minute.
#[test]
fn idempotency_keys_are_reserved_once_and_abandoned_ones_are_taken_over() {
    use qwenedit::store::{ReplayBegin, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let begin = |fp: &str, now: i64| store.replay_begin("k", fp, now, now - 60_000).unwrap();
    assert_eq!(begin("POST /a 1", 1_000), ReplayBegin::Reserved);
    assert_eq!(begin("POST /a 1", 2_000), ReplayBegin::InProgress);
    assert_eq!(begin("POST /a 2", 2_000), ReplayBegin::Conflict);
    assert_eq!(
        begin("POST /a 1", 61_001),
        ReplayBegin::Reserved,
        "abandoned"
    );
    store.replay_finish("k", 200, b"{\"ok\":1}").unwrap();
    assert_eq!(
        begin("POST /a 1", 70_000),
        ReplayBegin::Done {
            status: 200,
            body: b"{\"ok\":1}".to_vec()
        }
    );
    store.replay_abort("k").unwrap();
    assert!(
        matches!(begin("POST /a 1", 80_000), ReplayBegin::Done { .. }),
        "a finished key stays"
    );
    assert_eq!(
        store.replay_begin("j", "x", 1, 0).unwrap(),
        ReplayBegin::Reserved
    );
    store.replay_abort("j").unwrap();
    assert_eq!(
        store.replay_begin("j", "y", 2, 0).unwrap(),
        ReplayBegin::Reserved,
        "freed"
    );
}

/// Through the API: after `storage.retention` (7 days) the service forgets a key. A forgotten
/// key runs a new request instead of answering 409; a top-up repeated with it is still applied
/// once (its ledger entry is keyed by it for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_new_again_after_the_retention() {
    let clock = qwenedit::app::Clock::manual(1_796_205_600_000);
    let t = TestApp::start_with_clock(&[dead()], "", clock.clone()).await;
    let api = Api::new(&t);
    let user = t.user(20, 60);
    let topup = json!({"points": 40, "reason": "ticket 7"});
    let batch = |points: i64| json!({"points": points, "count": 1, "uses": 1});
    let first = api
        .post_keyed("/users/20/topup", "ticket-7", topup.clone())
        .await;
    assert_eq!(first.ok()["balance"], 100);
    api.post_keyed("/promocodes", "batch-1", batch(5))
        .await
        .ok();

    clock.advance_ms(6 * 86_400_000);
    assert_eq!(qwenedit::ops::forget_old_replays(&t.app).unwrap(), 0);
    api.post_keyed("/promocodes", "batch-1", batch(6))
        .await
        .err(409, "idempotency_conflict");

    clock.advance_ms(2 * 86_400_000);
    assert_eq!(qwenedit::ops::forget_old_replays(&t.app).unwrap(), 2);
    let made = api.post_keyed("/promocodes", "batch-1", batch(6)).await;
    assert_eq!(made.ok().as_array().map(Vec::len), Some(1), "a new batch");
    let again = api.post_keyed("/users/20/topup", "ticket-7", topup).await;
    assert!(
        again.headers.get("idempotent-replayed").is_none(),
        "run anew"
    );
    assert_eq!(again.ok()["duplicate"], true);
    assert_eq!(t.balance(user), 100, "applied once");
    t.stop().await;
}

/// Keys are forgotten after `storage.retention`: answered or abandoned, older ones go, newer
/// ones stay and still replay; a forgotten key can be used for a new request.
#[test]
fn idempotency_keys_are_forgotten_after_the_retention() {
    use qwenedit::store::{ReplayBegin, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let day = 86_400_000;
    store.replay_begin("old", "POST /a 1", day, 0).unwrap();
    store.replay_finish("old", 200, b"1").unwrap();
    store
        .replay_begin("abandoned", "POST /a 2", day, 0)
        .unwrap();
    store.replay_begin("new", "POST /a 3", 8 * day, 0).unwrap();
    store.replay_finish("new", 200, b"3").unwrap();
    // Seven days' retention on day 9: what was first used before day 2 goes.
    assert_eq!(store.replays_trim(2 * day).unwrap(), 2);
    assert_eq!(store.replays_trim(2 * day).unwrap(), 0);
    let now = 9 * day;
    assert_eq!(
        store.replay_begin("new", "POST /a 3", now, 0).unwrap(),
        ReplayBegin::Done {
            status: 200,
            body: b"3".to_vec()
        }
    );
    assert_eq!(
        store.replay_begin("old", "POST /b other", now, 0).unwrap(),
        ReplayBegin::Reserved,
        "a forgotten key is new again"
    );
}
