#!/usr/bin/env bash
# Runs the whole system on this machine.
#
#   scripts/run-local.sh             embedded defaults: one payment-core on
#                                    SQLite (./data), mock-provider, one gateway
#   scripts/run-local.sh --postgres  two payment-core replicas sharing one
#                                    PostgreSQL log; the gateway and the
#                                    provider use both. Uses DATABASE_URL if it
#                                    is a postgres:// URL, otherwise starts a
#                                    throwaway server (Debian's postgresql) in
#                                    a temp dir, removed on exit.
#
# Ctrl-C stops everything. Settings come from the environment (see README);
# the gateway's and the provider's API keys from GATEWAY_API_KEY and
# PROVIDER_API_KEY, as in compose. It runs in development mode
# (PAYMENTS_PUSH_DEV=1): the public development credentials stand in for
# every one not set.
set -euo pipefail
. "$(dirname "$0")/../.ci/lib.sh"
cd "$ROOT"

postgres=false
case "${1:-}" in
  "") ;;
  --postgres) postgres=true ;;
  *) sed -n '2,13p' "$0" >&2; exit 64 ;;
esac

PROFILE=${PROFILE:-debug}
cargo_flags=()
[ "$PROFILE" = release ] && cargo_flags+=(--release)
echo "building (profile: $PROFILE)..." >&2
cargo build "${cargo_flags[@]}" -p payment-core -p mock-provider -p sse-gateway
bin="${CARGO_TARGET_DIR:-target}/$PROFILE"

# Development mode, so that it runs with no credentials set: the public
# development ones stand in, and each service logs a banner and marks its
# pages. PAYMENTS_PUSH_DEV=0 runs it on credentials of one's own (README,
# "Running in production").
export PAYMENTS_PUSH_DEV=${PAYMENTS_PUSH_DEV:-1}
export PAYMENT_CORE_LISTEN=${PAYMENT_CORE_LISTEN:-127.0.0.1:50051}
export PROVIDER_LISTEN=${PROVIDER_LISTEN:-127.0.0.1:8081}
export GATEWAY_LISTEN=${GATEWAY_LISTEN:-127.0.0.1:8080}
export PROVIDER_PAGE_URL=${PROVIDER_PAGE_URL:-http://localhost:${PROVIDER_LISTEN##*:}/pay}
export ADMIN_TOKEN=${ADMIN_TOKEN:-dev-admin-token}
SECOND_CORE_LISTEN=${SECOND_CORE_LISTEN:-127.0.0.1:50052}

pids=()
pg_dir=""
stop() {
  stop_pids "${pids[@]}"
  if [ -n "$pg_dir" ]; then
    as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
on_exit stop

# initdb refuses to run as root: as root, run the server as Debian's postgres user.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_throwaway_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$pg_bin/initdb" ] || { echo "no PostgreSQL server found: apt-get install postgresql, or set DATABASE_URL=postgres://..." >&2; exit 1; }
  pg_dir=$(mktemp -d /tmp/payments-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  local port=${PG_PORT:-55432}
  as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust >/dev/null
  as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
  as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres payments
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/payments"
  echo "throwaway PostgreSQL on 127.0.0.1:$port (removed on exit)" >&2
}

# Up to 15 s for a service to answer its healthcheck; it carries on
# either way (the message says which one is late).
wait_serving() { wait_until -i 0.1 15 "$(basename "$1") to answer its healthcheck" "$@" healthcheck || true; }

if $postgres; then
  case "${DATABASE_URL:-}" in postgres://*|postgresql://*) ;; *) start_throwaway_postgres ;; esac
  export PAYMENT_CORE_URL=${PAYMENT_CORE_URL:-http://${PAYMENT_CORE_LISTEN},http://${SECOND_CORE_LISTEN}}
  "$bin/payment-core" & pids+=($!)
  PAYMENT_CORE_LISTEN=$SECOND_CORE_LISTEN "$bin/payment-core" & pids+=($!)
  wait_serving "$bin/payment-core"
  PAYMENT_CORE_LISTEN=$SECOND_CORE_LISTEN wait_serving "$bin/payment-core"
  where="the PostgreSQL database ${DATABASE_URL##*@}, shared by the replicas on ${PAYMENT_CORE_LISTEN} and ${SECOND_CORE_LISTEN}"
else
  mkdir -p data
  export DATABASE_URL=${DATABASE_URL:-sqlite://data/payment-core.db}
  export PAYMENT_CORE_URL=${PAYMENT_CORE_URL:-http://${PAYMENT_CORE_LISTEN}}
  "$bin/payment-core" & pids+=($!)
  wait_serving "$bin/payment-core"
  where="${DATABASE_URL#sqlite://}"
fi
# Each client gets its own key, as in compose (GATEWAY_API_KEY,
# PROVIDER_API_KEY; unset: each binary's public development key), never a
# PAYMENT_CORE_API_KEY the shell happens to export to both.
env -u PAYMENT_CORE_API_KEY ${PROVIDER_API_KEY:+PAYMENT_CORE_API_KEY="$PROVIDER_API_KEY"} \
  "$bin/mock-provider" & pids+=($!)
env -u PAYMENT_CORE_API_KEY ${GATEWAY_API_KEY:+PAYMENT_CORE_API_KEY="$GATEWAY_API_KEY"} \
  "$bin/sse-gateway" & pids+=($!)
wait_serving "$bin/sse-gateway"

cat >&2 <<MSG

  Checkout:   http://localhost:${GATEWAY_LISTEN##*:}/
  Dashboard:  http://localhost:${GATEWAY_LISTEN##*:}/dashboard (sign in with ADMIN_TOKEN)
  Provider:   ${PROVIDER_PAGE_URL}/<order id>   (opened by the checkout as a popup)
  gRPC:       grpcurl -plaintext ${PAYMENT_CORE_LISTEN} list

  Ctrl-C stops everything. Orders are kept in ${where}.

MSG
# Stop everything as soon as any one service exits (with --postgres, a
# killed replica is the exception: the other one carries on).
if $postgres; then wait -n "${pids[@]:2}"; else wait -n "${pids[@]}"; fi
