#!/usr/bin/env bash
# The gateway's HTTP API against its own OpenAPI description (issue #12):
# schemathesis 4 generates requests from GET /openapi.json, valid and
# hostile, and sends them to a live gateway with a real payment-core behind
# it (debug binaries, a throwaway SQLite file, free loopback ports). It
# fails on any 5xx, and on any status, content type, header or body that
# the description does not allow. Takes 30-90 s; bounded by
# SCHEMATHESIS_TIMEOUT in any case.
#
# Event streams never end by themselves, so each one is bounded here:
#   - schemathesis stops reading a text/event-stream after
#     max-stream-events events or --request-timeout seconds, and checks
#     each event it read against the stream's schema;
#   - the gateway sends a heartbeat every second (HEARTBEAT_SECS=1), so a
#     quiet dashboard stream reaches that many events at once;
#   - orders expire a second after they are created (ORDER_TTL_SECS=1), so
#     an order's stream, opened through the description's link from
#     POST /api/orders, ends with the order's final event.
# schemathesis has the admin token for the dashboard's scheme only, so
# the dashboard stream is tested open too, and ignored_auth checks that
# requests without it are refused. The services run as shipped, not in
# development mode: their secrets and the gateway's API key are made here.
#
# Every check, positive_data_acceptance and negative_data_rejection among
# them: the description is exactly as strict as the server. One exception:
# negative_data_rejection is off in the coverage phase only, which calls
# a header the description does not name a violation, while HTTP servers
# must ignore headers they do not know (RFC 9110 section 5.1). Two fixed
# seeds, so a failure replays.
#
# Uses binaries the caller built, or builds them: BIN_DIR (default
# target/debug, built with cargo here). Environment:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (50)
#   SCHEMATHESIS_TIMEOUT       bound on the whole schemathesis run, s (600)
#   SCHEMATHESIS_SEEDS         the fixed seeds, one run each ("1 2"), so a
#                              failure in CI replays the same way here
# Needs schemathesis 4.x (pip install schemathesis==4.32.5) and curl.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
TIME_BOUND=${SCHEMATHESIS_TIMEOUT:-600}
CHECKS=all
SEEDS=${SCHEMATHESIS_SEEDS:-1 2}

version=$(st --version 2>/dev/null || true)
if [[ $version != *"version 4."* ]]; then
  die "needs schemathesis 4.x on PATH (found: ${version:-none}); pip install schemathesis==4.32.5"
fi

if [[ -z ${BIN_DIR:-} ]]; then
  cargo build --locked -q -p payment-core -p sse-gateway
  BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/debug
fi

work=$(mktemp -d /tmp/schemathesis.XXXXXX)
pids=()
stop() {
  local status=$?
  stop_pids "${pids[@]}"
  if [[ $status -ne 0 ]]; then
    for name in core gateway; do
      [[ -s $work/$name.log ]] || continue
      log "last lines of the $name's log:"
      tail -n 30 "$work/$name.log" >&2
    done
  fi
  rm -rf "$work"
  exit "$status"
}
on_exit stop

core_port=$(free_port)
gateway_port=$(free_port)
gateway=http://127.0.0.1:$gateway_port
admin_token=st-admin-$(openssl rand -hex 16)
# Production mode, as shipped: credentials of this run's own, none public.
# A fresh key for the gateway (the core holds its hash).
key_out=$("$BIN_DIR/payment-core" api-key --name schemathesis --merchant st --roles merchant+gateway)
gateway_key=$(sed -n 's/^key: *//p' <<<"$key_out")
gateway_key_entry=$(sed -n 's/^entry: *//p' <<<"$key_out")
[[ -n $gateway_key && -n $gateway_key_entry ]] || die "payment-core api-key printed no key"
export PAYMENTS_PUSH_DEV=0

