#!/usr/bin/env bash
# The rolling update, rehearsed on the replicated stack (docker-compose.yml +
# docker-compose.replicated.yml) the way Kubernetes runs one with the Helm
# chart's settings (deploy/helm/payments-push: maxUnavailable 0, a preStop
# pause, then SIGTERM and the grace period), then a slow, lossy network.
#
# 1. PAYMENTS payments (2,000) through nginx at RATE per second while each
#    gateway and each payment-core replica is replaced in turn:
#      - a new container, a copy of the old one's image, environment,
#        mounts, networks and healthcheck, starts;
#      - once its healthcheck passes (Kubernetes: readiness), traffic is
#        moved: a gateway's name in nginx's upstream is switched to the new
#        one and nginx reloads (Kubernetes: the endpoints change); a core
#        replica takes its service's name on the network (the Service);
#      - the chart's preStop pause later, the old one gets SIGTERM
#        and GRACE_SECS (the chart's terminationGracePeriodSeconds) before
#        SIGKILL, and is removed.
#    It passes with 0 lost, 0 duplicated, 0 wrong results, every report
#    acknowledged and in the database, and no wait for a result after its
#    report was acknowledged longer than two heartbeats.
# 2. NETEM_PAYMENTS payments (600) while one gateway's and one core
#    replica's interfaces (the service network's, not the database's) add
#    NETEM_DELAY_MS (100) and lose NETEM_LOSS (2%) of their packets
#    (`tc qdisc … netem`, applied from the host in each container's network
#    namespace with nsenter: the images have no tc; on a kernel without
#    netem, as on this project's CI machines, iptables NFQUEUE and
#    .ci/netdelay.py do the same in user space). Results still arrive
#    once and in order, each within 2 s plus the delay the path adds (two
#    of the hops a result takes leave a slowed interface).
#
# loadgen (on loopback, like the drill's) reaches nginx on its published
# port and reports to the core replicas on theirs; a new replica is
# published on a port of its own, which loadgen was given from the start
# with the others, as a client given the replicas' list.
#
# Needs the stack running: DRILL_STACK=<compose project> (started with
# HEARTBEAT_SECS=2), its credentials in SECRETS_DIR, and LOADGEN (a built
# loadgen).
# .ci/docker-test.sh with DRILL=1 runs it after the fault drill. Every wait
# is bounded. Needs root for nsenter.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
PAYMENTS=${PAYMENTS:-2000}
RATE=${RATE:-15}
NETEM_PAYMENTS=${NETEM_PAYMENTS:-600}
NETEM_DELAY_MS=${NETEM_DELAY_MS:-100}
NETEM_LOSS=${NETEM_LOSS:-2%}
# The chart's defaults (deploy/helm/payments-push/values.yaml): the preStop
# pause of a gateway (ingress-nginx must drop its endpoint first) and of a
# core replica, and the grace period of both (pause + drain + margin).
GATEWAY_PRESTOP_SECS=${GATEWAY_PRESTOP_SECS:-10}
CORE_PRESTOP_SECS=${CORE_PRESTOP_SECS:-5}
GRACE_SECS=${GRACE_SECS:-25}
HEARTBEAT_SECS=2
[[ -n ${DRILL_STACK:-} ]] || die "DRILL_STACK=<compose project>: the replicated stack to rehearse on"
[[ -n ${SECRETS_DIR:-} && -s ${SECRETS_DIR}/provider_secret ]] || die "SECRETS_DIR: the credentials that stack was started with"
[[ -x ${LOADGEN:-} ]] || die "LOADGEN: a built loadgen"
PROJECT=$DRILL_STACK
compose_init "$PROJECT" docker-compose.yml docker-compose.replicated.yml
WORK=$(mktemp -d /tmp/rolling.XXXXXX)
LOADGEN_PID=
declare -A CURRENT=() # service -> the container now serving it
CLONES=()             # containers this script started
NETEM_ON=()           # containers with a netem qdisc (or NFQUEUE rule)
DELAYERS=()           # netdelay.py processes

