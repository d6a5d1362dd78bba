//! Top-ups with YooKassa (card, SBP): an order per payment link, and settlement that acts only
//! on what `GET /payments/{id}` answers — never on a notification's body, which carries no
//! signature. A payment is credited once per YooKassa payment id (`yookassa:<id>`), whatever the
//! number of notifications, "Check payment" presses and reconciliation runs that see it.

use std::time::Duration;

use super::OpsError;
use crate::app::App;
use crate::domain::UserId;
use crate::store::{Credited, PaymentRecord, PaymentStatus, Rail, StoreError, YooKassaOrderRecord};
use crate::yookassa::{NewPayment, NewReceipt, Payment, Status, YooError};

/// A user's unpaid order for the same pack is reused (same payment, same link) this long;
/// an order whose create call never answered is given up after it.
const REUSE_MS: i64 = 3_600_000;

/// A payment link for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YooKassaLink {
    pub order_id: String,
    pub url: String,
    pub points: u32,
    pub bonus: u32,
    /// Rubles.
    pub rub: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum YooKassaError {
    #[error("YooKassa payments are off")]
    Off,
    #[error("no such pack for rubles")]
    UnknownPack,
    #[error("a receipt e-mail is needed first")]
    EmailRequired,
    #[error("not an e-mail address")]
    BadEmail,
    #[error("too many payment links; try again in a minute")]
    RateLimited,
    #[error("unknown order")]
    UnknownOrder,
    #[error(transparent)]
    Provider(#[from] YooError),
    #[error(transparent)]
    Ops(#[from] OpsError),
}

impl From<StoreError> for YooKassaError {
    fn from(e: StoreError) -> Self {
        YooKassaError::Ops(e.into())
    }
}

/// What a settlement found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Credited now.
    Credited {
        user: UserId,
        points: u32,
        balance: i64,
    },
    /// Credited before (a repeated notification or press).
    AlreadyCredited { user: UserId },
    /// Not paid yet.
    Pending { user: UserId },
    /// YooKassa canceled it (the user gave up, the card was declined, it expired).
    Canceled { user: UserId },
    /// Nothing done: the answer does not match one of our orders.
    Rejected(Rejection),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// YooKassa has no such payment.
    UnknownPayment,
    /// Its metadata names no order of ours (or another user).
    NotOurs,
    /// Its `test` flag differs from `yookassa.test`.
    TestMismatch,
    /// It succeeded with another amount or currency than the order's.
    AmountMismatch,
    /// A status we do not know.
    UnexpectedStatus,
}

/// What a reconciliation run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YooKassaReconcile {
    pub checked: usize,
    pub credited: usize,
    pub canceled: usize,
    /// Orders whose create call never answered, given up.
    pub abandoned: usize,
    /// Re-reads that failed (tried again next run).
    pub failed: usize,
}

/// Checks and stores the e-mail receipts go to; returns it normalised (trimmed).
pub fn set_receipt_email(app: &App, user: UserId, text: &str) -> Result<String, YooKassaError> {
    let email = text.trim();
    let (local, domain) = email.split_once('@').ok_or(YooKassaError::BadEmail)?;
    let ok = email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && email
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\"\\".contains(c));
    if !ok {
        return Err(YooKassaError::BadEmail);
    }
    app.store.set_customer_email(user, email)?;
    Ok(email.to_string())
}

/// Whether the bot must ask for an e-mail before a YooKassa link (receipts on, none stored).
pub fn receipt_email_needed(app: &App, user: UserId) -> Result<bool, YooKassaError> {
    let needs = app
        .config
        .yookassa
        .as_ref()
        .is_some_and(|c| c.receipt.is_some());
    Ok(needs && app.store.customer_email(user)?.is_none())
}

