//! Credentials: where each secret a service holds comes from, and whether
//! the service may start with it.
//!
//! Every secret is given either as `NAME` or as `NAME_FILE`, a file holding
//! it (how container secrets are mounted; its trailing newline is trimmed),
//! never both; an empty `NAME` counts as unset, as compose passes one for a
//! variable nobody set ([`load`]). The public development values of
//! `contract::dev` are accepted only in development mode
//! (`PAYMENTS_PUSH_DEV=1` or `--dev`, [`DevMode`]), which also puts them in
//! place of any credential left unset ([`Credential::resolve`]). Without it,
//! a missing or public credential is a [`CredentialError`]: the service
//! refuses to start with one line saying what to set and how to make a value,
//! and exit code [`EXIT_REFUSED`] ([`exit_code`], each binary's `main`). In
//! development mode a service logs one banner naming the public credentials
//! in use ([`announce`]), and its pages carry a visible marker
//! ([`mark_page`]).
//!
//! A [`Secret`]'s `Debug` never shows it, so a configuration holding one can
//! be logged whole.

use std::{
    convert::Infallible,
    fmt,
    path::{Path, PathBuf},
    process::ExitCode,
    str::FromStr,
};

/// The environment variable that turns development mode on.
pub const DEV_VARIABLE: &str = "PAYMENTS_PUSH_DEV";

/// The exit code of a service that refuses its credentials: `EX_CONFIG` of
/// sysexits.h, "something was found in an unconfigured or misconfigured
/// state".
pub const EXIT_REFUSED: u8 = 78;

/// How a refusal tells a value to make for a secret that is only compared
/// (an HMAC secret, a token).
pub const MAKE_RANDOM: &str = "a secret of your own, e.g. from `openssl rand -hex 32`";

/// What development mode puts on a page: the first thing in its `<body>`.
/// Styled by the page's own stylesheet (`.dev-mode`).
pub const DEV_MODE_MARKER: &str = "<div class=\"dev-mode\" role=\"status\">Development mode: \
     this system accepts the public development credentials, which anyone can read in its \
     source. Never take real payments with it.</div>";

/// Development mode (`--dev`, `PAYMENTS_PUSH_DEV`): whether the public
/// development credentials are accepted. Flattened into each service's
/// configuration, so every service reads it the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct DevMode {
    /// Development mode: accept the public development credentials
    /// (proto/src/contract.rs), and use them for every credential left
    /// unset. For a laptop only: without it, a missing or public credential
    /// stops the service at startup. `PAYMENTS_PUSH_DEV` takes 1, true, yes, on (or 0,
    /// false, no, off, empty).
    #[arg(
        id = "dev",
        long = "dev",
        global = true,
        env = DEV_VARIABLE,
        action = clap::ArgAction::SetTrue,
        value_parser = parse_boolish,
    )]
    pub enabled: bool,
}

impl DevMode {
    /// Development mode on, as in-process tests run.
    pub const ON: Self = Self { enabled: true };
    /// Development mode off: every credential must be the service's own.
    pub const OFF: Self = Self { enabled: false };
}

/// `PAYMENTS_PUSH_DEV`'s values. Empty is off: compose passes an empty value
/// for a variable nobody set.
fn parse_boolish(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!(
            "`{other}` is neither on (1, true, yes, on) nor off (0, false, no, off, empty)"
        )),
    }
}

/// The value parser of every `NAME_FILE` setting: any path, and an empty one
/// (compose's unset variable) counts as unset in [`load`]. clap's own
/// `PathBuf` parser refuses an empty value.
pub fn file_setting(raw: &str) -> Result<PathBuf, Infallible> {
    Ok(PathBuf::from(raw))
}

