#!/usr/bin/env bash
# One benchmark run, one command. Starts payment-core + sse-gateway (and/or
# nginx + nchan) on loopback in a fresh temp dir, runs loadgen against them,
# writes bench/results/<run>-<target>.json, and stops everything it started.
#
#   bench/run.sh idle N [gateway|nchan|both]            idle capacity + memory per connection
#   bench/run.sh latency N RATE [gateway|nchan|both]    N watchers, one result per watcher at RATE/s
#                                                       (RATE=max: unpaced, as fast as it goes)
#   bench/run.sh fanout WATCHERS [ORDERS] [gateway|nchan|both]   WATCHERS clients on each order
#   bench/run.sh storm N [RATE] [gateway|nchan|both]    reconnect storm: N streams on gateway A; A stops
#                                                       and every browser reconnects to gateway B with
#                                                       Last-Event-ID, while results go out at RATE/s
#                                                       (default 2000); nchan: every subscriber is
#                                                       dropped and reconnects to the same nginx
#                                                       (STORM=drop: the gateway's clients drop too)
#
# Environment: BIN_DIR (default target/release; must hold payment-core,
# sse-gateway and loadgen), OUT_DIR (default bench/results), LOADGEN_ARGS
# (extra loadgen flags), PERF=1 (record a cpu-clock profile of the gateway
# and the core during the run into OUT_DIR/perf), KEEP=1 (keep the temp dir),
# CORE_DATABASE_URL (the core's store instead of a fresh SQLite file, e.g. an
# empty PostgreSQL database), CORE_REPLICAS=K (K payment-core replicas on
# that PostgreSQL database, on consecutive ports from CORE_ADDR's; the
# gateway and order creation use the first, reports go to the others, so
# every event crosses replicas; REPORT_TO=all spreads reports over every
# replica instead), GW_WRAP / CORE_WRAP (a command prefix for the gateway / core, e.g.
# "valgrind --tool=massif --massif-out-file=/tmp/gw.massif"), PROCESSES=K
# (K gateway processes sharing the port with GATEWAY_REUSE_PORT, or K nginx
# workers with `reuseport`; default 1; needed past one process's fd cap),
# RESULT_SUFFIX (added to the result file's name, for repeated runs).
# Gateway runs also keep both servers' /metrics after the run in
# OUT_DIR/metrics/ (payment-core's on CORE_ADDR's port + 1000), for
# bench/hops.py.
# Exit status: loadgen's (0 = nothing lost, nothing duplicated).
set -euo pipefail
. "$(dirname "$0")/../.ci/lib.sh"
# shellcheck disable=SC2034  # lib.sh names the script so in its messages
LOG_TAG=bench

BIN_DIR=${BIN_DIR:-$ROOT/target/release}
OUT_DIR=${OUT_DIR:-$ROOT/bench/results}
CORE_ADDR=${CORE_ADDR:-127.0.0.1:50651}
GW_ADDR=${GW_ADDR:-127.0.0.1:18080}
NCHAN_PORT=${NCHAN_PORT:-18090}
SECRET=bench-provider-secret
# Development mode: a benchmark on loopback, whose gateway and loadgen use
# the public development API keys (the provider secret and the admin token
# are its own, above and below). Without it the services refuse to start.
export PAYMENTS_PUSH_DEV=1
TIMEOUT=${TIMEOUT:-900}
PROCESSES=${PROCESSES:-1}

CORE_REPLICAS=${CORE_REPLICAS:-1}
REPORT_TO=${REPORT_TO:-others}

usage() { sed -n '2,27p' "$0" >&2; exit 64; }

mode=${1:-}; shift || true
case "$mode" in
  idle)    n=${1:?N}; targets=${2:-gateway}; extra=(--rate 0 --hold-secs "${HOLD_SECS:-0}") ;;
  latency) n=${1:?N}; rate=${2:?RATE}; targets=${3:-gateway}
           if [[ $rate == max ]]; then extra=(--unpaced); else extra=(--rate "$rate"); fi ;;
  fanout)  w=${1:?WATCHERS}; orders=${2:-1}; targets=${3:-gateway}; n=$((w * orders))
           extra=(--watchers-per-order "$w" --rate "${FANOUT_RATE:-10}") ;;
  storm)   n=${1:?N}; rate=${2:-2000}; targets=${3:-gateway}
           extra=(--storm --rate "$rate" --settle-secs 1) ;;
  *) usage ;;
esac
[[ $targets == both ]] && targets="gateway nchan"
if (( CORE_REPLICAS > 1 )) && [[ ${CORE_DATABASE_URL:-} != postgres* ]]; then
  echo "bench: CORE_REPLICAS=$CORE_REPLICAS needs CORE_DATABASE_URL=postgres://... (replicas share one PostgreSQL log)" >&2
  exit 64
fi
for bin in loadgen payment-core sse-gateway; do
  [[ -x $BIN_DIR/$bin ]] || { echo "bench: $BIN_DIR/$bin missing; build with: cargo build --release -p loadgen -p sse-gateway -p payment-core" >&2; exit 2; }
