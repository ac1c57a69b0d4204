//! `mock-provider report`: one signed result from the command line.

use std::process::{Command, Output};

use payments_proto::payments::v1::OrderStatus::{Created, Failed};
use testkit::PROVIDER_SECRET;

use crate::helpers::spawn_system;

#[tokio::test]
async fn the_report_command_sends_a_signed_result_for_scripts() {
    let system = spawn_system(&[]);
    let order_id = system.create_order(100, "EUR", "").await;
    let run = |outcome: &str, secret: &str| -> Output {
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
            .env("PAYMENT_CORE_URL", format!("http://{}", system.core_addr))
            .env("PROVIDER_SECRET", secret)
            // The provider's public development key.
            .env("PAYMENTS_PUSH_DEV", "1")
            .output()
            .expect("the command runs")
    };
    let forged = run("failed", "wrong");
    assert!(!forged.status.success());
    assert!(String::from_utf8_lossy(&forged.stderr).contains("PROVIDER_SECRET"));
    let output = run("failed", PROVIDER_SECRET);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("order {order_id} is ORDER_STATUS_FAILED")
    );
    let again = run("failed", PROVIDER_SECRET);
    assert!(String::from_utf8_lossy(&again.stdout).contains("unchanged"));
    let conflicting = run("succeeded", PROVIDER_SECRET);
    assert!(!conflicting.status.success());
    assert!(String::from_utf8_lossy(&conflicting.stderr).contains("already finished"));
    let events = system.events(&order_id).await;
    let statuses: Vec<_> = events.iter().map(|event| event.status()).collect();
    assert_eq!(statuses, [Created, Failed]);
    assert_eq!(events[1].reason, "card declined");
}
