//! A real browser: headless Chromium driven over WebDriver pays (and
//! declines) through the checkout page and the provider's popup, and the
//! checkout shows the result without a reload.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `.ci/run` installs them.
//! A missing browser fails the test: it is never skipped.

use std::{
    net::SocketAddr,
    process::{Child, Command},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use testkit::{PortTaken, Process, eventually_within as eventually};

use crate::helpers::{ADMIN_TOKEN, Gateway, create_order, spawn_gateway};

/// chromedriver, killed when dropped: owned from the moment it is spawned,
/// so a failure while connecting cannot leave it running.
struct Driver {
    child: Child,
    port: u16,
    /// Holds its output.
    _dir: tempfile::TempDir,
}

impl Driver {
    /// chromedriver on `port`, once it says it listens there. It cannot bind
    /// port 0 and report the port: [`PortTaken`] when another process took
    /// it first (chromedriver then exits).
    fn start(port: u16) -> Result<Self, PortTaken> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("chromedriver.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect(
                "chromedriver is installed (Debian package chromium-driver; .ci/run installs it)",
            );
        let mut driver = Self {
            child,
            port,
            _dir: dir,
        };
        let started = format!("started successfully on port {port}");
        let bound = Duration::from_secs(20);
        testkit::wait_until_ready("chromedriver", &mut driver.child, &log, bound, || {
            std::fs::read_to_string(&log).is_ok_and(|text| text.contains(&started))
        })?;
        Ok(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

pub async fn start_browser() -> Browser {
    start_browser_with(&[]).await
}

/// Chromium with `extra` arguments, e.g. `--ignore-certificate-errors` for
/// a test's own CA (only ever in tests).
pub async fn start_browser_with(extra: &[&str]) -> Browser {
    let driver = testkit::on_a_free_port("chromedriver", Driver::start);
    let profile = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let capabilities = json!({ "goog:chromeOptions": { "args": args } });
    // chromedriver listens on loopback in plain HTTP: fantoccini is built
    // without TLS (its TLS features would link a second crypto library).
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("WebDriver session with Chromium");
    Browser {
        client,
        _driver: driver,
        _profile: profile,
    }
}

/// The whole system: payment-core and mock-provider binaries, the gateway in process.
struct Shop {
    gateway: Gateway,
    core_port: u16,
    _core: Process,
    _provider: Process,
    _dir: tempfile::TempDir,
}

/// payment-core over a SQLite file in `dir`, with payment URLs on the
/// mock-provider, and the mock-provider reporting to it: (core, provider).
///
/// Each is configured with the other's address. payment-core never
/// connects to the provider (its address only shapes the payment URLs), so
/// the provider's address is reserved first, the core starts on a port of
/// its choosing, and the provider then binds the reserved address.
pub fn start_core_and_provider(dir: &std::path::Path) -> (Process, Process) {
    let provider_addr = testkit::reserve_address();
    let core = testkit::start_payment_core_with(
        &dir.join("core.db"),
        testkit::PROVIDER_SECRET,
        &[(
            "PROVIDER_PAGE_URL",
            format!("http://{}/pay", provider_addr.addr),
        )],
    );
    let provider = Process::start(
        "mock-provider",
        &[
            ("PROVIDER_LISTEN", provider_addr.addr.to_string()),
            ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
            ("PROVIDER_SECRET", testkit::PROVIDER_SECRET.to_owned()),
        ],
    );
    (core, provider)
}

async fn open_shop() -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let (core, provider) = start_core_and_provider(dir.path());
    let core_port = core.addr.port();
    let gateway = spawn_gateway(core_port, |_| {}).await;
    Shop {
        gateway,
        core_port,
        _core: core,
        _provider: provider,
        _dir: dir,
    }
}

pub async fn status_of(client: &Client) -> (String, String) {
    let status = client.find(Locator::Id("status")).await.unwrap();
    let name = status
        .attr("data-status")
        .await
        .unwrap()
        .unwrap_or_default();
    let reason = text_of(client, "status-reason").await;
    (name, reason)
}

/// Opens the checkout at `site`, fills it, clicks Pay, and returns
/// (checkout window, provider popup).
pub async fn start_payment(
    client: &Client,
    site: SocketAddr,
    amount: &str,
) -> (fantoccini::wd::WindowHandle, fantoccini::wd::WindowHandle) {
    client.goto(&format!("http://{site}/")).await.unwrap();
    // A reload would drop this marker: the result must arrive without one.
    client
        .execute("window.__noReload = true; return true;", vec![])
        .await
        .unwrap();
    let amount_input = client.find(Locator::Id("amount")).await.unwrap();
    amount_input.clear().await.unwrap();
    amount_input.send_keys(amount).await.unwrap();
    let checkout = client.window().await.unwrap();
    client
        .find(Locator::Id("pay-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let popup = wait_for_popup(client, &checkout).await;
    let (status, _) = eventually(
        Duration::from_secs(15),
        "the order to be created",
        || async {
            let (status, reason) = status_of(client).await;
            (status != "idle").then_some((status, reason))
        },
    )
    .await;
    assert!(
        ["created", "processing"].contains(&status.as_str()),
        "{status}"
    );
    client.switch_to_window(popup.clone()).await.unwrap();
    eventually(Duration::from_secs(15), "the payment page", || async {
        client.find(Locator::Id("pay")).await.ok()
    })
    .await;
    (checkout, popup)
}

/// Clicks `button` in the provider popup, waits for its result page, and
/// returns to the checkout window.
pub async fn decide_in_popup(
    client: &Client,
    button: &str,
    checkout: fantoccini::wd::WindowHandle,
) {
    client
        .find(Locator::Id(button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the provider's result", || async {
        client.find(Locator::Id("result")).await.ok()
    })
    .await;
    client.switch_to_window(checkout).await.unwrap();
}

pub async fn text_of(client: &Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub async fn wait_for_final_status(client: &Client, expected: &str) -> String {
    let (_, reason) = eventually(Duration::from_secs(15), expected, || async {
        let (status, reason) = status_of(client).await;
        (status == expected).then_some((status, reason))
    })
    .await;
    let still_same_page = client
        .execute("return window.__noReload === true;", vec![])
        .await
        .unwrap();
    assert_eq!(still_same_page, json!(true), "the page was not reloaded");
    reason
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shopper_pays_in_the_provider_popup_and_the_checkout_shows_success_at_once() {
    let shop = open_shop().await;
    let browser = start_browser().await;
    let client = &browser.client;
    let (checkout, _popup) = start_payment(client, shop.gateway.addr, "12.50").await;

    let amount = text_of(client, "amount").await;
    assert_eq!(amount, "12.50 EUR", "the provider shows the order's amount");
    decide_in_popup(client, "pay", checkout).await;

    wait_for_final_status(client, "succeeded").await;
    let connection = text_of(client, "connection").await;
    assert_eq!(
        connection, "Closed",
        "the page closes its EventSource at the final state"
    );
    client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_payment_shows_its_reason_on_the_checkout() {
    let shop = open_shop().await;
    let browser = start_browser().await;
    let client = &browser.client;
    let (checkout, _popup) = start_payment(client, shop.gateway.addr, "30").await;

    let reason = client.find(Locator::Id("decline-reason")).await.unwrap();
    reason.select_by_value("insufficient funds").await.unwrap();
    decide_in_popup(client, "decline", checkout).await;

    let shown_reason = wait_for_final_status(client, "failed").await;
    assert_eq!(shown_reason, "insufficient funds");
    let message = text_of(client, "status").await;
    assert!(message.contains("insufficient funds"), "{message}");
    client.clone().close().await.unwrap();
}

/// Opens the dashboard at `site` and signs in through its form: the admin
/// token goes in the POST's body, and the session cookie it sets opens the
/// stream.
pub async fn sign_in_to_dashboard(client: &Client, site: SocketAddr) {
    client
        .goto(&format!("http://{site}/dashboard"))
        .await
        .unwrap();
    let input = eventually(Duration::from_secs(15), "the sign-in form", || async {
        let input = client.find(Locator::Id("token-input")).await.ok()?;
        input.is_displayed().await.ok()?.then_some(input)
    })
    .await;
    input.send_keys(ADMIN_TOKEN).await.unwrap();
    client
        .find(Locator::Id("token-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let cookies = client
        .execute("return document.cookie;", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, json!(""), "the session cookie is HttpOnly");
}

/// The window other than `page` once one opens: the provider's popup.
pub async fn wait_for_popup(
    client: &Client,
    page: &fantoccini::wd::WindowHandle,
) -> fantoccini::wd::WindowHandle {
    eventually(Duration::from_secs(15), "the provider popup", || async {
        client
            .windows()
            .await
            .unwrap()
            .into_iter()
            .find(|handle| handle != page)
    })
    .await
}

/// Waits until `condition` (a JavaScript expression) holds in the page.
pub async fn wait_for_script(client: &Client, condition: &str) {
    let script = format!("return ({condition}) === true;");
    eventually(Duration::from_secs(15), condition, || async {
        let holds = client.execute(&script, vec![]).await.ok()?;
        holds.as_bool().unwrap_or(false).then_some(())
    })
    .await;
}

/// Every URL the page has requested (Resource Timing: its fetches and
/// EventSource streams) and its own address.
pub async fn requested_urls(client: &Client) -> Vec<String> {
    let urls = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(urls).unwrap()
}

/// The `data-status` of the dashboard row for `order_id`, if the row exists.
pub async fn dashboard_status(client: &Client, order_id: &str) -> Option<String> {
    let selector = format!("tr[data-order-id=\"{order_id}\"] td.status");
    let cell = client.find(Locator::Css(&selector)).await.ok()?;
    cell.attr("data-status").await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_merchant_dashboard_shows_an_order_appear_and_change_live() {
    let shop = open_shop().await;
    let browser = start_browser().await;
    let client = &browser.client;
    sign_in_to_dashboard(client, shop.gateway.addr).await;
    eventually(
        Duration::from_secs(15),
        "the dashboard to go live",
        || async { (text_of(client, "connection").await == "Live").then_some(()) },
    )
    .await;

    let created = create_order(
        &reqwest::Client::new(),
        shop.gateway.addr,
        4200,
        "Dashboard beans",
    )
    .await;
    let order_id = created.order_id;
    let status = eventually(Duration::from_secs(10), "the new order's row", || {
        dashboard_status(client, &order_id)
    })
    .await;
    assert_eq!(status, "created");

    let core = SocketAddr::from(([127, 0, 0, 1], shop.core_port));
    testkit::report(
        core,
        &order_id,
        payments_proto::payments::v1::PaymentOutcome::Succeeded,
        "",
    )
    .await
    .expect("report accepted");
    eventually(
        Duration::from_secs(10),
        "the row to turn succeeded",
        || async {
            (dashboard_status(client, &order_id).await.as_deref() == Some("succeeded"))
                .then_some(())
        },
    )
    .await;
    client.clone().close().await.unwrap();
}
