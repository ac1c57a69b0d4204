#!/usr/bin/env python3
"""What `tc qdisc add dev DEV root netem delay D loss L` does to a device's
outgoing packets, for kernels built without netem (CONFIG_NET_SCH_NETEM),
such as this project's CI machines: each packet an iptables NFQUEUE rule
hands over (`-j NFQUEUE --queue-num Q --queue-bypass` in the OUTPUT chain)
is dropped with probability L, or else let go D milliseconds after it was
queued, in the order it came.

.ci/rolling.sh runs it inside a container's network namespace (nsenter -n),
where the rule is. It runs until SIGTERM; with --queue-bypass, packets pass
untouched once it is gone. Needs the NetfilterQueue package (PyPI, built
against Debian's libnetfilter-queue-dev).
"""

import argparse
import collections
import random
import select
import signal
import socket
import sys
import time

from netfilterqueue import NetfilterQueue


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, required=True, help="NFQUEUE number")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--loss", type=float, default=0.0, help="0.02 for 2%%")
    args = parser.parse_args()

    delay = args.delay_ms / 1000.0
    # (due time, packet), in arrival order: one delay for all keeps it sorted.
    held = collections.deque()
    stopping = False

    def hold(packet) -> None:
        if random.random() < args.loss:
            packet.drop()
        else:
            held.append((time.monotonic() + delay, packet))

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    queue = NetfilterQueue()
    # Up to 4,096 packets waiting in the kernel for this program.
    queue.bind(args.queue, hold, max_len=4096)
    sock = socket.fromfd(queue.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW)
    print(f"netdelay: queue {args.queue}, delay {args.delay_ms} ms, loss {args.loss}", file=sys.stderr)
    try:
        while not stopping:
            now = time.monotonic()
            while held and held[0][0] <= now:
                held.popleft()[1].accept()
            timeout = max(0.0, held[0][0] - now) if held else 0.5
            readable, _, _ = select.select([sock], [], [], timeout)
            if readable:
                queue.run(block=False)
    finally:
        for _, packet in held:
            packet.accept()
        queue.unbind()
    return 0


if __name__ == "__main__":
    sys.exit(main())
