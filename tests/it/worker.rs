//! The workers against fake ComfyUIs: the real app in-process, real stores, real sockets.

use std::time::Duration;

use qwenedit::app::Clock;
use qwenedit::comfy::{ComfyClient, Patch};
use qwenedit::domain::{JobId, JobState};
use qwenedit::worker::JobEventKind;

use crate::support::app::{TestApp, png};
use crate::support::fake_comfy::{Behavior, FakeComfy};

fn succeeded(k: &JobEventKind) -> bool {
    matches!(k, JobEventKind::Succeeded { .. })
}

fn assert_consistent(t: &TestApp) {
    let check = t.app.store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_through_comfyui_and_its_points_are_captured() {
    let comfy = FakeComfy::start().await;
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let input = t.input(&png(80, 60));
    let job = t.submit(user, vec![input], 30);
    assert_eq!(t.balance(user), 70, "held at submit");

    let outputs = match t.wait_done(job).await {
        JobEventKind::Succeeded { outputs } => outputs,
        other => panic!("{other:?}"),
    };
    assert_eq!(outputs, vec![format!("results/{job}/0.png")]);
    let bytes = qwenedit::files::read(&t.app.config.storage.data_dir, &outputs[0]).unwrap();
    assert!(image::load_from_memory(&bytes).is_ok());
    assert_eq!(t.balance(user), 70, "captured, not released");
    let record = t.app.queue.get(job).unwrap().unwrap();
    assert_eq!(record.state(), JobState::Succeeded);
    assert_eq!(record.attempts, 1);

    // ComfyUI saw our job id as prompt id and a name we generated, never the user's.
    let prompts = comfy.prompts();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].id, job.to_string());
    assert!(prompts[0].client_id.is_some());
    let graph = prompts[0].graph.to_string();
    assert!(graph.contains(&format!("qwenedit/{job}-1.png")), "{graph}");
    assert!(graph.contains("make the sky purple"));
    assert_consistent(&t);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_job_is_queued_in_comfyui_before_the_current_one_finishes() {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::Succeed {
        steps: 4,
        step_ms: 300,
    });
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let a = t.submit(user, vec![t.input(&png(32, 32))], 10);
    let b = t.submit(user, vec![t.input(&png(32, 32))], 10);
    t.wait_for(b, |k| matches!(k, JobEventKind::Submitted { .. }))
        .await;
    assert_eq!(
        comfy.finished().len(),
        0,
        "submitted while the first still runs"
    );
    // While the first runs, the second is already in ComfyUI's queue.
    let seen: Vec<String> = comfy.prompts().iter().map(|p| p.id.clone()).collect();
    assert_eq!(seen, vec![a.to_string(), b.to_string()]);
    assert!(t.wait_done(a).await.is_succeeded());
    assert!(t.wait_done(b).await.is_succeeded());
    // ComfyUI picked the second up at once.
    let runs = comfy.finished();
    assert_eq!(runs.len(), 2);
    assert!(runs[1].1 - runs[0].2 < 100, "idle gap {runs:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_published_from_sampler_steps() {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::Succeed {
        steps: 4,
        step_ms: 20,
    });
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 10);
    t.wait_for(job, |k| matches!(k, JobEventKind::Started { .. }))
        .await;
    let p = t
        .wait_for(
            job,
            |k| matches!(k, JobEventKind::Progress { percent } if *percent >= 50),
        )
        .await;
    assert!(matches!(
        p,
        JobEventKind::Progress {
            percent: 50 | 75 | 100
        }
    ));
    assert!(t.wait_done(job).await.is_succeeded());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_error_is_retried_and_then_succeeds() {
    let comfy = FakeComfy::start().await;
    comfy.script(Behavior::ExecutionError);
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
    t.wait_for(job, |k| matches!(k, JobEventKind::Retrying { .. }))
        .await;
    assert!(t.wait_done(job).await.is_succeeded());
    let r = t.app.queue.get(job).unwrap().unwrap();
    assert_eq!(r.attempts, 2);
    assert_eq!(t.balance(user), 70);
    assert_consistent(&t);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_ends_failed_with_its_points_released() {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::ExecutionError);
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
    let done = t.wait_done(job).await;
    let JobEventKind::Failed { reason } = done else {
        panic!("{done:?}")
    };
    assert!(
        reason.contains("SafetensorError") || reason.contains("UnidentifiedImageError"),
        "{reason}"
    );
    let r = t.app.queue.get(job).unwrap().unwrap();
    assert_eq!(r.state(), JobState::DeadLettered);
    assert_eq!(r.attempts, 3);
    assert_eq!(t.balance(user), 100, "released");
    assert_consistent(&t);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_workflow_fails_at_once_and_releases_the_points() {
    let comfy = FakeComfy::start().await;
    comfy.script(Behavior::NodeErrors);
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
    assert!(matches!(
        t.wait_done(job).await,
        JobEventKind::Failed { .. }
    ));
    let r = t.app.queue.get(job).unwrap().unwrap();
    assert_eq!(r.state(), JobState::Failed);
    assert_eq!(r.attempts, 1, "a rejected graph is not retried");
    assert_eq!(t.balance(user), 100);
    // The valid part of the graph was not left to run: removed from the queue, or interrupted
    // if ComfyUI had already started it.
    let id = job.to_string();
    assert!(comfy.deleted().contains(&id) || comfy.interrupts().contains(&Some(id)));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_run_is_interrupted_at_the_timeout_and_retried() {
    let comfy = FakeComfy::start().await;
    comfy.script(Behavior::Hang);
    let clock = Clock::manual(1_700_000_000_000);
    let mut t = TestApp::start_with_clock(&[comfy.url()], "", clock.clone()).await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
    t.wait_for(job, |k| matches!(k, JobEventKind::Started { .. }))
        .await;
    // The job timeout (30 s in the test config) passes on the app's clock.
    clock.advance_ms(31_000);
    t.wait_for(job, |k| matches!(k, JobEventKind::Retrying { .. }))
        .await;
    assert!(comfy.interrupts().contains(&Some(job.to_string())));
    // The retry's backoff passes too.
    clock.advance_ms(1_000);
    assert!(t.wait_done(job).await.is_succeeded());
    assert_eq!(t.app.queue.get(job).unwrap().unwrap().attempts, 2);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_is_recovered_through_history() {
    let comfy = FakeComfy::start().await;
    comfy.script(Behavior::DropSocketsAfterStep(2));
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let job = t.submit(user, vec![t.input(&png(32, 32))], 30);
    assert!(t.wait_done(job).await.is_succeeded());
    assert_eq!(comfy.prompts().len(), 1, "not submitted twice");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_history_and_missing_outputs_are_handled() {
    let comfy = FakeComfy::start().await;
    comfy.script(Behavior::SlowHistory { ms: 300 });
    comfy.script(Behavior::MissingOutput);
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 100);
    let a = t.submit(user, vec![t.input(&png(32, 32))], 10);
    assert!(t.wait_done(a).await.is_succeeded());
    assert_eq!(
        comfy.prompts().len(),
        1,
        "a late history is waited for, not run again"
    );
    let b = t.submit(user, vec![t.input(&png(32, 32))], 10);
    // The output is missing once: retried, then delivered.
    t.wait_for(b, |k| matches!(k, JobEventKind::Retrying { .. }))
        .await;
    assert!(t.wait_done(b).await.is_succeeded());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_a_finished_run_is_reused_not_run_again() {
    let comfy = FakeComfy::start().await;
    let nowhere: reqwest::Url = "http://127.0.0.1:9".parse().unwrap();
    let t = TestApp::start(&[nowhere], "").await;
    let user = t.user(1, 100);
    let input = t.input(&png(32, 32));
    let job = t.submit(user, vec![input.clone()], 30);
    // The "crashed" process had leased it and run it in ComfyUI.
    let lease = t
        .app
        .queue
        .lease_next("old", t.app.now_ms(), Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert_eq!(lease.id(), job);
    let client = ComfyClient::new(comfy.url(), Duration::from_secs(10));
    let bytes = qwenedit::files::read(&t.app.config.storage.data_dir, &input).unwrap();
    let name = client
        .upload_image(bytes, &format!("{job}-1.png"), "qwenedit")
        .await
        .unwrap();
    let wf = t.app.workflows.get("qwen-image-edit-2511").unwrap();
    let graph = wf
        .patch(&Patch {
            images: vec![name],
            prompt: Some("x".into()),
            seed: 1,
            output_prefix: format!("qwenedit/{job}"),
            ..Patch::default()
        })
        .unwrap();
    client
        .queue_prompt(&graph, &job.to_string(), "old-client")
        .await
        .unwrap();
    comfy.wait_finished(1).await;
    let config = t.dir.path().join("config.toml");
    let dir = t.stop().await;

    // Restart, now with the backend configured.
    let text = crate::support::app::config_text(&[comfy.url()], "");
    std::fs::write(&config, text).unwrap();
    let mut t = TestApp::start_in(dir, &config, Clock::System).await;
    assert!(t.wait_done(job).await.is_succeeded());
    assert_eq!(
        comfy.prompts().len(),
        1,
        "reused from /history, not run again"
    );
    assert_eq!(t.balance(user), 70, "charged once");
    assert_consistent(&t);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_share_the_queue() {
    let a = FakeComfy::start().await;
    let b = FakeComfy::start().await;
    a.set_default(Behavior::Succeed {
        steps: 2,
        step_ms: 30,
    });
    b.set_default(Behavior::Succeed {
        steps: 2,
        step_ms: 30,
    });
    let mut t = TestApp::start(&[a.url(), b.url()], "").await;
    let user = t.user(1, 1_000);
    let jobs: Vec<JobId> = (0..8)
        .map(|_| t.submit(user, vec![t.input(&png(16, 16))], 10))
        .collect();
    for job in &jobs {
        assert!(t.wait_done(*job).await.is_succeeded());
    }
    assert!(
        !a.prompts().is_empty() && !b.prompts().is_empty(),
        "both worked"
    );
    assert_eq!(
        a.prompts().len() + b.prompts().len(),
        8,
        "each job ran once"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_move_to_a_healthy_backend_and_a_recovered_one_works_again() {
    let a = FakeComfy::start().await;
    let b = FakeComfy::start().await;
    a.set_down(true);
    let mut t = TestApp::start(&[a.url(), b.url()], "").await;
    let user = t.user(1, 1_000);
    let first = t.submit(user, vec![t.input(&png(16, 16))], 10);
    assert!(t.wait_done(first).await.is_succeeded());
    assert!(a.prompts().is_empty() && b.prompts().len() == 1);
    let health = &t.app.backends.all()[0].health();
    assert!(!health.up && health.last_error.is_some());

    // Now the other way round.
    b.set_down(true);
    a.set_down(false);
    let second = t.submit(user, vec![t.input(&png(16, 16))], 10);
    assert!(t.wait_done(second).await.is_succeeded());
    assert_eq!(a.prompts().len(), 1);
    assert_eq!(
        t.app.queue.get(second).unwrap().unwrap().attempts,
        1,
        "no attempt spent on the dead backend"
    );
    t.stop().await;
}

trait Done {
    fn is_succeeded(&self) -> bool;
}

impl Done for JobEventKind {
    fn is_succeeded(&self) -> bool {
        succeeded(self)
    }
}
