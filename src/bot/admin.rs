//! Admin commands (for `telegram.admins` and users flagged admin): the same `ops::` functions
//! as the CLI and the admin API.

use std::time::Duration;

use super::ctx::Ctx;
use super::tg::Markup;
use crate::domain::points::MAX_AMOUNT;
use crate::domain::{JobId, Points, UserId};
use crate::ops::{self, OpsError, TopupRequest};

/// Broadcast pace: under Telegram's ~30 messages/s, with room for the bot's other traffic.
const BROADCAST_EVERY: Duration = Duration::from_millis(40);

pub fn is_admin_command(name: &str) -> bool {
    matches!(
        name,
        "stats" | "user" | "topup" | "ban" | "unban" | "broadcast" | "job" | "refund"
    )
}

pub async fn command(ctx: &Ctx, name: &str, args: &str) {
    if !ctx.is_admin {
        tracing::warn!(user = %ctx.user, command = name, "admin command from a non-admin");
        ctx.say(&ctx.t("admin-only"), Default::default()).await;
        return;
    }
    let app = ctx.app().clone();
    let words: Vec<&str> = args.split_whitespace().collect();
    let usage = |u: &str| ctx.tr("admin-usage", &[("usage", u.into())]);
    let user_arg = |i: usize| words.get(i).and_then(|w| w.parse::<UserId>().ok());
    let reply = match name {
        "stats" => match app.blocking(ops::stats).await {
            Ok(s) => ctx.tr(
                "admin-stats",
                &[
                    ("users", (s.users as i64).into()),
                    ("active", (s.active_today as i64).into()),
                    ("jobs", (s.jobs_today as i64).into()),
                    ("queue", s.queued.into()),
                    ("running", s.running.into()),
                    (
                        "backends",
                        format!("{}/{}", s.backends_up, s.backends).as_str().into(),
                    ),
                ],
            ),
            Err(e) => failed(ctx, name, e),
        },
        "user" => match user_arg(0) {
            None => usage("/user <telegram id>"),
            Some(u) => match app.blocking(move |a| ops::user_summary(a, u, 5)).await {
                Ok(s) => {
                    let yes_no = |b: bool| ctx.t(if b { "admin-yes" } else { "admin-no" });
                    let flags = ctx.tr(
                        "admin-user-flags",
                        &[
                            ("admin", yes_no(s.user.admin).as_str().into()),
                            ("unlimited", yes_no(s.user.unlimited).as_str().into()),
                            ("banned", yes_no(s.user.banned).as_str().into()),
                        ],
                    );
                    let mut text = format!(
                        "{} {}\n{}\n{flags}",
                        s.user.id,
                        s.user
                            .username
                            .as_deref()
                            .map(|n| format!("@{n}"))
                            .unwrap_or_default(),
                        ctx.points("balance", s.balance),
                    );
                    for e in &s.ledger {
                        text.push_str(&format!("\n{:+} {}", e.delta, e.reason.as_str()));
                        if let Some(r) = &e.reference {
                            text.push_str(&format!(" {r}"));
                        }
                    }
                    for j in &s.jobs {
                        text.push_str(&format!("\n{} {}", j.id, j.state().as_str()));
                    }
                    text
                }
                Err(e) => failed(ctx, name, e),
            },
        },
        "topup" => match (user_arg(0), words.get(1).map(|w| Points::parse_positive(w))) {
            (Some(u), Some(Ok(points))) => {
                let req = TopupRequest {
                    user: u,
                    points,
                    note: Some(format!("bot /topup by {}", ctx.user)),
                    create: false,
                    idempotency_key: None,
                };
                match app.blocking(move |a| ops::topup(a, req)).await {
                    Ok(o) => ctx.tr(
                        "admin-topup",
                        &[
                            ("user", u.get().into()),
                            ("n", points.get().into()),
                            ("balance", o.balance.into()),
                        ],
                    ),
                    Err(e) => failed(ctx, name, e),
                }
            }
            (_, Some(Err(_))) => ctx.tr("admin-bad-points", &[("max", MAX_AMOUNT.into())]),
            _ => usage("/topup <telegram id> <points>"),
        },
        "ban" | "unban" => match user_arg(0) {
            None => usage(&format!("/{name} <telegram id>")),
            Some(u) => {
                let ban = name == "ban";
                match app.blocking(move |a| ops::set_banned(a, u, ban)).await {
                    Ok(_) => ctx.tr(
                        if ban {
                            "admin-banned"
                        } else {
                            "admin-unbanned"
                        },
                        &[("user", u.get().into())],
                    ),
                    Err(e) => failed(ctx, name, e),
                }
            }
        },
        "job" => match words.first().and_then(|w| w.parse::<JobId>().ok()) {
            None => usage("/job <job id>"),
            Some(j) => match app.blocking(move |a| ops::job(a, j)).await {
                Ok(r) => ctx.tr(
                    "admin-job",
                    &[
                        ("job", r.id.to_string().as_str().into()),
                        ("user", r.user().get().into()),
                        ("state", r.state().as_str().into()),
                        ("attempts", i64::from(r.attempts).into()),
                        ("n", i64::from(r.price().get()).into()),
                        ("backend", r.backend.as_deref().unwrap_or("-").into()),
                        ("error", r.last_error.as_deref().unwrap_or("-").into()),
                    ],
                ),
                Err(e) => failed(ctx, name, e),
            },
        },
        "refund" => match words.first() {
            None => usage("/refund <telegram payment charge id>"),
            Some(charge) => match ops::refund_stars(&app, charge).await {
                Ok(o) if o.already => ctx.tr(
                    "admin-refund-already",
                    &[("user", o.user.into()), ("balance", o.balance.into())],
                ),
                Ok(o) => ctx.tr(
                    "admin-refund",
                    &[
                        ("user", o.user.into()),
                        ("stars", (o.stars as i64).into()),
                        ("n", o.points.into()),
                        ("debt", o.debt.into()),
                        ("balance", o.balance.into()),
                    ],
                ),
                Err(e) => failed(ctx, name, e),
            },
        },
        "broadcast" => {
            if args.trim().is_empty() {
                usage("/broadcast <text>")
            } else {
                broadcast(ctx, args.trim()).await
            }
        }
        _ => return,
    };
    ctx.say(&reply, Markup::None).await;
}

