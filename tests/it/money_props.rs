//! Every way points move, interleaved at random: jobs (hold, capture, release), operator
//! top-ups with reused keys, promocode redemptions, weekly bonuses across weeks, Stars orders
//! paid through `successful_payment` or found by reconciliation, refunds (by the admin or seen
//! in Telegram's transaction list), every delivery possibly repeated, and store reopens
//! ("restarts"). After every step, on the real stores:
//!
//! - every balance equals the sum of its ledger entries (and `verify_ledger` agrees);
//! - a balance is below zero only through an explicit `Debt` entry;
//! - every external id (charge id, promocode per user, ISO week per user, refund) is credited
//!   at most once, and a credited charge gives exactly its order's points.

use std::collections::BTreeMap;

use proptest::prelude::*;
use qwenedit::app::{App, Clock};
use qwenedit::config::Config;
use qwenedit::domain::{JobId, Reason, UserId};
use qwenedit::ops::{self, PromoBatch, StarTransaction, TopupRequest};
use qwenedit::store::{LedgerEntry, NewUser, PaymentStatus};
use tempfile::TempDir;

const USERS: u8 = 3;
const JOBS: u8 = 6;
const KEYS: u8 = 3;
const CODES: usize = 3;
const ORDERS: u8 = 6;
/// Wednesday 2026-12-02 10:00 UTC.
const START: i64 = 1_796_205_600_000;

fn user_id(u: u8) -> UserId {
    UserId::new(9_000 + i64::from(u))
}

fn job_id(j: u8) -> JobId {
    JobId::from_u128((1u128 << 90) + u128::from(j))
}

fn charge(o: u8) -> String {
    format!("charge-{o}")
}

#[derive(Clone, Debug)]
enum Op {
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
    Topup {
        user: u8,
        key: u8,
        points: u32,
    },
    Redeem {
        user: u8,
        code: usize,
    },
    /// Time passes (days), then the weekly bonus runs.
    Weekly {
        days: u8,
    },
    /// A user orders pack `pack`: it becomes order number `orders.len()` (up to `ORDERS`).
    Order {
        user: u8,
        pack: u8,
    },
    /// `successful_payment` of order `order` (again, if it was delivered before).
    Pay {
        order: u8,
    },
    /// Reconciliation sees order `order` paid (and, with `refunded`, refunded) in Telegram's list.
    Reconcile {
        order: u8,
        refunded: bool,
    },
    /// The admin refunds the charge of order `order` (the ledger side of `refund_stars`).
    Refund {
        order: u8,
    },
    /// Drop the app and open the same data dir again.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..JOBS, 0..USERS, 0u32..120).prop_map(|(job, user, amount)| Op::Hold { job, user, amount }),
        2 => (0..JOBS).prop_map(|job| Op::Capture { job }),
        2 => (0..JOBS).prop_map(|job| Op::Release { job }),
        2 => (0..USERS, 0..KEYS, 1u32..200).prop_map(|(user, key, points)| Op::Topup { user, key, points }),
        2 => (0..USERS, 0..CODES).prop_map(|(user, code)| Op::Redeem { user, code }),
        1 => (0u8..10).prop_map(|days| Op::Weekly { days }),
        3 => (0..USERS, 0u8..3).prop_map(|(user, pack)| Op::Order { user, pack }),
        4 => (0..ORDERS).prop_map(|order| Op::Pay { order }),
        2 => (0..ORDERS, any::<bool>()).prop_map(|(order, refunded)| Op::Reconcile { order, refunded }),
        2 => (0..ORDERS).prop_map(|order| Op::Refund { order }),
        1 => Just(Op::Reopen),
    ]
}

