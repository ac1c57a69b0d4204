#!/usr/bin/env bash
# Runs the whole system on this machine with the embedded defaults:
# payment-core (SQLite in ./data), mock-provider and one sse-gateway.
# Ctrl-C stops all three. Settings come from the environment (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-debug}
cargo_flags=()
[ "$PROFILE" = release ] && cargo_flags+=(--release)
echo "building (profile: $PROFILE)..." >&2
cargo build "${cargo_flags[@]}" -p payment-core -p mock-provider -p sse-gateway
bin="target/$PROFILE"

mkdir -p data
export DATABASE_URL=${DATABASE_URL:-sqlite://data/payment-core.db}
export PAYMENT_CORE_LISTEN=${PAYMENT_CORE_LISTEN:-127.0.0.1:50051}
export PROVIDER_LISTEN=${PROVIDER_LISTEN:-127.0.0.1:8081}
export GATEWAY_LISTEN=${GATEWAY_LISTEN:-127.0.0.1:8080}
export PAYMENT_CORE_URL=${PAYMENT_CORE_URL:-http://${PAYMENT_CORE_LISTEN}}
export PROVIDER_PAGE_URL=${PROVIDER_PAGE_URL:-http://localhost:${PROVIDER_LISTEN##*:}/pay}
export ADMIN_TOKEN=${ADMIN_TOKEN:-dev-admin-token}

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

"$bin/payment-core" & pids+=($!)
for _ in $(seq 1 100); do "$bin/payment-core" healthcheck 2>/dev/null && break; sleep 0.1; done
"$bin/mock-provider" & pids+=($!)
"$bin/sse-gateway" & pids+=($!)
for _ in $(seq 1 100); do "$bin/sse-gateway" healthcheck 2>/dev/null && break; sleep 0.1; done

cat >&2 <<MSG

  Checkout:   http://localhost:${GATEWAY_LISTEN##*:}/
  Dashboard:  http://localhost:${GATEWAY_LISTEN##*:}/dashboard?token=${ADMIN_TOKEN}
  Provider:   ${PROVIDER_PAGE_URL}/<order id>   (opened by the checkout as a popup)
  gRPC:       grpcurl -plaintext ${PAYMENT_CORE_LISTEN} list

  Ctrl-C stops everything. Orders are kept in ${DATABASE_URL#sqlite://}.

MSG
# Stop everything as soon as any one service exits.
wait -n "${pids[@]}"
