//! The weekly bonus: `billing.weekly_bonus` points to every user active in the last 30 days, on
//! the configured weekday and time (config time zone), once per user per ISO week — the ledger
//! key holds the week, so restarts and catch-up runs cannot credit twice.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::OpsError;
use crate::app::App;
use crate::domain::Reason;
use crate::store::{Credit, Posted};

/// Users active within this long get the bonus.
const ACTIVE_WITHIN_MS: i64 = 30 * 86_400_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WeeklyReport {
    /// `2026-W48`, or empty when this week's time has not come yet.
    pub week: String,
    pub credited: usize,
    pub already: usize,
    /// Who got the bonus in this run, for the bot's notice.
    #[serde(skip)]
    pub notices: Vec<super::WeeklyNotice>,
}

/// The ISO week whose bonus is due at `now`: this week's, once its weekday and time passed.
pub fn due_week(app: &App, now_ms: i64) -> Option<String> {
    let billing = &app.config.billing;
    let tz = TimeZone::get(&billing.time_zone).unwrap_or(TimeZone::UTC);
    let now = Timestamp::from_millisecond(now_ms).ok()?.to_zoned(tz);
    let date = now.date();
    let iso = date.iso_week_date();
    let offset = i64::from(billing.weekly_bonus_day.to_monday_zero_offset())
        - i64::from(date.weekday().to_monday_zero_offset());
    let scheduled_date = date.checked_add(jiff::Span::new().days(offset)).ok()?;
    let scheduled = scheduled_date.to_datetime(billing.weekly_bonus_time);
    if now.datetime() < scheduled {
        return None;
    }
    Some(format!("{}-W{:02}", iso.year(), iso.week()))
}

/// Credits this week's bonus to every active user who has not had it (idempotent).
pub fn weekly_bonus(app: &App) -> Result<WeeklyReport, OpsError> {
    let points = app.config.billing.weekly_bonus;
    let now = app.now_ms();
    let Some(week) = due_week(app, now) else {
        return Ok(WeeklyReport::default());
    };
    let mut report = WeeklyReport {
        week: week.clone(),
        ..Default::default()
    };
    if points == 0 {
        return Ok(report);
    }
    for user in app.store.users()? {
        if user.banned || now - user.last_seen_ms > ACTIVE_WITHIN_MS {
            continue;
        }
        let posted = app.store.credit(Credit {
            user: user.id,
            delta: i64::from(points),
            reason: Reason::WeeklyBonus,
            key: format!("weekly:{week}:{}", user.id),
            job: None,
            reference: Some(week.clone()),
            note: None,
            at_ms: now,
        })?;
        match posted {
            Posted::Duplicate { .. } => report.already += 1,
            Posted::Applied { balance, .. } => {
                report.credited += 1;
                report.notices.push(super::WeeklyNotice {
                    user: user.id,
                    points,
                    balance,
                });
            }
        }
    }
    if report.credited > 0 {
        tracing::info!(week = %report.week, credited = report.credited, "weekly bonus credited");
    }
    Ok(report)
}

/// The weekly duty of `serve`: credits the bonus, then tells the users who got it now (the bot
/// skips those who switched the notice off). A repeated run credits and tells nobody twice.
pub async fn weekly_task(app: &App) -> Result<WeeklyReport, OpsError> {
    let report = app.blocking(weekly_bonus).await?;
    if let Some(tg) = app.telegram.clone()
        && !report.notices.is_empty()
    {
        let sent = tg.weekly_notices(report.notices.clone()).await;
        tracing::info!(week = %report.week, sent, "weekly bonus notices sent");
    }
    Ok(report)
}
