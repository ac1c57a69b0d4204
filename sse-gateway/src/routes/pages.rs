//! The checkout page, the merchant dashboard and their stylesheet: plain
//! HTML, CSS and JavaScript compiled into the binary, so there is no build
//! step and nothing to deploy beside it.

use axum::{
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
};

const CHECKOUT: &str = include_str!("../../assets/checkout.html");
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");
const STYLE: &str = include_str!("../../assets/style.css");

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
