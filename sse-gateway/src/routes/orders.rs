//! The JSON API the checkout page calls: create an order, read one.

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};

use crate::{
    error::ApiError,
    event::{NewOrder, OrderView},
    extract::{ClientSecret, OrderIdPath},
    payment_core::bounded,
    routes::ORDER_EVENTS,
    state::AppState,
};

/// Largest accepted request body. An order is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderBody {
    amount_minor: i64,
    currency: String,
    #[serde(default)]
    description: String,
}

/// An order as the checkout sees it: the view plus what it needs to watch it.
#[derive(Debug, Serialize)]
pub struct OrderResponse {
    #[serde(flatten)]
    order: OrderView,
    client_secret: String,
    events_url: String,
}

impl From<OrderView> for OrderResponse {
    fn from(order: OrderView) -> Self {
        let events_url = format!(
            "{}?client_secret={}",
            ORDER_EVENTS.replace("{id}", &order.order_id.to_string()),
            order.client_secret
        );
        Self {
            client_secret: order.client_secret.clone(),
            events_url,
            order,
        }
    }
}

/// `POST /api/orders`, with an optional `Idempotency-Key` header.
pub async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateOrderBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let idempotency_key = match headers.get("idempotency-key") {
        Some(value) => value
            .to_str()
            .map_err(|_| ApiError::BadRequest("Idempotency-Key must be printable ASCII".into()))?
            .to_owned(),
        None => String::new(),
    };
    let new_order = NewOrder {
        amount_minor: body.amount_minor,
        currency: body.currency,
        description: body.description,
        idempotency_key,
    };
    let order = bounded(state.core_timeout, state.core.create_order(new_order)).await?;
    Ok((StatusCode::CREATED, Json(OrderResponse::from(order))))
}

/// `GET /api/orders/{id}?client_secret=`.
pub async fn get_order(
    State(state): State<AppState>,
    OrderIdPath(order_id): OrderIdPath,
    secret: ClientSecret,
) -> Result<Json<OrderResponse>, ApiError> {
    let order = bounded(state.core_timeout, state.core.get_order(order_id)).await?;
    if !secret.opens(&order.client_secret) {
        return Err(ApiError::NotFound);
    }
    Ok(Json(OrderResponse::from(order)))
}

/// Anything else under `/api`: a JSON 404 rather than an empty body.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
