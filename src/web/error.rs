//! Errors as JSON `{"code": ..., "message": ...}`: stable codes for programs, short messages for
//! people. Internal details are logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ops::OpsError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(Body {
            code: self.code,
            message: &self.message,
        });
        (self.status, body).into_response()
    }
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        let (status, code) = match &e {
            OpsError::UnknownUser(_) => (StatusCode::NOT_FOUND, "unknown_user"),
            OpsError::UnknownJob(_) => (StatusCode::NOT_FOUND, "unknown_job"),
            OpsError::InsufficientPoints { .. } => {
                (StatusCode::PAYMENT_REQUIRED, "insufficient_points")
            }
            OpsError::Banned(_) => (StatusCode::FORBIDDEN, "banned"),
            OpsError::NotCancellable { .. } => (StatusCode::CONFLICT, "not_cancellable"),
            OpsError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            OpsError::KeyConflict => (StatusCode::CONFLICT, "idempotency_conflict"),
            OpsError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            OpsError::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
            OpsError::Store(_) | OpsError::Queue(_) => {
                tracing::error!(error = %e, "storage failure in the admin API");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the service log",
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
