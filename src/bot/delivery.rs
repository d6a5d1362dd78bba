//! Job events into chat messages: the status message edited into a progress bar (at most about
//! once a second per chat, honouring flood control), then the result with its buttons, or the
//! failure with the points returned. Undelivered results are delivered after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
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

/// Delivers what finished while the process was down (and tells chats whose confirmed edit
/// was never accepted), then follows job events until `stop`. Returns once the backlog is
/// done, so that the bot reads new updates only after it.
pub async fn start(s: Shared, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    // Subscribed before the backlog, so that nothing finishing meanwhile is missed.
    let events = s.app.events.subscribe();
    resume(&s, true).await;
    tokio::spawn(run(s, events, stop))
}

/// When each chat may be edited next (about once a second, or after a flood-control wait).
/// Shared by the chats' delivery tasks and the queue refresh; never locked across an await.
#[derive(Clone, Default)]
struct Turns(Arc<Mutex<HashMap<i64, Instant>>>);

impl Turns {
    fn get(&self, chat: i64) -> Option<Instant> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&chat)
            .copied()
    }

    fn set(&self, chat: i64, at: Instant) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chat, at);
    }
}

/// A chat's delivery task ends after this long without events (a new one starts on demand).
const CHAT_IDLE: Duration = Duration::from_secs(30);

/// Routes job events to one task per chat: a chat waiting for its turn (the per-chat edit
/// rate, flood control) never holds up another chat's progress or result.
async fn run(
    s: Shared,
    mut events: broadcast::Receiver<JobEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let turns = Turns::default();
    let mut chats: HashMap<i64, mpsc::UnboundedSender<JobEvent>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut refresh = tokio::time::interval(QUEUE_REFRESH);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    while tasks.try_join_next().is_some() {}
                    let Some(chat) = ev.chat else { continue };
                    let ev = match chats.get(&chat) {
                        Some(tx) => match tx.send(ev) {
                            Ok(()) => continue,
                            Err(mpsc::error::SendError(ev)) => ev,
                        },
                        None => ev,
                    };
                    // No task for this chat (or it just ended): a new one.
                    let (tx, rx) = mpsc::unbounded_channel();
                    let _ = tx.send(ev);
                    chats.insert(chat, tx);
                    tasks.spawn(chat_task(s.clone(), turns.clone(), rx));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "delivery lagged behind job events");
                    resume(&s, false).await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = refresh.tick() => refresh_queued(&s, &turns).await,
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    // The chats finish what they were given.
    drop(chats);
    while tasks.join_next().await.is_some() {}
}

/// One chat's events, in order, until `CHAT_IDLE` passes without any.
async fn chat_task(s: Shared, turns: Turns, mut rx: mpsc::UnboundedReceiver<JobEvent>) {
    loop {
        match tokio::time::timeout(CHAT_IDLE, rx.recv()).await {
            Ok(Some(ev)) => traced_event(&s, ev, &turns).await,
            Ok(None) => return,
            Err(_) => {
                // Refuse new events, then handle any that came in meanwhile.
                rx.close();
                while let Ok(ev) = rx.try_recv() {
                    traced_event(&s, ev, &turns).await;
                }
                return;
            }
        }
    }
}

/// Handles one event; every line logged meanwhile names the job and its user.
async fn traced_event(s: &Shared, ev: JobEvent, turns: &Turns) {
    let span = tracing::info_span!("job", job = %ev.job, user = %ev.user);
    on_event(s, ev, turns).instrument(span).await
}

fn bar(percent: u8) -> String {
    let filled = usize::from(percent.min(100)) / 10;
    format!("{}{}", "▓".repeat(filled), "░".repeat(10 - filled))
}

async fn on_event(s: &Shared, ev: JobEvent, next_edit: &Turns) {
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
        // The result is a new message, sent at once; the status message's last word waits
        // for the chat's turn (a second after the last edit, or the end of a flood-control
        // wait), but is never skipped.
        JobEventKind::Succeeded { outputs } => deliver(s, ev.job, m, &outputs, next_edit).await,
        JobEventKind::Failed { .. } => {
            wait_turn(next_edit, m.chat).await;
            fail(s, ev.job, m).await
        }
    }
}

