#!/usr/bin/env bash
# CI smoke of the benchmark: 300 SSE watchers on our gateway, one payment
# result each at 300/s, plus a small fan-out (3 orders x 100 watchers) and
# the first run again over two gateway processes sharing the port, and a
# reconnect storm (gateway A stops, its 300 browsers move to gateway B while
# results go out); fails unless every terminal event arrived exactly once (lost = 0,
# duplicated = 0). Then the same small latency run against nginx + nchan
# when nginx and libnginx-mod-nchan are installed (skipped otherwise).
#
# Uses binaries the caller built: BIN_DIR (default: target/release if it
# holds loadgen, else target/debug), e.g.
#   cargo build -p loadgen -p sse-gateway -p payment-core && bench/smoke.sh
# Takes ~15 s. Results go to a temp dir unless OUT_DIR is set.
set -euo pipefail
. "$(dirname "$0")/../.ci/lib.sh"
if [[ -z ${BIN_DIR:-} ]]; then
  if [[ -x $ROOT/target/release/loadgen ]]; then BIN_DIR=$ROOT/target/release; else BIN_DIR=$ROOT/target/debug; fi
fi
export BIN_DIR TIMEOUT=${TIMEOUT:-120}
OUT=$(mktemp -d /tmp/bench-smoke.XXXXXX)
export OUT_DIR=${OUT_DIR:-$OUT}
trap 'rm -rf "$OUT"' EXIT
N=${SMOKE_CONNECTIONS:-300}

"$ROOT/bench/run.sh" latency "$N" "$N" gateway
FANOUT_RATE=10 "$ROOT/bench/run.sh" fanout 100 3 gateway
# Two gateway processes sharing one port (GATEWAY_REUSE_PORT), as the runs
# past one process's fd cap use them.
PROCESSES=2 "$ROOT/bench/run.sh" latency "$N" "$N" gateway
"$ROOT/bench/run.sh" storm "$N" "$N" gateway
if have_nchan; then
  "$ROOT/bench/run.sh" latency "$N" "$N" nchan
else
  echo "smoke: nginx/nchan not installed; nchan part skipped"
fi
echo "smoke: OK (lost = 0, duplicated = 0)"
