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
//! each other's builds.
//!
//! Once per run: once per test process under `cargo test` (a `OnceLock`),
//! and once per `cargo nextest run` across its test processes, by a stamp
//! file named after `NEXTEST_RUN_ID` under the target directory, written
//! under an exclusive file lock that the other processes wait on.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The path of the workspace binary `name`, built from the current sources.
/// Panics, with cargo's own message, when the build fails.
pub fn binary_path(name: &str) -> PathBuf {
    let layout = Layout::of_this_test();
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(error) = BUILT.get_or_init(|| layout.build_once_per_run()) {
        panic!("building the workspace's binaries for {name} failed:\n{error}");
    }
    let path = layout.profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not a binary of this workspace (no {} after a build)",
        name,
        path.display()
    );
    path
}

/// Where this test executable was built: `<target>/<profile>/deps/<test>`.
struct Layout {
    target_dir: PathBuf,
    profile_dir: PathBuf,
    /// How to ask `cargo test` for the profile that builds into
    /// `profile_dir`: nothing for `debug/` (the test profile, which is what
    /// a plain `cargo test` uses: naming `dev` would be another profile and
    /// rebuild everything), `--release`, or `--profile <name>`.
    profile_args: Vec<String>,
}

impl Layout {
    fn of_this_test() -> Self {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from <target>/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir
            .parent()
            .expect("<target>/<profile>")
            .to_path_buf();
        let dir_name = profile_dir
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a profile directory name");
        let profile_args = match dir_name {
            "debug" => vec![],
            "release" => vec!["--release".to_owned()],
            other => vec!["--profile".to_owned(), other.to_owned()],
        };
        Self {
            target_dir,
            profile_dir,
            profile_args,
        }
    }

    fn build_once_per_run(&self) -> Result<(), String> {
        let Ok(run) = std::env::var("NEXTEST_RUN_ID") else {
            return self.build();
        };
        let stamps = self.target_dir.join("testkit-builds");
        fs::create_dir_all(&stamps).map_err(|e| format!("{}: {e}", stamps.display()))?;
        let lock_path = stamps.join("lock");
        let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        // Held until `lock` drops: the other processes of this run wait here
        // while the first one builds, then find its stamp.
        lock.lock()
            .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
        let profile = self.profile_dir.file_name().unwrap_or_default();
        let stamp = stamps.join(format!("{}-{run}", profile.to_string_lossy()));
        if stamp.exists() {
            return Ok(());
        }
        self.build()?;
        fs::write(&stamp, b"").map_err(|e| format!("{}: {e}", stamp.display()))
    }

    fn build(&self) -> Result<(), String> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("testkit lives in the workspace");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(&cargo)
            .current_dir(workspace)
            .args(["test", "--workspace", "--no-run", "--quiet"])
            .args(&self.profile_args)
            .arg("--target-dir")
            .arg(&self.target_dir)
            .output()
            .map_err(|e| format!("running {}: {e}", Path::new(&cargo).display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}
