//! Engine benchmarks against a fake ComfyUI on loopback:
//! - per-job overhead (upload check + hold + queue + upload + prompt + events + history +
//!   download + capture), minus ComfyUI's execution time, with a ComfyUI that executes
//!   instantly, for 1 MP and 12 MP JPEGs;
//! - the idle gap between consecutive jobs on one backend when ComfyUI takes 300 ms a job;
//! - the upload check alone for a 12 MP JPEG.
//!
//! Run: `cargo bench --bench engine`.

#[path = "../tests/it/support/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../tests/it/support/fake_comfy.rs"]
mod fake_comfy;
#[path = "../tests/it/support/multipart.rs"]
#[allow(dead_code)]
mod multipart;

use std::time::Instant;

mod support;

use app::TestApp;
use fake_comfy::{Behavior, FakeComfy};
use qwenedit::domain::JobId;
use qwenedit::media::{Limits, normalize};
use qwenedit::worker::JobEventKind;
use support::{jpeg, percentile};

async fn overhead(label: &str, photo: Vec<u8>, runs: usize) {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::Succeed {
        steps: 1,
        step_ms: 0,
    });
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 1_000_000);
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs + 3 {
        let start = Instant::now();
        let normalized = t.app.media.check(photo.clone(), 1_000_000).await.unwrap();
        let input = t.input(&normalized.png);
        let job: JobId = t.submit(user, vec![input], 1);
        match t.wait_done(job).await {
            JobEventKind::Succeeded { .. } => {}
            other => panic!("{other:?}"),
        }
        let total = start.elapsed().as_secs_f64() * 1000.0;
        // Minus ComfyUI's own execution time (the fake decodes the input and renders an output).
        let id = job.to_string();
        let comfy_ms = comfy
            .finished()
            .iter()
            .find(|(p, _, _)| *p == id)
            .map_or(0, |(_, start, end)| end - start) as f64;
        ms.push(total - comfy_ms);
    }
    let mut ms: Vec<f64> = ms.split_off(3); // warm-up
    ms.sort_by(f64::total_cmp);
    println!(
        "  {label:<28} p50 {:>7.1} ms   p99 {:>7.1} ms   ({} jobs)",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.len()
    );
    t.stop().await;
}

async fn idle_gap(jobs: usize) {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::Succeed {
        steps: 3,
        step_ms: 100,
    });
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let user = t.user(1, 1_000_000);
    let small = {
        let n = normalize(&jpeg(512, 512), &Limits::default(), 1_000_000).unwrap();
        n.png
    };
    let ids: Vec<JobId> = (0..jobs)
        .map(|_| t.submit(user, vec![t.input(&small)], 1))
        .collect();
    for id in &ids {
        t.wait_done(*id).await;
    }
    let runs = comfy.finished();
    let mut gaps: Vec<f64> = runs.windows(2).map(|w| (w[1].1 - w[0].2) as f64).collect();
    gaps.sort_by(f64::total_cmp);
    let busy: i64 = runs.iter().map(|r| r.2 - r.1).sum();
    let span = runs.last().unwrap().2 - runs.first().unwrap().1;
    println!(
        "  idle gap between jobs        median {:>5.1} ms   max {:>5.1} ms   backend busy {:.1}% ({jobs} jobs of 300 ms)",
        percentile(&gaps, 0.5),
        gaps.last().copied().unwrap_or(0.0),
        busy as f64 * 100.0 / span as f64
    );
    t.stop().await;
}

fn upload_check_12mp() {
    let photo = jpeg(4000, 3000);
    let limits = Limits::default();
    let mut ms = Vec::new();
    for _ in 0..8 {
        let start = Instant::now();
        let n = normalize(&photo, &limits, 2_000_000).unwrap();
        assert!(n.width * n.height <= 2_000_000);
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "  upload check, 12 MP JPEG → 2 MP PNG   median {:>6.1} ms   max {:>6.1} ms",
        percentile(&ms, 0.5),
        ms.last().unwrap()
    );
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("engine (fake ComfyUI on loopback):");
    upload_check_12mp();
    runtime.block_on(async {
        let runs = if quick { 5 } else { 100 };
        overhead("per-job overhead, 1 MP", jpeg(1200, 800), runs).await;
        overhead(
            "per-job overhead, 12 MP",
            jpeg(4000, 3000),
            if quick { 3 } else { 30 },
        )
        .await;
        idle_gap(if quick { 5 } else { 50 }).await;
    });
}
