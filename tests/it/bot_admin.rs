//! Admin commands in the bot (`telegram.admins`): what an admin sees, and that nobody else can
//! use them.

use qwenedit::domain::{JobState, UserId};

use crate::support::bot::{BotTest, Setup, jpeg, ru_en};

const ADMIN: i64 = 1;
const ALICE: i64 = 1001;
const BOB: i64 = 1002;
/// Registered (by an operator's top-up) but never wrote to the bot: a broadcast cannot reach her.
const CAROL: i64 = 1003;

/// Alice (60 points) has one job waiting (no ComfyUI is up); Bob and the admin said /start;
/// Carol exists only in the store.
async fn world(lang: &str) -> (BotTest, String) {
    let b = BotTest::with(
        Setup::default()
            .no_comfy()
            .telegram(&format!("admins = [{ADMIN}]")),
    )
    .await;
    for user in [ADMIN, ALICE, BOB] {
        b.tg.set_language(user, lang);
        b.say(user, "/start").await;
    }
    b.app().user(CAROL, 0);
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, lang, "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    b.press_key(ALICE, lang, "btn-confirm").await;
    let job = b.jobs(ALICE)[0].to_string();
    (b, job)
}

ru_en!(admin_commands);
/// Every admin command, with good and bad arguments.
async fn admin_commands(lang: &str) {
    let (b, job) = world(lang).await;
    for command in [
        "/stats".to_string(),
        "/user".to_string(),
        format!("/user {ALICE}"),
        "/user 999".to_string(),
        "/user nobody".to_string(),
        format!("/topup {ALICE} 50"),
        format!("/topup {ALICE} -5"),
        format!("/topup {ALICE}"),
        "/topup 999 10".to_string(),
        format!("/job {job}"),
        "/job 42".to_string(),
        "/job 01JF0000000000000000000000".to_string(),
        "/refund no-such-charge".to_string(),
        format!("/ban {BOB}"),
        "/ban 999".to_string(),
        "/broadcast".to_string(),
        "/broadcast Новые стили уже в меню! New styles are in the menu!".to_string(),
        format!("/unban {BOB}"),
    ] {
        b.say(ADMIN, &command).await;
    }
    assert_eq!(b.balance(ALICE), 80, "30 held, 50 topped up");
    let bob = b.app().app.store.user(UserId::new(BOB)).unwrap().unwrap();
    assert!(!bob.banned);
    // The broadcast reached Alice and the admin; Bob was banned then, Carol never wrote.
    let news = "New styles are in the menu!";
    assert!(b.tg.last_message(ALICE).text.contains(news));
    assert!(!b.transcript(BOB).contains(news));
    assert!(!b.transcript(CAROL).contains(news));
    let transcript = b.transcript(ADMIN).replace(&job, "<job of Alice>");
    insta::assert_snapshot!(format!("admin_commands_{lang}"), transcript);
    b.stop().await;
}

ru_en!(banned_user);
/// A banned user gets one short answer to anything; unbanned, the bot works again.
async fn banned_user(lang: &str) {
    let (b, _) = world(lang).await;
    b.say(ADMIN, &format!("/ban {ALICE}")).await;
    b.say(ALICE, "/start").await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, lang, "btn-cancel-job").await;
    let job = b.jobs(ALICE)[0];
    let state = b.app().app.queue.get(job).unwrap().unwrap().state();
    assert_eq!(
        state,
        JobState::Queued,
        "a banned user's button does nothing"
    );
    b.say(ADMIN, &format!("/unban {ALICE}")).await;
    b.say(ALICE, "/balance").await;
    insta::assert_snapshot!(format!("banned_user_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(not_an_admin);
/// A user who is not an admin tries every admin command: refused, nothing changes.
async fn not_an_admin(lang: &str) {
    let (b, job) = world(lang).await;
    b.say(ALICE, "/start").await;
    let before = b.tg.transcript(BOB);
    for command in [
        "/stats".to_string(),
        format!("/user {BOB}"),
        format!("/topup {ALICE} 1000"),
        format!("/ban {BOB}"),
        format!("/unban {ALICE}"),
        format!("/job {job}"),
        "/broadcast spam".to_string(),
    ] {
        b.say(ALICE, &command).await;
    }
    assert_eq!(b.balance(ALICE), 30);
    let bob = b.app().app.store.user(UserId::new(BOB)).unwrap().unwrap();
    assert!(!bob.banned);
    assert_eq!(b.tg.transcript(BOB), before, "no broadcast");
    let transcript = b.transcript(ALICE);
    let from = transcript.rfind("> /start").unwrap();
    insta::assert_snapshot!(format!("not_an_admin_{lang}"), &transcript[from..]);
    b.stop().await;
}

/// An admin's edits are free: the card says so and nothing is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_admin_edits_are_free() {
    let (b, _) = world("en").await;
    b.photo(ADMIN, jpeg(64, 48)).await;
    b.press_key(ADMIN, "en", "write-own").await;
    b.say(ADMIN, "make the sky purple").await;
    let card = b.with_button(ADMIN, &b.t("en", "btn-confirm"));
    assert!(card.text.contains("Free (admin)"), "{}", card.text);
    b.press_key(ADMIN, "en", "btn-confirm").await;
    assert_eq!(b.balance(ADMIN), 60);
    let job = b.jobs(ADMIN)[0];
    let record = b.app().app.queue.get(job).unwrap().unwrap();
    assert!(record.price().is_zero());
    b.stop().await;
}
