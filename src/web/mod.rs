//! The HTTP server: health, the status page and its JSON, metrics and the admin API. Only this module knows axum.

mod api;
mod auth;
mod error;
mod metrics;
mod page;
mod status;
mod yookassa;

use std::future::Future;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::app::App;

pub use metrics::render as render_metrics;
pub use page::{bytes as human_bytes, render_live, render_page};
pub use yookassa::is_yookassa_address;

pub fn router(app: App) -> Router {
    let admin = Router::new()
        .route("/users/{id}", get(api::get_user))
        .route("/users/{id}/topup", post(api::topup))
        .route("/ledger/verify", get(api::verify_ledger))
        .route("/jobs", post(api::submit_job))
        .route("/jobs/{id}", get(api::get_job))
        .route("/jobs/{id}/cancel", post(api::cancel_job))
        .route("/backup", post(api::backup))
        .route(
            "/promocodes",
            get(api::list_promos).post(api::create_promos),
        )
        .route("/promocodes/{code}/disable", post(api::disable_promo))
        .route("/payments/stars/refund", post(api::refund_stars))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_admin,
        ));
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
        .nest("/api/v1", admin)
        .route("/webhooks/yookassa", post(yookassa::notification))
        .fallback(error::not_found)
        .with_state(app)
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "web server listening");
    // The peer address is kept for the YooKassa webhook's source check.
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
