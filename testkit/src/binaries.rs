//! The workspace's binaries, built from the sources under test before a test
//! starts one.
//!
//! A test that runs `payment-core` as a process must run the payment-core of
//! the sources it is testing. Picking up whatever `target/<profile>/` holds
//! would run an old build after a source change (`cargo test -p sse-gateway`
//! builds no payment-core), or fail obscurely when there is none. So the
//! first call to [`binary_path`] in a test run has cargo build what the whole
//! workspace's tests build (`cargo test --workspace --no-run`, same profile
//! and target directory): cargo decides what is stale, and a no-op costs
//! about a second. The same command as the one the README's test command
//! (nextest) runs means the same feature resolution, so the two never undo
//! each other's builds. Each binary's path is the one cargo reports for it
//! (`--message-format json`), never one guessed from the test's own path, so
//! a `--target` or a `build-dir` elsewhere cannot lead to an older file.
//!
//! Once per run: once per test process under `cargo test` (a `OnceLock`),
//! and once per `cargo nextest run` across its test processes, by a stamp
//! file named after `NEXTEST_RUN_ID` under the target directory, written
//! under an exclusive file lock that the other processes wait on. The stamp
//! holds the build's outcome, the binaries' paths or cargo's error, so a
//! failed build fails every later test at once instead of being run again.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// What one build made: each binary's path by name, or cargo's error.
type Built = Result<BTreeMap<String, PathBuf>, String>;

/// The path of the workspace binary `name`, built from the current sources.
/// Panics, with cargo's own message, when the build fails.
pub fn binary_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<Built> = OnceLock::new();
    let built = BUILT.get_or_init(|| Layout::of_this_test().build_once_per_run());
    match built {
        Ok(binaries) => binaries.get(name).cloned().unwrap_or_else(|| {
            panic!(
                "{name} is not a binary the workspace's tests build (they build: {})",
                binaries.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        }),
        Err(error) => panic!("building the workspace's binaries for {name} failed:\n{error}"),
    }
}

/// Where this test executable was built: `<target>/<profile>/deps/<test>`.
struct Layout {
    target_dir: PathBuf,
    /// The profile's directory name (`debug`, `release`, …).
    profile_dir_name: String,
    /// How to ask `cargo test` for the profile that built this test: nothing
    /// for `debug/` (the test profile, which is what a plain `cargo test`
    /// uses: naming `dev` would be another profile and rebuild everything),
    /// `--release`, or `--profile <name>`.
    profile_args: Vec<String>,
}

impl Layout {
    fn of_this_test() -> Self {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from <target>/<profile>/deps");
        let target_dir = profile_dir
            .parent()
            .expect("<target>/<profile>")
            .to_path_buf();
        let profile_dir_name = profile_dir
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a profile directory name")
            .to_owned();
        let profile_args = match profile_dir_name.as_str() {
            "debug" => vec![],
            "release" => vec!["--release".to_owned()],
            other => vec!["--profile".to_owned(), other.to_owned()],
        };
        Self {
            target_dir,
            profile_dir_name,
            profile_args,
        }
    }

    fn build_once_per_run(&self) -> Built {
        let Ok(run) = std::env::var("NEXTEST_RUN_ID") else {
            return self.build();
        };
        let stamps = self.target_dir.join("testkit-builds");
        fs::create_dir_all(&stamps).map_err(|e| format!("{}: {e}", stamps.display()))?;
        let lock_path = stamps.join("lock");
        let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        // Held until `lock` drops: the other processes of this run wait here
        // while the first one builds, then read its stamp.
        lock.lock()
            .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
        let stamp = stamps.join(format!("{}-{run}.json", self.profile_dir_name));
        if let Ok(text) = fs::read_to_string(&stamp) {
            return serde_json::from_str::<Built>(&text)
                .map_err(|e| format!("{}: {e}", stamp.display()))?;
        }
        let built = self.build();
        let text = serde_json::to_string(&built).map_err(|e| e.to_string())?;
        fs::write(&stamp, text).map_err(|e| format!("{}: {e}", stamp.display()))?;
        built
    }

    fn build(&self) -> Built {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("testkit lives in the workspace");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // Seen only when a test fails or output is not captured: why the
        // first test of a cold run takes minutes.
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "testkit: building the workspace's tests and binaries from the sources under test"
            );
        }
        let mut command = Command::new(&cargo);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(set_for_this_test) {
                command.env_remove(&name);
            }
        }
        let output = command
            .current_dir(workspace)
            .args(["test", "--workspace", "--no-run", "--quiet"])
            .args(["--message-format", "json-render-diagnostics"])
            .args(&self.profile_args)
            .arg("--target-dir")
            .arg(&self.target_dir)
            .output()
            .map_err(|e| format!("running {}: {e}", Path::new(&cargo).display()))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(binaries_reported(&String::from_utf8_lossy(&output.stdout)))
    }
}

/// Whether `name` is a variable cargo or nextest set for this test process
/// rather than one the developer's shell has. The inner build must not see
/// them: build scripts watch some of them (ring's reruns when
/// `CARGO_MANIFEST_DIR` or `CARGO_PKG_NAME` changes), and cargo compares
/// what they watch with its own environment, so a build from inside a test
/// and one from the shell would each undo the other's.
fn set_for_this_test(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
        "NEXTEST",
    ];
    const PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_EXE_", "NEXTEST_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// The binaries in cargo's JSON messages: each `compiler-artifact` of a
/// `bin` target with an executable (fresh ones are reported too).
fn binaries_reported(messages: &str) -> BTreeMap<String, PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
                && message["profile"]["test"] == false
        })
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_owned();
            let executable = message["executable"].as_str()?;
            Some((name, PathBuf::from(executable)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_is_found_in_cargos_messages_and_its_test_harness_is_not() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"payment-core"},"profile":{"test":false},"executable":"/t/debug/payment-core","fresh":true}"#,
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"payment-core"},"profile":{"test":true},"executable":"/t/debug/deps/payment_core-1a2b"}"#,
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"payment_core"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        let binaries = binaries_reported(&messages);
        assert_eq!(
            binaries,
            BTreeMap::from([(
                "payment-core".to_owned(),
                PathBuf::from("/t/debug/payment-core")
            )])
        );
    }
}
