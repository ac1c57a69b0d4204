//! The JSON API the checkout page calls: create an order, read one.

use axum::{
    Json,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use payments_proto::payments::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::{error::ApiError, event::OrderView, sse::secrets_match, startup::AppState};

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

#[derive(Debug, Deserialize)]
pub struct SecretQuery {
    client_secret: Option<String>,
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
            "/api/orders/{}/events?client_secret={}",
            order.order_id, order.client_secret
        );
        Self {
            client_secret: order.client_secret.clone(),
            events_url,
            order,
        }
    }
}

/// Order ids are UUIDs; anything else is a client mistake, answered before
/// bothering the core. Returns the canonical spelling (lower case,
/// hyphenated), the one the core uses in events: the hub routes by it, so an
/// upper-case or braced id must not become a key no event ever matches.
pub fn canonical_order_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::try_parse(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| ApiError::BadRequest("order id must be a UUID".into()))
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
    let order = state
        .core
        .create_order(pb::CreateOrderRequest {
            amount_minor: body.amount_minor,
            currency: body.currency,
            description: body.description,
            idempotency_key,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(OrderResponse::from(order))))
}

/// `GET /api/orders/{id}?client_secret=`.
pub async fn get_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Query(query): Query<SecretQuery>,
) -> Result<Json<OrderResponse>, ApiError> {
    let order_id = canonical_order_id(&order_id)?;
    let order = state.core.get_order(&order_id).await?;
    if !secrets_match(&order.client_secret, query.client_secret.as_deref()) {
        return Err(ApiError::NotFound);
    }
    Ok(Json(OrderResponse::from(order)))
}

/// Anything else under `/api`: a JSON 404 rather than an empty body.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
