//! Disk full on the data dir: below `storage.min_free_mb` new jobs are refused with a clear
//! error (the bot says the server is busy, the API answers 507 `disk_full`), nothing is held or
//! queued, and once there is room again jobs are accepted with the ledger intact.

use qwenedit::app::Clock;
use qwenedit::domain::{JobId, JobSpec, Lane, Points};
use qwenedit::ops::{self, OpsError};
use secrecy::ExposeSecret;

use crate::support::app::{TestApp, config_text, png};

fn config(dir: &std::path::Path, min_free_mb: u64) -> std::path::PathBuf {
    let backend = reqwest::Url::parse("http://127.0.0.1:9/").unwrap();
    let text = config_text(&[backend], "").replace(
        "queue_fsync = false",
        &format!("queue_fsync = false\nmin_free_mb = {min_free_mb}"),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_free_space_floor_new_jobs_are_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    // A floor no disk has.
    let path = config(dir.path(), 1 << 40);
    let t = TestApp::start_in(dir, &path, Clock::System).await;
    assert!(ops::disk_full(&t.app));
    let user = t.user(1, 100);
    let input = t.input(&png(8, 8));
    let spec = JobSpec {
        user,
        chat: Some(1),
        inputs: vec![input.clone()],
        preset: None,
        prompt: Some("make the sky purple".into()),
        workflow: "qwen-image-edit-2511".into(),
        seed: 7,
        price: Points::new(30),
        lane: Lane::Normal,
    };
    let err = ops::submit_edit(&t.app, JobId::new(), spec.clone()).unwrap_err();
    assert!(matches!(err, OpsError::DiskFull), "{err:?}");
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{}/api/v1/jobs", t.addr))
        .bearer_auth(t.app.admin_token.expose_secret())
        .json(&serde_json::json!({
            "job_id": JobId::new().to_string(), "user": 1, "price": 30,
            "prompt": "make the sky purple", "inputs": [input], "seed": 7,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::INSUFFICIENT_STORAGE);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "disk_full", "{body}");
    assert_eq!(t.balance(user), 100, "nothing held");
    assert!(t.app.store.intents().unwrap().is_empty());
    assert!(t.app.store.open_holds().unwrap().is_empty());
    assert!(t.app.queue.recent_for_user(user, 10).unwrap().is_empty());

    // Room again: the same stores take jobs, and the ledger is whole.
    let dir = t.stop().await;
    let path = config(dir.path(), 0);
    let t = TestApp::start_in(dir, &path, Clock::System).await;
    assert!(!ops::disk_full(&t.app));
    let submitted = ops::submit_edit(&t.app, JobId::new(), spec).unwrap();
    assert_eq!(submitted.balance, 70);
    assert!(t.app.store.verify_ledger().unwrap().is_consistent());
    t.stop().await;
}
