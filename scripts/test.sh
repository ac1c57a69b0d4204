#!/usr/bin/env bash
# Runs every test of the project, and at the end prints how long each stage
# took:
#   - the format check, first, since it takes a second;
#   - the Rust tests under cargo-nextest (unit, integration, the real
#     binaries, grpcurl, headless Chromium, PostgreSQL);
#   - the static gate (.ci/gates.sh: fmt, clippy -D warnings, cargo deny,
#     cargo machete), once its tools are built;
#   - the fuzz targets, 60 s each from the committed corpus;
#   - the benchmark smoke run (lost = 0, duplicated = 0);
#   - schemathesis against a live gateway;
#   - the Helm chart (.ci/helm.sh: rendered, linted, validated against
#     Kubernetes schemas, policy tests, checkov; seconds, no cluster);
#   - the Docker end-to-end check and the fault drill (when a Docker engine
#     is reachable; required under CI=true).
# What they need is listed in the README; .ci/run installs it on a fresh
# machine. The cargo tools the stages use (cargo-deny, cargo-machete,
# cargo-fuzz) are installed here when missing.
#
# The Docker stage (which mostly waits on containers), the tools' build and
# the fuzzers run beside the others; each writes to its own log, printed
# when it fails, and a failure stops the run at the next stage boundary.
# Everything uses one build: the binaries the tests build (debug) are the
# ones the benchmark smoke, schemathesis and the Docker images run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Where cargo builds, as cargo itself says (CARGO_TARGET_DIR, a config's
# build.target-dir or ./target).
TARGET_DIR=$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN_DIR=$TARGET_DIR/debug
LOGS=$(mktemp -d /tmp/test-stages.XXXXXX)
T0=$(date +%s)

# ----------------------------------------------------------------- stages ---
STAGES=()
declare -A SECS=() RESULT=() PIDS=()

# The log file of stage NAME.
log_of() { echo "$LOGS/$(echo "$1" | tr -c 'a-z0-9\n' '-').log"; }

# record_background NAME: notes a background stage's duration and result
# from what it wrote when it ended; false while it still runs.
record_background() {
  local secs rc done
  done="$(log_of "$1").done"
  [ -f "$done" ] || return 1
  read -r secs rc <"$done"
  SECS["$1 &"]=$secs
  if [ "$rc" -eq 0 ]; then RESULT["$1 &"]=ok; else RESULT["$1 &"]="FAILED (exit $rc)"; fi
}

summary() {
  local name
  for name in "${!PIDS[@]}"; do record_background "$name" || true; done
  printf '\n== stage durations, wall clock (& = ran beside the others)\n' >&2
  for name in "${STAGES[@]}"; do
    printf '   %-34s %5ss  %s\n' "$name" "${SECS[$name]:--}" "${RESULT[$name]:-not finished}" >&2
  done
  printf '   %-34s %5ss\n' total "$(($(date +%s) - T0))" >&2
}

# descendants PID: every process below PID. `timeout` moves what it runs
# into a process group of its own, so a stage is stopped by its tree, not
# by its group.
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

any_alive() {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}

# Stops the background stages still running: TERM to each whole tree, then
# up to 120 s for their scripts' own traps (docker-test takes its compose
# stacks down), then KILL to what is left.
cleanup() {
  local name pid tree=()
  for name in "${!PIDS[@]}"; do
    pid=${PIDS[$name]}
    tree+=("$pid" $(descendants "$pid"))
  done
  if [ ${#tree[@]} -gt 0 ]; then
    kill -TERM "${tree[@]}" 2>/dev/null || true
    for _ in $(seq 1 120); do
      any_alive "${PIDS[@]}" || break
      sleep 1
    done
    for name in "${!PIDS[@]}"; do
      pid=${PIDS[$name]}
      kill -KILL "$pid" $(descendants "$pid") 2>/dev/null || true
      record_background "$name" || RESULT["$name &"]="stopped: the run failed"
    done
  fi
  summary
}
trap cleanup EXIT

# check_background: stops the run as soon as a background stage has failed,
# rather than at its finish_stage.
check_background() {
  local name
  for name in "${!PIDS[@]}"; do
    if record_background "$name" && [ "${RESULT["$name &"]}" != ok ]; then
      finish_stage "$name"
    fi
  done
}

# stage NAME COMMAND...: runs COMMAND in the foreground; stops the run on
# failure, its own or a background stage's.
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
  check_background
}

# start_stage NAME COMMAND...: runs COMMAND in the background, with no
# terminal input, its output to its log.
start_stage() {
  local name=$1 log
  shift
  log=$(log_of "$name")
  STAGES+=("$name &")
  echo "== $name (in the background; log: $log)" >&2
  (
    start=$(date +%s)
    set +e
    (set -e; "$@")
    rc=$?
    echo "$(($(date +%s) - start)) $rc" >"$log.done"
    exit "$rc"
  ) </dev/null >"$log" 2>&1 &
  PIDS[$name]=$!
}

# finish_stage NAME: waits for a background stage; on failure prints the end
# of its log and stops the run.
finish_stage() {
  local name=$1 log
  log=$(log_of "$name")
  wait "${PIDS[$name]}" || true
  unset "PIDS[$name]"
  record_background "$name" || { SECS["$name &"]=-; RESULT["$name &"]="FAILED (no result)"; }
  if [ "${RESULT["$name &"]}" != ok ]; then
    echo "!! $name failed; the end of its log ($log):" >&2
    tail -n 200 "$log" >&2
    exit 1
  fi
  echo "== $name: ok (${SECS["$name &"]} s)" >&2
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
  [ -x "$BIN_DIR/loadgen" ] || { echo "no $BIN_DIR/loadgen: the test build makes it" >&2; return 1; }
  mkdir -p docker/prebuilt
  for bin in payment-core sse-gateway mock-provider; do
    install -m 0755 "$BIN_DIR/$bin" "docker/prebuilt/$bin"
  done
  SKIP_CARGO_BUILD=1 DRILL=1 LOADGEN="$BIN_DIR/loadgen" .ci/docker-test.sh
}

stage "format" cargo fmt --all -- --check
# The chart needs no build: checked early, in seconds.
stage "helm chart" .ci/helm.sh
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
# Development mode: schemathesis's core and gateway run on loopback with the
# public development API keys (their secret and token are the script's own).
stage "schemathesis" env BIN_DIR="$BIN_DIR" .ci/schemathesis.sh
finish_stage "fuzz"
if [ "$DOCKER" = 1 ]; then
  finish_stage "docker end to end + drill"
fi
echo "== every stage passed" >&2
