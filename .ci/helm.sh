#!/usr/bin/env bash
# The Helm chart (deploy/helm/payments-push, issue 24), checked without a
# cluster, for every values file in its ci/ directory:
#   1. rendered and linted (strict) with helm-python-sdk (Helm's own SDK,
#      no helm binary), and the values it must refuse are refused with
#      their message;
#   2. every rendered object validated strictly (unknown fields refused)
#      with kubernetes-validate against Kubernetes 1.30, 1.32 and 1.34;
#      custom resources (ServiceMonitor) have no schema there and are
#      checked by the policy tests instead;
#   3. the policy tests (.ci/helm/test_chart.py, pytest): probes, resources,
#      security context, credentials as files only, PDBs, rolling updates,
#      grace periods, NetworkPolicies, SSE ingress, TLS wiring;
#   4. checkov on the rendered manifests: every finding is fixed or waived
#      in the chart (checkov.io/skipN annotations, each with its reason).
# Takes a few seconds (no cluster, no build); bounded by HELM_CHECK_TIMEOUT.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

CHART=deploy/helm/payments-push
LIMIT=${HELM_CHECK_TIMEOUT:-300}
OUT=$(mktemp -d /tmp/helm-check.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

for tool in checkov; do
  command -v "$tool" >/dev/null || die "$tool is missing (.ci/run installs it)"
done
python3 -c 'import helm_python, kubernetes_validate, pytest, yaml' ||
  die "helm-python-sdk, kubernetes-validate, pytest or PyYAML is missing (.ci/run installs them)"

echo "== helm: render, lint, validate ($CHART; values: $(cd "$CHART/ci" && echo *.yaml))"
timeout "$LIMIT" python3 .ci/helm/render.py "$CHART" "$OUT/rendered" "$CHART"/ci/*.yaml

echo "== helm: policy tests"
HELM_RENDERED="$OUT/rendered" timeout "$LIMIT" python3 -m pytest -q -p no:cacheprovider .ci/helm/test_chart.py

echo "== helm: checkov (kubernetes framework) on the rendered manifests"
# --skip-download: no call home for its guideline mappings (offline CI).
timeout "$LIMIT" checkov -d "$OUT/rendered" --framework kubernetes --compact --quiet \
  --skip-download --output cli
echo "== helm: every check passed"
