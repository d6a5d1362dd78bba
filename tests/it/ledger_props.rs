//! The points ledger against a reference model: random sequences of registrations, top-ups with
//! reused idempotency keys, holds, captures, releases, cleared intents and store reopens, with
//! every balance, the ledger, the open holds and the intents compared to the model after each
//! step. Plus a few plain tests for a race between two holds, a zero-amount hold and an unknown
//! user.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};

use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use qwenedit::domain::{JobId, Reason, UserId};
use qwenedit::store::{
    Credit, HoldOutcome, HoldRecord, HoldState, NewUser, Posted, SettleOutcome, Store, StoreError,
};
use tempfile::TempDir;

/// Users, top-up keys and jobs come from small pools so that repeats are common.
const USERS: u8 = 3;
const KEYS: u8 = 4;
const JOBS: u8 = 5;

fn user_id(u: u8) -> UserId {
    UserId::new(7_000 + i64::from(u))
}

fn job_id(j: u8) -> JobId {
    JobId::from_u128((1u128 << 80) + u128::from(j))
}

fn topup_key(k: u8) -> String {
    format!("topup:k{k}")
}

fn intent_of(j: u8) -> Vec<u8> {
    vec![b'i', j]
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        user: u8,
        welcome: u32,
    },
    Topup {
        user: u8,
        key: u8,
        points: u32,
    },
    Hold {
        job: u8,
        user: u8,
        amount: u32,
    },
    Capture {
        job: u8,
    },
    Release {
        job: u8,
    },
    ClearIntent {
        job: u8,
    },
    /// Drop the store and open the same directory again.
    Reopen,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelEntry {
    user: u8,
    delta: i64,
    reason: Reason,
    key: String,
    job: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ModelHold {
    user: u8,
    amount: u32,
    state: HoldState,
}

#[derive(Clone, Debug, Default)]
struct Model {
    /// Registered users and their balances.
    users: BTreeMap<u8, i64>,
    /// Every ledger entry; entry ids are `index + 1`.
    ledger: Vec<ModelEntry>,
    holds: BTreeMap<u8, ModelHold>,
    intents: BTreeSet<u8>,
}

impl Model {
    fn balance(&self, user: u8) -> i64 {
        self.users.get(&user).copied().unwrap_or(0)
    }

    fn entry_of_key(&self, key: &str) -> Option<u64> {
        self.ledger
            .iter()
            .position(|e| e.key == key)
            .map(|i| i as u64 + 1)
    }

    /// Appends an entry and moves the balance; returns what the store's `post` reports.
    fn post(
        &mut self,
        user: u8,
        delta: i64,
        reason: Reason,
        key: String,
        job: Option<u8>,
    ) -> Posted {
        let balance = self
            .users
            .get_mut(&user)
            .expect("posting to a registered user");
        *balance += delta;
        assert!(*balance >= 0, "the model never goes negative");
        let balance = *balance;
        self.ledger.push(ModelEntry {
            user,
            delta,
            reason,
            key,
            job,
        });
        Posted::Applied {
            entry_id: self.ledger.len() as u64,
            balance,
        }
    }
}

/// What an operation answered, normalised so the store's answer and the model's compare.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Registered {
        created: bool,
        welcome: Option<Posted>,
    },
    Posted(Posted),
    Held {
        balance: i64,
    },
    AlreadyHeld(ModelHold),
    Settled(ModelHold),
    AlreadySettled(ModelHold),
    Done,
    UnknownUser(UserId),
    InsufficientPoints {
        need: u32,
        have: i64,
    },
    NoHold(JobId),
    KeyConflict(String),
    HoldSettled {
        job: JobId,
        state: HoldState,
    },
}

