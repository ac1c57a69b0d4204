#!/usr/bin/env python3
"""Chart and table of a bench/before-after.sh run: the current gateway, the
earlier one, and nginx + nchan, workload by workload.

    bench/chart.py [DIR]      (default: bench/results/before-after)

Writes DIR/chart.png (latency percentiles at 1,000 results/s and set-up
rates) and prints a Markdown table of every figure: the median over the
repeated runs, with the range in brackets. Needs matplotlib.
"""
import glob
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "results", "before-after")
SERVERS = [("after", "gateway, now"), ("before", "gateway, before"), ("nchan", "nginx + nchan")]


def runs(server, workload):
    """Every run of `workload` (a label prefix such as latency-10000-1000) by `server`."""
    found = []
    for path in sorted(glob.glob(os.path.join(DIR, server, f"{workload}-*.json"))):
        name = os.path.basename(path)[len(workload) + 1 : -len(".json")]
        # latency-10000-1000-gateway-2.json, not latency-10000-1000-x6-...
        if name.split("-")[0] in ("gateway", "nchan"):
            found.append(json.load(open(path)))
    return found


def figure(server, workload, get):
    values = [get(r) for r in runs(server, workload)]
    values = [v for v in values if v is not None]
    return values


def cell(values, fmt):
    if not values:
        return "-"
    mid = fmt.format(statistics.median(values))
    if len(values) == 1:
        return mid
    return f"{mid} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


latency = lambda key: (lambda r: r["report_to_browser"][key])
ROWS = [
    ("latency-10000-1000", "report→browser p50 at 1,000/s, ms", latency("p50_ms"), "{:.2f}"),
    ("latency-10000-1000", "report→browser p90 at 1,000/s, ms", latency("p90_ms"), "{:.2f}"),
    ("latency-10000-1000", "report→browser p99 at 1,000/s, ms", latency("p99_ms"), "{:.2f}"),
    ("latency-10000-1000", "core CPU per report at 1,000/s, µs",
     lambda r: r["core_cpu_secs_load"] / r["reports"] * 1e6 if r["reports"] and r["target"] == "gateway" else None, "{:.0f}"),
    ("latency-10000-1000", "server CPU per result at 1,000/s, µs",
     lambda r: r["server_cpu_secs_load"] / r["reports"] * 1e6 if r["reports"] else None, "{:.0f}"),
    ("latency-10000-1000", "stream set-up, conn/s", lambda r: r["setup_per_sec"], "{:.0f}"),
    ("latency-10000-max", "results/s, unpaced", lambda r: r["terminal_events_per_sec"], "{:.0f}"),
    ("latency-10000-max", "core CPU per report, unpaced, µs",
     lambda r: r["core_cpu_secs_load"] / r["reports"] * 1e6 if r["reports"] and r["target"] == "gateway" else None, "{:.0f}"),
    ("idle-10000", "stream set-up, conn/s", lambda r: r["setup_per_sec"], "{:.0f}"),
    ("idle-10000", "memory per idle stream, KiB", lambda r: r["server_bytes_per_idle_conn"] / 1024, "{:.2f}"),
    ("idle-10000", "server memory before any stream, MiB", lambda r: r["server_kib_before"] / 1024, "{:.1f}"),
    ("fanout-1000-w1000", "fan-out 1 → 1,000: last served, ms", latency("max_ms"), "{:.1f}"),
    ("fanout-1000-w1000", "fan-out 1 → 1,000: p50, ms", latency("p50_ms"), "{:.1f}"),
    ("storm-19000-2000", "storm: 19,000 streams served again in, s", lambda r: r["storm_restore_secs"], "{:.2f}"),
    ("storm-19000-2000", "storm: streams served again",
     lambda r: r["storm_restored"], "{:.0f}"),
    ("storm-19000-2000", "storm: serving server's CPU, s", lambda r: r["storm_server_cpu_secs"], "{:.2f}"),
    ("storm-19000-2000", "storm: core CPU, s",
     lambda r: r["storm_core_cpu_secs"] if r["target"] == "gateway" else None, "{:.2f}"),
    ("storm-19000-2000", "storm: core calls to serve them",
     lambda r: r["storm_core_calls"] if r["target"] == "gateway" and r["storm_core_calls"] >= 0 else None, "{:.0f}"),
    ("storm-19000-2000", "storm: streams not served in 5 attempts",
     lambda r: r["connected"] - r["storm_restored"] + r["failed_connections"], "{:.0f}"),
    ("storm-19000-2000", "storm: lost / duplicated results",
     lambda r: None, None),
    ("storm-9000-1000", "storm of 9,000: served again in, s", lambda r: r["storm_restore_secs"], "{:.2f}"),
    ("storm-9000-1000", "storm of 9,000: serving server's CPU, s", lambda r: r["storm_server_cpu_secs"], "{:.2f}"),
    ("storm-9000-1000", "storm of 9,000: streams not served in 5 attempts",
     lambda r: r["connected"] - r["storm_restored"] + r["failed_connections"], "{:.0f}"),
]


def table():
    print("| | " + " | ".join(label for _, label in SERVERS) + " |")
    print("|---|" + "---:|" * len(SERVERS))
    for workload, name, get, fmt in ROWS:
        if fmt is None:
            cells = [" ; ".join(f"{r['lost']} / {r['duplicated']}" for r in runs(server, workload)) or "-"
                     for server, _ in SERVERS]
            print(f"| {name} | " + " | ".join(cells) + " |")
            continue
        cells = [cell(figure(server, workload, get), fmt) for server, _ in SERVERS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    lost = []
    for server, label in SERVERS:
        rs = [r for path in glob.glob(os.path.join(DIR, server, "*.json")) for r in [json.load(open(path))]]
        lost.append(f"{sum(r['lost'] for r in rs)} / {sum(r['duplicated'] for r in rs)} in {len(rs)} runs")
    print("| lost / duplicated, all runs | " + " | ".join(lost) + " |")


def chart():
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.26
    keys = ["p50_ms", "p90_ms", "p99_ms"]
    for i, (server, label) in enumerate(SERVERS):
        medians = [statistics.median(figure(server, "latency-10000-1000", latency(k)) or [0]) for k in keys]
        xs = [k + (i - 1) * width for k in range(len(keys))]
        bars = left.bar(xs, medians, width, label=label)
        left.bar_label(bars, fmt="%.2f", fontsize=7)
    left.set_xticks(range(len(keys)), ["p50", "p90", "p99"])
    left.set_ylabel("report → browser, ms (median of runs)")
    left.set_title("10,000 watchers, 1,000 results/s")
    left.legend()

    rates = [
        ("idle-10000", "set-up, 10,000 streams", lambda r: r["setup_per_sec"]),
        ("storm-19000-2000", "storm: 19,000 back", lambda r: r["storm_restore_per_sec"]),
        ("storm-9000-1000", "storm: 9,000 back", lambda r: r["storm_restore_per_sec"]),
    ]
    for i, (server, label) in enumerate(SERVERS):
        values = [statistics.median(figure(server, w, get) or [0]) for w, _, get in rates]
        xs = [k + (i - 1) * width for k in range(len(rates))]
        bars = right.bar(xs, values, width, label=label)
        right.bar_label(bars, fmt="%.0f", fontsize=7)
    right.set_xticks(range(len(rates)), [name for _, name, _ in rates])
    right.set_ylabel("streams served per second")
    right.set_title("Stream set-up rate")
    right.legend()
    fig.tight_layout()
    out = os.path.join(DIR, "chart.png")
    fig.savefig(out, dpi=110)
    print(f"\nchart: {out}", file=sys.stderr)


table()
chart()
