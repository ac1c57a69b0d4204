//! A gateway frozen mid-stream (SIGSTOP: alive, connections open, silent)
//! behind the project's nginx configuration. nginx gives up on a stream
//! silent for two heartbeats, so even a bare EventSource recovers; and
//! behind a proxy that waits longer, the pages' own watchdog notices the
//! missing heartbeats, reopens the stream, lands on the other gateway and
//! resumes after the last event it had.

use std::time::Duration;

use fantoccini::Client;
use payments_proto::payments::v1::PaymentOutcome;
use testkit::{Process, eventually_within as eventually, nginx::Nginx};

use crate::{
    browser::{
        dashboard_status, decide_in_popup, requested_urls, sign_in_to_dashboard, start_browser,
        start_core_and_provider, start_payment, status_of, text_of, wait_for_final_status,
    },
    helpers::{ADMIN_TOKEN, create_order},
};

/// The heartbeat of these gateways: the pages reopen a stream after 2.5 of
/// them without a byte, and nginx gives up on one after 2.
const HEARTBEAT_SECS: u64 = 1;
/// How long a page may take to show an event its frozen gateway holds:
/// the watchdog (2.5 heartbeats), perhaps a second round if nginx's
/// round-robin first offers the frozen gateway again, and the reconnect.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);

/// payment-core, mock-provider, two gateway binaries and nginx in front.
struct ShopBehindNginx {
    nginx: Nginx,
    gateways: [Process; 2],
    core: Process,
    _provider: Process,
    _dir: tempfile::TempDir,
}

/// `nginx_read_timeout`: what replaces the event routes' two heartbeats
/// (`30s` in docker/nginx.conf, for the default 15 s heartbeat).
fn open_shop_behind_nginx(nginx_read_timeout: &str) -> ShopBehindNginx {
    let dir = tempfile::tempdir().unwrap();
    let (core, provider) = start_core_and_provider(dir.path());
    let core_url = format!("http://{}", core.addr);
    let gateway = |instance: &str| {
        Process::start(
            "sse-gateway",
            &[
                ("GATEWAY_INSTANCE", instance.to_owned()),
                ("PAYMENT_CORE_URL", core_url.clone()),
                ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
                ("HEARTBEAT_SECS", HEARTBEAT_SECS.to_string()),
            ],
        )
    };
    let gateways = [gateway("gateway-1"), gateway("gateway-2")];
    let read_timeout = format!("proxy_read_timeout {nginx_read_timeout};");
    let send_timeout = format!("proxy_send_timeout {nginx_read_timeout};");
    let nginx = Nginx::start(
        [gateways[0].addr, gateways[1].addr],
        &[
            ("proxy_read_timeout 30s;", read_timeout.as_str()),
            ("proxy_send_timeout 30s;", send_timeout.as_str()),
        ],
    );
    ShopBehindNginx {
        nginx,
        gateways,
        core,
        _provider: provider,
        _dir: dir,
    }
}

/// The event streams `gateway` holds open, from its `/metrics`.
async fn open_streams(gateway: &Process) -> Option<u64> {
    let metrics = reqwest::get(format!("http://{}/metrics", gateway.addr))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    testkit::metrics::sum(&metrics, "sse_gateway_open_streams", &[]).map(|open| open as u64)
}

/// The gateway the page's one stream is on, once it is open.
async fn gateway_holding_the_stream(shop: &ShopBehindNginx) -> usize {
    eventually(
        Duration::from_secs(15),
        "the page's stream is open on one gateway",
        || async {
            let counts = [
                open_streams(&shop.gateways[0]).await?,
                open_streams(&shop.gateways[1]).await?,
            ];
            match counts {
                [1, 0] => Some(0),
                [0, 1] => Some(1),
                _ => None,
            }
        },
    )
    .await
}

async fn wait_live(client: &Client) {
    eventually(Duration::from_secs(15), "the page to go live", || async {
        (text_of(client, "connection").await == "Live").then_some(())
    })
    .await;
}

/// Two of our heartbeats, as docker/nginx.conf has two of the default.
fn two_heartbeats() -> String {
    format!("{}s", 2 * HEARTBEAT_SECS)
}

/// A proxy that would wait on a silent upstream for an hour: only the
/// page's watchdog can get it out.
const PATIENT_PROXY: &str = "1h";

