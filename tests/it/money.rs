//! Promocodes and the weekly bonus, through `ops` on the real stores.

use std::sync::{Arc, Barrier};

use qwenedit::app::Clock;
use qwenedit::ops::{self, PromoBatch};
use qwenedit::store::Redeemed;

use crate::support::app::TestApp;

/// 2026-11-23 is a Monday; 12:00 in Moscow is 09:00 UTC.
const MONDAY_0859_UTC: i64 = 1_795_424_340_000;

fn batch(points: u32, count: u32, uses: u32) -> PromoBatch {
    PromoBatch {
        points,
        count,
        uses,
        expires_ms: None,
        prefix: Some("win-".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_use_code_raced_by_two_users_is_redeemed_once() {
    let t = TestApp::start(&["http://127.0.0.1:9".parse().unwrap()], "").await;
    for round in 0..20 {
        let a = t.user(1000 + round * 2, 0);
        let b = t.user(1001 + round * 2, 0);
        let code = ops::create_promos(&t.app, batch(25, 1, 1)).unwrap()[0]
            .code
            .clone();
        assert!(code.starts_with("WIN-") && code.len() == 12, "{code}");
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<Redeemed> = [a, b]
            .into_iter()
            .map(|u| {
                let (app, code, barrier) = (t.app.clone(), code.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    ops::redeem_promo(&app, u, &code).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let won = results
            .iter()
            .filter(|r| matches!(r, Redeemed::Credited { points: 25, .. }))
            .count();
        assert_eq!(won, 1, "{results:?}");
        assert!(results.contains(&Redeemed::UsedUp), "{results:?}");
        assert_eq!(t.balance(a) + t.balance(b), 25);
    }
    assert!(t.app.store.verify_ledger().unwrap().is_consistent());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_case_insensitive_used_once_per_user_and_expire() {
    let clock = Clock::manual(MONDAY_0859_UTC);
    let t = TestApp::start_with_clock(&["http://127.0.0.1:9".parse().unwrap()], "", clock.clone())
        .await;
    let (a, b, c) = (t.user(1, 0), t.user(2, 0), t.user(3, 0));
    let code = ops::create_promos(&t.app, batch(10, 1, 2)).unwrap()[0]
        .code
        .clone();
    let typed = format!("  {}  ", code.to_lowercase());
    assert_eq!(
        ops::redeem_promo(&t.app, a, &typed).unwrap(),
        Redeemed::Credited {
            points: 10,
            balance: 10
        }
    );
    assert_eq!(
        ops::redeem_promo(&t.app, a, &code).unwrap(),
        Redeemed::AlreadyUsedByYou
    );
    assert!(matches!(
        ops::redeem_promo(&t.app, b, &code).unwrap(),
        Redeemed::Credited { .. }
    ));
    assert_eq!(
        ops::redeem_promo(&t.app, c, &code).unwrap(),
        Redeemed::UsedUp
    );
    assert_eq!(
        ops::redeem_promo(&t.app, c, "NO-SUCH").unwrap(),
        Redeemed::Unknown
    );
    assert_eq!(ops::redeem_promo(&t.app, c, "").unwrap(), Redeemed::Unknown);

    let expiring = ops::create_promos(
        &t.app,
        PromoBatch {
            expires_ms: Some(MONDAY_0859_UTC + 60_000),
            ..batch(5, 1, 10)
        },
    )
    .unwrap()[0]
        .code
        .clone();
    clock.advance_ms(61_000);
    assert_eq!(
        ops::redeem_promo(&t.app, c, &expiring).unwrap(),
        Redeemed::Expired
    );

    let disabled = ops::create_promos(&t.app, batch(5, 1, 10)).unwrap()[0]
        .code
        .clone();
    ops::disable_promo(&t.app, &disabled).unwrap();
    assert_eq!(
        ops::redeem_promo(&t.app, c, &disabled).unwrap(),
        Redeemed::Unknown
    );

    let listed = ops::list_promos(&t.app).unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|p| p.code == code && p.used == 2));
    for bad in [
        batch(0, 1, 1),
        batch(1, 0, 1),
        batch(1, 1, 0),
        PromoBatch {
            prefix: Some("bad prefix!".into()),
            ..batch(1, 1, 1)
        },
    ] {
        assert!(ops::create_promos(&t.app, bad).is_err());
    }
    assert!(t.app.store.verify_ledger().unwrap().is_consistent());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_bonus_is_credited_once_per_week_across_restarts_and_gaps() {
    let clock = Clock::manual(MONDAY_0859_UTC);
    let backends = ["http://127.0.0.1:9".parse().unwrap()];
    let t = TestApp::start_with_clock(&backends, "", clock.clone()).await;
    let active = t.user(1, 0);
    let quiet = t.user(2, 0);
    // The quiet user was last seen 40 days ago.
    t.app
        .store
        .update_user(quiet, |u| {
            u.last_seen_ms = MONDAY_0859_UTC - 40 * 86_400_000
        })
        .unwrap();
    t.app
        .store
        .update_user(active, |u| u.last_seen_ms = MONDAY_0859_UTC - 86_400_000)
        .unwrap();

    // 11:59 Moscow: not yet.
    let r = ops::weekly_bonus(&t.app).unwrap();
    assert_eq!((r.week.as_str(), r.credited), ("", 0));
    // 12:01 Moscow.
    clock.advance_ms(120_000);
    let r = ops::weekly_bonus(&t.app).unwrap();
    assert_eq!((r.week.as_str(), r.credited, r.already), ("2026-W48", 1, 0));
    assert_eq!(t.balance(active), 10);
    assert_eq!(t.balance(quiet), 0, "inactive for 30 days");
    assert_eq!(ops::weekly_bonus(&t.app).unwrap().credited, 0);

    // A restart later the same week credits nothing more.
    let config = t.dir.path().join("config.toml");
    let dir = t.stop().await;
    clock.advance_ms(3 * 86_400_000);
    let t = TestApp::start_in(dir, &config, clock.clone()).await;
    let r = ops::weekly_bonus(&t.app).unwrap();
    assert_eq!((r.credited, r.already), (0, 1));
    assert_eq!(t.balance(active), 10);

    // Down for two weeks: on return only the current week is credited, once.
    clock.advance_ms(14 * 86_400_000);
    t.app
        .store
        .update_user(active, |u| u.last_seen_ms = clock.now_ms())
        .unwrap();
    // (The service's own start-up run may have got there first, if it ran late: either way once.)
    let r = ops::weekly_bonus(&t.app).unwrap();
    assert_eq!((r.week.as_str(), r.credited + r.already), ("2026-W50", 1));
    assert_eq!(ops::weekly_bonus(&t.app).unwrap().credited, 0);
    assert_eq!(t.balance(active), 20);
    assert!(t.app.store.verify_ledger().unwrap().is_consistent());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_submissions_covered_once_accept_exactly_one() {
    let t = TestApp::start(&["http://127.0.0.1:9".parse().unwrap()], "").await;
    let user = t.user(1, 30);
    let input = t.input(&crate::support::app::png(16, 16));
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (app, barrier, input) = (t.app.clone(), barrier.clone(), input.clone());
            std::thread::spawn(move || {
                let spec = qwenedit::domain::JobSpec {
                    user,
                    chat: None,
                    inputs: vec![input],
                    preset: None,
                    prompt: Some("x".into()),
                    workflow: "qwen-image-edit-2511".into(),
                    seed: 1,
                    price: qwenedit::domain::Points::new(30),
                    lane: qwenedit::domain::Lane::Normal,
                };
                barrier.wait();
                ops::submit_edit(&app, qwenedit::domain::JobId::new(), spec)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 1);
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(
        r,
        Err(ops::OpsError::InsufficientPoints { need: 30, have: 0 })
    )));
    assert_eq!(t.balance(user), 0);
    assert_eq!(
        t.app.queue.depth().waiting() + t.app.queue.depth().running,
        1
    );
    assert!(t.app.store.verify_ledger().unwrap().is_consistent());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stars_payment_is_checked_then_credited_once_per_charge() {
    let clock = Clock::manual(MONDAY_0859_UTC);
    let t = TestApp::start_with_clock(&["http://127.0.0.1:9".parse().unwrap()], "", clock.clone())
        .await;
    let (a, b) = (t.user(1, 0), t.user(2, 0));
    // Pack 1: 300 points + 30 bonus for 140 Stars.
    let order = ops::create_stars_order(&t.app, a, 1).unwrap();
    assert_eq!((order.points, order.bonus, order.stars), (300, 30, 140));
    assert_eq!(ops::pre_checkout(&t.app, a, &order.id, "XTR", 140), Ok(()));
    assert_eq!(
        ops::pre_checkout(&t.app, a, &order.id, "XTR", 1),
        Err(ops::Refusal::Mismatch)
    );
    assert_eq!(
        ops::pre_checkout(&t.app, a, &order.id, "USD", 140),
        Err(ops::Refusal::Mismatch)
    );
    assert_eq!(
        ops::pre_checkout(&t.app, b, &order.id, "XTR", 140),
        Err(ops::Refusal::UnknownOrder)
    );
    assert_eq!(
        ops::pre_checkout(&t.app, a, "order:forged", "XTR", 140),
        Err(ops::Refusal::UnknownOrder)
    );

    // Delivered twice, and twice at once: credited once.
    let first = ops::credit_stars(&t.app, a, &order.id, "XTR", 140, "charge-1").unwrap();
    assert_eq!(first, qwenedit::store::Credited::Applied { balance: 330 });
    let barrier = Arc::new(Barrier::new(2));
    let again: Vec<_> = (0..2)
        .map(|_| {
            let (app, barrier, id) = (t.app.clone(), barrier.clone(), order.id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                ops::credit_stars(&app, a, &id, "XTR", 140, "charge-1").unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert!(
        again
            .iter()
            .all(|c| *c == qwenedit::store::Credited::Duplicate)
    );
    assert_eq!(t.balance(a), 330);
    // The order is paid: a second checkout of it is refused as stale.
    assert_eq!(
        ops::pre_checkout(&t.app, a, &order.id, "XTR", 140),
        Err(ops::Refusal::Stale)
    );
    let history = ops::payment_history(&t.app, a).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].amount, history[0].points), (140, 330));

    // An order left unpaid for more than a day is stale.
    let old = ops::create_stars_order(&t.app, b, 0).unwrap();
    clock.advance_ms(25 * 3_600_000);
    assert_eq!(
        ops::pre_checkout(&t.app, b, &old.id, "XTR", 50),
        Err(ops::Refusal::Stale)
    );
    assert!(t.app.store.verify_ledger().unwrap().is_consistent());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_creation_is_rate_limited_per_user() {
    let t = TestApp::start(&["http://127.0.0.1:9".parse().unwrap()], "").await;
    let (a, b) = (t.user(1, 0), t.user(2, 0));
    for _ in 0..5 {
        ops::create_stars_order(&t.app, a, 0).unwrap();
    }
    assert!(matches!(
        ops::create_stars_order(&t.app, a, 0),
        Err(ops::OpsError::RateLimited)
    ));
    assert!(ops::create_stars_order(&t.app, b, 0).is_ok(), "per user");
    assert!(
        ops::create_stars_order(&t.app, b, 99).is_err(),
        "no such pack"
    );
    t.stop().await;
}