/// Creates (or reuses) the user's order for pack `pack` (0-based) and its YooKassa payment;
/// returns the link to pay. Rate-limited per user together with Stars invoices.
pub async fn create_yookassa_order(
    app: &App,
    user: UserId,
    pack: usize,
) -> Result<YooKassaLink, YooKassaError> {
    let (Some(cfg), Some(client)) = (app.config.yookassa.clone(), app.yookassa.clone()) else {
        return Err(YooKassaError::Off);
    };
    let billing = &app.config.billing;
    if !billing.payments_enabled {
        return Err(YooKassaError::Off);
    }
    let p = billing.packs.get(pack).ok_or(YooKassaError::UnknownPack)?;
    let rub = p.rub.ok_or(YooKassaError::UnknownPack)?;
    let link = |order_id: String, url: String| YooKassaLink {
        order_id,
        url,
        points: p.points,
        bonus: p.bonus,
        rub,
    };
    let (mut order, mut yk) = app
        .blocking(move |app| open_order(app, user, pack, rub))
        .await?;
    if let (Some(payment_id), Some(url)) = (&yk.payment_id, &yk.confirmation_url) {
        // The link of an earlier tap, if its payment is still open; a paid, canceled or
        // unusable one is settled and a new order made.
        match settle_yookassa(app, payment_id).await {
            Ok(Settled::Pending { .. }) | Err(_) => return Ok(link(order.id, url.clone())),
            Ok(settled) => {
                tracing::info!(%user, order = %order.id, ?settled, "earlier YooKassa link is closed; a new order");
                let (id, now) = (order.id.clone(), app.now_ms());
                (order, yk) = app
                    .blocking(move |app| {
                        app.store.cancel_order(&id, now)?;
                        open_order(app, user, pack, rub)
                    })
                    .await?;
            }
        }
    }
    let new = NewPayment {
        amount: order.amount,
        description: format!("{} points, order {}", order.points, order.id),
        order_id: order.id.clone(),
        user_id: user.get(),
        return_url: cfg.return_url.to_string(),
        receipt: match (&cfg.receipt, &yk.email) {
            (Some(r), Some(email)) => Some(NewReceipt {
                email: email.clone(),
                description: r.description.clone(),
                vat_code: r.vat_code,
            }),
            _ => None,
        },
    };
    match client.create_payment(&new).await {
        Ok(payment) => {
            let Some(url) = payment.confirmation_url().map(str::to_string) else {
                tracing::error!(order = %order.id, payment = %payment.id, "YooKassa answered without a confirmation URL");
                return Err(YooError::Decode("no confirmation_url".into()).into());
            };
            let (order_id, payment_id, u) = (order.id.clone(), payment.id.clone(), url.clone());
            app.blocking(move |app| {
                app.store
                    .set_yookassa_payment(&order_id, &payment_id, Some(&u))
            })
            .await?;
            tracing::info!(%user, order = %order.id, payment = %payment.id, rub, "YooKassa payment created");
            Ok(link(order.id, url))
        }
        Err(e) => {
            tracing::warn!(%user, order = %order.id, error = %e, "cannot create a YooKassa payment");
            if !e.is_retryable() {
                // Not worth repeating with this key: the next tap starts a new order.
                let (id, now) = (order.id.clone(), app.now_ms());
                app.blocking(move |app| app.store.cancel_order(&id, now))
                    .await?;
            }
            Err(e.into())
        }
    }
}

/// The user's fresh unpaid order for this pack (same e-mail), or a new one.
fn open_order(
    app: &App,
    user: UserId,
    pack: usize,
    rub: u32,
) -> Result<(PaymentRecord, YooKassaOrderRecord), YooKassaError> {
    let cfg = app.config.yookassa.as_ref().ok_or(YooKassaError::Off)?;
    let email = if cfg.receipt.is_some() {
        Some(
            app.store
                .customer_email(user)?
                .ok_or(YooKassaError::EmailRequired)?,
        )
    } else {
        None
    };
    let now = app.now_ms();
    let payments = app.store.payments()?;
    for order in payments.iter().filter(|o| {
        o.user == user
            && o.rail == Rail::YooKassa
            && o.id.starts_with("order:")
            && o.status == PaymentStatus::Pending
            && now - o.created_ms < REUSE_MS
    }) {
        if let Some(yk) = app.store.yookassa_order(&order.id)?
            && yk.pack as usize == pack
            && yk.email == email
        {
            return Ok((order.clone(), yk));
        }
    }
    let recent = payments
        .iter()
        .filter(|r| r.user == user && r.id.starts_with("order:") && now - r.created_ms < 60_000)
        .count();
    if recent >= app.config.billing.payments_per_minute as usize {
        return Err(YooKassaError::RateLimited);
    }
    let p = &app.config.billing.packs[pack];
    let id = format!("order:{}", ulid::Ulid::new());
    let order = PaymentRecord {
        id: id.clone(),
        order_id: id.clone(),
        user,
        rail: Rail::YooKassa,
        status: PaymentStatus::Pending,
        amount: u64::from(rub) * 100,
        currency: "RUB".into(),
        points: p.total_points(),
        created_ms: now,
        updated_ms: now,
    };
    let yk = YooKassaOrderRecord {
        order_id: id,
        pack: pack as u32,
        payment_id: None,
        confirmation_url: None,
        email,
    };
    app.store.put_yookassa_order(&order, &yk)?;
    Ok((order, yk))
}

