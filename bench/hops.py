#!/usr/bin/env python3
"""Where a result's time goes, hop by hop, for gateway runs whose metrics
bench/run.sh kept (OUT_DIR/metrics/<label>-{core,gateway}.txt, scraped
after the run) and whose loadgen JSON is beside them.

    bench/hops.py OUT_DIR [LABEL_PREFIX]

Medians; the servers' are interpolated within their histogram buckets, as
Prometheus's histogram_quantile does (so only as fine as the buckets):
  report call      loadgen: the signed report sent → its answer received
  commit           payment-core: the writer taking the batch → COMMIT done
                   (the fsync is in it)
  recorded → handed  sse-gateway: the event's time (its occurred_at, taken
                   when the writer applies it, before the commit) → its frame
                   handed to the browser's connection: the rest of the
                   commit, the core's broadcast, watcher, HTTP/2 out, the
                   gateway's upstream, hub and connection task
  report → browser loadgen: the report sent → the event parsed by the client
"""
import glob
import json
import os
import sys


def median_ms(text, name, labels=()):
    """histogram_quantile(0.5, name) in ms, summed over matching series."""
    buckets = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{") and all(f'{k}="{v}"' in line for k, v in labels):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    if not buckets:
        return float("nan")
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    rank, lower, below = total / 2, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower * 1000
            inside = buckets[bound] - below
            return (lower + (bound - lower) * (rank - below) / inside) * 1000
        lower, below = bound, buckets[bound]
    return float("nan")


def main():
    out = sys.argv[1]
    prefix = sys.argv[2] if len(sys.argv) > 2 else ""
    print("| run | report call | commit | recorded → handed to the connection | report → browser |")
    print("|---|---:|---:|---:|---:|")
    for core_file in sorted(glob.glob(os.path.join(out, "metrics", f"{prefix}*-core.txt"))):
        label = os.path.basename(core_file)[: -len("-core.txt")]
        gateway_file = core_file[: -len("-core.txt")] + "-gateway.txt"
        summary_file = os.path.join(out, label + ".json")
        if not (os.path.exists(gateway_file) and os.path.exists(summary_file)):
            continue
        core, gateway = open(core_file).read(), open(gateway_file).read()
        summary = json.load(open(summary_file))
        commit = median_ms(core, "payment_core_commit_seconds")
        lag = median_ms(gateway, "sse_gateway_delivery_lag_seconds", [("kind", "order"), ("source", "live")])
        call = summary["report_call"]
        browser = summary["report_to_browser"]
        print(f"| {label} | {call['p50_ms']:.3f} ms | {commit:.3f} ms | {lag:.3f} ms | {browser['p50_ms']:.3f} ms |")


main()
