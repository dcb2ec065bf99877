"""How the client judges what a server says about the money: responses of the
wrong type, responses without a transaction, errors that carry one, fields
that do not fit, floats, reused custom identifiers, a reconnect whose login
times out. Scripted server over real sockets (TCP and WebSocket)."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, List

import pytest

from payprotocol import (
    ConnectionState,
    PayClient,
    ReconnectPolicy,
    ServerError,
    TransactionOutcomeUnknownError,
)
from payprotocol import models as m

from ..support.messages import execute_final as final
from ..support.messages import reply, transaction, wire
from ..support.peer import Peer, ScriptedServer, Serve
from ..support.waiting import eventually

pytestmark = pytest.mark.timeout(30)


def test_a_response_of_another_type_does_not_end_the_charge(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(m.RawMessage("EXECUTE_TRANSACTION_INTERIM_RESPONSE", request.tag, None, {}))
        peer.send(
            reply(
                request,
                m.GetTransactionResponse(transaction("DECLINED")),
                type="GET_TRANSACTION_RESPONSE",
            )
        )
        peer.send(final(request))

    server = serve(handler)
    seen: List[Any] = []
    with PayClient(server.url, timeout=5, transaction_timeout=5) as client:
        tx = client.charge("devices/r1", Decimal("10.00"), "EUR", on_update=seen.append)
    assert tx.status == "APPROVED"
    assert [message.type for message in seen] == [
        "EXECUTE_TRANSACTION_INTERIM_RESPONSE",
        "GET_TRANSACTION_RESPONSE",
    ]


def test_a_final_response_without_transaction_is_outcome_unknown(
    serve: Serve, tmp_path: Path
) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(reply(request, m.ExecuteTransactionResponse()))

    server = serve(handler)
    with PayClient(
        server.url, timeout=5, transaction_timeout=5, journal=tmp_path / "j.sqlite"
    ) as client:
        with pytest.raises(TransactionOutcomeUnknownError) as caught:
            client.charge("devices/r1", Decimal("10.00"), "EUR")
        assert "holds no transaction" in str(caught.value)
        [pending] = client.pending_outcomes()
        assert pending.custom_identifier == caught.value.custom_identifier


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("INCONCLUSIVE", TransactionOutcomeUnknownError),
        ("APPROVED", TransactionOutcomeUnknownError),
        ("DECLINED", ServerError),
    ],
)
def test_an_error_response_that_carries_a_transaction(
    serve: Serve, tmp_path: Path, status: str, outcome: type
) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        error = m.ErrorDetails("INTERNAL_ERROR", "backend trouble")
        peer.send(final(request, status, status="ERROR", error=error))

    server = serve(handler)
    with PayClient(
        server.url, timeout=5, transaction_timeout=5, journal=tmp_path / "j.sqlite"
    ) as client:
        with pytest.raises(outcome):
            client.charge("devices/r1", Decimal("10.00"), "EUR")
        # Only a definite failure settles the journal; anything else is looked up.
        assert len(client.pending_outcomes()) == (0 if status == "DECLINED" else 1)


def test_an_update_that_does_not_fit_reaches_on_update_typed(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        data = {"information": ["a", "b"], "abortable": "yes"}
        peer.send(wire("EXECUTE_TRANSACTION_UPDATE", request.tag, data))
        peer.send(final(request))
        # The connection stays open (the peer does not hang up after its script).

    server = serve(handler)
    seen: List[Any] = []
    with PayClient(server.url, timeout=5, transaction_timeout=5) as client:
        tx = client.charge("devices/r1", Decimal("10.00"), "EUR", on_update=seen.append)
        assert client.connected  # a field of the wrong type is no reason to hang up
    assert tx.status == "APPROVED"
    # 6.2: typed, with what could be read; the misfit kept as received.
    assert isinstance(seen[0], m.ExecuteTransactionUpdate)
    assert (seen[0].information, seen[0].abortable) == (["a", "b"], None)
    assert seen[0].extra_fields == {"abortable": "yes"}


def test_a_float_never_reaches_the_wire(serve: Serve) -> None:
    received: List[m.Message] = []

    def handler(peer: Peer) -> None:  # records requests until the marker, then answers it
        while True:
            request = peer.recv()
            received.append(request)
            if request.type == "MARKER_REQUEST":
                peer.send(m.RawMessage("MARKER_RESPONSE", request.tag, None, {}, status="OK"))
                return

    server = serve(handler)
    with PayClient(server.url, timeout=5, transaction_timeout=5) as client:
        parameters = m.TransactionParameters("CHARGE", 0.1 + 0.2, "EUR", True)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Decimal"):
            client.execute_transaction("devices/r1", parameters)
        with pytest.raises(TypeError):
            client.charge("devices/r1", Decimal("1.00"), "EUR", metadata={"rate": 1.5})
        # One connection, one send lock: anything sent before the marker arrives first.
        client.request("MARKER_REQUEST", {})
    assert [request.type for request in received] == ["MARKER_REQUEST"]


def test_recover_refuses_a_transaction_that_is_not_the_requests(
    serve: Serve, tmp_path: Path
) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.close()  # the charge's outcome is now unknown
        del request

    lookups: List[Any] = []

    def lookup(peer: Peer) -> None:
        request = peer.recv()
        lookups.append(request.data.custom_identifier)
        # The server's record under that custom identifier is a 99.00 charge.
        peer.send(reply(request, m.GetTransactionResponse(transaction("APPROVED", "99.00"))))

    journal = tmp_path / "j.sqlite"
    first = serve(handler)
    client = PayClient(first.url, timeout=5, journal=journal)
    with client, pytest.raises(TransactionOutcomeUnknownError):
        client.charge("devices/r1", Decimal("10.00"), "EUR", custom_identifier="reused")
    second = serve(lookup)
    with PayClient(second.url, timeout=5, journal=journal) as client:
        [result] = client.recover()
        assert not result.resolved and result.transaction is None
        assert len(client.pending_outcomes()) == 1  # still to be looked at by a human
    assert lookups == ["reused"]


def test_reconnect_when_the_login_times_out() -> None:
    connections: List[int] = []
    logged_in = threading.Event()

    def handler(peer: Peer) -> None:
        connections.append(1)
        number = len(connections)
        login = peer.recv()
        if number == 2:
            return  # this login never gets its answer: the client gives up on it
        peer.send(reply(login, m.LoginMerchantResponse([m.Device("devices/r1")])))
        if number == 1:
            assert logged_in.wait(5)
            peer.close()  # the connection is lost: the client must come back
            return
        while True:
            request = peer.recv(timeout=10)
            peer.send(reply(request, m.GetTransactionResponse(transaction())))

    states: List[ConnectionState] = []
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0)
    with (
        ScriptedServer("tcp", handler) as server,
        PayClient(server.url, timeout=0.3, reconnect=policy) as client,
    ):
        client.on_connection_state(states.append)
        client.login("m", "s")
        logged_in.set()
        eventually(lambda: ConnectionState.RECONNECTING in states)  # the first one is gone
        assert client.wait_connected(5)
        assert client.get_transaction(transaction_identifier="tx-1").status == "APPROVED"
        assert len(connections) == 3
        live = [t for t in threading.enumerate() if t.name == "payprotocol-reader"]
        assert len(live) == 1  # the timed-out connection's reader has ended
