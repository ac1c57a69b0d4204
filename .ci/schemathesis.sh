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
# schemathesis has the admin token (Authorization: Bearer), so the
# dashboard stream is tested open too; it checks that requests without the
# token are refused (ignored_auth).
#
# Checks: everything but the two that judge requests rather than answers
# by the description alone, because the gateway is deliberately more
# lenient or stricter than JSON Schema can say:
#   - positive_data_acceptance: JSON Schema calls 184.0 an integer, serde
#     does not take it for amount_minor; "ABC" fits the currency pattern but
#     is no ISO 4217 code payment-core takes (400 either way, as described);
#   - negative_data_rejection: an empty or space-padded Last-Event-ID is
#     taken as "no resume point", not refused.
#
# Uses binaries the caller built, or builds them: BIN_DIR (default
# target/debug, built with cargo here). Environment:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (50)
#   SCHEMATHESIS_TIMEOUT       bound on the whole schemathesis run, s (600)
#   SCHEMATHESIS_SEED          replay a run (schemathesis prints its seed)
# Needs schemathesis 4.x (pip install schemathesis==4.32.5) and curl.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
TIME_BOUND=${SCHEMATHESIS_TIMEOUT:-600}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,unsupported_method,allow_header_conformance,missing_required_header,ignored_auth,use_after_free,ensure_resource_availability,positive_data_acceptance

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
admin_token=st-admin-$RANDOM$RANDOM

# JSON logs: plain text when they are shown after a failure.
export LOG_FORMAT=json PAYMENT_CORE_LISTEN=127.0.0.1:$core_port
# The provider is never called: nobody pays; orders expire instead.
DATABASE_URL=sqlite://$work/core.db PROVIDER_SECRET=st-provider-$RANDOM \
  PROVIDER_PAGE_URL=http://127.0.0.1:9/pay ORDER_TTL_SECS=1 EXPIRY_INTERVAL_MS=200 \
  "$BIN_DIR/payment-core" >"$work/core.log" 2>&1 &
pids+=($!)
wait_until -i 0.1 15 "payment-core to serve" "$BIN_DIR/payment-core" healthcheck || die "payment-core did not start"

GATEWAY_LISTEN=127.0.0.1:$gateway_port PAYMENT_CORE_URL=http://$PAYMENT_CORE_LISTEN \
  ADMIN_TOKEN=$admin_token HEARTBEAT_SECS=1 GATEWAY_INSTANCE=schemathesis \
  "$BIN_DIR/sse-gateway" >"$work/gateway.log" 2>&1 &
pids+=($!)
# Ready: the gateway's stream from payment-core is open.
wait_until -i 0.1 15 "the gateway to be ready" curl -fsS -o /dev/null "$gateway/readyz" || die "the gateway did not become ready"

# From a file, not the URL: schemathesis skips the operation that serves
# the description it was given by URL, and /openapi.json is an operation too.
curl -fsS -o "$work/openapi.json" "$gateway/openapi.json"
# The admin token for the one scheme it answers (not as a header on every
# request, which ignored_auth would then see on requests it sends without).
printf 'max-stream-events = 3\n\n[auth.openapi.admin_bearer]\nbearer = "%s"\n' "$admin_token" >"$work/schemathesis.toml"

seed=()
[[ -n ${SCHEMATHESIS_SEED:-} ]] && seed=(--seed "$SCHEMATHESIS_SEED")
log "$version against $gateway (payment-core on $PAYMENT_CORE_LISTEN), $MAX_EXAMPLES examples per operation, bounded at ${TIME_BOUND}s"
started=$SECONDS
status=0
# In the work dir, so that nothing lands in the checkout. With pipefail,
# the pipeline fails with schemathesis' status (or timeout's: 124).
(
  cd "$work"
  timeout --kill-after=10 "$TIME_BOUND" \
    st --config-file "$work/schemathesis.toml" run "$work/openapi.json" \
    --url "$gateway" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout 3 \
    --generation-database none \
    --no-color \
    "${seed[@]}"
) 2>&1 | tee "$work/schemathesis.out" || status=$?
elapsed=$((SECONDS - started))

cases=$(grep -Eo '[0-9]+ generated[^.]*' "$work/schemathesis.out" | tail -1 || true)
run_seed=$(grep -Eo 'Seed: [0-9]+' "$work/schemathesis.out" | tail -1 || true)
if [[ $status -eq 0 ]]; then
  log "PASSED in ${elapsed}s: ${cases:-no count}; ${run_seed:-no seed}"
elif timed_out "$status"; then
  log "TIMED OUT after ${elapsed}s (bound ${TIME_BOUND}s): ${cases:-no count}"
else
  log "FAILED (exit $status) in ${elapsed}s: ${cases:-no count}; ${run_seed:-no seed} (SCHEMATHESIS_SEED replays it)"
fi
exit "$status"
