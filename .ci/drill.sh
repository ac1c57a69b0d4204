#!/usr/bin/env bash
# The fault drill: the replicated stack in containers (docker-compose.yml +
# docker-compose.replicated.yml: PostgreSQL, two payment-core replicas, two
# gateways behind nginx, the mock provider) takes PAYMENTS payments through
# nginx while the drill breaks it, one piece at a time. loadgen creates the
# orders through nginx, watches each with a client that behaves like the
# pages (EventSource that reconnects with Last-Event-ID to whichever gateway
# nginx picks, and reopens a stream silent for 2.5 heartbeats), and reports
# each payment to either replica, trying the other when one fails.
#
# Faults, in order, while the reports run:
#   kill -9 payment-core, start it again 8 s later
#   payment-core-2 cut off from the database network for 20 s
#   kill -9 gateway-1, start it again 5 s later
#   gateway-2 frozen (docker pause) for 15 s, beyond the watchdog
#   PostgreSQL restarted
#
# It passes when every watcher saw its order's result exactly once, no
# watcher saw an id twice or out of order, each result seen is the one
# reported, and every report the core acknowledged is in the database. It
# prints the counts and the longest wait for a result after its report was
# acknowledged, and the time each phase took.
#
# Its own stack by default: needs the images .ci/docker-test.sh builds
# (payments-push/*:$IMAGE_TAG, postgres:15-bookworm), makes the stack's
# credentials (scripts/make-secrets.sh, in its temp dir), brings the stack
# up on free ports and down again. DRILL_STACK=<project>: the replicated
# stack that compose project runs already, started with HEARTBEAT_SECS=2
# and the credentials in SECRETS_DIR (.ci/docker-test.sh with DRILL=1
# hands over its own); the drill then neither brings it up nor takes it
# down, reads its ports from compose, and counts only the payments it
# makes itself. loadgen signs its reports with the stack's provider secret
# and calls the core with its merchant key, both read from SECRETS_DIR
# and passed in its environment, never on its command line.
#
# Builds a release loadgen unless LOADGEN names one. Every wait is
# bounded. Environment: PAYMENTS (2000), RATE (15 per second: the faults
# take about two minutes and all fall while reports run), IMAGE_TAG
# (local), COMPOSE_PROJECT_NAME (of its own stack: payments-push-drill),
# KEEP_UP=1 (leave its own stack running).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
PAYMENTS=${PAYMENTS:-2000}
RATE=${RATE:-15}
# Short heartbeats: loadgen's watchdog (2.5 of them) fires in 5 s.
DRILL_HEARTBEAT_SECS=2
OWN_STACK=1
PROJECT=${COMPOSE_PROJECT_NAME:-payments-push-drill}
if [[ -n "${DRILL_STACK:-}" ]]; then OWN_STACK=0; PROJECT=$DRILL_STACK; fi
WORK=$(mktemp -d /tmp/drill.XXXXXX)
if [[ $OWN_STACK -eq 1 ]]; then
  SECRETS_DIR=$(mktemp -d /tmp/drill-secrets.XXXXXX)
  export SECRETS_DIR
  "$ROOT/scripts/make-secrets.sh" "$SECRETS_DIR" 2>/dev/null
else
  [[ -n ${SECRETS_DIR:-} && -s ${SECRETS_DIR}/provider_secret ]] \
    || die "DRILL_STACK=$DRILL_STACK needs SECRETS_DIR: the credentials that stack was started with"
fi
compose_init "$PROJECT" docker-compose.yml docker-compose.replicated.yml
FAULTS=0
# Each fault's start, in seconds after loadgen's first report, for the
# report of which fault cost the slowest results.
fault() {
  FAULTS=$((FAULTS + 1))
  log "fault $FAULTS: $*"
  echo "$((SECONDS - LOADGEN_T0)) $*" >>"$WORK/faults.txt"
}

cleanup() {
  local rc=$?
  set +e
  [[ -n "${LOADGEN_PID:-}" ]] && kill "$LOADGEN_PID" 2>/dev/null
  docker unpause "$(container_of gateway-2)" >/dev/null 2>&1
  if [[ $rc -ne 0 ]]; then
    # a stack handed over is its owner's to show (and take down)
    [[ $OWN_STACK -eq 1 ]] && stack_diagnostics 60
    tail -n 40 "$WORK/loadgen.log" >&2 2>/dev/null
  fi
  if [[ $OWN_STACK -eq 1 && "${KEEP_UP:-0}" != 1 ]]; then
    phase "compose down -v"
    stack_down
    rm -rf "$SECRETS_DIR"
  elif [[ $OWN_STACK -eq 1 ]]; then
    log "the stack's secrets are in $SECRETS_DIR"
  fi
  rm -rf "$WORK"
  phase_summary
  exit "$rc"
}
on_exit cleanup

