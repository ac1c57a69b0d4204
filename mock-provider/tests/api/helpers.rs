//! A system under test: a real payment-core over a fresh SQLite file and a
//! real mock-provider pointed at it, both on loopback, both signing with
//! [`testkit::PROVIDER_SECRET`].

use std::net::SocketAddr;

use payments_proto::payments::v1::{self as pb, payment_service_client::PaymentServiceClient};
use testkit::{PROVIDER_SECRET, Process};

pub struct System {
    pub core_addr: SocketAddr,
    pub provider: Process,
    _core: Process,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// The mock-provider binary on a loopback port of its choosing, reporting
/// to `core` signed with `secret`, with extra environment (the knobs).
pub fn start_provider(core: SocketAddr, secret: &str, extra: &[(&str, String)]) -> Process {
    let mut env = vec![
        ("PAYMENT_CORE_URL", format!("http://{core}")),
        ("PROVIDER_SECRET", secret.to_owned()),
    ];
    env.extend(extra.iter().cloned());
    Process::start("mock-provider", &env)
}

/// payment-core and a provider sharing [`PROVIDER_SECRET`].
pub fn spawn_system(extra: &[(&str, String)]) -> System {
    let dir = tempfile::tempdir().expect("a temp dir");
    let core = testkit::start_payment_core(&dir.path().join("core.db"), PROVIDER_SECRET);
    let provider = start_provider(core.addr, PROVIDER_SECRET, extra);
    System {
        core_addr: core.addr,
        provider,
        _core: core,
        _dir: dir,
        http: reqwest::Client::new(),
    }
}

impl System {
    pub fn url(&self, path: &str) -> String {
        provider_url(&self.provider, path)
    }

    async fn core(&self) -> PaymentServiceClient<service_kit::core_client::KeyedChannel> {
        testkit::connect_payments(format!("http://{}", self.core_addr))
            .await
            .expect("payment-core accepts connections")
    }

    pub async fn create_order(
        &self,
        amount_minor: i64,
        currency: &str,
        description: &str,
    ) -> String {
        let request = pb::CreateOrderRequest {
            amount_minor,
            currency: currency.into(),
            description: description.into(),
            idempotency_key: String::new(),
        };
        self.core()
            .await
            .create_order(request)
            .await
            .expect("CreateOrder succeeds")
            .into_inner()
            .order
            .expect("CreateOrder answers the order")
            .order_id
    }

    /// The order's events as payment-core recorded them, oldest first.
    pub async fn events(&self, order_id: &str) -> Vec<pb::PaymentEvent> {
        let request = pb::ListOrderEventsRequest {
            order_id: order_id.into(),
            after_sequence: 0,
        };
        self.core()
            .await
            .list_order_events(request)
            .await
            .expect("ListOrderEvents succeeds")
            .into_inner()
            .events
    }

    pub async fn statuses(&self, order_id: &str) -> Vec<pb::OrderStatus> {
        let events = self.events(order_id).await;
        events.iter().map(|event| event.status()).collect()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        get(&self.http, &self.url(path)).await
    }

    pub async fn decide(&self, order_id: &str, form: &[(&str, &str)]) -> (u16, String) {
        decide(&self.http, &self.provider, order_id, form).await
    }
}

pub fn provider_url(provider: &Process, path: &str) -> String {
    format!("http://{}{path}", provider.addr)
}

pub async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http.get(url).send().await.expect("GET answered");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

/// POSTs the payer's decision form to `provider`'s page for `order_id`.
pub async fn decide(
    http: &reqwest::Client,
    provider: &Process,
    order_id: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let response = http
        .post(provider_url(provider, &format!("/pay/{order_id}")))
        .form(form)
        .send()
        .await
        .expect("POST answered");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

/// The text of the first `<tag class="class">…</tag>` of `page`: what the
/// payer reads there. Fails the test if the page has none.
pub fn element_text<'page>(page: &'page str, tag: &str, class: Option<&str>) -> &'page str {
    let open = match class {
        Some(class) => format!("<{tag} class=\"{class}\">"),
        None => format!("<{tag}>"),
    };
    let close = format!("</{tag}>");
    page.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map(|(text, _)| text)
        .unwrap_or_else(|| panic!("no {open} in:\n{page}"))
}
