//! The browser client module (`/sdk/payments-push.js`) in headless
//! Chromium, on a merchant's site of its own origin ([`crate::shop`]):
//! - the README's example shop pays through the provider's popup and shows
//!   the result once, across origins, with no cookie;
//! - an origin the gateway does not list gets no event;
//! - a stream cut mid-way resumes after the last event it saw;
//! - a proxy that buffers event streams is noticed within two heartbeats,
//!   and one that refuses them is left, each for the next transport down to
//!   polling, and the result still shows once.

use std::time::Duration;

use fantoccini::Locator;
use payments_proto::payments::v1::PaymentOutcome;
use serde_json::{Value, json};
use testkit::{Process, eventually_within as eventually};

use crate::{
    browser::{
        Browser, decide_in_popup, start_browser, start_core_and_provider, text_of, wait_for_popup,
    },
    helpers::{CreatedOrder, Gateway, create_order, spawn_gateway},
    shop::{EdgeProxy, ShopSite, StreamPolicy, record_of, track},
};

const BOUND: Duration = Duration::from_secs(20);

/// payment-core, the provider, one gateway allowing `origin` with
/// `heartbeat_secs`.
struct System {
    gateway: Gateway,
    core: Process,
    _provider: Process,
    _dir: tempfile::TempDir,
}

async fn start_system(allowed_origin: &str, heartbeat_secs: u64) -> System {
    let dir = tempfile::tempdir().unwrap();
    let (core, provider) = start_core_and_provider(dir.path());
    let origin = allowed_origin.to_owned();
    let gateway = spawn_gateway(core.addr.port(), move |config| {
        config.allowed_origins = origin;
        config.heartbeat_secs = heartbeat_secs;
    })
    .await;
    System {
        gateway,
        core,
        _provider: provider,
        _dir: dir,
    }
}

