//! Crash safety of the real process: clients stream top-ups, job submissions and cancels at
//! `qwenedit serve`, the daemon is SIGKILLed in the middle, restarted on the same data dir
//! (it reconciles on start), and every acknowledged request must be there exactly once while
//! replaying any request (acknowledged or not) changes nothing twice.
//!
//! The strict check after each restart, per user:
//! balance == (previous model) + (top-ups that committed) − (prices of jobs that exist and
//! still hold points), where "committed" is learned by replaying each top-up (a committed one
//! answers `duplicate: true`) and "exists" by `GET /jobs/{id}`. An acknowledged request must be
//! committed; an unacknowledged one may or may not be. `ledger/verify` must be consistent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use reqwest::Method;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::support::process::{Daemon, admin_token};

const LANES: usize = 4;

/// One request a client sends (and later replays verbatim).
#[derive(Clone, Debug)]
enum Req {
    Topup { user: i64, points: i64, key: String },
    Submit { user: i64, job: String, price: u32 },
    Cancel { job: String },
}

/// The admin API of one running daemon.
struct Api {
    base: String,
    token: String,
    http: Client,
}

impl Api {
    fn new(daemon: &Daemon, data_dir: &Path) -> Api {
        Api::at(&daemon.url(""), &admin_token(data_dir))
    }

    fn at(base: &str, token: &str) -> Api {
        Api {
            base: base.to_string(),
            token: token.to_string(),
            http: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// Status and JSON body; `Err` when no complete answer arrived (the daemon died).
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<(StatusCode, Value)> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send()?;
        let status = resp.status();
        Ok((status, resp.json::<Value>()?))
    }

    fn send(&self, req: &Req) -> reqwest::Result<(StatusCode, Value)> {
        match req {
            Req::Topup { user, points, key } => self.call(
                Method::POST,
                &format!("/api/v1/users/{user}/topup"),
                Some(&json!({
                    "points": points,
                    "create": true,
                    "idempotency_key": key,
                    "reason": "crash test",
                })),
            ),
            Req::Submit { user, job, price } => self.call(
                Method::POST,
                "/api/v1/jobs",
                Some(&json!({
                    "job_id": job,
                    "user": user,
                    "price": price,
                    "prompt": "make it blue",
                    "inputs": ["in.png"],
                    "seed": 7,
                })),
            ),
            Req::Cancel { job } => {
                self.call(Method::POST, &format!("/api/v1/jobs/{job}/cancel"), None)
            }
        }
    }

    /// Sends `req` to a live daemon and expects a 2xx answer.
    fn send_ok(&self, req: &Req) -> Value {
        let (status, body) = self.send(req).unwrap();
        assert!(status.is_success(), "{req:?} answered {status}: {body}");
        body
    }

    fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).unwrap()
    }

    fn balance(&self, user: i64) -> i64 {
        let (status, body) = self.get(&format!("/api/v1/users/{user}"));
        assert_eq!(status, StatusCode::OK, "user {user}: {body}");
        body["balance"].as_i64().unwrap()
    }

    fn balances(&self, users: &[i64]) -> BTreeMap<i64, i64> {
        users.iter().map(|&u| (u, self.balance(u))).collect()
    }

    /// The job's state, or `None` when the daemon does not know it.
    fn job_state(&self, job: &str) -> Option<(String, Value)> {
        let (status, body) = self.get(&format!("/api/v1/jobs/{job}"));
        match status {
            StatusCode::OK => Some((body["state"].as_str().unwrap().to_string(), body)),
            StatusCode::NOT_FOUND => {
                assert_eq!(body["code"], "unknown_job", "{body}");
                None
            }
            other => panic!("GET job {job}: {other} {body}"),
        }
    }

    fn assert_ledger_consistent(&self) -> Value {
        let (status, body) = self.get("/api/v1/ledger/verify");
        assert_eq!(status, StatusCode::OK, "{body}");
        for field in ["mismatches", "negative", "bad_keys"] {
            assert_eq!(body[field], json!([]), "ledger/verify {field}: {body}");
        }
        body
    }
}

/// What the clients of one round sent, and which requests got a 2xx answer.
struct Stream {
    results: Vec<(Req, bool)>,
    acked: usize,
}

impl Stream {
    fn unacked(&self) -> usize {
        self.results.len() - self.acked
    }
}

