//! Conversations with the bot, written as a user's actions; each transcript is snapshotted in
//! Russian and English (`ru_en!` makes the two tests of a flow).

use crate::support::bot::{BotTest, Setup, jpeg, ru_en};
use crate::support::fake_comfy::Behavior;

const ALICE: i64 = 1001;

/// A run long enough for the progress bar to move (ComfyUI reports 10 steps over 2 s).
const VISIBLE_PROGRESS: Behavior = Behavior::Succeed {
    steps: 10,
    step_ms: 200,
};

async fn started(setup: Setup, lang: &str) -> BotTest {
    let b = BotTest::with(setup).await;
    b.tg.set_language(ALICE, lang);
    b.say(ALICE, "/start").await;
    b
}

ru_en!(registration_and_menu);
/// `/start`, the menus (a category's pages too), the profile, help.
async fn registration_and_menu(lang: &str) {
    let b = started(Setup::default(), lang).await;
    assert_eq!(b.balance(ALICE), 60, "welcome points");
    b.press_key(ALICE, lang, "menu-styles").await;
    b.press_key(ALICE, lang, "cat-styles").await;
    b.press_key(ALICE, lang, "nav-next").await;
    b.press_key(ALICE, lang, "nav-prev").await;
    b.press_key(ALICE, lang, "nav-back").await;
    b.press_key(ALICE, lang, "menu-back").await;
    b.press_key(ALICE, lang, "menu-profile").await;
    b.press_key(ALICE, lang, "btn-recent").await;
    b.press_key(ALICE, lang, "btn-payments").await;
    b.press_key(ALICE, lang, "menu-help").await;
    b.say(ALICE, "/menu").await;
    b.say(ALICE, "/help").await;
    insta::assert_snapshot!(format!("registration_and_menu_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(preset_first);
/// Category → preset → photo → confirm card → queued → progress → result, then every button
/// under the result: as file, another take, another style, edit further, menu.
async fn preset_first(lang: &str) {
    let b = started(Setup::default().billing("welcome_points = 100"), lang).await;
    b.comfy.as_ref().unwrap().set_default(VISIBLE_PROGRESS);
    b.press_key(ALICE, lang, "menu-styles").await;
    b.press_key(ALICE, lang, "cat-styles").await;
    b.press(ALICE, "🎌").await;
    b.photo(ALICE, jpeg(64, 48)).await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, lang, "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    assert_eq!(b.balance(ALICE), 70);

    b.press_key(ALICE, lang, "btn-as-file").await;
    let file = b.tg.last_message(ALICE);
    assert_eq!(file.kind, "document");
    assert!(image::load_from_memory(file.file.as_ref().unwrap()).is_ok());

    b.press_key(ALICE, lang, "btn-again").await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, lang, "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    assert_eq!(b.balance(ALICE), 40);
    let jobs = b.jobs(ALICE);
    assert_eq!(jobs.len(), 2);
    let seeds: Vec<u64> = jobs
        .iter()
        .map(|j| b.app().app.queue.get(*j).unwrap().unwrap().spec().seed)
        .collect();
    assert_ne!(seeds[0], seeds[1], "another take has a new seed");

    b.press_key(ALICE, lang, "btn-another").await;
    b.press_key(ALICE, lang, "cat-lighting").await;
    b.press(ALICE, "🕯️").await;
    b.press_key(ALICE, lang, "btn-cancel").await;

    b.press_key(ALICE, lang, "btn-further").await;
    b.press_key(ALICE, lang, "write-own").await;
    b.say(ALICE, "add a red hat").await;
    b.press_key(ALICE, lang, "btn-cancel").await;

    b.press_key(ALICE, lang, "btn-menu").await;
    assert_eq!(b.balance(ALICE), 40);
    insta::assert_snapshot!(format!("preset_first_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(photo_first);
/// A photo first, then a style; "Change" on the card goes back to choosing.
async fn photo_first(lang: &str) {
    let b = started(Setup::default(), lang).await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, lang, "choose-style").await;
    b.press_key(ALICE, lang, "cat-lighting").await;
    b.press(ALICE, "🕯️").await;
    b.press_key(ALICE, lang, "btn-change").await;
    b.press_key(ALICE, lang, "choose-style").await;
    b.press_key(ALICE, lang, "cat-animation").await;
    b.press(ALICE, "🧱").await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, lang, "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    assert_eq!(b.balance(ALICE), 30);
    let job = b.jobs(ALICE)[0];
    let spec = b.app().app.queue.get(job).unwrap().unwrap().spec();
    assert_eq!(spec.preset.as_deref(), Some("brick_toy"));
    insta::assert_snapshot!(format!("photo_first_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(own_prompt_one_photo);
/// "Own prompt" before any photo: the bot asks for one, then for the text.
async fn own_prompt_one_photo(lang: &str) {
    let b = started(Setup::default(), lang).await;
    b.press_key(ALICE, lang, "menu-own").await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.say(ALICE, "hi").await; // too short
    b.say(ALICE, "make  the sky   purple").await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, lang, "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    let prompts = b.comfy.as_ref().unwrap().prompts();
    assert_eq!(prompts.len(), 1);
    assert!(prompts[0].graph.to_string().contains("make the sky purple"));
    assert_eq!(b.balance(ALICE), 30);
    insta::assert_snapshot!(format!("own_prompt_one_photo_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(own_prompt_two_photos);
/// "Two photos": one by one, then an own prompt for both.
async fn own_prompt_two_photos(lang: &str) {
    let b = started(Setup::default(), lang).await;
    b.press_key(ALICE, lang, "menu-two").await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.photo(ALICE, jpeg(48, 64)).await;
    b.say(ALICE, "put the person from the first photo into the second")
        .await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, lang, "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    let job = b.jobs(ALICE)[0];
    let spec = b.app().app.queue.get(job).unwrap().unwrap().spec();
    assert_eq!(spec.inputs.len(), 2);
    assert_eq!(spec.preset, None);
    assert_eq!(b.comfy.as_ref().unwrap().uploads().len(), 2);
    insta::assert_snapshot!(format!("own_prompt_two_photos_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(two_photo_preset_by_album);
/// A two-photo preset (virtual try-on) with both photos in one album.
async fn two_photo_preset_by_album(lang: &str) {
    let b = started(Setup::default(), lang).await;
    b.press_key(ALICE, lang, "menu-styles").await;
    b.press_key(ALICE, lang, "cat-combine").await;
    b.press(ALICE, "👗").await;
    b.album(ALICE, vec![jpeg(64, 48), jpeg(48, 64)]).await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, lang, "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    let job = b.jobs(ALICE)[0];
    let spec = b.app().app.queue.get(job).unwrap().unwrap().spec();
    assert_eq!(spec.preset.as_deref(), Some("tryon"));
    assert_eq!(spec.inputs.len(), 2);
    insta::assert_snapshot!(
        format!("two_photo_preset_by_album_{lang}"),
        b.transcript(ALICE)
    );
    b.stop().await;
}

ru_en!(cancel_while_queued);
/// No ComfyUI is up, so the job waits; cancelling it returns the points.
async fn cancel_while_queued(lang: &str) {
    let b = started(Setup::default().no_comfy(), lang).await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, lang, "choose-style").await;
    b.press_key(ALICE, lang, "cat-styles").await;
    b.press(ALICE, "🎌").await;
    b.press_key(ALICE, lang, "btn-confirm").await;
    assert_eq!(b.balance(ALICE), 30, "held while queued");
    b.press_key(ALICE, lang, "btn-cancel-job").await;
    assert_eq!(b.balance(ALICE), 60, "returned");
    let job = b.jobs(ALICE)[0];
    let state = b.app().app.queue.get(job).unwrap().unwrap().state();
    assert_eq!(state, qwenedit::domain::JobState::Cancelled);
    insta::assert_snapshot!(format!("cancel_while_queued_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(failure_with_refund);
/// ComfyUI fails every attempt: the user gets the points back and a plain message in their
/// language, never the raw error.
async fn failure_with_refund(lang: &str) {
    let b = started(Setup::default(), lang).await;
    b.comfy
        .as_ref()
        .unwrap()
        .set_default(Behavior::ExecutionError);
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, lang, "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    b.press_key(ALICE, lang, "btn-confirm").await;
    let failed = b.t(lang, "failed-free");
    let failed = failed.split('.').next().unwrap();
    b.wait_text(ALICE, failed).await;
    assert_eq!(b.balance(ALICE), 60, "points back");
    let transcript = b.transcript(ALICE);
    let said: Vec<&str> = transcript.lines().filter(|l| l.starts_with('<')).collect();
    for raw in ["Error", "error", "/", "safetensors", "Traceback", "comfy"] {
        assert!(
            !said.iter().any(|l| l.contains(raw)),
            "{raw:?} shown:\n{transcript}"
        );
    }
    insta::assert_snapshot!(format!("failure_with_refund_{lang}"), transcript);
    b.stop().await;
}

ru_en!(balance_too_low);
/// Ten points and an edit at thirty: the card offers a top-up instead of starting.
async fn balance_too_low(lang: &str) {
    let b = started(
        Setup::default().no_comfy().billing("welcome_points = 10"),
        lang,
    )
    .await;
    b.press_key(ALICE, lang, "menu-styles").await;
    b.press_key(ALICE, lang, "cat-portraits").await;
    b.press(ALICE, "✨").await;
    b.photo(ALICE, jpeg(64, 48)).await;
    assert!(
        b.with_button(ALICE, &b.t(lang, "btn-topup"))
            .buttons()
            .len()
            == 3,
        "top up, change, cancel"
    );
    b.press_key(ALICE, lang, "btn-topup").await;
    assert!(b.jobs(ALICE).is_empty());
    assert_eq!(b.balance(ALICE), 10);
    insta::assert_snapshot!(format!("balance_too_low_{lang}"), b.transcript(ALICE));
    b.stop().await;
}
