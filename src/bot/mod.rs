//! The Telegram bot. Only this module knows teloxide.
//!
//! Our own long-polling loop (not teloxide's dispatcher) so that every guarantee is ours:
//! updates are read with an offset persisted in redb (a repeated `update_id` is ignored), each
//! chat's updates are handled in order on one of a fixed set of lanes (chats run in parallel),
//! and unknown update kinds are skipped, never fatal.

mod admin;
mod callback;
mod ctx;
mod delivery;
mod dialog;
mod flood;
mod flow;
mod gateway;
mod handle;
mod incoming;
mod keyboards;
mod payments;
mod photos;
mod prefs;
mod profile;
mod promo;
mod texts;
mod tg;
mod yookassa;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use callback::Callback;
pub use gateway::gateway;
pub use texts::{Lang, Texts};

use crate::app::App;
use crate::domain::moderation::DenyList;
use ctx::Shared;
use handle::Work;
use incoming::Incoming;

/// Chats are spread over this many lanes; one lane handles its updates in order.
const LANES: usize = 16;
const POLL_TIMEOUT_S: u32 = 25;

fn lane_of(chat: i64) -> usize {
    (chat.unsigned_abs() % LANES as u64) as usize
}

/// Runs the bot until `stop`. Without a token it does nothing.
pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    let Some(token) = app.config.telegram.token.clone() else {
        tracing::info!("no telegram.token: the bot is off");
        return;
    };
    let tg = tg::Tg::new(
        token,
        app.config.telegram.api_url.clone(),
        app.telemetry.clone(),
    );
    let extra = match &app.config.telegram.deny_list {
        Some(path) => std::fs::read_to_string(path).unwrap_or_else(|e| {
            tracing::error!(path = %path.display(), error = %e, "cannot read the deny-list; using the built-in one");
            String::new()
        }),
        None => String::new(),
    };
    let shared = Shared {
        tg: tg.clone(),
        texts: Texts::default(),
        deny: Arc::new(DenyList::new(&extra)),
        flood: Arc::new(flood::Flood::new(app.config.telegram.flood_per_minute)),
        lanes: Arc::new(std::sync::OnceLock::new()),
        app: app.clone(),
    };
    introduce(&shared).await;

    let mut senders = Vec::with_capacity(LANES);
    let mut lanes = Vec::with_capacity(LANES);
    for _ in 0..LANES {
        let (tx, mut rx) = mpsc::channel::<Work>(256);
        senders.push(tx);
        let s = shared.clone();
        lanes.push(tokio::spawn(async move {
            while let Some(work) = rx.recv().await {
                handle::handle(&s, work).await;
            }
        }));
    }
    // Weak: the lanes end when the poller drops its senders, although they hold `shared`.
    let _ = shared
        .lanes
        .set(senders.iter().map(|tx| tx.downgrade()).collect());
    let delivery = delivery::start(shared.clone(), stop.clone()).await;

    let mut checkouts = tokio::task::JoinSet::new();
    let mut offset = load_offset(&app);
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        let poll = tokio::select! {
            r = tg.get_updates(offset, POLL_TIMEOUT_S) => r,
            _ = stop.changed() => break,
        };
        match poll {
            Ok(updates) => {
                failures = 0;
                for update in updates {
                    let id = update.id.0 as i32;
                    if id < offset {
                        continue; // a repeat
                    }
                    offset = id + 1;
                    match Incoming::parse(&update) {
                        // Answered at once on its own task: Telegram waits only 10 s.
                        Some(inc) if matches!(inc.input, incoming::Input::PreCheckout { .. }) => {
                            checkouts.spawn(payments::pre_checkout(shared.clone(), inc));
                        }
                        Some(inc) => {
                            let lane = lane_of(inc.chat);
                            if senders[lane].send(Work::Update(inc)).await.is_err() {
                                break;
                            }
                        }
                        None => tracing::debug!(update_id = id, "update skipped"),
                    }
                }
                save_offset(&app, offset);
                while checkouts.try_join_next().is_some() {}
            }
            Err(e) => {
                failures += 1;
                let wait = Duration::from_millis(500 * u64::from(failures.min(20)));
                tracing::warn!(error = %e, ?wait, "getUpdates failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
            }
        }
    }
    while checkouts.join_next().await.is_some() {}
    drop(senders);
    drop(shared);
    for lane in lanes {
        let _ = lane.await;
    }
    let _ = delivery.await;
}

/// Commands and descriptions in both languages (what users see before /start).
async fn introduce(s: &Shared) {
    if let Err(e) = s.tg.delete_webhook().await {
        tracing::warn!(error = %e, "deleteWebhook failed");
    }
    for (lang, code) in [
        (Lang::Ru, None),
        (Lang::Ru, Some("ru")),
        (Lang::En, Some("en")),
    ] {
        let t = |k: &str| s.texts.t(lang, k);
        let commands = vec![
            ("menu".to_string(), t("cmd-menu")),
            ("help".to_string(), t("cmd-help")),
            ("balance".to_string(), t("cmd-balance")),
            ("cancel".to_string(), t("cmd-cancel")),
            ("lang".to_string(), t("cmd-lang")),
        ];
        if let Err(e) = s.tg.set_commands(commands, code).await {
            tracing::warn!(error = %e, "setMyCommands failed");
        }
        if let Err(e) =
            s.tg.set_description(&t("bot-description"), &t("bot-short-description"), code)
                .await
        {
            tracing::warn!(error = %e, "setMyDescription failed");
        }
    }
}

fn load_offset(app: &App) -> i32 {
    app.store
        .bot_get("offset")
        .ok()
        .flatten()
        .and_then(|b| b.try_into().ok().map(i32::from_be_bytes))
        .unwrap_or(0)
}

fn save_offset(app: &App, offset: i32) {
    if let Err(e) = app.store.bot_put("offset", &offset.to_be_bytes()) {
        tracing::error!(error = %e, "cannot save the update offset");
    }
}

/// Schedules the end of an album's debounce on the chat's lane.
pub(crate) fn schedule_album_flush(ctx: &ctx::Ctx, group: String) {
    let Some(senders) = ctx.s.lanes.get() else {
        return;
    };
    let tx = senders[lane_of(ctx.chat)].clone();
    let wait = ctx.app().config.telegram.album_debounce;
    let (chat, user) = (ctx.chat, ctx.user.get());
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        // After a shutdown began the lane is gone, and so is the album.
        if let Some(tx) = tx.upgrade() {
            let _ = tx.send(Work::AlbumDone { chat, user, group }).await;
        }
    });
}