/// Applies `op` to the model: the next model and the answer the store must give.
#[allow(clippy::map_entry)] // the branches differ in more than the insert
fn step(model: &Model, op: &Op) -> (Model, Outcome) {
    let mut m = model.clone();
    let out = match *op {
        Op::Register { user, welcome } => {
            if m.users.contains_key(&user) {
                Outcome::Registered {
                    created: false,
                    welcome: None,
                }
            } else {
                m.users.insert(user, 0);
                let welcome = (welcome > 0).then(|| {
                    m.post(
                        user,
                        i64::from(welcome),
                        Reason::Welcome,
                        format!("welcome:{}", user_id(user)),
                        None,
                    )
                });
                Outcome::Registered {
                    created: true,
                    welcome,
                }
            }
        }
        Op::Topup { user, key, points } => {
            let key = topup_key(key);
            if let Some(entry_id) = m.entry_of_key(&key) {
                // A used key changes nothing when it asks for the same change; reusing it for
                // another user or amount is a conflict.
                let e = &m.ledger[entry_id as usize - 1];
                if e.user == user && e.delta == i64::from(points) {
                    Outcome::Posted(Posted::Duplicate {
                        entry_id,
                        balance: m.balance(user),
                    })
                } else {
                    Outcome::KeyConflict(key)
                }
            } else if !m.users.contains_key(&user) {
                Outcome::UnknownUser(user_id(user))
            } else {
                Outcome::Posted(m.post(user, i64::from(points), Reason::Topup, key, None))
            }
        }
        Op::Hold { job, user, amount } => {
            if let Some(h) = m.holds.get(&job) {
                Outcome::AlreadyHeld(*h)
            } else if !m.users.contains_key(&user) {
                Outcome::UnknownUser(user_id(user))
            } else if i64::from(amount) > m.balance(user) {
                Outcome::InsufficientPoints {
                    need: amount,
                    have: m.balance(user),
                }
            } else {
                if amount > 0 {
                    m.post(
                        user,
                        -i64::from(amount),
                        Reason::Hold,
                        format!("hold:{}", job_id(job)),
                        Some(job),
                    );
                }
                m.holds.insert(
                    job,
                    ModelHold {
                        user,
                        amount,
                        state: HoldState::Held,
                    },
                );
                m.intents.insert(job);
                Outcome::Held {
                    balance: m.balance(user),
                }
            }
        }
        Op::Capture { job } => settle(&mut m, job, HoldState::Captured),
        Op::Release { job } => settle(&mut m, job, HoldState::Released),
        Op::ClearIntent { job } => {
            m.intents.remove(&job);
            Outcome::Done
        }
        Op::Reopen => Outcome::Done,
    };
    (m, out)
}

fn settle(m: &mut Model, job: u8, to: HoldState) -> Outcome {
    let Some(hold) = m.holds.get(&job).copied() else {
        return Outcome::NoHold(job_id(job));
    };
    if hold.state == to {
        return Outcome::AlreadySettled(hold);
    }
    if hold.state != HoldState::Held {
        return Outcome::HoldSettled {
            job: job_id(job),
            state: hold.state,
        };
    }
    let settled = ModelHold { state: to, ..hold };
    m.holds.insert(job, settled);
    m.intents.remove(&job);
    if hold.amount > 0 {
        let (delta, reason, key) = match to {
            HoldState::Captured => (0, Reason::Capture, format!("capture:{}", job_id(job))),
            _ => (
                i64::from(hold.amount),
                Reason::Release,
                format!("release:{}", job_id(job)),
            ),
        };
        m.post(hold.user, delta, reason, key, Some(job));
    }
    Outcome::Settled(settled)
}

fn user_index(id: UserId) -> u8 {
    (0..USERS)
        .find(|&u| user_id(u) == id)
        .unwrap_or_else(|| panic!("a user outside the pool: {id}"))
}

fn job_index(id: JobId) -> u8 {
    (0..JOBS)
        .find(|&j| job_id(j) == id)
        .unwrap_or_else(|| panic!("a job outside the pool: {id}"))
}

fn model_hold(r: &HoldRecord) -> ModelHold {
    assert_eq!(
        r.settled_ms.is_some(),
        r.state != HoldState::Held,
        "settled_ms is set exactly when the hold is settled: {r:?}"
    );
    ModelHold {
        user: user_index(r.user),
        amount: r.amount,
        state: r.state,
    }
}

