"""The link's state rules with a fake transport (threads, but no sockets).

Two races of the old client, pinned deterministically: the waits of a lost
connection were failed before the state changed (a caller that caught
``ConnectionLostError`` could still read ``connected``), and the reconnect
thread was started after the ``DISCONNECTED`` callbacks were queued (a
``close()`` from such a callback tried to join a thread not yet started).
"""

from __future__ import annotations

import threading
from typing import Any, List

import pytest

from payprotocol._dispatch import Dispatcher, Subscribers
from payprotocol._inbound import Inbound
from payprotocol._link import ConnectionState, Link
from payprotocol._reconnect import ReconnectPolicy
from payprotocol._recorder import NullRecorder
from payprotocol._requests import PendingRequest, RequestTable
from payprotocol.errors import ConnectionLostError

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]


class FakeTransport:
    """Receives nothing until :meth:`drop`, then reports the link lost."""

    description = "fake://peer"

    def __init__(self) -> None:
        self.dropped = threading.Event()
        self.closed = threading.Event()

    def send(self, message: bytes) -> None:
        pass

    def receive(self) -> bytes:
        self.dropped.wait(10)
        raise ConnectionLostError("the peer closed the connection")

    def close(self) -> None:
        self.closed.set()
        self.dropped.set()

    def drop(self) -> None:
        self.dropped.set()


def make_link(
    policy: Any = None, errors: Any = None
) -> tuple[Link, RequestTable, List[FakeTransport], Subscribers[Any]]:
    table = RequestTable()
    dispatcher = Dispatcher(errors)
    states: Subscribers[Any] = Subscribers()
    inbound = Inbound(
        table,
        dispatcher,
        NullRecorder(),
        Subscribers(),
        Subscribers(),
        Subscribers(),
        abort=lambda r: None,
    )
    transports: List[FakeTransport] = []

    def open_transport() -> FakeTransport:
        if transports:  # reconnect attempts fail: only the first connection opens
            raise ConnectionLostError("refused")
        transports.append(FakeTransport())
        return transports[-1]

    link = Link(
        open_transport,  # type: ignore[arg-type]
        table=table,
        inbound=inbound,
        dispatcher=dispatcher,
        state_callbacks=states,
        policy=policy,
        wire_trace=False,
    )
    return link, table, transports, states


def test_the_state_is_disconnected_before_any_wait_is_failed() -> None:
    link, _, transports, _ = make_link()
    link.connect()
    seen: List[ConnectionState] = []

    class Observed(PendingRequest):
        def finish(self, *args: Any, **kwargs: Any) -> bool:
            seen.append(link.state)  # what the woken caller would read
            return super().finish(*args, **kwargs)

    request = Observed("t1", "GET_TRANSACTION_REQUEST")
    link.register(request)
    transports[0].drop()
    assert request.wait(10) and isinstance(request.failure, ConnectionLostError)
    assert seen == [ConnectionState.DISCONNECTED]
    link.close()


def test_close_from_a_disconnected_callback_with_a_reconnect_policy() -> None:
    errors: List[BaseException] = []
    link, _, transports, states = make_link(
        ReconnectPolicy(initial_delay=0.01, max_attempts=3), lambda exc, arg: errors.append(exc)
    )
    closed = threading.Event()

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.DISCONNECTED and not closed.is_set():
            link.close()  # from the dispatcher thread, while a reconnect is under way
            closed.set()

    states.add(on_state)
    link.connect()
    transports[0].drop()
    assert closed.wait(10)
    assert errors == []
    assert link.state is ConnectionState.CLOSED
    reconnectors = [t for t in threading.enumerate() if t.name == "payprotocol-reconnect"]
    for thread in reconnectors:
        thread.join(5)
        assert not thread.is_alive()


def test_a_request_while_disconnected_fails_fast_and_registers_nothing() -> None:
    link, table, transports, states = make_link()
    request: PendingRequest = table.new_request("t1", "GET_TRANSACTION_REQUEST")
    with pytest.raises(ConnectionLostError, match="the client is disconnected"):
        link.register(request)
    disconnected = threading.Event()
    states.add(lambda state: state is ConnectionState.DISCONNECTED and disconnected.set())
    link.connect()
    transports[0].drop()
    assert disconnected.wait(10)
    with pytest.raises(ConnectionLostError, match="the peer closed the connection"):
        link.register(request)
    assert len(table) == 0
    link.close()


def test_a_failed_send_ends_the_link_before_the_sender_hears_of_it() -> None:
    link, table, transports, _ = make_link()
    link.connect()

    def stalled(message: bytes) -> None:
        raise ConnectionLostError("sending failed: the peer stopped reading")

    transports[0].send = stalled  # type: ignore[method-assign]
    waiting = table.new_request("t0", "GET_TRANSACTION_REQUEST")
    link.register(waiting)
    connection = link.register(table.new_request("t1", "GET_TRANSACTION_REQUEST"))
    with pytest.raises(ConnectionLostError):
        connection.send(b"{}")
    assert link.state is ConnectionState.DISCONNECTED
    assert waiting.done and isinstance(waiting.failure, ConnectionLostError)
    link.close()