cleanup() {
  local rc=$?
  set +e
  local c
  for c in "${NETEM_ON[@]}"; do netem_off "$c"; done
  [[ ${#DELAYERS[@]} -eq 0 ]] || kill "${DELAYERS[@]}" 2>/dev/null
  [[ -n $LOADGEN_PID ]] && kill "$LOADGEN_PID" 2>/dev/null
  if [[ $rc -ne 0 ]]; then
    tail -n 40 "$WORK"/*.log >&2 2>/dev/null
    for c in "${CLONES[@]}"; do docker logs --tail 30 "$c" >&2 2>&1; done
  fi
  # The copies carry the project's labels, so `compose down` removes them
  # too; removed here as well, so that a failed run leaves nothing behind.
  for c in "${CLONES[@]}"; do docker rm -f "$c" >/dev/null 2>&1; done
  rm -rf "$WORK"
  phase_summary
  exit "$rc"
}
on_exit cleanup

# network_of CONTAINER SUFFIX: the name of its network ending in SUFFIX.
network_of() {
  docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{println $name}}{{end}}' "$1" | grep -m1 -- "$2\$"
}

# start_copy OLD NAME ALIAS [PUBLISH]: starts NAME, a copy of container
# OLD (image, environment, user, mounts, labels, healthcheck, command) on
# OLD's networks, answering to ALIAS on each; PUBLISH (-p's argument)
# publishes a port.
start_copy() {
  local old=$1 name=$2 alias=$3 publish=${4:-} first net
  local -a args publishing=()
  [[ -z $publish ]] || publishing=(-p "$publish")
  mapfile -t args < <(docker inspect "$old" | python3 -c '
import json, sys
c = json.load(sys.stdin)[0]
cfg = c["Config"]
out = []
for e in cfg.get("Env") or []:
    out += ["-e", e]
for m in c.get("Mounts") or []:
    source = m["Source"] if m["Type"] == "bind" else m["Name"]
    out += ["-v", source + ":" + m["Destination"] + ("" if m["RW"] else ":ro")]
if cfg.get("User"):
    out += ["--user", cfg["User"]]
for key, value in (cfg.get("Labels") or {}).items():
    if key == "com.docker.compose.container-number":
        value = str(int(value) + 50)
    if not key.startswith("com.docker.compose.config-hash"):
        out += ["--label", key + "=" + value]
health = cfg.get("Healthcheck") or {}
test = health.get("Test") or []
if test and test[0] in ("CMD", "CMD-SHELL"):
    command = test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:])
    out += ["--health-cmd", command, "--health-interval", "2s", "--health-timeout", "5s",
            "--health-retries", "30"]
entrypoint = cfg.get("Entrypoint") or []
if entrypoint:
    out += ["--entrypoint", entrypoint[0]]
out += [cfg["Image"]] + entrypoint[1:] + (cfg.get("Cmd") or [])
print("\n".join(out))
')
  # The services' network first, as compose has it: a published port
  # leads to the address there.
  mapfile -t nets < <(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{println $name}}{{end}}' "$old" \
    | sed '/^$/d' | awk '/_default$/ {print; next} {rest[NR] = $0} END {for (i in rest) print rest[i]}')
  first=${nets[0]}
  # Created, joined to every network, then started: a process started
  # before its second network is there (the database's) cannot resolve
  # what is on it, and exits.
  docker create --name "$name" --network "$first" --network-alias "$alias" "${publishing[@]}" "${args[@]}" >/dev/null
  CLONES+=("$name")
  for net in "${nets[@]:1}"; do docker network connect --alias "$alias" "$net" "$name"; done
  docker start "$name" >/dev/null
}

# healthy CONTAINER: its healthcheck passes.
healthy() { [[ $(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null) == healthy ]]; }

# retire OLD PAUSE: the chart's preStop pause of PAUSE seconds, then
# SIGTERM with the grace period (the pause counts in it, as in
# Kubernetes), then removal.
retire() {
  sleep "$2"
  timeout $((GRACE_SECS + 30)) docker stop -t $((GRACE_SECS - $2)) "$1" >/dev/null
  docker rm "$1" >/dev/null
}

# replace_gateway SERVICE: a new gateway, then nginx's upstream switched to
# it (the old one's open streams stay with nginx's old workers until the
# old gateway ends them), then the old one retired.
replace_gateway() {
  local service=$1 old=${CURRENT[$1]} new=$PROJECT-$1-next nginx
  fault "replace $service"
  start_copy "$old" "$new" "$new"
  wait_until 60 "the new $service to be ready" healthy "$new"
  nginx=$(container_of nginx)
  # The image's file is root's.
  docker exec -u 0 "$nginx" sed -i "s/server $service:8080/server $new:8080/" /etc/nginx/nginx.conf
  docker exec "$nginx" grep -q "server $new:8080" /etc/nginx/nginx.conf \
    || die "nginx's upstream does not name $new"
  docker exec "$nginx" nginx -s reload
  retire "$old" "$GATEWAY_PRESTOP_SECS"
  CURRENT[$service]=$new
}

# replace_core SERVICE PORT: a new replica under the service's name,
# published on PORT, then the old one retired (its watchers resume
# elsewhere from their sequence).
replace_core() {
  local service=$1 old=${CURRENT[$1]} new=$PROJECT-$1-next
  fault "replace $service"
  start_copy "$old" "$new" "$service" "127.0.0.1:$2:50051"
  wait_until 60 "the new $service to be ready" healthy "$new"
  retire "$old" "$CORE_PRESTOP_SECS"
  CURRENT[$service]=$new
}

FAULTS=0
fault() { FAULTS=$((FAULTS + 1)); log "step $FAULTS: $*"; }

# netem_on CONTAINER: delay and loss on its interface in the services'
# network (found by its address there), from the host: `tc … netem`, or,
# on a kernel without netem, an iptables NFQUEUE rule and .ci/netdelay.py
# (the same delay and loss, in user space) in the container's namespace.
netem_on() {
  local container=$1 pid ip dev queue
  pid=$(docker inspect -f '{{.State.Pid}}' "$container")
  ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$SERVICE_NET\").IPAddress}}" "$container")
  dev=$(nsenter -t "$pid" -n ip -o -4 addr show | awk -v ip="$ip" '$4 ~ "^"ip"/" {print $2}')
  [[ -n $dev ]] || die "no interface with $ip in $container"
  NETEM_ON+=("$container")
  if nsenter -t "$pid" -n tc qdisc add dev "$dev" root netem delay "${NETEM_DELAY_MS}ms" loss "$NETEM_LOSS" 2>/dev/null; then
    log "netem on $container $dev: delay ${NETEM_DELAY_MS}ms loss $NETEM_LOSS"
    return
  fi
  queue=$((40 + ${#NETEM_ON[@]}))
  nsenter -t "$pid" -n iptables -I OUTPUT -o "$dev" -j NFQUEUE --queue-num "$queue" --queue-bypass
  nsenter -t "$pid" -n python3 "$ROOT/.ci/netdelay.py" --queue "$queue" \
    --delay-ms "$NETEM_DELAY_MS" --loss "$(python3 -c "print(float('${NETEM_LOSS%\%}') / 100)")" \
    >>"$WORK/netdelay.log" 2>&1 &
  DELAYERS+=($!)
  log "no netem in this kernel: NFQUEUE $queue and netdelay.py on $container $dev: delay ${NETEM_DELAY_MS}ms loss $NETEM_LOSS"
}
# netem_off CONTAINER: its interfaces as they were.
netem_off() {
  local pid dev
  pid=$(docker inspect -f '{{.State.Pid}}' "$1" 2>/dev/null) || return 0
  for dev in $(nsenter -t "$pid" -n ip -o link show | awk -F': ' '$2 != "lo" {sub(/@.*/, "", $2); print $2}'); do
    nsenter -t "$pid" -n tc qdisc del dev "$dev" root 2>/dev/null || true
  done
  # Only this script adds rules to a container's filter OUTPUT chain.
  nsenter -t "$pid" -n iptables -F OUTPUT 2>/dev/null || true
}

# run_loadgen NAME N REPORT_PORT...: N payments through nginx at RATE per
# second in the background, reports to the replicas on REPORT_PORTs (the
# next when one fails, as a client given the replicas' list does); its
# JSON summary in $WORK/NAME.json, its output in $WORK/NAME.log.
run_loadgen() {
  local name=$1 n=$2 port
  shift 2
  local -a reports=()
  for port in "$@"; do reports+=(--report-url "http://127.0.0.1:$port"); done
  # bounded: loadgen's own --timeout is 600 s
  PROVIDER_SECRET=$(tr -d '\n' <"$SECRETS_DIR/provider_secret") \
  PAYMENT_CORE_API_KEY=$(tr -d '\n' <"$SECRETS_DIR/merchant_api_key") \
  timeout -k 10 660 "$LOADGEN" run --target gateway --url "http://127.0.0.1:$HTTP_PORT" \
    --core-url "http://127.0.0.1:$1" "${reports[@]}" \
    -n "$n" --rate "$RATE" --report-attempts 150 --max-attempts 200 \
    --create-concurrency 8 --connect-concurrency 64 --drain-secs 60 --timeout 600 \
    --label "$name" --json "$WORK/$name.json" >"$WORK/$name.log" 2>&1 &
  LOADGEN_PID=$!
  wait_until 300 "loadgen to start reporting" loadgen_reporting "$name"
  kill -0 "$LOADGEN_PID" 2>/dev/null || { tail -n 20 "$WORK/$name.log" >&2; die "loadgen exited before reporting"; }
}
# loadgen_reporting NAME: loadgen reports (or exited: nothing to wait for).
loadgen_reporting() {
  ! kill -0 "$LOADGEN_PID" 2>/dev/null || grep -q reporting "$WORK/$1.log"
}
# wait_loadgen NAME: RC, its exit status, once it exited; its report on
# stderr. (Not in a $(…): a subshell cannot wait for this shell's child.)
wait_loadgen() {
  RC=0
  wait "$LOADGEN_PID" || RC=$?
  LOADGEN_PID=
  grep -vE '^\[loadgen' "$WORK/$1.log" >&2 || true
}

# summary NAME: lost duplicated wrong acked report_errors max_wait_ms max_ms
summary() {
  python3 - "$WORK/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(d["lost"], d["duplicated"], d["wrong_result"], d["reports"] - d["report_errors"],
      d["report_errors"], round(d["max_wait_after_ack_ms"]), round(d["report_to_browser"]["max_ms"]))
PY
}