fn of_err(e: StoreError) -> Outcome {
    match e {
        StoreError::UnknownUser(u) => Outcome::UnknownUser(u),
        StoreError::InsufficientPoints { need, have } => Outcome::InsufficientPoints { need, have },
        StoreError::NoHold(j) => Outcome::NoHold(j),
        StoreError::KeyConflict { key } => Outcome::KeyConflict(key),
        StoreError::HoldSettled { job, state } => Outcome::HoldSettled { job, state },
        other => panic!("unexpected store error: {other:?}"),
    }
}

/// Runs `op` against the store (everything but `Reopen`).
fn run(store: &Store, op: &Op, now: i64) -> Outcome {
    match *op {
        Op::Register { user, welcome } => {
            let who = NewUser {
                username: Some(format!("user{user}")),
                language: None,
            };
            match store.register(user_id(user), who, welcome, now) {
                Ok(r) => {
                    assert_eq!(r.user.id, user_id(user));
                    Outcome::Registered {
                        created: r.created,
                        welcome: r.welcome,
                    }
                }
                Err(e) => of_err(e),
            }
        }
        Op::Topup { user, key, points } => {
            let c = Credit::topup(user_id(user), points, topup_key(key), None, now);
            store.credit(c).map_or_else(of_err, Outcome::Posted)
        }
        Op::Hold { job, user, amount } => {
            match store.hold(job_id(job), user_id(user), amount, &intent_of(job), now) {
                Ok(HoldOutcome::Held { balance }) => Outcome::Held { balance },
                Ok(HoldOutcome::AlreadyHeld(r)) => {
                    assert_eq!(r.job, job_id(job));
                    Outcome::AlreadyHeld(model_hold(&r))
                }
                Err(e) => of_err(e),
            }
        }
        Op::Capture { job } | Op::Release { job } => {
            let result = if matches!(op, Op::Capture { .. }) {
                store.capture(job_id(job), now)
            } else {
                store.release(job_id(job), now)
            };
            match result {
                Ok(SettleOutcome::Settled(r)) => {
                    assert_eq!(r.job, job_id(job));
                    assert_eq!(r.settled_ms, Some(now));
                    Outcome::Settled(model_hold(&r))
                }
                Ok(SettleOutcome::AlreadySettled(r)) => {
                    assert_eq!(r.job, job_id(job));
                    Outcome::AlreadySettled(model_hold(&r))
                }
                Err(e) => of_err(e),
            }
        }
        Op::ClearIntent { job } => store
            .clear_intent(job_id(job))
            .map_or_else(of_err, |()| Outcome::Done),
        Op::Reopen => unreachable!("reopen is handled by the caller"),
    }
}

/// Compares the whole store with the model.
fn check_store(store: &Store, m: &Model) {
    let mut keys = BTreeSet::new();
    for u in 0..USERS {
        let id = user_id(u);
        let balance = store.balance(id).unwrap();
        assert_eq!(balance, m.balance(u), "balance of user {u}");
        assert!(balance >= 0);
        assert_eq!(
            store.user(id).unwrap().is_some(),
            m.users.contains_key(&u),
            "user {u} registered"
        );

        let tail = store.ledger_tail(id, usize::MAX).unwrap();
        let sum: i64 = tail.iter().map(|e| e.delta).sum();
        assert_eq!(sum, balance, "user {u}: the entries add up to the balance");
        assert!(
            tail.windows(2).all(|w| w[0].id > w[1].id),
            "newest first: {tail:?}"
        );
        let got: Vec<(u64, ModelEntry)> = tail
            .iter()
            .rev()
            .map(|e| {
                assert!(keys.insert(e.key.clone()), "key {} used twice", e.key);
                (
                    e.id,
                    ModelEntry {
                        user: user_index(e.user),
                        delta: e.delta,
                        reason: e.reason,
                        key: e.key.clone(),
                        job: e.job.map(job_index),
                    },
                )
            })
            .collect();
        let want: Vec<(u64, ModelEntry)> = m
            .ledger
            .iter()
            .enumerate()
            .filter(|(_, e)| e.user == u)
            .map(|(i, e)| (i as u64 + 1, e.clone()))
            .collect();
        assert_eq!(got, want, "ledger of user {u}");
        let short = store.ledger_tail(id, 2).unwrap();
        assert_eq!(short[..], tail[..tail.len().min(2)]);
    }
    assert_eq!(keys.len(), m.ledger.len());

    let check = store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert_eq!(check.entries, m.ledger.len() as u64);
    assert_eq!(check.users, m.users.len() as u64);

    let mut open: Vec<(u8, ModelHold)> = store
        .open_holds()
        .unwrap()
        .iter()
        .map(|r| (job_index(r.job), model_hold(r)))
        .collect();
    open.sort_by_key(|(j, _)| *j);
    let want: Vec<(u8, ModelHold)> = m
        .holds
        .iter()
        .filter(|(_, h)| h.state == HoldState::Held)
        .map(|(j, h)| (*j, *h))
        .collect();
    assert_eq!(open, want, "open holds");

    for j in 0..JOBS {
        let got = store.hold_of(job_id(j)).unwrap().map(|r| {
            assert_eq!(r.job, job_id(j));
            model_hold(&r)
        });
        assert_eq!(got, m.holds.get(&j).copied(), "hold of job {j}");
    }

    let intents: BTreeMap<u8, Vec<u8>> = store
        .intents()
        .unwrap()
        .into_iter()
        .map(|(job, bytes)| (job_index(job), bytes))
        .collect();
    let want: BTreeMap<u8, Vec<u8>> = m.intents.iter().map(|&j| (j, intent_of(j))).collect();
    assert_eq!(intents, want, "intents");
}

