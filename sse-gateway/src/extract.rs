//! Who may see what, and which event a client resumes after, read from the
//! request by axum extractors, so every handler checks them the same way:
//! - [`OrderIdPath`]: the `{id}` of the path, parsed (400 if not a UUID);
//! - [`OrderCredential`]: what a browser presents for one order: its client
//!   secret as `Authorization: Bearer`, or a stream token
//!   ([`crate::access`]) as `?stream_token=` (or the same header). The
//!   order's secret digest comes from the core, so the handler asks
//!   [`OrderAccess::opens`] once it has it;
//! - [`AdminAccess`]: a dashboard session cookie, or
//!   `Authorization: Bearer <ADMIN_TOKEN>` (401 otherwise);
//! - [`ResumeFrom`]: `Last-Event-ID`, or `?last_event_id=` for clients that
//!   cannot set headers (400 if either is not a sequence number).
//!
//! No long-lived secret is read from a URL: a query's `client_secret` or
//! `token` is refused (400) with what to send instead, before anything else
//! is looked at, so a page that still puts one there fails at once rather
//! than leaking it into logs for weeks. Secrets and tokens are compared in
//! constant time. A wrong secret is answered exactly like an unknown order,
//! so it tells a guesser nothing.

use std::time::SystemTime;

use axum::{
    extract::{FromRequestParts, Path, Query},
    http::{HeaderMap, header, request::Parts},
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{
    access::{Signer, TokenError},
    error::ApiError,
    event::{OrderId, SecretDigest},
    state::AppState,
};

/// The dashboard session cookie's name. `__Host-` would pin it to a secure
/// origin, which a laptop's plain HTTP is not.
pub const SESSION_COOKIE: &str = "payments_push_dashboard";

const SECRET_IN_URL: &str = "client_secret must not be in a URL (logs, history and Referer keep it): send it as `Authorization: Bearer <client_secret>`, or POST it to /api/orders/{id}/stream-tokens and open the stream with `?stream_token=`";
const TOKEN_IN_URL: &str = "the admin token must not be in a URL: sign in with POST /api/dashboard/session, or send `Authorization: Bearer <ADMIN_TOKEN>`";
const ORDER_CREDENTIAL_MISSING: &str = "this order needs its client secret as `Authorization: Bearer <client_secret>`, or a stream token as `?stream_token=` (POST /api/orders/{id}/stream-tokens)";
const ADMIN_CREDENTIAL_MISSING: &str = "sign in to the dashboard (POST /api/dashboard/session), or send `Authorization: Bearer <ADMIN_TOKEN>`";
const TOKEN_EXPIRED: &str =
    "the stream token has expired: get a new one from POST /api/orders/{id}/stream-tokens";
const TOKEN_INVALID: &str = "the stream token is not valid for this order: get one from POST /api/orders/{id}/stream-tokens";

fn secrets_match(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The query fields read here; anything else in the query is left alone.
#[derive(Debug, Default, Deserialize)]
struct AccessQuery {
    client_secret: Option<String>,
    token: Option<String>,
    stream_token: Option<String>,
    last_event_id: Option<String>,
}

fn access_query(parts: &Parts) -> Result<AccessQuery, ApiError> {
    Query::<AccessQuery>::try_from_uri(&parts.uri)
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

/// The credential of `Authorization: Bearer <credential>` (the scheme is
/// case-insensitive, RFC 9110 section 11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let (scheme, credential) = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("Bearer") && !credential.is_empty()).then_some(credential)
}

/// The value of cookie `name` among the request's cookies.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The order named by the path's `{id}`.
#[derive(Debug, Clone, Copy)]
pub struct OrderIdPath(pub OrderId);

impl<S: Send + Sync> FromRequestParts<S> for OrderIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        OrderId::parse(&raw)
            .map(Self)
            .map_err(|error| ApiError::BadRequest(error.to_string()))
    }
}

/// What the browser presented for an order.
#[derive(Debug, Clone)]
pub enum OrderCredential {
    Secret(String),
    StreamToken(String),
}

impl<S: Send + Sync> FromRequestParts<S> for OrderCredential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = access_query(parts)?;
        if query.client_secret.is_some() {
            return Err(ApiError::BadRequest(SECRET_IN_URL.into()));
        }
        if let Some(token) = query.stream_token {
            return Ok(Self::StreamToken(token));
        }
        match bearer(&parts.headers) {
            // Stream tokens start with their version; secrets with `cs_`.
            Some(token) if token.starts_with("v1.") => Ok(Self::StreamToken(token.to_owned())),
            Some(secret) => Ok(Self::Secret(secret.to_owned())),
            None => Err(ApiError::Unauthorized(ORDER_CREDENTIAL_MISSING)),
        }
    }
}

impl OrderCredential {
    /// Checks what can be checked before the order is read: a stream token
    /// opens `order` or nothing, whether the order exists or not.
    pub fn check(self, order: OrderId, signer: &Signer) -> Result<OrderAccess, ApiError> {
        match self {
            Self::Secret(secret) => Ok(OrderAccess::IfSecretMatches(secret)),
            Self::StreamToken(token) => {
                match signer.check_stream_token(order, &token, SystemTime::now()) {
                    Ok(()) => Ok(OrderAccess::Granted),
                    Err(TokenError::Expired) => Err(ApiError::Unauthorized(TOKEN_EXPIRED)),
                    Err(TokenError::Malformed | TokenError::Invalid) => {
                        Err(ApiError::Unauthorized(TOKEN_INVALID))
                    }
                }
            }
        }
    }
}

