//! Many streams on one page, in headless Chromium through the project's
//! nginx (`docker/nginx.conf`): a browser opens at most six HTTP/1.1
//! connections to an origin and each event stream holds one, so a page
//! (or a shopper's tabs) with a seventh stream hangs, unless the edge
//! speaks HTTP/2, which carries them all on one connection.
//! - over nginx's TLS listener, 12 order streams on one page are all live
//!   at once and all 12 get their results, over `h2`;
//! - over its plain HTTP/1.1 listener, the control: six are live and the
//!   seventh stalls.

use std::time::Duration;

use payments_proto::payments::v1::PaymentOutcome;
use serde_json::{Value, json};
use testkit::{Process, eventually_within as eventually, nginx::Nginx, tls::TestPki};

use crate::{
    browser::{start_browser_with, start_core_and_provider},
    helpers::{CreatedOrder, Gateway, create_order, spawn_gateway},
    shop::{ShopSite, record_of, track},
};

const STREAMS: usize = 12;
const BOUND: Duration = Duration::from_secs(30);

/// payment-core, the provider, two gateways allowing `origins`, and nginx
/// in front of them with its TLS listener.
struct Edge {
    nginx: Nginx,
    gateways: [Gateway; 2],
    core: Process,
    _provider: Process,
    _pki: TestPki,
    _dir: tempfile::TempDir,
}

async fn start_edge(origins: &str) -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let (core, provider) = start_core_and_provider(dir.path());
    let gateway = || {
        let origins = origins.to_owned();
        spawn_gateway(core.addr.port(), move |config| {
            config.allowed_origins = origins
        })
    };
    let gateways = [gateway().await, gateway().await];
    let pki = TestPki::generate();
    let nginx = Nginx::start_with_tls([gateways[0].addr, gateways[1].addr], &[], &pki);
    Edge {
        nginx,
        gateways,
        core,
        _provider: provider,
        _pki: pki,
        _dir: dir,
    }
}

/// How many of `orders`' watches have gone live (a stream spoke).
async fn live_count(client: &fantoccini::Client, orders: &[CreatedOrder]) -> usize {
    let mut live = 0;
    for order in orders {
        let record = record_of(client, &order.order_id).await;
        let statuses = record["statuses"].as_array().cloned().unwrap_or_default();
        if statuses.iter().any(|s| s["state"] == "live") {
            live += 1;
        }
    }
    live
}

/// Creates `STREAMS` orders and watches them all from `site`'s harness.
async fn watch_many(
    client: &fantoccini::Client,
    edge: &Edge,
    site: &ShopSite,
) -> Vec<CreatedOrder> {
    let http = reqwest::Client::new();
    let mut orders = Vec::new();
    for n in 0..STREAMS {
        let order = create_order(&http, edge.gateways[n % 2].addr, 100 + n as i64, "Many").await;
        track(client, site, &order.order_id, &order.client_secret, "{}").await;
        orders.push(order);
    }
    orders
}

#[tokio::test(flavor = "multi_thread")]
async fn twelve_streams_on_one_page_all_get_their_results_over_http2_and_six_is_the_http1_limit() {
    let h2_site = ShopSite::bind().await;
    let h1_site = ShopSite::bind().await;
    let edge = start_edge(&format!("{},{}", h2_site.1, h1_site.1)).await;
    let tls = edge.nginx.tls_addr.expect("the TLS listener");
    let h2_site = ShopSite::serve(
        h2_site,
        &format!("https://127.0.0.1:{}", tls.port()),
        edge.gateways[0].addr,
    );
    let h1_site = ShopSite::serve(
        h1_site,
        &format!("http://{}", edge.nginx.addr),
        edge.gateways[0].addr,
    );
    // The test's own CA: accepted here only.
    let browser = start_browser_with(&["--ignore-certificate-errors"]).await;
    let client = &browser.client;

    // HTTP/2: all twelve at once.
    let orders = watch_many(client, &edge, &h2_site).await;
    eventually(BOUND, "all twelve streams live", || async {
        (live_count(client, &orders).await == STREAMS).then_some(())
    })
    .await;
    for order in &orders {
        testkit::report(
            edge.core.addr,
            &order.order_id,
            PaymentOutcome::Succeeded,
            "",
        )
        .await
        .expect("report accepted");
    }
    for order in &orders {
        let record: Value = eventually(BOUND, "each result", || async {
            let record = record_of(client, &order.order_id).await;
            (!record["settled"].as_array()?.is_empty()).then_some(record)
        })
        .await;
        assert_eq!(record["settled"], json!(["succeeded"]), "{record:#}");
        let transports: Vec<&Value> = record["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["transport"])
            .collect();
        assert!(transports.iter().all(|t| *t == "fetch"), "{record:#}");
    }
    // Which protocol carried them: nginx's access log says. (The page's
    // Resource Timing hides it for another origin's resources without
    // Timing-Allow-Origin.)
    let log = edge.nginx.access_log();
    for order in &orders {
        let line = format!("\"GET /api/orders/{}/events HTTP/2.0\" 200", order.order_id);
        assert!(log.contains(&line), "{line} in\n{log}");
    }

    // The control, HTTP/1.1: six connections, six live streams; the
    // seventh waits for a connection (well within the two heartbeats, 30 s,
    // after which the module would leave the transport).
    client
        .goto(&format!("{}/harness", h1_site.origin))
        .await
        .unwrap();
    let orders = watch_many(client, &edge, &h1_site).await;
    eventually(BOUND, "six streams live", || async {
        (live_count(client, &orders).await == 6).then_some(())
    })
    .await;
    // A negative claim needs a window: three seconds more, and still six.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        live_count(client, &orders).await,
        6,
        "the seventh stream stalls"
    );
    client.clone().close().await.unwrap();
}
