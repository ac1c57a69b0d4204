#!/usr/bin/env bash
# The current build against an earlier one, with nginx + nchan as the peer,
# interleaved so that the three servers of one workload run back to back
# (the same minutes of a noisy machine), into OUT_DIR/{after,before,nchan}.
#
#   BEFORE_BIN=/path/to/old/bins bench/before-after.sh
#
# BEFORE_BIN holds the earlier payment-core and sse-gateway (build them from
# a worktree of the earlier commit); loadgen is always the current one, so
# both are measured by the same tool. REPEATS (default 5): runs of the
# 1,000/s latency workload. Then `bench/chart.py OUT_DIR` draws the chart.
set -euo pipefail
. "$(dirname "$0")/../.ci/lib.sh"
# shellcheck disable=SC2034  # lib.sh names the script so in its messages
LOG_TAG=bench
OUT=${OUT_DIR:-$ROOT/bench/results/before-after}
BEFORE_BIN=${BEFORE_BIN:?the earlier build\'s payment-core and sse-gateway}
BIN_DIR=${BIN_DIR:-$ROOT/target/release}
mixed=$(mktemp -d /tmp/bench-before.XXXXXX)
trap 'rm -rf "$mixed"' EXIT
cp "$BEFORE_BIN/payment-core" "$BEFORE_BIN/sse-gateway" "$mixed/"
cp "$BIN_DIR/loadgen" "$mixed/"

# One workload on the three servers: after, before, nchan.
three() {
  local suffix=$1; shift
  try_run OUT_DIR="$OUT/after" RESULT_SUFFIX="$suffix" BIN_DIR="$BIN_DIR" "$ROOT/bench/run.sh" "$@" gateway
  try_run OUT_DIR="$OUT/before" RESULT_SUFFIX="$suffix" BIN_DIR="$mixed" "$ROOT/bench/run.sh" "$@" gateway
  try_run OUT_DIR="$OUT/nchan" RESULT_SUFFIX="$suffix" BIN_DIR="$BIN_DIR" "$ROOT/bench/run.sh" "$@" nchan
}

WORKLOADS=${WORKLOADS:-latency max idle fanout storm}
for workload in $WORKLOADS; do
  case $workload in
    latency) for i in $(seq 1 "${REPEATS:-5}"); do three "-$i" latency 10000 1000; done ;;
    max) three "" latency 10000 max ;;
    idle) three "" idle 10000 ;;
    fanout) three "" fanout 1000 1 ;;
    # 19,000 reconnecting subscribers take nchan past its worker's fd cap
    # (old and new sockets overlap); 9,000 fit.
    storm) three "" storm 19000 2000; three "" storm 9000 1000 ;;
  esac
done
exit_if_any_failed
