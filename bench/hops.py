#!/usr/bin/env python3
"""Where a result's time goes, hop by hop, for gateway runs whose metrics
bench/run.sh kept (OUT_DIR/metrics/<label>-core.txt, scraped
after the run) and whose loadgen JSON is beside them.

    bench/hops.py OUT_DIR [LABEL_PREFIX]

Medians (p50); payment-core's are interpolated within their histogram buckets, as
Prometheus's histogram_quantile does (so only as fine as the buckets):
  report call      loadgen: the signed report sent → its answer received
  commit           payment-core: the writer taking the batch → COMMIT done
                   (the fsync is in it)
  report → browser loadgen: the report sent → the event parsed by the client
  the rest         report → browser minus commit: gRPC in, the hand-offs to
                   and from the writer, the core's broadcast, watcher and
                   HTTP/2 out, the gateway's upstream, hub and connection
                   task, the socket, the client

The gateway's delivery_lag_seconds is not used: events carry millisecond
times, so below a millisecond it overstates by up to one.
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
    if total == 0:
        return float("nan")
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
    print("| run | report call | commit | report → browser | the rest |")
    print("|---|---:|---:|---:|---:|")
    for core_file in sorted(glob.glob(os.path.join(out, "metrics", f"{prefix}*-core.txt"))):
        label = os.path.basename(core_file)[: -len("-core.txt")]
        summary_file = os.path.join(out, label + ".json")
        if not os.path.exists(summary_file):
            continue
        core = open(core_file).read()
        summary = json.load(open(summary_file))
        commit = median_ms(core, "payment_core_commit_seconds")
        call = summary["report_call"]
        browser = summary["report_to_browser"]
        rest = browser["p50_ms"] - commit
        print(f"| {label} | {call['p50_ms']:.3f} ms | {commit:.3f} ms | {browser['p50_ms']:.3f} ms | {rest:.3f} ms |")


main()
