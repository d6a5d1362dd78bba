//! Promocodes and the weekly bonus in the bot: entering a code (accepted, already used, unknown,
//! used up, expired) and the weekly notice, sent once and not after the user switched it off.

use qwenedit::app::Clock;
use qwenedit::ops::{self, PromoBatch};

use crate::support::bot::{BotTest, Setup, ru_en};

const ALICE: i64 = 1001;
const BOB: i64 = 1002;
/// Sunday 2026-11-29 12:00 UTC (15:00 in Moscow).
const SUNDAY: i64 = 1_795_953_600_000;
/// Monday 2026-11-30 11:00 in Moscow: the weekly bonus is due on Mondays at 12:00, so the
/// service's own start-up run credits nothing, whenever it runs.
const MONDAY_MORNING: i64 = 1_796_025_600_000;
/// Monday 2026-11-30 12:01 in Moscow.
const MONDAY: i64 = 1_796_029_260_000;

fn code(b: &BotTest, points: u32, uses: u32, expires_ms: Option<i64>) -> String {
    ops::create_promos(
        &b.app().app,
        PromoBatch {
            points,
            count: 1,
            uses,
            expires_ms,
            prefix: Some("GIFT-".into()),
        },
    )
    .unwrap()[0]
        .code
        .clone()
}

async fn enter(b: &BotTest, lang: &str, user: i64, text: &str) {
    b.press_key(user, lang, "menu-profile").await;
    b.press_key(user, lang, "btn-promo").await;
    b.say(user, text).await;
}

ru_en!(promo_codes);
async fn promo_codes(lang: &str) {
    let clock = Clock::manual(SUNDAY);
    let b = BotTest::with(Setup::default().no_comfy().clock(clock.clone())).await;
    for user in [ALICE, BOB] {
        b.tg.set_language(user, lang);
        b.say(user, "/start").await;
    }
    let good = code(&b, 25, 5, None);
    let single = code(&b, 10, 1, None);
    let expiring = code(&b, 10, 5, Some(SUNDAY + 60_000));
    enter(&b, lang, BOB, &single).await;
    assert_eq!(b.balance(BOB), 70);

    enter(&b, lang, ALICE, &format!("  {}  ", good.to_lowercase())).await;
    assert_eq!(b.balance(ALICE), 85);
    enter(&b, lang, ALICE, &good).await;
    enter(&b, lang, ALICE, "GIFT-NOSUCH").await;
    enter(&b, lang, ALICE, &single).await;
    clock.advance_ms(61_000);
    enter(&b, lang, ALICE, &expiring).await;
    assert_eq!(b.balance(ALICE), 85);
    // After a code, text is a prompt again, not another code.
    b.say(ALICE, "make the sky purple please").await;
    assert!(b.app().app.store.verify_ledger().unwrap().is_consistent());

    let transcript = b
        .transcript(ALICE)
        .replace(&good.to_lowercase(), "<code 1 in lower case>")
        .replace(&good, "<code 1>")
        .replace(&single, "<code used up>")
        .replace(&expiring, "<code expired>");
    insta::assert_snapshot!(format!("promo_codes_{lang}"), transcript);
    b.stop().await;
}

/// The weekly task tells Alice about her bonus; Bob switched the notice off in his profile and
/// gets the points without a message; then Alice stops them from the notice itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weekly_notice_sent_and_suppressed_after_opting_out() {
    let clock = Clock::manual(MONDAY_MORNING);
    let b = BotTest::with(
        Setup::default()
            .no_comfy()
            .clock(clock.clone())
            .billing("weekly_bonus = 10"),
    )
    .await;
    for user in [ALICE, BOB] {
        b.tg.set_language(user, "en");
        b.say(user, "/start").await;
    }
    b.press_key(BOB, "en", "menu-profile").await;
    b.press_key(BOB, "en", "btn-notices-on").await;
    assert!(
        b.tg.last_message(BOB)
            .buttons()
            .contains(&b.t("en", "btn-notices-off-state")),
        "the profile shows the switch off"
    );
    let app = b.app().app.clone();
    let bob_before = b.tg.messages(BOB).len();

    clock.advance_ms(MONDAY - MONDAY_MORNING);
    let r = ops::weekly_task(&app).await.unwrap();
    assert_eq!((r.week.as_str(), r.credited), ("2026-W49", 2));
    b.tg.wait_idle().await;
    assert_eq!((b.balance(ALICE), b.balance(BOB)), (70, 70));
    assert_eq!(b.tg.messages(BOB).len(), bob_before, "Bob opted out");
    let notice = b.tg.last_message(ALICE);
    assert_eq!(notice.text, "🎁 Weekly bonus: +10 points. Balance: 70.");
    // Run again the same week: nothing credited, nobody told.
    let r = ops::weekly_task(&app).await.unwrap();
    assert_eq!((r.credited, r.already), (0, 2));
    b.press_key(ALICE, "en", "btn-notices-off").await;

    // Next week: both get the points, nobody gets a notice.
    clock.advance_ms(7 * 86_400_000);
    for user in [ALICE, BOB] {
        b.say(user, "/balance").await;
    }
    let alice_before = b.tg.messages(ALICE).len();
    let r = ops::weekly_task(&app).await.unwrap();
    assert_eq!(r.credited, 2);
    b.tg.wait_idle().await;
    assert_eq!((b.balance(ALICE), b.balance(BOB)), (80, 80));
    assert_eq!(b.tg.messages(ALICE).len(), alice_before);
    insta::assert_snapshot!("weekly_notice_alice", b.transcript(ALICE));
    b.stop().await;
}
