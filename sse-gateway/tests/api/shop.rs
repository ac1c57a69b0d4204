//! Fixtures for the client module's browser tests ([`crate::client_module`]):
//! - [`ShopSite`]: a merchant's site on an origin of its own, serving the
//!   README's example checkout (`docs/examples/shop.html`) with its
//!   `/checkout` endpoint (here the order is created through the gateway's
//!   API; a real shop calls CreateOrder), and a harness page that records
//!   what `watchPayment` hands over;
//! - [`EdgeProxy`]: an HTTP/1.1 proxy in front of the gateway that passes
//!   everything, or buffers event streams whole, or refuses them, as
//!   corporate proxies and some mobile networks do.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, Uri, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use fantoccini::Client;
use futures::StreamExt;
use hyper_util::{
    client::legacy::{Client as HttpClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The README's example page; its gateway is `https://push.example`.
const SHOP_PAGE: &str = include_str!("../../../docs/examples/shop.html");
const EXAMPLE_GATEWAY: &str = "https://push.example";

/// A page that imports the module from the gateway and records, per order,
/// every event, settlement, status and error `watchPayment` reports.
const HARNESS: &str = r#"<!doctype html>
<meta charset="utf-8"><title>harness</title>
<script type="module">
import * as push from "GATEWAY/sdk/payments-push.js";
window.watches = {};
window.track = (orderId, clientSecret, extra) => {
  const started = performance.now();
  const record = { events: [], settled: [], statuses: [], errors: [] };
  window.watches[orderId] = record;
  push.watchPayment({
    gateway: "GATEWAY", orderId, clientSecret, ...extra,
    onEvent: (e) => record.events.push({ status: e.status, sequence: e.sequence, transport: e.transport }),
    onSettled: (r) => record.settled.push(r.status),
    onStatus: (s) => record.statuses.push({ state: s.state, transport: s.transport, at: performance.now() - started }),
    onError: (e) => record.errors.push(e.code),
  });
  return true;
};
window.harnessReady = true;
</script>"#;

/// A merchant's site on `origin`, using a gateway.
pub struct ShopSite {
    pub origin: String,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct SiteState {
    /// Where the browser reaches the gateway (maybe through a proxy).
    gateway_for_browser: String,
    /// Where the shop's server creates orders.
    gateway_api: SocketAddr,
    http: reqwest::Client,
}

impl ShopSite {
    /// Binds a free loopback port first, so that the gateway can be told
    /// the origin (`ALLOWED_ORIGINS`) before the site knows the gateway.
    /// The origin is `http://localhost:…`, another site than the gateway's
    /// `127.0.0.1`: cookies would be third-party, and CORS applies.
    pub async fn bind() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, format!("http://localhost:{port}"))
    }

    /// Serves on `listener` (from [`Self::bind`]).
    pub fn serve(
        (listener, origin): (tokio::net::TcpListener, String),
        gateway_for_browser: &str,
        gateway_api: SocketAddr,
    ) -> Self {
        let state = SiteState {
            gateway_for_browser: gateway_for_browser.trim_end_matches('/').to_owned(),
            gateway_api,
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/", get(shop_page))
            .route("/harness", get(harness_page))
            .route("/checkout", post(checkout))
            .with_state(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            origin,
            _server: server,
        }
    }
}

async fn shop_page(State(state): State<SiteState>) -> Html<String> {
    assert!(
        SHOP_PAGE.contains(EXAMPLE_GATEWAY),
        "the example names its gateway"
    );
    Html(SHOP_PAGE.replace(EXAMPLE_GATEWAY, &state.gateway_for_browser))
}

async fn harness_page(State(state): State<SiteState>) -> Html<String> {
    Html(HARNESS.replace("GATEWAY", &state.gateway_for_browser))
}

/// What a shop's server does: create the order, and give the page the id,
/// the client secret and the payment URL.
async fn checkout(State(state): State<SiteState>) -> Response {
    let created = crate::helpers::create_order(&state.http, state.gateway_api, 1200, "Beans").await;
    Json(json!({
        "order_id": created.order_id,
        "client_secret": created.client_secret,
        "payment_url": created.payment_url,
    }))
    .into_response()
}

/// Loads the harness and starts watching `order_id` with `options` (a JS
/// object literal, e.g. `{ heartbeatSecs: 1 }`).
pub async fn track(client: &Client, site: &ShopSite, order_id: &str, secret: &str, options: &str) {
    if !client
        .execute("return window.harnessReady === true;", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap_or(false)
    {
        client
            .goto(&format!("{}/harness", site.origin))
            .await
            .unwrap();
        crate::browser::wait_for_script(client, "window.harnessReady === true").await;
    }
    client
        .execute(
            &format!("return window.track(arguments[0], arguments[1], {options});"),
            vec![json!(order_id), json!(secret)],
        )
        .await
        .unwrap();
}

/// What the harness recorded for `order_id`.
pub async fn record_of(client: &Client, order_id: &str) -> Value {
    client
        .execute(
            "return window.watches[arguments[0]];",
            vec![json!(order_id)],
        )
        .await
        .unwrap()
}

/// What [`EdgeProxy`] does with event streams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StreamPolicy {
    /// Passes them as they come.
    Pass,
    /// Holds a `text/event-stream` body until the gateway ends it.
    Buffer,
    /// Answers 403 to any request for one (by path or `Accept`).
    Refuse,
}

/// An HTTP/1.1 proxy in front of one gateway.
pub struct EdgeProxy {
    pub addr: SocketAddr,
    /// Every request's method and path, in order; a stream's with its
    /// `Last-Event-ID`, if it had one (`GET /…/events after=N`).
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Cancelled to cut every stream open now (a new one gets the next).
    cut: Arc<Mutex<CancellationToken>>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: SocketAddr,
    policy: StreamPolicy,
    client: HttpClient<HttpConnector, Body>,
    requests: Arc<Mutex<Vec<String>>>,
    cut: Arc<Mutex<CancellationToken>>,
}

impl EdgeProxy {
    pub async fn start(upstream: SocketAddr, policy: StreamPolicy) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let state = ProxyState {
            upstream,
            policy,
            client: HttpClient::builder(TokioExecutor::new()).build_http(),
            requests: requests.clone(),
            cut: cut.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            requests,
            cut,
            _server: server,
        }
    }

    /// Cuts every event stream open now, as a dropped connection would.
    pub fn cut_streams(&self) {
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// How many event streams were asked for so far (preflights aside).
    pub fn count_streams(&self) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.starts_with("GET ") && line.contains("/events"))
            .count()
    }
}

