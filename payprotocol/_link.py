"""The link: the client's one current connection, its state and its end.

Strategy: one lock guards the state, the current connection and the closed
flag, so a check and the change it depends on happen together (a request is
registered in the table only while the link is usable, under that lock; the
end of a connection marks the link broken under it before every wait is
failed). State changes are queued for ``on_connection_state`` callbacks on
the dispatcher, never run under the lock. When a connection ends and a
:class:`ReconnectPolicy` is set, the reconnect loop starts on its own thread;
``close()`` stops it, wakes the reader and joins both (never from themselves).

A lookup made while a reconnect is under way waits for it (within its own
timeout) on a condition of that same lock, notified at each state change, at
the reconnect's end and at ``close()``: every such waiter waits for the same
thing, so waking them all is right. Nothing that can move money or touch a
reader's transaction waits (see :data:`WAITS_FOR_RECONNECT`).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Callable, Optional, Union

from ._connection import Connection
from ._dispatch import Dispatcher, Subscribers
from ._inbound import Inbound
from ._reconnect import ClientClosed, ReconnectPolicy, run_reconnect
from ._recording import NULL_TAP, CassetteRecorder, NullTap
from ._requests import PendingRequest, RequestTable
from .errors import ConnectionLostError
from .transport import Transport

__all__ = ["WAITS_FOR_RECONNECT", "ConnectionState", "Link", "StateCallback"]

logger = logging.getLogger("payprotocol")

JOIN_TIMEOUT = 2.0

#: The request types that wait for a reconnect under way instead of failing at
#: once: a lookup moves no money, and it is the first thing to do after an
#: unknown outcome. A transaction, an abort or an action answer never waits:
#: sent late on a new connection, it could start a payment nobody stands at the
#: till for, or abort or answer another transaction on that reader.
WAITS_FOR_RECONNECT = frozenset({"GET_TRANSACTION_REQUEST"})


class ConnectionState(str, enum.Enum):
    """The client's connection, as reported to ``on_connection_state``."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


StateCallback = Callable[[ConnectionState], None]


