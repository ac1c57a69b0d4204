#!/usr/bin/env python3
"""Where a payment's latency goes, from a loopback packet capture.

Capture a few seconds of a `bench/run.sh latency ...` run (tcpdump from
Debian's `tcpdump` package):

    timeout 3 tcpdump -i lo -s 400 -w /tmp/cap.pcap 'tcp port 50651 or tcp port 18080'
    bench/wire_latency.py /tmp/cap.pcap [CORE_PORT] [GATEWAY_PORT]

Order ids travel in clear (protobuf strings, SSE JSON), so each order is
followed on the wire: report request into payment-core, report response,
event from the core to the gateway (the connection that receives the most
from the core), and the SSE frame from the gateway to the browser.
"""
import collections, re, struct, sys

path = sys.argv[1]
core_port = int(sys.argv[2]) if len(sys.argv) > 2 else 50651
gw_port = int(sys.argv[3]) if len(sys.argv) > 3 else 18080
f = open(path, "rb")
magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", f.read(24))
nanos = magic == 0xA1B23C4D
uuid = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
packets = []
while True:
    header = f.read(16)
    if len(header) < 16:
        break
    sec, frac, incl, _ = struct.unpack("<IIII", header)
    data = f.read(incl)
    ip = data[{1: 14, 113: 16, 276: 20}.get(linktype, 14):]
    tcp = ip[(ip[0] & 15) * 4:]
    sport, dport = struct.unpack(">HH", tcp[:4])
    payload = tcp[(tcp[12] >> 4) * 4:]
    if payload:
        packets.append((sec + frac / (1e9 if nanos else 1e6), sport, dport, payload))
to_gateway = collections.Counter(d for _, s, d, _ in packets if s == core_port).most_common(1)[0][0]
orders = collections.defaultdict(dict)
for t, sport, dport, payload in packets:
    for order in set(uuid.findall(payload)):
        o = orders[order]
        if dport == core_port:
            o.setdefault("req", t)
        elif sport == core_port and dport == to_gateway:
            o.setdefault("core2gw", t)
        elif sport == core_port:
            o.setdefault("resp", t)
        elif sport == gw_port:
            o.setdefault("sse", t)
rows = [o for o in orders.values() if {"req", "resp", "core2gw", "sse"} <= o.keys()]


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


print(f"{len(rows)} orders seen at every hop")
for name, span in [
    ("report in -> response out (core, RPC)", lambda o: o["resp"] - o["req"]),
    ("report in -> event out to gateway (core)", lambda o: o["core2gw"] - o["req"]),
    ("event in -> SSE frame out (gateway)", lambda o: o["sse"] - o["core2gw"]),
    ("report in -> SSE frame out (total)", lambda o: o["sse"] - o["req"]),
]:
    ms = [span(o) * 1000 for o in rows]
    print(f"  {name:<42} p50 {pct(ms, .5):6.2f}  p90 {pct(ms, .9):6.2f}  "
          f"p99 {pct(ms, .99):6.2f}  max {max(ms):6.2f} ms")
