//! Who may see what, and which event a client resumes after, read from the
//! request by axum extractors, so every handler checks them the same way:
//! - [`OrderIdPath`]: the `{id}` of the path, parsed (400 if not a UUID);
//! - [`ClientSecret`]: the `client_secret` a browser presents for one order;
//!   the order's own secret comes from the core, so the handler asks
//!   [`ClientSecret::opens`] once it has it;
//! - [`AdminAccess`]: the dashboard's token, from `?token=` or
//!   `Authorization: Bearer` (401 otherwise);
//! - [`ResumeFrom`]: `Last-Event-ID`, or `?last_event_id=` for clients that
//!   cannot set headers (400 if either is not a sequence number).
//!
//! Secrets and tokens are compared in constant time. A wrong secret is
//! answered exactly like an unknown order, so it tells a guesser nothing.

use axum::{
    extract::{FromRequestParts, Path, Query},
    http::{header, request::Parts},
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{error::ApiError, event::OrderId, state::AppState};

fn secrets_match(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|given| {
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    })
}

/// The query fields read here; anything else in the query is left alone.
#[derive(Debug, Default, Deserialize)]
struct AccessQuery {
    client_secret: Option<String>,
    token: Option<String>,
    last_event_id: Option<String>,
}

fn access_query(parts: &Parts) -> Result<AccessQuery, ApiError> {
    Query::<AccessQuery>::try_from_uri(&parts.uri)
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
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

/// The `client_secret` the browser presented, if any.
#[derive(Debug, Clone)]
pub struct ClientSecret(Option<String>);

impl ClientSecret {
    /// Whether the presented secret is the order's. An order without a
    /// secret is opened by nothing.
    pub fn opens(&self, order_secret: &str) -> bool {
        secrets_match(order_secret, self.0.as_deref())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(access_query(parts)?.client_secret))
    }
}

/// Proof that the request carries the dashboard's token.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let query = access_query(parts)?;
        if secrets_match(&state.admin_token, query.token.as_deref().or(bearer)) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
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

    #[test]
    fn a_secret_opens_only_its_own_order_and_nothing_opens_a_secretless_one() {
        let given = ClientSecret(Some("cs_right".into()));
        assert!(given.opens("cs_right"));
        assert!(!given.opens("cs_other"));
        assert!(!given.opens("cs_righ"));
        assert!(!ClientSecret(None).opens("cs_right"));
        assert!(!ClientSecret(Some(String::new())).opens(""));
    }
}