async fn forward(State(state): State<ProxyState>, mut request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let resume = request
        .headers()
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(|id| format!(" after={id}"))
        .unwrap_or_default();
    state.requests.lock().unwrap().push(format!(
        "{} {}{resume}",
        request.method(),
        request.uri().path()
    ));
    let wants_stream = request.uri().path().ends_with("/events")
        || request
            .headers()
            .get(header::ACCEPT)
            .is_some_and(|accept| accept.as_bytes().starts_with(b"text/event-stream"));
    if state.policy == StreamPolicy::Refuse && wants_stream && request.method() != "OPTIONS" {
        // What a filtering proxy sends, CORS headers included so that the
        // page can see the refusal (a proxy that strips them looks like a
        // network error, which the module treats the same way).
        return (
            StatusCode::FORBIDDEN,
            [(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            )],
            "streaming is not allowed here",
        )
            .into_response();
    }
    *request.uri_mut() = Uri::try_from(format!("http://{}{path}", state.upstream)).unwrap();
    let Ok(response) = state.client.request(request).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let (parts, body) = response.into_parts();
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    if state.policy == StreamPolicy::Buffer && is_stream {
        // Nothing reaches the browser until the gateway ends the stream.
        let Ok(whole) = axum::body::to_bytes(Body::new(body), usize::MAX).await else {
            return StatusCode::BAD_GATEWAY.into_response();
        };
        return Response::from_parts(parts, Body::from(whole));
    }
    if !is_stream {
        return Response::from_parts(parts, Body::new(body));
    }
    // A stream ends early when the test cuts streams.
    let cut = state.cut.lock().unwrap().clone();
    let frames = Body::new(body)
        .into_data_stream()
        .take_until(cut.cancelled_owned());
    Response::from_parts(parts, Body::from_stream(frames))
}
