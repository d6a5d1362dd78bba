//! `Idempotency-Key` on every POST, in one place so it behaves the same everywhere: the first
//! request with a key runs and its success response is stored; a repeat with the same method,
//! path and body gets that response again (with `Idempotent-Replayed: true`) and changes
//! nothing; a repeat with anything different is `idempotency_conflict`; a repeat while the
//! first still runs is `idempotency_in_progress`. An error answer frees the key.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::idempotency_key;
use crate::app::App;
use crate::ops::{self, ReplayBegin};
use crate::web::error::ApiError;

/// The largest body a keyed request may have (image uploads included).
pub const MAX_BODY: usize = 64 << 20;

pub async fn idempotency(State(app): State<App>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let key = match idempotency_key(&parts) {
        Ok(Some(k)) => k,
        Ok(None) => return next.run(Request::from_parts(parts, body)).await,
        Err(e) => return e.into_response(),
    };
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is too large",
        )
        .into_response();
    };
    let fingerprint = fingerprint(parts.method.as_str(), parts.uri.path(), &bytes);
    let begin = {
        let (key, fp) = (key.clone(), fingerprint.clone());
        app.blocking(move |app| ops::replay_begin(app, &key, &fp))
            .await
    };
    match begin {
        Err(e) => ApiError::from(e).into_response(),
        Ok(ReplayBegin::Conflict) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_conflict",
            "this Idempotency-Key was used for a different request",
        )
        .into_response(),
        Ok(ReplayBegin::InProgress) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still running",
        )
        .into_response(),
        Ok(ReplayBegin::Done { status, body }) => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert("idempotent-replayed", HeaderValue::from_static("true"));
            resp
        }
        Ok(ReplayBegin::Reserved) => {
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            if !resp.status().is_success() {
                let k = key.clone();
                if let Err(e) = app.blocking(move |app| ops::replay_abort(app, &k)).await {
                    tracing::error!(error = %e, "cannot free an idempotency key");
                }
                return resp;
            }
            let (parts, body) = resp.into_parts();
            let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
                return ApiError::internal().into_response();
            };
            let status = parts.status.as_u16();
            let stored = bytes.to_vec();
            if let Err(e) = app
                .blocking(move |app| ops::replay_finish(app, &key, status, &stored))
                .await
            {
                tracing::error!(error = %e, "cannot store an idempotent response");
            }
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

/// Method, path and a stable 128-bit FNV-1a hash of the body (JSON bodies compared by value,
/// so formatting does not matter).
fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_else(|_| body.to_vec());
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in &canonical {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    format!("{method} {path} {}:{h:032x}", canonical.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_compare_json_by_value() {
        let a = super::fingerprint("POST", "/x", br#"{"a":1,"b":2}"#);
        let b = super::fingerprint("POST", "/x", b"{ \"a\": 1,\n \"b\": 2 }");
        let c = super::fingerprint("POST", "/x", br#"{"a":1,"b":3}"#);
        let d = super::fingerprint("POST", "/y", br#"{"a":1,"b":2}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