/// What the admin is told when a command failed, in one place for every command: an unknown
/// user or job by name; otherwise the reason where ops words it for operators (a bad charge id,
/// Telegram refusing a refund), or only that it failed — storage and queue errors can name
/// files, so they go to the log alone.
fn failed(ctx: &Ctx, command: &str, e: OpsError) -> String {
    match e {
        OpsError::UnknownUser(u) => ctx.tr("admin-unknown-user", &[("user", u.get().into())]),
        OpsError::UnknownJob(j) => ctx.tr(
            "admin-unknown-job",
            &[("job", j.to_string().as_str().into())],
        ),
        e => {
            tracing::warn!(user = %ctx.user, command, error = %e, "admin command failed");
            match e {
                OpsError::Store(_) | OpsError::Queue(_) => ctx.t("admin-failed-internal"),
                e => ctx.tr("admin-failed", &[("reason", e.to_string().as_str().into())]),
            }
        }
    }
}

/// Sends `text` to every user who is not banned, paced under Telegram's limits.
async fn broadcast(ctx: &Ctx, text: &str) -> String {
    let users = ctx.app().store.users().unwrap_or_default();
    let (mut sent, mut failed) = (0i64, 0i64);
    for u in users.iter().filter(|u| !u.banned) {
        match ctx.s.tg.send_text(u.id.get(), text, &Markup::None).await {
            Ok(_) => sent += 1,
            Err(e) => {
                failed += 1;
                tracing::info!(user = %u.id, error = %e, "broadcast not delivered");
            }
        }
        tokio::time::sleep(BROADCAST_EVERY).await;
    }
    tracing::info!(sent, failed, by = %ctx.user, "broadcast finished");
    ctx.tr(
        "broadcast-report",
        &[("sent", sent.into()), ("failed", failed.into())],
    )
}
