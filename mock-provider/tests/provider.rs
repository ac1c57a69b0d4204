//! The provider's page and command line against the real payment-core
//! binary: what the payer sees, what payment-core records, and the knobs.

use std::{net::SocketAddr, process::Command, time::Duration};

use payments_proto::payments::v1::{self as pb, payment_service_client::PaymentServiceClient};
use testkit::{Process, free_port};

const SECRET: &str = "provider-test-secret";

struct System {
    core_port: u16,
    provider: Process,
    _core: Process,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn start_provider(core_port: u16, secret: &str, extra: &[(&str, String)]) -> Process {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut env = vec![
        ("PROVIDER_LISTEN", addr.to_string()),
        ("PAYMENT_CORE_URL", format!("http://127.0.0.1:{core_port}")),
        ("PROVIDER_SECRET", secret.to_owned()),
    ];
    env.extend(extra.iter().cloned());
    Process::start("mock-provider", addr, &env)
}

fn spawn_system(extra: &[(&str, String)]) -> System {
    let dir = tempfile::tempdir().unwrap();
    let core_port = free_port();
    let core = testkit::start_payment_core(&dir.path().join("core.db"), SECRET, core_port);
    let provider = start_provider(core_port, SECRET, extra);
    System {
        core_port,
        provider,
        _core: core,
        _dir: dir,
        http: reqwest::Client::new(),
    }
}

impl System {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.provider.addr)
    }

    async fn core(&self) -> PaymentServiceClient<tonic::transport::Channel> {
        PaymentServiceClient::connect(format!("http://127.0.0.1:{}", self.core_port))
            .await
            .unwrap()
    }

    async fn create_order(&self, amount_minor: i64, currency: &str, description: &str) -> String {
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
            .unwrap()
            .into_inner()
            .order
            .unwrap()
            .order_id
    }

    async fn statuses(&self, order_id: &str) -> Vec<pb::OrderStatus> {
        let request = pb::ListOrderEventsRequest {
            order_id: order_id.into(),
            after_sequence: 0,
        };
        let events = self
            .core()
            .await
            .list_order_events(request)
            .await
            .unwrap()
            .into_inner()
            .events;
        events.iter().map(|event| event.status()).collect()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn decide(&self, order_id: &str, form: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .http
            .post(self.url(&format!("/pay/{order_id}")))
            .form(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

use pb::OrderStatus::{Canceled, Created, Failed, Processing, Succeeded};

#[tokio::test]
async fn opening_the_page_shows_the_order_and_reports_processing() {
    let system = spawn_system(&[]);
    let order_id = system.create_order(1999, "EUR", "Beans <b>bold</b>").await;
    let (status, page) = system.get(&format!("/pay/{order_id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("19.99 EUR"), "the order's own amount");
    assert!(
        page.contains("Beans &lt;b&gt;bold&lt;/b&gt;"),
        "shopper text is escaped"
    );
    assert!(page.contains(&format!("action=\"/pay/{order_id}\"")));
    assert!(
        !page.contains("name=\"amount\""),
        "the payer cannot submit an amount"
    );
    let stylesheet = system
        .http
        .get(system.url("/assets/mockpay.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stylesheet.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    assert!(
        page.contains("href=\"/assets/mockpay.css\""),
        "the page links the stylesheet it is served with"
    );
    assert_eq!(system.statuses(&order_id).await, [Created, Processing]);
    system.get(&format!("/pay/{order_id}")).await;
    assert_eq!(
        system.statuses(&order_id).await,
        [Created, Processing],
        "opening it again changes nothing"
    );
}

#[tokio::test]
async fn pay_decline_and_cancel_report_signed_results() {
    let system = spawn_system(&[]);
    let cases = [
        (vec![("decision", "pay")], Succeeded, "succeeded", ""),
        (
            vec![("decision", "decline"), ("reason", "insufficient funds")],
            Failed,
            "failed",
            "insufficient funds",
        ),
        (vec![("decision", "cancel")], Canceled, "canceled", ""),
    ];
    for (form, final_status, outcome, reason) in cases {
        let order_id = system.create_order(500, "JPY", "").await;
        system.get(&format!("/pay/{order_id}")).await;
        let (status, page) = system.decide(&order_id, &form).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains(&format!("data-outcome=\"{outcome}\"")));
        assert!(page.contains("500 JPY"));
        assert!(page.contains(reason));
        assert_eq!(
            system.statuses(&order_id).await,
            [Created, Processing, final_status]
        );
    }
}

#[tokio::test]
async fn unknown_finished_and_malformed_orders_get_a_clear_page() {
    let system = spawn_system(&[]);
    let (status, page) = system.get(&format!("/pay/{}", uuid::Uuid::new_v4())).await;
    assert_eq!((status, page.contains("id=\"message\"")), (404, true));
    let (status, _) = system.get("/pay/not-an-order").await;
    assert_eq!(status, 404);

    let paid = system.create_order(100, "EUR", "").await;
    system.decide(&paid, &[("decision", "pay")]).await;
    let (status, page) = system.get(&format!("/pay/{paid}")).await;
    assert_eq!(status, 409);
    assert!(page.contains("already paid"), "{page}");
    let (status, page) = system.decide(&paid, &[("decision", "decline")]).await;
    assert_eq!(status, 409, "{page}");
    assert_eq!(
        system.statuses(&paid).await,
        [Created, Succeeded],
        "a second decision changes nothing"
    );

    let open = system.create_order(100, "EUR", "").await;
    let (status, page) = system.decide(&open, &[("decision", "refund")]).await;
    assert_eq!(status, 400);
    assert!(page.contains("Unknown decision"));
    let (status, _) = system.decide(&open, &[("reason", "no decision")]).await;
    assert_eq!(status, 400);
    assert_eq!(system.statuses(&open).await, [Created]);
}

#[tokio::test]
async fn a_provider_with_the_wrong_secret_cannot_change_orders() {
    let system = spawn_system(&[]);
    let forger = start_provider(system.core_port, "not-the-secret", &[]);
    let order_id = system.create_order(100, "EUR", "").await;
    let response = system
        .http
        .post(format!("http://{}/pay/{order_id}", forger.addr))
        .form(&[("decision", "pay")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().contains("not charged"));
    assert_eq!(system.statuses(&order_id).await, [Created]);
}

#[tokio::test]
async fn the_duplicate_and_delay_knobs_change_timing_but_not_the_result() {
    let system = spawn_system(&[
        ("PROVIDER_DUPLICATE_REPORTS", "true".into()),
        ("PROVIDER_REPORT_DELAY_MS", "300".into()),
    ]);
    let order_id = system.create_order(100, "EUR", "").await;
    let started = std::time::Instant::now();
    let (status, _) = system.decide(&order_id, &[("decision", "pay")]).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the report waited"
    );
    assert_eq!(
        system.statuses(&order_id).await,
        [Created, Succeeded],
        "the duplicate report wrote nothing"
    );
}

#[tokio::test]
async fn the_report_command_sends_a_signed_result_for_scripts() {
    let system = spawn_system(&[]);
    let order_id = system.create_order(100, "EUR", "").await;
    let run = |outcome: &str, secret: &str| {
        Command::new(testkit::binary_path("mock-provider"))
            .args([
                "report",
                "--order",
                &order_id,
                "--outcome",
                outcome,
                "--reason",
                "card declined",
            ])
            .env(
                "PAYMENT_CORE_URL",
                format!("http://127.0.0.1:{}", system.core_port),
            )
            .env("PROVIDER_SECRET", secret)
            .output()
            .unwrap()
    };
    let forged = run("failed", "wrong");
    assert!(!forged.status.success());
    assert!(String::from_utf8_lossy(&forged.stderr).contains("PROVIDER_SECRET"));
    let output = run("failed", SECRET);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("order {order_id} is ORDER_STATUS_FAILED")
    );
    let again = run("failed", SECRET);
    assert!(String::from_utf8_lossy(&again.stdout).contains("unchanged"));
    let conflicting = run("succeeded", SECRET);
    assert!(!conflicting.status.success());
    assert!(String::from_utf8_lossy(&conflicting.stderr).contains("already finished"));
    assert_eq!(system.statuses(&order_id).await, [Created, Failed]);
}
