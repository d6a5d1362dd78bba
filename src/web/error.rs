//! Errors as JSON `{"code": ..., "message": ...}`: stable codes for programs, short messages for
//! people. Internal details are logged, never returned. [`CODES`] is the documented set; the
//! docs page and the OpenAPI spec list it, and a test keeps it complete.

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

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, one of the documented error codes.
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
}

/// Every error code the API answers with: (code, HTTP status, meaning).
pub const CODES: &[(&str, u16, &str)] = &[
    (
        "bad_request",
        400,
        "The request is malformed: a wrong type, a missing or unknown field, a negative amount, `limit` over its maximum, a bad cursor or `Idempotency-Key`.",
    ),
    (
        "unauthorized",
        401,
        "No `Authorization: Bearer` header, or the wrong admin token.",
    ),
    (
        "insufficient_points",
        402,
        "The user's balance does not cover the job.",
    ),
    ("banned", 403, "The user is banned."),
    (
        "remote_forbidden",
        403,
        "The API answers on loopback only; set `web.api_remote = true` to expose it.",
    ),
    ("not_found", 404, "No such endpoint."),
    ("unknown_user", 404, "No user with this id."),
    (
        "unknown_job",
        404,
        "No job with this id (or it left the retained history).",
    ),
    ("unknown_payment", 404, "No payment or order with this id."),
    ("unknown_promocode", 404, "No such promocode."),
    ("unknown_backend", 404, "No ComfyUI backend with this id."),
    (
        "method_not_allowed",
        405,
        "The endpoint exists, but not with this method.",
    ),
    ("not_cancellable", 409, "The job has started or finished."),
    (
        "not_retryable",
        409,
        "Only failed and dead-lettered jobs whose inputs still exist can be retried.",
    ),
    (
        "no_result",
        409,
        "The job has not succeeded, or its result file is gone.",
    ),
    (
        "idempotency_conflict",
        409,
        "The `Idempotency-Key` was used before for a different request.",
    ),
    (
        "idempotency_in_progress",
        409,
        "A request with this `Idempotency-Key` is still running; try again.",
    ),
    ("payload_too_large", 413, "The body is over the size limit."),
    (
        "unsupported_image",
        422,
        "The upload is not a usable JPEG, PNG or WebP image.",
    ),
    (
        "invalid_presets",
        422,
        "A preset file is invalid; the presets in use did not change.",
    ),
    ("rate_limited", 429, "Too many requests."),
    ("internal", 500, "A storage failure; see the service log."),
    (
        "disk_full",
        507,
        "The data dir is low on free space (`storage.min_free_mb`): new jobs are refused until space is freed.",
    ),
];

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            CODES
                .iter()
                .any(|(c, s, _)| *c == code && *s == status.as_u16())
        );
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the service log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            code: self.code.to_string(),
            message: self.message,
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
            OpsError::NotRetryable { .. } => (StatusCode::CONFLICT, "not_retryable"),
            OpsError::NoResult { .. } => (StatusCode::CONFLICT, "no_result"),
            OpsError::UnknownPayment(_) => (StatusCode::NOT_FOUND, "unknown_payment"),
            OpsError::UnknownPromo(_) => (StatusCode::NOT_FOUND, "unknown_promocode"),
            OpsError::UnknownBackend(_) => (StatusCode::NOT_FOUND, "unknown_backend"),
            OpsError::BadImage(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_image"),
            OpsError::BadPresets(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_presets"),
            OpsError::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
            OpsError::Store(_) | OpsError::Queue(_) => {
                tracing::error!(error = %e, "storage failure in the admin API");
                return ApiError::internal();
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take this method",
    )
}
