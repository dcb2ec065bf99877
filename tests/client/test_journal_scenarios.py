"""Issue 10's scenarios through PayClient over real sockets (TCP and WebSocket):
a reused custom identifier is refused before anything is sent (with and
without a journal), recover() never steals a charge in flight of another
live client, a second conflicting final response never overwrites, one odd
lookup never stops recovery, and a raw execute request gets a custom
identifier."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from payprotocol import (
    CustomIdentifierInUseError,
    Journal,
    PayClient,
    ReconnectPolicy,
    TransactionOutcomeUnknownError,
)
from payprotocol import models as m
from payprotocol.simulator import FaultPlan, Simulator, SimulatorConfig

from ..support.messages import execute_final, reply, transaction
from ..support.peer import Peer, ScriptedServer
from ..support.waiting import eventually, finished

pytestmark = pytest.mark.timeout(60)

READER = "devices/reader1"
# 5.00: approved without any verification, so the reader finishes it alone.
PLAIN = Decimal("5.00")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(step_delay=0.005, slow_presentation=1.0)) as simulator:
        yield simulator


@pytest.fixture(params=["tcp", "ws"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(kind: str, sim: Simulator) -> Iterator[str]:
    sim.set_faults(None)
    yield sim.tcp_url if kind == "tcp" else sim.ws_url
    sim.set_faults(None)


def stored(sim: Simulator, custom_identifier: str) -> List[m.Transaction]:
    return [t for t in sim.store.transactions() if t.custom_identifier == custom_identifier]


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def charge_with_a_dropped_link(client: PayClient, sim: Simulator, order: str) -> None:
    sim.set_faults(FaultPlan(drop_after=2))
    with pytest.raises(TransactionOutcomeUnknownError):
        client.charge(READER, PLAIN, "EUR", custom_identifier=order)
    sim.set_faults(None)
    eventually(lambda: finished(sim, order), message="the reader never finished the charge")


# --- item 1: the retry of an unknown outcome -------------------------------------


def test_the_retry_of_an_unknown_charge_is_refused_and_recover_finds_the_first(
    url: str, sim: Simulator, tmp_path: Path
) -> None:
    journal = tmp_path / "pos.sqlite"
    order = unique("order-4711")
    with PayClient(url, timeout=5, journal=journal) as client:
        client.login("merchant-1", "secret-1")
        charge_with_a_dropped_link(client, sim, order)
    with PayClient(url, timeout=5, journal=journal) as client:
        client.login("merchant-1", "secret-1")
        with pytest.raises(CustomIdentifierInUseError, match=order) as refused:
            client.charge(READER, PLAIN, "EUR", custom_identifier=order)
        assert refused.value.state == "unresolved"
        assert len(stored(sim, order)) == 1  # the retry never reached the server
        [found] = client.recover()
        assert (found.result, found.resolved) == ("found", True)
        assert found.transaction is not None and found.transaction.status == "APPROVED"
        assert client.pending_outcomes() == []
        # Settled: reusing it needs the explicit opt-in.
        with pytest.raises(CustomIdentifierInUseError) as settled:
            client.charge(READER, PLAIN, "EUR", custom_identifier=order)
        assert settled.value.state == "settled"
        again = client.charge(
            READER, PLAIN, "EUR", custom_identifier=order, allow_identifier_reuse=True
        )
        assert again.status == "APPROVED"
    assert len(stored(sim, order)) == 2


def test_without_a_journal_the_client_refuses_its_own_unresolved_identifier(
    url: str, sim: Simulator
) -> None:
    order = unique("order-4712")
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)
    with PayClient(url, timeout=5, reconnect=policy) as client:
        client.login("merchant-1", "secret-1")
        charge_with_a_dropped_link(client, sim, order)
        assert client.wait_connected(10)  # a new connection (logged in again), the same client
        with pytest.raises(CustomIdentifierInUseError, match="look it up"):
            client.charge(READER, PLAIN, "EUR", custom_identifier=order)
        assert len(stored(sim, order)) == 1
        other = client.charge(READER, PLAIN, "EUR", custom_identifier=unique("order-4713"))
        assert other.status == "APPROVED"


def test_an_amend_reusing_an_unresolved_identifier_is_refused(url: str, tmp_path: Path) -> None:
    with PayClient(url, timeout=5, journal=tmp_path / "pos.sqlite") as client:
        client.login("merchant-1", "secret-1")
        charge = client.charge(READER, PLAIN, "EUR", custom_identifier=unique("sale"))
        refund_id = unique("refund")
        client.pending_outcomes()
        with Journal(tmp_path / "pos.sqlite") as other:  # another process's unknown refund
            other.record_sent(
                tag="elsewhere-1",
                message_type="AMEND_TRANSACTION_REQUEST",
                resource=None,
                custom_identifier=refund_id,
                parameters={},
            )
            other.mark_unknown("elsewhere-1", "link dropped")
        assert charge.transaction_identifier is not None
        with pytest.raises(CustomIdentifierInUseError):
            client.refund(charge.transaction_identifier, custom_identifier=refund_id)


# --- item 5: raw requests ----------------------------------------------------------


def test_a_raw_execute_request_gets_a_custom_identifier(
    url: str, sim: Simulator, tmp_path: Path
) -> None:
    raw: Dict[str, Any] = {
        "transactionParameters": {
            "type": "CHARGE",
            "amount": PLAIN,
            "currency": "EUR",
            "autoCapture": True,
        }
    }
    typed = m.ExecuteTransactionRequest(m.TransactionParameters("CHARGE", PLAIN, "EUR", True))
    with PayClient(url, timeout=5, journal=tmp_path / "pos.sqlite") as client:
        client.login("merchant-1", "secret-1")
        for data in (raw, typed):
            response = client.request("EXECUTE_TRANSACTION_REQUEST", data, resource=READER)
            sent = response.data.transaction  # type: ignore[union-attr]
            assert sent.custom_identifier  # the server holds it under an identifier
            [entry] = client._recorder.journal().find(sent.custom_identifier)
            assert entry.status == "APPROVED"
    assert "customIdentifier" not in raw["transactionParameters"]  # the caller's dict untouched


# --- item 2 in one process: recover() leaves another live client's charge alone ----


def test_recover_never_settles_the_charge_in_flight_of_another_client(
    kind: str, tmp_path: Path
) -> None:
    release = threading.Event()
    arrived = threading.Event()

    def server(peer: Peer) -> None:
        while True:
            request = peer.recv(timeout=30)
            if request.type == "EXECUTE_TRANSACTION_REQUEST":
                arrived.set()  # not registered anywhere: a lookup finds nothing yet
                assert release.wait(30)
                peer.send(execute_final(request, "APPROVED"))
            else:
                error = m.ErrorDetails("TRANSACTION_NOT_FOUND", "no such transaction")
                peer.send(reply(request, status="ERROR", error=error))

    scripted = ScriptedServer(kind, server)
    journal = tmp_path / "pos.sqlite"
    outcome: List[Any] = []
    try:
        with (
            PayClient(scripted.url, timeout=5, journal=journal) as pos_a,
            PayClient(scripted.url, timeout=5, journal=journal) as pos_c,
        ):
            worker = threading.Thread(
                target=lambda: outcome.append(
                    pos_a.charge("devices/r1", Decimal("10.00"), "EUR", custom_identifier="o-1")
                )
            )
            worker.start()
            assert arrived.wait(10)
            [result] = pos_c.recover()
            assert (result.result, result.resolved) == ("in_flight", False)
            assert [p.custom_identifier for p in pos_c.pending_outcomes()] == ["o-1"]
            release.set()
            worker.join(10)
        assert outcome and outcome[0].status == "APPROVED"
        with Journal(journal) as after:
            [entry] = after.find("o-1")
            assert entry.status == "APPROVED" and not entry.pending  # never "NOT_FOUND"
    finally:
        release.set()
        scripted.close()


# --- item 3: a second, conflicting final response ------------------------------------


def test_a_second_conflicting_final_response_surfaces_as_a_conflict(
    kind: str, tmp_path: Path
) -> None:
    def server(peer: Peer) -> None:
        request = peer.recv()
        peer.send(execute_final(request, "DECLINED"))
        peer.send(execute_final(request, "APPROVED"))  # the same tag, the opposite outcome
        peer.send(reply(request, m.ExecuteTransactionResponse(transaction("PENDING"))))
        while True:
            lookup = peer.recv(timeout=30)
            peer.send(reply(lookup, m.GetTransactionResponse(transaction("APPROVED"))))

    scripted = ScriptedServer(kind, server)
    late: List[m.Message] = []
    try:
        with PayClient(scripted.url, timeout=5, journal=tmp_path / "pos.sqlite") as client:
            client.on_late_result(late.append)
            told = client.charge("devices/r1", Decimal("10.00"), "EUR", custom_identifier="o-2")
            assert told.status == "DECLINED"
            eventually(lambda: len(late) == 2)

            def conflict_shown() -> Any:
                return [p for p in client.pending_outcomes() if p.conflict]

            [pending] = eventually(conflict_shown)
            assert (pending.status, pending.conflict_status) == ("DECLINED", "APPROVED")
            with pytest.raises(CustomIdentifierInUseError):
                client.charge("devices/r1", Decimal("10.00"), "EUR", custom_identifier="o-2")
            [recovered] = client.recover()
            assert (recovered.result, recovered.resolved) == ("found", True)
            assert client.pending_outcomes() == []
    finally:
        scripted.close()
