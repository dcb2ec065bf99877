"""The journal's cost: journaled against unjournaled charges per second, side
by side in one run against the simulator (issue 10, item 8).

The simulator runs in a child process with no step delay, so a charge costs
little more than its messages and the journal's share shows. This process
holds two PayClients on the same connection kind, one with
``journal=<file>`` and one without, and runs rounds of charges in which the
two sides alternate in blocks of ``--block`` charges, so both see the same
noise of a shared machine (the journal's cost is one ``fdatasync``, whose
latency on a shared disk swings with everyone else's writes). Reports charges
per second per side and round, and the ratio journaled / unjournaled of the
medians (target at least 0.8). The
journal file lives in a temporary directory on the disk of ``--dir`` (default:
the system's temporary directory), where its syncs really go.

    python benchmarks/bench_journal.py                      # 7 rounds of 300 charges, TCP
    python benchmarks/bench_journal.py --ws --rounds 5 --charges 200
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import List, Optional

from payprotocol import PayClient

SERVER = """
import sys
from payprotocol.simulator import Simulator, SimulatorConfig
sim = Simulator(SimulatorConfig(step_delay=0, slow_presentation=0)).start()
print(sim.tcp_url, sim.ws_url, flush=True)
sys.stdin.read()  # runs until the parent closes our stdin
sim.stop()
"""

AMOUNT = Decimal("5.00")  # approved, no verification step


def charge_time(client: PayClient, charges: int) -> float:
    started = time.perf_counter()
    for _ in range(charges):
        tx = client.charge("devices/reader1", AMOUNT, "EUR")
        assert tx.status == "APPROVED", tx.status
    return time.perf_counter() - started


def interleaved(first: PayClient, second: PayClient, charges: int, block: int) -> List[float]:
    """Charges per second of each client, alternating in blocks."""
    spent = [0.0, 0.0]
    done = 0
    while done < charges:
        size = min(block, charges - done)
        spent[0] += charge_time(first, size)
        spent[1] += charge_time(second, size)
        done += size
    return [charges / spent[0], charges / spent[1]]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--charges", type=int, default=300, help="charges per side and round")
    parser.add_argument("--block", type=int, default=10, help="charges per side in a row")
    parser.add_argument("--ws", action="store_true", help="WebSocket instead of framed TCP")
    parser.add_argument("--dir", default=None, help="where the journal file is written")
    options = parser.parse_args(argv)

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        tcp_url, ws_url = server.stdout.readline().split()
        url = ws_url if options.ws else tcp_url
        with tempfile.TemporaryDirectory(dir=options.dir) as directory:
            journal = Path(directory) / "bench-journal.sqlite"
            with (
                PayClient(url, timeout=10, journal=journal) as journaled,
                PayClient(url, timeout=10) as plain,
            ):
                for client in (journaled, plain):
                    client.login("bench-merchant", "bench-secret")
                    charge_time(client, 50)  # warm-up
                with_journal: List[float] = []
                without: List[float] = []
                print(f"{'round':>5} {'journaled/s':>12} {'unjournaled/s':>14} {'ratio':>6}")
                for index in range(1, options.rounds + 1):
                    rates = interleaved(journaled, plain, options.charges, options.block)
                    with_journal.append(rates[0])
                    without.append(rates[1])
                    ratio = with_journal[-1] / without[-1]
                    print(
                        f"{index:>5} {with_journal[-1]:>12.0f} {without[-1]:>14.0f} {ratio:>6.2f}"
                    )
        median_with = statistics.median(with_journal)
        median_without = statistics.median(without)
        ratio = median_with / median_without
        transport = "WebSocket" if options.ws else "TCP"
        print(
            f"{transport}: journaled {median_with:.0f}/s, unjournaled {median_without:.0f}/s "
            f"(medians of {options.rounds} rounds of {options.charges}, in blocks of "
            f"{options.block}): ratio {ratio:.2f} "
            f"(target at least 0.8)"
        )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
