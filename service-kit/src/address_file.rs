//! The addresses a service bound, written to a file for whoever started it.
//!
//! A service told to listen on port 0 gets a free port from the kernel, and
//! only the service knows which. With `ADDRESS_FILE` set, it writes every
//! address it bound there once all its listeners are bound, as one JSON
//! object from a name to an address: `{"grpc":"127.0.0.1:41234",
//! "metrics":"127.0.0.1:40001"}`. Supervisors and tests read it instead of
//! choosing a port beforehand, which another process could take between
//! the choice and the bind.
//!
//! Invariant: a reader never sees part of a file. The file is written under
//! a temporary name in the same directory and renamed into place (a rename
//! within one file system replaces the name at once), so the file is either
//! absent, the previous run's whole file, or this run's whole file.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context;

/// Writes `addresses` (each name once) to `path` as a JSON object, replacing
/// the file at once; does nothing without a path.
pub fn write(path: Option<&Path>, addresses: &[(&str, SocketAddr)]) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let mut object = BTreeMap::new();
    for &(name, address) in addresses {
        anyhow::ensure!(
            object.insert(name, address).is_none(),
            "address `{name}` given twice"
        );
    }
    let json = serde_json::to_vec(&object).context("encoding the bound addresses")?;
    let temporary = temporary_path(path)?;
    std::fs::write(&temporary, json)
        .and_then(|()| std::fs::rename(&temporary, path))
        .inspect_err(|_| {
            // The name readers look at is untouched; only the temporary
            // file may be left, and it is ours to remove.
            let _ = std::fs::remove_file(&temporary);
        })
        .with_context(|| format!("writing the bound addresses to {}", path.display()))
}

/// The addresses a service wrote to `path`, by name.
pub fn read(path: &Path) -> anyhow::Result<BTreeMap<String, SocketAddr>> {
    let json = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&json)
        .with_context(|| format!("{} is not a JSON object of addresses", path.display()))
}

/// A name beside `path`, in the same directory (so the rename stays within
/// one file system), that no other process writes: it holds our pid.
fn temporary_path(path: &Path) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("ADDRESS_FILE `{}` names no file", path.display()))?;
    let mut temporary = std::ffi::OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".{}.tmp", std::process::id()));
    Ok(path.with_file_name(temporary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn the_addresses_are_written_as_one_json_object_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("addresses.json");
        std::fs::write(&path, "the previous run's file").expect("written");
        let addresses = [
            ("grpc", addr("127.0.0.1:41234")),
            ("metrics", addr("[::1]:40001")),
        ];
        write(Some(&path), &addresses).expect("written");

        assert_eq!(
            std::fs::read_to_string(&path).expect("readable"),
            r#"{"grpc":"127.0.0.1:41234","metrics":"[::1]:40001"}"#
        );
        let read_back = read(&path).expect("read");
        assert_eq!(read_back["grpc"], addresses[0].1);
        assert_eq!(read_back["metrics"], addresses[1].1);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("listable")
            .map(|entry| entry.expect("an entry").file_name())
            .collect();
        assert_eq!(left, ["addresses.json"], "no temporary file is left");
    }

    #[test]
    fn no_path_writes_nothing_and_a_failed_write_names_the_file() {
        write(None, &[("http", addr("127.0.0.1:1"))]).expect("nothing to do");
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("no-such-dir").join("addresses.json");
        let error = write(Some(&missing), &[("http", addr("127.0.0.1:1"))])
            .expect_err("no directory to write in");
        assert!(format!("{error:#}").contains("no-such-dir"), "{error:#}");
        let twice = [("http", addr("127.0.0.1:1")), ("http", addr("127.0.0.1:2"))];
        assert!(write(Some(&dir.path().join("a.json")), &twice).is_err());
    }
}
