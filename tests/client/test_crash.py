"""A POS process killed with SIGKILL in the middle of a charge: a new process
with the same journal finds the charge and recover() returns its real status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from payprotocol import PayClient
from payprotocol.simulator import Simulator, SimulatorConfig

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

POS_SCRIPT = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from payprotocol import PayClient

    url, journal = sys.argv[1], sys.argv[2]
    client = PayClient(url, timeout=5, journal=journal)
    client.connect()
    client.login("merchant-1", "secret-1")

    def on_update(update):
        if update.state == "WAITING_FOR_CARD_PRESENTATION":
            print("CARD", flush=True)  # the parent kills us now

    client.charge("devices/reader1", Decimal("20.09"), "EUR", custom_identifier="crash-4711",
                  on_update=on_update)
    print("FINISHED", flush=True)
    """
)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_sigkill_mid_charge_then_recover(tmp_path: Path, transport: str) -> None:
    journal = tmp_path / "pos-journal.sqlite"
    config = SimulatorConfig(step_delay=0.01, slow_presentation=1.0)
    with Simulator(config) as sim:
        url = sim.tcp_url if transport == "tcp" else sim.ws_url
        pos = subprocess.Popen(
            [sys.executable, "-c", POS_SCRIPT, url, str(journal)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert pos.stdout is not None
            assert pos.stdout.readline().strip() == "CARD"
            os.kill(pos.pid, signal.SIGKILL)
            assert pos.wait(10) == -signal.SIGKILL
        finally:
            if pos.poll() is None:
                pos.kill()
                pos.wait(5)
        assert sim.wait_idle(10)  # the reader finishes the charge without its POS
        truth = sim.store.get_by_custom_identifier("crash-4711")
        assert truth is not None

        with PayClient(url, timeout=5, journal=journal) as client:
            [pending] = client.pending_outcomes()
            assert pending.custom_identifier == "crash-4711"
            assert pending.resource == "devices/reader1"
            assert pending.parameters["transactionParameters"]["amount"] == truth.amount
            client.login("merchant-1", "secret-1")
            [recovered] = client.recover()
            assert client.pending_outcomes() == []
        assert recovered.resolved
        assert recovered.transaction is not None
        assert recovered.transaction.status == truth.status == "APPROVED"
        assert recovered.transaction.transaction_identifier == truth.transaction_identifier
