//! Job events into chat messages: the status message edited into a progress bar (at most about
//! once a second per chat, honouring flood control), then the result with its buttons, or the
//! failure with the points returned. Undelivered results are delivered after a restart.

use std::collections::{HashMap, VecDeque};
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
                    tasks.spawn(chat_task(s.clone(), turns.clone(), chat, rx));
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

/// One chat's events, in order, until `CHAT_IDLE` passes without any and no edit is waiting.
/// Events are handled at once (a result is sent as soon as it is ready); status edits wait in
/// `pending` for the chat's turn, so the edit rate never holds up a later job's result.
async fn chat_task(s: Shared, turns: Turns, chat: i64, mut rx: mpsc::UnboundedReceiver<JobEvent>) {
    let mut pending = Pending::default();
    loop {
        let due = (!pending.is_empty()).then(|| turns.get(chat).unwrap_or_else(Instant::now));
        tokio::select! {
            biased;
            ev = rx.recv() => match ev {
                Some(ev) => {
                    traced_event(&s, ev, &mut pending).await;
                    send_due(&s, &turns, chat, &mut pending).await;
                }
                None => break,
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                if let Some(edit) = pending.0.pop_front() {
                    send_edit(&s, &turns, edit, &mut pending).await;
                }
            }
            _ = tokio::time::sleep(CHAT_IDLE), if pending.is_empty() => {
                // Refuse new events, then handle any that came in meanwhile.
                rx.close();
                while let Ok(ev) = rx.try_recv() {
                    traced_event(&s, ev, &mut pending).await;
                }
                break;
            }
        }
    }
    flush(&s, &turns, &mut pending).await;
}

/// Handles one event; every line logged meanwhile names the job and its user.
async fn traced_event(s: &Shared, ev: JobEvent, pending: &mut Pending) {
    let span = tracing::info_span!("job", job = %ev.job, user = %ev.user);
    on_event(s, ev, pending).instrument(span).await
}

fn bar(percent: u8) -> String {
    let filled = usize::from(percent.min(100)) / 10;
    format!("{}{}", "▓".repeat(filled), "░".repeat(10 - filled))
}

async fn on_event(s: &Shared, ev: JobEvent, pending: &mut Pending) {
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
            pending.push(Edit::new(ev.job, &m, t("starting")));
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
            pending.push(Edit::new(ev.job, &m, text));
        }
        JobEventKind::Retrying { .. } => pending.push(Edit::new(ev.job, &m, t("retrying"))),
        JobEventKind::Succeeded { outputs } => deliver(s, ev.job, m, &outputs, pending).await,
        JobEventKind::Failed { .. } => fail(s, ev.job, m, pending),
    }
}

/// A status-message edit waiting for the chat's turn (a second after its last edit, or the end
/// of a flood-control wait).
struct Edit {
    job: JobId,
    m: JobMessages,
    text: String,
    markup: Markup,
    /// The job's last word: never replaced by a progress line, flood control waited out once
    /// (no later edit repeats it).
    last: bool,
    /// Marks the job delivered once the edit went out (the chat has then been told).
    mark: bool,
    /// A last word already refused once by flood control.
    retried: bool,
}

impl Edit {
    fn new(job: JobId, m: &JobMessages, text: String) -> Edit {
        Edit {
            job,
            m: m.clone(),
            text,
            markup: Markup::None,
            last: false,
            mark: false,
            retried: false,
        }
    }

    fn last(job: JobId, m: &JobMessages, text: String, markup: Markup, mark: bool) -> Edit {
        Edit {
            markup,
            last: true,
            mark,
            ..Edit::new(job, m, text)
        }
    }
}

/// A chat's edits waiting for its turn, oldest first. A newer edit of a status message replaces
/// the one still waiting (only the latest progress is worth showing).
#[derive(Default)]
struct Pending(VecDeque<Edit>);

impl Pending {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&mut self, edit: Edit) {
        let same =
            |e: &&mut Edit| e.m.chat == edit.m.chat && e.m.status_message == edit.m.status_message;
        match self.0.iter_mut().find(same) {
            Some(waiting) if waiting.last && !edit.last => {}
            Some(waiting) => *waiting = edit,
            None => self.0.push_back(edit),
        }
    }
}

