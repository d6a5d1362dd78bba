//! The operator's use cases behind the admin API (and the CLI): listing users, ledgers, jobs
//! and payments page by page, retrying a failed job, a job's result, presets and backends.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::page::{PageRequest, paginate};
use super::{JobView, LedgerEntryView, OpsError, Submitted};
use crate::app::App;
use crate::domain::{JobId, JobSpec, JobState, Points, UserId};
use crate::store::{PaymentRecord, PaymentStatus, Rail, UserRecord};

/// A page of a list: `items`, and `next_cursor` to ask for the next page (absent on the last).
macro_rules! page_type {
    ($name:ident, $item:ty) => {
        #[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; absent on the last page.
            pub next_cursor: Option<String>,
        }

        impl $name {
            fn new((items, next_cursor): (Vec<$item>, Option<String>)) -> Self {
                Self { items, next_cursor }
            }
        }
    };
}

page_type!(UserPage, UserRow);
page_type!(LedgerPage, LedgerEntryView);
page_type!(JobPage, JobView);
page_type!(PaymentPage, PaymentView);
page_type!(PromoPage, super::PromoView);

/// A user as listed: the record and the balance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct UserRow {
    pub id: i64,
    pub username: Option<String>,
    pub language: Option<String>,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub admin: bool,
    pub unlimited: bool,
    pub banned: bool,
    pub balance: i64,
}

