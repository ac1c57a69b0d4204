//! The JSON API the checkout page calls: create an order, read one.

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    event::{NewOrder, OrderView},
    extract::{OrderCredential, OrderIdPath},
    payment_core::bounded,
    routes::{ORDER, ORDER_EVENTS, ORDER_STREAM_TOKENS, ORDERS},
    state::AppState,
};

/// Largest accepted request body. An order is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the checkout sends to create an order. The limits in its schema
/// are payment-core's, which checks them (400 otherwise): they are copied
/// here so that the description tells clients.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "A new order.")]
pub struct CreateOrderBody {
    /// In the currency's minor unit (cents for EUR).
    #[schema(minimum = 1, maximum = 100_000_000_000_i64)]
    #[serde(deserialize_with = "whole_number")]
    amount_minor: i64,
    /// An ISO 4217 code in upper case that a shop can take payment in.
    #[schema(schema_with = currency_schema, example = "EUR")]
    currency: String,
    /// Shown to the payer; no control characters but newline and tab.
    #[serde(default)]
    #[schema(max_length = 500, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    description: String,
}

/// The currency codes payment-core accepts, listed: a pattern of three
/// letters would describe codes the server refuses.
fn currency_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(payments_proto::currency::codes().iter().copied()))
        .build()
}

/// A JSON number that is an integer by JSON Schema's rules: `1200` and
/// `1200.0` alike (a client that computes cents in floating point sends the
/// latter), as long as it fits an i64.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(integer) = number.as_i64() {
        return Ok(integer);
    }
    match number.as_f64() {
        // i64::MAX as f64 rounds up to 2^63, which does not fit.
        Some(float)
            if float.fract() == 0.0 && float >= i64::MIN as f64 && float < i64::MAX as f64 =>
        {
            Ok(float as i64)
        }
        _ => Err(serde::de::Error::custom(format!(
            "amount_minor must be a whole number of minor units, not {number}"
        ))),
    }
}

/// A new order as its creator sees it: the view plus what it needs to watch
/// it. The only answer that carries the client secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "A new order, with what its payer needs to watch it.")]
pub struct CreatedOrder {
    #[serde(flatten)]
    order: OrderView,
    /// Opens this order, and only it, to whoever holds it. Send it as
    /// `Authorization: Bearer`, or in the body of a stream-token request;
    /// never in a URL.
    client_secret: String,
    /// The order's event stream (with the secret as a bearer token, or a
    /// stream token in `?stream_token=`).
    events_url: String,
    /// Where to POST the client secret for a stream token.
    stream_tokens_url: String,
}

/// An order as a holder of its secret reads it back.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "An order, with where to watch it.")]
pub struct OrderResponse {
    #[serde(flatten)]
    order: OrderView,
    /// The order's event stream.
    events_url: String,
}

fn order_path(template: &str, order: &OrderView) -> String {
    template.replace("{id}", &order.order_id.to_string())
}

impl From<OrderView> for CreatedOrder {
    fn from(order: OrderView) -> Self {
        Self {
            client_secret: order.client_secret.clone(),
            events_url: order_path(ORDER_EVENTS, &order),
            stream_tokens_url: order_path(ORDER_STREAM_TOKENS, &order),
            order,
        }
    }
}

impl From<OrderView> for OrderResponse {
    fn from(order: OrderView) -> Self {
        Self {
            events_url: order_path(ORDER_EVENTS, &order),
            order,
        }
    }
}

