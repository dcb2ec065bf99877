"""Soak: many charges through the simulator at full speed, per transport.

The simulator runs in a child process (so the figures are the client's own);
this process keeps one PayClient per transport and charges in a loop, with a
signature answered from on_action every tenth charge. Reports throughput and
the client's resident memory and thread count at the start, every 10 % and
at the end: they must stay flat.

    python benchmarks/bench_soak.py                 # 10,000 charges per transport
    python benchmarks/bench_soak.py --charges 1000  # a quicker look
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import threading
import time
from decimal import Decimal
from typing import Dict, List, Tuple

import psutil

from payprotocol import PayClient

SERVER = """
import sys
from payprotocol.simulator import Simulator, SimulatorConfig
sim = Simulator(SimulatorConfig(step_delay=0, slow_presentation=0)).start()
print(sim.tcp_url, sim.ws_url, flush=True)
sys.stdin.read()  # runs until the parent closes our stdin
sim.stop()
"""

AMOUNTS = [Decimal("1.00"), Decimal("2.50"), Decimal("5.00"), Decimal("7.99"), Decimal("0.10")]


def rss_mib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / (1 << 20)


def soak(url: str, charges: int) -> Dict[str, object]:
    process = psutil.Process()
    samples: List[Tuple[int, float, int]] = []
    with PayClient(url, timeout=10) as client:
        client.login("soak-merchant", "soak-secret")
        sign = lambda action: client.submit_signature(action.resource, on_receipt=True)  # noqa: E731
        for i in range(200):  # warm-up: imports, caches, first allocations
            client.charge("devices/reader1", AMOUNTS[i % len(AMOUNTS)], "EUR")
        gc.collect()
        samples.append((0, rss_mib(process), threading.active_count()))
        started = time.perf_counter()
        approved = 0
        step = max(1, charges // 10)
        for i in range(1, charges + 1):
            if i % 10 == 0:
                tx = client.charge("devices/reader1", Decimal("10.00"), "EUR", on_action=sign)
            else:
                tx = client.charge("devices/reader1", AMOUNTS[i % len(AMOUNTS)], "EUR")
            approved += tx.status == "APPROVED"
            if i % step == 0:
                samples.append((i, rss_mib(process), threading.active_count()))
        elapsed = time.perf_counter() - started
    gc.collect()
    return {
        "url": url.split(":")[0],
        "charges": charges,
        "approved": approved,
        "seconds": elapsed,
        "per_second": charges / elapsed,
        "samples": samples,
        "threads_after_close": threading.active_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=10_000)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        tcp_url, ws_url = server.stdout.readline().split()
        threads_at_start = threading.active_count()
        for url in (tcp_url, ws_url):
            result = soak(url, args.charges)
            print(
                f"\n== {result['url']}: {result['charges']} charges, {result['approved']} approved"
            )
            print(f"   {result['seconds']:.1f} s, {result['per_second']:.0f} charges/s")
            print("   after charges   RSS MiB   threads")
            for done, rss, threads in result["samples"]:  # type: ignore[attr-defined]
                print(f"   {done:>14}   {rss:7.1f}   {threads:7}")
            print(
                f"   threads after close: {result['threads_after_close']} "
                f"(before any client: {threads_at_start})"
            )
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
