//! Faults on the Telegram side and a full disk (issue #8, "Faults"): each ends in success on a
//! retry, or in a clear message with nothing charged; no update is lost or handled twice, and
//! no job is run twice. (ComfyUI faults are in `worker.rs` and `comfy_client.rs`; a 5xx on
//! `sendPhoto` in `tg_faults.rs`; the floor through ops and the API in `disk_full.rs`.)

use std::time::Duration;

use crate::support::bot::{BotTest, Setup, jpeg};

const ALICE: i64 = 1001;

async fn started(setup: Setup) -> BotTest {
    let b = BotTest::with(setup).await;
    b.tg.set_language(ALICE, "en");
    b.say(ALICE, "/start").await;
    b
}

/// Alice's photo, her own prompt, and the confirm card (not pressed yet).
async fn draft(b: &BotTest) {
    b.photo(ALICE, jpeg(64, 48)).await;
    b.press_key(ALICE, "en", "write-own").await;
    b.say(ALICE, "make the sky purple").await;
    b.with_button(ALICE, &b.t("en", "btn-confirm"));
}

fn assert_ledger_consistent(b: &BotTest) {
    let check = b.app().app.store.verify_ledger().unwrap();
    assert!(check.is_consistent(), "{check:?}");
}

/// A 429 with `retry_after` on a reply: the bot waits that long, then the reply arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_429_on_a_reply_is_waited_out() {
    let b = started(Setup::default().no_comfy()).await;
    b.tg.fail_next(
        "sendMessage",
        429,
        "Too Many Requests: retry after 1",
        Some(1),
    );
    let since = std::time::Instant::now();
    let mark = b.mark(ALICE);
    b.say(ALICE, "/balance").await;
    // The bot is quiet while it waits out the flood control: wait for the reply itself.
    b.tg.wait_for_message(ALICE, |m| m.id > mark).await;
    b.tg.wait_idle().await;
    let sends: Vec<_> =
        b.tg.calls()
            .into_iter()
            .filter(|c| c.method == "sendMessage" && c.time >= since)
            .collect();
    let [refused, sent] = sends.as_slice() else {
        panic!("{sends:?}")
    };
    let waited = sent.time.duration_since(refused.time);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    let transcript = b.transcript(ALICE);
    assert_eq!(
        transcript.matches("< You have 60 points.").count(),
        1,
        "{transcript}"
    );
    b.stop().await;
}

/// A download that breaks off once is retried and works; one that keeps breaking off is
/// reported to the user, nothing is held, and the next photo works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_file_downloads_breaking_off() {
    let b = started(Setup::default().no_comfy()).await;
    b.tg.fail_file_downloads(1);
    b.photo(ALICE, jpeg(64, 48)).await;
    b.with_button(ALICE, &b.t("en", "choose-style"));
    b.press_key(ALICE, "en", "btn-cancel").await;

    b.tg.fail_file_downloads(3);
    let mark = b.mark(ALICE);
    b.photo(ALICE, jpeg(64, 48)).await;
    // The retries wait a little between attempts: wait for the answer itself.
    let told = b.t("en", "bad-download");
    b.tg.wait_for_message(ALICE, |m| m.id > mark && m.text == told)
        .await;
    b.tg.wait_idle().await;
    assert_eq!(b.balance(ALICE), 60);
    assert!(b.jobs(ALICE).is_empty());

    b.photo(ALICE, jpeg(64, 48)).await;
    b.with_button(ALICE, &b.t("en", "choose-style"));
    let downloads =
        b.tg.calls()
            .iter()
            .filter(|c| c.method == "download")
            .count();
    assert_eq!(downloads, 2 + 3 + 1, "retried, then given up, then fine");
    assert_ledger_consistent(&b);
    insta::assert_snapshot!("fault_downloads", b.transcript(ALICE));
    b.stop().await;
}

