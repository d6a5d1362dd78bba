//! Presets, backends, stats, inputs and backups.

use std::path::PathBuf;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, parse_id};
use super::{ApiResult, E400, E401};
use crate::app::App;
use crate::ops;
use crate::web::error::{ApiError, ErrorBody};

/// Every loaded preset, by category and key.
#[utoipa::path(get, path = "/presets", tag = "presets",
    responses((status = 200, body = Vec<ops::PresetView>), E401))]
pub async fn presets(State(app): State<App>) -> Json<Vec<ops::PresetView>> {
    Json(ops::list_presets(&app))
}

/// Reload the preset folders from disk. A bad file changes nothing and is reported.
#[utoipa::path(post, path = "/presets/reload", tag = "presets",
    responses((status = 200, body = ops::PresetsReloaded), E401,
        (status = 422, description = "`invalid_presets`: the file and field at fault", body = ErrorBody)))]
pub async fn reload_presets(State(app): State<App>) -> ApiResult<ops::PresetsReloaded> {
    Ok(Json(app.blocking(ops::reload_presets).await?))
}

/// ComfyUI backends with their health.
#[utoipa::path(get, path = "/backends", tag = "backends",
    responses((status = 200, body = Vec<ops::BackendState>), E401))]
pub async fn backends(State(app): State<App>) -> Json<Vec<ops::BackendState>> {
    Json(ops::backends(&app))
}

fn backend_id(text: &str) -> Result<usize, ApiError> {
    parse_id(text, "a backend id (its place in comfyui.backends, from 0)")
}

/// Drain a backend: it finishes the jobs it has and takes no new ones (until undrained or
/// restarted).
#[utoipa::path(post, path = "/backends/{id}/drain", tag = "backends",
    params(("id" = usize, Path, description = "Place in `comfyui.backends`, from 0")),
    responses((status = 200, body = ops::BackendState), E400, E401,
        (status = 404, description = "`unknown_backend`", body = ErrorBody)))]
pub async fn drain(State(app): State<App>, Path(id): Path<String>) -> ApiResult<ops::BackendState> {
    let id = backend_id(&id)?;
    Ok(Json(ops::set_draining(&app, id, true)?))
}

/// Put a drained backend back to work.
#[utoipa::path(post, path = "/backends/{id}/undrain", tag = "backends",
    params(("id" = usize, Path, description = "Place in `comfyui.backends`, from 0")),
    responses((status = 200, body = ops::BackendState), E400, E401,
        (status = 404, description = "`unknown_backend`", body = ErrorBody)))]
pub async fn undrain(
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<ops::BackendState> {
    let id = backend_id(&id)?;
    Ok(Json(ops::set_draining(&app, id, false)?))
}

/// Users, today's jobs, the queue and the backends in numbers.
#[utoipa::path(get, path = "/stats", tag = "stats",
    responses((status = 200, body = ops::Stats), E401))]
pub async fn stats(State(app): State<App>) -> ApiResult<ops::Stats> {
    Ok(Json(app.blocking(ops::stats).await?))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct InputStored {
    /// The data-dir name to pass in `inputs` of `POST /jobs`.
    pub name: String,
}

/// Upload an image (the raw JPEG, PNG or WebP bytes as the body) as a job input. It is
/// checked and normalised like a Telegram upload.
#[utoipa::path(post, path = "/inputs", tag = "jobs", params(super::IdempotencyKeyHeader),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The image file"),
    responses((status = 200, body = InputStored), E401,
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`unsupported_image`", body = ErrorBody)))]
pub async fn upload_input(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<InputStored> {
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(e.status(), "payload_too_large", e.body_text())
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    let name = app
        .blocking(move |app| ops::store_input(app, &body))
        .await?;
    Ok(Json(InputStored { name }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// An absolute path on the service's machine; a new or empty folder.
    #[schema(value_type = String)]
    dir: PathBuf,
}

/// Write a consistent copy of both stores into a new folder.
#[utoipa::path(post, path = "/backup", tag = "stats", request_body = BackupBody,
    responses((status = 200, body = ops::BackupReport), E400, E401))]
pub async fn backup(
    State(app): State<App>,
    ApiJson(b): ApiJson<BackupBody>,
) -> ApiResult<ops::BackupReport> {
    if !b.dir.is_absolute() {
        return Err(ApiError::bad_request(
            "the backup dir must be an absolute path",
        ));
    }
    Ok(Json(
        app.blocking(move |app| ops::backup(app, &b.dir)).await?,
    ))
}
