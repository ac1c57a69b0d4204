#!/usr/bin/env bash
# Every run in BENCHMARKS.md, in order, into bench/results (OUT_DIR):
# gateway and nginx + nchan side by side. About 25 minutes on 2 cores.
# Build first: cargo build --release --locked -p loadgen -p sse-gateway -p payment-core
# REPEATS (default 4) extra gateway runs of the 1,000/s latency workload go
# to OUT_DIR/repeats/<n>/, to show the spread between runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export OUT_DIR=${OUT_DIR:-$ROOT/bench/results}
failed=()
# A failed run (something lost or duplicated, or a server at its fd cap)
# is reported at the end; the rest still run.
run() { echo "== $*" >&2; env "$@" || failed+=("$*"); }

run "$ROOT/bench/run.sh" idle 10000 both
run "$ROOT/bench/run.sh" idle 19900 both
run PROCESSES=3 "$ROOT/bench/run.sh" idle 50000 both
run PROCESSES=6 "$ROOT/bench/run.sh" idle 100000 both
run "$ROOT/bench/run.sh" latency 10000 1000 both
for i in $(seq 1 "${REPEATS:-4}"); do
  run OUT_DIR="$OUT_DIR/repeats/$i" "$ROOT/bench/run.sh" latency 10000 1000 gateway
done
run "$ROOT/bench/run.sh" latency 10000 5000 both
run "$ROOT/bench/run.sh" latency 10000 10000 both
run "$ROOT/bench/run.sh" latency 18000 10000 both
run "$ROOT/bench/run.sh" latency 10000 max both
run PROCESSES=6 "$ROOT/bench/run.sh" latency 100000 10000 both
run "$ROOT/bench/run.sh" fanout 1000 1 both
run FANOUT_RATE=2 "$ROOT/bench/run.sh" fanout 1000 10 both
"$ROOT/bench/table.py" "$OUT_DIR"
if (( ${#failed[@]} )); then
  printf 'bench: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