paid_in_db() {
  timeout 30 "${COMPOSE_CMD[@]}" exec -T postgres psql -U payments -d payments -Atc \
    "SELECT count(*) FROM events WHERE status = 'succeeded'" | tr -d '\r'
}

phase "the stack handed over"
SERVICES=(payment-core payment-core-2 gateway-1 gateway-2)
wait_healthy 120 postgres nginx mock-provider "${SERVICES[@]}" || die "project $PROJECT: not every service is healthy"
for s in "${SERVICES[@]}"; do CURRENT[$s]=$(docker inspect -f '{{.Name}}' "$(container_of "$s")" | sed 's,^/,,'); done
SERVICE_NET=$(network_of "$(container_of nginx)" _default)
[[ -n $SERVICE_NET ]] || die "no _default network"
HTTP_PORT=$(published_port nginx 8080) && GRPC_PORT=$(published_port payment-core 50051) \
  && GRPC_PORT_2=$(published_port payment-core-2 50051) || die "project $PROJECT: its published ports are not all there"
NEXT_PORT=$(free_port)
NEXT_PORT_2=$(free_port)
BEFORE=$(paid_in_db)

phase "$PAYMENTS payments at $RATE/s, each gateway and core replica replaced in turn"
run_loadgen rolling "$PAYMENTS" "$GRPC_PORT" "$GRPC_PORT_2" "$NEXT_PORT" "$NEXT_PORT_2"
sleep 5
replace_gateway gateway-1
replace_gateway gateway-2
replace_core payment-core "$NEXT_PORT"
replace_core payment-core-2 "$NEXT_PORT_2"
log "replacements done; waiting for loadgen"
wait_loadgen rolling

