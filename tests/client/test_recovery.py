"""Never lose a payment: drops at every message, duplicates, late and
malformed responses, a server restart, reconnect, the journal and recover(),
over framed TCP and WebSocket against the real simulator."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, List

import psutil
import pytest

from payprotocol import (
    ConnectionLostError,
    ConnectionState,
    PayClient,
    ProtocolViolationError,
    ReconnectPolicy,
    ServerError,
    TransactionOutcomeUnknownError,
)
from payprotocol import models as m
from payprotocol.simulator import MALFORMED_KINDS, FaultPlan, Simulator, SimulatorConfig

from ..support.waiting import eventually, finished

pytestmark = pytest.mark.timeout(120)

READER = "devices/reader1"
# A signature charge: 8 updates, the SIGNATURE action and the final response.
SIGNATURE_CHARGE_MESSAGES = 10
QUICK = SimulatorConfig(step_delay=0.005, slow_presentation=1.0, action_timeout=0.3)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(QUICK) as simulator:
        yield simulator


@pytest.fixture(params=["tcp", "ws"])
def url(request: pytest.FixtureRequest, sim: Simulator) -> Iterator[str]:
    sim.set_faults(None)
    yield sim.tcp_url if request.param == "tcp" else sim.ws_url
    sim.set_faults(None)


def sign(client: PayClient) -> Any:
    return lambda action: client.submit_signature(action.resource, on_receipt=True)


def wait_stored(sim: Simulator, custom_identifier: str, timeout: float = 5.0) -> m.Transaction:
    """The simulator's own final record of a transaction (the truth to compare)."""
    return eventually(  # type: ignore[no-any-return]
        lambda: finished(sim, custom_identifier),
        timeout,
        message=f"the simulator never finished {custom_identifier}",
    )


def recover_until_resolved(url: str, journal: Path, timeout: float = 5.0) -> List[Any]:
    """recover() in a fresh client until nothing is pending (the reader may
    still be finishing the transaction the first time we ask)."""
    results: List[Any] = []
    with PayClient(url, timeout=5, journal=journal) as client:
        client.login("merchant-1", "secret-1")

        def resolved_all() -> bool:
            results.extend(r for r in client.recover() if r.resolved)
            return client.pending_outcomes() == []

        eventually(resolved_all, timeout)
    return results


@pytest.mark.parametrize("drop_after", range(1, SIGNATURE_CHARGE_MESSAGES + 1))
def test_drop_after_every_message(
    url: str, sim: Simulator, tmp_path: Path, drop_after: int
) -> None:
    journal = tmp_path / "pos.sqlite"
    sim.set_faults(FaultPlan(drop_after=drop_after))
    custom_identifier = f"drop-{drop_after}-{url[:3]}-{time.monotonic_ns()}"
    outcome: Any
    with PayClient(url, timeout=5, journal=journal) as client:
        client.login("merchant-1", "secret-1")
        started = time.monotonic()
        try:
            outcome = client.charge(
                READER,
                Decimal("10.00"),
                "EUR",
                custom_identifier=custom_identifier,
                on_action=sign(client),
            )
        except TransactionOutcomeUnknownError as exc:
            outcome = exc
        elapsed = time.monotonic() - started
    sim.set_faults(None)
    assert elapsed < 2.0
    if drop_after == SIGNATURE_CHARGE_MESSAGES:
        # The final response itself arrived before the drop.
        assert isinstance(outcome, m.Transaction) and outcome.status == "APPROVED"
        return
    assert isinstance(outcome, TransactionOutcomeUnknownError)
    assert outcome.custom_identifier == custom_identifier
    recovered = recover_until_resolved(url, journal)
    truth = sim.store.get_by_custom_identifier(custom_identifier)
    assert truth is not None
    assert [r.transaction.status for r in recovered] == [truth.status]
    assert recovered[0].transaction.transaction_identifier == truth.transaction_identifier


def test_duplicate_response_goes_to_late_results(url: str, sim: Simulator) -> None:
    sim.set_faults(FaultPlan(duplicate_response=True))
    late: List[m.Message] = []
    arrived = threading.Event()
    with PayClient(url, timeout=5) as client:
        client.login("merchant-1", "secret-1")
        client.on_late_result(lambda message: (late.append(message), arrived.set()))
        tx = client.charge(READER, Decimal("2.00"), "EUR")
        assert arrived.wait(3)
    assert tx.status == "APPROVED"
    assert late[0].type == "EXECUTE_TRANSACTION_RESPONSE"
    assert late[0].data.transaction.transaction_identifier == tx.transaction_identifier


def test_late_response_is_recorded_in_the_journal(url: str, sim: Simulator, tmp_path: Path) -> None:
    sim.set_faults(FaultPlan(late_response=1.0))
    late = threading.Event()
    with PayClient(
        url, timeout=5, transaction_timeout=0.5, journal=tmp_path / "j.sqlite"
    ) as client:
        client.login("merchant-1", "secret-1")
        client.on_late_result(lambda message: late.set())
        with pytest.raises(TransactionOutcomeUnknownError):
            client.charge(READER, Decimal("2.00"), "EUR")
        assert len(client.pending_outcomes()) == 1
        assert late.wait(5)
        eventually(lambda: client.pending_outcomes() == [], 3)  # the late response settled it


def test_a_broken_stream_mid_transaction_is_outcome_unknown(url: str, sim: Simulator) -> None:
    sim.set_faults(FaultPlan(malformed="huge-length"))  # a frame or message above the cap
    with PayClient(url, timeout=5) as client:
        client.login("merchant-1", "secret-1")
        started = time.monotonic()
        with pytest.raises(TransactionOutcomeUnknownError) as caught:
            client.charge(READER, Decimal("2.00"), "EUR")
        assert time.monotonic() - started < 2.0
        assert isinstance(caught.value.__cause__, ProtocolViolationError)
        assert caught.value.__cause__.broken_stream
        eventually(lambda: not client.connected)
    wait_stored(sim, caught.value.custom_identifier or "")


