#!/usr/bin/env python3
"""Renders and lints the Helm chart for each values file, and validates every
rendered object strictly against several Kubernetes versions.

usage: render.py CHART OUT_DIR VALUES_FILE...
Writes OUT_DIR/<values name>.yaml (one multi-document manifest per file).
"""
import os
import sys

import helm_python as helm
import kubernetes_validate
import yaml

KUBE_VERSIONS = ["1.30.0", "1.32.0", "1.34.0"]
# Custom resources: kubernetes-validate has no schema for them; their shape
# is checked by the policy tests (test_chart.py) instead.
CRD_GROUPS = ("monitoring.coreos.com/",)
NAMESPACE = "payments"
RELEASE = "pp"

# Values that must make rendering fail, and a word its message must hold.
MUST_FAIL = [
    ({}, "secrets.existingSecret is required"),
    ({"secrets": {"existingSecret": "s"}, "sqlite": {"enabled": True}}, "SQLite is not offered"),
    ({"secrets": {"existingSecret": "s"}, "core": {"replicas": 0}}, "core.replicas must be at least 1"),
    ({"secrets": {"existingSecret": "s"}, "ingress": {"tls": {"secretName": ""}}}, "ingress.tls.secretName is required"),
    ({"secrets": {"existingSecret": "s"}, "ingress": {"tls": {"enabled": False}}, "tls": {"mutual": True}}, "tls.mutual=true needs tls.enabled=true"),
    ({"secrets": {"existingSecret": "s"}, "ingress": {"tls": {"enabled": False}}, "tls": {"enabled": True}}, "needs tls.coreSecret"),
    ({"secrets": {"existingSecret": "s"}, "ingress": {"tls": {"enabled": False}}, "gateway": {"extraEnv": {"ADMIN_TOKEN": "x"}}}, "credentials are never values"),
    ({"secrets": {"existingSecret": "s"}, "ingress": {"tls": {"enabled": False}}, "tls": {"enabled": True, "coreSecret": "c"}, "core": {"readinessProbe": {"type": "grpc"}}}, "cannot speak TLS"),
]


def main():
    chart_dir, out_dir, *values_files = sys.argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    chart = helm.Chart.load(chart_dir)
    failures = 0

    for path in values_files:
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path) as f:
            values = yaml.safe_load(f) or {}
        for kube in KUBE_VERSIONS:
            report = helm.lint(chart_dir, values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube}")
            problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
            if problems:
                failures += 1
                print(f"FAIL lint {name} (Kubernetes {kube}): {problems}")
        print(f"ok   lint {name} (strict, Kubernetes {', '.join(KUBE_VERSIONS)})")

        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        docs = []
        for template, text in sorted(manifests.items()):
            if template.endswith("NOTES.txt"):
                continue
            docs.extend(d for d in yaml.safe_load_all(text) if d)
        out = os.path.join(out_dir, f"{name}.yaml")
        with open(out, "w") as f:
            yaml.safe_dump_all(docs, f, sort_keys=False)
        kinds = sorted({d["kind"] for d in docs})
        print(f"ok   render {name}: {len(docs)} objects ({', '.join(kinds)}) -> {out}")

        skipped = set()
        for doc in docs:
            if doc["apiVersion"].startswith(CRD_GROUPS):
                skipped.add(f"{doc['kind']} {doc['metadata']['name']}")
                continue
            for kube in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, kube, strict=True)
                except kubernetes_validate.ValidationError as error:
                    failures += 1
                    print(f"FAIL validate {name} {doc['kind']}/{doc['metadata']['name']} on {kube}: {error.message} at {list(error.path)}")
        print(f"ok   validate {name}: strict schemas of Kubernetes {', '.join(KUBE_VERSIONS)}"
              + (f"; skipped (custom resources, checked by the policy tests): {', '.join(sorted(skipped))}" if skipped else ""))

    for values, expected in MUST_FAIL:
        try:
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
        except helm.HelmError as error:
            if expected in str(error):
                print(f"ok   refused as expected: {expected!r}")
                continue
            print(f"FAIL refused with another message than {expected!r}: {error}")
        else:
            print(f"FAIL rendered although it must be refused ({expected!r}): {values}")
        failures += 1

    if failures:
        print(f"{failures} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