SERVICES=(postgres payment-core payment-core-2 mock-provider gateway-1 gateway-2 nginx)

# LOADGEN: a loadgen built already (scripts/test.sh passes the tests' one).
if [[ -z ${LOADGEN:-} ]]; then
  phase "release build of loadgen"
  cargo build --release --locked -p loadgen >/dev/null 2>&1 || cargo build --release --locked -p loadgen
  LOADGEN=${CARGO_TARGET_DIR:-$ROOT/target}/release/loadgen
fi

if [[ $OWN_STACK -eq 1 ]]; then
  export IMAGE_TAG=${IMAGE_TAG:-local} BUILD_FROM=prebuilt BIND_ADDRESS=127.0.0.1
  export HEARTBEAT_SECS=$DRILL_HEARTBEAT_SECS
  HTTP_PORT=$(free_port); PROVIDER_PORT=$(free_port); GRPC_PORT=$(free_port); GRPC_PORT_2=$(free_port)
  export HTTP_PORT PROVIDER_PORT GRPC_PORT GRPC_PORT_2
  export PROVIDER_PAGE_URL=http://localhost:$PROVIDER_PORT/pay
  phase "replicated stack up"
  log "project $PROJECT, nginx on $HTTP_PORT"
  stack_up 300 "${SERVICES[@]}" || die "the replicated stack did not come up healthy"
else
  phase "the stack handed over: healthy, its ports"
  wait_healthy 120 "${SERVICES[@]}" || die "project $PROJECT: not every service of the replicated stack is healthy"
  HTTP_PORT=$(published_port nginx 8080) && GRPC_PORT=$(published_port payment-core 50051) \
    && GRPC_PORT_2=$(published_port payment-core-2 50051) || die "project $PROJECT: its published ports are not all there"
  heartbeat=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(container_of gateway-1)" \
    | sed -n 's/^HEARTBEAT_SECS=//p')
  [[ $heartbeat == "$DRILL_HEARTBEAT_SECS" ]] \
    || die "project $PROJECT: its gateways send a heartbeat every ${heartbeat:-?} s; the drill's timings need $DRILL_HEARTBEAT_SECS"
  log "project $PROJECT: nginx on $HTTP_PORT, the replicas on $GRPC_PORT and $GRPC_PORT_2"
fi

# What the database holds already (a stack handed over has payments of its
# own): the drill's payments are the ones added to it.
paid_in_db() {
  timeout 30 "${COMPOSE_CMD[@]}" exec -T postgres psql -U payments -d payments -Atc \
    "SELECT (SELECT count(*) FROM orders WHERE status = 'succeeded') || ' ' || (SELECT count(*) FROM events WHERE status = 'succeeded')" \
    | tr -d '\r'
}
read -r IN_DB_BEFORE EVENTS_BEFORE < <(paid_in_db)
[[ -n "${EVENTS_BEFORE:-}" ]] || die "could not count the payments already in the database"

phase "$PAYMENTS payments at $RATE/s, five faults"
# bounded: loadgen's own --timeout is 900 s
PROVIDER_SECRET=$(tr -d '\n' <"$SECRETS_DIR/provider_secret") \
PAYMENT_CORE_API_KEY=$(tr -d '\n' <"$SECRETS_DIR/merchant_api_key") \
timeout -k 10 960 "$LOADGEN" run --target gateway --url "http://127.0.0.1:$HTTP_PORT" \
  --core-url "http://127.0.0.1:$GRPC_PORT" \
  --report-url "http://127.0.0.1:$GRPC_PORT" --report-url "http://127.0.0.1:$GRPC_PORT_2" \
  -n "$PAYMENTS" --rate "$RATE" --report-attempts 150 --max-attempts 200 \
  --create-concurrency 8 --connect-concurrency 64 --drain-secs 90 --timeout 900 \
  --label drill --json "$WORK/drill.json" --samples "$WORK/samples.txt" >"$WORK/loadgen.log" 2>&1 &
LOADGEN_PID=$!
reporting() {
  kill -0 "$LOADGEN_PID" 2>/dev/null || { log "loadgen exited before reporting"; exit 1; }
  grep -q "reporting" "$WORK/loadgen.log"
}
wait_until 300 "loadgen to start reporting" reporting
# loadgen's samples count from its first report.
LOADGEN_T0=$SECONDS

