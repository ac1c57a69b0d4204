"""Policy tests of the rendered Helm chart (deploy/helm/payments-push).

Run by .ci/helm.sh after render.py: HELM_RENDERED names the directory of
rendered manifests, one file per values file of the chart's ci/ directory.
Every test runs on every rendering and is named for the rule it checks.
"""
import glob
import os
import re

import pytest
import yaml

RENDERED = os.environ.get("HELM_RENDERED", "/tmp/helm-rendered")
FILES = sorted(glob.glob(os.path.join(RENDERED, "*.yaml")))
assert FILES, f"no rendered manifests in {RENDERED}"

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
# Credentials of docs/configuration.md: each must be passed as NAME_FILE.
CREDENTIALS = {
    "PROVIDER_SECRET", "PAYMENT_CORE_API_KEYS", "PAYMENT_CORE_API_KEY",
    "DATABASE_URL", "ADMIN_TOKEN", "POSTGRES_PASSWORD",
}
COMPONENT = "app.kubernetes.io/component"
# The gateway's and the core's drain bound at SIGTERM when the env does not
# set one (docs/configuration.md).
DEFAULT_DRAIN = {"sse-gateway": 5, "payment-core": 10, "mock-provider": 5}


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


RENDERINGS = {os.path.splitext(os.path.basename(p))[0]: load(p) for p in FILES}


def objects(kind=None):
    for name, docs in RENDERINGS.items():
        for doc in docs:
            if kind is None or doc["kind"] == kind:
                yield name, doc


def workloads():
    return [(n, d) for n, d in objects() if d["kind"] in WORKLOADS]


