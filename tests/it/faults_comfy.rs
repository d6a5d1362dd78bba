//! ComfyUI faults the worker tests do not cover yet (issue #8, "Faults"): a 500 on `/prompt`
//! through the worker, and the only backend down when a job is submitted. The others (node
//! errors, execution errors, dropped sockets, hangs, slow history, missing outputs, one of two
//! backends failing) are in `worker.rs`.

use qwenedit::domain::JobState;
use qwenedit::worker::JobEventKind;

use crate::support::app::{TestApp, png};
use crate::support::fake_comfy::{Behavior, FakeComfy};

fn assert_consistent(t: &TestApp) {
    let check = t.app.store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert!(
        t.app.store.open_holds().unwrap().is_empty(),
        "no hold left open"
    );
}

/// One 500 from `/prompt`: the job is tried again and succeeds; its points are captured once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfy_a_500_on_prompt_is_retried_and_then_succeeds() {
    let comfy = FakeComfy::start().await;
    comfy.script(Behavior::Http500);
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
    let done = t.wait_done(job).await;
    assert!(matches!(done, JobEventKind::Succeeded { .. }), "{done:?}");
    assert_eq!(
        comfy.prompts().len(),
        1,
        "one prompt was queued, after the 500"
    );
    assert_eq!(t.balance(user), 70);
    assert_consistent(&t);
    t.stop().await;
}

/// `/prompt` answering 500 every time: the job ends (not stuck queued or leased), failed, with
/// its points released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfy_a_500_on_every_prompt_ends_failed_with_points_released() {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::Http500);
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
    let done = t.wait_done(job).await;
    let JobEventKind::Failed { reason } = done else {
        panic!("{done:?}")
    };
    assert!(!reason.is_empty());
    let r = t.app.queue.get(job).unwrap().unwrap();
    assert!(r.state().is_terminal(), "{:?}", r.state());
    assert_ne!(r.state(), JobState::Succeeded);
    assert_eq!(t.balance(user), 100, "released");
    assert_consistent(&t);
    t.stop().await;
}

/// The only backend is down when the job is submitted: the job waits queued (no attempt
/// spent, nothing failed), and runs once the backend is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfy_down_at_submit_then_back_runs_the_job() {
    let comfy = FakeComfy::start().await;
    comfy.set_down(true);
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
    // Wait until the worker has probed the backend and found it down.
    let mut health = t.app.backends.all()[0].watch_health();
    let probed = health.wait_for(|h| !h.up && h.last_error.is_some());
    tokio::time::timeout(std::time::Duration::from_secs(20), probed)
        .await
        .expect("never probed")
        .expect("the backend is still there");
    let r = t.app.queue.get(job).unwrap().unwrap();
    assert_eq!(r.state(), JobState::Queued);
    assert_eq!(t.balance(user), 70, "held while it waits");
    comfy.set_down(false);
    let done = t.wait_done(job).await;
    assert!(matches!(done, JobEventKind::Succeeded { .. }), "{done:?}");
    let r = t.app.queue.get(job).unwrap().unwrap();
    assert_eq!(r.attempts, 1, "no attempt spent on the dead backend");
    assert_eq!(comfy.prompts().len(), 1);
    assert_consistent(&t);
    t.stop().await;
}