done
mkdir -p "$OUT_DIR"
RUN=$(mktemp -d /tmp/bench-run.XXXXXX)
PIDS=()
PERF_PIDS=()

# perf writes its profile when interrupted (INT), given up to a minute.
stop_perf() { stop_pids -s INT -g 60 "${PERF_PIDS[@]}"; PERF_PIDS=(); }
stop_servers() { stop_pids "${PIDS[@]}"; PIDS=(); }

cleanup() {
  set +e
  stop_perf
  stop_servers
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$RUN"
}
on_exit cleanup

wait_http() { # url, seconds
  wait_until -i 0.2 "$2" "$1 to answer" curl -fsS -o /dev/null --max-time 1 "$1" \
    || { tail -n 20 "$RUN"/*.log >&2; return 1; }
}

wait_tcp() { # host:port, seconds
  wait_until -i 0.2 "$2" "$1 to listen" tcp_open "$1" || { tail -n 20 "$RUN"/*.log >&2; return 1; }
}

machine() {
  echo "bench: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, kernel $(uname -r), fd cap $(ulimit -Hn)" >&2
}

profile() { # pid name
  if [[ ${PERF:-0} == 1 ]]; then
    perf record -F 499 -e cpu-clock -g -p "$1" -o "$RUN/perf-$2.data" >/dev/null 2>&1 &
    PERF_PIDS+=($!)
  fi
}

status=0
machine
for target in $targets; do
  procs=""; (( PROCESSES > 1 )) && procs="-x$PROCESSES"
  label="$mode-$n${rate:+-$rate}${w:+-w$w}$procs-$target"
  if [[ $target == gateway ]]; then
    [[ ${CORE_DATABASE_URL:-} == postgres* ]] && label+="-postgres"
    (( CORE_REPLICAS > 1 )) && label+="-r$CORE_REPLICAS${REPORT_TO/others/}"
    core_pids=(); core_urls=()
    for i in $(seq 0 $((CORE_REPLICAS - 1))); do
      addr="${CORE_ADDR%:*}:$(( ${CORE_ADDR##*:} + i ))"
      PAYMENT_CORE_LISTEN=$addr DATABASE_URL="${CORE_DATABASE_URL:-sqlite://$RUN/core.db}" PROVIDER_SECRET=$SECRET \
        PAYMENT_CORE_METRICS_LISTEN="${addr%:*}:$(( ${addr##*:} + 1000 ))" \
        ORDER_TTL_SECS=3600 RUST_LOG=${RUST_LOG:-warn} LOG_FORMAT=pretty \
        ${CORE_WRAP:-} "$BIN_DIR/payment-core" >"$RUN/core-$i.log" 2>&1 &
      core_pids+=($!); PIDS+=($!); core_urls+=("http://$addr")
    done
    core_pid=${core_pids[0]}
    report_urls=("${core_urls[@]}")
    (( CORE_REPLICAS > 1 )) && [[ $REPORT_TO == others ]] && report_urls=("${core_urls[@]:1}")
    gw_pids=()
    for i in $(seq 1 "$PROCESSES"); do
      GATEWAY_LISTEN=$GW_ADDR PAYMENT_CORE_URL="http://$CORE_ADDR" ADMIN_TOKEN=bench-admin \
        GATEWAY_REUSE_PORT=$([[ $PROCESSES -gt 1 ]] && echo true || echo false) GATEWAY_INSTANCE="gateway-$i" \
        MAX_STREAMS=${MAX_STREAMS:-$(( n + 500 < 15000 ? 15000 : n + 500 ))} \
        HEARTBEAT_SECS=15 RUST_LOG=${RUST_LOG:-warn} LOG_FORMAT=pretty \
        ${GW_WRAP:-} "$BIN_DIR/sse-gateway" >"$RUN/gateway-$i.log" 2>&1 &
      gw_pids+=($!); PIDS+=($!)
    done
    gw_pid=${gw_pids[0]}
    storm_args=(); failover_addr=""
    if [[ $mode == storm ]]; then
      # Gateway B, on the next port: where A's browsers go when A stops.
      failover_addr="${GW_ADDR%:*}:$(( ${GW_ADDR##*:} + 1 ))"
      GATEWAY_LISTEN=$failover_addr PAYMENT_CORE_URL="http://$CORE_ADDR" ADMIN_TOKEN=bench-admin \
        GATEWAY_INSTANCE=gateway-b HEARTBEAT_SECS=15 MAX_STREAMS=$((n + 500)) RUST_LOG=${RUST_LOG:-warn} LOG_FORMAT=pretty \
        ${GW_WRAP:-} "$BIN_DIR/sse-gateway" >"$RUN/gateway-b.log" 2>&1 &
      failover_pid=$!; PIDS+=($failover_pid)
      wait_http "http://$failover_addr/readyz" 30
      # B's figures are the ones measured; A is the one stopped.
      storm_args=(--failover-url "http://$failover_addr")
      # STORM=drop: A keeps running and the clients drop their streams, as
      # in nchan's storm; the default stops A.
      [[ ${STORM:-stop} == drop ]] || storm_args+=(--storm-stop-pid "$gw_pid")
      gw_pids=("$failover_pid")
    fi
    # With several processes on one port, each answer comes from any one of
    # them: go on once many answers in a row said ready.
    for _ in $(seq 1 $((PROCESSES > 1 ? 10 * PROCESSES : 1))); do wait_http "http://$GW_ADDR/readyz" 30; done
    for url in "${core_urls[@]}"; do wait_tcp "${url#http://}" 30; done
    # A port answered by a leftover server from an earlier run would be
    # measured in place of this one: every server started must be alive.
    for p in "${PIDS[@]}"; do
      kill -0 "$p" 2>/dev/null || { echo "bench: a server exited at start (port taken?)" >&2; tail -n 5 "$RUN"/*.log >&2; exit 1; }
    done
    profile "${gw_pids[0]}" gateway; profile "$core_pid" core
    set +e
    PROVIDER_SECRET=$SECRET timeout -k 10 "$TIMEOUT" "$BIN_DIR/loadgen" run --target gateway --url "http://$GW_ADDR" \
      --core-url "http://$CORE_ADDR" "${report_urls[@]/#/--report-url=}" -n "$n" "${extra[@]}" \
      "${gw_pids[@]/#/--server-pid=}" "${core_pids[@]/#/--core-pid=}" --label "$label" "${storm_args[@]}" \
      --json "$OUT_DIR/$label${RESULT_SUFFIX:-}.json" --timeout "$((TIMEOUT - 30))" ${LOADGEN_ARGS:-}
    rc=$?; set -e
    # The servers' own figures after the run (bench/hops.py reads them).
    mkdir -p "$OUT_DIR/metrics"
    curl -fsS --max-time 5 "http://${failover_addr:-$GW_ADDR}/metrics" >"$OUT_DIR/metrics/$label${RESULT_SUFFIX:-}-gateway.txt" || true
    curl -fsS --max-time 5 "http://${CORE_ADDR%:*}:$(( ${CORE_ADDR##*:} + 1000 ))/metrics" >"$OUT_DIR/metrics/$label${RESULT_SUFFIX:-}-core.txt" || true
  else
    have_nchan || { echo "bench: nginx + libnginx-mod-nchan not installed; skipping nchan" >&2; continue; }
    mkdir -p "$RUN/nginx/tmp"
    # nchan keeps channels in shared memory: ~256 MiB per 20k channels (only
    # the pages used count in the memory measured).
    shm=$(( (n / 20000 + 1) * 256 ))
    sed -e "s/@PORT@/$NCHAN_PORT/" -e "s/@NOFILE@/$(ulimit -Hn)/" -e "s/@CONNS@/$(( $(ulimit -Hn) - 50 ))/" \
      -e "s/@WORKERS@/$PROCESSES/" -e "s/@SHM@/${shm}M/" \
      "$ROOT/bench/nginx/nchan.conf" >"$RUN/nginx/nchan.conf"
    nginx -p "$RUN/nginx" -c "$RUN/nginx/nchan.conf" -g 'daemon off;' >"$RUN/nginx.log" 2>&1 &
    ng_pid=$!; PIDS+=("$ng_pid")
    wait_http "http://127.0.0.1:$NCHAN_PORT/nchan_status" 15
    for _ in $(seq 1 50); do (( $(pgrep -c -P "$ng_pid") >= PROCESSES )) && break; sleep 0.1; done
    mapfile -t workers < <(pgrep -P "$ng_pid")
    worker=${workers[0]}
    profile "$worker" nginx
    set +e
    timeout -k 10 "$TIMEOUT" "$BIN_DIR/loadgen" run --target nchan --url "http://127.0.0.1:$NCHAN_PORT" \
      -n "$n" "${extra[@]}" "${workers[@]/#/--server-pid=}" --label "$label" \
      --json "$OUT_DIR/$label${RESULT_SUFFIX:-}.json" --timeout "$((TIMEOUT - 30))" ${LOADGEN_ARGS:-}
    rc=$?; set -e
  fi
  if [[ ${PERF:-0} == 1 ]]; then
    stop_perf
    mkdir -p "$OUT_DIR/perf"
    for f in "$RUN"/perf-*.data; do
      [[ -e $f ]] || continue
      perf report -i "$f" --no-children --percent-limit 1.5 --stdio 2>/dev/null | head -150 \
        >"$OUT_DIR/perf/$label-$(basename "$f" .data).txt" || true
      perf report -i "$f" --no-children --sort symbol --stdio -g none 2>/dev/null | sed "s/  */ /g" | head -80 \
        >"$OUT_DIR/perf/$label-$(basename "$f" .data)-flat.txt" || true
    done
  fi
  [[ $rc == 0 ]] || { status=$rc; echo "bench: $label FAILED (exit $rc); logs:" >&2; tail -n 20 "$RUN"/*.log >&2 || true; }
  # Stop this target's servers before the next one runs.
  stop_servers
done
exit "$status"
