#!/usr/bin/env python3
"""Side-by-side table (gateway vs nchan, with ratios) from loadgen --json files.

    bench/table.py [RESULTS_DIR]     (default: bench/results)
"""
import glob, json, os, sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
runs = {}
for f in sorted(glob.glob(os.path.join(d, "*.json"))):
    r = json.load(open(f))
    base = r["label"].rsplit("-", 1)[0]
    runs.setdefault(base, {})[r["target"]] = r

def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"

rows = [
    ("connected", lambda r: r["connected"], "{:.0f}"),
    ("set-up conn/s", lambda r: r["setup_per_sec"], "{:.0f}"),
    ("server KiB / idle conn", lambda r: r["server_bytes_per_idle_conn"] / 1024, "{:.2f}"),
    ("achieved results/s", lambda r: r["achieved_report_rate"], "{:.0f}"),
    ("p50 ms", lambda r: r["report_to_browser"]["p50_ms"], "{:.2f}"),
    ("p90 ms", lambda r: r["report_to_browser"]["p90_ms"], "{:.2f}"),
    ("p99 ms", lambda r: r["report_to_browser"]["p99_ms"], "{:.2f}"),
    ("p99.9 ms", lambda r: r["report_to_browser"]["p999_ms"], "{:.2f}"),
    ("max ms", lambda r: r["report_to_browser"]["max_ms"], "{:.2f}"),
    ("terminal events/s", lambda r: r["terminal_events_per_sec"], "{:.0f}"),
    ("server CPU s (load)", lambda r: r["server_cpu_secs_load"], "{:.2f}"),
    ("core CPU s (load)", lambda r: r["core_cpu_secs_load"], "{:.2f}"),
    ("loadgen CPU s (load)", lambda r: r.get("loadgen_cpu_secs_load", 0), "{:.2f}"),
    ("lost / duplicated", None, None),
]
for base, t in runs.items():
    g, n = t.get("gateway"), t.get("nchan")
    print(f"\n### {base}\n")
    print("| metric | gateway | nchan | gateway / nchan |")
    print("|---|---:|---:|---:|")
    for name, get, fmt in rows:
        if get is None:
            cell = lambda r: f'{r["lost"]} / {r["duplicated"]}' if r else "-"
            print(f"| {name} | {cell(g)} | {cell(n)} | |")
            continue
        gv = get(g) if g else None
        nv = get(n) if n else None
        if (gv or 0) == 0 and (nv or 0) == 0:
            continue
        print(f"| {name} | {fmt.format(gv) if g else '-'} | {fmt.format(nv) if n else '-'} | "
              f"{ratio(gv, nv) if g and n else ''} |")
