//! The checkout page, the merchant dashboard, their stylesheet and their
//! live-stream script (EventSource with a watchdog): plain
//! HTML, CSS and JavaScript compiled into the binary, so there is no build
//! step and nothing to deploy beside it. In development mode both pages say
//! so ([`Pages`]).

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
};
use bytes::Bytes;
use service_kit::credentials::{self, DevMode};

use crate::state::AppState;

const CHECKOUT: &str = include_str!("../../assets/checkout.html");
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");
const STYLE: &str = include_str!("../../assets/style.css");
const LIVE_STREAM: &str = include_str!("../../assets/live-stream.js");

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

/// EventSource with a watchdog, shared by both pages.
pub async fn live_stream_script() -> Response {
    no_cache(
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            LIVE_STREAM,
        )
            .into_response(),
    )
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
