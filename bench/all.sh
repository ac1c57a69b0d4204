#!/usr/bin/env bash
# Every run in BENCHMARKS.md, in order, into bench/results (OUT_DIR):
# gateway and nginx + nchan side by side. About 25 minutes on 2 cores.
# Build first: cargo build --release --locked -p loadgen -p sse-gateway -p payment-core
# REPEATS (default 4) extra gateway runs of the 1,000/s latency workload go
# to OUT_DIR/repeats/<n>/, to show the spread between runs.
set -euo pipefail
. "$(dirname "$0")/../.ci/lib.sh"
# shellcheck disable=SC2034  # lib.sh names the script so in its messages
LOG_TAG=bench
export OUT_DIR=${OUT_DIR:-$ROOT/bench/results}
# A failed run (something lost or duplicated, or a server at its fd cap)
# is reported at the end (try_run); the rest still run.

try_run "$ROOT/bench/run.sh" idle 10000 both
try_run "$ROOT/bench/run.sh" idle 19900 both
try_run PROCESSES=3 "$ROOT/bench/run.sh" idle 50000 both
try_run PROCESSES=6 "$ROOT/bench/run.sh" idle 100000 both
try_run "$ROOT/bench/run.sh" latency 10000 1000 both
for i in $(seq 1 "${REPEATS:-4}"); do
  try_run OUT_DIR="$OUT_DIR/repeats/$i" "$ROOT/bench/run.sh" latency 10000 1000 gateway
done
try_run "$ROOT/bench/run.sh" latency 10000 5000 both
try_run "$ROOT/bench/run.sh" latency 10000 10000 both
try_run "$ROOT/bench/run.sh" latency 18000 10000 both
try_run "$ROOT/bench/run.sh" latency 10000 max both
try_run PROCESSES=6 "$ROOT/bench/run.sh" latency 100000 10000 both
try_run "$ROOT/bench/run.sh" fanout 1000 1 both
try_run FANOUT_RATE=2 "$ROOT/bench/run.sh" fanout 1000 10 both
"$ROOT/bench/table.py" "$OUT_DIR"
exit_if_any_failed
