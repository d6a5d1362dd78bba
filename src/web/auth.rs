//! The admin API's bearer token, compared in constant time.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::error::ApiError;
use crate::app::App;

pub async fn require_admin(
    State(app): State<App>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(given) = given else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs the admin token (Authorization: Bearer ...)",
        ));
    };
    if !constant_time_eq(given.as_bytes(), app.admin_token.expose_secret().as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong admin token",
        ));
    }
    Ok(next.run(request).await)
}

/// Operator pages (status page, its JSON, metrics) show users' data: open when the server
/// listens on loopback only, otherwise they need the admin token — as `Authorization: Bearer`
/// (scripts, Prometheus) or as the password of HTTP basic auth (a browser asks for it).
pub async fn require_admin_unless_loopback(
    State(app): State<App>,
    request: Request,
    next: Next,
) -> Response {
    if app.config.web.listen.ip().is_loopback() {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let given = if let Some(t) = header.strip_prefix("Bearer ") {
        Some(t.trim().to_string())
    } else if let Some(b) = header.strip_prefix("Basic ") {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| pair.split_once(':').map(|(_, pw)| pw.to_string()))
    } else {
        None
    };
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), app.admin_token.expose_secret().as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this page needs the admin token (user any, password the token)",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"qwenedit\""),
            );
            response
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares_whole_tokens() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
    }
}