/// The `#log` lines of the example shop.
async fn shop_log(client: &fantoccini::Client) -> Vec<String> {
    let items = client.find_all(Locator::Css("#log li")).await.unwrap();
    let mut lines = Vec::new();
    for item in items {
        lines.push(item.text().await.unwrap());
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_shop_on_another_site_pays_in_the_popup_and_shows_the_result_once() {
    let site = ShopSite::bind().await;
    let system = start_system(&site.1, 15).await;
    let gateway = format!("http://{}", system.gateway.addr);
    let shop = ShopSite::serve(site, &gateway, system.gateway.addr);
    let browser = start_browser().await;
    let client = &browser.client;

    client.goto(&format!("{}/", shop.origin)).await.unwrap();
    let page = client.window().await.unwrap();
    crate::browser::wait_for_script(client, "document.getElementById('pay') !== null").await;
    client
        .find(Locator::Id("pay"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let popup = wait_for_popup(client, &page).await;
    // The page watches before it sends the popup to the provider.
    client.switch_to_window(page.clone()).await.unwrap();
    eventually(BOUND, "the watch to be live", || async {
        text_of(client, "transport")
            .await
            .contains("live via fetch")
            .then_some(())
    })
    .await;
    client.switch_to_window(popup).await.unwrap();
    eventually(BOUND, "the provider's page", || async {
        client.find(Locator::Id("pay")).await.ok()
    })
    .await;
    decide_in_popup(client, "pay", page).await;

    eventually(BOUND, "the shop to show the result", || async {
        (text_of(client, "status").await == "succeeded").then_some(())
    })
    .await;
    let log = shop_log(client).await;
    assert_eq!(log.first().map(String::as_str), Some("created"), "{log:?}");
    assert_eq!(
        log.iter().filter(|line| line.contains("succeeded")).count(),
        2,
        "one event and one settlement: {log:?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("settled: succeeded"));
    let mut seen = log.clone();
    seen.dedup();
    assert_eq!(seen, log, "no line twice: {log:?}");

    // Nothing rode on a cookie: the gateway's origin holds none.
    client.goto(&format!("{gateway}/healthz")).await.unwrap();
    let cookies = client.get_all_cookies().await.unwrap();
    assert!(cookies.is_empty(), "{cookies:?}");
    client.clone().close().await.unwrap();
}

/// A gateway with a one-second heartbeat, reached by the browser through
/// an [`EdgeProxy`] (or directly, without a policy), and the harness page
/// on a shop's origin, which the gateway lists unless `listed` is false.
struct Scene {
    system: System,
    proxy: Option<EdgeProxy>,
    shop: ShopSite,
    browser: Browser,
}

impl Scene {
    async fn start(policy: Option<StreamPolicy>, listed: bool) -> Self {
        let site = ShopSite::bind().await;
        let allowed = if listed {
            site.1.clone()
        } else {
            "http://shop.example".to_owned()
        };
        let system = start_system(&allowed, 1).await;
        let proxy = match policy {
            Some(policy) => Some(EdgeProxy::start(system.gateway.addr, policy).await),
            None => None,
        };
        let gateway = proxy
            .as_ref()
            .map_or(system.gateway.addr, |proxy| proxy.addr);
        let shop = ShopSite::serve(site, &format!("http://{gateway}"), system.gateway.addr);
        let browser = start_browser().await;
        Self {
            system,
            proxy,
            shop,
            browser,
        }
    }

    fn proxy(&self) -> &EdgeProxy {
        self.proxy.as_ref().expect("a scene with a proxy")
    }

    /// A new order, watched by the harness with `heartbeatSecs: 1`.
    async fn watch_new_order(&self) -> CreatedOrder {
        let order = create_order(
            &reqwest::Client::new(),
            self.system.gateway.addr,
            800,
            "Watched",
        )
        .await;
        let options = "{ heartbeatSecs: 1 }";
        track(
            &self.browser.client,
            &self.shop,
            &order.order_id,
            &order.client_secret,
            options,
        )
        .await;
        order
    }

    async fn record(&self, order: &CreatedOrder) -> Value {
        record_of(&self.browser.client, &order.order_id).await
    }

    /// Waits until `order`'s watch has reported `state` on `transport`
    /// `times` times, and answers its record.
    async fn wait_for(
        &self,
        order: &CreatedOrder,
        transport: &str,
        state: &str,
        times: usize,
    ) -> Value {
        let what = format!("{times} × {state} on {transport}");
        eventually(BOUND, &what, || async {
            let record = self.record(order).await;
            let seen = (record["statuses"].as_array()?.iter())
                .filter(|s| s["transport"] == transport && s["state"] == state)
                .count();
            (seen >= times).then_some(record)
        })
        .await
    }

    async fn pay(&self, order: &CreatedOrder) {
        testkit::report(
            self.system.core.addr,
            &order.order_id,
            PaymentOutcome::Succeeded,
            "",
        )
        .await
        .expect("report accepted");
    }

    async fn wait_settled(&self, order: &CreatedOrder) -> Value {
        eventually(BOUND, "the result", || async {
            let record = self.record(order).await;
            (!record["settled"].as_array()?.is_empty()).then_some(record)
        })
        .await
    }

    async fn close(self) {
        self.browser.client.clone().close().await.unwrap();
    }
}

/// The transports of a watch's statuses in order, each once, with when (ms
/// after the start) each came first.
fn transports_of(record: &Value) -> Vec<(String, f64)> {
    let mut seen: Vec<(String, f64)> = Vec::new();
    for status in record["statuses"].as_array().into_iter().flatten() {
        let Some(transport) = status["transport"].as_str() else {
            continue;
        };
        if seen.iter().all(|(name, _)| name != transport) {
            seen.push((transport.to_owned(), status["at"].as_f64().unwrap_or(0.0)));
        }
    }
    seen
}

fn transport_names(record: &Value) -> Vec<String> {
    transports_of(record)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Each event's (status, transport).
fn events_of(record: &Value) -> Vec<(String, String)> {
    let events = record["events"].as_array().into_iter().flatten();
    events
        .map(|e| {
            (
                e["status"].as_str().unwrap().to_owned(),
                e["transport"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_the_gateway_does_not_list_gets_no_event() {
    let scene = Scene::start(None, false).await;
    let order = scene.watch_new_order().await;
    scene.pay(&order).await;
    // Every transport tried and refused by CORS, down to polling, which
    // keeps being refused.
    let record = scene.wait_for(&order, "polling", "reconnecting", 2).await;
    assert_eq!(
        transport_names(&record),
        ["fetch", "eventsource", "polling"],
        "{record:#}"
    );
    assert_eq!(record["events"], json!([]), "{record:#}");
    assert_eq!(record["settled"], json!([]), "{record:#}");
    scene.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_stream_resumes_after_the_last_event_it_saw_and_each_event_comes_once() {
    let scene = Scene::start(Some(StreamPolicy::Pass), true).await;
    let order = scene.watch_new_order().await;
    let created = eventually(BOUND, "the created event", || async {
        scene.record(&order).await["events"][0]["sequence"]
            .as_str()
            .map(str::to_owned)
    })
    .await;

    scene.proxy().cut_streams();
    let resumed = format!("GET /api/orders/{}/events after={created}", order.order_id);
    eventually(
        BOUND,
        "a stream resumed after the created event",
        || async {
            scene
                .proxy()
                .requests
                .lock()
                .unwrap()
                .contains(&resumed)
                .then_some(())
        },
    )
    .await;
    scene.pay(&order).await;
    let record = scene.wait_settled(&order).await;
    let fetch = |status: &str| (status.to_owned(), "fetch".to_owned());
    assert_eq!(
        events_of(&record),
        [fetch("created"), fetch("succeeded")],
        "{record:#}"
    );
    assert_eq!(record["settled"], json!(["succeeded"]), "{record:#}");
    scene.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_or_an_unknown_order_ends_the_watch_with_an_error_and_no_fallback() {
    let scene = Scene::start(None, true).await;
    let order = scene.watch_new_order().await;
    let client = &scene.browser.client;
    let cases = [
        (order.order_id.clone(), "cs_not_the_secret".to_owned()),
        (
            uuid::Uuid::new_v4().to_string(),
            order.client_secret.clone(),
        ),
    ];
    for (order_id, secret) in &cases {
        track(
            client,
            &scene.shop,
            order_id,
            secret,
            "{ heartbeatSecs: 1 }",
        )
        .await;
        let record = eventually(BOUND, "the watch to fail", || async {
            let record = record_of(client, order_id).await;
            (!record["errors"].as_array()?.is_empty()).then_some(record)
        })
        .await;
        // The gateway does not say which of the two is wrong.
        let error = record["errors"][0].as_str().unwrap_or_default();
        assert!(["not_found", "unauthorized"].contains(&error), "{record:#}");
        assert_eq!(record["events"], json!([]), "{record:#}");
        assert_eq!(
            transport_names(&record),
            ["fetch"],
            "a refusal is final: {record:#}"
        );
        let last = record["statuses"].as_array().unwrap().last().cloned();
        assert_eq!(
            last.map(|s| s["state"].clone()),
            Some(json!("failed")),
            "{record:#}"
        );
    }
    // Missing arguments are the page's bug: a TypeError at once.
    let thrown = client
        .execute(
            "try { window.track('', 'cs_x', {}); return 'no error'; } catch (e) { return e.name; }",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(thrown, json!("TypeError"));
    scene.close().await;
}

/// Behind a proxy with `policy`: the watch falls through to polling after
/// asking for `streams` event streams, and the result shows once. Returns
/// the record and the scene.
async fn watch_behind(policy: StreamPolicy, streams: usize) -> (Value, Scene) {
    let scene = Scene::start(Some(policy), true).await;
    let order = scene.watch_new_order().await;
    // Two polls answered before the result: one that saw nothing new must
    // hand nothing over.
    scene.wait_for(&order, "polling", "live", 2).await;
    scene.pay(&order).await;
    scene.wait_settled(&order).await;
    // A negative claim needs a window: two and a half poll intervals after
    // the result, in which nothing more may be delivered or asked for.
    let poll = format!("GET /api/orders/{}", order.order_id);
    let polls = || {
        scene
            .proxy()
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == poll)
            .count()
    };
    let polls_at_the_result = polls();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(polls(), polls_at_the_result, "no poll after the result");
    let record = scene.record(&order).await;
    assert_eq!(record["settled"], json!(["succeeded"]), "{record:#}");
    let statuses: Vec<String> = events_of(&record)
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let mut unique = statuses.clone();
    unique.dedup();
    assert_eq!(statuses, unique, "each status once: {record:#}");
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("succeeded"),
        "{record:#}"
    );
    assert_eq!(record["errors"], json!([]), "{record:#}");
    assert_eq!(
        transport_names(&record),
        ["fetch", "eventsource", "polling"],
        "{record:#}"
    );
    let requests = scene.proxy().requests.lock().unwrap().clone();
    assert_eq!(scene.proxy().count_streams(), streams, "{requests:?}");
    (record, scene)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_that_buffers_event_streams_is_noticed_within_two_heartbeats_and_polled_past() {
    // One silent stream is enough to leave a transport.
    let (record, scene) = watch_behind(StreamPolicy::Buffer, 2).await;
    let transports = transports_of(&record);
    // Two heartbeats (1 s each) per streaming transport, plus a token
    // request and scheduling: well under a third heartbeat each.
    let (fetch_at, eventsource_at, polling_at) =
        (transports[0].1, transports[1].1, transports[2].1);
    assert!(eventsource_at - fetch_at < 2_900.0, "{record:#}");
    assert!(polling_at - eventsource_at < 2_900.0, "{record:#}");
    scene.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_that_refuses_event_streams_is_left_for_polling() {
    // Each streaming transport tried twice, then left.
    let (_, scene) = watch_behind(StreamPolicy::Refuse, 4).await;
    scene.close().await;
}

#[test]
fn the_readme_shows_the_example_shop_page_exactly_as_tested() {
    let readme = include_str!("../../../README.md");
    let example = include_str!("../../../docs/examples/shop.html");
    assert!(
        readme.contains(&format!("```html\n{example}```")),
        "README.md's copy-paste example is docs/examples/shop.html, which the test above serves"
    );
}
