//! Job events into chat messages: the status message edited into a progress bar (at most about
//! once a second per chat, honouring flood control), then the result with its buttons, or the
//! failure with the points returned. Undelivered results are delivered after a restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use super::ctx::Shared;
use super::dialog::JobMessages;
use super::keyboards;
use super::texts::Lang;
use super::tg::{Markup, TgError};
use crate::domain::{JobId, JobState};
use crate::worker::{JobEvent, JobEventKind};

/// Minimum time between two progress edits in one chat.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(1_000);
/// How often queued jobs' positions are refreshed.
const QUEUE_REFRESH: Duration = Duration::from_secs(5);

pub async fn run(s: Shared, mut stop: watch::Receiver<bool>) {
    let mut events = s.app.events.subscribe();
    let mut next_edit: HashMap<i64, Instant> = HashMap::new();
    resume(&s).await;
    let mut refresh = tokio::time::interval(QUEUE_REFRESH);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    // Every line logged while handling it names the job and its user.
                    let span = tracing::info_span!("job", job = %ev.job, user = %ev.user);
                    on_event(&s, ev, &mut next_edit).instrument(span).await
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "delivery lagged behind job events");
                    resume(&s).await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = refresh.tick() => refresh_queued(&s, &mut next_edit).await,
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

fn bar(percent: u8) -> String {
    let filled = usize::from(percent.min(100)) / 10;
    format!("{}{}", "▓".repeat(filled), "░".repeat(10 - filled))
}

async fn on_event(s: &Shared, ev: JobEvent, next_edit: &mut HashMap<i64, Instant>) {
    let Ok(Some(m)) = JobMessages::load(&s.app.store, ev.job) else {
        return;
    };
    if m.delivered {
        return;
    }
    let t = |k: &str| s.texts.t(m.lang, k);
    match ev.kind {
        JobEventKind::Submitted { .. } => {}
        JobEventKind::Started { .. } => {
            s.tg.chat_action(m.chat).await;
            edit_throttled(s, &m, &t("starting"), Markup::None, next_edit, true).await;
        }
        JobEventKind::Progress { percent } => {
            let text = s.texts.get(
                m.lang,
                "running",
                &[
                    ("bar", bar(percent).as_str().into()),
                    ("percent", i64::from(percent).into()),
                ],
            );
            edit_throttled(s, &m, &text, Markup::None, next_edit, false).await;
        }
        JobEventKind::Retrying { .. } => {
            edit_throttled(s, &m, &t("retrying"), Markup::None, next_edit, true).await;
        }
        // The last word waits for the chat's turn too (a second after the last edit, or the
        // end of a flood-control wait), but is never skipped.
        JobEventKind::Succeeded { outputs } => {
            wait_turn(next_edit, m.chat).await;
            deliver(s, ev.job, m, &outputs).await
        }
        JobEventKind::Failed { .. } => {
            wait_turn(next_edit, m.chat).await;
            fail(s, ev.job, m).await
        }
    }
}

async fn wait_turn(next_edit: &HashMap<i64, Instant>, chat: i64) {
    if let Some(at) = next_edit.get(&chat) {
        tokio::time::sleep_until((*at).into()).await;
    }
}

/// Edits the status message with its final text; flood control is waited out once, since
/// this edit is not repeated by a later one.
async fn edit_final(s: &Shared, m: &JobMessages, text: &str, markup: &Markup) {
    let mut edited = s.tg.edit_text(m.chat, m.status_message, text, markup).await;
    if let Err(TgError::RetryAfter(wait)) = edited {
        tokio::time::sleep(wait).await;
        edited = s.tg.edit_text(m.chat, m.status_message, text, markup).await;
    }
    if let Err(e) = edited {
        tracing::info!(chat = m.chat, error = %e, "could not edit a status message");
    }
}

/// Edits the status message unless the chat was edited less than a second ago (`force` for
/// state changes, which wait instead of being skipped).
async fn edit_throttled(
    s: &Shared,
    m: &JobMessages,
    text: &str,
    markup: Markup,
    next_edit: &mut HashMap<i64, Instant>,
    force: bool,
) {
    let now = Instant::now();
    if let Some(at) = next_edit.get(&m.chat).copied()
        && at > now
    {
        if !force {
            return;
        }
        tokio::time::sleep_until(at.into()).await;
    }
    let wait = match s
        .tg
        .edit_text(m.chat, m.status_message, text, &markup)
        .await
    {
        Err(TgError::RetryAfter(d)) => d.max(PROGRESS_EVERY),
        _ => PROGRESS_EVERY,
    };
    next_edit.insert(m.chat, Instant::now() + wait);
}

