//! The admin API under `/api/v1` (bearer token): each handler parses, calls one `ops::`
//! function off the async runtime, and renders JSON.

use std::path::PathBuf;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::error::ApiError;
use crate::app::App;
use crate::domain::{JobId, JobSpec, Lane, Points, UserId};
use crate::ops::{self, JobView, TopupRequest, UserView};

type ApiResult<T> = Result<Json<T>, ApiError>;

fn user_id(text: &str) -> Result<UserId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not a Telegram user id")))
}

fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not a job id")))
}

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload
        .map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

pub async fn get_user(State(app): State<App>, Path(id): Path<String>) -> ApiResult<UserView> {
    let id = user_id(&id)?;
    let s = app
        .blocking(move |app| ops::user_summary(app, id, 20))
        .await?;
    Ok(Json(UserView::from(s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopupBody {
    points: i64,
    reason: Option<String>,
    #[serde(default)]
    create: bool,
    idempotency_key: Option<String>,
}

pub async fn topup(
    State(app): State<App>,
    Path(id): Path<String>,
    payload: Result<Json<TopupBody>, JsonRejection>,
) -> ApiResult<ops::TopupOutcome> {
    let user = user_id(&id)?;
    let b = body(payload)?;
    let points = Points::positive(b.points).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let req = TopupRequest {
        user,
        points,
        note: b.reason,
        create: b.create,
        idempotency_key: b.idempotency_key,
    };
    Ok(Json(app.blocking(move |app| ops::topup(app, req)).await?))
}

pub async fn verify_ledger(State(app): State<App>) -> ApiResult<crate::store::LedgerCheck> {
    Ok(Json(app.blocking(ops::verify_ledger).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// Optional: makes a repeated submission harmless.
    job_id: Option<String>,
    user: i64,
    chat: Option<i64>,
    preset: Option<String>,
    prompt: Option<String>,
    workflow: Option<String>,
    #[serde(default)]
    inputs: Vec<String>,
    seed: Option<u64>,
    price: Option<u32>,
    #[serde(default)]
    priority: bool,
}

pub async fn submit_job(
    State(app): State<App>,
    payload: Result<Json<SubmitBody>, JsonRejection>,
) -> ApiResult<ops::Submitted> {
    let b = body(payload)?;
    let job = match b.job_id.as_deref() {
        Some(text) => job_id(text)?,
        None => JobId::new(),
    };
    let spec = JobSpec {
        user: UserId::new(b.user),
        chat: b.chat,
        inputs: b.inputs,
        preset: b.preset,
        prompt: b.prompt,
        workflow: b.workflow.unwrap_or_else(|| "qwen-image-edit-2511".into()),
        seed: b.seed.unwrap_or_else(rand::random),
        price: Points::new(b.price.unwrap_or(app.config.billing.edit_price)),
        lane: if b.priority {
            Lane::Priority
        } else {
            Lane::Normal
        },
    };
    Ok(Json(
        app.blocking(move |app| ops::submit_edit(app, job, spec))
            .await?,
    ))
}

pub async fn get_job(State(app): State<App>, Path(id): Path<String>) -> ApiResult<JobView> {
    let id = job_id(&id)?;
    let r = app.blocking(move |app| ops::job(app, id)).await?;
    Ok(Json(JobView::from(&r)))
}

pub async fn cancel_job(State(app): State<App>, Path(id): Path<String>) -> ApiResult<JobView> {
    let id = job_id(&id)?;
    let r = app.blocking(move |app| ops::cancel_job(app, id)).await?;
    Ok(Json(JobView::from(&r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    dir: PathBuf,
}

pub async fn backup(
    State(app): State<App>,
    payload: Result<Json<BackupBody>, JsonRejection>,
) -> ApiResult<ops::BackupReport> {
    let b = body(payload)?;
    if !b.dir.is_absolute() {
        return Err(ApiError::bad_request(
            "the backup dir must be an absolute path",
        ));
    }
    Ok(Json(
        app.blocking(move |app| ops::backup(app, &b.dir)).await?,
    ))
}

pub async fn create_promos(
    State(app): State<App>,
    payload: Result<Json<ops::PromoBatch>, JsonRejection>,
) -> ApiResult<Vec<ops::PromoView>> {
    let b = body(payload)?;
    Ok(Json(
        app.blocking(move |app| ops::create_promos(app, b)).await?,
    ))
}

pub async fn list_promos(State(app): State<App>) -> ApiResult<Vec<ops::PromoView>> {
    Ok(Json(app.blocking(ops::list_promos).await?))
}

pub async fn disable_promo(
    State(app): State<App>,
    Path(code): Path<String>,
) -> ApiResult<ops::PromoView> {
    Ok(Json(
        app.blocking(move |app| ops::disable_promo(app, &code))
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    charge_id: String,
}

/// Refunds a Stars payment through Telegram and takes its points back (once per charge id).
pub async fn refund_stars(
    State(app): State<App>,
    payload: Result<Json<RefundBody>, JsonRejection>,
) -> ApiResult<ops::RefundOutcome> {
    let b = body(payload)?;
    Ok(Json(ops::refund_stars(&app, &b.charge_id).await?))
}
