//! The HTTP server: health, the status page and its JSON, metrics and the admin API. Only this module knows axum.

mod auth;
mod error;
mod metrics;
mod page;
mod status;
mod v1;
mod yookassa;

use std::future::Future;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::app::App;

pub use error::CODES as ERROR_CODES;
pub use metrics::render as render_metrics;
pub use page::{bytes as human_bytes, render_live, render_page};
pub use v1::remote_allowed;
pub use yookassa::is_yookassa_address;

pub fn router(app: App) -> Router {
    // Operator pages: open on loopback, the admin token otherwise.
    let operator = Router::new()
        .route("/", get(page::page))
        .route("/status/live", get(page::live))
        .route("/api/status", get(status::status_json))
        .route("/metrics", get(metrics::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_admin_unless_loopback,
        ));
    Router::new()
        .route("/healthz", get(status::healthz))
        .merge(operator)
        .nest("/api/v1", operator_api(app.clone()))
        .route("/webhooks/yookassa", post(yookassa::notification))
        .fallback(error::not_found)
        .with_state(app)
}

/// The operator API (`/api/v1`): its routes, spec and docs live in `v1`.
fn operator_api(app: App) -> Router<App> {
    v1::router(app)
}

/// Every operator API route as (method, path under `/api/v1`), for tests that compare the
/// router with the spec.
pub fn api_routes() -> Vec<(String, String)> {
    v1::routes()
        .iter()
        .map(|r| (r.method.as_str().to_lowercase(), r.path.to_string()))
        .collect()
}

/// The operator API's OpenAPI spec as JSON.
pub fn api_spec_json() -> String {
    v1::spec().to_pretty_json().unwrap_or_default()
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "web server listening");
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
