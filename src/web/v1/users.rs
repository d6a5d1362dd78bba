//! Users, balances and the ledger.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery, IdemKey, parse_id};
use super::{ApiResult, E400, E401, E404User};
use crate::app::App;
use crate::domain::{Points, UserId};
use crate::ops::{self, PageRequest, TopupRequest, UserFilter};
use crate::store::LedgerCheck;
use crate::web::error::{ApiError, ErrorBody};

fn user_id(text: &str) -> Result<UserId, ApiError> {
    parse_id(text, "a Telegram user id")
}

/// Paging, the same on every list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Items per page: 1 to 200 (default 50); more is `bad_request`.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl Paging {
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::new(self.limit, self.cursor.clone())?)
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Part of the user id or of the username, case-insensitive.
    q: Option<String>,
    /// Only banned (`true`) or only not banned (`false`) users.
    banned: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// List users by id, with search.
#[utoipa::path(get, path = "/users", tag = "users", params(UserQuery),
    responses((status = 200, body = ops::UserPage), E400, E401))]
pub async fn list(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<ops::UserPage> {
    let page = PageRequest::new(q.limit, q.cursor)?;
    let filter = UserFilter {
        search: q.q,
        banned: q.banned,
    };
    Ok(Json(
        app.blocking(move |app| ops::list_users(app, &filter, &page))
            .await?,
    ))
}

/// A user with balance, newest ledger entries and jobs.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "Telegram user id")),
    responses((status = 200, body = ops::UserView), E400, E401, E404User))]
pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<ops::UserView> {
    let id = user_id(&id)?;
    let s = app
        .blocking(move |app| ops::user_summary(app, id, 20))
        .await?;
    Ok(Json(ops::UserView::from(s)))
}

/// Ban a user: the bot ignores them and they cannot start jobs.
#[utoipa::path(post, path = "/users/{id}/ban", tag = "users",
    params(("id" = i64, Path, description = "Telegram user id")),
    responses((status = 200, body = ops::UserRow), E400, E401, E404User))]
pub async fn ban(State(app): State<App>, Path(id): Path<String>) -> ApiResult<ops::UserRow> {
    set_banned(app, id, true).await
}

/// Lift a ban.
#[utoipa::path(post, path = "/users/{id}/unban", tag = "users",
    params(("id" = i64, Path, description = "Telegram user id")),
    responses((status = 200, body = ops::UserRow), E400, E401, E404User))]
pub async fn unban(State(app): State<App>, Path(id): Path<String>) -> ApiResult<ops::UserRow> {
    set_banned(app, id, false).await
}

async fn set_banned(app: App, id: String, banned: bool) -> ApiResult<ops::UserRow> {
    let id = user_id(&id)?;
    Ok(Json(
        app.blocking(move |app| {
            ops::set_banned(app, id, banned)?;
            ops::user_row(app, id)
        })
        .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlimitedBody {
    /// Unlimited users are never charged.
    unlimited: bool,
    /// Create the user if unknown (no welcome points).
    #[serde(default)]
    create: bool,
}

/// Make a user unlimited (never charged), or not.
#[utoipa::path(post, path = "/users/{id}/unlimited", tag = "users",
    params(("id" = i64, Path, description = "Telegram user id")),
    request_body = UnlimitedBody,
    responses((status = 200, body = ops::UserRow), E400, E401, E404User))]
pub async fn unlimited(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UnlimitedBody>,
) -> ApiResult<ops::UserRow> {
    let id = user_id(&id)?;
    Ok(Json(
        app.blocking(move |app| {
            if b.create {
                ops::ensure_user(app, id)?;
            }
            ops::set_unlimited(app, id, b.unlimited)?;
            ops::user_row(app, id)
        })
        .await?,
    ))
}

/// A user's balance and the points held by their unfinished jobs.
#[utoipa::path(get, path = "/users/{id}/balance", tag = "balances",
    params(("id" = i64, Path, description = "Telegram user id")),
    responses((status = 200, body = ops::BalanceView), E400, E401, E404User))]
pub async fn balance(
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<ops::BalanceView> {
    let id = user_id(&id)?;
    Ok(Json(app.blocking(move |app| ops::balance(app, id)).await?))
}

/// A user's ledger entries, newest first.
#[utoipa::path(get, path = "/users/{id}/ledger", tag = "balances",
    params(("id" = i64, Path, description = "Telegram user id"), Paging),
    responses((status = 200, body = ops::LedgerPage), E400, E401, E404User))]
pub async fn ledger(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<Paging>,
) -> ApiResult<ops::LedgerPage> {
    let id = user_id(&id)?;
    let page = p.request()?;
    Ok(Json(
        app.blocking(move |app| ops::ledger(app, id, &page)).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopupBody {
    /// Points to add: a whole number from 1.
    points: i64,
    /// Why; kept in the ledger.
    reason: Option<String>,
    /// Create the user if they have not used the bot yet.
    #[serde(default)]
    create: bool,
    /// Deprecated: the `Idempotency-Key` header does the same (and replays the answer).
    #[schema(deprecated)]
    idempotency_key: Option<String>,
}

/// Add points to a user's balance. With an `Idempotency-Key` the top-up is applied once,
/// whoever repeats it (the API or `qwenedit admin topup --key`).
#[utoipa::path(post, path = "/users/{id}/topup", tag = "balances",
    params(("id" = i64, Path, description = "Telegram user id"), super::IdempotencyKeyHeader),
    request_body = TopupBody,
    responses((status = 200, body = ops::TopupOutcome), E400, E401, E404User,
        (status = 409, description = "`idempotency_conflict`, `idempotency_in_progress`", body = ErrorBody)))]
pub async fn topup(
    State(app): State<App>,
    Path(id): Path<String>,
    IdemKey(key): IdemKey,
    ApiJson(b): ApiJson<TopupBody>,
) -> ApiResult<ops::TopupOutcome> {
    let user = user_id(&id)?;
    let points = Points::positive(b.points).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let key = match (key, b.idempotency_key) {
        (Some(h), Some(f)) if h != f => {
            return Err(ApiError::bad_request(
                "the Idempotency-Key header and the idempotency_key field differ",
            ));
        }
        (h, f) => h.or(f),
    };
    let req = TopupRequest {
        user,
        points,
        note: b.reason,
        create: b.create,
        idempotency_key: key,
    };
    Ok(Json(app.blocking(move |app| ops::topup(app, req)).await?))
}

/// Recompute every balance from the ledger and report differences.
#[utoipa::path(get, path = "/ledger/verify", tag = "balances",
    responses((status = 200, body = LedgerCheck), E401))]
pub async fn verify(State(app): State<App>) -> ApiResult<LedgerCheck> {
    Ok(Json(app.blocking(ops::verify_ledger).await?))
}