struct LedgerModel;

impl ReferenceStateMachine for LedgerModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(m: &Model) -> BoxedStrategy<Op> {
        // Mostly registered users, sometimes any (unknown users must be refused).
        let registered: Vec<u8> = m.users.keys().copied().collect();
        let user = if registered.is_empty() {
            (0..USERS).boxed()
        } else {
            prop_oneof![4 => proptest::sample::select(registered), 1 => 0..USERS].boxed()
        };
        // Settling mostly picks jobs that have a hold, sometimes any job.
        let known: Vec<u8> = m.holds.keys().copied().collect();
        let (job, settle_weight) = if known.is_empty() {
            ((0..JOBS).boxed(), 1)
        } else {
            (
                prop_oneof![4 => proptest::sample::select(known), 1 => 0..JOBS].boxed(),
                3,
            )
        };
        prop_oneof![
            3 => (0..USERS, 0u32..=20).prop_map(|(user, welcome)| Op::Register { user, welcome }),
            3 => (user.clone(), 0..KEYS, 1u32..=30)
                .prop_map(|(user, key, points)| Op::Topup { user, key, points }),
            5 => (0..JOBS, user, 0u32..=25)
                .prop_map(|(job, user, amount)| Op::Hold { job, user, amount }),
            settle_weight => job.clone().prop_map(|job| Op::Capture { job }),
            settle_weight => job.clone().prop_map(|job| Op::Release { job }),
            1 => job.prop_map(|job| Op::ClearIntent { job }),
            1 => Just(Op::Reopen),
        ]
        .boxed()
    }

    fn apply(m: Model, op: &Op) -> Model {
        step(&m, op).0
    }
}

struct Sut {
    dir: TempDir,
    store: Store,
    /// The model before the step being applied (the runner hands over the one after it).
    before: Model,
    clock: i64,
}

struct LedgerTest;

impl StateMachineTest for LedgerTest {
    type SystemUnderTest = Sut;
    type Reference = LedgerModel;

    fn init_test(m: &Model) -> Sut {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        Sut {
            dir,
            store,
            before: m.clone(),
            clock: 1_000,
        }
    }

    fn apply(mut sut: Sut, after: &Model, op: Op) -> Sut {
        let (_, want) = step(&sut.before, &op);
        sut.clock += 1;
        let got = match op {
            Op::Reopen => {
                drop(sut.store);
                sut.store = Store::open(sut.dir.path()).unwrap();
                Outcome::Done
            }
            ref op => run(&sut.store, op, sut.clock),
        };
        assert_eq!(got, want, "the answer to {op:?}");
        sut.before = after.clone();
        sut
    }

