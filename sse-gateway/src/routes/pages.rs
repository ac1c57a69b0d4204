//! The checkout page, the merchant dashboard, their stylesheet and their
//! live-stream script (EventSource with a watchdog): plain
//! HTML, CSS and JavaScript compiled into the binary, so there is no build
//! step and nothing to deploy beside it.

use axum::{
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
};

const CHECKOUT: &str = include_str!("../../assets/checkout.html");
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");
const STYLE: &str = include_str!("../../assets/style.css");
const LIVE_STREAM: &str = include_str!("../../assets/live-stream.js");

fn no_cache(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn checkout() -> Response {
    no_cache(Html(CHECKOUT).into_response())
}

pub async fn dashboard() -> Response {
    no_cache(Html(DASHBOARD).into_response())
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
