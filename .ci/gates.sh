#!/usr/bin/env bash
# The static gate: formatting, clippy with warnings as errors, the dependency
# policy (deny.toml) and unused dependencies. Fails on the first finding, so
# nothing lands that a reviewer would have to point out by hand.
#
# Needs cargo-deny and cargo-machete (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check

echo "== cargo clippy --workspace --all-targets -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

# The fuzz targets are a workspace of their own (fuzz/Cargo.toml), built
# later by cargo-fuzz, which would quietly rewrite a stale lock file.
echo "== fuzz/Cargo.lock is current" >&2
cargo metadata --manifest-path fuzz/Cargo.toml --locked --format-version 1 >/dev/null

echo "== cargo deny: bans, licences, sources (offline; advisories: see deny.toml)" >&2
# cargo-deny reads every package's manifest, those of other platforms'
# dependencies too (windows, redox, apple), which a build on this one never
# downloads: fetch them all first (from the registry, as the build does).
cargo fetch --locked
cargo deny --offline --locked check bans licenses sources

echo "== cargo machete: dependencies no crate uses" >&2
cargo machete

# cargo-machete reads each crate's own manifest; a workspace-level entry
# that no member inherits any more is ours to find.
echo "== workspace dependencies no member inherits" >&2
python3 - <<'PY'
import pathlib, re, sys, tomllib

root = tomllib.loads(pathlib.Path("Cargo.toml").read_text())
declared = set(root["workspace"]["dependencies"])
inherited = set()
for member in root["workspace"]["members"]:
    manifest = tomllib.loads(pathlib.Path(member, "Cargo.toml").read_text())
    for table in ("dependencies", "dev-dependencies", "build-dependencies"):
        for name, spec in manifest.get(table, {}).items():
            if isinstance(spec, dict) and spec.get("workspace"):
                inherited.add(name)
unused = sorted(declared - inherited)
if unused:
    sys.exit(f"[workspace.dependencies] declares what no member uses: {', '.join(unused)}")
PY
