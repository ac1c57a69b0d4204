//! Trading a long-lived secret, carried in a request body, for a
//! short-lived credential the gateway signs ([`crate::access`]):
//! - `POST /api/orders/{id}/stream-tokens`: the order's client secret for a
//!   stream token, which an `EventSource` URL may carry;
//! - `POST /api/dashboard/session`: the admin token, sent by the
//!   dashboard's sign-in form, for an HttpOnly session cookie;
//!   `DELETE` signs out.
//!
//! Neither the secret nor the admin token ever needs to be in a URL, in
//! page storage or in a script-readable cookie.

use std::time::SystemTime;

use axum::{
    Form, Json,
    extract::{
        State,
        rejection::{FormRejection, JsonRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    extract::{OrderIdPath, SESSION_COOKIE, is_admin_token},
    payment_core::{CoreError, bounded},
    routes::{DASHBOARD_SESSION, ORDER_EVENTS, ORDER_STREAM_TOKENS},
    state::AppState,
};

/// What a page sends for a stream token.
/// Other fields are ignored: a client may send back the whole order it was
/// answered.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(description = "The order's client secret, from its creation.")]
pub struct StreamTokenRequest {
    #[schema(min_length = 1, max_length = 200)]
    client_secret: String,
}

/// A stream token and where to use it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "A short-lived, read-only token for one order's stream.")]
pub struct StreamToken {
    /// Opens this order's stream (and `GET` of the order) until it expires.
    stream_token: String,
    /// Unix seconds; a stream opened before then runs to its end.
    expires_at: u64,
    /// The order's event stream with the token in its query: for
    /// `EventSource`, which cannot send headers.
    events_url: String,
}

/// `POST /api/orders/{id}/stream-tokens` with `{"client_secret": …}`.
#[utoipa::path(
    post,
    path = ORDER_STREAM_TOKENS,
    tag = "streams",
    summary = "Get a stream token for EventSource",
    description = "Trades the order's client secret, in the body, for a token of a few minutes (STREAM_TOKEN_TTL_SECS) that opens this order's stream only, read-only, and may travel in the stream's URL. Get a new one for each reconnect.",
    params(("id" = uuid::Uuid, Path, description = "The order's id.")),
    request_body(content = StreamTokenRequest, content_type = "application/json"),
    responses(
        (status = CREATED, description = "The token.", body = StreamToken),
        (status = BAD_REQUEST, description = "The id is not a UUID, or the body is not `{\"client_secret\": string}`.", body = ErrorBody),
        (status = FORBIDDEN, description = "The request carries an Origin that is neither the gateway's own nor in ALLOWED_ORIGINS.", body = ErrorBody),
        (status = UNAUTHORIZED, description = "The client secret does not open this order, or there is no such order (the two look the same).", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "The body is over 16 KiB.", body = ErrorBody),
        (status = UNSUPPORTED_MEDIA_TYPE, description = "The Content-Type is not application/json.", body = ErrorBody),
        (status = INTERNAL_SERVER_ERROR, description = "payment-core answered what the gateway does not expect.", body = ErrorBody),
        (status = SERVICE_UNAVAILABLE, description = "payment-core is unreachable or too slow; retry.", body = ErrorBody),
    ),
)]
pub async fn create_stream_token(
    State(state): State<AppState>,
    OrderIdPath(order_id): OrderIdPath,
    body: Result<Json<StreamTokenRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    // The gateway's memory of the order when it has one: the checkout asks
    // for a token right after creating the order, on this very gateway.
    // A wrong secret and an unknown order are one answer, which tells a
    // guesser nothing: the secret does not open it.
    const REFUSED: ApiError = ApiError::Unauthorized("the client secret does not open this order");
    let digest = match state.hub.recent_secret_digest(order_id) {
        Some(digest) => digest,
        None => match bounded(state.core_timeout, state.core.get_order(order_id)).await {
            Ok(order) => order.client_secret_digest,
            Err(CoreError::NotFound) => return Err(REFUSED),
            Err(error) => return Err(error.into()),
        },
    };
    if !digest.opened_by(&body.client_secret) {
        return Err(REFUSED);
    }
    let (stream_token, expires_at) =
        state
            .signer
            .stream_token(order_id, SystemTime::now(), state.stream_token_ttl);
    let events_url = format!(
        "{}?stream_token={stream_token}",
        ORDER_EVENTS.replace("{id}", &order_id.to_string())
    );
    Ok((
        StatusCode::CREATED,
        Json(StreamToken {
            stream_token,
            expires_at,
            events_url,
        }),
    ))
}