#[tokio::test(flavor = "multi_thread")]
async fn nginx_ends_an_event_stream_whose_gateway_is_silent_for_two_heartbeats() {
    let shop = open_shop_behind_nginx(&two_heartbeats());
    let order = create_order(
        &reqwest::Client::new(),
        shop.gateways[0].addr,
        500,
        "Silent beans",
    )
    .await;
    let path = order
        .events_url
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|at| &rest[at..]))
        .unwrap_or(&order.events_url)
        .to_owned();
    let mut stream = testkit::sse::SseConnection::open(shop.nginx.addr, &path, &[])
        .await
        .expect("stream through nginx");
    assert_eq!(stream.status, 200);
    assert_eq!(stream.expect_event_name().await, "created");
    let frozen = gateway_holding_the_stream(&shop).await;
    shop.gateways[frozen].freeze();
    // Heartbeats and events stop; nginx closes the connection, which makes
    // a browser's EventSource reconnect (to the other gateway).
    let ended = tokio::time::timeout(
        Duration::from_secs(15),
        stream.events_until_end(Duration::from_secs(15)),
    )
    .await
    .expect("nginx ends the silent stream well before an hour");
    assert!(
        ended.is_ok_and(|events| events.is_empty()),
        "no event came from a frozen gateway"
    );
    shop.gateways[frozen].thaw();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_whose_gateway_freezes_still_shows_the_result_through_the_other_one() {
    let shop = open_shop_behind_nginx(PATIENT_PROXY);
    let browser = start_browser().await;
    let client = &browser.client;
    let (checkout, popup) = start_payment(client, shop.nginx.addr, "18.00").await;
    client.switch_to_window(checkout.clone()).await.unwrap();
    wait_live(client).await;
    client.switch_to_window(popup).await.unwrap();

    let frozen = gateway_holding_the_stream(&shop).await;
    shop.gateways[frozen].freeze();
    decide_in_popup(client, "pay", checkout).await;

    // Only the other gateway can have told it: this one is still frozen.
    eventually(RECOVERY_BOUND, "the checkout to show success", || async {
        (status_of(client).await.0 == "succeeded").then_some(())
    })
    .await;
    wait_for_final_status(client, "succeeded").await;
    shop.gateways[frozen].thaw();

    // The secret went in a header and request bodies only: no URL the
    // browser asked for (its streams are fetches with an Authorization
    // header, or, once it fell back, EventSource with a token a POST to
    // `/stream-tokens` got) and no line of nginx's access log holds a
    // client secret (`cs_…`) or a token.
    let urls = requested_urls(client).await;
    assert!(
        urls.iter().any(|url| url.ends_with("/events")),
        "the streams were opened without a credential in the URL: {urls:#?}"
    );
    for url in &urls {
        assert!(
            !url.contains("cs_")
                && !url.contains("client_secret")
                && !url.contains("stream_token="),
            "{url}"
        );
    }
    let access_log = shop.nginx.access_log();
    assert!(access_log.contains("/events"), "{access_log}");
    assert!(!access_log.contains("cs_"), "{access_log}");
    assert!(!access_log.contains("stream_token"), "{access_log}");
    client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dashboard_whose_gateway_freezes_goes_on_showing_orders_live() {
    let shop = open_shop_behind_nginx(PATIENT_PROXY);
    let browser = start_browser().await;
    let client = &browser.client;
    sign_in_to_dashboard(client, shop.nginx.addr).await;
    wait_live(client).await;
    let frozen = gateway_holding_the_stream(&shop).await;
    shop.gateways[frozen].freeze();

    // Straight to the gateway that still runs: a POST is not retried by
    // nginx, and this test is about the stream.
    let created = create_order(
        &reqwest::Client::new(),
        shop.gateways[1 - frozen].addr,
        990,
        "Frozen beans",
    )
    .await;
    let order_id = created.order_id;
    let status = eventually(RECOVERY_BOUND, "the new order's row", || {
        dashboard_status(client, &order_id)
    })
    .await;
    assert_eq!(status, "created");
    testkit::report(shop.core.addr, &order_id, PaymentOutcome::Succeeded, "")
        .await
        .expect("report accepted");
    eventually(RECOVERY_BOUND, "the row to turn succeeded", || async {
        (dashboard_status(client, &order_id).await.as_deref() == Some("succeeded")).then_some(())
    })
    .await;
    shop.gateways[frozen].thaw();
    client.clone().close().await.unwrap();
}