# JSON logs: plain text when they are shown after a failure.
export LOG_FORMAT=json PAYMENT_CORE_LISTEN=127.0.0.1:$core_port
# The provider is never called: nobody pays; orders expire instead.
DATABASE_URL=sqlite://$work/core.db PROVIDER_SECRET=st-provider-$(openssl rand -hex 16) \
  PAYMENT_CORE_API_KEYS=$gateway_key_entry \
  PROVIDER_PAGE_URL=http://127.0.0.1:9/pay ORDER_TTL_SECS=1 EXPIRY_INTERVAL_MS=200 \
  "$BIN_DIR/payment-core" >"$work/core.log" 2>&1 &
pids+=($!)
wait_until -i 0.1 15 "payment-core to serve" "$BIN_DIR/payment-core" healthcheck || die "payment-core did not start"

GATEWAY_LISTEN=127.0.0.1:$gateway_port PAYMENT_CORE_URL=http://$PAYMENT_CORE_LISTEN \
  ADMIN_TOKEN=$admin_token PAYMENT_CORE_API_KEY=$gateway_key HEARTBEAT_SECS=1 GATEWAY_INSTANCE=schemathesis \
  "$BIN_DIR/sse-gateway" >"$work/gateway.log" 2>&1 &
pids+=($!)
# Ready: the gateway's stream from payment-core is open.
wait_until -i 0.1 15 "the gateway to be ready" curl -fsS -o /dev/null "$gateway/readyz" || die "the gateway did not become ready"

# From a file, not the URL: schemathesis skips the operation that serves
# the description it was given by URL, and /openapi.json is an operation too.
curl -fsS -o "$work/openapi.json" "$gateway/openapi.json"
# The admin token for the one scheme it answers (not as a header on every
# request, which ignored_auth would then see on requests it sends without).
# negative_data_rejection runs in every phase but coverage's: that phase
# calls a request with a header the description does not name
# (`x-schemathesis-unknown-property`) schema-violating, and HTTP servers
# must ignore headers they do not know (RFC 9110 section 5.1): proxies add
# their own to every request. Fuzzing's negative cases still run it.
cat >"$work/schemathesis.toml" <<TOML
max-stream-events = 3

# Every check ($CHECKS).
[checks]
enabled = true

[auth.openapi.admin_bearer]
bearer = "$admin_token"

[phases.coverage.checks.negative_data_rejection]
enabled = false
TOML

log "$version against $gateway (payment-core on $PAYMENT_CORE_LISTEN), $MAX_EXAMPLES examples per operation, seeds $SEEDS, each bounded at ${TIME_BOUND}s"
status=0
for seed in $SEEDS; do
  started=$SECONDS
  run_status=0
  # In the work dir, so that nothing lands in the checkout. With pipefail,
  # the pipeline fails with schemathesis' status (or timeout's: 124).
  (
    cd "$work"
    timeout --kill-after=10 "$TIME_BOUND" \
      st --config-file "$work/schemathesis.toml" run "$work/openapi.json" \
      --url "$gateway" \
      --max-examples "$MAX_EXAMPLES" \
      --request-timeout 3 \
      --generation-database none \
      --no-color \
      --seed "$seed"
  ) 2>&1 | tee "$work/schemathesis-$seed.out" || run_status=$?
  elapsed=$((SECONDS - started))
  cases=$(grep -Eo '[0-9]+ generated[^.]*' "$work/schemathesis-$seed.out" | tail -1 || true)
  if [[ $run_status -eq 0 ]]; then
    log "seed $seed PASSED in ${elapsed}s: ${cases:-no count}"
  elif timed_out "$run_status"; then
    log "seed $seed TIMED OUT after ${elapsed}s (bound ${TIME_BOUND}s): ${cases:-no count}"
    status=$run_status
  else
    log "seed $seed FAILED (exit $run_status) in ${elapsed}s: ${cases:-no count} (SCHEMATHESIS_SEEDS=$seed replays it)"
    status=$run_status
  fi
done
exit "$status"
