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


# --- a lookup waits for a reconnect under way; nothing else does -------------------


class Opener:
    """Opens the first transport; reconnect attempts are refused until ``allow``."""

    def __init__(self) -> None:
        self.transports: List[FakeTransport] = []
        self.allow = threading.Event()

    def __call__(self) -> FakeTransport:
        if self.transports and not self.allow.is_set():
            raise ConnectionLostError("refused")
        self.transports.append(FakeTransport())
        return self.transports[-1]


class WaitSpy:
    """Wraps the link's condition: ``waiting`` is set once a caller waits on it."""

    def __init__(self, condition: threading.Condition) -> None:
        self._condition = condition
        self.waiting = threading.Event()

    def wait(self, timeout: float) -> bool:
        self.waiting.set()
        return self._condition.wait(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._condition, name)


FAST_RETRY = ReconnectPolicy(initial_delay=0.01, max_delay=0.01, multiplier=1.0, jitter=0.0)


def reconnecting_link(policy: Any = FAST_RETRY) -> tuple[Link, RequestTable, Opener, WaitSpy]:
    """A connected link whose connection has just been lost (a reconnect under way)."""
    link, table, _, states = make_link(policy)
    opener = Opener()
    link._open_transport = opener  # type: ignore[assignment]
    spy = WaitSpy(link._changed)
    link._changed = spy  # type: ignore[assignment]
    disconnected = threading.Event()
    states.add(lambda state: state is ConnectionState.DISCONNECTED and disconnected.set())
    link.connect()
    opener.transports[0].drop()
    assert disconnected.wait(10)
    return link, table, opener, spy


class Caller(threading.Thread):
    """``link.register(request, wait=...)`` on its own thread; keeps what it got."""

    def __init__(self, link: Link, request: PendingRequest, wait: float) -> None:
        super().__init__(daemon=True)
        self.link, self.request, self.wait_for = link, request, wait
        self.result: Any = None
        self.error: Any = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.link.register(self.request, wait=self.wait_for)
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> Any:
        self.join(10)
        assert not self.is_alive(), "register() still waits"
        return self.error if self.error is not None else self.result


def test_a_lookup_while_reconnecting_waits_and_goes_out_once_logged_in_again() -> None:
    link, table, opener, spy = reconnecting_link()
    relogin_entered, relogin_done = threading.Event(), threading.Event()

    def login_again() -> None:
        relogin_entered.set()
        assert relogin_done.wait(10)

    link.login_again = login_again
    lookup = table.new_request("t1", "GET_TRANSACTION_REQUEST")
    caller = Caller(link, lookup, wait=30)
    assert spy.waiting.wait(10)  # it waits: nothing was registered yet
    assert len(table) == 0
    opener.allow.set()  # the next attempt connects, then logs in again
    assert relogin_entered.wait(10)
    assert caller.is_alive() and len(table) == 0  # a new connection, not yet logged in
    relogin_done.set()
    connection = caller.outcome()
    assert connection is link._connection
    assert connection.description == opener.transports[1].description
    assert lookup.tag in table and link.state is ConnectionState.CONNECTED
    link.close()


@pytest.mark.parametrize(
    "request_type",
    [
        "EXECUTE_TRANSACTION_REQUEST",
        "AMEND_TRANSACTION_REQUEST",
        "ABORT_TRANSACTION_REQUEST",
        "SUBMIT_SIGNATURE_REQUEST",
        "SUBMIT_DCC_SELECTION_REQUEST",
        "LOGIN_MERCHANT_REQUEST",
    ],
)
def test_anything_but_a_lookup_fails_fast_while_reconnecting(request_type: str) -> None:
    link, table, _, spy = reconnecting_link()
    with pytest.raises(ConnectionLostError, match="the peer closed the connection"):
        link.register(table.new_request("t1", request_type), wait=30)
    assert not spy.waiting.is_set() and len(table) == 0
    link.close()


def test_close_wakes_a_lookup_waiting_for_a_reconnect() -> None:
    link, table, _, spy = reconnecting_link()
    caller = Caller(link, table.new_request("t1", "GET_TRANSACTION_REQUEST"), wait=60)
    assert spy.waiting.wait(10)
    link.close()
    error = caller.outcome()  # long before its 60 s
    assert isinstance(error, ConnectionLostError) and "closed" in str(error)
    assert len(table) == 0


def test_a_lookup_fails_as_soon_as_the_reconnect_gives_up() -> None:
    link, table, _, _ = reconnecting_link(
        ReconnectPolicy(initial_delay=0.01, multiplier=1.0, jitter=0.0, max_attempts=3)
    )
    caller = Caller(link, table.new_request("t1", "GET_TRANSACTION_REQUEST"), wait=60)
    error = caller.outcome()  # long before its 60 s: no reconnect is coming
    assert isinstance(error, ConnectionLostError)
    assert "not reconnected within" not in str(error)
    assert link.state is ConnectionState.DISCONNECTED and len(table) == 0
    link.close()


def test_a_lookup_waits_for_a_reconnect_no_longer_than_its_timeout() -> None:
    link, table, _, spy = reconnecting_link()  # attempts keep failing
    with pytest.raises(ConnectionLostError, match=r"not reconnected within 0\.2 s"):
        link.register(table.new_request("t1", "GET_TRANSACTION_REQUEST"), wait=0.2)
    assert spy.waiting.is_set() and len(table) == 0
    link.close()


def test_without_a_reconnect_policy_a_lookup_fails_fast() -> None:
    link, table, _, spy = reconnecting_link(policy=None)
    with pytest.raises(ConnectionLostError, match="the peer closed the connection"):
        link.register(table.new_request("t1", "GET_TRANSACTION_REQUEST"), wait=30)
    assert not spy.waiting.is_set()
    link.close()


def test_close_wakes_a_waiting_lookup_before_joining_a_stuck_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("payprotocol._link.JOIN_TIMEOUT", 30.0)
    link, table, opener, spy = reconnecting_link()
    attempt_started, release = threading.Event(), threading.Event()
    refuse = opener.__call__

    def stuck_connect() -> FakeTransport:  # a connect that hangs until released
        attempt_started.set()
        release.wait(30)
        return refuse()

    link._open_transport = stuck_connect  # type: ignore[assignment]
    caller = Caller(link, table.new_request("t1", "GET_TRANSACTION_REQUEST"), wait=60)
    assert spy.waiting.wait(10) and attempt_started.wait(10)
    closer = threading.Thread(target=link.close, daemon=True)
    closer.start()  # joins the stuck reconnect thread for up to 30 s
    try:
        error = caller.outcome()  # woken by close() itself, not after the join
        assert isinstance(error, ConnectionLostError) and "closed" in str(error)
    finally:
        release.set()
        closer.join(10)


def test_a_lookup_fails_at_once_when_the_reconnect_thread_crashes() -> None:
    link, table, opener, spy = reconnecting_link()

    def login_again() -> None:
        raise KeyError("a bug")

    link.login_again = login_again
    caller = Caller(link, table.new_request("t1", "GET_TRANSACTION_REQUEST"), wait=60)
    assert spy.waiting.wait(10)
    opener.allow.set()
    error = caller.outcome()  # long before its 60 s
    assert isinstance(error, ConnectionLostError)
    assert link.state is ConnectionState.DISCONNECTED
    link.close()
