//! A worker paused past its lease: the real `qwenedit serve` with two fake ComfyUI backends
//! and `queue.lease_ttl = "2s"`, stopped with SIGSTOP while a job is in flight on one backend,
//! left stopped past the lease, then resumed with SIGCONT.
//!
//! One process owns the stores, so "another worker" is the other backend's worker in the same
//! process; SIGSTOP pauses both. Two kinds of run alternate:
//! - `mid-run`: stopped while backend A's ComfyUI runs the prompt (it finishes during the stop).
//!   After SIGCONT it is a race: A's worker extends its expired lease first (nobody else holds
//!   it, so that is allowed) and finishes the job, or B's worker sweeps the expired lease and
//!   re-leases the job first, and A's `extend` or `complete` is refused.
//! - `mid-finish`: A's ComfyUI holds A's first `/view` (the output download, after `/history`
//!   said it succeeded), so A's worker is inside `finish` when the process stops. After SIGCONT,
//!   B re-leases the expired job (A is still waiting on its download), finds the finished run in
//!   A's history and delivers it; then the test lets A's download through and A's `complete` with
//!   the old lease must be refused. This forces the stale case on every such run.
//!
//! Every run checks: the job succeeded exactly once (attempts 1 when A kept it, 2 when it was
//! re-leased), ComfyUI ran the prompt once, the user got exactly one result message, the ledger
//! has one hold and one capture, `/api/v1/ledger/verify` is clean, and in the re-leased case the
//! log has the old holder's refusal. `QWENEDIT_SIGSTOP_RUNS` changes the number of runs (6).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::fake_comfy::{Behavior, FakeComfy};
use crate::support::rig::{
    Log, PRICE, Rig, WELCOME, confirm, ledger, result_photos, to_confirm_card,
};

const LEASE_TTL: Duration = Duration::from_secs(2);
/// How long the process stays stopped: past the lease, with a margin.
const STOPPED_FOR: Duration = Duration::from_millis(3_500);

/// The refusals a stale holder logs (`worker/runner.rs`, `worker/finish.rs`).
const LOST_ON_EXTEND: &str = "lost the lease";
const LOST_ON_COMPLETE: &str = "finished, but the lease was lost";

fn runs() -> usize {
    std::env::var("QWENEDIT_SIGSTOP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

#[derive(Debug, Default)]
struct Tally {
    kept: usize,
    re_leased: usize,
    refused_extend: usize,
    refused_complete: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_past_its_lease_cannot_complete_the_job_afterwards() {
    let lease = format!("lease_ttl = \"{}s\"", LEASE_TTL.as_secs());
    let rig = Rig::build(2, 1, &lease, "").await;
    let (tg, comfy) = (&rig.tg, rig.comfy.as_slice());
    // A run takes 4 steps of 200 ms: it ends while the process is stopped.
    for c in comfy {
        c.set_default(Behavior::Succeed {
            steps: 4,
            step_ms: 200,
        });
    }
    let mut daemon = rig.start(None);
    let pid = daemon.pid();
    let api = rig.api(&daemon);
    let mut log = Log::default();
    let mut tally = Tally::default();
    let started = Instant::now();
    let n = runs();
    for run in 0..n {
        let chat = 69_000_001 + run as i64;
        let mid_finish = run % 2 == 1;
        let before: Vec<usize> = comfy.iter().map(|c| c.prompts().len()).collect();
        let held_before: Vec<usize> = comfy.iter().map(FakeComfy::views_held).collect();
        for c in comfy {
            c.hold_next_views(usize::from(mid_finish));
        }
        let card = to_confirm_card(tg, chat).await;
        confirm(tg, chat, &card);
        // Backend A is whichever took the job.
        let a = if mid_finish {
            tokio::select! {
                _ = comfy[0].wait_views_held(held_before[0] + 1) => 0,
                _ = comfy[1].wait_views_held(held_before[1] + 1) => 1,
            }
        } else {
            tokio::select! {
                _ = comfy[0].wait_started(before[0] + 1) => 0,
                _ = comfy[1].wait_started(before[1] + 1) => 1,
            }
        };
        for c in comfy {
            c.hold_next_views(0);
        }
        signal(pid, "-STOP");
        // The point of the test is a real-time pause longer than the lease: nothing in the
        // stopped process can be waited on, so this waits on the clock (bounded, 3.5 s).
        tokio::time::sleep(STOPPED_FOR).await;
        signal(pid, "-CONT");

        // The job ends with its result in the chat.
        tg.wait_for_message(chat, |m| m.kind == "photo" || m.kind == "document")
            .await;
        let user = api.user(chat).await;
        let jobs = user["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{user}");
        let job = jobs[0]["id"].as_str().unwrap().to_string();
        assert_eq!(jobs[0]["state"], "succeeded", "{user}");
        let attempts = jobs[0]["attempts"].as_u64().unwrap();
        if mid_finish {
            // The old holder is still waiting for its download: let it through; its complete
            // must be refused.
            assert_eq!(attempts, 2, "re-leased while A was stuck: {user}");
            comfy[a].release_views();
        }
        tokio::task::block_in_place(|| log.drain(&daemon));
        match attempts {
            1 => {
                tally.kept += 1;
                assert_eq!(log.find(&job, &[LOST_ON_EXTEND, LOST_ON_COMPLETE]), None);
            }
            2 => {
                tally.re_leased += 1;
                let refusal = tokio::task::block_in_place(|| {
                    log.wait(&daemon, &job, &[LOST_ON_EXTEND, LOST_ON_COMPLETE])
                });
                if refusal == LOST_ON_EXTEND {
                    tally.refused_extend += 1;
                } else {
                    tally.refused_complete += 1;
                }
                if mid_finish {
                    assert_eq!(refusal, LOST_ON_COMPLETE);
                }
            }
            _ => panic!("{attempts} attempts: {user}"),
        }
        // ComfyUI ran it once: a re-lease reuses the finished run in A's history.
        let after: Vec<usize> = comfy.iter().map(|c| c.prompts().len()).collect();
        assert_eq!(after[a], before[a] + 1, "backend A ran it once");
        assert_eq!(after[1 - a], before[1 - a], "backend B never ran it");

        // Held once, captured once.
        let user = api.user(chat).await;
        let entries = ledger(&user);
        let mut want: BTreeMap<String, i64> = entries
            .iter()
            .filter(|(k, _)| k.starts_with("welcome"))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        want.insert(format!("hold:{job}"), -PRICE);
        want.insert(format!("capture:{job}"), 0);
        assert_eq!(entries, want, "charged once, captured once: {user}");
        assert_eq!(user["balance"], WELCOME - PRICE, "{user}");
        api.assert_ledger_consistent().await;
        assert_eq!(user["jobs"][0]["state"], "succeeded", "{user}");
    }
    let check = api.assert_ledger_consistent().await;
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert!(status.success(), "a clean stop: {status:?}");
    // After a clean stop nothing more can arrive: exactly one result message per user.
    for run in 0..n {
        let chat = 69_000_001 + run as i64;
        assert_eq!(
            result_photos(tg, chat),
            1,
            "run {run}: result messages:\n{}",
            tg.transcript(chat)
        );
    }
    eprintln!(
        "SIGSTOP past the lease: {n} runs in {:.1} s; kept by the stopped worker {}, re-leased \
         {} (stale extend refused {}, stale complete refused {}); ledger: {check}",
        started.elapsed().as_secs_f64(),
        tally.kept,
        tally.re_leased,
        tally.refused_extend,
        tally.refused_complete,
    );
    assert!(tally.refused_complete >= n / 2, "{tally:?}");
}
