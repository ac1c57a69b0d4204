#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each, from
# the committed seed corpus, and fails if any of them crashed, naming the
# input that did it.
#
# - The corpus is copied to a temporary directory first: what libFuzzer
#   adds while it runs never lands in fuzz/corpus/.
# - Crash inputs go to fuzz/artifacts/<target>/ (ignored by git), where
#   they outlive the run; the message says how to replay one.
# - Bounded: each target stops after FUZZ_SECONDS, one input may run at most
#   FUZZ_INPUT_TIMEOUT seconds (a longer one is reported as a hang), and a
#   target that overruns its time by a minute is killed and counts as failed.
#
# cargo-fuzz needs nightly compiler flags (-Z sanitizer, sanitizer
# coverage); the stable toolchain accepts them with RUSTC_BOOTSTRAP=1, and
# ships the AddressSanitizer runtime. FUZZ_SANITIZER=none builds without it
# (faster, catches panics only).
#
# FUZZ_SEED fixes libFuzzer's random seed. Under CI it defaults to 1, so
# that a gate run explores the same inputs from the same corpus each time
# and a crash it finds replays; elsewhere each run draws a new seed and
# explores further. A crash found either way goes into fuzz/corpus/ with
# its fix, as a regression input.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

seconds="${FUZZ_SECONDS:-60}"
input_timeout="${FUZZ_INPUT_TIMEOUT:-10}"
sanitizer="${FUZZ_SANITIZER:-address}"
seed="${FUZZ_SEED:-}"
if [ -z "$seed" ] && [ "${CI:-}" = "true" ]; then
  seed=1
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

# Optimized, with debug assertions and overflow checks; every run below
# uses the same flags, so this one build serves them all.
build=(--fuzz-dir fuzz --sanitizer "$sanitizer" --debug-assertions)
echo "== building the fuzz targets" >&2
cargo fuzz build "${build[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=0
# Every target, or the ones FUZZ_TARGETS names (space-separated). Listed
# in an assignment, so that a failing `cargo fuzz list` stops the script
# instead of leaving nothing to run.
targets="${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}"
if [ -z "$targets" ]; then
  echo "!! fuzz: no fuzz targets found" >&2
  exit 1
fi
# fuzz_target TARGET: one libFuzzer run of TARGET (one core), its output in
# $work/TARGET.log and its exit status in $work/TARGET.status.
fuzz_target() {
  local target=$1 corpus="$work/corpus/$1" status=0
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  cp -r "fuzz/corpus/$target/." "$corpus/"
  local options=(-max_total_time="$seconds" -timeout="$input_timeout" -print_final_stats=1)
  if [ -n "$seed" ]; then
    options+=(-seed="$seed")
  fi
  if [ -f "fuzz/$target.dict" ]; then
    options+=(-dict="fuzz/$target.dict")
  fi
  timeout -k 10 "$((seconds + 60))" \
    cargo fuzz run "${build[@]}" "$target" "$corpus" -- "${options[@]}" \
    >"$work/$target.log" 2>&1 || status=$?
  echo "$status" >"$work/$target.status"
}

# Each target is one single-threaded process: FUZZ_JOBS of them (default:
# one per core) run at once, so the stage takes seconds x targets / jobs.
jobs="${FUZZ_JOBS:-$(nproc)}"
# Crash files written from now on are this run's.
touch "$work/started"
running=0
for target in $targets; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "== fuzzing $target for ${seconds}s" >&2
  fuzz_target "$target" &
  running=$((running + 1))
done
wait || true

for target in $targets; do
  status=$(cat "$work/$target.status" 2>/dev/null || echo 1)
  echo "== $target:" >&2
  grep -aE '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$work/$target.log" >&2 || true
  if [ "$status" -ne 0 ]; then
    failed=1
    tail -n 60 "$work/$target.log" >&2
    if timed_out "$status"; then
      echo "!! $target did not stop within $((seconds + 60))s" >&2
    fi
    found="$(find "fuzz/artifacts/$target" -type f -newer "$work/started")"
    for input in $found; do
      echo "!! $target failed on input $PWD/$input" >&2
      echo "   replay: RUSTC_BOOTSTRAP=1 cargo fuzz run ${build[*]} $target $input" >&2
    done
    [ -n "$found" ] || echo "!! $target failed (exit $status) without a crash input" >&2
  fi
done

if [ "$failed" -ne 0 ]; then
  echo "!! fuzz: a target failed (see above)" >&2
  exit 1
fi
echo "== fuzz: every target ran ${seconds}s without a failure" >&2
