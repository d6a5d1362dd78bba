//! Operator actions shared by the admin bot commands, the admin API and the CLI.

use serde::{Deserialize, Serialize};

use super::OpsError;
use crate::app::App;
use crate::domain::{JobState, UserId};
use crate::store::UserRecord;

pub fn set_banned(app: &App, user: UserId, banned: bool) -> Result<UserRecord, OpsError> {
    let r = app.store.update_user(user, |u| u.banned = banned)?;
    tracing::info!(%user, banned, "user ban changed");
    Ok(r)
}

pub fn set_unlimited(app: &App, user: UserId, unlimited: bool) -> Result<UserRecord, OpsError> {
    Ok(app.store.update_user(user, |u| u.unlimited = unlimited)?)
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Stats {
    pub users: u64,
    pub active_today: u64,
    pub jobs_today: u64,
    pub succeeded_today: u64,
    pub failed_today: u64,
    pub queued: usize,
    pub running: usize,
    pub backends_up: usize,
    pub backends: usize,
}

pub fn stats(app: &App) -> Result<Stats, OpsError> {
    let now = app.now_ms();
    let day_ago = now - 86_400_000;
    let users = app.store.users()?;
    let finished = app.queue.recent_finished(app.config.queue.history_limit)?;
    let today: Vec<_> = finished
        .iter()
        .filter(|r| r.finished_ms.unwrap_or(0) >= day_ago)
        .collect();
    let depth = app.queue.depth();
    Ok(Stats {
        users: users.len() as u64,
        active_today: users.iter().filter(|u| u.last_seen_ms >= day_ago).count() as u64,
        jobs_today: today.len() as u64,
        succeeded_today: today
            .iter()
            .filter(|r| r.state() == JobState::Succeeded)
            .count() as u64,
        failed_today: today
            .iter()
            .filter(|r| matches!(r.state(), JobState::Failed | JobState::DeadLettered))
            .count() as u64,
        queued: depth.waiting(),
        running: depth.running,
        backends_up: app.backends.all().iter().filter(|b| b.health().up).count(),
        backends: app.backends.all().len(),
    })
}
