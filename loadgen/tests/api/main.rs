//! loadgen's integration test, one binary: the built `loadgen run` against
//! a real payment-core and sse-gateway on loopback, as `bench/run.sh` and
//! the fault drill run it, with a small number of payments. It checks the
//! tool's own verdict (exit status, and the JSON summary the benchmark
//! scripts read): every payment's final event arrived exactly once.

// A panic in a test is a failing test: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use testkit::{PROVIDER_SECRET, Process, start_payment_core};

#[test]
fn a_small_run_delivers_every_result_exactly_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let core = start_payment_core(&dir.path().join("core.db"), PROVIDER_SECRET);
    let core_url = format!("http://{}", core.addr);
    let gateway = Process::start(
        "sse-gateway",
        &[
            ("PAYMENT_CORE_URL", core_url.clone()),
            ("ADMIN_TOKEN", "loadgen-test-admin".to_owned()),
        ],
    );
    let summary_path = dir.path().join("summary.json");

    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--target", "gateway", "-n", "20", "--rate", "50"])
        .args(["--url", &format!("http://{}", gateway.addr)])
        .args(["--core-url", &core_url, "--report-url", &core_url])
        .args(["--provider-secret", PROVIDER_SECRET, "--timeout", "60"])
        .args(["--label", "loadgen-test", "--json"])
        .arg(&summary_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadgen failed: {stderr}");

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    for (field, expected) in [("lost", 0), ("duplicated", 0), ("wrong_result", 0)] {
        assert_eq!(summary[field], expected, "{field} in {summary:#}");
    }
    assert_eq!(summary["connected"], 20, "{summary:#}");
}
