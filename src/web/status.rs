//! `/healthz` and the status JSON (the same view as the status page).

use axum::Json;
use axum::extract::State;

use super::error::ApiError;
use crate::app::App;
use crate::ops::StatusView;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn status_json(State(app): State<App>) -> Result<Json<StatusView>, ApiError> {
    Ok(Json(app.blocking(crate::ops::status).await?))
}