async fn wait_turn(next_edit: &Turns, chat: i64) {
    if let Some(at) = next_edit.get(chat) {
        tokio::time::sleep_until(at.into()).await;
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
    next_edit: &Turns,
    force: bool,
) {
    let now = Instant::now();
    if let Some(at) = next_edit.get(m.chat)
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
    next_edit.set(m.chat, Instant::now() + wait);
}

/// Sends the result at once: a photo (preview) with the result buttons, or a document when the
/// photo is refused (Telegram's photo limits); marks the job delivered, then edits the status
/// message to "done" in the chat's turn (the result never waits for the edit rate). A crash
/// between the send and the mark repeats the result after a restart; a crash after the mark
/// leaves only the status message unfinished.
async fn deliver(s: &Shared, job: JobId, mut m: JobMessages, outputs: &[String], turns: &Turns) {
    let data_dir = &s.app.config.storage.data_dir;
    let Some(bytes) = outputs
        .first()
        .and_then(|o| crate::files::read(data_dir, o).ok())
    else {
        tracing::error!(%job, "result file missing at delivery");
        wait_turn(turns, m.chat).await;
        return fail(s, job, m).await;
    };
    let sent = send_result(s, m.chat, m.lang, job, bytes).await;
    crate::faults::crash_point("delivered");
    if sent {
        mark_delivered(s, job, &mut m);
        wait_turn(turns, m.chat).await;
        edit_final(s, &m, &s.texts.t(m.lang, "done"), &Markup::None).await;
        tracing::info!(%job, chat = m.chat, "result delivered");
    } else {
        // Telegram took neither the photo nor the file: the status message offers it again
        // (the job is done and paid; it is never run again for this). Marked only once it
        // says so, so that a crash before retries the delivery.
        let markup = Markup::Inline(vec![vec![(
            s.texts.t(m.lang, "btn-get-result"),
            super::callback::Callback::Result { job },
        )]]);
        wait_turn(turns, m.chat).await;
        edit_final(s, &m, &s.texts.t(m.lang, "result-undelivered"), &markup).await;
        mark_delivered(s, job, &mut m);
    }
}

fn mark_delivered(s: &Shared, job: JobId, m: &mut JobMessages) {
    m.delivered = true;
    if let Err(e) = m.save(&s.app.store, job) {
        tracing::error!(%job, error = %e, "cannot mark a result delivered");
    }
}

/// The result photo with its buttons (also for "get it again"); a document when the photo is
/// refused. `false` when neither went through.
pub async fn send_result(s: &Shared, chat: i64, lang: Lang, job: JobId, png: Vec<u8>) -> bool {
    let markup = keyboards::result(&s.texts, lang, job);
    let caption = s.texts.t(lang, "done");
    match s.tg.send_photo(chat, png.clone(), &caption, &markup).await {
        Ok(_) => true,
        Err(e) => {
            tracing::info!(%job, error = %e, "photo refused; sending as a document");
            match s
                .tg
                .send_document(chat, png, &format!("{job}.png"), &caption, &markup)
                .await
            {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(%job, error = %e, "could not deliver the result");
                    false
                }
            }
        }
    }
}

async fn fail(s: &Shared, job: JobId, mut m: JobMessages) {
    // What the job held, from its record: the chat's copy of the price is saved only after the
    // job was accepted, and a crash (or a fast worker) can come first.
    let price = match s.app.queue.get(job) {
        Ok(Some(r)) => r.price().get(),
        _ => m.price,
    };
    let text = if price > 0 {
        s.texts
            .get(m.lang, "failed", &[("n", i64::from(price).into())])
    } else {
        s.texts.t(m.lang, "failed-free")
    };
    edit_final(s, &m, &text, &keyboards::inline_menu(&s.texts, m.lang)).await;
    m.delivered = true;
    let _ = m.save(&s.app.store, job);
}

/// After a restart (`at_start`) or lag: deliver what finished meanwhile.
async fn resume(s: &Shared, at_start: bool) {
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
                deliver(s, job, m, &outputs, &Turns::default())
                    .instrument(span)
                    .await;
            }
            Ok(Some(r)) if r.state().is_terminal() => {
                let span = tracing::info_span!("job", %job, user = %r.user());
                fail(s, job, m).instrument(span).await
            }
            Ok(Some(_)) => {}
            // Unknown to the queue. While running, it may be about to be submitted (its
            // messages are saved first). At start, reconcile has queued every held job, so one
            // that holds nothing was never accepted: the process died between the confirm and
            // the hold, and the chat shows "queued" for nothing.
            Ok(None) if at_start => {
                if let Ok(None) = s.app.store.hold_of(job) {
                    tracing::warn!(%job, chat = m.chat, "a confirmed edit was never accepted; telling the chat");
                    let text = s.texts.t(m.lang, "not-accepted");
                    edit_final(s, &m, &text, &keyboards::inline_menu(&s.texts, m.lang)).await;
                }
                let _ = s.app.store.bot_delete(&key);
            }
            _ => {}
        }
    }
}

/// Refreshes the position line of queued jobs.
async fn refresh_queued(s: &Shared, next_edit: &Turns) {
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
