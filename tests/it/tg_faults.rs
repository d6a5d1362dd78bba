//! Telegram failing under the bot: a file download breaking off, `getUpdates` failing at the
//! network level, a 5xx on `sendPhoto`. Each ends with the user served (or told to retry) and
//! nothing charged twice.

use crate::support::bot::{BotTest, Setup, jpeg};

const USER: i64 = 7070;

async fn started() -> BotTest {
    let b = BotTest::with(Setup::default()).await;
    b.tg.set_language(USER, "en");
    b.say(USER, "/start").await;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_download_is_told_and_the_next_photo_works() {
    let b = started().await;
    // A download is tried three times before the user is told.
    b.tg.fail_file_downloads(3);
    b.photo(USER, jpeg(64, 48)).await;
    b.wait_text(USER, "couldn't download the file").await;
    b.photo(USER, jpeg(64, 48)).await;
    let last = b.tg.last_message(USER);
    assert!(
        !last.text.contains("couldn't download"),
        "{}",
        b.transcript(USER)
    );
    assert!(!last.keyboard.is_empty(), "{}", b.transcript(USER));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_updates_network_errors_are_retried() {
    let b = started().await;
    let polls = |b: &BotTest| {
        b.tg.calls()
            .iter()
            .filter(|c| c.method == "getUpdates")
            .count()
    };
    // Counted from here: the three broken polls may come before or after the first answer.
    let before = polls(&b);
    b.tg.fail_get_updates(3);
    // The parked long poll brings this one; the next three polls break off.
    let mark = b.mark(USER);
    b.tg.send_text(USER, "/balance");
    b.tg.wait_for_message(USER, |m| m.id > mark && m.text.starts_with("You have"))
        .await;
    let mark = b.mark(USER);
    b.tg.send_text(USER, "/balance");
    let m =
        b.tg.wait_for_message(USER, |m| m.id > mark && m.text.starts_with("You have"))
            .await;
    assert_eq!(m.text, "You have 60 points.");
    assert!(
        polls(&b) - before >= 4,
        "answered after three failed polls and a good one"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_on_send_photo_delivers_the_result_as_a_document() {
    let b = started().await;
    b.tg.fail_next("sendPhoto", 500, "Internal Server Error", None);
    b.press_key(USER, "en", "menu-own").await;
    b.photo(USER, jpeg(64, 48)).await;
    b.say(USER, "make the sky purple").await;
    let mark = b.mark(USER);
    b.press_key(USER, "en", "btn-confirm").await;
    let result =
        b.tg.wait_for_message(USER, |m| m.id > mark && m.kind == "document")
            .await;
    assert!(image::load_from_memory(result.file.as_ref().unwrap()).is_ok());
    b.tg.wait_idle().await;
    let results =
        b.tg.messages(USER)
            .iter()
            .filter(|m| m.kind == "photo" || m.kind == "document")
            .count();
    assert_eq!(results, 1, "{}", b.transcript(USER));
    assert_eq!(b.balance(USER), 30, "charged once");
    assert_eq!(
        b.comfy.as_ref().unwrap().prompts().len(),
        1,
        "the job is not run again"
    );
    let photos =
        b.tg.calls()
            .iter()
            .filter(|c| c.method == "sendPhoto")
            .count();
    assert_eq!(photos, 1, "sendPhoto is not repeated after a 5xx");
    b.stop().await;
}