class Link:
    """Connects, tracks the state, and ends or re-establishes the connection."""

    def __init__(
        self,
        open_transport: Callable[[], Transport],
        *,
        table: RequestTable,
        inbound: Inbound,
        dispatcher: Dispatcher,
        state_callbacks: Subscribers[StateCallback],
        policy: Optional[ReconnectPolicy],
        wire_trace: bool,
        tap: Union[CassetteRecorder, NullTap] = NULL_TAP,
    ) -> None:
        self._open_transport = open_transport
        self._tap = tap
        self._table = table
        self._inbound = inbound
        self._dispatcher = dispatcher
        self._state_callbacks = state_callbacks
        self.policy = policy
        self._wire_trace = wire_trace
        #: Logs in again on a new connection (set by the client once it has credentials).
        self.login_again: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # state, reconnect or close changed
        self._state = ConnectionState.DISCONNECTED
        self._usable = threading.Event()  # set while CONNECTED: requests may be sent
        self._stopping = threading.Event()
        self._closed = False
        self._connection: Optional[Connection] = None
        self._broken: Optional[BaseException] = None  # why the current connection ended
        self._reconnector: Optional[threading.Thread] = None

    # --- state ---------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def started(self) -> bool:
        """Whether a connection was ever installed (``with`` connects only once)."""
        return self._connection is not None

    def wait_connected(self, timeout: float) -> bool:
        return self._usable.wait(timeout)

    def set_state(self, state: ConnectionState) -> None:
        with self._lock:
            self._set_state_locked(state)

    def _set_state_locked(self, state: ConnectionState) -> None:
        if self._state is state or self._state is ConnectionState.CLOSED:
            return
        self._state = state
        if state is ConnectionState.CONNECTED:
            self._usable.set()
        else:
            self._usable.clear()
        self._changed.notify_all()
        logger.info("connection state: %s", state.value)
        for callback in self._state_callbacks.snapshot():
            self._dispatcher.call(callback, state)

    # --- the request path ----------------------------------------------------

    def register(
        self, request: PendingRequest, *, internal: bool = False, wait: float = 0.0
    ) -> Connection:
        """Register ``request`` in the table and return the connection to send
        it on, or raise :class:`ConnectionLostError` (nothing registered).

        While reconnecting, requests fail fast, except a type of
        :data:`WAITS_FOR_RECONNECT`, which waits up to ``wait`` seconds for the
        reconnect (and the login again) to finish; only the client's own login
        may use a connection that is not yet usable."""
        with self._lock:
            waits = wait > 0 and not internal and request.request_type in WAITS_FOR_RECONNECT
            deadline = time.monotonic() + wait
            while waits and self._reconnect_under_way_locked():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            connection = self._connection
            usable = self._state is ConnectionState.CONNECTED or internal
            if self._closed or connection is None or self._broken is not None or not usable:
                reason = self._broken or f"the client is {self._state.value}"
                if waits and self._reconnect_under_way_locked():
                    reason = f"not reconnected within {wait:.1f} s ({reason})"
                raise ConnectionLostError(f"cannot send {request.request_type}: {reason}")
            self._table.register(request)
        return connection

    def _reconnect_under_way_locked(self) -> bool:
        """Whether a reconnect may still make the link usable (under the lock)."""
        return not self._closed and self._reconnector is not None

    # --- connecting ----------------------------------------------------------

    def connect(self) -> None:
        """Open the first connection; raises when it cannot be opened."""
        with self._lock:
            if self._closed:
                raise ConnectionLostError("the client is closed")
            if self._connection is not None:
                raise RuntimeError("already connected")
        self.set_state(ConnectionState.CONNECTING)
        try:
            transport = self._open_transport()
        except BaseException:
            self.set_state(ConnectionState.DISCONNECTED)
            raise
        try:
            self._install(transport)
        except ClientClosed:
            raise ConnectionLostError("the client is closed") from None
        self.set_state(ConnectionState.CONNECTED)

    def _install(self, transport: Transport) -> Connection:
        """Make ``transport`` the connection and start its reader."""
        connection = Connection(
            transport,
            self._inbound,
            self._ended,
            wire_trace=self._wire_trace,
            tap=self._tap.open_connection(transport.description),
        )
        with self._lock:
            if self._closed:  # a reconnect that finished connecting after close()
                transport.close()
                raise ClientClosed()
            self._connection = connection
            self._broken = None
            self._dispatcher.start()
        connection.start()
        logger.info("connected to %s", transport.description)
        return connection

    def _ended(self, connection: Connection, failure: BaseException) -> None:
        """Called by a reader whose connection ended: fail every wait, maybe reconnect.

        The state changes *before* the waits are failed, so a caller that has
        just caught :class:`ConnectionLostError` never reads ``connected`` as
        True; the reconnect thread starts under the lock, so a ``close()`` from
        an ``on_connection_state`` callback always finds it started."""
        with self._lock:
            if self._connection is not connection:
                return
            self._broken = failure
            closing = self._closed
            if not closing:
                self._set_state_locked(ConnectionState.DISCONNECTED)
                if self.policy is not None and (
                    self._reconnector is None or not self._reconnector.is_alive()
                ):
                    self._reconnector = threading.Thread(
                        target=self._reconnect, name="payprotocol-reconnect", daemon=True
                    )
                    self._reconnector.start()
        if not closing:
            logger.warning("connection to %s lost: %s", connection.description, failure)
        self._table.fail_all(failure)

    # --- reconnecting (ReconnectHost) -----------------------------------------

    def _reconnect(self) -> None:
        assert self.policy is not None
        try:
            run_reconnect(self.policy, self._stopping, self)
        except Exception:
            logger.exception("reconnecting failed; not trying again")
        finally:  # connected, gave up, closed or crashed: waiting lookups decide now
            with self._lock:
                if self._reconnector is threading.current_thread():
                    self._reconnector = None
                    if self._state is ConnectionState.RECONNECTING and not self._closed:  # crashed
                        self._set_state_locked(ConnectionState.DISCONNECTED)
                self._changed.notify_all()

    def reconnecting(self) -> None:
        self.set_state(ConnectionState.RECONNECTING)

    def gave_up(self) -> None:
        self.set_state(ConnectionState.DISCONNECTED)

    def open_and_install(self) -> object:
        return self._install(self._open_transport())

    def relogin(self, handle: object) -> None:
        self.login_again()

    def drop(self, handle: object) -> None:
        assert isinstance(handle, Connection)
        handle.close()

    def confirm(self, handle: object) -> bool:
        with self._lock:
            # A connection that died during the login is the next attempt's job.
            if self._connection is handle and self._broken is None:
                self._reconnector = None
                self._set_state_locked(ConnectionState.CONNECTED)
                return True
        return False

    # --- closing -------------------------------------------------------------

    def close(self) -> bool:
        """Stop reconnecting, close the connection, end every wait. Idempotent:
        returns False when the link was closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._changed.notify_all()  # a lookup waiting for a reconnect fails now
            connection = self._connection
        self._stopping.set()
        if connection is not None:
            connection.close()  # wakes the reader's blocked receive
        reconnector = self._reconnector
        if reconnector is not None and reconnector is not threading.current_thread():
            reconnector.join(JOIN_TIMEOUT)
        if connection is not None:
            connection.join(JOIN_TIMEOUT)
        with self._lock:
            connection = self._connection  # a reconnect may have installed a new one
        if connection is not None:
            connection.close()
        self._table.fail_all(ConnectionLostError("the client was closed"))
        self.set_state(ConnectionState.CLOSED)
        return True

    def close_tap(self) -> None:
        """Finish the cassette (after :meth:`close`: every reader has ended)."""
        self._tap.close()
