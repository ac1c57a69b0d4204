#!/usr/bin/env bash
# End-to-end check of the Docker packaging (docker/, both compose files)
# and, with DRILL=1, the fault drill (.ci/drill.sh) on the same replicated
# stack. The images are built once and serve both stacks.
#
#  1. local stand-ins for the base images (.ci/base-images.sh)
#  2. release binaries built on the host, images built through the PREBUILT
#     path of docker/Dockerfile (no crates.io needed inside docker), nginx
#     image; each service image, run without development mode or
#     credentials, refuses to start (exit 78, one line); with DRILL=1 the
#     drill's release loadgen builds meanwhile, in the background (this
#     script waits on docker most of the time)
#  3. the default stack (docker-compose.yml: SQLite, one payment-core, in
#     development mode) up until every service is healthy; the published
#     gRPC port answers; the checkout says it is in development mode;
#     nginx's TLS port answers over HTTP/2 with the self-signed certificate
#     for CN=localhost, the same one after nginx is re-created (kept in the
#     edge-tls volume), and a certificate of the test's own from a host
#     directory (EDGE_TLS_DIR) when nginx alone is re-created with it
#  4. through nginx: create an order, follow its SSE stream, report the
#     payment with `mock-provider report`, see `event: succeeded`
#  5. a second order's stream: stop the gateway serving it, reconnect through
#     nginx with Last-Event-ID, the result arrives exactly once, no id repeats
#  6. restart payment-core, then re-create its container: the first order is
#     still `succeeded` (SQLite on the named volume)
#  7. the replicated stack (docker-compose.replicated.yml: PostgreSQL, two
#     payment-core replicas, no development mode: credentials made by
#     scripts/make-secrets.sh in a temp dir, SECRETS_DIR), brought up once:
#     the checkout has no development-mode bar, the dashboard stream
#     answers the admin token from its secret file; a payment through
#     nginx; one
#     with a replica killed (-9); one with a replica cut off from the
#     database (NOT_SERVING, then back by itself); one after restarting
#     PostgreSQL
#  8. DRILL=1: the fault drill on that same stack (DRILL_STACK=<project>
#     .ci/drill.sh: 2,000 payments while five faults fall; it prints its own
#     report and counts none of the checks below), then the rolling update
#     rehearsal and the slow, lossy network (.ci/rolling.sh) on it
#  9. `compose down -v` always (trap), with logs when something failed; the
#     time each phase took
#
# Why two bring-ups: steps 3-6 check the default stack, the one
# `docker compose up` runs, and step 6 its SQLite file on the named volume;
# the replicated stack has neither. The second bring-up builds nothing.
#
# Needs: root (debootstrap), docker engine, docker compose v2 or
# docker-compose v1, cargo, curl (with HTTP/2), openssl, python3. Every
# wait is bounded.
#
# Environment (all optional):
#   COMPOSE_PROJECT_NAME  compose project (default payments-push-ci)
#   DRILL=1               run the fault drill on the replicated stack (step 8);
#                         its PAYMENTS and RATE apply
#   HTTP_PORT HTTPS_PORT PROVIDER_PORT GRPC_PORT  host ports (default 8080
#                         8443 8081 50051;
#                         a busy default port is replaced by a free one, an
#                         explicitly set busy port is an error)
#   IMAGE_TAG             tag of the payments-push/* images (default local)
#   CARGO_TARGET_DIR      cargo's target dir (default ./target)
#   CARGO_BUILD_JOBS      cargo -j (default: all cores)
#   CARGO_NICE            nice level of the cargo build (default 0)
#   SKIP_CARGO_BUILD=1    use the binaries already in docker/prebuilt/
#                         (scripts/test.sh puts the tests' debug build there)
#   LOADGEN               a built loadgen for the drill (default: a release
#                         build made here)
#   UP_TIMEOUT            seconds for `compose up` to get all healthy (default 300)
#   KEEP_WORK=1           keep the SSE transcripts and responses (path printed)
#   KEEP_UP=1             leave the stack running at the end (no down -v;
#                         its secrets are kept too, path printed)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

PROJECT=${COMPOSE_PROJECT_NAME:-payments-push-ci}
UP_TIMEOUT=${UP_TIMEOUT:-300}
IMAGE_TAG=${IMAGE_TAG:-local}
DRILL=${DRILL:-0}
BINS=(payment-core sse-gateway mock-provider)
WORK=$(mktemp -d /tmp/docker-test.XXXXXX)
# The replicated stack's credentials (the drill's too, when it is handed
# this stack): made here, mounted by compose from SECRETS_DIR.
SECRETS_DIR=$(mktemp -d /tmp/docker-test-secrets.XXXXXX)
export SECRETS_DIR
"$ROOT/scripts/make-secrets.sh" "$SECRETS_DIR" 2>/dev/null
PASSED=0
FAILED=0
STACK_UP=0
BG_PIDS=()
DRILL_RAN=0
ROLLING_RAN=0

