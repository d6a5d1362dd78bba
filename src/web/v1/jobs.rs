//! Jobs: list, get, submit, cancel, retry, result.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery, parse_id};
use super::{ApiResult, E400, E401, E404Job};
use crate::app::App;
use crate::domain::{JobId, JobState, UserId};
use crate::ops::{self, JobFilter, JobView, PageRequest};
use crate::web::error::{ApiError, ErrorBody};

fn job_id(text: &str) -> Result<JobId, ApiError> {
    parse_id(text, "a job id")
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// `queued`, `running`, `succeeded`, `failed`, `dead_lettered` or `cancelled`.
    state: Option<String>,
    /// Telegram user id.
    user: Option<i64>,
    /// Created at or after (ms since the Unix epoch).
    since_ms: Option<i64>,
    /// Created before (ms since the Unix epoch).
    until_ms: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Jobs (queued, running and the retained history), newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = ops::JobPage), E400, E401))]
pub async fn list(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> ApiResult<ops::JobPage> {
    let page = PageRequest::new(q.limit, q.cursor)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state must be queued, running, succeeded, failed, dead_lettered or cancelled, not {s:?}"
            ))
        })?),
    };
    let filter = JobFilter {
        state,
        user: q.user.map(UserId::new),
        since_ms: q.since_ms,
        until_ms: q.until_ms,
    };
    Ok(Json(
        app.blocking(move |app| ops::list_jobs(app, &filter, &page))
            .await?,
    ))
}

/// A job with its timings (`wait_ms`, `run_ms`), backend, attempts and last error.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id (ULID)")),
    responses((status = 200, body = JobView), E400, E401, E404Job))]
pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<JobView> {
    let id = job_id(&id)?;
    let r = app.blocking(move |app| ops::job(app, id)).await?;
    Ok(Json(JobView::from(&r)))
}

/// Cancel a job that has not started; its points go back.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id (ULID)")),
    responses((status = 200, body = JobView), E400, E401, E404Job,
        (status = 409, description = "`not_cancellable`: it has started or finished", body = ErrorBody)))]
pub async fn cancel(State(app): State<App>, Path(id): Path<String>) -> ApiResult<JobView> {
    let id = job_id(&id)?;
    let r = app.blocking(move |app| ops::cancel_job(app, id)).await?;
    Ok(Json(JobView::from(&r)))
}

/// Run a failed or dead-lettered job again, as a new job with the same inputs, prompt and
/// seed, charged like a new job. Send an `Idempotency-Key` to make a repeat harmless.
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id (ULID)"), super::IdempotencyKeyHeader),
    responses((status = 200, body = ops::Submitted, description = "The new job"), E400, E401, E404Job,
        (status = 402, description = "`insufficient_points`", body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody),
        (status = 409, description = "`not_retryable`, `idempotency_conflict`, `idempotency_in_progress`", body = ErrorBody)))]
pub async fn retry(State(app): State<App>, Path(id): Path<String>) -> ApiResult<ops::Submitted> {
    let id = job_id(&id)?;
    Ok(Json(
        app.blocking(move |app| ops::retry_job(app, id, JobId::new()))
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResultQuery {
    /// Which result, from 0 (default 0).
    index: Option<usize>,
}

/// Download a succeeded job's result image (PNG).
#[utoipa::path(get, path = "/jobs/{id}/result", tag = "jobs",
    params(("id" = String, Path, description = "Job id (ULID)"), ResultQuery),
    responses((status = 200, description = "The PNG image", content_type = "image/png", body = Vec<u8>),
        E400, E401, E404Job,
        (status = 409, description = "`no_result`: not succeeded, or the file is gone", body = ErrorBody)))]
pub async fn result(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id = job_id(&id)?;
    let index = q.index.unwrap_or(0);
    let png = app
        .blocking(move |app| ops::job_result(app, id, index))
        .await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// A job id (ULID) chosen by the caller: a repeated submission is harmless.
    job_id: Option<String>,
    user: i64,
    /// A Telegram chat to deliver the result to.
    chat: Option<i64>,
    /// A preset key; its prompt, workflow and price are used.
    preset: Option<String>,
    /// The prompt, when there is no preset.
    prompt: Option<String>,
    workflow: Option<String>,
    /// Data-dir names of inputs, as returned by `POST /inputs`.
    #[serde(default)]
    inputs: Vec<String>,
    seed: Option<u64>,
    /// Points; the preset's or default price when absent.
    price: Option<u32>,
    #[serde(default)]
    priority: bool,
}

/// Submit a job for a user: its price is held, then it is queued.
#[utoipa::path(post, path = "/jobs", tag = "jobs", params(super::IdempotencyKeyHeader),
    request_body = SubmitBody,
    responses((status = 200, body = ops::Submitted), E400, E401,
        (status = 402, description = "`insufficient_points`", body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody),
        (status = 404, description = "`unknown_user`", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict`, `idempotency_in_progress`", body = ErrorBody)))]
pub async fn submit(
    State(app): State<App>,
    ApiJson(b): ApiJson<SubmitBody>,
) -> ApiResult<ops::Submitted> {
    let job = match b.job_id.as_deref() {
        Some(text) => job_id(text)?,
        None => JobId::new(),
    };
    let spec = ops::edit_spec(
        &app,
        ops::EditSpec {
            user: b.user,
            chat: b.chat,
            preset: b.preset,
            prompt: b.prompt,
            workflow: b.workflow,
            inputs: b.inputs,
            seed: b.seed,
            price: b.price,
            priority: b.priority,
        },
    )?;
    Ok(Json(
        app.blocking(move |app| ops::submit_edit(app, job, spec))
            .await?,
    ))
}