/// Sends one edit and sets the chat's next turn; a last word refused by flood control waits
/// for the next turn at the front of the line, once.
async fn send_edit(s: &Shared, turns: &Turns, mut edit: Edit, pending: &mut Pending) {
    let m = &edit.m;
    let sent =
        s.tg.edit_text(m.chat, m.status_message, &edit.text, &edit.markup)
            .await;
    let wait = match &sent {
        Err(TgError::RetryAfter(d)) => (*d).max(PROGRESS_EVERY),
        _ => PROGRESS_EVERY,
    };
    turns.set(m.chat, Instant::now() + wait);
    match sent {
        Err(TgError::RetryAfter(_)) if edit.last && !edit.retried => {
            edit.retried = true;
            pending.0.push_front(edit);
            return;
        }
        Err(e) => tracing::info!(chat = m.chat, error = %e, "could not edit a status message"),
        Ok(_) => {}
    }
    if edit.mark {
        let job = edit.job;
        mark_delivered(s, job, &mut edit.m);
    }
}

/// Sends the first waiting edit if the chat's turn has come (the first status of a job goes
/// out at once, before any progress could replace it).
async fn send_due(s: &Shared, turns: &Turns, chat: i64, pending: &mut Pending) {
    if turns.get(chat).is_some_and(|at| at > Instant::now()) {
        return;
    }
    if let Some(edit) = pending.0.pop_front() {
        send_edit(s, turns, edit, pending).await;
    }
}

/// Sends every waiting edit, each in its turn.
async fn flush(s: &Shared, turns: &Turns, pending: &mut Pending) {
    while let Some(edit) = pending.0.pop_front() {
        if let Some(at) = turns.get(edit.m.chat) {
            tokio::time::sleep_until(at.into()).await;
        }
        send_edit(s, turns, edit, pending).await;
    }
}

/// Edits a queued job's status message unless the chat was edited less than a second ago
/// (a position line is not worth waiting for: the next refresh brings a newer one).
async fn edit_if_turn(
    s: &Shared,
    turns: &Turns,
    job: JobId,
    m: &JobMessages,
    text: String,
    markup: Markup,
) {
    if turns.get(m.chat).is_some_and(|at| at > Instant::now()) {
        return;
    }
    let edit = Edit {
        markup,
        ..Edit::new(job, m, text)
    };
    send_edit(s, turns, edit, &mut Pending::default()).await;
}

/// Sends the result at once: a photo (preview) with the result buttons, or a document when the
/// photo is refused (Telegram's photo limits), and marks the job delivered; the status message
/// says "done" in the chat's next turn (the result never waits for the edit rate). A crash
/// between the send and the mark repeats the result after a restart; a crash after the mark
/// leaves only the status message unfinished.
async fn deliver(
    s: &Shared,
    job: JobId,
    mut m: JobMessages,
    outputs: &[String],
    pending: &mut Pending,
) {
    let data_dir = &s.app.config.storage.data_dir;
    let Some(bytes) = outputs
        .first()
        .and_then(|o| crate::files::read(data_dir, o).ok())
    else {
        tracing::error!(%job, "result file missing at delivery");
        return fail(s, job, m, pending);
    };
    let sent = send_result(s, m.chat, m.lang, job, bytes).await;
    crate::faults::crash_point("delivered");
    if sent {
        mark_delivered(s, job, &mut m);
        tracing::info!(%job, chat = m.chat, "result delivered");
        let done = s.texts.t(m.lang, "done");
        pending.push(Edit::last(job, &m, done, Markup::None, false));
    } else {
        // Telegram took neither the photo nor the file: the status message offers it again
        // (the job is done and paid; it is never run again for this). Marked only once it
        // says so, so that a crash before retries the delivery.
        let markup = Markup::Inline(vec![vec![(
            s.texts.t(m.lang, "btn-get-result"),
            super::callback::Callback::Result { job },
        )]]);
        let text = s.texts.t(m.lang, "result-undelivered");
        pending.push(Edit::last(job, &m, text, markup, true));
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

/// Tells the chat the job failed (and what was returned) in its next turn; the job counts as
/// delivered once that went out.
fn fail(s: &Shared, job: JobId, m: JobMessages, pending: &mut Pending) {
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
    let menu = keyboards::inline_menu(&s.texts, m.lang);
    pending.push(Edit::last(job, &m, text, menu, true));
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
                let mut edits = Pending::default();
                async {
                    deliver(s, job, m, &outputs, &mut edits).await;
                    flush(s, &Turns::default(), &mut edits).await;
                }
                .instrument(span)
                .await;
            }
            Ok(Some(r)) if r.state().is_terminal() => {
                let span = tracing::info_span!("job", %job, user = %r.user());
                let mut edits = Pending::default();
                fail(s, job, m, &mut edits);
                flush(s, &Turns::default(), &mut edits)
                    .instrument(span)
                    .await;
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
                    let menu = keyboards::inline_menu(&s.texts, m.lang);
                    let mut edits = Pending::default();
                    edits.push(Edit::last(job, &m, text, menu, false));
                    flush(s, &Turns::default(), &mut edits).await;
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
        edit_if_turn(s, next_edit, r.id, &m, text, markup).await;
    }
}