/// Sends the result: a photo (preview) with the result buttons, a document when the photo is
/// refused (Telegram's photo limits), and marks the job delivered.
pub async fn deliver(s: &Shared, job: JobId, mut m: JobMessages, outputs: &[String]) {
    let data_dir = &s.app.config.storage.data_dir;
    let Some(bytes) = outputs
        .first()
        .and_then(|o| crate::files::read(data_dir, o).ok())
    else {
        tracing::error!(%job, "result file missing at delivery");
        return fail(s, job, m).await;
    };
    let done = s.texts.t(m.lang, "done");
    edit_final(s, &m, &done, &Markup::None).await;
    send_result(s, m.chat, m.lang, job, bytes).await;
    m.delivered = true;
    if let Err(e) = m.save(&s.app.store, job) {
        tracing::error!(%job, error = %e, "cannot mark a result delivered");
    }
    tracing::info!(%job, chat = m.chat, "result delivered");
}

/// The result photo with its buttons (also for "get it again").
pub async fn send_result(s: &Shared, chat: i64, lang: Lang, job: JobId, png: Vec<u8>) {
    let markup = keyboards::result(&s.texts, lang, job);
    let caption = s.texts.t(lang, "done");
    match s.tg.send_photo(chat, png.clone(), &caption, &markup).await {
        Ok(_) => {}
        Err(e) => {
            tracing::info!(%job, error = %e, "photo refused; sending as a document");
            if let Err(e) =
                s.tg.send_document(chat, png, &format!("{job}.png"), &caption, &markup)
                    .await
            {
                tracing::warn!(%job, error = %e, "could not deliver the result");
            }
        }
    }
}

async fn fail(s: &Shared, job: JobId, mut m: JobMessages) {
    let text = if m.price > 0 {
        s.texts
            .get(m.lang, "failed", &[("n", i64::from(m.price).into())])
    } else {
        s.texts.t(m.lang, "failed-free")
    };
    edit_final(s, &m, &text, &keyboards::inline_menu(&s.texts, m.lang)).await;
    m.delivered = true;
    let _ = m.save(&s.app.store, job);
}

/// After a restart (or lag): deliver what finished meanwhile.
async fn resume(s: &Shared) {
    let Ok(pending) = s.app.store.bot_scan("job:") else {
        return;
    };
    for (key, bytes) in pending {
        let Ok(m) = crate::codec::decode::<JobMessages>(&bytes) else {
            continue;
        };
        if m.delivered {
            continue;
        }
        let Some(job) = key
            .strip_prefix("job:")
            .and_then(|j| j.parse::<JobId>().ok())
        else {
            continue;
        };
        match s.app.queue.get(job) {
            Ok(Some(r)) if r.state() == JobState::Succeeded => {
                let span = tracing::info_span!("job", %job, user = %r.user());
                let outputs = r.result.map(|x| x.outputs).unwrap_or_default();
                deliver(s, job, m, &outputs).instrument(span).await;
            }
            Ok(Some(r)) if r.state().is_terminal() => {
                let span = tracing::info_span!("job", %job, user = %r.user());
                fail(s, job, m).instrument(span).await
            }
            Ok(Some(_)) => {}
            // Gone from history: nothing more will come.
            _ => {
                let _ = s.app.store.bot_delete(&key);
            }
        }
    }
}

/// Refreshes the position line of queued jobs.
async fn refresh_queued(s: &Shared, next_edit: &mut HashMap<i64, Instant>) {
    for r in s.app.queue.active_jobs() {
        if r.state() != JobState::Queued {
            continue;
        }
        let Ok(Some(m)) = JobMessages::load(&s.app.store, r.id) else {
            continue;
        };
        if m.delivered {
            continue;
        }
        let position = s.app.queue.position(r.id).unwrap_or(0);
        let wait = s.app.backends.wait_estimate_s(position);
        let text = s.texts.get(
            m.lang,
            "queued",
            &[("position", position.into()), ("wait", wait.into())],
        );
        let markup = keyboards::queued(&s.texts, m.lang, r.id);
        edit_throttled(s, &m, &text, markup, next_edit, false).await;
    }
}
