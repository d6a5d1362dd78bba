//! `qwenedit admin ...`: top-ups, user summaries, ledger verification.

use std::path::Path;

use clap::{Args, Subcommand};

use super::target::{Target, connect};
use super::{CliError, load_config, logging, render};
use crate::domain::{Points, UserId};
use crate::ops::{self, OpsError, TopupOutcome, TopupRequest, UserView};
use crate::store::LedgerCheck;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Add points to a user's balance.
    Topup(TopupArgs),
    /// Show a user: balance, recent ledger entries, recent jobs.
    User {
        /// Telegram user id.
        id: String,
    },
    /// Promocodes: create a batch, list, disable.
    Promo {
        #[command(subcommand)]
        command: PromoCommand,
    },
    /// Refund a Telegram Stars payment (refundStarPayment) and take its points back once.
    RefundStars {
        /// The payment's telegram_payment_charge_id (see `admin user`).
        charge_id: String,
    },
    /// Compact the database file (it never shrinks by itself); the service must be stopped.
    Compact,
    /// Ledger checks.
    Ledger {
        /// Recompute every balance from the ledger and report differences.
        #[arg(long)]
        verify: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PromoCommand {
    /// Create a batch of new codes.
    Create {
        /// Points each code gives.
        #[arg(long)]
        points: u32,
        /// How many codes.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Uses per code (each user once).
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Last day the codes work (YYYY-MM-DD, in billing.time_zone).
        #[arg(long)]
        expires: Option<String>,
        /// A prefix for the codes, e.g. SPRING-.
        #[arg(long)]
        prefix: Option<String>,
        /// Write the codes to this file (one per line) instead of printing them.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// List every code with its uses.
    List,
    /// Disable a code.
    Disable { code: String },
}

#[derive(Args, Debug)]
pub struct TopupArgs {
    /// Telegram user id.
    pub id: String,
    /// Points to add (a positive whole number).
    #[arg(allow_hyphen_values = true)]
    pub points: String,
    /// Why (kept in the ledger).
    #[arg(long)]
    pub reason: Option<String>,
    /// Create the user if they have not used the bot yet.
    #[arg(long)]
    pub create: bool,
    /// Makes a repeated command harmless: the same key is applied once.
    #[arg(long)]
    pub key: Option<String>,
}

fn parse_user(text: &str) -> Result<UserId, CliError> {
    text.parse().map_err(|_| {
        CliError(format!(
            "{text:?} is not a Telegram user id (a whole number)"
        ))
    })
}

fn ops_error(e: OpsError) -> CliError {
    match e {
        OpsError::UnknownUser(id) => {
            CliError(format!("unknown user {id}: they have not used the bot yet"))
        }
        other => CliError(other.to_string()),
    }
}

/// For top-ups, an unknown user gets the way out.
fn topup_error(e: OpsError) -> CliError {
    match e {
        OpsError::UnknownUser(id) => CliError(format!(
            "unknown user {id}: they have not used the bot yet (add --create to top up anyway)"
        )),
        other => ops_error(other),
    }
}

pub fn run(config_path: &Path, command: AdminCommand) -> Result<(), CliError> {
    logging::init_quiet();
    let config = load_config(config_path)?;
    match command {
        AdminCommand::Topup(args) => {
            let user = parse_user(&args.id)?;
            let points = Points::parse_positive(&args.points)?;
            let outcome: TopupOutcome = match connect(config)? {
                Target::Direct(app) => ops::topup(
                    &app,
                    TopupRequest {
                        user,
                        points,
                        note: args.reason,
                        create: args.create,
                        idempotency_key: args.key,
                    },
                )
                .map_err(topup_error)?,
                Target::Daemon(d) => d
                    .post(
                        &format!("/users/{user}/topup"),
                        &serde_json::json!({
                            "points": points.get(),
                            "reason": args.reason,
                            "create": args.create,
                            "idempotency_key": args.key,
                        }),
                    )
                    .map_err(|e| unknown_user_hint(e, user, topup_error))?,
            };
            print!("{}", render::topup(&outcome));
        }
        AdminCommand::User { id } => {
            let user = parse_user(&id)?;
            let view: UserView = match connect(config)? {
                Target::Direct(app) => ops::user_summary(&app, user, 20).map_err(ops_error)?.into(),
                Target::Daemon(d) => d
                    .get(&format!("/users/{user}"))
                    .map_err(|e| unknown_user_hint(e, user, ops_error))?,
            };
            print!("{}", render::user(&view));
        }
        AdminCommand::Promo { command } => promo(config, command)?,
        AdminCommand::RefundStars { charge_id } => {
            let outcome: ops::RefundOutcome = match connect(config)? {
                Target::Direct(app) => tokio::runtime::Runtime::new()?
                    .block_on(ops::refund_stars(&app, &charge_id))
                    .map_err(ops_error)?,
                Target::Daemon(d) => d.post(
                    "/payments/stars/refund",
                    &serde_json::json!({ "charge_id": charge_id }),
                )?,
            };
            print!("{}", render::refund(&outcome));
        }
        AdminCommand::Compact => {
            let r = ops::compact(&config)?;
            println!(
                "database compacted: {} → {}",
                crate::web::human_bytes(r.before_bytes),
                crate::web::human_bytes(r.after_bytes)
            );
        }
        AdminCommand::Ledger { verify } => {
            if !verify {
                return Err(CliError(
                    "say what to do: `qwenedit admin ledger --verify`".into(),
                ));
            }
            let check: LedgerCheck = match connect(config)? {
                Target::Direct(app) => ops::verify_ledger(&app).map_err(ops_error)?,
                Target::Daemon(d) => d.get("/ledger/verify")?,
            };
            print!("{}", render::ledger_check(&check));
            if !check.is_consistent() {
                return Err(CliError("the ledger is inconsistent".into()));
            }
        }
    }
    Ok(())
}

/// The daemon's "unknown user" answer reads the same as the direct path's.
fn unknown_user_hint(e: CliError, user: UserId, render: fn(OpsError) -> CliError) -> CliError {
    if e.0.starts_with("unknown user") {
        render(OpsError::UnknownUser(user))
    } else {
        e
    }
}

/// The end of `date` (YYYY-MM-DD) in the billing time zone, as ms since the epoch.
fn end_of_day(date: &str, tz: &str) -> Result<i64, CliError> {
    let d: jiff::civil::Date = date
        .trim()
        .parse()
        .map_err(|_| CliError(format!("--expires {date:?} is not a date like 2026-12-31")))?;
    let tz = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let next = d
        .tomorrow()
        .map_err(|e| CliError(e.to_string()))?
        .to_zoned(tz)
        .map_err(|e| CliError(e.to_string()))?;
    Ok(next.timestamp().as_millisecond())
}

fn promo(config: crate::config::Config, command: PromoCommand) -> Result<(), CliError> {
    match command {
        PromoCommand::Create {
            points,
            count,
            uses,
            expires,
            prefix,
            out,
        } => {
            let expires_ms = match &expires {
                Some(d) => Some(end_of_day(d, &config.billing.time_zone)?),
                None => None,
            };
            let batch = ops::PromoBatch {
                points,
                count,
                uses,
                expires_ms,
                prefix,
            };
            let codes: Vec<ops::PromoView> = match connect(config)? {
                Target::Direct(app) => ops::create_promos(&app, batch).map_err(ops_error)?,
                Target::Daemon(d) => d.post("/promocodes", &batch)?,
            };
            let text: String = codes.iter().map(|c| format!("{}\n", c.code)).collect();
            match out {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))?;
                    println!(
                        "{} codes of {points} points written to {}",
                        codes.len(),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
        }
        PromoCommand::List => {
            let codes: Vec<ops::PromoView> = match connect(config)? {
                Target::Direct(app) => ops::list_promos(&app).map_err(ops_error)?,
                Target::Daemon(d) => {
                    let mut all = Vec::new();
                    let mut cursor = String::new();
                    loop {
                        let page: ops::PromoPage =
                            d.get(&format!("/promocodes?limit=200&cursor={cursor}"))?;
                        all.extend(page.items);
                        match page.next_cursor {
                            Some(c) => cursor = c,
                            None => break all,
                        }
                    }
                }
            };
            print!("{}", render::promos(&codes));
        }
        PromoCommand::Disable { code } => {
            let p: ops::PromoView = match connect(config)? {
                Target::Direct(app) => ops::disable_promo(&app, &code).map_err(ops_error)?,
                Target::Daemon(d) => d.post(
                    &format!(
                        "/promocodes/{}/disable",
                        crate::store::normalize_code(&code)
                    ),
                    &serde_json::json!({}),
                )?,
            };
            println!(
                "disabled {} ({} of {} uses were taken)",
                p.code, p.used, p.uses
            );
        }
    }
    Ok(())
}
