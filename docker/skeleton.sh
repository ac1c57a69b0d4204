#!/bin/sh
# Used by docker/Dockerfile (planner stage): copy a Cargo workspace reduced to
# what decides its dependency graph (Cargo.toml files, Cargo.lock, cargo and
# toolchain config) plus a stub for every .rs file, so that
# `cargo build --release --locked` on the result compiles all dependencies
# and nothing of the project. The output is byte-identical as long as no
# manifest changes, so Docker's layer cache keeps the dependency build.
#
# usage: skeleton.sh SRC_DIR OUT_DIR
set -eu
src=${1:?source dir}
out=${2:?output dir}
mkdir -p "$out"
cd "$src"

copy() { mkdir -p "$out/$(dirname "$1")"; cp "$1" "$out/$1"; }

for f in Cargo.lock rust-toolchain rust-toolchain.toml .cargo/config.toml .cargo/config; do
  [ -f "$f" ] && copy "$f"
done

# Every package manifest outside build output and VCS/docker directories.
find . \( -path ./target -o -path '*/target' -o -path ./.git -o -path ./docker -o -path ./.ci \) -prune \
     -o -name Cargo.toml -type f -print | sort | while read -r manifest; do
  copy "$manifest"
  dir=$(dirname "$manifest")
  # Stub every Rust file of this package (not of nested packages, which get
  # their own pass; a stub written twice is the same stub).
  find "$dir" \( -path "$dir/target" -o -path ./.git -o -path ./docker -o -path ./.ci \) -prune \
       -o -name '*.rs' -type f -print | while read -r rs; do
    mkdir -p "$out/$(dirname "$rs")"
    case "$rs" in
      */build.rs|*/main.rs|*/src/bin/*|*/tests/*|*/benches/*|*/examples/*)
        printf '//! dependency-cache stub\nfn main() {}\n' >"$out/$rs" ;;
      *)
        printf '//! dependency-cache stub\n' >"$out/$rs" ;;
    esac
  done
done
# Same timestamps every time, so the COPY of this tree is cache-stable.
find "$out" -exec touch -h -d '2000-01-01T00:00:00Z' {} +
