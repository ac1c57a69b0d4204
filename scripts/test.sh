#!/usr/bin/env bash
# Runs every test of the project, and at the end prints how long each stage
# took:
#   - the static gate (.ci/gates.sh: fmt, clippy -D warnings, cargo deny,
#     cargo machete);
#   - the Rust tests under cargo-nextest (unit, integration, the real
#     binaries, grpcurl, headless Chromium, PostgreSQL);
#   - the fuzz targets, 60 s each from the committed corpus;
#   - the benchmark smoke run (lost = 0, duplicated = 0);
#   - schemathesis against a live gateway;
#   - the Docker end-to-end check and the fault drill (when a Docker engine
#     is reachable; required under CI=true).
# What they need is listed in the README; .ci/run installs it on a fresh
# machine. The cargo tools the stages use (cargo-deny, cargo-machete,
# cargo-fuzz) are installed here when missing.
#
# Stages that mostly wait (the Docker stack, the fuzzers) run beside the
# others; each of those writes to its own log, printed when it fails.
# Everything uses one build: the binaries the tests build (debug) are the
# ones the benchmark smoke, schemathesis and the Docker images run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN_DIR=$TARGET_DIR/debug
LOGS=$(mktemp -d /tmp/test-stages.XXXXXX)
T0=$(date +%s)

# ----------------------------------------------------------------- stages ---
STAGES=()
declare -A SECS=() RESULT=() PIDS=()

summary() {
  printf '\n== stage durations, wall clock (& = ran beside the others)\n' >&2
  for name in "${STAGES[@]}"; do
    printf '   %-34s %5ss  %s\n' "$name" "${SECS[$name]:--}" "${RESULT[$name]:-not finished}" >&2
  done
  printf '   %-34s %5ss\n' total "$(($(date +%s) - T0))" >&2
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  summary
}
trap cleanup EXIT

# stage NAME COMMAND...: runs COMMAND in the foreground; stops the run on failure.
stage() {
  local name=$1 start rc=0
  shift
  STAGES+=("$name")
  echo "== $name" >&2
  start=$(date +%s)
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  SECS[$name]=$(($(date +%s) - start))
  if [ "$rc" -ne 0 ]; then
    RESULT[$name]="FAILED (exit $rc)"
    exit "$rc"
  fi
  RESULT[$name]=ok
}

# The log file of stage NAME.
log_of() { echo "$LOGS/$(echo "$1" | tr -c 'a-z0-9\n' '-').log"; }

# start_stage NAME COMMAND...: runs COMMAND in the background (its own
# process group, so that a failing run can stop all of it), output to its log.
start_stage() {
  local name=$1 log
  shift
  log=$(log_of "$name")
  STAGES+=("$name &")
  echo "== $name (in the background; log: $log)" >&2
  set -m
  (
    start=$(date +%s)
    set +e
    (set -e; "$@")
    rc=$?
    echo "$(($(date +%s) - start)) $rc" >"$log.done"
    exit "$rc"
  ) >"$log" 2>&1 &
  PIDS[$name]=$!
  set +m
}

# finish_stage NAME: waits for a background stage; on failure prints its log
# and stops the run.
finish_stage() {
  local name=$1 log secs rc
  log=$(log_of "$name")
  wait "${PIDS[$name]}" || true
  unset "PIDS[$name]"
  read -r secs rc <"$log.done" 2>/dev/null || { secs=-; rc=1; }
  SECS["$name &"]=$secs
  if [ "$rc" -ne 0 ]; then
    RESULT["$name &"]="FAILED (exit $rc)"
    echo "!! $name failed; the end of its log:" >&2
    tail -n 200 "$log" >&2
    exit "$rc"
  fi
  RESULT["$name &"]=ok
  echo "== $name: ok ($secs s)" >&2
}

# ------------------------------------------------------------ what it runs ---
docker_reachable() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
if docker_reachable; then
  DOCKER=1
elif [ "${CI:-}" = true ]; then
  echo "CI=true but no Docker engine is reachable: the compose check cannot run" >&2
  exit 1
else
  DOCKER=0
  echo "!! Docker engine not reachable: the docker compose check and the drill are skipped" >&2
fi

# The cargo tools, at the versions this project is checked with. Built
# without optimization: they run for seconds, and build in half the time.
install_tools() {
  local tool
  for tool in cargo-deny@0.20.2 cargo-machete@0.9.2 cargo-fuzz@0.13.2; do
    if ! cargo "${tool%@*}" --version 2>/dev/null | grep -q "${tool#*@}"; then
      nice -n 10 cargo install --locked --debug --quiet "$tool"
    fi
  done
}

# The Docker images from the binaries the tests built, then the end-to-end
# check and, on its replicated stack, the fault drill (DRILL=1).
docker_stage() {
  mkdir -p docker/prebuilt
  for bin in payment-core sse-gateway mock-provider; do
    install -m 0755 "$BIN_DIR/$bin" "docker/prebuilt/$bin"
  done
  SKIP_CARGO_BUILD=1 DRILL=1 LOADGEN="$BIN_DIR/loadgen" .ci/docker-test.sh
}

stage "format" cargo fmt --all -- --check
start_stage "cargo tools" install_tools
if [ "$DOCKER" = 1 ]; then
  start_stage "docker base images" timeout 900 .ci/base-images.sh
fi
stage "build (tests and binaries)" cargo test --workspace --no-run --locked
if [ "$DOCKER" = 1 ]; then
  finish_stage "docker base images"
  start_stage "docker end to end + drill" docker_stage
fi
stage "tests (cargo nextest)" cargo nextest run --workspace --locked
finish_stage "cargo tools"
stage "static gate" .ci/gates.sh
start_stage "fuzz" .ci/fuzz.sh
stage "benchmark smoke" env BIN_DIR="$BIN_DIR" bench/smoke.sh
stage "schemathesis" env BIN_DIR="$BIN_DIR" .ci/schemathesis.sh
finish_stage "fuzz"
if [ "$DOCKER" = 1 ]; then
  finish_stage "docker end to end + drill"
fi
echo "== every stage passed" >&2