/// An order credential checked as far as it can be without the order.
#[derive(Debug, Clone)]
pub enum OrderAccess {
    /// A valid stream token for this order.
    Granted,
    /// A client secret, which opens the order if its digest is the order's.
    IfSecretMatches(String),
}

impl OrderAccess {
    /// Whether this opens the order whose secret digest is `digest`.
    pub fn opens(&self, digest: &SecretDigest) -> bool {
        match self {
            Self::Granted => true,
            Self::IfSecretMatches(secret) => digest.opened_by(secret),
        }
    }
}

/// Proof that the request carries a dashboard session or the admin token.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if access_query(parts)?.token.is_some() {
            return Err(ApiError::BadRequest(TOKEN_IN_URL.into()));
        }
        if let Some(token) = bearer(&parts.headers) {
            return match secrets_match(&state.admin_token, token) {
                true => Ok(Self),
                false => Err(ApiError::Unauthorized(ADMIN_CREDENTIAL_MISSING)),
            };
        }
        match cookie(&parts.headers, SESSION_COOKIE)
            .map(|session| state.signer.check_session(session, SystemTime::now()))
        {
            Some(Ok(())) => Ok(Self),
            _ => Err(ApiError::Unauthorized(ADMIN_CREDENTIAL_MISSING)),
        }
    }
}

/// The admin token a sign-in presents, checked against the configured one.
pub fn is_admin_token(state: &AppState, presented: &str) -> bool {
    secrets_match(&state.admin_token, presented)
}

/// The sequence of the last event the client has, `None` for a fresh start.
#[derive(Debug, Clone, Copy)]
pub struct ResumeFrom(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for ResumeFrom {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let invalid = || ApiError::BadRequest("Last-Event-ID must be a sequence number".into());
        let parse = |raw: Option<&str>| match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| invalid()),
        };
        // Both are checked, so a malformed one is refused wherever it is;
        // when both are there, the header wins.
        let from_header = match parts.headers.get("last-event-id") {
            Some(value) => parse(Some(value.to_str().map_err(|_| invalid())?))?,
            None => None,
        };
        let from_query = parse(access_query(parts)?.last_event_id.as_deref())?;
        Ok(Self(from_header.or(from_query)))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    async fn resume(uri: &str, header: Option<&str>) -> Result<Option<u64>, ApiError> {
        let mut request = Request::get(uri);
        if let Some(value) = header {
            request = request.header("last-event-id", value);
        }
        let (mut parts, ()) = request.body(()).expect("request").into_parts();
        ResumeFrom::from_request_parts(&mut parts, &())
            .await
            .map(|ResumeFrom(after)| after)
    }

    #[tokio::test]
    async fn the_resume_point_comes_from_the_header_first_then_the_query() {
        assert_eq!(resume("/s", None).await.ok(), Some(None));
        assert_eq!(resume("/s", Some(" 12 ")).await.ok(), Some(Some(12)));
        assert_eq!(resume("/s?last_event_id=7", None).await.ok(), Some(Some(7)));
        assert_eq!(
            resume("/s?last_event_id=7", Some("9")).await.ok(),
            Some(Some(9)),
            "the header wins"
        );
        assert_eq!(resume("/s?last_event_id=", None).await.ok(), Some(None));
        assert!(resume("/s", Some("yesterday")).await.is_err());
        assert!(resume("/s?last_event_id=-1", None).await.is_err());
        assert!(
            resume("/s?last_event_id=-1", Some("9")).await.is_err(),
            "a malformed query is refused beside a good header"
        );
        assert!(
            resume("/s?last_event_id=9", Some("x")).await.is_err(),
            "and a malformed header beside a good query"
        );
        assert_eq!(
            resume("/s?last_event_id=7", Some("")).await.ok(),
            Some(Some(7)),
            "an empty header is no resume point"
        );
        assert_eq!(
            resume(&format!("/s?last_event_id={}", u64::MAX), None)
                .await
                .ok(),
            Some(Some(u64::MAX)),
            "the contract's sequences are uint64"
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        headers
    }

    #[test]
    fn bearer_credentials_and_cookies_are_read_by_their_exact_names() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer cs_1")])),
            Some("cs_1")
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer  cs_1 ")])),
            Some("cs_1")
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic cs_1")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
        let cookies = headers(&[
            ("cookie", "a=1; payments_push_dashboard=v1.2.x"),
            ("cookie", "b=2"),
        ]);
        assert_eq!(cookie(&cookies, SESSION_COOKIE), Some("v1.2.x"));
        assert_eq!(cookie(&cookies, "b"), Some("2"));
        assert_eq!(cookie(&cookies, "payments_push"), None);
    }

    async fn credential(
        uri: &str,
        authorization: Option<&str>,
    ) -> Result<OrderCredential, ApiError> {
        let mut request = Request::get(uri);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let (mut parts, ()) = request.body(()).expect("request").into_parts();
        OrderCredential::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn a_client_secret_in_a_url_is_refused_even_beside_a_good_header() {
        let refused = credential("/s?client_secret=cs_1", Some("Bearer cs_1")).await;
        assert!(
            matches!(refused, Err(ApiError::BadRequest(ref m)) if m.contains("Authorization: Bearer"))
        );
        assert!(matches!(
            credential("/s", None).await,
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            credential("/s", Some("Bearer cs_1")).await,
            Ok(OrderCredential::Secret(ref s)) if s == "cs_1"
        ));
        assert!(matches!(
            credential("/s?stream_token=v1.9.x", None).await,
            Ok(OrderCredential::StreamToken(ref t)) if t == "v1.9.x"
        ));
        assert!(matches!(
            credential("/s", Some("Bearer v1.9.x")).await,
            Ok(OrderCredential::StreamToken(_))
        ));
    }
}