ok()   { PASSED=$((PASSED + 1)); printf 'ok - %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAILED - %s\n' "$*" >&2; exit 1; }

# The compose command of the stack under test (COMPOSE_CMD); step 7 adds
# the replicated file.
compose_init "$PROJECT" docker-compose.yml

# ------------------------------------------------------------------ ports ---
port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}
pick_port() { # NAME DEFAULT
  local name=$1 def=$2 val
  if [[ -n "${!name:-}" ]]; then
    val=${!name}
    port_free "$val" || { echo "$name=$val is in use on this host" >&2; exit 1; }
  else
    val=$def
    if ! port_free "$val"; then
      val=$(free_port)
      echo "port $def is busy, using $val for $name" >&2
    fi
  fi
  export "$name=$val"
}
pick_port HTTP_PORT 8080
pick_port HTTPS_PORT 8443
pick_port PROVIDER_PORT 8081
pick_port GRPC_PORT 50051
pick_port GRPC_PORT_2 50052
export BIND_ADDRESS=${BIND_ADDRESS:-127.0.0.1}
export PROVIDER_PAGE_URL=${PROVIDER_PAGE_URL:-http://localhost:${PROVIDER_PORT}/pay}
export IMAGE_TAG BUILD_FROM=prebuilt
# short heartbeats so a dead stream shows quickly
export HEARTBEAT_SECS=${HEARTBEAT_SECS:-5}
BASE=http://localhost:${HTTP_PORT}
PROVIDER_BASE=http://localhost:${PROVIDER_PORT}

# ------------------------------------------------------------ teardown -----
dump_logs() {
  stack_diagnostics 150
  local f
  for f in "$WORK"/*.sse "$WORK"/*.err "$WORK"/*.json "$WORK"/report-*.out "$WORK"/pay-page.*; do
    [[ -f "$f" ]] || continue
    echo "---------------- $(basename "$f") ----------------" >&2
    head -c 4000 "$f" >&2; echo >&2
  done
}
cleanup() {
  local rc=$?
  set +e
  local p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [[ $rc -ne 0 ]]; then
    [[ $FAILED -eq 0 ]] && FAILED=1
    [[ $STACK_UP -eq 1 ]] && dump_logs
  fi
  if [[ $STACK_UP -eq 1 && "${KEEP_UP:-0}" != 1 ]]; then
    phase "9. compose down -v"
    stack_down || echo "compose down failed or timed out" >&2
  fi
  if [[ "${KEEP_WORK:-0}" == 1 ]]; then echo "transcripts kept in $WORK"; else rm -rf "$WORK"; fi
  if [[ "${KEEP_UP:-0}" == 1 ]]; then echo "the stack's secrets are in $SECRETS_DIR"; else rm -rf "$SECRETS_DIR"; fi
  echo
  phase_summary
  echo "docker-test: ${PASSED} passed, ${FAILED} failed"
  [[ $DRILL_RAN -eq 0 ]] || echo "fault drill: $([[ $DRILL_RAN -eq 1 ]] && echo passed || echo FAILED)"
  [[ $ROLLING_RAN -eq 0 ]] || echo "rolling update rehearsal: $([[ $ROLLING_RAN -eq 1 ]] && echo passed || echo FAILED)"
  exit "$rc"
}
on_exit cleanup

# --------------------------------------------------------------- helpers ---
# json_get FILE KEY [KEY...]: first value (breadth-first) of any of the keys
json_get() {
  python3 - "$@" <<'PY'
import json, sys
path, keys = sys.argv[1], sys.argv[2:]
try:
    doc = json.load(open(path))
except Exception:
    sys.exit(1)
for key in keys:
    queue = [doc]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            if key in node and not isinstance(node[key], (dict, list)) and node[key] not in (None, ""):
                print(node[key]); sys.exit(0)
            queue.extend(node.values())
        elif isinstance(node, list):
            queue.extend(node)
sys.exit(1)
PY
}

# path_of URL: path and query of an absolute or relative URL
path_of() { python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p.path + ("?" + p.query if p.query else ""))' "$1"; }

# An SSE transcript ($WORK/NAME.sse) is curl -i output: status line and
# headers, a blank line, then the event stream.
sse_body() { sed '1,/^\r\{0,1\}$/d' "$1" 2>/dev/null; }
sse_head() { sed '/^\r\{0,1\}$/q' "$1" 2>/dev/null; }
sse_count() { sse_body "$1" | grep -Ec "^event: ?$2"$'\r?$' || true; }
has_event() { [[ $(sse_count "$1" "$2") -ge 1 ]]; }
sse_ids() { sse_body "$1" | sed -n 's/^id: \{0,1\}\([^\r]*\)\r\{0,1\}$/\1/p'; }
sse_last_id() { sse_ids "$1" | tail -n1; }
has_id() { [[ -n $(sse_last_id "$1") ]]; }
http_status_200() { sse_head "$1" | head -n1 | grep -Eq '^HTTP/[0-9.]+ 200'; }
header_of() { sse_head "$1" | sed -n "s/^$2: *\\([^\\r]*\\)\\r\\{0,1\\}\$/\\1/Ip" | tail -n1; }

# open_sse NAME URL [curl args...]: background `curl -N -i` into $WORK/NAME.sse;
# sets SSE_PID
open_sse() {
  local name=$1 url=$2; shift 2
  curl -sS -N -i --max-time 180 -H 'Accept: text/event-stream' "$@" "$url" \
       >"$WORK/$name.sse" 2>"$WORK/$name.err" &
  SSE_PID=$!
  BG_PIDS+=("$SSE_PID")
}
gone() { ! kill -0 "$1" 2>/dev/null; }
# "id:event" of every event of a transcript, on one line
sse_summary() {
  sse_body "$1" | tr -d '\r' | awk '
    /^id:/    { sub(/^id: ?/, ""); id = $0 }
    /^event:/ { sub(/^event: ?/, ""); ev = $0 }
    /^data:/  { seen = 1 }
    /^$/      { if (seen || ev != "") printf "%s%s", (n++ ? " " : ""), (id != "" ? id : "-") ":" (ev != "" ? ev : "message"); id = ""; ev = ""; seen = 0 }
    END       { if (seen || ev != "") printf "%s%s", (n++ ? " " : ""), (id != "" ? id : "-") ":" (ev != "" ? ev : "message"); print "" }'
}

# run_logged NAME COMMAND...: output to $WORK/NAME.out, its tail on failure
run_logged() {
  local name=$1; shift
  if ! "$@" >"$WORK/$name.out" 2>&1; then
    echo "---- $name failed: $* ----" >&2
    tail -n 60 "$WORK/$name.out" >&2
    return 1
  fi
}

# create_order NAME DESCRIPTION: an order through nginx (the answer in
# $WORK/NAME.json); sets ORDER, SECRET and STREAM_URL, its event stream
# through nginx
create_order() {
  local out="$WORK/$1.json"
  local code
  # With a key, as the checkout page sends one: a create is then safe to
  # repeat on another core replica.
  code=$(curl -sS -m 20 -o "$out" -w '%{http_code}' -X POST "$BASE/api/orders" \
           -H 'Content-Type: application/json' -H "Idempotency-Key: docker-test-$1-$$-$RANDOM" \
           -d "{\"amount_minor\":1999,\"currency\":\"EUR\",\"description\":\"$2\"}") || true
  [[ "$code" =~ ^20[01]$ ]] || fail "POST /api/orders answered HTTP $code: $(head -c 500 "$out" 2>/dev/null)"
  ORDER=$(json_get "$out" order_id id) || fail "$1: no order id in $(cat "$out")"
  SECRET=$(json_get "$out" client_secret) || fail "$1: no client_secret in $(cat "$out")"
  local events
  events=$(json_get "$out" events_url || echo "/api/orders/$ORDER/events")
  STREAM_URL=$BASE$(path_of "$events")
  # The secret goes in a header, never in a URL (the gateway refuses that).
  AUTH=(-H "Authorization: Bearer $SECRET")
}

report() { # ORDER_ID OUTCOME
  timeout 60 "${COMPOSE_CMD[@]}" exec -T mock-provider \
    mock-provider report --order "$1" --outcome "$2" >"$WORK/report-$1.out" 2>&1
}

# ======================================================= 1. base images ===
phase "1. base images"
timeout 900 bash "$ROOT/.ci/base-images.sh"
ok "base images present: $(docker image inspect -f '{{index .RepoTags 0}}' debian:bookworm-slim)"

# ================================================ 2. binaries, images ===
phase "2. host build"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ "${SKIP_CARGO_BUILD:-0}" != 1 ]]; then
  timeout 3600 nice -n "${CARGO_NICE:-0}" cargo build --release --locked -p payment-core -p sse-gateway -p mock-provider
  mkdir -p "$ROOT/docker/prebuilt"
  for b in "${BINS[@]}"; do install -m 0755 "$TARGET_DIR/release/$b" "$ROOT/docker/prebuilt/$b"; done
fi
for b in "${BINS[@]}"; do [[ -x "$ROOT/docker/prebuilt/$b" ]] || fail "docker/prebuilt/$b missing"; done
ok "binaries in docker/prebuilt/"

LOADGEN_BUILD_PID=
if [[ $DRILL == 1 && -z ${LOADGEN:-} ]]; then
  # The drill's loadgen, built while the images build and the default stack
  # is checked (both wait on docker, not on the CPU); niced so that the
  # checks' timings do not suffer. Not in the cargo build above: built
  # together, loadgen's dependency features would be unified into the
  # services' binaries. The drill's own `cargo build` then finds it done.
  timeout 3600 nice -n 10 cargo build --release --locked -p loadgen >"$WORK/loadgen-build.out" 2>&1 &
  LOADGEN_BUILD_PID=$!
  BG_PIDS+=("$LOADGEN_BUILD_PID")
fi

phase "2. images (prebuilt path)"
for b in "${BINS[@]}"; do
  run_logged "build-$b" timeout 1200 docker build --force-rm -f docker/Dockerfile --build-arg BUILD_FROM=prebuilt \
    --target "$b-prebuilt" -t "payments-push/$b:$IMAGE_TAG" . || fail "docker build of $b (prebuilt path)"
  docker run --rm --entrypoint "/usr/local/bin/$b" "payments-push/$b:$IMAGE_TAG" --help >/dev/null \
    || fail "payments-push/$b:$IMAGE_TAG: '$b --help' does not run in the image"
done
run_logged build-nginx timeout 900 docker build --force-rm -f docker/nginx.Dockerfile -t "payments-push/nginx:$IMAGE_TAG" docker \
  || fail "docker build of nginx"
ok "images payments-push/{payment-core,sse-gateway,mock-provider,nginx}:$IMAGE_TAG built"
# refused_without_credentials SERVICE VARIABLE: the image, run outside
# development mode with no credentials, exits 78 with one line naming VARIABLE
refused_without_credentials() {
  local rc=0 out="$WORK/refused-$1.err"
  timeout 60 docker run --rm -e PAYMENTS_PUSH_DEV=0 "payments-push/$1:$IMAGE_TAG" >/dev/null 2>"$out" || rc=$?
  [[ $rc -eq 78 && $(wc -l <"$out") -eq 1 ]] && grep -q "^$2 is not set" "$out" \
    || fail "$1 without credentials: exit $rc, stderr: $(head -c 500 "$out")"
}
refused_without_credentials payment-core PROVIDER_SECRET
refused_without_credentials sse-gateway PAYMENT_CORE_API_KEY
refused_without_credentials mock-provider PROVIDER_SECRET
ok "outside development mode each image refuses to start without credentials (exit 78, one line)"

# ======================================== 3. the default stack (SQLite) ===
phase "3. default stack up (SQLite)"
log "project $PROJECT, ports http=$HTTP_PORT https=$HTTPS_PORT provider=$PROVIDER_PORT grpc=$GRPC_PORT, ${COMPOSE[*]}"
# bring_up WHAT SERVICE...: COMPOSE_CMD's stack up (lib.sh's stack_up, after
# a `down -v` of what may be left) until every SERVICE is healthy; a check
bring_up() {
  local what=$1
  shift
  STACK_UP=1
  stack_up "$UP_TIMEOUT" "$@" || fail "$what: not every service is healthy"
  ok "$what: all services healthy: $*"
}
bring_up "SQLite stack" payment-core mock-provider gateway-1 gateway-2 nginx
# the published gRPC port answers grpc.health.v1.Health/Check (empty request)
grpc_health() {
  printf '\0\0\0\0\0' >"$WORK/grpc-req.bin"
  curl -sS -m 10 --http2-prior-knowledge -i -X POST -H 'content-type: application/grpc' -H 'te: trailers' \
       --data-binary @"$WORK/grpc-req.bin" -o "$WORK/grpc-health.out" \
       "http://localhost:${GRPC_PORT}/grpc.health.v1.Health/Check" || return 1
  grep -aEqi 'grpc-status: *0[[:space:]]*$' "$WORK/grpc-health.out"
}
wait_until 20 "gRPC health on the published port $GRPC_PORT" grpc_health \
  || fail "payment-core's gRPC port $GRPC_PORT does not answer Health/Check: $(head -c 300 "$WORK/grpc-health.out" 2>/dev/null | tr -d '\000')"
ok "payment-core gRPC answers on published port $GRPC_PORT"
# dev_mode_bar: the checkout through nginx carries the development-mode bar
dev_mode_bar() {
  curl -sS -m 10 -o "$WORK/checkout.html" "$BASE/" || fail "GET / through nginx failed"
  grep -q 'class="dev-mode"' "$WORK/checkout.html"
}
dev_mode_bar || fail "the default stack's checkout has no development-mode bar"
ok "the default stack runs in development mode, and its checkout says so"

# https_h2: the checkout over nginx's TLS port answers 200 over HTTP/2
# (-k: the certificate is self-signed; what it is is checked below)
https_h2() {
  curl -sS -m 10 -k --http2 -o /dev/null -w '%{http_code} %{http_version}' \
       "https://localhost:$HTTPS_PORT/" >"$WORK/https.out" 2>&1
  [[ $(cat "$WORK/https.out") == "200 2" ]]
}
# served_cert: the subject and SHA-256 fingerprint of the certificate
# nginx serves on the TLS port, one per line
served_cert() {
  timeout 10 openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername localhost </dev/null 2>/dev/null \
    | openssl x509 -noout -subject -fingerprint -sha256 -nameopt RFC2253 2>/dev/null \
    | sed -e 's/^subject=//' -e 's/^.*Fingerprint=//'
}
# recreate_nginx [ENV=VALUE...]: nginx alone re-created (with the
# variables given, for compose), until healthy
recreate_nginx() {
  timeout 60 "${COMPOSE_CMD[@]}" rm -sf nginx >/dev/null 2>&1 || fail "could not remove nginx"
  timeout 120 env "$@" "${COMPOSE_CMD[@]}" up -d --no-build --no-deps nginx >"$WORK/nginx-up.out" 2>&1 \
    || fail "could not start nginx again: $(tail -n 5 "$WORK/nginx-up.out")"
  wait_healthy 60 nginx || fail "nginx is not healthy after being re-created"
}
wait_until 20 "HTTP/2 on the TLS port $HTTPS_PORT" https_h2 \
  || fail "GET https://localhost:$HTTPS_PORT/ did not answer 200 over HTTP/2: $(cat "$WORK/https.out" 2>/dev/null)"
ok "nginx answers over TLS and HTTP/2 on published port $HTTPS_PORT"
CERT1=$(served_cert) || true
[[ $(head -n1 <<<"$CERT1") == CN=localhost ]] || fail "the TLS port serves a certificate for $(head -n1 <<<"$CERT1"), not CN=localhost"
FINGERPRINT1=$(tail -n1 <<<"$CERT1")
recreate_nginx
wait_until 20 "HTTP/2 on the TLS port after re-creating nginx" https_h2 || fail "no HTTP/2 on $HTTPS_PORT after re-creating nginx"
[[ $(served_cert | tail -n1) == "$FINGERPRINT1" ]] \
  || fail "re-created nginx serves another certificate: the self-signed one was not kept in the edge-tls volume"
ok "nginx made a self-signed certificate for CN=localhost, and serves the same one after being re-created ($FINGERPRINT1)"
# An operator's own certificate: a host directory, used as it is. Its
# files are world-readable because nginx runs as www-data, not as the
# owner here (a real key would be given to uid 33 instead).
OWN_TLS=$WORK/own-tls
mkdir -p "$OWN_TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=docker-test-edge \
  -addext 'subjectAltName=DNS:localhost' -keyout "$OWN_TLS/tls.key" -out "$OWN_TLS/tls.crt" 2>/dev/null \
  || fail "openssl could not make the test's own certificate"
chmod 0755 "$OWN_TLS" && chmod 0644 "$OWN_TLS/tls.key" "$OWN_TLS/tls.crt"
OWN_SUM=$(cat "$OWN_TLS/tls.crt" "$OWN_TLS/tls.key" | sha256sum)
recreate_nginx EDGE_TLS_DIR="$OWN_TLS"
wait_until 20 "HTTP/2 with EDGE_TLS_DIR" https_h2 || fail "no HTTP/2 on $HTTPS_PORT with EDGE_TLS_DIR"
[[ $(served_cert | head -n1) == CN=docker-test-edge ]] \
  || fail "with EDGE_TLS_DIR nginx serves $(served_cert | head -n1), not the directory's CN=docker-test-edge"
[[ $(cat "$OWN_TLS/tls.crt" "$OWN_TLS/tls.key" | sha256sum) == "$OWN_SUM" ]] \
  || fail "nginx changed the files in EDGE_TLS_DIR"
# back to the volume, for the steps below
recreate_nginx
[[ $(served_cert | tail -n1) == "$FINGERPRINT1" ]] || fail "after EDGE_TLS_DIR nginx no longer serves the volume's certificate"
ok "with EDGE_TLS_DIR nginx serves that directory's certificate (CN=docker-test-edge), untouched; without, the volume's again"

# ================================================ 4. order, SSE, payment ===
phase "4. order 1 through nginx, SSE, report succeeded"
create_order order1 "docker test"
ORDER1=$ORDER SECRET1=$SECRET AUTH1=("${AUTH[@]}")
ok "POST /api/orders -> order $ORDER1"
open_sse s1 "$STREAM_URL" "${AUTH[@]}"
s1_PID=$SSE_PID
wait_until 20 "SSE stream of order 1 answers 200" http_status_200 "$WORK/s1.sse" \
  || fail "SSE stream of order 1 did not open"
sleep 1
report "$ORDER1" succeeded || fail "mock-provider report failed: $(cat "$WORK/report-$ORDER1.out")"
SERVED1=$(header_of "$WORK/s1.sse" X-Gateway-Instance)
wait_until 30 "event: succeeded on order 1's stream" has_event "$WORK/s1.sse" succeeded \
  || fail "no 'event: succeeded' on order 1's stream"
ok "order 1: 'event: succeeded' arrived on the SSE stream through nginx${SERVED1:+ (}${SERVED1}${SERVED1:+)}"
# the stream of one order ends after its final event
wait_until 15 "order 1's stream to end" gone "$s1_PID" \
  || echo "note: order 1's stream was still open 15s after its final event" >&2
kill "$s1_PID" 2>/dev/null || true
echo "order 1 stream (id:event): $(sse_summary "$WORK/s1.sse")"
[[ $(sse_count "$WORK/s1.sse" succeeded) -eq 1 ]] || fail "order 1: 'event: succeeded' arrived more than once"

# ======================================= 5. gateway loss, Last-Event-ID ===
phase "5. order 2: stop the serving gateway, resume with Last-Event-ID"
create_order order2 "docker test failover"
ORDER2=$ORDER URL2=$STREAM_URL AUTH2=("${AUTH[@]}")
open_sse s2a "$URL2" "${AUTH2[@]}"
s2a_PID=$SSE_PID
wait_until 20 "SSE stream A of order 2 answers 200" http_status_200 "$WORK/s2a.sse" \
  || fail "SSE stream of order 2 did not open"
# the payer opens the provider page: the order moves to processing (an event
# with an id that the reconnect must not repeat)
curl -sS -m 20 -o "$WORK/pay-page.out" -w '%{http_code}' "$PROVIDER_BASE/pay/$ORDER2" >"$WORK/pay-page.code" || true
wait_until 10 "a first event with an id on stream A" has_id "$WORK/s2a.sse" \
  || echo "note: no event with an id on stream A yet (GET /pay answered $(cat "$WORK/pay-page.code"))" >&2
SERVING=$(header_of "$WORK/s2a.sse" X-Gateway-Instance)
stop_gateway() {
  timeout 60 "${COMPOSE_CMD[@]}" stop -t 10 "$1" >/dev/null 2>&1
}
if [[ "$SERVING" == gateway-1 || "$SERVING" == gateway-2 ]]; then
  echo "stream A is served by $SERVING (X-Gateway-Instance)"
  stop_gateway "$SERVING"
  wait_until 30 "stream A to break after stopping $SERVING" gone "$s2a_PID" \
    || fail "stream A still open 30s after $SERVING stopped"
  STOPPED=$SERVING
else
  echo "no X-Gateway-Instance header; stopping gateway-1, then gateway-2 if the stream survives"
  stop_gateway gateway-1
  STOPPED=gateway-1
  if ! wait_until 20 "stream A to break" gone "$s2a_PID"; then
    timeout 60 "${COMPOSE_CMD[@]}" start gateway-1 >/dev/null
    wait_healthy 120 gateway-1
    stop_gateway gateway-2
    STOPPED=gateway-2
    wait_until 30 "stream A to break" gone "$s2a_PID" || fail "stream A survived stopping both gateways"
  fi
fi
LAST_ID=$(sse_last_id "$WORK/s2a.sse")
ok "stream A broke when $STOPPED stopped (last id seen: ${LAST_ID:-none})"
# pay while no stream is open: the reconnect must replay it
report "$ORDER2" succeeded || fail "mock-provider report for order 2 failed: $(cat "$WORK/report-$ORDER2.out")"
RESUME=()
[[ -n "$LAST_ID" ]] && RESUME=(-H "Last-Event-ID: $LAST_ID")
open_sse s2b "$URL2" "${AUTH2[@]}" "${RESUME[@]}"
s2b_PID=$SSE_PID
wait_until 30 "event: succeeded on stream B" has_event "$WORK/s2b.sse" succeeded \
  || fail "no 'event: succeeded' after reconnecting with Last-Event-ID: ${LAST_ID:-none}"
wait_until 15 "stream B to end" gone "$s2b_PID" || true
kill "$s2b_PID" 2>/dev/null || true
SERVED_B=$(header_of "$WORK/s2b.sse" X-Gateway-Instance)
echo "order 2 stream A (id:event): $(sse_summary "$WORK/s2a.sse")"
echo "order 2 stream B (id:event): $(sse_summary "$WORK/s2b.sse")"
N_SUCCEEDED=$(( $(sse_count "$WORK/s2a.sse" succeeded) + $(sse_count "$WORK/s2b.sse" succeeded) ))
[[ $N_SUCCEEDED -eq 1 ]] || fail "order 2: 'event: succeeded' arrived $N_SUCCEEDED times over both connections"
DUP_IDS=$( { sse_ids "$WORK/s2a.sse"; sse_ids "$WORK/s2b.sse"; } | sort | uniq -d)
[[ -z "$DUP_IDS" ]] || fail "order 2: ids repeated across the reconnect: $DUP_IDS"
ok "order 2: resumed through nginx${SERVED_B:+ on $SERVED_B} with Last-Event-ID ${LAST_ID:-none}; succeeded exactly once, no id repeated"

# ============================================ 6. payment-core restart ====
phase "6. payment-core restarted and re-created, order 1 still succeeded"
timeout 120 "${COMPOSE_CMD[@]}" restart -t 15 payment-core >/dev/null
ALIVE=()
for s in payment-core mock-provider nginx gateway-1 gateway-2; do [[ $s == "$STOPPED" ]] || ALIVE+=("$s"); done
wait_healthy 180 "${ALIVE[@]}"
order1_succeeded() {
  local code
  code=$(curl -sS -m 10 -o "$WORK/order1-after.json" -w '%{http_code}' \
           "${AUTH1[@]}" "$BASE/api/orders/$ORDER1") || return 1
  [[ "$code" == 200 ]] || return 1
  json_get "$WORK/order1-after.json" status | tr '[:upper:]' '[:lower:]' | grep -q succeeded
}
wait_until 60 "GET /api/orders/$ORDER1 to say succeeded" order1_succeeded \
  || fail "after the restart order 1 is not succeeded: $(cat "$WORK/order1-after.json" 2>/dev/null)"
ok "after 'restart payment-core' order 1 is still succeeded"
# a new container (not just a restart) must find the data on the named volume
timeout 180 "${COMPOSE_CMD[@]}" up -d --no-build --no-deps --force-recreate payment-core >/dev/null 2>&1 \
  || fail "could not re-create payment-core"
wait_healthy 180 "${ALIVE[@]}"
rm -f "$WORK/order1-after.json"
wait_until 60 "GET /api/orders/$ORDER1 to say succeeded" order1_succeeded \
  || fail "after re-creating payment-core order 1 is not succeeded: $(cat "$WORK/order1-after.json" 2>/dev/null)"
ok "after re-creating the payment-core container order 1 is still succeeded (SQLite on the named volume)"

# ============================== 7. the replicated stack (PostgreSQL) ====
phase "7. replicated stack up (PostgreSQL, two payment-core replicas)"
# down the SQLite stack first: the replicated one reuses its service names
stack_down || true
COMPOSE_CMD+=(-f "$ROOT/docker-compose.replicated.yml")
# The drill needs 2 s heartbeats (loadgen's watchdog, 2.5 of them, then
# fires in 5 s, and a 15 s freeze is beyond it); the checks here do not mind.
if [[ $DRILL == 1 ]]; then export HEARTBEAT_SECS=2; fi
bring_up "replicated stack" postgres payment-core payment-core-2 mock-provider gateway-1 gateway-2 nginx
phase "7. payments: a replica killed, one cut off the database, PostgreSQL restarted"

# pay_through_nginx NAME: an order through nginx, its stream, a report;
# `event: succeeded` exactly once
pay_through_nginx() {
  local name=$1 order pid
  wait_until 60 "both gateways ready" gateways_ready || fail "$name: a gateway has no stream from a core"
  create_order "$name" "docker test $name"
  order=$ORDER
  open_sse "$name" "$STREAM_URL" "${AUTH[@]}"
  pid=$SSE_PID
  wait_until 20 "$name: stream answers 200" http_status_200 "$WORK/$name.sse" || fail "$name: stream did not open"
  report "$order" succeeded || fail "$name: report failed: $(cat "$WORK/report-$order.out")"
  wait_until 30 "$name: event: succeeded" has_event "$WORK/$name.sse" succeeded \
    || fail "$name: no 'event: succeeded' ($(sse_summary "$WORK/$name.sse"))"
  wait_until 15 "$name: stream to end" gone "$pid" || true
  kill "$pid" 2>/dev/null || true
  [[ $(sse_count "$WORK/$name.sse" succeeded) -eq 1 ]] || fail "$name: 'event: succeeded' more than once"
}
# both gateways have their stream from a core open (their healthcheck asks
# /readyz): a stream opened before that would get a lone retry: frame
gateways_ready() {
  timeout 20 "${COMPOSE_CMD[@]}" exec -T gateway-1 sse-gateway healthcheck \
    && timeout 20 "${COMPOSE_CMD[@]}" exec -T gateway-2 sse-gateway healthcheck
}

! dev_mode_bar || fail "the replicated stack's checkout has the development-mode bar"
# the dashboard stream with the token from its secret file: the header from
# a file, so the token stays out of the process list
( umask 077 && printf 'Authorization: Bearer %s\n' "$(tr -d '\n' <"$SECRETS_DIR/admin_token")" >"$WORK/admin.header" )
dashboard_status() { # HEADER_FILE: the status line's code of /api/events
  curl -sS -N -i -m 3 -H "@$1" "$BASE/api/events" 2>/dev/null | head -n1 | awk '{print $2}'
}
wait_until 60 "both gateways ready" gateways_ready || fail "a gateway of the replicated stack has no stream from a core"
[[ $(dashboard_status "$WORK/admin.header") == 200 ]] || fail "the dashboard stream refused the admin token from its secret"
printf 'Authorization: Bearer dev-admin-token\n' >"$WORK/dev-admin.header"
[[ $(dashboard_status "$WORK/dev-admin.header") == 401 ]] || fail "the replicated stack accepts the public admin token"
ok "replicated stack: no development mode; the dashboard takes the admin token from its secret, not the public one"
pay_through_nginx order3
ok "order 3 paid through nginx with the core on PostgreSQL"

docker kill -s KILL "$(container_of payment-core)" >/dev/null || fail "could not kill payment-core"
pay_through_nginx order4
ok "order 4 paid while replica payment-core was killed (-9): gateways and the provider used payment-core-2"
timeout 60 "${COMPOSE_CMD[@]}" start payment-core >/dev/null 2>&1 || fail "could not start payment-core again"
wait_healthy 120 payment-core || fail "payment-core did not come back"
ok "payment-core back after the kill"

DB_NETWORK=$(db_network) || fail "no _db network on postgres"
docker network disconnect "$DB_NETWORK" "$(container_of payment-core)" || fail "could not cut payment-core off the database"
wait_until 30 "payment-core to report NOT_SERVING without its database" core_not_serving payment-core \
  || fail "payment-core still SERVING 30 s after losing its database"
ok "payment-core cut off from PostgreSQL reports NOT_SERVING"
pay_through_nginx order5
ok "order 5 paid while payment-core was cut off from the database"
docker network connect "$DB_NETWORK" "$(container_of payment-core)" || fail "could not reconnect payment-core"
wait_until 60 "payment-core to serve again" core_serving payment-core || fail "payment-core did not recover by itself"
ok "payment-core serves again once the database is reachable"

timeout 120 "${COMPOSE_CMD[@]}" restart -t 30 postgres >/dev/null || fail "could not restart postgres"
wait_until 60 "payment-core to serve after the PostgreSQL restart" core_serving payment-core \
  || fail "payment-core did not recover from the PostgreSQL restart"
wait_until 60 "payment-core-2 to serve after the PostgreSQL restart" core_serving payment-core-2 \
  || fail "payment-core-2 did not recover from the PostgreSQL restart"
pay_through_nginx order6
ok "order 6 paid after restarting PostgreSQL; both replicas recovered by themselves"

# ============================================ 8. the fault drill, DRILL=1 ===
if [[ $DRILL == 1 ]]; then
  phase "8. fault drill on the replicated stack"
  # bounded: the build runs under `timeout 3600`
  if [[ -n $LOADGEN_BUILD_PID ]]; then
    wait "$LOADGEN_BUILD_PID" || { tail -n 60 "$WORK/loadgen-build.out" >&2; fail "release build of loadgen failed"; }
  fi
  DRILL_RAN=2
  DRILL_STACK=$PROJECT "$ROOT/.ci/drill.sh" || fail "the fault drill failed (its report is above)"
  DRILL_RAN=1
  phase "8. rolling update rehearsal and a slow, lossy network"
  ROLLING_RAN=2
  DRILL_STACK=$PROJECT LOADGEN=${LOADGEN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/loadgen} \
    "$ROOT/.ci/rolling.sh" || fail "the rolling update rehearsal failed (its report is above)"
  ROLLING_RAN=1
fi

log "all checks passed"