@pytest.mark.parametrize("kind", [kind for kind in MALFORMED_KINDS if kind != "huge-length"])
def test_an_unreadable_message_mid_transaction_is_skipped(
    url: str, sim: Simulator, kind: str
) -> None:
    # Not UTF-8 or not a JSON object, with no tag in it: skipped, nothing ends (6.4).
    sim.set_faults(FaultPlan(malformed=kind))
    with PayClient(url, timeout=5) as client:
        client.login("merchant-1", "secret-1")
        tx = client.charge(READER, Decimal("2.00"), "EUR")
        assert tx.status == "APPROVED"
        assert client.connected
        assert client.get_transaction(transaction_identifier=tx.transaction_identifier)


def test_unknown_fields_enums_and_types_are_tolerated(url: str, sim: Simulator) -> None:
    sim.set_faults(FaultPlan(unknown_fields=True, unknown_enums=True, unknown_message_type=True))
    seen: List[Any] = []
    with PayClient(url, timeout=5) as client:
        login = client.login("merchant-1", "secret-1")
        tx = client.charge(READER, Decimal("2.00"), "EUR", on_update=seen.append)
    assert tx.status == "APPROVED"
    assert tx.extra_fields  # unknown keys kept on the model
    assert any(isinstance(update, m.RawMessage) for update in seen)
    assert any(getattr(update, "state", None) == "WAITING_FOR_BIOMETRICS" for update in seen)
    assert any(device.comlink == "NFC_BRIDGE" for device in login.devices)


def test_server_restart_mid_transaction_then_reconnect_and_recover(
    url: str, sim: Simulator, tmp_path: Path
) -> None:
    states: List[ConnectionState] = []
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.5, jitter=0.1)
    with PayClient(url, timeout=5, reconnect=policy, journal=tmp_path / "pos.sqlite") as client:
        client.on_connection_state(states.append)
        client.login("merchant-1", "secret-1")
        restarter = threading.Timer(0.3, sim.restart)
        restarter.start()
        custom_identifier = f"restart-{time.monotonic_ns()}"
        try:  # slow card: still running when the server goes down
            outcome: Any = client.charge(
                READER, Decimal("20.09"), "EUR", custom_identifier=custom_identifier
            )
        except TransactionOutcomeUnknownError as exc:
            outcome = exc
        restarter.join()
        assert client.wait_connected(5)  # reconnected and logged in again by itself
        truth = wait_stored(sim, custom_identifier)
        if isinstance(outcome, m.Transaction):  # the final response beat the shutdown
            assert outcome.status == truth.status
            assert client.pending_outcomes() == []
        else:
            [recovered] = client.recover()
            assert recovered.resolved
            assert recovered.pending.custom_identifier == custom_identifier
            assert recovered.transaction is not None
            assert recovered.transaction.status == truth.status
            assert client.pending_outcomes() == []
    assert ConnectionState.DISCONNECTED in states and ConnectionState.RECONNECTING in states
    assert states[-1] == ConnectionState.CLOSED
    assert states.count(ConnectionState.CONNECTED) >= 1


def test_while_reconnecting_a_charge_fails_fast_and_a_lookup_waits(
    url: str, sim: Simulator
) -> None:
    policy = ReconnectPolicy(initial_delay=0.5, max_delay=0.5, jitter=0.0)
    with PayClient(url, timeout=5, reconnect=policy) as client:
        client.login("merchant-1", "secret-1")
        sim.restart()
        eventually(lambda: client.state is not ConnectionState.CONNECTED, 3)
        started = time.monotonic()
        with pytest.raises(ConnectionLostError):  # never sent: safe to charge again later
            client.charge(READER, Decimal("2.00"), "EUR", custom_identifier="while-away")
        assert time.monotonic() - started < 0.2
        with pytest.raises(ServerError) as caught:  # waited for the reconnect, then asked
            client.get_transaction(custom_identifier="never-existed")
        # Logged in again by itself: the server looked, it did not say NOT_LOGGED_IN.
        assert caught.value.error_type == m.ErrorType.TRANSACTION_NOT_FOUND
        assert client.connected
    assert sim.store.get_by_custom_identifier("while-away") is None


def test_threads_and_descriptors_back_after_close(url: str, sim: Simulator) -> None:
    process = psutil.Process()
    server_ports = {sim.tcp_port, sim.ws_port}

    def client_sockets() -> int:  # our side of connections to the simulator
        return sum(
            1 for c in process.net_connections("tcp") if c.raddr and c.raddr.port in server_ports
        )

    def cycle() -> None:
        with PayClient(url, timeout=5, reconnect=ReconnectPolicy()) as client:
            client.login("merchant-1", "secret-1")
            client.charge(READER, Decimal("2.00"), "EUR")

    cycle()  # warm-up: lazy imports, the simulator's first threads
    eventually(lambda: client_sockets() == 0)
    threads_before = set(threading.enumerate())
    fds_before = process.num_fds()
    for _ in range(5):
        cycle()
    assert client_sockets() == 0, process.net_connections("tcp")
    # The in-process simulator closes its side of each connection asynchronously:
    # wait until every thread the cycles started has ended, and the descriptors
    # are back (older server-side sockets may still be closing, so the total may
    # drop; it must never grow).
    eventually(
        lambda: set(threading.enumerate()) <= threads_before,
        message=f"threads left: {set(threading.enumerate()) - threads_before}",
    )
    eventually(lambda: process.num_fds() <= fds_before, message="descriptors leaked")