sleep 10
fault "kill -9 payment-core"
docker kill -s KILL "$(container_of payment-core)" >/dev/null
sleep 8
timeout 60 "${COMPOSE_CMD[@]}" start payment-core >/dev/null 2>&1
wait_healthy 90 payment-core

DB_NETWORK=$(db_network)
fault "payment-core-2 cut off from the database for 20 s"
docker network disconnect "$DB_NETWORK" "$(container_of payment-core-2)"
wait_until 30 "payment-core-2 to report NOT_SERVING" core_not_serving payment-core-2
sleep 16
docker network connect "$DB_NETWORK" "$(container_of payment-core-2)"
wait_until 60 "payment-core-2 to serve again" core_serving payment-core-2

fault "kill -9 gateway-1"
docker kill -s KILL "$(container_of gateway-1)" >/dev/null
sleep 5
timeout 60 "${COMPOSE_CMD[@]}" start gateway-1 >/dev/null 2>&1
wait_healthy 60 gateway-1

fault "gateway-2 frozen (docker pause) for 15 s"
docker pause "$(container_of gateway-2)" >/dev/null
sleep 15
docker unpause "$(container_of gateway-2)" >/dev/null

fault "PostgreSQL restarted"
timeout 120 "${COMPOSE_CMD[@]}" restart -t 30 postgres >/dev/null 2>&1
wait_until 60 "payment-core to serve after the restart" core_serving payment-core
wait_until 60 "payment-core-2 to serve after the restart" core_serving payment-core-2

log "faults done; waiting for loadgen"
set +e
wait "$LOADGEN_PID"
LOADGEN_RC=$?
set -e
LOADGEN_PID=
grep -vE '^\[loadgen' "$WORK/loadgen.log" >&2 || true

phase "checks"

read -r LOST DUP WRONG RECONNECTS REPORT_ERRORS ACKED MAX_WAIT MAX_SINCE_SENT < <(python3 - "$WORK/drill.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
acked = d["reports"] - d["report_errors"]
print(d["lost"], d["duplicated"], d["wrong_result"], d["reconnects"], d["report_errors"], acked,
      d["max_wait_after_ack_ms"], d["report_to_browser"]["max_ms"])
PY
)
# The slowest results, and the fault that had last begun when each was
# reported (loadgen's samples: ms after its first report; faults: s, ±1).
python3 - "$WORK/samples.txt" "$WORK/faults.txt" <<'PY' || true
import sys
samples = sorted(((float(a) / 1000, float(b) / 1000) for a, b in
                  (line.split() for line in open(sys.argv[1]) if line.strip())),
                 key=lambda s: -s[1])[:5]
faults = [(int(line.split(" ", 1)[0]), line.split(" ", 1)[1].strip()) for line in open(sys.argv[2])]
for reported, latency in samples:
    before = [name for at, name in faults if at <= reported]
    print(f"drill: slow result: reported at {reported:.1f} s, {latency:.2f} s to the browser; "
          f"last fault begun: {before[-1] if before else 'none'}")
PY
read -r IN_DB_AFTER EVENTS_AFTER < <(paid_in_db)
IN_DB=$((IN_DB_AFTER - IN_DB_BEFORE))
EVENTS=$((EVENTS_AFTER - EVENTS_BEFORE))

echo "drill: $PAYMENTS payments, $FAULTS faults, $RECONNECTS reconnects; lost $LOST, duplicated $DUP," \
     "wrong result $WRONG; reports acknowledged $ACKED (errors $REPORT_ERRORS), paid in the database $IN_DB" \
     "(succeeded events $EVENTS); longest wait for a result after its report was acknowledged ${MAX_WAIT} ms" \
     "(${MAX_SINCE_SENT} ms after it was first sent, refusals and retries included)"
status=0
[[ $LOADGEN_RC -eq 0 ]] || { echo "drill: loadgen failed (exit $LOADGEN_RC)" >&2; status=1; }
[[ $LOST -eq 0 && $DUP -eq 0 && $WRONG -eq 0 ]] || { echo "drill: a watcher lost, repeated or misread a result" >&2; status=1; }
[[ $IN_DB -eq $ACKED && $EVENTS -eq $ACKED ]] || { echo "drill: acknowledged $ACKED, in the database $IN_DB ($EVENTS events)" >&2; status=1; }
[[ $ACKED -eq $PAYMENTS ]] || { echo "drill: only $ACKED of $PAYMENTS reports were acknowledged" >&2; status=1; }
exit "$status"
