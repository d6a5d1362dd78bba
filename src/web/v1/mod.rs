//! The operator API under `/api/v1`: one table of routes ([`routes`]) builds the router and is
//! what the spec is checked against; the spec ([`ApiDoc`]) is generated from the handlers'
//! annotations and served at `/api/v1/openapi.json`, rendered for people at `/api/v1/docs`.
//!
//! Every endpoint but those two needs the admin token (`Authorization: Bearer ...`), and the
//! whole API answers loopback peers only unless `web.api_remote` is set. Handlers parse, call
//! one `ops::` function off the async runtime and render JSON; errors are `{code, message}`.

mod docs;
mod extract;
mod idem;
mod jobs;
mod money;
mod system;
mod users;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, OpenApi};

use super::auth;
use super::error::{ApiError, ErrorBody};
use crate::app::App;

pub use docs::render as render_docs;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// One endpoint: what the router serves and the spec must describe.
pub struct Route {
    pub method: Method,
    /// Relative to `/api/v1`, in OpenAPI's `{param}` syntax (axum's too).
    pub path: &'static str,
    /// Served without the admin token (the spec and the docs page).
    pub public: bool,
    handler: MethodRouter<App>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<App>) -> Route {
    Route {
        method,
        path,
        public: false,
        handler,
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use Method as M;
    let mut v = vec![
        route(M::GET, "/users", get(users::list)),
        route(M::GET, "/users/{id}", get(users::get)),
        route(M::POST, "/users/{id}/ban", post(users::ban)),
        route(M::POST, "/users/{id}/unban", post(users::unban)),
        route(M::POST, "/users/{id}/unlimited", post(users::unlimited)),
        route(M::GET, "/users/{id}/balance", get(users::balance)),
        route(M::GET, "/users/{id}/ledger", get(users::ledger)),
        route(M::POST, "/users/{id}/topup", post(users::topup)),
        route(M::GET, "/ledger/verify", get(users::verify)),
        route(M::GET, "/jobs", get(jobs::list)),
        route(M::POST, "/jobs", post(jobs::submit)),
        route(M::GET, "/jobs/{id}", get(jobs::get)),
        route(M::POST, "/jobs/{id}/cancel", post(jobs::cancel)),
        route(M::POST, "/jobs/{id}/retry", post(jobs::retry)),
        route(M::GET, "/jobs/{id}/result", get(jobs::result)),
        route(
            M::POST,
            "/inputs",
            post(system::upload_input).layer(DefaultBodyLimit::max(idem::MAX_BODY)),
        ),
        route(M::GET, "/payments", get(money::list)),
        route(M::GET, "/payments/{id}", get(money::get)),
        route(M::POST, "/payments/stars/refund", post(money::refund_stars)),
        route(M::GET, "/promocodes", get(money::list_promos)),
        route(M::POST, "/promocodes", post(money::create_promos)),
        route(
            M::POST,
            "/promocodes/{code}/disable",
            post(money::disable_promo),
        ),
        route(M::GET, "/presets", get(system::presets)),
        route(M::POST, "/presets/reload", post(system::reload_presets)),
        route(M::GET, "/backends", get(system::backends)),
        route(M::POST, "/backends/{id}/drain", post(system::drain)),
        route(M::POST, "/backends/{id}/undrain", post(system::undrain)),
        route(M::GET, "/stats", get(system::stats)),
        route(M::POST, "/backup", post(system::backup)),
        route(M::GET, "/openapi.json", get(openapi_json)),
        route(M::GET, "/docs", get(docs_page)),
    ];
    for r in &mut v {
        r.public = matches!(r.path, "/openapi.json" | "/docs");
    }
    v
}

/// The router of `/api/v1` (to be nested there).
pub fn router(app: App) -> Router<App> {
    let mut protected = Router::new();
    let mut public = Router::new();
    for r in routes() {
        if r.public {
            public = public.route(r.path, r.handler);
        } else {
            protected = protected.route(r.path, r.handler);
        }
    }
    let protected = protected
        .route_layer(from_fn_with_state(app.clone(), idem::idempotency))
        .route_layer(from_fn_with_state(app.clone(), auth::require_admin));
    protected
        .merge(public)
        .method_not_allowed_fallback(super::error::method_not_allowed)
        .layer(from_fn_with_state(app, loopback_only))
}

/// Refuses peers that are not on this machine unless `web.api_remote` is set.
async fn loopback_only(State(app): State<App>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if !remote_allowed(peer, app.config.web.api_remote) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "remote_forbidden",
            "the operator API answers on loopback only",
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether a peer may use the API. Without a known peer (not served from a socket) it may.
pub fn remote_allowed(peer: Option<std::net::IpAddr>, api_remote: bool) -> bool {
    api_remote || peer.is_none_or(|ip| ip.is_loopback() || ip.to_canonical().is_loopback())
}

/// The spec, as served.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The spec as JSON (public: it holds no data).
async fn openapi_json() -> Response {
    match spec().to_pretty_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => ApiError::internal().into_response(),
    }
}

/// The reference page, rendered here from the spec (no scripts, nothing fetched).
async fn docs_page() -> Html<String> {
    Html(render_docs(&spec()))
}

/// `Idempotency-Key`: makes a repeated POST harmless.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // describes a header for the spec
pub struct IdempotencyKeyHeader {
    /// 1 to 200 visible ASCII characters. The first request with a key runs; a repeat with the
    /// same method, path and body gets the first answer again (header `Idempotent-Replayed:
    /// true`) and changes nothing; a different request with the key is `idempotency_conflict`.
    /// A key is kept for `storage.retention` (7 days by default).
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// `bad_request`: a wrong type, a missing or unknown field, a negative amount, `limit` over
/// 200, or a bad cursor.
#[derive(IntoResponses)]
#[response(status = 400)]
#[allow(dead_code)]
pub struct E400(ErrorBody);

/// `unauthorized`: no or a wrong admin token.
#[derive(IntoResponses)]
#[response(status = 401)]
#[allow(dead_code)]
pub struct E401(ErrorBody);

/// `unknown_user`: no user with this id.
#[derive(IntoResponses)]
#[response(status = 404)]
#[allow(dead_code)]
pub struct E404User(ErrorBody);

/// `unknown_job`: no job with this id.
#[derive(IntoResponses)]
#[response(status = 404)]
#[allow(dead_code)]
pub struct E404Job(ErrorBody);

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // Operation ids from method and path (handler names repeat across modules), and a
        // description on every response (OpenAPI requires one).
        for (path, item) in openapi.paths.paths.iter_mut() {
            let slug: String = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.trim_matches(|c| c == '{' || c == '}')
                        .replace(['.', '-'], "_")
                })
                .collect::<Vec<_>>()
                .join("_");
            for (method, op) in [("get", &mut item.get), ("post", &mut item.post)] {
                let Some(op) = op else { continue };
                op.operation_id = Some(format!("{method}_{slug}"));
                let public = op.security.as_ref().is_some_and(|s| !s.is_empty());
                if method == "post" && !public {
                    idempotent(op);
                }
                for r in op.responses.responses.values_mut() {
                    if let utoipa::openapi::RefOr::T(r) = r
                        && r.description.is_empty()
                    {
                        r.description = "Success.".into();
                    }
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`web.admin_token`, or the token generated into `<data_dir>/admin.token`",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every POST takes an `Idempotency-Key` (the middleware is on all of them): the header and
/// its 409 answers are added to each, so no operation can miss them.
fn idempotent(op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let params = op.parameters.get_or_insert_with(Vec::new);
    let named = |p: &RefOr<utoipa::openapi::path::Parameter>| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key");
    if !params.iter().any(named) {
        params.extend(
            IdempotencyKeyHeader::into_params(|| None)
                .into_iter()
                .map(RefOr::T),
        );
    }
    let conflicts = "`idempotency_conflict`, `idempotency_in_progress`";
    match op.responses.responses.get_mut("409") {
        Some(RefOr::T(r)) if !r.description.contains("idempotency_conflict") => {
            r.description = format!("{}; {conflicts}", r.description);
        }
        Some(_) => {}
        None => {
            let r = ResponseBuilder::new()
                .description(conflicts)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            op.responses.responses.insert("409".into(), RefOr::T(r));
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "qwenedit operator API",
        description = "Users, balances, jobs, payments, promocodes, presets and backends of a \
            qwenedit service. Every endpoint but `/openapi.json` and `/docs` needs the admin \
            token as `Authorization: Bearer <token>`. Lists take `limit` (1 to 200, default \
            50) and `cursor` (the `next_cursor` of the previous page). Every POST takes an \
            `Idempotency-Key`. Errors are `{\"code\", \"message\"}` with a stable `code`.",
    ),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    security(("admin_token" = [])),
    paths(
        users::list, users::get, users::ban, users::unban, users::unlimited,
        users::balance, users::ledger, users::topup, users::verify,
        jobs::list, jobs::submit, jobs::get, jobs::cancel, jobs::retry, jobs::result,
        system::upload_input,
        money::list, money::get, money::refund_stars, money::list_promos, money::create_promos, money::disable_promo,
        system::presets, system::reload_presets, system::backends, system::drain,
        system::undrain, system::stats, system::backup,
        spec_json, docs_html,
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "users"), (name = "balances"), (name = "jobs"), (name = "payments"),
        (name = "promocodes"), (name = "presets"), (name = "backends"), (name = "stats"),
        (name = "docs"),
    )
)]
pub struct ApiDoc;

/// This specification (OpenAPI 3.1), without a token.
#[utoipa::path(get, path = "/openapi.json", tag = "docs", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
#[allow(dead_code)]
fn spec_json() {}

/// This reference as an HTML page, without a token; works offline.
#[utoipa::path(get, path = "/docs", tag = "docs", security(()),
    responses((status = 200, description = "The reference page", content_type = "text/html")))]
#[allow(dead_code)]
fn docs_html() {}
