"""Several real POS processes share one journal file (issue 10, items 2 and 9).

Each POS is a ``subprocess`` child (``tests/support/pos_child.py``) with its
own PayClient; recovery runs concurrently in another process, the real
``payprotocol recover`` command line. One POS is SIGKILLed mid-charge. Over
framed TCP and WebSocket:

* against the simulator, the slow card (``.09``) holds two charges in flight
  (each child reports ``WAITING_FOR_CARD_PRESENTATION``): recovery leaves both
  alone while their processes live, looks the killed one up once it is dead
  (still pending on the reader, then aborted) and never touches the live one,
  which settles its own row;
* against a scripted server that never registers the charge (a lookup finds
  nothing while it is in flight, the issue's scenario), recovery must not
  record "nothing was charged": once the POS is killed and the server holds
  the charge as approved, recovery records APPROVED.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from payprotocol import Journal, PayClient
from payprotocol import models as m
from payprotocol.simulator import Simulator, SimulatorConfig

from ..support.cli import LineReader, cli_env, command, run_python
from ..support.messages import reply, transaction
from ..support.peer import Peer, ScriptedServer
from ..support.waiting import eventually, finished

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

POS = str(Path(__file__).resolve().parents[1] / "support" / "pos_child.py")


@pytest.fixture(params=["tcp", "ws"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Pos:
    """One POS child process charging through the shared journal."""

    def __init__(self, url: str, journal: Path, reader: str, amount: str, order: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, POS, url, str(journal), reader, amount, order],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        assert self.process.stdout is not None
        self.lines = LineReader(self.process.stdout)

    def wait_for(self, pattern: str) -> None:
        self.lines.wait_for(pattern, timeout=30)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL

    def finish(self) -> None:
        """Let it close its client and exit (it waits on its stdin)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(30) == 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def children() -> Iterator[List[Pos]]:
    started: List[Pos] = []
    yield started
    for pos in started:
        pos.stop()


def recover_in_another_process(url: str, journal: Path) -> Any:
    """``payprotocol recover --json`` as its own process: (exit code, results by order)."""
    done = run_python(
        command(
            "recover", "--url", url, "--merchant", "merchant-1", "--journal", str(journal), "--json"
        ),
        env=cli_env(PAYPROTOCOL_MERCHANT_SECRET="secret-1"),
        timeout=60,
    )
    assert done.returncode in (0, 4), done.stderr
    results = json.loads(done.stdout, parse_float=Decimal)
    return done.returncode, {r["customIdentifier"]: r for r in results}


def test_recovery_leaves_live_pos_processes_alone_and_settles_a_killed_one(
    kind: str, tmp_path: Path, children: List[Pos]
) -> None:
    journal = tmp_path / "pos-journal.sqlite"
    Journal(journal).close()  # created once, up front: every process then opens it
    config = SimulatorConfig(step_delay=0.01, slow_presentation=60.0)  # held until aborted
    with Simulator(config) as sim:
        url = sim.tcp_url if kind == "tcp" else sim.ws_url
        pos_a = Pos(url, journal, "devices/reader1", "5.09", "order-a")
        pos_b = Pos(url, journal, "devices/reader2", "5.09", "order-b")
        children.extend([pos_a, pos_b])
        pos_a.wait_for("STATE WAITING_FOR_CARD_PRESENTATION")
        pos_b.wait_for("STATE WAITING_FOR_CARD_PRESENTATION")

        code, results = recover_in_another_process(url, journal)
        assert code == 4
        assert {o: (r["result"], r["resolved"]) for o, r in results.items()} == {
            "order-a": ("in_flight", False),
            "order-b": ("in_flight", False),
        }

        pos_a.kill()  # mid-charge: no close, no clean-up; the OS drops its owner lock
        code, results = recover_in_another_process(url, journal)
        assert code == 4
        assert results["order-a"]["result"] == "still_pending"  # looked up: the card waits
        assert results["order-b"]["result"] == "in_flight"

        with PayClient(url, timeout=10) as desk:  # the reader's charge ends without its POS
            desk.login("merchant-1", "secret-1")
            desk.abort_transaction("devices/reader1")
            truth = eventually(lambda: finished(sim, "order-a"), 10)
            code, results = recover_in_another_process(url, journal)
            assert results["order-a"]["result"] == "found"
            assert results["order-a"]["status"] == truth.status == "ABORTED"
            assert results["order-b"]["result"] == "in_flight"  # still never touched
            desk.abort_transaction("devices/reader2")
        pos_b.wait_for("RESULT ABORTED")  # its own response settles its own row
        pos_b.finish()

    with Journal(journal, create=False) as after:
        assert after.pending() == []
        [a] = after.find("order-a")
        [b] = after.find("order-b")
        assert (a.status, b.status) == ("ABORTED", "ABORTED")
        assert a.owner != b.owner and a.owner is not None and b.owner is not None


def test_a_charge_not_yet_registered_is_not_recorded_as_never_charged(
    kind: str, tmp_path: Path, children: List[Pos]
) -> None:
    journal = tmp_path / "pos-journal.sqlite"
    Journal(journal).close()
    charged: List[m.Message] = []
    approved = threading.Event()

    def server(peer: Peer) -> None:
        while True:
            request = peer.recv(timeout=60)
            if request.type == "LOGIN_MERCHANT_REQUEST":
                devices = [m.Device("devices/reader1", "Counter")]
                peer.send(reply(request, m.LoginMerchantResponse(devices)))
            elif request.type == "EXECUTE_TRANSACTION_REQUEST":
                charged.append(request)  # held: no answer, and no record a lookup finds
            elif approved.is_set():
                order = charged[0].data.transaction_parameters.custom_identifier  # type: ignore[union-attr]
                found = transaction("APPROVED", "10.00", custom_identifier=order)
                peer.send(reply(request, m.GetTransactionResponse(found)))
            else:
                error = m.ErrorDetails("TRANSACTION_NOT_FOUND", "no such transaction")
                peer.send(reply(request, status="ERROR", error=error))

    scripted = ScriptedServer(kind, server)
    try:
        pos = Pos(scripted.url, journal, "devices/reader1", "10.00", "order-4711")
        children.append(pos)
        eventually(lambda: charged, 30, message="the charge never reached the server")

        code, results = recover_in_another_process(scripted.url, journal)
        assert code == 4
        assert results["order-4711"]["result"] == "in_flight"  # not "nothing was charged"

        pos.kill()
        approved.set()  # the reader approved it after all
        code, results = recover_in_another_process(scripted.url, journal)
        assert code == 0
        assert (results["order-4711"]["result"], results["order-4711"]["status"]) == (
            "found",
            "APPROVED",
        )
    finally:
        scripted.close()
    with Journal(journal, create=False) as after:
        [entry] = after.find("order-4711")
        assert entry.status == "APPROVED" and not entry.pending
