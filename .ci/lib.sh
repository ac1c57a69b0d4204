# shellcheck shell=bash
# Shell helpers shared by the CI, benchmark and run scripts (.ci/, bench/,
# scripts/): messages, bounded waits, free ports, stopping processes, timed
# phases, and the compose stack of the Docker checks. Sourced, never run:
#
#   . "$(dirname "$0")/lib.sh"           from .ci/
#   . "$(dirname "$0")/../.ci/lib.sh"    from bench/ and scripts/
#
# Sourcing sets ROOT (the repository root) and LOG_TAG (the script's name in
# its messages; a script may set another after sourcing) and defines
# functions; it sets no shell options (each script has its own
# `set -euo pipefail`) and changes no directory. Every wait here is bounded.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=$(basename "$0" .sh)

# ------------------------------------------------------------- messages ---
# log MESSAGE: one line on stderr, with the script's name and the time.
log() { printf '[%s %(%H:%M:%S)T] %s\n' "$LOG_TAG" -1 "$*" >&2; }
# die MESSAGE: log it and exit 1 (the script's EXIT trap still runs).
die() { log "$*"; exit 1; }

# --------------------------------------------------------------- phases ---
# phase NAME: the script's next step begins; the one before ends and its
# duration is logged. phase_summary: every phase's duration and the total,
# on stdout, so that a CI log shows where the time went (a script calls it
# from its EXIT trap, so a failed run shows it too).
PHASES=()
_phase_name=
_phase_start=$SECONDS
phase() {
  phase_end
  _phase_name=$1
  _phase_start=$SECONDS
  printf '\n' >&2
  log "$1"
}
phase_end() {
  [[ -n $_phase_name ]] || return 0
  local took=$((SECONDS - _phase_start))
  PHASES+=("$(printf '%5ds  %s' "$took" "$_phase_name")")
  log "$_phase_name: ${took}s"
  _phase_name=
}
phase_summary() {
  phase_end
  ((${#PHASES[@]})) || return 0
  echo "$LOG_TAG: time per phase"
  printf '  %s\n' "${PHASES[@]}"
  printf '  %5ds  total\n' "$SECONDS"
}

# ---------------------------------------------------------------- waits ---
# wait_until [-i INTERVAL] SECONDS WHAT COMMAND...: run COMMAND (its output
# discarded) every INTERVAL seconds (default 1) until it succeeds; after
# SECONDS, log what was awaited and return 1.
wait_until() {
  local every=1
  if [[ $1 == -i ]]; then every=$2; shift 2; fi
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${secs}s waiting for: $what"
      return 1
    fi
    sleep "$every"
  done
}

# timed_out STATUS: whether an exit status is timeout(1)'s (124, or 137
# when its --kill-after had to KILL).
timed_out() { [[ $1 -eq 124 || $1 -eq 137 ]]; }

# ------------------------------------------------------------ processes ---
# free_port: a TCP port on 127.0.0.1 that nothing listens on just now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# tcp_open HOST:PORT: whether something accepts connections there.
tcp_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

# stop_pids [-s SIGNAL] [-g GRACE] PID...: send SIGNAL (TERM) to each
# process, give each GRACE seconds (15) to exit, then KILL it: one that
# ignores the signal costs GRACE seconds, never a hung script. `tail --pid`
# waits for processes that are not this shell's children too.
stop_pids() {
  local sig=TERM grace=15 p
  while [[ ${1:-} == -s || ${1:-} == -g ]]; do
    if [[ $1 == -s ]]; then sig=$2; else grace=$2; fi
    shift 2
  done
  for p in "$@"; do kill -s "$sig" "$p" 2>/dev/null || true; done
  for p in "$@"; do
    timeout "$grace" tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
  done
}

# ------------------------------------------------------- series of runs ---
# try_run [VAR=VALUE...] COMMAND...: announce and run one command of a
# series (through env, so assignments may come first); a failure is noted
# and the series goes on. exit_if_any_failed: name every failed one and
# exit 1, or return.
FAILED_RUNS=()
try_run() { echo "== $*" >&2; env "$@" || FAILED_RUNS+=("$*"); }
exit_if_any_failed() {
  ((${#FAILED_RUNS[@]})) || return 0
  local run
  for run in "${FAILED_RUNS[@]}"; do printf '%s: FAILED: %s\n' "$LOG_TAG" "$run" >&2; done
  exit 1
}

# have_nchan: nginx with the nchan module, the benchmark's peer.
have_nchan() { command -v nginx >/dev/null && [[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]]; }

# -------------------------------------------------------------- compose ---
# compose_init PROJECT FILE...: COMPOSE (docker compose v2, else
# docker-compose v1), COMPOSE_V2 (1 or 0) and COMPOSE_CMD, the command of
# that project's stack made of those compose files (relative to ROOT).
# COMPOSE_CMD is an array, not only a function, because `timeout` runs it;
# compose ARGS... runs it without a bound.
compose_init() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  else
    die "neither 'docker compose' nor 'docker-compose' is available"
  fi
  COMPOSE_V2=0
  if "${COMPOSE[@]}" version 2>/dev/null | grep -Eq 'v?2\.[0-9]+\.[0-9]+'; then COMPOSE_V2=1; fi
  local project=$1 file
  shift
  COMPOSE_CMD=("${COMPOSE[@]}" -p "$project")
  for file in "$@"; do COMPOSE_CMD+=(-f "$ROOT/$file"); done
}
compose() { "${COMPOSE_CMD[@]}" "$@"; }

# container_of SERVICE: the id of the service's (first) container, or nothing.
container_of() { timeout 30 "${COMPOSE_CMD[@]}" ps -q "$1" 2>/dev/null | head -n1; }

# health_of SERVICE: healthy, unhealthy, starting; a state (exited...) for a
# container without a healthcheck; missing.
health_of() {
  local c
  c=$(container_of "$1")
  [[ -n "$c" ]] || { echo missing; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$c" 2>/dev/null || echo missing
}
all_healthy() {
  local s
  for s in "$@"; do [[ $(health_of "$s") == healthy ]] || return 1; done
}
# wait_healthy SECONDS SERVICE...: until every SERVICE is healthy; after
# SECONDS, log each one's state and return 1.
wait_healthy() {
  local secs=$1
  shift
  local deadline=$((SECONDS + secs)) s line
  until all_healthy "$@"; do
    if ((SECONDS >= deadline)); then
      line=""
      for s in "$@"; do line+="$s=$(health_of "$s") "; done
      log "services not healthy after ${secs}s: $line"
      return 1
    fi
    sleep 2
  done
}

# core_serving SERVICE: the payment-core replica reports SERVING (its own
# healthcheck, run in its container). core_not_serving: the opposite.
core_serving() { timeout 20 "${COMPOSE_CMD[@]}" exec -T "$1" payment-core healthcheck; }
core_not_serving() { ! core_serving "$1"; }

# db_network: the replicated stack's <project>_db network, which joins
# PostgreSQL and the core replicas only (cut a replica off it to take the
# database away from that replica alone).
db_network() {
  docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{println $name}}{{end}}' \
    "$(container_of postgres)" | grep -m1 '_db$'
}

# published_port SERVICE PORT: the host port compose published the
# service's PORT on.
published_port() {
  local addr
  addr=$(timeout 30 "${COMPOSE_CMD[@]}" port "$1" "$2" 2>/dev/null | head -n1)
  [[ -n "$addr" ]] || return 1
  echo "${addr##*:}"
}

# stack_down: `down -v` of COMPOSE_CMD's stack (its volumes too), bounded.
stack_down() { timeout 180 "${COMPOSE_CMD[@]}" down -v --remove-orphans -t 10 >/dev/null 2>&1; }

# stack_up SECONDS SERVICE...: `up -d --no-build` of COMPOSE_CMD's stack,
# after a `down -v` of whatever is left of it, until every SERVICE is
# healthy; SECONDS bounds the `up`. Returns 1, having said why, otherwise.
stack_up() {
  local secs=$1
  shift
  stack_down || true
  if [[ $COMPOSE_V2 == 1 ]]; then
    timeout $((secs + 30)) "${COMPOSE_CMD[@]}" up -d --no-build --wait --wait-timeout "$secs" \
      || { log "compose up --wait did not get every service healthy within ${secs}s"; return 1; }
  else
    # compose v1 has no --wait; it does honour depends_on: service_healthy
    timeout "$secs" "${COMPOSE_CMD[@]}" up -d --no-build \
      || { log "compose up did not finish within ${secs}s (a dependency never became healthy?)"; return 1; }
  fi
  wait_healthy 180 "$@"
}

# stack_diagnostics [LINES]: after a failure, on stderr: compose ps, each
# container's state and last healthcheck outputs, the last LINES (150)
# lines of every service's log.
stack_diagnostics() {
  local lines=${1:-150} c
  echo "================ diagnostics ================" >&2
  timeout 30 "${COMPOSE_CMD[@]}" ps >&2 2>&1 || true
  for c in $(timeout 30 "${COMPOSE_CMD[@]}" ps -q 2>/dev/null); do
    docker inspect -f '{{.Name}} state={{.State.Status}} exit={{.State.ExitCode}} health={{if .State.Health}}{{.State.Health.Status}}{{range .State.Health.Log}}
    probe exit={{.ExitCode}} {{.Output}}{{end}}{{end}}' "$c" >&2 2>&1 || true
  done
  echo "---------------- compose logs (last $lines lines each) ----------------" >&2
  timeout 60 "${COMPOSE_CMD[@]}" logs --no-color --tail="$lines" >&2 2>&1 || true
}

# on_exit FUNCTION: FUNCTION runs when the script exits, also on Ctrl-C
# (exit status 130) or TERM (143), so that what it started is always cleaned up.
on_exit() {
  # shellcheck disable=SC2064  # the function's name, given now
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
