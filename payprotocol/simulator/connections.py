"""Connections of the simulated PayServer: framed TCP (plain or TLS) and WebSocket.

Each connection has a reader (the TCP thread the server starts, or the handler
thread ``websockets`` starts) that feeds a :class:`~.engine.Session`, and a
writer thread that drains a small scheduled queue. What a fault plan makes of
a message (extra fields, extra messages, delays, the close) is decided by the
pure functions of :mod:`payprotocol.simulator.faults`; this module only
serialises, schedules and writes. The writer exists for the faults: delayed
and late responses are queued with a due time, coalesced messages are
gathered for a short window and written at once, and the "drop after K" close
is just one more queued item, so it happens exactly after the K-th message.

A connection whose peer breaks the framing, sends something that is not a
UTF-8 JSON object, or fails the TLS handshake is closed; the server and every
other connection go on.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, List, Optional, Union

import attrs

from ..codec import dumps, message_to_wire, redacted_text
from ..errors import ProtocolViolationError
from ..framing import FrameDecoder, encode_frame
from ..models import Message
from . import faults
from .engine import PayServerEngine, Session
from .faults import FaultPlan
from .outbox import Outbox, TransactionContext

if TYPE_CHECKING:
    from websockets.sync.server import ServerConnection

    from .server import Simulator

__all__ = ["JOIN_TIMEOUT", "Connection", "TcpConnection", "WsConnection"]

log = logging.getLogger("payprotocol.simulator")

#: Seconds a stop waits for each thread of a connection.
JOIN_TIMEOUT = 5.0
_HANDSHAKE_TIMEOUT = 10.0


@attrs.frozen
class _Item:
    """One thing for the writer: a message, a malformed payload, or the close."""

    kind: str  # "message", "malformed", "bytes" (a replayed payload that is not UTF-8) or "close"
    text: str = ""
    byte_by_byte: bool = False
    coalesce: bool = False
    window: float = 0.0
    data: bytes = b""


_CLOSE = _Item("close")


class Connection(Outbox):
    """A client connection as the engine sees it: an outbox with faults."""

    transport = "?"

    def __init__(self, simulator: Simulator, engine: PayServerEngine, peer: str) -> None:
        self._simulator = simulator
        self.peer = peer
        self.closed = False
        self._cond = threading.Condition()
        self._queue: List[tuple[float, int, _Item]] = []
        self._sequence = itertools.count()
        self._messages = itertools.count()  # this connection's messages, for mutate=SEED
        self._terminated = False  # the writer must stop now
        self._writer = threading.Thread(
            target=self._write_loop, name=f"p3sim-writer-{peer}", daemon=True
        )
        self.session: Session = engine.open_session(self, f"{self.transport} {peer}")

    # --- Outbox --------------------------------------------------------------

    def send(
        self,
        message: Message,
        *,
        transaction: Optional[TransactionContext] = None,
        final: bool = False,
    ) -> None:
        plan = self._simulator.faults
        wire = message_to_wire(message)
        with self._cond:
            if self.closed:
                log.debug("%s: dropped (connection closed): %s", self.peer, message.type)
                return
            if transaction is not None:
                transaction.sent += 1
            out = faults.outgoing(
                plan, wire, final=final, transaction=transaction, index=next(self._messages)
            )
            for payload in out.payloads:
                self._put(self._item(plan, payload), out.delay)
            if out.close:
                log.info("%s: fault drop-after=%d: closing", self.peer, plan.drop_after)
                self._put(_CLOSE, out.delay)
                self.closed = True  # nothing after the K-th message

    def send_raw(self, payload: Union[str, bytes], *, delay: float = 0.0) -> None:
        """Queue a payload exactly as given (a replay), after ``delay`` seconds."""
        with self._cond:
            if self.closed:
                return
            if isinstance(payload, str):
                self._put(_Item("message", payload), delay)
            else:
                self._put(_Item("bytes", data=payload), delay)

    def drop_after_queued(self, *, delay: float = 0.0) -> None:
        """Hang up after what is queued (a replayed server-side close)."""
        with self._cond:
            if not self.closed:
                self._put(_CLOSE, delay)
                self.closed = True

    def close(self) -> None:
        """Close now, discarding whatever is still queued."""
        with self._cond:
            self.closed = True
            self._terminated = True
            self._queue.clear()
            self._cond.notify_all()
        self._abort_transport()

    # --- queue ----------------------------------------------------------------

    def _put(self, item: _Item, delay: float) -> None:
        heapq.heappush(self._queue, (time.monotonic() + delay, next(self._sequence), item))
        self._cond.notify_all()

    def _item(self, plan: FaultPlan, payload: faults.Payload) -> _Item:
        """Serialise one payload for the writer."""
        if isinstance(payload, faults.Malformed):
            log.info("%s: fault malformed=%s", self.peer, payload.kind)
            return _Item("malformed", payload.kind)
        # The mutate fault's byte-order mark goes in front of the JSON text.
        bom = "\ufeff" if isinstance(payload, faults.Bom) else ""
        text = bom + dumps(payload.wire if isinstance(payload, faults.Bom) else payload)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s <- %s", self.peer, redacted_text(text))
        return _Item("message", text, plan.byte_by_byte, plan.coalesce, plan.coalesce_window)

    def _take_due(self, block: bool) -> List[_Item]:
        """The items due now (waiting for the first one when ``block``)."""
        with self._cond:
            while True:
                if self._terminated:
                    return [_CLOSE]
                now = time.monotonic()
                due = []
                while self._queue and self._queue[0][0] <= now:
                    due.append(heapq.heappop(self._queue)[2])
                if due or not block:
                    return due
                self._cond.wait(self._queue[0][0] - now if self._queue else None)

    def _write_loop(self) -> None:
        try:
            while True:
                items = self._take_due(block=True)
                if items[0].coalesce and items[0].kind != "close":
                    time.sleep(items[0].window)  # let more messages pile up
                    items += self._take_due(block=False)
                batch: List[_Item] = []
                for item in items:
                    if item.kind == "close":
                        self._write(batch)
                        self._drop()
                        return
                    batch.append(item)
                self._write(batch)
        except (OSError, _WriteFailed) as exc:
            log.debug("%s: write failed: %s", self.peer, exc)
            self.close()

    def _write(self, items: List[_Item]) -> None:
        raise NotImplementedError

    def _drop(self) -> None:
        """End the connection abruptly (the drop-after fault, or close())."""
        raise NotImplementedError

    def _abort_transport(self) -> None:
        raise NotImplementedError

    def _connection_ended(self) -> None:
        """The reader is done: stop the writer, tell the engine."""
        self.close()
        self.session.close()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(JOIN_TIMEOUT)
        log.info("%s %s: connection closed", self.transport, self.peer)


class _WriteFailed(Exception):
    pass


# --- framed TCP -------------------------------------------------------------------


class TcpConnection(Connection):
    transport = "tcp"

    def __init__(
        self, simulator: Simulator, engine: PayServerEngine, sock: socket.socket, peer: str
    ) -> None:
        self.sock = sock
        if isinstance(sock, ssl.SSLSocket):
            self.transport = "tls"
        super().__init__(simulator, engine, peer)

    def serve(self) -> None:
        """Reader thread: bytes -> frames -> session, until EOF or a violation."""
        log.info("%s %s: connected", self.transport, self.peer)
        self._writer.start()
        decoder = FrameDecoder(self._simulator.config.max_frame_size)
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                self._handshake(self.sock)
            while not self._terminated:
                data = self.sock.recv(65536)
                if not data:
                    break
                for body in decoder.feed(data):
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("%s -> %s", self.peer, redacted_text(body))
                    self.session.handle(body)
        except ProtocolViolationError as exc:
            log.warning("tcp %s: closing, the client broke the protocol: %s", self.peer, exc)
        except OSError as exc:
            log.debug("tcp %s: read ended: %s", self.peer, exc)
        finally:
            self._connection_ended()
            self.sock.close()

    def _handshake(self, sock: ssl.SSLSocket) -> None:
        """TLS handshake on the reader thread, bounded (a silent peer must not
        hold a thread); a failure is the end of this connection only."""
        sock.settimeout(_HANDSHAKE_TIMEOUT)
        try:
            sock.do_handshake()
        except OSError as exc:  # ssl.SSLError and socket.timeout are OSErrors
            log.info("tls %s: handshake failed: %s", self.peer, exc)
            raise OSError("TLS handshake failed") from exc
        sock.settimeout(None)

    def _write(self, items: List[_Item]) -> None:
        if not items:
            return
        chunks = [
            faults.malformed_frame(item.text)
            if item.kind == "malformed"
            else encode_frame(item.data if item.kind == "bytes" else item.text.encode("utf-8"))
            for item in items
        ]
        if items[0].byte_by_byte:
            for byte in b"".join(chunks):
                if self._terminated:
                    raise _WriteFailed("connection closed")
                self.sock.sendall(bytes((byte,)))
        else:
            self.sock.sendall(b"".join(chunks))  # coalesced: one write for the batch

    def _drop(self) -> None:
        self._abort_transport()

    def _abort_transport(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv()


# --- WebSocket --------------------------------------------------------------------


class WsConnection(Connection):
    transport = "ws"

    def __init__(
        self, simulator: Simulator, engine: PayServerEngine, ws: ServerConnection, peer: str
    ) -> None:
        self.ws = ws
        super().__init__(simulator, engine, peer)

    def serve(self) -> None:
        """Handler thread of ``websockets``: one text message = one P3 message."""
        from websockets.exceptions import ConnectionClosed
        from websockets.frames import CloseCode

        log.info("ws %s: connected", self.peer)
        self._writer.start()
        try:
            for payload in self.ws:
                if isinstance(payload, bytes):
                    log.warning("ws %s: closing, binary message (P3 uses text)", self.peer)
                    self.ws.close(CloseCode.UNSUPPORTED_DATA, "P3 messages are text")
                    break
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s -> %s", self.peer, redacted_text(payload))
                try:
                    self.session.handle(payload)
                except ProtocolViolationError as exc:
                    log.warning("ws %s: closing, the client broke the protocol: %s", self.peer, exc)
                    self.ws.close(CloseCode.INVALID_DATA, "not a P3 JSON object")
                    break
        except ConnectionClosed:
            pass
        finally:
            self._connection_ended()

    def _write(self, items: List[_Item]) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for item in items:
                if item.kind == "malformed":
                    self.ws.send(
                        faults.malformed_ws_message(
                            item.text, self._simulator.config.max_frame_size
                        )
                    )
                elif item.kind == "bytes":
                    self.ws.send(item.data)  # not UTF-8: a text frame cannot carry it
                elif item.byte_by_byte:
                    self.ws.send(iter(item.text))  # a fragmented message, one char per frame
                else:
                    self.ws.send(item.text)
        except ConnectionClosed as exc:
            raise _WriteFailed(str(exc)) from None

    def _drop(self) -> None:
        self._abort_transport()

    def _abort_transport(self) -> None:
        with contextlib.suppress(OSError):
            self.ws.socket.shutdown(socket.SHUT_RDWR)  # abrupt, no closing handshake
