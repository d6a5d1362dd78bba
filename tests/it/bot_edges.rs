//! The bot at its edges: menus pressed mid-flow, restarts, repeated updates, forged buttons,
//! files it cannot use, refused prompts, languages, plurals, flooding, and Telegram's rate
//! limits on progress edits.

use std::time::Duration;

use qwenedit::domain::{JobState, Points, Reason, UserId};
use qwenedit::ops::{self, TopupRequest};

use crate::support::bot::{BotTest, Setup, heic, jpeg, ru_en};
use crate::support::fake_comfy::Behavior;
use crate::support::fake_telegram::AlbumItem;

const ALICE: i64 = 1001;
const BOB: i64 = 1002;

async fn started(setup: Setup, lang: &str) -> BotTest {
    let b = BotTest::with(setup).await;
    b.tg.set_language(ALICE, lang);
    b.say(ALICE, "/start").await;
    b
}

ru_en!(menu_button_mid_flow);
/// A reply-keyboard button pressed while a prompt is expected opens the menu entry (in either
/// language's labels); it is never taken for the prompt.
async fn menu_button_mid_flow(lang: &str) {
    let b = started(Setup::default().no_comfy(), lang).await;
    b.press_key(ALICE, lang, "menu-own").await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.say(ALICE, &b.t(lang, "menu-styles")).await;
    let other = if lang == "ru" { "en" } else { "ru" };
    b.say(ALICE, &b.t(other, "menu-profile")).await;
    b.say(ALICE, &b.t(lang, "menu-help")).await;
    let cards =
        b.tg.messages(ALICE)
            .iter()
            .filter(|m| m.buttons().contains(&b.t(lang, "btn-confirm")))
            .count();
    assert_eq!(cards, 0, "no menu label became a prompt");
    // The photo is still waiting for its prompt.
    b.say(ALICE, "make the sky purple").await;
    b.with_button(ALICE, &b.t(lang, "btn-confirm"));
    b.say(ALICE, "/cancel").await;
    b.say(ALICE, "/cancel").await;
    insta::assert_snapshot!(format!("menu_button_mid_flow_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(restart_mid_dialogue);
/// The app stops and starts again on the same data dir between the steps: the chosen preset
/// and the confirm card carry on, and a later /start brings no second welcome.
async fn restart_mid_dialogue(lang: &str) {
    let mut b = started(Setup::default(), lang).await;
    b.comfy.as_ref().unwrap().set_default(Behavior::Succeed {
        steps: 10,
        step_ms: 200,
    });
    b.press_key(ALICE, lang, "menu-styles").await;
    b.press_key(ALICE, lang, "cat-styles").await;
    b.press(ALICE, "🎌").await;
    b.restart().await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.restart().await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, lang, "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    assert_eq!(b.balance(ALICE), 30);
    b.restart().await;
    b.say(ALICE, "/start").await;
    assert_eq!(b.balance(ALICE), 30, "no second welcome");
    insta::assert_snapshot!(format!("restart_mid_dialogue_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

/// A restart while ComfyUI runs the job: its result still arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_a_job_running_at_a_restart_is_delivered_once() {
    let mut b = started(Setup::default(), "en").await;
    b.comfy.as_ref().unwrap().set_default(Behavior::Succeed {
        steps: 10,
        step_ms: 200,
    });
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, "en", "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, "en", "btn-confirm").await;
    b.wait_text(ALICE, &b.t("en", "starting")).await;
    b.restart().await;
    b.wait_result(ALICE, mark).await;
    let job = b.jobs(ALICE)[0];
    let state = b.app().app.queue.get(job).unwrap().unwrap().state();
    assert_eq!(state, JobState::Succeeded);
    let results =
        b.tg.messages(ALICE)
            .iter()
            .filter(|m| m.kind == "photo")
            .count();
    assert_eq!(results, 1, "delivered once");
    assert_eq!(b.balance(ALICE), 30);
    b.stop().await;
}

/// Once ComfyUI runs a job, the cancel button is gone from the status message; a tap that was
/// already on its way is told it is too late, and nothing is refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_a_running_job_cannot_be_cancelled() {
    let b = started(Setup::default(), "en").await;
    b.comfy.as_ref().unwrap().set_default(Behavior::Hang);
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, "en", "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    let card = b.with_button(ALICE, &b.t("en", "btn-confirm"));
    b.press_key(ALICE, "en", "btn-confirm").await;
    let status = b.wait_text(ALICE, &b.t("en", "starting")).await;
    assert!(status.buttons().is_empty());
    let job = b.jobs(ALICE)[0];
    b.act(|| b.tg.press(ALICE, card.id, &format!("cj:{job}")))
        .await;
    assert_eq!(b.tg.last_message(ALICE).text, b.t("en", "job-cancel-late"));
    assert_eq!(b.balance(ALICE), 30, "still held");
    let state = b.app().app.queue.get(job).unwrap().unwrap().state();
    assert_eq!(state, JobState::Running);
    b.stop().await;
}

ru_en!(duplicate_updates);
/// Telegram repeats an update (same `update_id`): a command and a confirm are handled once.
async fn duplicate_updates(lang: &str) {
    let b = started(Setup::default().no_comfy(), lang).await;
    b.tg.repeat_last_update();
    b.say(ALICE, "/balance").await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, lang, "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    b.press_key(ALICE, lang, "btn-confirm").await;
    b.tg.repeat_last_update();
    b.say(ALICE, "/balance").await;
    assert_eq!(b.jobs(ALICE).len(), 1, "one job");
    assert_eq!(b.balance(ALICE), 30, "charged once");
    let welcomes = b
        .app()
        .app
        .store
        .ledger_tail(UserId::new(ALICE), 100)
        .unwrap()
        .iter()
        .filter(|e| e.reason == Reason::Welcome)
        .count();
    assert_eq!(welcomes, 1);
    insta::assert_snapshot!(format!("duplicate_updates_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_a_double_tap_on_confirm_starts_one_job_and_keeps_the_status() {
    let b = started(Setup::default().no_comfy(), "en").await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, "en", "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    let card = b.with_button(ALICE, &b.t("en", "btn-confirm"));
    let data = card.callback_data(&b.t("en", "btn-confirm"));
    b.act(|| {
        b.tg.press(ALICE, card.id, &data);
        b.tg.press(ALICE, card.id, &data);
    })
    .await;
    assert_eq!(b.jobs(ALICE).len(), 1);
    assert_eq!(b.balance(ALICE), 30);
    let status =
        b.tg.messages(ALICE)
            .into_iter()
            .find(|m| m.id == card.id)
            .unwrap();
    assert!(
        status.text.contains("⏳"),
        "the status message still shows the queue: {}",
        b.transcript(ALICE)
    );
    assert_eq!(status.buttons(), vec![b.t("en", "btn-cancel-job")]);
    b.stop().await;
}

/// At most `telegram.max_active_jobs` (2) edits at once per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_too_many_jobs_at_once() {
    let b = started(
        Setup::default().no_comfy().billing("welcome_points = 100"),
        "en",
    )
    .await;
    for _ in 0..3 {
        b.photo(ALICE, jpeg(64, 48)).await;
        b.press_key(ALICE, "en", "choose-style").await;
        b.press_key(ALICE, "en", "cat-styles").await;
        b.press(ALICE, "🎌").await;
        b.press_key(ALICE, "en", "btn-confirm").await;
    }
    assert_eq!(b.jobs(ALICE).len(), 2);
    assert_eq!(b.balance(ALICE), 40);
    let transcript = b.transcript(ALICE);
    let from = transcript.rfind("> [photo").unwrap();
    insta::assert_snapshot!("too_many_jobs", &transcript[from..]);
    b.stop().await;
}

ru_en!(forged_callbacks);
/// Button data nobody sent — malformed, stale, someone else's job — is answered gracefully and
/// changes nothing.
async fn forged_callbacks(lang: &str) {
    let b = started(Setup::default().no_comfy(), lang).await;
    b.tg.set_language(BOB, lang);
    b.say(BOB, "/start").await;
    // Bob queues a job (no ComfyUI is up, so it stays queued).
    b.photo(BOB, jpeg(64, 48)).await;
    b.press_key(BOB, lang, "write-own").await;
    b.say(BOB, "make the sky purple").await;
    b.press_key(BOB, lang, "btn-confirm").await;
    let bobs = b.jobs(BOB)[0].to_string();
    assert_eq!(b.balance(BOB), 30);

    let menu = b.mark(ALICE);
    for data in [
        "zzz".to_string(),
        "l:de".to_string(),
        "x".repeat(64),
        "p:no_such_preset".to_string(),
        "ok:12345".to_string(),
        format!("cj:{bobs}"),
        format!("f:{bobs}"),
        format!("e:{bobs}"),
    ] {
        b.act(|| b.tg.press(ALICE, menu, &data)).await;
    }
    let state = b
        .app()
        .app
        .queue
        .get(b.jobs(BOB)[0])
        .unwrap()
        .unwrap()
        .state();
    assert_eq!(state, JobState::Queued, "Bob's job untouched");
    assert_eq!(b.balance(BOB), 30);
    assert_eq!(b.balance(ALICE), 60);
    assert!(b.jobs(ALICE).is_empty());
    let mut transcript = b.transcript(ALICE);
    transcript = transcript.replace(&bobs, "<job of another user>");
    insta::assert_snapshot!(format!("forged_callbacks_{lang}"), transcript);
    b.stop().await;
}

ru_en!(files_it_cannot_use);
/// A HEIC file, a file over Telegram's 20 MB download limit (refused without downloading), a
/// video, an album with a video and one with too many photos; then a PNG sent as a file works.
async fn files_it_cannot_use(lang: &str) {
    let b = started(Setup::default().no_comfy(), lang).await;
    b.act(|| {
        b.tg.send_document(ALICE, heic(), "IMG_0001.HEIC", "image/heic")
    })
    .await;
    b.act(|| {
        b.tg.send_document(ALICE, vec![0xFF; 21 << 20], "huge.jpg", "image/jpeg")
    })
    .await;
    let downloads: Vec<String> =
        b.tg.calls()
            .iter()
            .filter(|c| c.method == "getFile" || c.method == "download")
            .map(|c| c.params.to_string())
            .collect();
    assert_eq!(
        downloads.len(),
        2,
        "only the HEIC was fetched: {downloads:?}"
    );
    b.act(|| {
        b.tg.send_album_mixed(
            ALICE,
            vec![AlbumItem::Photo(jpeg(64, 48)), AlbumItem::Video],
        )
    })
    .await;
    b.album(ALICE, (0..4).map(|_| jpeg(64, 48)).collect()).await;
    b.act(|| {
        b.tg.send_raw_update(serde_json::json!({ "message": {
            "message_id": 900,
            "from": { "id": ALICE, "is_bot": false, "first_name": "Alice", "language_code": lang },
            "chat": { "id": ALICE, "type": "private", "first_name": "Alice" },
            "date": 1_700_000_000,
            "video": { "file_id": "v1", "file_unique_id": "v1u", "file_size": 1000,
                       "width": 640, "height": 360, "duration": 3, "mime_type": "video/mp4" },
        }}))
    })
    .await;
    b.act(|| {
        b.tg.send_document(
            ALICE,
            crate::support::app::png(80, 60),
            "photo.png",
            "image/png",
        )
    })
    .await;
    b.with_button(ALICE, &b.t(lang, "choose-style"));
    insta::assert_snapshot!(format!("files_it_cannot_use_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

ru_en!(refused_prompt);
/// A deny-listed prompt is refused politely (and written to the audit trail); a fine one is not.
async fn refused_prompt(lang: &str) {
    let b = started(Setup::default().no_comfy(), lang).await;
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, lang, "write-own").await;
    b.say(ALICE, "make her n u d e").await;
    b.say(ALICE, "сделай её голой").await;
    b.say(ALICE, "add a straw hat").await;
    b.with_button(ALICE, &b.t(lang, "btn-confirm"));
    let audit = b.app().app.store.bot_scan("audit:").unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    insta::assert_snapshot!(format!("refused_prompt_{lang}"), b.transcript(ALICE));
    b.stop().await;
}

/// `/lang` switches, the profile's button switches back; old keyboard labels still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_lang_switching() {
    let b = started(Setup::default().no_comfy(), "ru").await;
    b.say(ALICE, "/lang").await;
    b.say(ALICE, "/balance").await;
    b.say(ALICE, "👤 Профиль").await; // the Russian keyboard, still on screen
    b.press_key(ALICE, "en", "btn-lang").await;
    b.say(ALICE, "/balance").await;
    b.tg.set_language(ALICE, "en"); // Telegram's language does not override the choice
    b.say(ALICE, "/help").await;
    let user = b.app().app.store.user(UserId::new(ALICE)).unwrap().unwrap();
    assert_eq!(user.language.as_deref(), Some("ru"));
    insta::assert_snapshot!("lang_switching", b.transcript(ALICE));
    b.stop().await;
}

ru_en!(balance_plurals);
/// `/balance` at 1, 2, 5, 21 and 12 points (Russian: 1 балл, 2 балла, 5 баллов).
async fn balance_plurals(lang: &str) {
    let b = started(
        Setup::default().no_comfy().billing("welcome_points = 1"),
        lang,
    )
    .await;
    for add in [0, 1, 3, 16] {
        if add > 0 {
            topup(&b, ALICE, add);
        }
        b.say(ALICE, "/balance").await;
    }
    // Nine points held by a job (not sent through the bot) leave twelve.
    let app = &b.app().app;
    let spend = ops::submit_edit(
        app,
        qwenedit::domain::JobId::new(),
        qwenedit::domain::JobSpec {
            user: UserId::new(ALICE),
            chat: None,
            inputs: vec![b.app().input(&crate::support::app::png(8, 8))],
            preset: None,
            prompt: Some("x".into()),
            workflow: "qwen-image-edit-2511".into(),
            seed: 1,
            price: Points::new(9),
            lane: qwenedit::domain::Lane::Normal,
        },
    );
    spend.unwrap();
    b.say(ALICE, "/balance").await;
    assert_eq!(b.balance(ALICE), 12);
    let text = b.transcript(ALICE);
    if lang == "ru" {
        for want in ["1 балл.", "2 балла.", "5 баллов.", "21 балл.", "12 баллов."]
        {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }
    insta::assert_snapshot!(format!("balance_plurals_{lang}"), text);
    b.stop().await;
}

fn topup(b: &BotTest, user: i64, points: u32) {
    ops::topup(
        &b.app().app,
        TopupRequest {
            user: UserId::new(user),
            points: Points::new(points),
            note: None,
            create: false,
            idempotency_key: None,
        },
    )
    .unwrap();
}

/// Welcome points come once: not again on a second /start, nor after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_welcome_points_are_credited_once() {
    let mut b = started(Setup::default().no_comfy(), "ru").await;
    b.say(ALICE, "/start").await;
    b.restart().await;
    b.say(ALICE, "/start").await;
    assert_eq!(b.balance(ALICE), 60);
    let ledger = b
        .app()
        .app
        .store
        .ledger_tail(UserId::new(ALICE), 100)
        .unwrap();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0].reason, Reason::Welcome);
    let check = b.app().app.store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
    insta::assert_snapshot!("welcome_once", b.transcript(ALICE));
    b.stop().await;
}

/// On startup the bot sets its commands and descriptions: default (Russian), ru and en.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_sets_its_commands_in_both_languages() {
    let b = BotTest::with(Setup::default().no_comfy()).await;
    b.tg.wait_for_call("getUpdates", |_| true).await;
    let calls = b.tg.calls();
    let commands = |lang: Option<&str>| {
        calls
            .iter()
            .find(|c| {
                c.method == "setMyCommands"
                    && c.params.get("language_code").and_then(|l| l.as_str()) == lang
            })
            .unwrap_or_else(|| panic!("no setMyCommands for {lang:?}"))
            .params["commands"]
            .clone()
    };
    let listed = |lang| -> Vec<(String, String)> {
        commands(lang)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["command"].as_str().unwrap().to_string(),
                    c["description"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let ru = listed(Some("ru"));
    let en = listed(Some("en"));
    assert_eq!(listed(None), ru, "the default list is the Russian one");
    let names: Vec<&str> = en.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["menu", "help", "balance", "cancel", "lang"]);
    assert_eq!(en[0].1, "Main menu");
    assert_eq!(ru[0].1, "Главное меню");
    for lang in ["ru", "en"] {
        assert!(
            calls
                .iter()
                .any(|c| c.method == "setMyDescription" && c.params["language_code"] == lang),
            "setMyDescription {lang}"
        );
    }
    b.stop().await;
}

/// Progress edits of one chat come at most about once a second: 20 steps of 60 ms give many
/// progress events, but the status message is edited only on the chat's turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_progress_edits_are_at_most_one_per_second() {
    let b = started(Setup::default(), "en").await;
    b.comfy.as_ref().unwrap().set_default(Behavior::Succeed {
        steps: 20,
        step_ms: 60,
    });
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, "en", "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, "en", "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    let edits = status_edits(&b, ALICE);
    let starting = b.t("en", "starting");
    let first = edits
        .iter()
        .position(|(_, text)| *text == starting)
        .expect("a starting edit");
    let worker_edits = &edits[first..];
    assert!(
        worker_edits.len() >= 3,
        "starting, progress, done: {worker_edits:?}"
    );
    for pair in worker_edits.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0);
        assert!(
            gap >= Duration::from_millis(950),
            "{:?} then {:?} after {gap:?}",
            pair[0].1,
            pair[1].1
        );
    }
    b.stop().await;
}

/// A 429 on a progress edit is honoured: no edit of that chat until `retry_after` has passed,
/// and the result still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_flood_control_on_an_edit_is_honoured() {
    let b = started(Setup::default(), "en").await;
    b.comfy.as_ref().unwrap().set_default(Behavior::Succeed {
        steps: 20,
        step_ms: 60,
    });
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, "en", "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, "en", "btn-confirm").await;
    let starting = b.t("en", "starting");
    b.tg.wait_for_call("editMessageText", |p| p["text"] == starting.as_str())
        .await;
    b.tg.fail_next(
        "editMessageText",
        429,
        "Too Many Requests: retry after 2",
        Some(2),
    );
    b.wait_result(ALICE, mark).await;
    let edits = status_edits(&b, ALICE);
    let at = edits
        .iter()
        .position(|(_, text)| text == &starting)
        .unwrap();
    let refused = edits[at + 1].0; // the next edit got the 429
    for (time, text) in &edits[at + 2..] {
        let after = time.duration_since(refused);
        assert!(
            after >= Duration::from_millis(1950),
            "{text:?} only {after:?} after the 429"
        );
    }
    let done = b.t("en", "done");
    assert_eq!(edits.last().unwrap().1, done, "the status still ends done");
    b.stop().await;
}

/// The times and texts of every editMessageText call for the chat, in order.
fn status_edits(b: &BotTest, chat: i64) -> Vec<(std::time::Instant, String)> {
    b.tg.calls()
        .iter()
        .filter(|c| c.method == "editMessageText" && c.params["chat_id"] == chat)
        .map(|c| (c.time, c.params["text"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// Over `flood_per_minute`, the user is asked once to slow down; the rest is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_flooding_user_is_slowed_down() {
    let b = BotTest::with(Setup::default().no_comfy().telegram("flood_per_minute = 3")).await;
    b.act(|| {
        for text in [
            "/start", "/balance", "/help", "/balance", "/balance", "/menu",
        ] {
            b.tg.send_text(ALICE, text);
        }
    })
    .await;
    b.say(BOB, "/balance").await;
    insta::assert_snapshot!("flooding", b.transcript(ALICE));
    assert!(b.transcript(BOB).contains("60"), "others are not affected");
    b.stop().await;
}