impl UserRow {
    fn new(u: UserRecord, balance: i64) -> Self {
        Self {
            id: u.id.get(),
            username: u.username,
            language: u.language,
            created_ms: u.created_ms,
            last_seen_ms: u.last_seen_ms,
            admin: u.admin,
            unlimited: u.unlimited,
            banned: u.banned,
            balance,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Part of the id or of the username (case-insensitive).
    pub search: Option<String>,
    pub banned: Option<bool>,
}

/// Users by id, filtered.
pub fn list_users(
    app: &App,
    filter: &UserFilter,
    page: &PageRequest,
) -> Result<UserPage, OpsError> {
    let needle = filter
        .search
        .as_deref()
        .map(|s| s.trim().trim_start_matches('@').to_lowercase())
        .filter(|s| !s.is_empty());
    let users: Vec<UserRecord> = app
        .store
        .users()?
        .into_iter()
        .filter(|u| filter.banned.is_none_or(|b| u.banned == b))
        .filter(|u| match &needle {
            None => true,
            Some(n) => {
                u.id.get().to_string().contains(n.as_str())
                    || u.username
                        .as_deref()
                        .is_some_and(|name| name.to_lowercase().contains(n.as_str()))
            }
        })
        .collect();
    let (users, next) = paginate(users, |u| u.id.get(), false, page)?;
    let mut rows = Vec::with_capacity(users.len());
    for u in users {
        let balance = app.store.balance(u.id)?;
        rows.push(UserRow::new(u, balance));
    }
    Ok(UserPage::new((rows, next)))
}

/// Creates a user the operator names (no welcome points) unless known; whether it was created.
pub fn ensure_user(app: &App, id: UserId) -> Result<bool, OpsError> {
    Ok(app.store.ensure_user(id, app.now_ms())?)
}

/// One user as listed.
pub fn user_row(app: &App, id: UserId) -> Result<UserRow, OpsError> {
    let u = app.store.user(id)?.ok_or(OpsError::UnknownUser(id))?;
    Ok(UserRow::new(u, app.store.balance(id)?))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct BalanceView {
    pub user: i64,
    pub balance: i64,
    /// Points held by jobs that have not finished (already subtracted from `balance`).
    pub held: i64,
}

pub fn balance(app: &App, id: UserId) -> Result<BalanceView, OpsError> {
    app.store.user(id)?.ok_or(OpsError::UnknownUser(id))?;
    let held = app
        .store
        .open_holds()?
        .iter()
        .filter(|h| h.user == id)
        .map(|h| i64::from(h.amount))
        .sum();
    Ok(BalanceView {
        user: id.get(),
        balance: app.store.balance(id)?,
        held,
    })
}

/// A user's ledger, newest entry first.
pub fn ledger(app: &App, id: UserId, page: &PageRequest) -> Result<LedgerPage, OpsError> {
    app.store.user(id)?.ok_or(OpsError::UnknownUser(id))?;
    let before: Option<u64> = page.after()?;
    let limit = page.limit as usize;
    let mut entries = app.store.ledger_page(id, before, limit + 1)?;
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(LedgerPage::new((
        entries.iter().map(Into::into).collect(),
        next,
    )))
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub user: Option<UserId>,
    /// Created at or after (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Created before.
    pub until_ms: Option<i64>,
}

/// Jobs known to the queue (active and the retained history), newest first.
pub fn list_jobs(app: &App, filter: &JobFilter, page: &PageRequest) -> Result<JobPage, OpsError> {
    let mut all = app.queue.active_jobs();
    all.extend(app.queue.recent_finished(usize::MAX)?);
    let jobs: Vec<_> = all
        .into_iter()
        .filter(|r| filter.state.is_none_or(|s| r.state() == s))
        .filter(|r| filter.user.is_none_or(|u| r.user() == u))
        .filter(|r| filter.since_ms.is_none_or(|t| r.created_ms >= t))
        .filter(|r| filter.until_ms.is_none_or(|t| r.created_ms < t))
        .collect();
    let (jobs, next) = paginate(jobs, |r| r.id, true, page)?;
    Ok(JobPage::new((jobs.iter().map(Into::into).collect(), next)))
}

/// The price a job's preset (or the default) lists, before per-user rules.
pub fn listed_price(app: &App, preset: Option<&str>) -> Points {
    let presets = app.presets.get();
    Points::new(
        preset
            .and_then(|k| presets.get(k))
            .and_then(|p| p.price)
            .map_or(app.config.billing.edit_price, Points::get),
    )
}

/// An edit request from outside Telegram (the API, the watched folder): a preset (its prompt,
/// workflow and price) or an own prompt, on inputs already stored.
#[derive(Clone, Debug, Default)]
pub struct EditSpec {
    pub user: i64,
    pub chat: Option<i64>,
    pub preset: Option<String>,
    pub prompt: Option<String>,
    pub workflow: Option<String>,
    pub inputs: Vec<String>,
    pub seed: Option<u64>,
    /// Overrides the listed price.
    pub price: Option<u32>,
    pub priority: bool,
}

pub fn edit_spec(app: &App, e: EditSpec) -> Result<JobSpec, OpsError> {
    if e.inputs.is_empty() {
        return Err(OpsError::Invalid("a job needs at least one input".into()));
    }
    let presets = app.presets.get();
    let preset = match e.preset.as_deref() {
        Some(key) => Some(
            presets
                .get(key)
                .ok_or_else(|| OpsError::Invalid(format!("unknown preset {key:?}")))?,
        ),
        None => None,
    };
    let prompt = e.prompt.or_else(|| preset.map(|p| p.prompt.clone()));
    if prompt.as_deref().is_none_or(|p| p.trim().is_empty()) {
        return Err(OpsError::Invalid("give a preset or a prompt".into()));
    }
    Ok(JobSpec {
        user: UserId::new(e.user),
        chat: e.chat,
        inputs: e.inputs,
        prompt,
        workflow: e
            .workflow
            .or_else(|| preset.and_then(|p| p.workflow.clone()))
            .unwrap_or_else(|| app.config.comfyui.default_workflow.clone()),
        seed: e.seed.unwrap_or_else(rand::random),
        price: match e.price {
            Some(p) => Points::new(p),
            None => listed_price(app, e.preset.as_deref()),
        },
        preset: e.preset,
        lane: if e.priority {
            crate::domain::Lane::Priority
        } else {
            crate::domain::Lane::Normal
        },
    })
}

/// Runs a failed or dead-lettered job again as a new job (same inputs, prompt and seed),
/// charged like a new one.
pub fn retry_job(app: &App, id: JobId, new_id: JobId) -> Result<Submitted, OpsError> {
    let old = super::job(app, id)?;
    if !matches!(old.state(), JobState::Failed | JobState::DeadLettered) {
        return Err(OpsError::NotRetryable {
            job: id,
            reason: format!(
                "it is {}; only failed jobs are retried",
                old.state().as_str()
            ),
        });
    }
    let mut spec: JobSpec = old.spec();
    let data_dir = &app.config.storage.data_dir;
    if let Some(missing) = spec
        .inputs
        .iter()
        .find(|i| !crate::files::resolve(data_dir, i).is_ok_and(|p| p.is_file()))
    {
        return Err(OpsError::NotRetryable {
            job: id,
            reason: format!("its input {missing} is gone"),
        });
    }
    spec.price = listed_price(app, spec.preset.as_deref());
    let submitted = super::submit_edit(app, new_id, spec)?;
    tracing::info!(old = %id, new = %new_id, "job retried");
    Ok(submitted)
}

/// The PNG bytes of a succeeded job's `index`-th result.
pub fn job_result(app: &App, id: JobId, index: usize) -> Result<Vec<u8>, OpsError> {
    let r = super::job(app, id)?;
    let no = |why: &str| OpsError::NoResult {
        job: id,
        reason: why.to_string(),
    };
    if r.state() != JobState::Succeeded {
        return Err(no(&format!("it is {}", r.state().as_str())));
    }
    let outputs = r.result.map(|x| x.outputs).unwrap_or_default();
    let name = outputs
        .get(index)
        .ok_or_else(|| no(&format!("it has {} result(s)", outputs.len())))?;
    crate::files::read(&app.config.storage.data_dir, name)
        .map_err(|_| no("its result file is gone from the data dir"))
}

/// Checks an uploaded image and stores it as a job input; returns its data-dir name.
pub fn store_input(app: &App, bytes: &[u8]) -> Result<String, OpsError> {
    let normalized = crate::media::normalize(bytes, app.media.limits(), app.config.input_pixels())
        .map_err(|r| OpsError::BadImage(r.to_string()))?;
    crate::files::store_input(&app.config.storage.data_dir, &normalized.png)
        .map_err(|e| OpsError::Invalid(format!("cannot store the input: {e}")))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PaymentView {
    /// `order:<id>` (an invoice), `stars:<charge id>` or `yookassa:<id>` (a payment).
    pub id: String,
    pub order_id: String,
    pub user: i64,
    /// `stars` or `yookassa`.
    pub rail: String,
    /// `pending`, `succeeded`, `canceled` or `refunded`.
    pub status: String,
    /// In the currency's smallest unit (Stars; kopecks).
    pub amount: u64,
    pub currency: String,
    pub points: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
}

fn rail_name(r: Rail) -> &'static str {
    match r {
        Rail::Stars => "stars",
        Rail::YooKassa => "yookassa",
    }
}

fn status_name(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Canceled => "canceled",
        PaymentStatus::Refunded => "refunded",
    }
}

impl From<&PaymentRecord> for PaymentView {
    fn from(p: &PaymentRecord) -> Self {
        Self {
            id: p.id.clone(),
            order_id: p.order_id.clone(),
            user: p.user.get(),
            rail: rail_name(p.rail).into(),
            status: status_name(p.status).into(),
            amount: p.amount,
            currency: p.currency.clone(),
            points: p.points,
            created_ms: p.created_ms,
            updated_ms: p.updated_ms,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct PaymentFilter {
    pub user: Option<UserId>,
    pub rail: Option<String>,
    pub status: Option<String>,
    /// Include unpaid orders (`order:...`); payments only by default.
    pub orders: bool,
}

/// Payments (and orders, when asked), newest first.
pub fn list_payments(
    app: &App,
    filter: &PaymentFilter,
    page: &PageRequest,
) -> Result<PaymentPage, OpsError> {
    for (name, value, allowed) in [
        ("rail", &filter.rail, &["stars", "yookassa"][..]),
        (
            "status",
            &filter.status,
            &["pending", "succeeded", "canceled", "refunded"][..],
        ),
    ] {
        if let Some(v) = value
            && !allowed.contains(&v.as_str())
        {
            return Err(OpsError::Invalid(format!(
                "{name} must be one of {}, not {v:?}",
                allowed.join(", ")
            )));
        }
    }
    let views: Vec<PaymentView> = app
        .store
        .payments()?
        .iter()
        .filter(|p| filter.orders || !p.id.starts_with("order:"))
        .filter(|p| filter.user.is_none_or(|u| p.user == u))
        .map(PaymentView::from)
        .filter(|p| filter.rail.as_ref().is_none_or(|r| &p.rail == r))
        .filter(|p| filter.status.as_ref().is_none_or(|s| &p.status == s))
        .collect();
    // Newest first; the id breaks ties. Times are non-negative, so padding keeps the order.
    let key = |p: &PaymentView| format!("{:020}~{}", p.created_ms.max(0), p.id);
    Ok(PaymentPage::new(paginate(views, key, true, page)?))
}

pub fn payment(app: &App, id: &str) -> Result<PaymentView, OpsError> {
    app.store
        .payment(id)?
        .map(|p| PaymentView::from(&p))
        .ok_or_else(|| OpsError::UnknownPayment(id.to_string()))
}

/// Promocodes by batch and code.
pub fn promo_page(app: &App, page: &PageRequest) -> Result<PromoPage, OpsError> {
    let all = super::list_promos(app)?;
    let key = |p: &super::PromoView| format!("{}~{}", p.batch, p.code);
    Ok(PromoPage::new(paginate(all, key, false, page)?))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PresetView {
    pub key: String,
    pub category: String,
    pub emoji: String,
    pub title_ru: String,
    pub title_en: String,
    /// Photos it takes (1 to 3).
    pub images: u8,
    /// Points; the default edit price when absent.
    pub price: Option<u32>,
    pub workflow: Option<String>,
}

pub fn list_presets(app: &App) -> Vec<PresetView> {
    app.presets
        .get()
        .all()
        .map(|p| PresetView {
            key: p.key.clone(),
            category: p.category.as_str().into(),
            emoji: p.emoji.clone(),
            title_ru: p.title.ru.clone(),
            title_en: p.title.en.clone(),
            images: p.images,
            price: p.price.map(Points::get),
            workflow: p.workflow.clone(),
        })
        .collect()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PresetsReloaded {
    pub presets: usize,
}

/// Reloads the preset folders; on a bad file the loaded set stays as it was.
pub fn reload_presets(app: &App) -> Result<PresetsReloaded, OpsError> {
    let n = app
        .presets
        .reload(&app.config)
        .map_err(|e| OpsError::BadPresets(e.to_string()))?;
    tracing::info!(presets = n, "presets reloaded");
    Ok(PresetsReloaded { presets: n })
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct BackendState {
    /// Its place in `comfyui.backends`, from 0.
    pub id: usize,
    pub url: String,
    pub up: bool,
    /// Takes no new jobs; finishes the ones it has.
    pub draining: bool,
    pub last_error: Option<String>,
    pub version: Option<String>,
    pub device: Option<String>,
    pub vram_total: u64,
    pub vram_free: u64,
    pub current_job: Option<String>,
    pub progress: u8,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub average_ms: Option<u64>,
}

pub fn backends(app: &App) -> Vec<BackendState> {
    app.backends
        .all()
        .iter()
        .enumerate()
        .map(|(id, b)| {
            let h = b.health();
            BackendState {
                id,
                url: b.name.clone(),
                up: h.up,
                draining: h.draining,
                average_ms: h.average_ms(),
                last_error: h.last_error,
                version: h.version,
                device: h.device,
                vram_total: h.vram_total,
                vram_free: h.vram_free,
                current_job: h.current_job,
                progress: h.progress,
                jobs_done: h.jobs_done,
                jobs_failed: h.jobs_failed,
            }
        })
        .collect()
}

/// Drains a backend (it finishes the jobs it has and takes no new ones) or puts it back to
/// work. Not persisted: a restart brings every backend back.
pub fn set_draining(app: &App, id: usize, draining: bool) -> Result<BackendState, OpsError> {
    let backend = app
        .backends
        .all()
        .get(id)
        .ok_or_else(|| OpsError::UnknownBackend(id.to_string()))?;
    backend.update(|h| h.draining = draining);
    tracing::info!(backend = %backend.name, draining, "backend drain changed");
    if !draining {
        app.jobs_changed.notify_waiters();
    }
    Ok(backends(app).swap_remove(id))
}
