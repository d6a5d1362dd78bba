//! Payments and promocodes.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery};
use super::users::Paging;
use super::{ApiResult, E400, E401};
use crate::app::App;
use crate::domain::UserId;
use crate::ops::{self, PageRequest, PaymentFilter, PromoView};
use crate::web::error::ErrorBody;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PaymentQuery {
    /// Telegram user id.
    user: Option<i64>,
    /// `stars` or `yookassa`.
    rail: Option<String>,
    /// `pending`, `succeeded`, `canceled` or `refunded`.
    status: Option<String>,
    /// Include orders (invoices sent, maybe never paid); default false.
    orders: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Payments, newest first.
#[utoipa::path(get, path = "/payments", tag = "payments", params(PaymentQuery),
    responses((status = 200, body = ops::PaymentPage), E400, E401))]
pub async fn list(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<PaymentQuery>,
) -> ApiResult<ops::PaymentPage> {
    let page = PageRequest::new(q.limit, q.cursor)?;
    let filter = PaymentFilter {
        user: q.user.map(UserId::new),
        rail: q.rail,
        status: q.status,
        orders: q.orders.unwrap_or(false),
    };
    Ok(Json(
        app.blocking(move |app| ops::list_payments(app, &filter, &page))
            .await?,
    ))
}

/// A payment or order by id (`stars:<charge id>`, `yookassa:<id>`, `order:<id>`).
#[utoipa::path(get, path = "/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "Payment or order id")),
    responses((status = 200, body = ops::PaymentView), E401,
        (status = 404, description = "`unknown_payment`", body = ErrorBody)))]
pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<ops::PaymentView> {
    Ok(Json(app.blocking(move |app| ops::payment(app, &id)).await?))
}

/// Promocodes by batch and code.
#[utoipa::path(get, path = "/promocodes", tag = "promocodes", params(Paging),
    responses((status = 200, body = ops::PromoPage), E400, E401))]
pub async fn list_promos(
    State(app): State<App>,
    ApiQuery(p): ApiQuery<Paging>,
) -> ApiResult<ops::PromoPage> {
    let page = p.request()?;
    Ok(Json(
        app.blocking(move |app| ops::promo_page(app, &page)).await?,
    ))
}

/// Create a batch of promocodes; answers the new codes.
#[utoipa::path(post, path = "/promocodes", tag = "promocodes", params(super::IdempotencyKeyHeader),
    request_body = ops::PromoBatch,
    responses((status = 200, body = Vec<PromoView>), E400, E401,
        (status = 409, description = "`idempotency_conflict`, `idempotency_in_progress`", body = ErrorBody)))]
pub async fn create_promos(
    State(app): State<App>,
    ApiJson(b): ApiJson<ops::PromoBatch>,
) -> ApiResult<Vec<PromoView>> {
    Ok(Json(
        app.blocking(move |app| ops::create_promos(app, b)).await?,
    ))
}

/// Disable a promocode (its past redemptions stay).
#[utoipa::path(post, path = "/promocodes/{code}/disable", tag = "promocodes",
    params(("code" = String, Path, description = "The code, any case")),
    responses((status = 200, body = PromoView), E401,
        (status = 404, description = "`unknown_promocode`", body = ErrorBody)))]
pub async fn disable_promo(
    State(app): State<App>,
    Path(code): Path<String>,
) -> ApiResult<PromoView> {
    Ok(Json(
        app.blocking(move |app| ops::disable_promo(app, &code))
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// The `telegram_payment_charge_id` (the payment id without `stars:`).
    charge_id: String,
}

/// Refund a Telegram Stars payment (Telegram's `refundStarPayment`) and take its points back,
/// once per charge id; what the balance does not cover is recorded as owed.
#[utoipa::path(post, path = "/payments/stars/refund", tag = "payments",
    params(super::IdempotencyKeyHeader),
    request_body = RefundBody,
    responses((status = 200, body = ops::RefundOutcome), E401,
        (status = 400, description = "`bad_request`: not a charge id, no credited Stars payment with it, no bot token, or Telegram refused the refund", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict`, `idempotency_in_progress`", body = ErrorBody)))]
pub async fn refund_stars(
    State(app): State<App>,
    ApiJson(b): ApiJson<RefundBody>,
) -> ApiResult<ops::RefundOutcome> {
    Ok(Json(ops::refund_stars(&app, &b.charge_id).await?))
}
