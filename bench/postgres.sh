#!/usr/bin/env bash
# The PostgreSQL store's benchmark matrix (BENCHMARKS.md, "payment-core on
# PostgreSQL"): an empty database per run, release binaries, bench/run.sh.
#
#   1. results/s, unpaced, 10,000 watchers: SQLite, then 1, 2 and 3
#      replicas on PostgreSQL with reports spread over every replica;
#   2. report->browser latency at 1,000 results/s, 10,000 watchers: 1 replica,
#      then 2 and 3 replicas with every report sent to a replica other than
#      the gateway's (the event crosses replicas); the 3-replica run also
#      runs nginx + nchan, in the same run, for comparison.
#
# Results go to bench/results/postgres (OUT_DIR overrides). PG_ADMIN_URL: a
# role that may create databases (default
# postgres://postgres:postgres@127.0.0.1:5432/postgres). REPEATS=K runs each
# cross-replica latency run K times (the later ones as <label>.<k>.json).
# Other variables are bench/run.sh's. Exit status: non-zero if any run lost
# or repeated an event.
set -euo pipefail
. "$(dirname "$0")/../.ci/lib.sh"
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
DB=bench_pg
export CORE_DATABASE_URL="${PG_ADMIN_URL%/*}/$DB"
export OUT_DIR=${OUT_DIR:-$ROOT/bench/results/postgres}
N=${N:-10000}
REPEATS=${REPEATS:-1}
status=0

fresh_database() {
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
}

run() { # replicas report_to args...
  local replicas=$1 report_to=$2; shift 2
  fresh_database
  CORE_REPLICAS=$replicas REPORT_TO=$report_to "$ROOT/bench/run.sh" "$@" || status=$?
}

CORE_DATABASE_URL= "$ROOT/bench/run.sh" latency "$N" max || status=$?
for replicas in 1 2 3; do run "$replicas" all latency "$N" max; done
run 1 others latency "$N" 1000
run 2 others latency "$N" 1000
run 3 others latency "$N" 1000 both
for k in $(seq 2 "$REPEATS"); do
  export RESULT_SUFFIX=".$k"
  run 2 others latency "$N" 1000
  run 3 others latency "$N" 1000
done
exit "$status"
