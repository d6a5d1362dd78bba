//! Use cases. The bot, the web handlers and the CLI each parse their input, call one function
//! here and render its typed outcome; rules about points and jobs live only here.
//! Functions are synchronous (storage is blocking): async callers use `App::blocking`.

mod admin;
mod backup;
mod doctor;
mod edit;
mod jobs;
mod metrics;
mod operator;
pub mod page;
mod payments;
mod promo;
mod reconcile;
mod replay;
mod retention;
mod stars;
mod status;
mod users;
mod views;
mod weekly;
mod yookassa;

pub use admin::{Stats, set_banned, set_unlimited, stats};
pub use backup::{BackupReport, backup};
pub use doctor::{Check, DoctorReport, Status, doctor};
pub use edit::{EditError, EditOutcome, EditRequest, edit_once};
pub use jobs::{Submitted, cancel_job, disk_full, job, price_for, settle_job, submit_edit};
pub use metrics::{MetricsView, metrics, payment_state};
pub use operator::{
    BackendState, BalanceView, EditSpec, JobFilter, JobPage, LedgerPage, PaymentFilter,
    PaymentPage, PaymentView, PresetView, PresetsReloaded, PromoPage, UserFilter, UserPage,
    UserRow, backends, balance, edit_spec, ensure_user, job_result, ledger, list_jobs,
    list_payments, list_presets, list_users, listed_price, payment, promo_page, reload_presets,
    retry_job, set_draining, store_input, user_row,
};
pub use page::PageRequest;
pub use payments::{
    Order, Refusal, create_stars_order, credit_stars, payment_history, pre_checkout,
};
pub use promo::{PromoBatch, PromoView, create_promos, disable_promo, list_promos, redeem_promo};
pub use reconcile::{ReconcileReport, reconcile};
pub use replay::{ReplayBegin, forget_old_replays, replay_abort, replay_begin, replay_finish};
pub use retention::{CleanReport, CompactError, CompactReport, clean_files, compact};
pub use stars::{
    BoxFuture, RefundOutcome, StarTransaction, StarsReport, Telegram, TelegramError, WeeklyNotice,
    reconcile_stars, reconcile_stars_now, refund_stars, stars_task,
};
pub use status::{
    BackendView, JobRow, QueueView, RevenueRow, StatusView, StorageView, Throughput, UsersView,
    dir_size, status,
};
pub use users::{
    TopupOutcome, TopupRequest, UserSummary, register_user, topup, user_summary, verify_ledger,
};
pub use views::{JobView, LedgerEntryView, UserView};
pub use weekly::{WeeklyReport, due_week, weekly_bonus, weekly_task};
pub use yookassa::{
    Rejection, Settled, YooKassaError, YooKassaLink, YooKassaReconcile, check_yookassa_order,
    create_yookassa_order, receipt_email_needed, reconcile_yookassa, run_yookassa_reconciler,
    set_receipt_email, settle_yookassa,
};

use crate::domain::{JobId, JobState, UserId};
use crate::queue::QueueError;
use crate::store::StoreError;

/// What can go wrong in a use case, in words callers act on.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    #[error("not enough points: need {need}, have {have}")]
    InsufficientPoints { need: u32, have: i64 },
    #[error("user {0} is banned")]
    Banned(UserId),
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    #[error("job {job} is {} and cannot be cancelled", state.as_str())]
    NotCancellable { job: JobId, state: JobState },
    #[error("{0}")]
    Invalid(String),
    #[error("the idempotency key was already used for a different request")]
    KeyConflict,
    #[error("too many requests; try again in a minute")]
    RateLimited,
    #[error("job {job} cannot be retried: {reason}")]
    NotRetryable { job: JobId, reason: String },
    #[error("job {job} has no result: {reason}")]
    NoResult { job: JobId, reason: String },
    #[error("unknown payment {0:?}")]
    UnknownPayment(String),
    #[error("unknown promocode {0:?}")]
    UnknownPromo(String),
    #[error("unknown backend {0:?}")]
    UnknownBackend(String),
    #[error("{0}")]
    BadImage(String),
    #[error("{0}")]
    BadPresets(String),
    #[error("the data dir is low on free space; new jobs are refused")]
    DiskFull,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Queue(QueueError),
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownUser(u) => OpsError::UnknownUser(u),
            StoreError::InsufficientPoints { need, have } => {
                OpsError::InsufficientPoints { need, have }
            }
            StoreError::KeyConflict { .. } => OpsError::KeyConflict,
            other => OpsError::Store(other),
        }
    }
}

impl From<QueueError> for OpsError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::UnknownJob(j) => OpsError::UnknownJob(j),
            QueueError::NotCancellable { job, state } => OpsError::NotCancellable { job, state },
            other => OpsError::Queue(other),
        }
    }
}