/// `getUpdates` failing at the network level three times: the bot backs off (longer each
/// time), then gets the updates sent meanwhile, each handled exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_get_updates_network_errors_lose_and_double_nothing() {
    let b = started(Setup::default().no_comfy()).await;
    b.tg.fail_get_updates(3);
    // The poll in flight answers this one; the next three polls break.
    b.say(ALICE, "/balance").await;
    // Sent while the bot is backing off.
    b.act(|| {
        b.tg.send_text(ALICE, "/help");
        b.tg.send_text(ALICE, "/balance");
    })
    .await;
    let polls: Vec<_> =
        b.tg.calls()
            .into_iter()
            .filter(|c| c.method == "getUpdates")
            .collect();
    // The three failed polls and the good one after them ask for the same offset.
    let offsets: Vec<i64> = polls
        .iter()
        .map(|c| c.params.get("offset").and_then(|o| o.as_i64()).unwrap_or(0))
        .collect();
    let repeated = offsets
        .iter()
        .copied()
        .find(|o| offsets.iter().filter(|x| *x == o).count() == 4)
        .unwrap_or_else(|| panic!("no offset asked four times: {offsets:?}"));
    let times: Vec<_> = polls
        .iter()
        .zip(&offsets)
        .filter(|(_, o)| **o == repeated)
        .map(|(c, _)| c.time)
        .collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, at_least) in gaps.iter().zip([500, 1000, 1500]) {
        assert!(
            *gap >= Duration::from_millis(at_least - 50),
            "backoff {gaps:?}"
        );
    }
    let transcript = b.transcript(ALICE);
    assert_eq!(transcript.matches("> /balance").count(), 2, "{transcript}");
    assert_eq!(transcript.matches("> /help").count(), 1, "{transcript}");
    insta::assert_snapshot!("fault_get_updates", transcript);
    b.stop().await;
}

/// Sets `storage.min_free_mb` in the test app's config file (read again at the next restart).
fn set_min_free(b: &BotTest, mb: u64) {
    let path = b.app().dir.path().join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("min_free_mb"))
        .map(str::to_string)
        .collect();
    let at = lines.iter().position(|l| l == "[storage]").unwrap();
    lines.insert(at + 1, format!("min_free_mb = {mb}"));
    std::fs::write(&path, lines.join("\n")).unwrap();
}

/// A disk with less free space than `storage.min_free_mb` (the floor set above the real free
/// space): a new job and a new photo are refused with a clear message, before anything is
/// held or downloaded; once there is room again the same card works and the job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_full_disk_refuses_new_work_and_corrupts_nothing() {
    let mut b = started(Setup::default()).await;
    draft(&b).await;
    set_min_free(&b, 1 << 40);
    b.restart().await;
    assert!(qwenedit::ops::disk_full(&b.app().app));

    b.press_key(ALICE, "en", "btn-confirm").await;
    assert_eq!(b.tg.last_message(ALICE).text, b.t("en", "busy-disk"));
    assert!(b.jobs(ALICE).is_empty(), "no job");
    assert_eq!(b.balance(ALICE), 60, "nothing held");

    let downloads = |b: &BotTest| {
        b.tg.calls()
            .iter()
            .filter(|c| c.method == "getFile" || c.method == "download")
            .count()
    };
    let before = downloads(&b);
    b.photo(ALICE, jpeg(64, 48)).await;
    assert_eq!(b.tg.last_message(ALICE).text, b.t("en", "busy-disk"));
    assert_eq!(downloads(&b), before, "refused before downloading");
    assert_ledger_consistent(&b);

    set_min_free(&b, 0);
    b.restart().await;
    let mark = b.mark(ALICE);
    b.press_key(ALICE, "en", "btn-confirm").await;
    b.wait_result(ALICE, mark).await;
    assert_eq!(b.balance(ALICE), 30);
    assert_ledger_consistent(&b);
    insta::assert_snapshot!("fault_disk_full", b.transcript(ALICE));
    b.stop().await;
}
