"""One connection: a transport, its reader thread, decoding and the wire trace.

Strategy (architecture rule 2): the reader thread (``payprotocol-reader``)
only receives, decodes and hands each message to :class:`Inbound`; it never
runs user code, so nothing a callback does can stop responses or keepalives.
One unreadable message never costs the connection (p3-protocol.md 6.4): a
message that is not UTF-8, not JSON or not a JSON object is *unreadable*, one
that is a JSON object but does not fit the contract is a *misfit*; either
ends at most the request whose tag it carries, and the reader goes on. Only a
broken stream ends the connection: a frame length of 0 or above the cap, a
WebSocket protocol error, a transport error (everything the transport's
``receive`` raises). When the reader ends, for whatever reason, it closes the
transport and reports the failure to ``on_end``, unless a failed send did
first: either way ``on_end`` hears of a connection's end exactly once.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from . import codec
from ._inbound import Inbound
from ._recording import NULL_CONNECTION_TAP, ConnectionTap
from .errors import ConnectionLostError, ProtocolViolationError
from .transport import Transport

__all__ = ["Connection"]

logger = logging.getLogger("payprotocol")
wire_logger = logging.getLogger("payprotocol.wire")


class Connection:
    """A transport with a reader thread that feeds :class:`Inbound`."""

    def __init__(
        self,
        transport: Transport,
        inbound: Inbound,
        on_end: Callable[[Connection, BaseException], None],
        *,
        wire_trace: bool = False,
        tap: ConnectionTap = NULL_CONNECTION_TAP,
    ) -> None:
        self.transport = transport
        self._tap = tap  # the cassette's hooks (PayClient(record=...)), beside the trace
        self._closing = False  # set when this side closes: the cassette says who ended it
        self._inbound = inbound
        self._on_end = on_end
        self._end_reported = False
        self._end_lock = threading.Lock()
        self._wire_trace = wire_trace
        self.reader = threading.Thread(
            target=self._read_loop, name="payprotocol-reader", daemon=True
        )

    @property
    def description(self) -> str:
        return self.transport.description

    def start(self) -> None:
        self.reader.start()

    def send(self, payload: bytes) -> None:
        """Send one message (thread safe); raises :class:`ConnectionLostError`.

        A failed send ends the connection at once, before the caller hears of
        it: the stream may be half-written, and the caller must read the link
        as down when it catches the error."""
        self._trace("->", payload)
        self._tap.sent(payload)
        try:
            self.transport.send(payload)
        except ConnectionLostError as exc:
            self.transport.close()
            self._report_end(exc)
            raise

    def _report_end(self, failure: BaseException) -> None:
        """Tell ``on_end`` once, whichever of the sender and the reader is first."""
        with self._end_lock:
            if self._end_reported:
                return
            self._end_reported = True
        self._on_end(self, failure)

    def close(self) -> None:
        """Close the transport, which wakes the reader's blocked receive. Idempotent."""
        self._closing = True
        self.transport.close()

    def request_timed_out(self) -> None:
        """A request got no answer in time. If the stream is stuck in the middle
        of a message, no later answer can arrive either: close the connection
        (its end fails every other wait and may start a reconnect) instead of
        letting every later request time out too."""
        if self.transport.mid_message():
            logger.error(
                "closing the connection to %s: a request timed out while the stream was "
                "stuck in the middle of a message",
                self.description,
            )
            self._closing = True
            self.transport.close()
            # Now, not when the reader wakes: the caller may look the request up at
            # once, and that lookup must find the link down (and waiting for a
            # reconnect), not this closed connection.
            self._report_end(
                ConnectionLostError("the stream was stuck in the middle of a message")
            )

    def join(self, timeout: float) -> None:
        """Wait for the reader to end (never from the reader itself)."""
        if self.reader.is_alive() and self.reader is not threading.current_thread():
            self.reader.join(timeout)

    def _trace(self, direction: str, payload: bytes) -> None:
        if self._wire_trace and wire_logger.isEnabledFor(logging.DEBUG):
            wire_logger.debug("%s %s", direction, codec.redacted_text(payload))

    def _read_loop(self) -> None:
        failure: BaseException
        inbound, transport = self._inbound, self.transport
        try:
            while True:
                payload = transport.receive()  # raises for a broken stream
                self._trace("<-", payload)
                self._tap.received(payload)
                try:
                    raw = codec.parse_message(payload)
                except ProtocolViolationError as exc:  # not UTF-8, JSON, or an object
                    inbound.unreadable(payload, exc)
                    continue
                try:
                    message = codec.decode_parsed(raw)
                except ProtocolViolationError as exc:
                    inbound.misfit(exc, raw)
                    continue
                inbound.message(message, raw)
        except ProtocolViolationError as exc:
            logger.error("closing the connection: the server broke the protocol: %s", exc)
            failure = exc
        except ConnectionLostError as exc:
            failure = exc
        except Exception as exc:  # a bug must still end every wait
            logger.exception("reader thread failed")
            failure = ConnectionLostError(f"reader failed: {exc!r}")
        transport.close()  # idempotent; releases the socket of a dead connection now
        self._tap.ended("client" if self._closing else "server", str(failure))
        self._report_end(failure)
