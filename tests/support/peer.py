"""A tiny scripted P3 server for client tests: each test says exactly what the
server sends and when, over real sockets on 127.0.0.1 (TCP, TLS, WebSocket).

The simulator covers realistic flows; this covers precise misbehaviour
(out-of-order answers, broken frames, silence) that a test must control.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import threading
from typing import Any, Callable, Optional

from payprotocol import codec
from payprotocol import models as m
from payprotocol.framing import FrameDecoder, encode_frame

Handler = Callable[["Peer"], None]


class Peer:
    """The server side of one connection."""

    def __init__(self, kind: str, conn: Any) -> None:
        self.kind = kind
        self.conn = conn
        self._decoder = FrameDecoder()
        self._ready: list[bytes] = []
        self.send_lock = threading.Lock()

    def recv_bytes(self, timeout: float = 5.0) -> bytes:
        if self.kind == "ws":
            data = self.conn.recv(timeout=timeout)
            return data.encode() if isinstance(data, str) else data
        self.conn.settimeout(timeout)
        while not self._ready:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self._ready.extend(self._decoder.feed(chunk))
        return self._ready.pop(0)

    def recv(self, timeout: float = 5.0) -> m.Message:
        return codec.decode_message(self.recv_bytes(timeout))

    def send(self, message: m.Message) -> None:
        self.send_payload(codec.encode_message(message))

    def send_payload(self, payload: bytes) -> None:
        """One message body (framed on TCP, a text message on WebSocket)."""
        with self.send_lock:
            if self.kind == "ws":
                self.conn.send(payload.decode("utf-8", errors="replace"))
            else:
                self.conn.sendall(encode_frame(payload))

    def send_wire(self, raw: bytes) -> None:
        """Raw bytes on the stream, no framing added (TCP only)."""
        with self.send_lock:
            self.conn.sendall(raw)

    def close(self) -> None:
        if self.kind == "ws":
            self.conn.close()
        else:
            with contextlib.suppress(OSError):
                self.conn.shutdown(socket.SHUT_RDWR)
            self.conn.close()


def reply(
    request: m.Message,
    data: Any = None,
    *,
    type: Optional[str] = None,
    status: str = "OK",
    error: Optional[m.ErrorDetails] = None,
) -> m.Message:
    """The response (or, with ``type``, an update/action) for ``request``."""
    message_type = type or request.type.replace("_REQUEST", "_RESPONSE")
    return m.Message(
        message_type,
        request.tag,
        request.resource,
        data,
        status=status if message_type.endswith("_RESPONSE") else None,
        error=error,
    )


def transaction(status: str = "APPROVED", amount: str = "10.00", **fields: Any) -> m.Transaction:
    from decimal import Decimal

    return m.Transaction(
        transaction_identifier=fields.pop("transaction_identifier", "tx-1"),
        type="CHARGE",
        status=status,
        amount=Decimal(amount),
        currency="EUR",
        **fields,
    )


def _client_went_away(exc: BaseException) -> bool:
    """The client closed first: normal once a test is done with a connection."""
    from websockets.exceptions import ConnectionClosed

    return isinstance(exc, (ConnectionClosed, ConnectionError, BrokenPipeError)) or (
        isinstance(exc, OSError) and exc.errno is not None
    )


class ScriptedServer:
    """Listens on 127.0.0.1; runs ``handler(peer)`` for each connection in a thread."""

    def __init__(self, kind: str, handler: Handler, ssl_context: Optional[ssl.SSLContext] = None):
        self.kind = kind
        self.handler = handler
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self.peers: list[Peer] = []
        self._threads: list[threading.Thread] = []
        if kind == "ws":
            from websockets.sync.server import serve

            self._ws_server = serve(
                self._ws_handler, "127.0.0.1", 0, ping_interval=None, ssl=ssl_context
            )
            self.port = self._ws_server.socket.getsockname()[1]
            thread = threading.Thread(target=self._ws_server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
            self.url = f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{self.port}/"
        else:
            self._listener = socket.create_server(("127.0.0.1", 0))
            self.port = self._listener.getsockname()[1]
            self._ssl = ssl_context
            scheme = "tls" if ssl_context else "tcp"
            self.url = f"{scheme}://127.0.0.1:{self.port}"
            thread = threading.Thread(target=self._accept_loop, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, peer: Peer) -> None:
        self.peers.append(peer)
        try:
            self.handler(peer)
        except (OSError, ConnectionError) as exc:
            if not _client_went_away(exc):
                self.errors.put(exc)
        except Exception as exc:  # surfaced by the test through .errors
            if not _client_went_away(exc):
                self.errors.put(exc)

    def _ws_handler(self, conn: Any) -> None:
        self._run(Peer("ws", conn))

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._ssl is not None:
                try:
                    conn = self._ssl.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    self.errors.put(exc)
                    conn.close()
                    continue
            thread = threading.Thread(target=self._run, args=(Peer("tcp", conn),), daemon=True)
            thread.start()

    def close(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                peer.close()
        if self.kind == "ws":
            self._ws_server.shutdown()
        else:
            self._listener.close()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