def containers():
    for name, wl in workloads():
        spec = wl["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            yield name, wl, c


def ids(items):
    return [f"{n}:{o['metadata']['name']}" + (f":{c['name']}" if c else "") for n, o, c in items]


CONTAINERS = list(containers())
CONTAINER_IDS = ids(CONTAINERS)
WORKLOADS_ = [(n, d, None) for n, d in workloads()]
WORKLOAD_IDS = ids(WORKLOADS_)


def component(obj):
    return obj["metadata"]["labels"][COMPONENT]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def the(rendering, kind, comp):
    found = [d for d in RENDERINGS[rendering] if d["kind"] == kind and d["metadata"]["labels"].get(COMPONENT) == comp]
    assert len(found) == 1, f"{rendering}: {len(found)} {kind} of {comp}"
    return found[0]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pod_labels(rendering, comp):
    return the(rendering, "Deployment" if comp != "postgresql" else "StatefulSet", comp)["spec"]["template"]["metadata"]["labels"]


def prestop_seconds(container):
    pre = container["lifecycle"]["preStop"]
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    command = pre["exec"]["command"]
    assert command[0].endswith("sleep"), command
    return int(command[1])


# --- probes -------------------------------------------------------------


@pytest.mark.parametrize("rendering,workload,container", CONTAINERS, ids=CONTAINER_IDS)
def test_every_container_has_liveness_and_readiness_probes(rendering, workload, container):
    assert container.get("livenessProbe"), "no livenessProbe"
    assert container.get("readinessProbe"), "no readinessProbe"


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_core_liveness_is_not_tied_to_the_store(rendering):
    """Readiness follows the store (gRPC health of "", which turns NOT_SERVING
    when PostgreSQL fails); liveness must not, or every replica would be
    restarted while the database is down."""
    core = the(rendering, "Deployment", "payment-core")["spec"]["template"]["spec"]["containers"][0]
    ready, live = core["readinessProbe"], core["livenessProbe"]
    assert ready != live
    ready_cmd = ready.get("exec", {}).get("command", [])
    assert ready_cmd[-1:] == ["healthcheck"] or "grpc" in ready, f"readiness does not ask the gRPC health: {ready}"
    # The core's healthcheck and its gRPC health ("" and both services) all
    # report the store: none may be the liveness probe.
    assert "grpc" not in live and "exec" not in live, f"liveness asks something the store turns NOT_SERVING: {live}"
    assert live.get("httpGet", {}).get("port") == "metrics" or "tcpSocket" in live, live
    for probe in (core.get("startupProbe") or {},):
        assert "grpc" not in probe and "exec" not in probe, f"startupProbe tied to the store: {probe}"


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_gateway_ready_on_readyz_and_alive_on_healthz(rendering):
    gw = the(rendering, "Deployment", "sse-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert gw["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gw["livenessProbe"]["httpGet"]["path"] == "/healthz"


# --- resources and security ---------------------------------------------


@pytest.mark.parametrize("rendering,workload,container", CONTAINERS, ids=CONTAINER_IDS)
def test_every_container_has_resource_requests_and_limits(rendering, workload, container):
    resources = container.get("resources", {})
    for key in ("requests", "limits"):
        for what in ("cpu", "memory"):
            assert resources.get(key, {}).get(what), f"no {key}.{what}"


@pytest.mark.parametrize("rendering,workload,container", CONTAINERS, ids=CONTAINER_IDS)
def test_every_container_is_locked_down(rendering, workload, container):
    pod = workload["spec"]["template"]["spec"]
    psc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    assert sc.get("runAsNonRoot") or psc.get("runAsNonRoot"), "may run as root"
    assert (sc.get("runAsUser") or psc.get("runAsUser") or 0) != 0, "runs as uid 0"
    assert sc.get("readOnlyRootFilesystem") is True
    assert sc.get("allowPrivilegeEscalation") is False
    assert sc.get("privileged", False) is False
    assert sc.get("capabilities", {}).get("drop") == ["ALL"]
    assert not sc.get("capabilities", {}).get("add")
    seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
    assert seccomp.get("type") == "RuntimeDefault"


@pytest.mark.parametrize("rendering,workload,_", WORKLOADS_, ids=WORKLOAD_IDS)
def test_no_service_account_token_is_mounted(rendering, workload, _):
    assert workload["spec"]["template"]["spec"].get("automountServiceAccountToken") is False
    for name, sa in objects("ServiceAccount"):
        assert sa.get("automountServiceAccountToken") is False


# --- credentials --------------------------------------------------------


@pytest.mark.parametrize("rendering,workload,container", CONTAINERS, ids=CONTAINER_IDS)
def test_no_env_var_holds_a_plain_credential(rendering, workload, container):
    for name, entry in env_of(container).items():
        assert name not in CREDENTIALS, f"{name} given directly; only {name}_FILE is allowed"
        assert "valueFrom" not in entry or "secretKeyRef" not in entry["valueFrom"], \
            f"{name} from a secretKeyRef: credentials are files"
        if name.endswith("_FILE"):
            assert entry["value"].startswith("/run/"), f"{name}: {entry['value']}"
    for c_name in CREDENTIALS:
        if f"{c_name}_FILE" in env_of(container):
            path = env_of(container)[f"{c_name}_FILE"]["value"]
            mounts = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
            assert mounts, f"{c_name}_FILE={path} is on no mounted volume"
            volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == mounts[0]["name"])
            assert "secret" in volume, f"{c_name}_FILE is not on a Secret volume"


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_each_service_reads_its_credentials_from_files(rendering):
    expect = {
        "payment-core": {"DATABASE_URL_FILE", "PROVIDER_SECRET_FILE", "PAYMENT_CORE_API_KEYS_FILE"},
        "sse-gateway": {"ADMIN_TOKEN_FILE", "PAYMENT_CORE_API_KEY_FILE"},
        "mock-provider": {"PROVIDER_SECRET_FILE", "PAYMENT_CORE_API_KEY_FILE"},
    }
    for _, wl in [(n, d) for n, d in objects("Deployment") if n == rendering]:
        env = env_of(wl["spec"]["template"]["spec"]["containers"][0])
        missing = expect[component(wl)] - set(env)
        assert not missing, f"{component(wl)} lacks {missing}"
        assert env["PAYMENTS_PUSH_DEV"]["value"] == "0"


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_no_secret_object_is_rendered(rendering):
    assert not [d for d in RENDERINGS[rendering] if d["kind"] == "Secret"], "the chart takes existing Secrets only"


# --- availability -------------------------------------------------------


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_core_and_gateway_have_pod_disruption_budgets(rendering):
    pdbs = [d for d in RENDERINGS[rendering] if d["kind"] == "PodDisruptionBudget"]
    for comp in ("payment-core", "sse-gateway"):
        labels = pod_labels(rendering, comp)
        assert any(matches(p["spec"]["selector"], labels) for p in pdbs), f"no PodDisruptionBudget selects {comp}"


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_core_runs_several_replicas(rendering):
    assert the(rendering, "Deployment", "payment-core")["spec"]["replicas"] >= 2


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_rolling_updates_never_go_below_the_replica_count(rendering):
    for _, wl in [(n, d) for n, d in objects("Deployment") if n == rendering]:
        strategy = wl["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, wl["metadata"]["name"]
        assert strategy["rollingUpdate"]["maxSurge"] == 1, wl["metadata"]["name"]


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_grace_period_covers_prestop_and_drain(rendering):
    for _, wl in [(n, d) for n, d in objects("Deployment") if n == rendering]:
        pod = wl["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = env_of(c)
        drain = int(env["SHUTDOWN_GRACE_SECS"]["value"]) if "SHUTDOWN_GRACE_SECS" in env else DEFAULT_DRAIN[component(wl)]
        pre = prestop_seconds(c)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        assert pre > 0, "no preStop wait: the endpoint may still get traffic at SIGTERM"
        assert grace > pre + drain, f"{wl['metadata']['name']}: grace {grace} s <= preStop {pre} s + drain {drain} s"


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_replicas_are_spread_over_nodes(rendering):
    for comp in ("payment-core", "sse-gateway"):
        aff = the(rendering, "Deployment", comp)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        terms = aff.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
            t["podAffinityTerm"] for t in aff.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
        labels = pod_labels(rendering, comp)
        assert any(t["topologyKey"] == "kubernetes.io/hostname" and matches(t["labelSelector"], labels) for t in terms)


# --- network ------------------------------------------------------------


def policy_for(rendering, comp):
    labels = pod_labels(rendering, comp)
    found = [d for d in RENDERINGS[rendering] if d["kind"] == "NetworkPolicy" and matches(d["spec"]["podSelector"], labels)]
    assert found, f"no NetworkPolicy selects {comp}"
    return found


def sources(rules):
    return [peer for rule in rules for peer in rule.get("from", [None])]


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_network_policies_cover_every_component(rendering):
    for wl in [d for d in RENDERINGS[rendering] if d["kind"] in WORKLOADS]:
        for policy in policy_for(rendering, component(wl)):
            assert "Ingress" in policy["spec"]["policyTypes"] and "Egress" in policy["spec"]["policyTypes"]


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_only_gateways_and_provider_reach_core_grpc(rendering):
    allowed = {"sse-gateway", "mock-provider"}
    for policy in policy_for(rendering, "payment-core"):
        for rule in policy["spec"]["ingress"]:
            ports = {p["port"] for p in rule.get("ports", [])}
            assert ports, "a rule open on every port"
            for peer in rule.get("from", [None]):
                assert peer is not None, "a rule open to every source"
                if "grpc" in ports or 50051 in ports:
                    assert set(peer) == {"podSelector"}, peer
                    assert peer["podSelector"]["matchLabels"][COMPONENT] in allowed, peer
                else:
                    assert ports <= {"metrics", 9090}, ports
                    assert set(peer) == {"namespaceSelector"}, peer


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_only_cores_reach_postgresql(rendering):
    # Bundled: PostgreSQL takes connections from the cores only.
    pg = [d for d in RENDERINGS[rendering] if d["kind"] == "StatefulSet"]
    if pg:
        for policy in policy_for(rendering, "postgresql"):
            assert policy["spec"].get("egress") == []
            for peer in sources(policy["spec"]["ingress"]):
                assert peer and peer["podSelector"]["matchLabels"][COMPONENT] == "payment-core", peer
    # Either way: no other component has egress to PostgreSQL's port.
    for comp in ("sse-gateway", "mock-provider"):
        if not [d for d in RENDERINGS[rendering] if d["kind"] == "Deployment" and component(d) == comp]:
            continue
        for policy in policy_for(rendering, comp):
            for rule in policy["spec"]["egress"]:
                assert rule.get("to"), f"{comp}: egress to anywhere"
                assert 5432 not in {p["port"] for p in rule.get("ports", [])}, f"{comp} may reach PostgreSQL"


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_gateway_traffic_only_from_ingress_and_monitoring_namespaces(rendering):
    for policy in policy_for(rendering, "sse-gateway"):
        for peer in sources(policy["spec"]["ingress"]):
            assert peer and set(peer) == {"namespaceSelector"}, peer
            ns = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            assert ns in ("ingress-nginx", "monitoring"), ns


# --- ingress, TLS, monitoring --------------------------------------------


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_ingress_is_ready_for_sse(rendering):
    ing = the(rendering, "Ingress", "sse-gateway")
    a = ing["metadata"]["annotations"]
    gw = the(rendering, "Deployment", "sse-gateway")["spec"]["template"]["spec"]["containers"][0]
    heartbeat = int(env_of(gw)["HEARTBEAT_SECS"]["value"])
    assert a["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert a["nginx.ingress.kubernetes.io/proxy-read-timeout"] == str(2 * heartbeat)
    assert a["nginx.ingress.kubernetes.io/proxy-send-timeout"] == str(2 * heartbeat)


@pytest.mark.parametrize("rendering", ["production", "tls"])
def test_ingress_terminates_tls_for_http2(rendering):
    if rendering not in RENDERINGS:
        pytest.skip("not rendered")
    ing = the(rendering, "Ingress", "sse-gateway")
    assert ing["spec"]["tls"][0]["secretName"]


def test_mutual_tls_is_wired_end_to_end():
    if "tls" not in RENDERINGS:
        pytest.skip("tls.yaml not rendered")
    core = the("tls", "Deployment", "payment-core")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(core)
    for name in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE", "PAYMENT_CORE_CA_FILE",
                 "PAYMENT_CORE_CLIENT_CERT_FILE", "PAYMENT_CORE_CLIENT_KEY_FILE"):
        assert name in env, f"core lacks {name}"
    assert "exec" in core["readinessProbe"], "the kubelet's grpc probe cannot speak TLS"
    for comp in ("sse-gateway", "mock-provider"):
        env = env_of(the("tls", "Deployment", comp)["spec"]["template"]["spec"]["containers"][0])
        assert env["PAYMENT_CORE_URL"]["value"].startswith("https://")
        for name in ("PAYMENT_CORE_CA_FILE", "PAYMENT_CORE_CLIENT_CERT_FILE", "PAYMENT_CORE_CLIENT_KEY_FILE", "PAYMENT_CORE_TLS_DOMAIN"):
            assert name in env, f"{comp} lacks {name}"


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_service_monitors_scrape_named_ports_of_existing_services(rendering):
    # ServiceMonitor is a custom resource kubernetes-validate has no schema
    # for: its shape is checked here.
    for sm in [d for d in RENDERINGS[rendering] if d["kind"] == "ServiceMonitor"]:
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        svcs = [d for d in RENDERINGS[rendering] if d["kind"] == "Service" and matches(sm["spec"]["selector"], d["metadata"]["labels"])]
        assert len(svcs) == 1, sm["metadata"]["name"]
        port_names = {p["name"] for p in svcs[0]["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in port_names and ep["path"] == "/metrics"
            assert re.fullmatch(r"\d+[smh]", ep["interval"])


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_gateway_autoscaler_scales_on_open_streams(rendering):
    for hpa in [d for d in RENDERINGS[rendering] if d["kind"] == "HorizontalPodAutoscaler"]:
        assert hpa["apiVersion"] == "autoscaling/v2"
        metric = hpa["spec"]["metrics"][0]
        assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "sse_gateway_open_streams"
        assert hpa["spec"]["minReplicas"] >= 2
        gw = the(rendering, "Deployment", "sse-gateway")
        assert "replicas" not in gw["spec"], "the HPA owns the replica count"