phase "checks"
read -r LOST DUP WRONG ACKED ERRORS MAX_WAIT MAX_LATENCY < <(summary rolling)
IN_DB=$(($(paid_in_db) - BEFORE))
WAIT_BOUND=$((2 * HEARTBEAT_SECS * 1000))
echo "rolling update: $PAYMENTS payments, 4 replicas replaced (preStop ${GATEWAY_PRESTOP_SECS} s gateways, ${CORE_PRESTOP_SECS} s cores; grace ${GRACE_SECS} s);" \
  "lost $LOST, duplicated $DUP, wrong result $WRONG; reports acknowledged $ACKED (errors $ERRORS)," \
  "paid in the database $IN_DB; longest wait for a result after its report was acknowledged ${MAX_WAIT} ms" \
  "(bound: two heartbeats, $WAIT_BOUND ms); longest report→browser ${MAX_LATENCY} ms"
status=0
[[ $RC == 0 ]] || { echo "rolling: loadgen failed (exit $RC)" >&2; status=1; }
[[ $LOST -eq 0 && $DUP -eq 0 && $WRONG -eq 0 ]] || { echo "rolling: a watcher lost, repeated or misread a result" >&2; status=1; }
[[ $ACKED -eq $PAYMENTS && $IN_DB -eq $ACKED ]] || { echo "rolling: acknowledged $ACKED of $PAYMENTS, in the database $IN_DB" >&2; status=1; }
[[ $MAX_WAIT -le $WAIT_BOUND ]] || { echo "rolling: a result waited ${MAX_WAIT} ms after its report was acknowledged" >&2; status=1; }
[[ $status -eq 0 ]] || exit "$status"