/// The dashboard's sign-in form.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(description = "The dashboard's sign-in form.")]
pub struct SignIn {
    /// The gateway's admin token (ADMIN_TOKEN).
    #[schema(min_length = 1, max_length = 1024)]
    token: String,
}

/// `POST /api/dashboard/session` with the form `token=…`.
#[utoipa::path(
    post,
    path = DASHBOARD_SESSION,
    tag = "streams",
    summary = "Sign in to the dashboard",
    description = "Checks the admin token from the dashboard's sign-in form and sets an HttpOnly, SameSite=Strict session cookie (Secure behind TLS) for DASHBOARD_SESSION_SECS, which opens the all-orders stream.",
    request_body(content = SignIn, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = NO_CONTENT, description = "Signed in: the answer sets the session cookie.", headers(("Set-Cookie" = String, description = "The session cookie."))),
        (status = BAD_REQUEST, description = "The body is not the form `token=…`.", body = ErrorBody),
        (status = UNAUTHORIZED, description = "The token is not the admin token.", body = ErrorBody),
        (status = FORBIDDEN, description = "The request carries an Origin that is neither the gateway's own nor in ALLOWED_ORIGINS.", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "The body is over 16 KiB.", body = ErrorBody),
        (status = UNSUPPORTED_MEDIA_TYPE, description = "The Content-Type is not application/x-www-form-urlencoded.", body = ErrorBody),
    ),
)]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignIn>, FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form.map_err(|rejection| match rejection {
        FormRejection::InvalidFormContentType(_) => ApiError::UnsupportedMediaType,
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        other => ApiError::BadRequest(other.body_text()),
    })?;
    if !is_admin_token(&state, &form.token) {
        tracing::warn!("dashboard sign-in refused: wrong admin token");
        return Err(ApiError::Unauthorized("that is not the admin token"));
    }
    let session = state.signer.session(SystemTime::now(), state.session_ttl);
    let cookie = session_cookie(&session, state.session_ttl.as_secs(), &headers);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `DELETE /api/dashboard/session`: signs out (the cookie is cleared).
#[utoipa::path(
    delete,
    path = DASHBOARD_SESSION,
    tag = "streams",
    summary = "Sign out of the dashboard",
    responses(
        (status = NO_CONTENT, description = "The session cookie is cleared.", headers(("Set-Cookie" = String, description = "An expired session cookie."))),
        (status = FORBIDDEN, description = "The request carries an Origin that is neither the gateway's own nor in ALLOWED_ORIGINS.", body = ErrorBody),
    ),
)]
pub async fn sign_out(headers: HeaderMap) -> Response {
    let cookie = session_cookie("", 0, &headers);
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// The session cookie: script cannot read it (HttpOnly), no other site's
/// page can make the browser send it (SameSite=Strict), and behind TLS it
/// never travels in clear (Secure, when the proxy says the request came
/// over HTTPS).
fn session_cookie(value: &str, max_age: u64, headers: &HeaderMap) -> HeaderValue {
    let over_tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if over_tls { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    // The session is `v1.<digits>.<hex>`: always a valid header value.
    HeaderValue::try_from(cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_behind_tls() {
        let plain = session_cookie("v1.9.ab", 60, &HeaderMap::new());
        assert_eq!(
            plain,
            "payments_push_dashboard=v1.9.ab; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        let mut tls = HeaderMap::new();
        tls.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            session_cookie("v1.9.ab", 60, &tls)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}