/// A secret value. Its `Debug` never shows it and it has no `Display`: the
/// value is read with [`Secret::expose`], where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(value))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// Why a service refuses to start with its credentials. Each message is one
/// line that names the variable to set.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "{name} is not set: set it (or {name}_FILE) to {make}; or run with {DEV_VARIABLE}=1 \
         to use the public development credentials"
    )]
    Missing {
        name: &'static str,
        make: &'static str,
    },
    #[error(
        "{name} {what}: set it (or {name}_FILE) to {make}; or run with {DEV_VARIABLE}=1 to use \
         the public development credentials"
    )]
    Public {
        name: &'static str,
        /// What is public about it: "is a public development value".
        what: String,
        make: &'static str,
    },
    #[error("{name} and {name}_FILE are both set: keep one")]
    BothSet { name: &'static str },
    #[error("{name}_FILE names an empty file ({}): put {name}'s value in it, or set {name} instead", .path.display())]
    EmptyFile { name: &'static str, path: PathBuf },
    #[error("{name}_FILE: cannot read {}: {reason}", .path.display())]
    Unreadable {
        name: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The credential `name`, from its value (`NAME`) or its file (`NAME_FILE`):
/// `None` when neither is set (an empty value or path counts as unset). The
/// file's content is the value, without its trailing newline.
pub fn load(
    name: &'static str,
    value: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Option<Secret>, CredentialError> {
    let value = value.filter(|value| !value.is_blank());
    let file = file.filter(|path| !path.as_os_str().is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(CredentialError::BothSet { name }),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => read(name, path).map(Some),
        (None, None) => Ok(None),
    }
}

fn read(name: &'static str, path: &Path) -> Result<Secret, CredentialError> {
    let text = std::fs::read_to_string(path).map_err(|error| CredentialError::Unreadable {
        name,
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    let secret = Secret::new(text.trim_end_matches(['\n', '\r']));
    if secret.is_blank() {
        return Err(CredentialError::EmptyFile {
            name,
            path: path.to_owned(),
        });
    }
    Ok(secret)
}

/// A credential a service cannot start without: its variable, the public
/// development values, and how to make a value of one's own.
#[derive(Debug, Clone, Copy)]
pub struct Credential {
    /// The variable (`NAME`; `NAME_FILE` is the file).
    pub name: &'static str,
    /// The public development value development mode uses when it is unset.
    pub development: &'static str,
    /// Every public development value: none of them is accepted outside
    /// development mode, whichever credential it is given for.
    pub public: &'static [&'static str],
    /// How to make a value, completing "set it to …": [`MAKE_RANDOM`], or
    /// the `payment-core api-key` command of an API key.
    pub make: &'static str,
}

/// A credential the service may start with.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub name: &'static str,
    pub secret: Secret,
    /// Whether it is a public development value (development mode only).
    pub public: bool,
}

impl Credential {
    /// The credential from `NAME` or `NAME_FILE` ([`load`]). Unset, it is
    /// the public development value in development mode, and refused
    /// otherwise; a public development value is refused outside development
    /// mode.
    pub fn resolve(
        &self,
        dev: DevMode,
        value: Option<&Secret>,
        file: Option<&Path>,
    ) -> Result<Resolved, CredentialError> {
        let resolved = |secret, public| Resolved {
            name: self.name,
            secret,
            public,
        };
        match load(self.name, value, file)? {
            None if dev.enabled => Ok(resolved(Secret::new(self.development), true)),
            None => Err(self.missing()),
            Some(secret) if self.is_public(secret.expose()) => {
                if dev.enabled {
                    Ok(resolved(secret, true))
                } else {
                    Err(self.refused_as_public("is a public development value"))
                }
            }
            Some(secret) => Ok(resolved(secret, false)),
        }
    }

    /// Whether `value` is one of the public development values.
    pub fn is_public(&self, value: &str) -> bool {
        self.public.contains(&value)
    }

    /// The refusal of a service that has no value for this credential.
    pub fn missing(&self) -> CredentialError {
        CredentialError::Missing {
            name: self.name,
            make: self.make,
        }
    }

    /// The refusal of a public value: `what` completes "NAME …" ("is a
    /// public development value", "holds public development keys (…)").
    pub fn refused_as_public(&self, what: impl Into<String>) -> CredentialError {
        CredentialError::Public {
            name: self.name,
            what: what.into(),
            make: self.make,
        }
    }

    /// The refusal of a value that cannot be used (`reason`: why, in one line).
    pub fn invalid(&self, reason: impl Into<String>) -> CredentialError {
        CredentialError::Invalid {
            name: self.name,
            reason: reason.into(),
        }
    }
}

/// In development mode, logs the one banner that says so, naming the public
/// credentials in use (`public_in_use`, by variable); nothing otherwise.
pub fn announce(dev: DevMode, public_in_use: &[String]) {
    if !dev.enabled {
        return;
    }
    let public_credentials = if public_in_use.is_empty() {
        "none".to_owned()
    } else {
        public_in_use.join(", ")
    };
    tracing::warn!(
        %public_credentials,
        "DEVELOPMENT MODE ({DEV_VARIABLE}=1 or --dev): the public development credentials are \
         accepted, and anyone can read them in the source. Never take real payments like this: \
         without development mode every credential must be your own."
    );
}

/// `page` with [`DEV_MODE_MARKER`] right after its `<body…>` tag; `page`
/// unchanged when it has none (a test of each page shows the marker).
pub fn mark_page(page: &str) -> String {
    let Some(end) = body_tag_end(page) else {
        return page.to_owned();
    };
    let mut marked = String::with_capacity(page.len() + DEV_MODE_MARKER.len() + 1);
    marked.push_str(&page[..end]);
    marked.push('\n');
    marked.push_str(DEV_MODE_MARKER);
    marked.push_str(&page[end..]);
    marked
}

/// Where the first `<body>` or `<body …>` tag of `page` ends (after its `>`).
fn body_tag_end(page: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = page[from..].find("<body") {
        let start = from + found;
        let after = &page[start + "<body".len()..];
        if after.starts_with(|c: char| c == '>' || c.is_ascii_whitespace()) {
            return after
                .find('>')
                .map(|close| start + "<body".len() + close + 1);
        }
        from = start + "<body".len();
    }
    None
}

/// What a service's `main` returns for its outcome: success; a credential
/// refusal as its one line on stderr and [`EXIT_REFUSED`]; any other error
/// as anyhow reports it (`Error: …` and its causes) and exit code 1.
// A binary's last words, on stderr: no logger may be running yet.
#[allow(clippy::print_stderr)]
pub fn exit_code(outcome: anyhow::Result<()>) -> ExitCode {
    let Err(error) = outcome else {
        return ExitCode::SUCCESS;
    };
    if let Some(refusal) = error.downcast_ref::<CredentialError>() {
        eprintln!("{refusal}");
        ExitCode::from(EXIT_REFUSED)
    } else {
        eprintln!("Error: {error:?}");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const PUBLIC: &[&str] = &["public-secret", "public-key"];
    const SECRET: Credential = Credential {
        name: "TEST_SECRET",
        development: "public-secret",
        public: PUBLIC,
        make: MAKE_RANDOM,
    };

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        dev: DevMode,
    }

    fn dev_mode(args: &[&str]) -> Result<bool, clap::Error> {
        Cli::try_parse_from(std::iter::once("service").chain(args.iter().copied()))
            .map(|cli| cli.dev.enabled)
    }

    fn file_with(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("written");
        path
    }

    #[test]
    fn dev_mode_is_a_flag_or_a_boolish_value_and_off_by_default() {
        assert_eq!(dev_mode(&[]).ok(), Some(false));
        assert_eq!(dev_mode(&["--dev"]).ok(), Some(true));
        for on in ["1", "true", "yes", "on", "TRUE", " On "] {
            assert_eq!(parse_boolish(on), Ok(true), "{on}");
        }
        for off in ["", "0", "false", "no", "off", "Off"] {
            assert_eq!(parse_boolish(off), Ok(false), "{off:?}");
        }
        assert!(parse_boolish("2").is_err());
        assert!(parse_boolish("dev").is_err());
    }

    #[test]
    fn a_value_or_a_file_and_empty_counts_as_unset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let given = Secret::new("s3cret");
        let load = |value, file| load("TEST_SECRET", value, file);
        assert_eq!(load(Some(&given), None).expect("ok"), Some(given.clone()));
        assert_eq!(load(None, None).expect("ok"), None);
        let blank = Secret::new(" ");
        assert_eq!(load(Some(&blank), Some(Path::new(""))).expect("ok"), None);

        let file = file_with(&dir, "secret", "from-a-file\n");
        assert_eq!(
            load(None, Some(&file)).expect("ok"),
            Some(Secret::new("from-a-file")),
            "the trailing newline is trimmed"
        );
        let crlf = file_with(&dir, "crlf", "line-one\nline-two\r\n");
        assert_eq!(
            load(None, Some(&crlf)).expect("ok"),
            Some(Secret::new("line-one\nline-two")),
            "only the trailing newline goes"
        );
        // Blank is unset for the value, which then does not conflict.
        assert!(load(Some(&blank), Some(&file)).expect("ok").is_some());
    }

    #[test]
    fn both_sources_an_empty_file_and_an_unreadable_one_are_refused_naming_both_variables() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = file_with(&dir, "secret", "x");
        let both = load("TEST_SECRET", Some(&Secret::new("y")), Some(&file))
            .expect_err("two sources")
            .to_string();
        assert_eq!(
            both,
            "TEST_SECRET and TEST_SECRET_FILE are both set: keep one"
        );

        let empty = file_with(&dir, "empty", "\n");
        let refused = load("TEST_SECRET", None, Some(&empty)).expect_err("empty file");
        let message = refused.to_string();
        assert!(matches!(refused, CredentialError::EmptyFile { .. }));
        assert!(
            message.contains("TEST_SECRET_FILE") && message.contains("set TEST_SECRET"),
            "{message}"
        );

        let missing = dir.path().join("missing");
        let refused = load("TEST_SECRET", None, Some(&missing)).expect_err("no such file");
        assert!(matches!(refused, CredentialError::Unreadable { .. }));
        assert!(
            refused
                .to_string()
                .starts_with("TEST_SECRET_FILE: cannot read")
        );
    }

    #[test]
    fn development_mode_alone_accepts_public_values_and_fills_in_unset_ones() {
        let own = Secret::new("mine");
        let public = Secret::new("public-key");

        let filled = SECRET.resolve(DevMode::ON, None, None).expect("dev mode");
        assert_eq!(filled.secret.expose(), "public-secret");
        assert!(filled.public);
        let kept = SECRET
            .resolve(DevMode::ON, Some(&public), None)
            .expect("dev mode");
        assert!(kept.public, "a public value is public in any credential");
        let own_in_dev = SECRET.resolve(DevMode::ON, Some(&own), None).expect("own");
        assert!(!own_in_dev.public);

        let missing = SECRET.resolve(DevMode::OFF, None, None).expect_err("unset");
        assert!(matches!(missing, CredentialError::Missing { .. }));
        let refused = SECRET
            .resolve(DevMode::OFF, Some(&public), None)
            .expect_err("public");
        assert!(matches!(refused, CredentialError::Public { .. }));
        let accepted = SECRET.resolve(DevMode::OFF, Some(&own), None).expect("own");
        assert_eq!(accepted.secret.expose(), "mine");
        assert!(!accepted.public);
    }

    #[test]
    fn a_refusal_is_one_line_naming_the_variable_how_to_make_a_value_and_dev_mode() {
        let missing = SECRET.missing().to_string();
        assert_eq!(
            missing,
            "TEST_SECRET is not set: set it (or TEST_SECRET_FILE) to a secret of your own, e.g. \
             from `openssl rand -hex 32`; or run with PAYMENTS_PUSH_DEV=1 to use the public \
             development credentials"
        );
        let public = SECRET
            .refused_as_public("is a public development value")
            .to_string();
        assert!(public.starts_with("TEST_SECRET is a public development value: set it"));
        for message in [missing, public, SECRET.invalid("bad").to_string()] {
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let resolved = SECRET
            .resolve(DevMode::OFF, Some(&Secret::new("hunter2")), None)
            .expect("own");
        let shown = format!("{resolved:?} {:?}", Some(Secret::new("hunter2")));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn the_marker_goes_right_after_the_body_tag() {
        let page = "<!doctype html><html><head><title>body</title></head>\
                    <body class=\"x\">\n<main>hi</main></body></html>";
        let marked = mark_page(page);
        let (before, after) = marked.split_once(DEV_MODE_MARKER).expect("marked");
        assert!(before.ends_with("<body class=\"x\">\n"), "{marked}");
        assert!(after.starts_with("\n<main>"), "{marked}");
        assert_eq!(
            mark_page("<body>x</body>"),
            format!("<body>\n{DEV_MODE_MARKER}x</body>")
        );
        assert_eq!(
            mark_page("<bodyx>no body tag</bodyx>"),
            "<bodyx>no body tag</bodyx>"
        );
    }

    #[test]
    fn a_refusal_exits_78_and_other_errors_1() {
        let refused = anyhow::Error::from(SECRET.missing()).context("starting");
        assert_eq!(exit_code(Err(refused)), ExitCode::from(EXIT_REFUSED));
        assert_eq!(exit_code(Err(anyhow::anyhow!("other"))), ExitCode::FAILURE);
        assert_eq!(exit_code(Ok(())), ExitCode::SUCCESS);
    }
}