/// `POST /api/orders`, with an optional `Idempotency-Key` header.
#[utoipa::path(
    post,
    path = ORDERS,
    tag = "orders",
    summary = "Create an order",
    params((
        "Idempotency-Key" = Option<String>, Header, nullable = false,
        description = "Makes the call safe to retry: the same key and body answer the order the first call created.",
        max_length = 255, pattern = "^[!-~]*$",
    )),
    request_body(content = CreateOrderBody, content_type = "application/json"),
    responses(
        (
            status = CREATED,
            description = "The order, new or the one an earlier call with the same Idempotency-Key created.",
            body = CreatedOrder,
            links(
                ("read" = (
                    operation_id = "get_order",
                    description = "Read the order (with the client secret as a bearer token).",
                    parameters(("id" = "$response.body#/order_id")),
                )),
                ("watch" = (
                    operation_id = "order_events",
                    description = "Watch the order's events (what `events_url` points to).",
                    parameters(("id" = "$response.body#/order_id")),
                )),
            ),
        ),
        (status = BAD_REQUEST, description = "The body is not an order (malformed JSON, a missing, unknown or mistyped field), a field is out of range, or the Idempotency-Key is not printable ASCII.", body = ErrorBody),
        (status = FORBIDDEN, description = "The request carries an Origin that is neither the gateway's own nor in ALLOWED_ORIGINS.", body = ErrorBody),
        (status = CONFLICT, description = "The Idempotency-Key was used for a different order.", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "The body is over 16 KiB.", body = ErrorBody),
        (status = UNSUPPORTED_MEDIA_TYPE, description = "The Content-Type is not application/json.", body = ErrorBody),
        (status = INTERNAL_SERVER_ERROR, description = "payment-core answered what the gateway does not expect.", body = ErrorBody),
        (status = SERVICE_UNAVAILABLE, description = "payment-core is unreachable or too slow; retry.", body = ErrorBody),
    ),
)]
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
    tracing::info!(order_id = %order.order_id, "order created");
    Ok((StatusCode::CREATED, Json(CreatedOrder::from(order))))
}

/// `GET /api/orders/{id}`, with the client secret as a bearer token (or a
/// stream token).
#[utoipa::path(
    get,
    path = ORDER,
    tag = "orders",
    summary = "Read an order",
    params(
        ("id" = uuid::Uuid, Path, description = "The order's id."),
    ),
    security(("client_secret" = []), ("stream_token" = [])),
    responses(
        (status = OK, description = "The order.", body = OrderResponse),
        (status = BAD_REQUEST, description = "The id is not a UUID, the query is malformed, or it carries a `client_secret` (a secret never goes in a URL).", body = ErrorBody),
        (status = UNAUTHORIZED, description = "Neither a client secret nor a stream token was presented, or the stream token is expired or not this order's.", body = ErrorBody),
        (status = FORBIDDEN, description = "The request carries an Origin that is neither the gateway's own nor in ALLOWED_ORIGINS.", body = ErrorBody),
        (status = NOT_FOUND, description = "No such order, or the client secret is not its own (the two look the same).", body = ErrorBody),
        (status = INTERNAL_SERVER_ERROR, description = "payment-core answered what the gateway does not expect.", body = ErrorBody),
        (status = SERVICE_UNAVAILABLE, description = "payment-core is unreachable or too slow; retry.", body = ErrorBody),
    ),
)]
pub async fn get_order(
    State(state): State<AppState>,
    OrderIdPath(order_id): OrderIdPath,
    credential: OrderCredential,
) -> Result<Json<OrderResponse>, ApiError> {
    let access = credential.check(order_id, &state.signer)?;
    let order = bounded(state.core_timeout, state.core.get_order(order_id)).await?;
    if !access.opens(&order.client_secret_digest) {
        return Err(ApiError::NotFound);
    }
    Ok(Json(OrderResponse::from(order)))
}

/// Anything else under `/api`: a JSON 404 rather than an empty body.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(json: &str) -> Result<i64, String> {
        serde_json::from_str::<CreateOrderBody>(&format!(
            r#"{{"amount_minor":{json},"currency":"EUR"}}"#
        ))
        .map(|body| body.amount_minor)
        .map_err(|error| error.to_string())
    }

    #[test]
    fn an_amount_is_any_json_integer_and_nothing_else() {
        assert_eq!(amount("1250"), Ok(1250));
        assert_eq!(
            amount("1073741824.0"),
            Ok(1_073_741_824),
            "an integer by JSON Schema"
        );
        assert_eq!(amount("1e3"), Ok(1000));
        for bad in ["12.5", "9223372036854775808", "1e19", "\"12\"", "null"] {
            assert!(amount(bad).is_err(), "{bad}");
        }
    }
}