    fn check_invariants(sut: &Sut, m: &Model) {
        check_store(&sut.store, m);
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn ledger_matches_the_model(sequential 1..40 => LedgerTest);
}

#[test]
fn two_racing_holds_over_half_the_balance_spend_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for round in 0..8 {
        let user = UserId::new(9_000 + round);
        store.register(user, NewUser::default(), 10, 1).unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                let barrier = Arc::clone(&barrier);
                let job = JobId::new();
                std::thread::spawn(move || {
                    barrier.wait();
                    (job, store.hold(job, user, 6, b"intent", 2))
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<JobId> = results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(HoldOutcome::Held { balance: 4 })))
            .map(|(job, _)| *job)
            .collect();
        let losers: Vec<JobId> = results
            .iter()
            .filter(|(_, r)| matches!(r, Err(StoreError::InsufficientPoints { need: 6, have: 4 })))
            .map(|(job, _)| *job)
            .collect();
        assert_eq!(
            (winners.len(), losers.len()),
            (1, 1),
            "exactly one hold wins: {results:?}"
        );
        assert_eq!(store.balance(user).unwrap(), 4);
        assert!(store.hold_of(losers[0]).unwrap().is_none());
        let open: Vec<JobId> = store
            .open_holds()
            .unwrap()
            .into_iter()
            .filter(|h| h.user == user)
            .map(|h| h.job)
            .collect();
        assert_eq!(open, winners);
        let tail = store.ledger_tail(user, usize::MAX).unwrap();
        assert_eq!(
            tail.iter().map(|e| e.delta).collect::<Vec<_>>(),
            vec![-6, 10]
        );
        let check = store.verify_ledger().unwrap();
        assert!(check.is_consistent(), "{check:?}");
    }
}

#[test]
fn a_zero_amount_hold_can_be_captured() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let user = UserId::new(5);
    store.register(user, NewUser::default(), 0, 1).unwrap();
    let job = JobId::new();

    assert_eq!(
        store.hold(job, user, 0, b"free", 2).unwrap(),
        HoldOutcome::Held { balance: 0 }
    );
    assert_eq!(store.open_holds().unwrap().len(), 1);
    assert_eq!(store.intents().unwrap(), vec![(job, b"free".to_vec())]);

    let captured = store.capture(job, 3).unwrap();
    assert!(
        matches!(captured, SettleOutcome::Settled(_)),
        "{captured:?}"
    );
    assert_eq!(captured.record().state, HoldState::Captured);
    assert_eq!(captured.record().amount, 0);
    assert_eq!(captured.record().settled_ms, Some(3));

    assert!(matches!(
        store.capture(job, 4).unwrap(),
        SettleOutcome::AlreadySettled(_)
    ));
    assert!(matches!(
        store.release(job, 5),
        Err(StoreError::HoldSettled {
            state: HoldState::Captured,
            ..
        })
    ));
    assert_eq!(store.balance(user).unwrap(), 0);
    assert!(store.ledger_tail(user, usize::MAX).unwrap().is_empty());
    assert!(store.open_holds().unwrap().is_empty());
    assert!(store.intents().unwrap().is_empty());
    assert_eq!(
        store.hold_of(job).unwrap().map(|h| h.state),
        Some(HoldState::Captured)
    );
    let check = store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert_eq!(check.entries, 0);
}

#[test]
fn crediting_an_unknown_user_fails_and_uses_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ghost = UserId::new(404);

    let err = store
        .credit(Credit::topup(ghost, 5, "topup:ghost", None, 1))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownUser(u) if u == ghost),
        "{err:?}"
    );
    assert!(matches!(
        store.hold(JobId::new(), ghost, 0, b"x", 1),
        Err(StoreError::UnknownUser(u)) if u == ghost
    ));
    assert_eq!(store.balance(ghost).unwrap(), 0);
    assert!(store.open_holds().unwrap().is_empty());
    let check = store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert_eq!((check.users, check.entries), (0, 0));

    // The failed request did not use up its key.
    store.register(ghost, NewUser::default(), 0, 2).unwrap();
    let posted = store
        .credit(Credit::topup(ghost, 5, "topup:ghost", None, 3))
        .unwrap();
    assert!(!posted.is_duplicate(), "{posted:?}");
    assert_eq!(store.balance(ghost).unwrap(), 5);
}
