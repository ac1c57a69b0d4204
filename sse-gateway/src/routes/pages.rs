//! The checkout page, the merchant dashboard, their stylesheet, and the
//! browser client module `payments-push.js` with its types, which both pages
//! and merchants' own pages import: plain HTML, CSS and JavaScript compiled
//! into the binary, so there is no build step and nothing to deploy beside
//! it. In development mode both pages say so ([`Pages`]).
//!
//! The module is public code that pages on other origins import, and a
//! module script from another origin loads only with CORS: it is served to
//! every origin (`Access-Control-Allow-Origin: *`; it carries no
//! credential, and the API it calls keeps its own origin rules). It is
//! revalidated on each load (`no-cache` with an `ETag`), so a gateway
//! upgrade reaches pages at once and an unchanged module costs a 304.

use std::sync::LazyLock;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use bytes::Bytes;
use service_kit::credentials::{self, DevMode};
use sha2::{Digest, Sha256};

use crate::state::AppState;

const CHECKOUT: &str = include_str!("../../assets/checkout.html");
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");
const STYLE: &str = include_str!("../../assets/style.css");
const CLIENT_MODULE: &str = include_str!("../../assets/sdk/payments-push.js");
const CLIENT_TYPES: &str = include_str!("../../assets/sdk/payments-push.d.ts");

/// Where the client module is served, a stable path merchants' pages import.
pub const CLIENT_MODULE_PATH: &str = "/sdk/payments-push.js";
/// Its TypeScript declarations.
pub const CLIENT_TYPES_PATH: &str = "/sdk/payments-push.d.ts";

/// The two pages as served, rendered once at startup: in development mode
/// each carries the marker that says so, right after its `<body>` tag
/// (`credentials::mark_page`; styled in `style.css`).
#[derive(Debug, Clone)]
pub struct Pages {
    checkout: Bytes,
    dashboard: Bytes,
}

impl Pages {
    pub fn new(dev: DevMode) -> Self {
        let page = |html: &'static str| {
            if dev.enabled {
                Bytes::from(credentials::mark_page(html))
            } else {
                Bytes::from_static(html.as_bytes())
            }
        };
        Self {
            checkout: page(CHECKOUT),
            dashboard: page(DASHBOARD),
        }
    }
}

fn no_cache(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn checkout(State(state): State<AppState>) -> Response {
    no_cache(Html(state.pages.checkout).into_response())
}

pub async fn dashboard(State(state): State<AppState>) -> Response {
    no_cache(Html(state.pages.dashboard).into_response())
}

pub async fn stylesheet() -> Response {
    no_cache(([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response())
}

/// The browser client module (`assets/sdk/payments-push.js`).
pub async fn client_module(headers: HeaderMap) -> Response {
    static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag_of(CLIENT_MODULE));
    public_asset(
        &headers,
        "text/javascript; charset=utf-8",
        CLIENT_MODULE,
        &ETAG,
    )
}

/// Its TypeScript declarations (`assets/sdk/payments-push.d.ts`).
pub async fn client_types(headers: HeaderMap) -> Response {
    static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag_of(CLIENT_TYPES));
    public_asset(
        &headers,
        "application/typescript; charset=utf-8",
        CLIENT_TYPES,
        &ETAG,
    )
}

/// A strong validator of `body`: a prefix of its SHA-256.
fn etag_of(body: &str) -> HeaderValue {
    let digest = Sha256::digest(body.as_bytes());
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// `body` for any origin, revalidated on each use: a 304 when the browser
/// holds this version already.
fn public_asset(
    request: &HeaderMap,
    content_type: &'static str,
    body: &'static str,
    etag: &HeaderValue,
) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/") == etag)
        });
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_pages_carry_the_marker_in_development_mode_only() {
        let marked = Pages::new(DevMode::ON);
        let plain = Pages::new(DevMode::OFF);
        for (page, html) in [(&marked.checkout, CHECKOUT), (&marked.dashboard, DASHBOARD)] {
            let page = std::str::from_utf8(page).expect("UTF-8");
            let (_, after_body) = page.split_once("<body").expect("a body tag");
            let (_, inside) = after_body.split_once('>').expect("the tag ends");
            assert!(
                inside
                    .trim_start()
                    .starts_with(credentials::DEV_MODE_MARKER),
                "the marker opens the body"
            );
            assert_eq!(
                page.len(),
                html.len() + credentials::DEV_MODE_MARKER.len() + 1
            );
        }
        assert_eq!(&plain.checkout[..], CHECKOUT.as_bytes());
        assert_eq!(&plain.dashboard[..], DASHBOARD.as_bytes());
    }
}