/// Runs one client thread per lane against `daemon` and SIGKILLs it from this thread after
/// `kill_after` acknowledgements, while the clients keep sending. Every answer that does
/// arrive must be a 2xx.
fn stream_and_kill(daemon: Daemon, token: &str, lanes: Vec<Vec<Req>>, kill_after: usize) -> Stream {
    let base = daemon.url("");
    let total: usize = lanes.iter().map(Vec::len).sum();
    assert!(kill_after < total);
    let (tx, rx) = mpsc::channel::<()>();
    let mut results = Vec::new();
    let mut seen = 0;
    std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                let tx = tx.clone();
                let api = Api::at(&base, token);
                s.spawn(move || {
                    lane.into_iter()
                        .map(|req| {
                            let acked = match api.send(&req) {
                                Ok((status, body)) => {
                                    assert!(
                                        status.is_success(),
                                        "{req:?} answered {status}: {body}"
                                    );
                                    let _ = tx.send(());
                                    true
                                }
                                Err(_) => false,
                            };
                            (req, acked)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        drop(tx);
        while seen < kill_after && rx.recv().is_ok() {
            seen += 1;
        }
        daemon.kill9();
        for h in handles {
            results.extend(h.join().unwrap());
        }
    });
    assert_eq!(seen, kill_after, "the clients finished before the kill");
    let acked = results.iter().filter(|(_, a)| *a).count();
    let stream = Stream { results, acked };
    assert!(
        stream.unacked() > 0,
        "the kill came after the last request: nothing was in flight"
    );
    stream
}

/// Expected balances of the requests known to be committed, and every request ever sent.
#[derive(Default)]
struct Model {
    balance: BTreeMap<i64, i64>,
    /// Every request sent so far, each known to be committed by now (after the replays).
    sent: Vec<Req>,
    /// job id → (user, price)
    jobs: BTreeMap<String, (i64, u32)>,
    /// Jobs cancelled (their points came back).
    cancelled: BTreeSet<String>,
    topup_keys: BTreeMap<String, (i64, i64)>,
}

impl Model {
    fn users(&self) -> Vec<i64> {
        self.balance.keys().copied().collect()
    }

    /// Records a request that is committed now.
    fn apply(&mut self, req: &Req) {
        match req {
            Req::Topup { user, points, key } => {
                *self.balance.entry(*user).or_default() += points;
                self.topup_keys.insert(key.clone(), (*user, *points));
            }
            Req::Submit { user, job, price } => {
                *self.balance.entry(*user).or_default() -= i64::from(*price);
                self.jobs.insert(job.clone(), (*user, *price));
            }
            Req::Cancel { job } => {
                let (user, price) = self.jobs[job];
                if self.cancelled.insert(job.clone()) {
                    *self.balance.get_mut(&user).unwrap() += i64::from(price);
                }
            }
        }
        self.sent.push(req.clone());
    }

    /// Checks balances, the ledger's integrity and the newest ledger entries of each user
    /// (every entry is one this model knows, with the right amount, and no key twice).
    fn check(&self, api: &Api) {
        api.assert_ledger_consistent();
        assert_eq!(api.balances(&self.users()), self.balance, "balances");
        for user in self.users() {
            let (_, body) = api.get(&format!("/api/v1/users/{user}"));
            let mut keys = BTreeSet::new();
            for e in body["ledger"].as_array().unwrap() {
                let key = e["key"].as_str().unwrap();
                assert!(keys.insert(key.to_string()), "key {key} twice: {body}");
                let delta = e["delta"].as_i64().unwrap();
                let expected = if let Some(k) = key.strip_prefix("topup:") {
                    let (u, points) = self.topup_keys[k];
                    assert_eq!(u, user, "{e}");
                    points
                } else if let Some(j) = key.strip_prefix("hold:") {
                    -i64::from(self.jobs[j].1)
                } else if let Some(j) = key.strip_prefix("release:") {
                    assert!(self.cancelled.contains(j), "release of a live job: {e}");
                    i64::from(self.jobs[j].1)
                } else {
                    panic!("unexpected ledger entry {e}");
                };
                assert_eq!(delta, expected, "{e}");
            }
        }
    }

    /// Replays every top-up and submission ever sent (resubmitting cancelled jobs too): all
    /// are duplicates now, no job changes state and no balance moves. (Repeated cancels are
    /// `replay_cancels`.)
    fn replay_all(&self, api: &Api) {
        for req in &self.sent {
            if let Req::Topup { .. } | Req::Submit { .. } = req {
                let body = api.send_ok(req);
                assert_eq!(body["duplicate"], true, "{req:?}: {body}");
            }
        }
        for (job, (user, price)) in &self.jobs {
            let (state, body) = api.job_state(job).expect("a committed job exists");
            let want = if self.cancelled.contains(job) {
                "cancelled"
            } else {
                "queued"
            };
            assert_eq!(state, want, "{body}");
            assert_eq!(body["user"], *user, "{body}");
            assert_eq!(body["price"], *price, "{body}");
        }
        self.check(api);
    }

    /// Replays every cancel ever sent: each job is cancelled already, so each answers 409
    /// `not_cancellable` and refunds nothing a second time.
    fn replay_cancels(&self, api: &Api) {
        for req in &self.sent {
            let Req::Cancel { job } = req else { continue };
            let (status, body) = api.send(req).unwrap_or_else(|e| {
                panic!(
                    "repeating the cancel of the already cancelled job {job} got no answer \
                     (the daemon hangs): {e}"
                )
            });
            assert_eq!(status, StatusCode::CONFLICT, "{req:?}: {body}");
            assert_eq!(body["code"], "not_cancellable", "{body}");
            let (state, _) = api.job_state(job).unwrap();
            assert_eq!(state, "cancelled");
        }
        self.check(api);
    }
}

/// After a restart: which top-ups of `stream` had committed before it, learned by replaying
/// them (a committed one answers `duplicate: true`). Acknowledged ones must have. Applies every
/// top-up to the model and checks that the replay moved each balance by exactly the top-ups
/// that had not committed. Returns the committed points per user and how many unacknowledged
/// top-ups had committed anyway.
fn replay_topups(
    api: &Api,
    stream: &Stream,
    users: &[i64],
    model: &mut Model,
) -> (BTreeMap<i64, i64>, usize) {
    let before = api.balances(users);
    let mut committed: BTreeMap<i64, i64> = users.iter().map(|&u| (u, 0)).collect();
    let mut uncommitted: BTreeMap<i64, i64> = users.iter().map(|&u| (u, 0)).collect();
    let mut late = 0;
    for (req, acked) in &stream.results {
        let Req::Topup { user, points, .. } = req else {
            continue;
        };
        let body = api.send_ok(req);
        let was_committed = body["duplicate"].as_bool().unwrap();
        if *acked {
            assert!(was_committed, "acknowledged {req:?} was lost: {body}");
        } else if was_committed {
            late += 1;
        }
        if was_committed {
            *committed.get_mut(user).unwrap() += points;
        } else {
            *uncommitted.get_mut(user).unwrap() += points;
        }
        model.apply(req);
    }
    let after = api.balances(users);
    for user in users {
        assert_eq!(
            after[user],
            before[user] + uncommitted[user],
            "replaying top-ups moved user {user}'s balance by more than the new ones"
        );
    }
    (committed, late)
}

fn users(base: i64, n: i64) -> Vec<i64> {
    (0..n).map(|i| base + i).collect()
}

/// Creates the users with a first top-up (`create: true`) and records it in the model.
fn create_users(api: &Api, users: &[i64], points: i64, model: &mut Model) {
    for &user in users {
        let req = Req::Topup {
            user,
            points,
            key: format!("init-{user}"),
        };
        let body = api.send_ok(&req);
        assert_eq!(body["created_user"], true, "{body}");
        assert_eq!(body["duplicate"], false, "{body}");
        model.apply(&req);
    }
}

fn new_job() -> String {
    qwenedit::domain::JobId::new().to_string()
}

#[test]
fn nothing_acknowledged_is_lost_or_doubled_across_sigkill() {
    const ROUNDS: usize = 3;
    const PER_LANE: usize = 60;
    const KILL_AFTER: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    let config = crate::support::write_config(tmp.path(), "127.0.0.1:0", "");
    let data = tmp.path().join("data");
    let users = users(7_000_001, 4);
    let mut model = Model::default();

    let mut daemon = Daemon::start(&config);
    let token = admin_token(&data);
    create_users(&Api::new(&daemon, &data), &users, 1_000_000, &mut model);

    let (mut sent, mut acked, mut late_topups, mut late_jobs, mut lost_jobs) = (0, 0, 0, 0, 0);
    for round in 0..ROUNDS {
        let lanes: Vec<Vec<Req>> = (0..LANES)
            .map(|t| {
                (0..PER_LANE)
                    .map(|i| {
                        let user = users[(t + i) % users.len()];
                        if (t + i) % 2 == 0 {
                            Req::Topup {
                                user,
                                points: 1 + ((t * 31 + i * 7) % 50) as i64,
                                key: format!("r{round}-t{t}-i{i}"),
                            }
                        } else {
                            Req::Submit {
                                user,
                                job: new_job(),
                                price: 10 + (i % 7) as u32,
                            }
                        }
                    })
                    .collect()
            })
            .collect();
        let stream = stream_and_kill(daemon, &token, lanes, KILL_AFTER);
        sent += stream.results.len();
        acked += stream.acked;

        daemon = Daemon::start(&config);
        let api = Api::new(&daemon, &data);
        api.assert_ledger_consistent();
        let before = api.balances(&users);

        // Which jobs exist after the restart: every acknowledged one, queued, once.
        let mut exists = BTreeSet::new();
        for (req, was_acked) in &stream.results {
            let Req::Submit { user, job, price } = req else {
                continue;
            };
            match api.job_state(job) {
                Some((state, body)) => {
                    assert_eq!(state, "queued", "{body}");
                    assert_eq!(body["user"], *user, "{body}");
                    assert_eq!(body["price"], *price, "{body}");
                    if !was_acked {
                        late_jobs += 1;
                    }
                    exists.insert(job.clone());
                }
                None => {
                    assert!(!was_acked, "acknowledged {req:?} was lost");
                    lost_jobs += 1;
                }
            }
        }

        // The strict balance check: committed top-ups in, existing jobs' prices out, nothing
        // held for a job that does not exist.
        let mut expected = model.balance.clone();
        for (req, _) in &stream.results {
            if let Req::Submit { user, job, price } = req
                && exists.contains(job)
            {
                *expected.get_mut(user).unwrap() -= i64::from(*price);
            }
        }
        let (committed, late) = replay_topups(&api, &stream, &users, &mut model);
        late_topups += late;
        for user in &users {
            assert_eq!(
                before[user],
                expected[user] + committed[user],
                "round {round}: user {user}'s balance after the restart"
            );
        }

        // Replaying the submissions: the existing ones are duplicates, the others new now.
        for (req, _) in &stream.results {
            let Req::Submit { job, .. } = req else {
                continue;
            };
            let body = api.send_ok(req);
            assert_eq!(
                body["duplicate"],
                exists.contains(job),
                "replayed {req:?}: {body}"
            );
            model.apply(req);
        }
        model.check(&api);
        // And now everything ever sent, again: pure duplicates.
        model.replay_all(&api);
        eprintln!(
            "round {round}: sent {} acknowledged {} unacknowledged {} (killed after {KILL_AFTER} acks)",
            stream.results.len(),
            stream.acked,
            stream.unacked()
        );
    }
    eprintln!(
        "{ROUNDS} SIGKILLs: {sent} requests sent, {acked} acknowledged; unacknowledged but \
         committed: {late_topups} top-ups, {late_jobs} jobs; {lost_jobs} unacknowledged jobs \
         never committed"
    );
    daemon.terminate();
}

#[test]
fn cancelled_jobs_are_refunded_exactly_once_across_sigkill() {
    const ROUNDS: usize = 2;
    const JOBS_PER_ROUND: usize = 40;
    const KILL_AFTER: usize = 30;
    let tmp = tempfile::tempdir().unwrap();
    let config = crate::support::write_config(tmp.path(), "127.0.0.1:0", "");
    let data = tmp.path().join("data");
    let users = users(8_000_001, 4);
    let mut model = Model::default();

    let mut daemon = Daemon::start(&config);
    let token = admin_token(&data);
    let api = Api::new(&daemon, &data);
    create_users(&api, &users, 100_000, &mut model);
    let mut jobs = Vec::new();
    for i in 0..ROUNDS * JOBS_PER_ROUND + 10 {
        let req = Req::Submit {
            user: users[i % users.len()],
            job: new_job(),
            price: 20 + (i % 9) as u32,
        };
        let body = api.send_ok(&req);
        assert_eq!(body["duplicate"], false, "{body}");
        let Req::Submit { job, .. } = &req else {
            unreachable!()
        };
        jobs.push(job.clone());
        model.apply(&req);
    }
    model.check(&api);
    drop(api);

    let (mut sent, mut acked, mut late_cancels) = (0, 0, 0);
    for round in 0..ROUNDS {
        let targets = &jobs[round * JOBS_PER_ROUND..(round + 1) * JOBS_PER_ROUND];
        // Each lane cancels its share of the round's jobs, with top-ups in between.
        let lanes: Vec<Vec<Req>> = (0..LANES)
            .map(|t| {
                targets
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % LANES == t)
                    .flat_map(|(i, job)| {
                        [
                            Req::Cancel { job: job.clone() },
                            Req::Topup {
                                user: users[(t + i) % users.len()],
                                points: 1 + (i % 13) as i64,
                                key: format!("c{round}-t{t}-i{i}"),
                            },
                        ]
                    })
                    .collect()
            })
            .collect();
        let stream = stream_and_kill(daemon, &token, lanes, KILL_AFTER);
        sent += stream.results.len();
        acked += stream.acked;

        daemon = Daemon::start(&config);
        let api = Api::new(&daemon, &data);
        api.assert_ledger_consistent();
        let before = api.balances(&users);

        // Acknowledged cancels stuck; the others may or may not have.
        let mut cancelled_now = BTreeSet::new();
        for (req, was_acked) in &stream.results {
            let Req::Cancel { job } = req else { continue };
            let (state, body) = api.job_state(job).expect("the job exists");
            if *was_acked {
                assert_eq!(state, "cancelled", "acknowledged {req:?} was lost: {body}");
            } else {
                assert!(state == "cancelled" || state == "queued", "{body}");
            }
            if state == "cancelled" {
                if !was_acked {
                    late_cancels += 1;
                }
                cancelled_now.insert(job.clone());
            }
        }
        // Every other job is untouched.
        for job in &jobs {
            if targets.contains(job) {
                continue;
            }
            let (state, body) = api.job_state(job).unwrap();
            let want = if model.cancelled.contains(job) {
                "cancelled"
            } else {
                "queued"
            };
            assert_eq!(state, want, "{body}");
        }

        // The strict check: refunds of the cancelled jobs came back exactly once.
        let mut expected = model.balance.clone();
        for job in &cancelled_now {
            let (user, price) = model.jobs[job];
            *expected.get_mut(&user).unwrap() += i64::from(price);
        }
        let (committed, _) = replay_topups(&api, &stream, &users, &mut model);
        for user in &users {
            assert_eq!(
                before[user],
                expected[user] + committed[user],
                "round {round}: user {user}'s balance after the restart"
            );
        }

        // Replaying the cancels that had not committed: they refund now, once. (Repeating
        // the committed ones is checked at the end: `replay_cancels`.)
        for (req, _) in &stream.results {
            let Req::Cancel { job } = req else { continue };
            if !cancelled_now.contains(job) {
                let user = model.jobs[job].0;
                let price = model.jobs[job].1;
                let balance = api.balance(user);
                let (status, body) = api.send(req).unwrap();
                assert_eq!(status, StatusCode::OK, "{req:?}: {body}");
                assert_eq!(body["state"], "cancelled", "{body}");
                assert_eq!(api.balance(user), balance + i64::from(price));
            }
            model.apply(req);
        }
        model.check(&api);
        // Everything again, including resubmitting the cancelled jobs: no-ops.
        model.replay_all(&api);
        eprintln!(
            "cancel round {round}: sent {} acknowledged {} unacknowledged {} \
             (cancels committed without an answer: {})",
            stream.results.len(),
            stream.acked,
            stream.unacked(),
            cancelled_now.len()
                - stream
                    .results
                    .iter()
                    .filter(|(r, a)| *a && matches!(r, Req::Cancel { .. }))
                    .count()
        );
    }
    // Every targeted job is refunded once; the rest still hold their price.
    let still_queued: i64 = jobs[ROUNDS * JOBS_PER_ROUND..]
        .iter()
        .map(|j| i64::from(model.jobs[j].1))
        .sum();
    let topups: i64 = model.topup_keys.values().map(|(_, p)| p).sum();
    let api = Api::new(&daemon, &data);
    let total: i64 = api.balances(&users).values().sum();
    assert_eq!(total, topups - still_queued);
    eprintln!(
        "{ROUNDS} SIGKILLs: {sent} requests sent, {acked} acknowledged, {late_cancels} \
         unacknowledged cancels had committed"
    );
    // Last, every cancel again (acknowledged or not): all no-ops.
    model.replay_cancels(&api);
    daemon.terminate();
}
