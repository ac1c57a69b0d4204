#!/usr/bin/env python3
"""Where a result's time goes, hop by hop, for gateway runs whose metrics
bench/run.sh kept (OUT_DIR/metrics/<label>-{core,gateway}.txt, scraped
after the run) and whose loadgen JSON is beside them.

    bench/hops.py OUT_DIR [LABEL_PREFIX]

Means, from the histograms' _sum/_count (a mean per hop adds up, which
percentiles do not):
  report call      loadgen: the signed report sent → its answer received
  commit           payment-core: the writer taking the batch → COMMIT done
                   (the fsync is in it)
  commit → handed  sse-gateway: the event's commit time (its occurred_at) →
                   its frame handed to the browser's connection: the core's
                   broadcast, watcher, HTTP/2 out, the gateway's upstream,
                   hub and connection task
  report → browser loadgen: the report sent → the event parsed by the client
"""
import glob
import json
import os
import sys


def mean(text, name, labels=()):
    total = count = 0.0
    for line in text.splitlines():
        for suffix, slot in (("_sum", "sum"), ("_count", "count")):
            if line.startswith(name + suffix) and all(f'{k}="{v}"' in line for k, v in labels):
                value = float(line.rsplit(" ", 1)[1])
                if slot == "sum":
                    total += value
                else:
                    count += value
    return total / count * 1000 if count else float("nan")


def main():
    out = sys.argv[1]
    prefix = sys.argv[2] if len(sys.argv) > 2 else ""
    print("| run | report call, p50 | commit, mean | commit → handed to connection, mean | report → browser, p50 |")
    print("|---|---:|---:|---:|---:|")
    for core_file in sorted(glob.glob(os.path.join(out, "metrics", f"{prefix}*-core.txt"))):
        label = os.path.basename(core_file)[: -len("-core.txt")]
        gateway_file = core_file[: -len("-core.txt")] + "-gateway.txt"
        summary_file = os.path.join(out, label + ".json")
        if not (os.path.exists(gateway_file) and os.path.exists(summary_file)):
            continue
        core, gateway = open(core_file).read(), open(gateway_file).read()
        summary = json.load(open(summary_file))
        commit = mean(core, "payment_core_commit_seconds")
        lag = mean(gateway, "sse_gateway_delivery_lag_seconds", [("kind", "order"), ("source", "live")])
        call = summary["report_call"]
        browser = summary["report_to_browser"]
        # The loadgen JSON keeps percentiles only; its p50 stands in for the mean.
        print(f"| {label} | {call['p50_ms']:.3f} ms | {commit:.3f} ms | {lag:.3f} ms | {browser['p50_ms']:.3f} ms |")


main()
