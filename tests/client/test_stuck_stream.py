"""A stream stuck in the middle of a message (framed TCP): the request that
times out on it closes the connection, so later requests fail at once
instead of timing out one after another (issue 11)."""

from __future__ import annotations

import struct
import threading

import pytest

from payprotocol import ConnectionLostError, PayClient, ReconnectPolicy, RequestTimeoutError

from ..support.peer import Peer, ScriptedServer
from ..support.waiting import eventually

pytestmark = pytest.mark.timeout(30)


def test_a_timeout_on_a_stream_stuck_mid_frame_closes_the_connection() -> None:
    done = threading.Event()

    def half_a_frame(peer: Peer) -> None:
        peer.recv()  # the lookup
        peer.send_wire(struct.pack(">I", 200) + b'{"type":"GET_TRANS')  # and then nothing
        done.wait(20)

    server = ScriptedServer("tcp", half_a_frame)
    try:
        # Without reconnecting: a lookup would wait for a new connection instead.
        with PayClient(server.url, timeout=0.5, reconnect=None) as client:
            with pytest.raises(RequestTimeoutError):
                client.get_transaction(transaction_identifier="tx-1")
            assert eventually(lambda: not client.connected)
            with pytest.raises(ConnectionLostError):
                client.get_transaction(transaction_identifier="tx-2", timeout=10)
    finally:
        done.set()
        server.close()


def test_a_timeout_between_messages_keeps_the_connection() -> None:
    done = threading.Event()

    def silent(peer: Peer) -> None:
        peer.recv()
        done.wait(20)

    server = ScriptedServer("tcp", silent)
    try:
        with PayClient(server.url, timeout=0.3) as client:
            with pytest.raises(RequestTimeoutError):
                client.get_transaction(transaction_identifier="tx-1")
            assert client.connected  # a slow server is not a broken stream
    finally:
        done.set()
        server.close()


def test_a_lookup_after_a_charge_timed_out_on_a_stuck_stream_waits_for_the_reconnect() -> None:
    # The README's pattern (reconnect on by default): the charge's timeout on a
    # stream stuck mid-frame closes the connection; the lookup made at once must
    # wait for the reconnect, not fail on the closed connection the link did
    # not know about yet.
    from decimal import Decimal

    from payprotocol import TransactionOutcomeUnknownError
    from payprotocol import models as msg

    from ..support.messages import reply, transaction

    done = threading.Event()
    connections = []

    def handler(peer: Peer) -> None:
        connections.append(peer)
        request = peer.recv()
        if len(connections) == 1:  # the charge: half a frame, then nothing
            peer.send_wire(struct.pack(">I", 200) + b'{"type":"EXECUTE_TRANS')
            done.wait(20)
            return
        found = transaction(custom_identifier="order-1")
        peer.send(reply(request, msg.GetTransactionResponse(found)))
        done.wait(20)

    server = ScriptedServer("tcp", handler)
    try:
        policy = ReconnectPolicy(initial_delay=0.05, jitter=0)
        with PayClient(server.url, timeout=10, reconnect=policy) as client:
            with pytest.raises(TransactionOutcomeUnknownError):
                client.charge(
                    "devices/r1", Decimal("10.00"), "EUR", custom_identifier="order-1", timeout=0.5
                )
            found = client.get_transaction(custom_identifier="order-1")
            assert found.status == msg.TransactionStatus.APPROVED
    finally:
        done.set()
        server.close()