/// Re-reads payment `payment_id` from YooKassa and acts on that answer only: credits a
/// succeeded payment of one of our orders (amount, currency, metadata and `test` flag
/// matching) once, marks a canceled one's order canceled, leaves a pending one. A credit is
/// told to the user in the bot (they paid outside the chat).
pub async fn settle_yookassa(app: &App, payment_id: &str) -> Result<Settled, YooKassaError> {
    let settled = settle(app, payment_id).await?;
    if let (
        Settled::Credited {
            user,
            points,
            balance,
        },
        Some(tg),
    ) = (&settled, app.telegram.clone())
    {
        let (user, points, balance) = (*user, *points, *balance);
        // Not awaited: a notification's answer must not wait for Telegram.
        tokio::spawn(async move { tg.payment_credited(user, points, balance).await });
    }
    Ok(settled)
}

async fn settle(app: &App, payment_id: &str) -> Result<Settled, YooKassaError> {
    let client = app.yookassa.clone().ok_or(YooKassaError::Off)?;
    let payment = match client.get_payment(payment_id).await {
        Ok(p) => p,
        Err(YooError::NotFound) => {
            tracing::warn!(payment = payment_id, "settle: YooKassa has no such payment");
            return Ok(Settled::Rejected(Rejection::UnknownPayment));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(app.blocking(move |app| apply(app, &payment)).await?)
}

fn apply(app: &App, p: &Payment) -> Result<Settled, StoreError> {
    let test = app.config.yookassa.as_ref().is_some_and(|c| c.test);
    let order = match p.order_id() {
        Some(id) => app
            .store
            .payment(id)?
            .filter(|o| o.rail == Rail::YooKassa && o.id.starts_with("order:")),
        None => None,
    };
    let Some(order) = order.filter(|o| p.user_id() == Some(o.user.get())) else {
        tracing::warn!(payment = %p.id, metadata = ?p.metadata, "settle: the payment is not for one of our orders");
        return Ok(Settled::Rejected(Rejection::NotOurs));
    };
    let user = order.user;
    if p.test != test {
        tracing::error!(payment = %p.id, test = p.test, expected = test, "settle: the payment's test flag differs from yookassa.test; ignored");
        return Ok(Settled::Rejected(Rejection::TestMismatch));
    }
    app.store
        .set_yookassa_payment(&order.id, &p.id, p.confirmation_url())?;
    let now = app.now_ms();
    match p.status {
        Status::Succeeded if p.paid => {
            if p.amount.currency != order.currency || p.amount.to_minor() != Some(order.amount) {
                tracing::error!(payment = %p.id, order = %order.id, amount = ?p.amount, expected = order.amount, "settle: paid amount differs from the order; credit by hand if right");
                return Ok(Settled::Rejected(Rejection::AmountMismatch));
            }
            crate::faults::crash_point("yookassa_paid");
            let credited = app.store.credit_payment(&PaymentRecord {
                id: format!("yookassa:{}", p.id),
                order_id: order.id.clone(),
                user,
                rail: Rail::YooKassa,
                status: PaymentStatus::Succeeded,
                amount: order.amount,
                currency: order.currency.clone(),
                points: order.points,
                created_ms: now,
                updated_ms: now,
            })?;
            Ok(match credited {
                Credited::Applied { balance } => {
                    crate::faults::crash_point("yookassa_credited");
                    tracing::info!(%user, payment = %p.id, order = %order.id, points = order.points, "YooKassa payment credited");
                    Settled::Credited {
                        user,
                        points: order.points,
                        balance,
                    }
                }
                Credited::Duplicate => Settled::AlreadyCredited { user },
            })
        }
        Status::Canceled => {
            let ours = app
                .store
                .yookassa_order(&order.id)?
                .is_some_and(|yk| yk.payment_id.as_deref() == Some(p.id.as_str()));
            if ours && app.store.cancel_order(&order.id, now)? {
                tracing::info!(%user, payment = %p.id, order = %order.id, "YooKassa payment canceled");
            }
            Ok(Settled::Canceled { user })
        }
        Status::Pending | Status::WaitingForCapture | Status::Succeeded => {
            Ok(Settled::Pending { user })
        }
        Status::Unknown => {
            tracing::warn!(payment = %p.id, "settle: unknown payment status; left as is");
            Ok(Settled::Rejected(Rejection::UnexpectedStatus))
        }
    }
}

/// "Check payment": settles the user's own order `order_id` by re-reading its payment.
pub async fn check_yookassa_order(
    app: &App,
    user: UserId,
    order_id: &str,
) -> Result<Settled, YooKassaError> {
    let id = order_id.to_string();
    let (order, yk) = app
        .blocking(move |app| -> Result<_, StoreError> {
            Ok((app.store.payment(&id)?, app.store.yookassa_order(&id)?))
        })
        .await?;
    let order = order
        .filter(|o| o.user == user && o.rail == Rail::YooKassa && o.id.starts_with("order:"))
        .ok_or(YooKassaError::UnknownOrder)?;
    match yk.and_then(|yk| yk.payment_id) {
        // The bot answers the press itself.
        Some(payment_id) => settle(app, &payment_id).await,
        None if order.status == PaymentStatus::Canceled => Ok(Settled::Canceled { user }),
        None => Ok(Settled::Pending { user }),
    }
}

/// Re-reads every pending YooKassa order of ours, so a lost notification is settled too.
pub async fn reconcile_yookassa(app: &App) -> Result<YooKassaReconcile, YooKassaError> {
    let mut report = YooKassaReconcile::default();
    if app.yookassa.is_none() {
        return Ok(report);
    }
    let now = app.now_ms();
    let pending = app
        .blocking(
            move |app| -> Result<Vec<(PaymentRecord, Option<String>)>, StoreError> {
                let mut out = Vec::new();
                for o in app.store.payments()? {
                    if o.rail == Rail::YooKassa
                        && o.id.starts_with("order:")
                        && o.status == PaymentStatus::Pending
                    {
                        let payment = app.store.yookassa_order(&o.id)?.and_then(|y| y.payment_id);
                        out.push((o, payment));
                    }
                }
                Ok(out)
            },
        )
        .await?;
    for (order, payment) in pending {
        let Some(payment) = payment else {
            if now - order.created_ms >= REUSE_MS {
                let id = order.id.clone();
                if app
                    .blocking(move |app| app.store.cancel_order(&id, now))
                    .await?
                {
                    report.abandoned += 1;
                }
            }
            continue;
        };
        report.checked += 1;
        match settle_yookassa(app, &payment).await {
            Ok(Settled::Credited { .. }) => report.credited += 1,
            Ok(Settled::Canceled { .. }) => report.canceled += 1,
            Ok(_) => {}
            Err(e) => {
                report.failed += 1;
                tracing::warn!(order = %order.id, %payment, error = %e, "reconcile: cannot re-read a YooKassa payment");
            }
        }
    }
    Ok(report)
}

/// Runs [`reconcile_yookassa`] every `yookassa.reconcile_interval` (the first run one interval
/// after start, so it never races the start-up) until `stop`.
pub async fn run_yookassa_reconciler(app: App, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(every) = app.config.yookassa.as_ref().map(|c| c.reconcile_interval) else {
        return;
    };
    let every = every.max(Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let run = reconcile_yookassa(&app);
        let report = tokio::select! {
            r = run => r,
            _ = stop.changed() => return,
        };
        match report {
            Ok(r) if r != YooKassaReconcile::default() => {
                tracing::info!(?r, "YooKassa payments reconciled");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "YooKassa reconciliation failed"),
        }
    }
}
