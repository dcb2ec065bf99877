"""Sockets of the simulated PayServer: framed TCP and WebSocket, both at once.

Each connection has a reader (the TCP thread we start, or the handler thread
``websockets`` starts) that feeds a :class:`~.engine.Session`, and a writer
thread that drains a small scheduled queue. What a fault plan makes of a
message (extra fields, extra messages, delays, the close) is decided by the
pure functions of :mod:`payprotocol.simulator.faults`; this module only
serialises, schedules and writes. The writer exists for the faults: delayed
and late responses are queued with a due time, coalesced messages are
gathered for a short window and written at once, and the "drop after K" close
is just one more queued item, so it happens exactly after the K-th message.

A connection whose peer breaks the framing or sends something that is not a
UTF-8 JSON object is closed; the server and every other connection go on.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, List, Optional, Set, Union

import attrs

from ..codec import dumps, message_to_wire, redacted_text
from ..errors import ProtocolViolationError
from ..framing import FrameDecoder, encode_frame
from ..models import Message
from . import faults
from .config import SimulatorConfig
from .engine import PayServerEngine, Session
from .faults import FaultPlan
from .outbox import Outbox, TransactionContext
from .store import TransactionStore

if TYPE_CHECKING:
    from websockets.sync.server import Server as WsServer
    from websockets.sync.server import ServerConnection

__all__ = ["Simulator"]

log = logging.getLogger("payprotocol.simulator")

_JOIN_TIMEOUT = 5.0


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


class _Connection(Outbox):
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
        if isinstance(payload, faults.Bom):
            text = "\ufeff" + dumps(payload.wire)  # the mutate fault's byte-order mark
        else:
            text = dumps(payload)
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
            self._writer.join(_JOIN_TIMEOUT)
        log.info("%s %s: connection closed", self.transport, self.peer)


class _WriteFailed(Exception):
    pass


# --- framed TCP -------------------------------------------------------------------


class _TcpConnection(_Connection):
    transport = "tcp"

    def __init__(
        self, simulator: Simulator, engine: PayServerEngine, sock: socket.socket, peer: str
    ) -> None:
        self.sock = sock
        super().__init__(simulator, engine, peer)

    def serve(self) -> None:
        """Reader thread: bytes -> frames -> session, until EOF or a violation."""
        log.info("tcp %s: connected", self.peer)
        self._writer.start()
        decoder = FrameDecoder(self._simulator.config.max_frame_size)
        try:
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


class _WsConnection(_Connection):
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


# --- listeners ----------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket that a restart can bind again at once."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "nt":
            # Windows' SO_REUSEADDR would let another process steal the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined, unused-ignore]
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


def _peer_name(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


class Simulator:
    """An embedded PayServer speaking P3 over framed TCP and WebSocket.

    ::

        with Simulator(SimulatorConfig(step_delay=0.02)) as sim:
            client = PayClient(sim.tcp_url)      # or sim.ws_url
            ...
            sim.set_faults(FaultPlan.parse(["drop-after=3"]))

    It serves every request of the contract (``LOGIN_MERCHANT_REQUEST``,
    ``EXECUTE_TRANSACTION_REQUEST`` with its updates, actions and response, the
    ``SUBMIT_*_REQUEST`` answers, ``ABORT_TRANSACTION_REQUEST``,
    ``AMEND_TRANSACTION_REQUEST`` and ``GET_TRANSACTION_REQUEST``) with the
    test-card rules of :mod:`payprotocol.simulator.cards`. ``store`` outlives
    :meth:`stop`/:meth:`start`; a second :meth:`start` binds the same ports.
    """

    def __init__(
        self, config: Optional[SimulatorConfig] = None, *, store: Optional[TransactionStore] = None
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.store = store if store is not None else TransactionStore()
        self._faults = self.config.faults
        self._engine = self._create_engine()
        self._lifecycle = threading.Lock()
        self._running = False
        self._stop_event = threading.Event()
        self._tcp_listener: Optional[socket.socket] = None
        self._tcp_thread: Optional[threading.Thread] = None
        self._tcp_connections: Set[_TcpConnection] = set()
        self._ws_connections: Set[_WsConnection] = set()
        self._tcp_readers: Set[threading.Thread] = set()
        self._connections_lock = threading.Lock()
        self._ws_server: Optional[WsServer] = None
        self._ws_thread: Optional[threading.Thread] = None
        self._tcp_port: Optional[int] = self.config.tcp_port
        self._ws_port: Optional[int] = self.config.ws_port

    def _create_engine(self) -> PayServerEngine:
        """The logic behind the sockets (:class:`~.replay.Replay` plays a cassette)."""
        return PayServerEngine(self.config, self.store)

    # --- faults -------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force."""
        return self._faults

    def set_faults(self, plan: Optional[FaultPlan] = None) -> None:
        """Replace the fault plan; messages sent after the call follow it.
        ``None`` (or no argument) injects no fault."""
        self._faults = plan if plan is not None else FaultPlan()
        log.info("fault plan: %s", " ".join(self._faults.to_specs()) or "none")

    # --- addresses ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def tcp_port(self) -> int:
        """The framed TCP port (known once started)."""
        if not self._tcp_port:
            raise RuntimeError("framed TCP is disabled or the simulator was never started")
        return self._tcp_port

    @property
    def ws_port(self) -> int:
        """The WebSocket port (known once started)."""
        if not self._ws_port:
            raise RuntimeError("WebSocket is disabled or the simulator was never started")
        return self._ws_port

    @property
    def tcp_url(self) -> str:
        """``tcp://HOST:PORT`` of the framed TCP listener."""
        return f"tcp://{self._url_host()}:{self.tcp_port}"

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT/PATH`` of the WebSocket listener."""
        return f"ws://{self._url_host()}:{self.ws_port}{self.config.ws_path}"

    def _url_host(self) -> str:
        host = self.config.host
        return f"[{host}]" if ":" in host else host

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Simulator:
        """Listen on the configured ports (the same ones again after a stop)."""
        with self._lifecycle:
            if self._running:
                return self
            self._stop_event.clear()
            self._engine.resume()
            try:
                if self._tcp_port is not None:
                    self._start_tcp(self._tcp_port)
                if self._ws_port is not None:
                    self._start_ws(self._ws_port)
            except BaseException:
                self._stop_servers()
                raise
            self._running = True
        urls = [self.tcp_url] if self.config.tcp_port is not None else []
        urls += [self.ws_url] if self.config.ws_port is not None else []
        log.info("simulator listening: %s", ", ".join(urls))
        return self

    def stop(self) -> None:
        """Stop listening and close every connection. Running transactions are
        decided at once and stored; the store is kept."""
        with self._lifecycle:
            if not self._running:
                return
            self._running = False
            self._engine.shutdown(_JOIN_TIMEOUT)
            self._stop_servers()
        log.info("simulator stopped")

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no transaction runs (every execute and amend has sent its
        final response, or dropped it with its connection); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._engine.busy():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def restart(self) -> None:
        """:meth:`stop` then :meth:`start` on the same ports, keeping the store."""
        self.stop()
        self.start()

    # --- TCP ------------------------------------------------------------------------

    def _start_tcp(self, port: int) -> None:
        listener = _listen(self.config.host, port)
        listener.settimeout(0.1)  # the accept loop polls the stop flag
        self._tcp_listener = listener
        self._tcp_port = listener.getsockname()[1]
        self._tcp_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name="p3sim-tcp-accept", daemon=True
        )
        self._tcp_thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop_event.is_set():
            try:
                sock, address = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _TcpConnection(self, self._engine, sock, _peer_name(address))
            thread = threading.Thread(
                target=self._serve_tcp, args=(connection,), name="p3sim-tcp", daemon=True
            )
            with self._connections_lock:
                self._tcp_connections.add(connection)
                self._tcp_readers.add(thread)
            thread.start()

    def _serve_tcp(self, connection: _TcpConnection) -> None:
        try:
            connection.serve()
        finally:
            with self._connections_lock:
                self._tcp_connections.discard(connection)
                self._tcp_readers.discard(threading.current_thread())

    # --- WebSocket ------------------------------------------------------------------

    def _start_ws(self, port: int) -> None:
        try:
            from websockets.sync.server import serve
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "the WebSocket simulator needs the 'websockets' package: "
                "pip install 'payprotocol[simulator]' (or set ws_port=None)"
            ) from exc
        listener = _listen(self.config.host, port)
        self._ws_port = listener.getsockname()[1]
        self._ws_server = serve(
            self._serve_ws,
            sock=listener,
            compression=None,
            max_size=self.config.max_frame_size,
            close_timeout=1.0,  # a stop must not hang on a client that stopped reading
            process_request=self._check_path,
            logger=logging.getLogger("payprotocol.simulator.websockets"),
        )
        self._ws_thread = threading.Thread(
            target=self._ws_server.serve_forever, name="p3sim-ws-accept", daemon=True
        )
        self._ws_thread.start()

    def _check_path(self, connection: ServerConnection, request: Any) -> Any:
        from http import HTTPStatus

        if request.path.split("?", 1)[0] != self.config.ws_path:
            return connection.respond(HTTPStatus.NOT_FOUND, "no P3 endpoint here\n")
        return None

    def _serve_ws(self, ws: ServerConnection) -> None:
        connection = _WsConnection(self, self._engine, ws, _peer_name(ws.remote_address))
        with self._connections_lock:
            self._ws_connections.add(connection)
        try:
            connection.serve()
        finally:
            with self._connections_lock:
                self._ws_connections.discard(connection)

    # --- shutdown -------------------------------------------------------------------

    def _stop_servers(self) -> None:
        self._stop_event.set()
        if self._tcp_listener is not None:
            if self._tcp_thread is not None:
                self._tcp_thread.join(_JOIN_TIMEOUT)
            self._tcp_listener.close()
            self._tcp_listener = None
        with self._connections_lock:
            connections = list(self._tcp_connections)
            readers = list(self._tcp_readers)
        for connection in connections:
            connection.close()
        for reader in readers:
            reader.join(_JOIN_TIMEOUT)
        if self._ws_server is not None:
            # Close the connections ourselves: older websockets releases (15, on
            # Python 3.9) stop accepting at shutdown() but leave them open.
            with self._connections_lock:
                ws_connections = list(self._ws_connections)
            for ws_connection in ws_connections:
                ws_connection.close()
            self._ws_server.shutdown()
            if self._ws_thread is not None:
                self._ws_thread.join(_JOIN_TIMEOUT)
            self._ws_server = None
