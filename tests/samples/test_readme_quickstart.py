"""The README's Quickstart, extracted from README.md as written, runs against
the simulator with the connection dropped before the charge's final response:
the documented outcome-unknown pattern (catch, look it up on the same client)
finds the approved charge, which was charged exactly once."""

from __future__ import annotations

import re
import sys
from typing import Iterator

import pytest

from payprotocol.simulator import FaultPlan, Simulator, SimulatorConfig

from ..support.cli import REPO, cli_env, run_python

pytestmark = pytest.mark.timeout(90)

README_URL = "tcp://127.0.0.1:4245"
# The 10.00 signature charge sends 8 updates, the SIGNATURE action and its final
# response; the simulator stores the outcome before the 9th message (the last
# update), so dropping after it leaves the charge approved and the response lost.
DROP_BEFORE_THE_RESPONSE = 9


def quickstart() -> str:
    """The first Python block of the README's Quickstart section, unchanged."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no Python block in the README's Quickstart"
    return found.group(1)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(step_delay=0.01)) as simulator:
        yield simulator


def run_quickstart(url: str) -> tuple[int, str, str]:
    code = quickstart()
    assert code.count(README_URL) == 1
    # The one change: the simulator's free port instead of the README's 4245.
    done = run_python(
        [sys.executable, "-c", code.replace(README_URL, url)], env=cli_env(), timeout=60
    )
    return done.returncode, done.stdout, done.stderr


def test_the_quickstart_finds_the_approved_charge_after_the_link_dropped(sim: Simulator) -> None:
    sim.set_faults(FaultPlan(drop_after=DROP_BEFORE_THE_RESPONSE))
    code, out, err = run_quickstart(sim.tcp_url)
    assert code == 0, err
    assert "connection to" in err and "lost" in err  # the drop happened (a WARNING)
    charge = sim.store.get_by_custom_identifier("order-4711")
    assert charge is not None and charge.status == "APPROVED"
    assert f"APPROVED {charge.transaction_identifier}" in out.splitlines()
    charges = [t for t in sim.store.transactions() if t.type == "CHARGE"]
    refunds = [t for t in sim.store.transactions() if t.type == "REFUND"]
    assert len(charges) == 1  # looked up, never charged again
    assert [(r.status, r.amount) for r in refunds] == [("APPROVED", charge.amount / 2)]
    assert refunds[0].referenced_transaction_identifier == charge.transaction_identifier


def test_the_quickstart_without_a_fault(sim: Simulator) -> None:
    code, out, err = run_quickstart(sim.tcp_url)
    assert code == 0, err
    assert "lost" not in err
    assert any(line.startswith("APPROVED ") for line in out.splitlines())
    assert "Present card" in out  # the reader's display lines from on_update