struct World {
    dir: TempDir,
    config: std::path::PathBuf,
    clock: Clock,
    app: Option<App>,
    /// Order ids in creation order, with who ordered.
    orders: Vec<(String, UserId)>,
    codes: Vec<String>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let text = crate::support::app::config_text(
            &["http://127.0.0.1:9".parse().unwrap()],
            "[billing]\nweekly_bonus = 10\npayments_per_minute = 1000\n",
        );
        std::fs::write(&config, text).unwrap();
        let mut w = World {
            dir,
            config,
            clock: Clock::manual(START),
            app: None,
            orders: Vec::new(),
            codes: Vec::new(),
        };
        w.open();
        let app = w.app();
        for u in 0..USERS {
            app.store
                .register(user_id(u), NewUser::default(), 60, START)
                .unwrap();
        }
        // A one-use code, a two-use code, a code that expires in a day.
        for (uses, expires) in [(1, None), (2, None), (5, Some(START + 86_400_000))] {
            let code = ops::create_promos(
                &app,
                PromoBatch {
                    points: 25,
                    count: 1,
                    uses,
                    expires_ms: expires,
                    prefix: None,
                },
            )
            .unwrap()[0]
                .code
                .clone();
            w.codes.push(code);
        }
        w
    }

    fn open(&mut self) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let config = Config::from_toml(&text, &self.config, std::iter::empty()).unwrap();
        let (app, _) = App::open(config, self.clock.clone()).unwrap();
        self.app = Some(app);
    }

    fn app(&self) -> App {
        self.app.clone().expect("open")
    }

    fn apply(&mut self, op: &Op) {
        let app = self.app();
        let now = app.now_ms();
        match *op {
            Op::Hold { job, user, amount } => {
                let _ = app
                    .store
                    .hold(job_id(job), user_id(user), amount, &[job], now);
            }
            Op::Capture { job } => {
                let _ = app.store.capture(job_id(job), now);
            }
            Op::Release { job } => {
                let _ = app.store.release(job_id(job), now);
            }
            Op::Topup { user, key, points } => {
                let _ = ops::topup(
                    &app,
                    TopupRequest {
                        user: user_id(user),
                        points: qwenedit::domain::Points::new(points),
                        note: None,
                        create: false,
                        // The same key with another amount is a conflict, refused.
                        idempotency_key: Some(format!("k{user}-{key}")),
                    },
                );
            }
            Op::Redeem { user, code } => {
                ops::redeem_promo(&app, user_id(user), &self.codes[code].to_lowercase()).unwrap();
            }
            Op::Weekly { days } => {
                self.clock.advance_ms(i64::from(days) * 86_400_000);
                ops::weekly_bonus(&app).unwrap();
            }
            Op::Order { user, pack } => {
                if self.orders.len() < usize::from(ORDERS) {
                    let o =
                        ops::create_stars_order(&app, user_id(user), usize::from(pack)).unwrap();
                    self.orders.push((o.id, user_id(user)));
                }
            }
            Op::Pay { order } => {
                if let Some((id, user)) = self.orders.get(usize::from(order)).cloned() {
                    let stars = app.store.payment(&id).unwrap().unwrap().amount as u32;
                    ops::credit_stars(&app, user, &id, "XTR", stars, &charge(order)).unwrap();
                }
            }
            Op::Reconcile { order, refunded } => {
                if let Some((id, user)) = self.orders.get(usize::from(order)).cloned() {
                    let stars = app.store.payment(&id).unwrap().unwrap().amount as u32;
                    let tx = |refund| StarTransaction {
                        id: charge(order),
                        user,
                        amount: stars,
                        payload: Some(id.clone()),
                        refund,
                    };
                    let mut list = vec![tx(false)];
                    if refunded {
                        list.push(tx(true));
                    }
                    ops::reconcile_stars(&app, &list).unwrap();
                }
            }
            Op::Refund { order } => {
                app.store
                    .refund_payment(&format!("stars:{}", charge(order)), now)
                    .unwrap();
            }
            Op::Reopen => {
                self.app = None;
                drop(app);
                self.open();
            }
        }
    }

    fn check(&self) {
        let app = self.app();
        let check = app.store.verify_ledger().unwrap();
        assert!(check.is_consistent(), "{check:?}");
        let mut payment_credits: BTreeMap<String, usize> = BTreeMap::new();
        let mut once: BTreeMap<String, usize> = BTreeMap::new();
        for u in 0..USERS {
            let user = user_id(u);
            let entries: Vec<LedgerEntry> = app.store.ledger_tail(user, usize::MAX).unwrap();
            let balance = app.store.balance(user).unwrap();
            let sum: i64 = entries.iter().map(|e| e.delta).sum();
            assert_eq!(balance, sum, "user {u}: balance vs ledger");
            if balance < 0 {
                assert!(
                    entries.iter().any(|e| e.reason == Reason::Debt),
                    "user {u} is negative without a debt entry"
                );
            }
            for e in &entries {
                let id = match e.reason {
                    Reason::Payment => {
                        let r = e.reference.clone().unwrap();
                        *payment_credits.entry(r.clone()).or_default() += 1;
                        format!("payment {r}")
                    }
                    Reason::Refund | Reason::Debt => {
                        format!("{:?} {}", e.reason, e.reference.clone().unwrap())
                    }
                    Reason::Promo => format!("promo {} {u}", e.reference.clone().unwrap()),
                    Reason::WeeklyBonus => format!("week {} {u}", e.reference.clone().unwrap()),
                    _ => continue,
                };
                *once.entry(id).or_default() += 1;
            }
        }
        for (id, n) in &once {
            assert_eq!(*n, 1, "{id} applied {n} times");
        }
        // A credited charge gave its order's points; a refunded one took them back in full.
        for p in app.store.payments().unwrap() {
            if !p.id.starts_with("stars:") {
                continue;
            }
            assert_eq!(payment_credits.get(&p.id), Some(&1), "{}", p.id);
            let order = app.store.payment(&p.order_id).unwrap().unwrap();
            assert_eq!(p.points, order.points);
            let entries = app.store.ledger_tail(p.user, usize::MAX).unwrap();
            let of = |reasons: &[Reason]| -> i64 {
                entries
                    .iter()
                    .filter(|e| {
                        reasons.contains(&e.reason) && e.reference.as_deref() == Some(&p.id)
                    })
                    .map(|e| e.delta)
                    .sum()
            };
            assert_eq!(of(&[Reason::Payment]), i64::from(p.points));
            let taken = of(&[Reason::Refund, Reason::Debt]);
            match p.status {
                PaymentStatus::Refunded => assert_eq!(taken, -i64::from(p.points)),
                _ => assert_eq!(taken, 0),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn money_stays_consistent_under_any_interleaving(ops in proptest::collection::vec(op(), 1..50)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
            w.check();
        }
        drop(w.app.take());
        drop(w.dir);
    }
}