phase "$NETEM_PAYMENTS payments over a slow, lossy network"
BEFORE=$(paid_in_db)
netem_on "${CURRENT[gateway-1]}"
netem_on "${CURRENT[payment-core-2]}"
run_loadgen netem "$NETEM_PAYMENTS" "$NEXT_PORT" "$NEXT_PORT_2"
wait_loadgen netem
for c in "${NETEM_ON[@]}"; do netem_off "$c"; done
NETEM_ON=()
[[ ${#DELAYERS[@]} -eq 0 ]] || kill "${DELAYERS[@]}" 2>/dev/null || true
DELAYERS=()
read -r LOST DUP WRONG ACKED ERRORS MAX_WAIT MAX_LATENCY < <(summary netem)
IN_DB=$(($(paid_in_db) - BEFORE))
LATENCY_BOUND=$((2000 + 2 * NETEM_DELAY_MS))
echo "netem: $NETEM_PAYMENTS payments, gateway-1 and payment-core-2 at +${NETEM_DELAY_MS} ms and $NETEM_LOSS loss;" \
  "lost $LOST, duplicated $DUP, wrong result $WRONG; reports acknowledged $ACKED (errors $ERRORS)," \
  "paid in the database $IN_DB; longest report→browser ${MAX_LATENCY} ms (bound $LATENCY_BOUND ms)"
[[ $RC == 0 ]] || { echo "netem: loadgen failed (exit $RC)" >&2; status=1; }
[[ $LOST -eq 0 && $DUP -eq 0 && $WRONG -eq 0 ]] || { echo "netem: a watcher lost, repeated or misread a result" >&2; status=1; }
[[ $ACKED -eq $NETEM_PAYMENTS && $IN_DB -eq $ACKED ]] || { echo "netem: acknowledged $ACKED of $NETEM_PAYMENTS, in the database $IN_DB" >&2; status=1; }
[[ $MAX_LATENCY -le $LATENCY_BOUND ]] || { echo "netem: a result took ${MAX_LATENCY} ms from report to browser" >&2; status=1; }
exit "$status"
