"""One P3 test peer over real sockets on 127.0.0.1: framed TCP (plain or TLS)
or WebSocket, on either end of the connection.

* ``ScriptedServer(kind, handler)`` listens and runs ``handler(peer)`` for each
  connection: client tests say exactly what the server sends and when
  (out-of-order answers, broken frames, silence). A connection stays open after
  its handler returns, until the client closes it or the test closes the
  server; only an explicit ``peer.close()`` hangs up early. (A WebSocket server
  that closed right after its last message would race the client's reading.)
* ``connect(url)`` opens a connection to a server (the simulator): simulator
  tests speak raw P3 through it, and every message received is also run
  through ``decode_message`` so the simulator is checked against the contract.

Both ends are the same ``Peer``: bytes (``send_payload``/``recv_payload``, and
on TCP ``send_wire``/``recv_wire`` for the raw stream), typed messages
(``send(message)``/``recv()``) and raw JSON dicts (``send(dict)``,
``recv_json()``, ``send_request`` and the request helpers). Every wait has a
timeout.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import ssl
import threading
import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Union

from payprotocol import codec
from payprotocol import models as m
from payprotocol.framing import FrameDecoder, encode_frame

from .messages import data_key

TIMEOUT = 5.0
Raw = Dict[str, Any]
Handler = Callable[["Peer"], None]
#: ``serve(handler)`` (the client tests' fixture) starts a ScriptedServer for one test.
Serve = Callable[[Handler], "ScriptedServer"]


class PeerClosed(ConnectionError):
    """The other end closed the connection."""


# --- links: how one kind of connection moves payloads -----------------------------------


class _TcpLink:
    """A framed TCP (or TLS) socket, either end."""

    def __init__(self, sock: socket.socket) -> None:
        self.conn = sock
        self._decoder = FrameDecoder()
        self._frames: List[bytes] = []
        self.chunks: List[bytes] = []  # every recv() result, for the byte-level faults

    def send_payload(self, payload: Union[bytes, str]) -> None:
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        self.conn.sendall(encode_frame(data))

    def send_wire(self, raw: bytes) -> None:
        self.conn.sendall(raw)

    def _chunk(self, remaining: float) -> bytes:
        if remaining <= 0:
            raise TimeoutError("no message")
        self.conn.settimeout(remaining)
        try:
            chunk = self.conn.recv(65536)
        except socket.timeout:
            raise TimeoutError("no message") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise PeerClosed("closed")
        self.chunks.append(chunk)
        return chunk

    def recv_payload(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while not self._frames:
            self._frames.extend(self._decoder.feed(self._chunk(deadline - time.monotonic())))
        return self._frames.pop(0)

    def recv_wire(self, count: int, timeout: float) -> bytes:
        """Exactly ``count`` bytes of the raw stream, bypassing the frame decoder."""
        assert not self._frames, "frames already decoded; do not mix recv_wire with recv"
        deadline = time.monotonic() + timeout
        data = b""
        while len(data) < count:
            self.conn.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = self.conn.recv(count - len(data))
            except socket.timeout:
                raise TimeoutError("no bytes") from None
            if not chunk:
                raise PeerClosed("closed early")
            data += chunk
        return data

    def wait_closed(self, timeout: float) -> None:
        # Raw reads: what a closing peer sent last need not be a valid frame.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._chunk(deadline - time.monotonic())
            except PeerClosed:
                return
            except TimeoutError:
                raise TimeoutError("connection still open") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()


class _WsServerLink:
    """The server end of a WebSocket (a ``websockets`` sync connection)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def send_payload(self, payload: Union[bytes, str]) -> None:
        # Always a text message, as the P3 contract says (bytes decoded with replacement).
        text = payload if isinstance(payload, str) else payload.decode("utf-8", errors="replace")
        self.conn.send(text)

    def send_binary(self, data: bytes) -> None:
        self.conn.send(data)

    def recv_payload(self, timeout: float) -> Union[bytes, str]:
        from websockets.exceptions import ConnectionClosed

        try:
            return self.conn.recv(timeout=timeout)  # type: ignore[no-any-return]
        except ConnectionClosed:
            raise PeerClosed("closed") from None

    def hold_open(self) -> None:
        """Block until the client closes the connection (or the server is closed)."""
        with contextlib.suppress(Exception):
            while True:
                self.conn.recv()

    def close(self) -> None:
        self.conn.close()


class _WsClientLink:
    """The client end of a WebSocket (websocket-client, as the SDK uses)."""

    def __init__(self, url: str) -> None:
        import websocket

        self.conn = websocket.create_connection(url, timeout=TIMEOUT)

    def send_payload(self, payload: Union[bytes, str]) -> None:
        text = payload if isinstance(payload, str) else payload.decode("utf-8", errors="replace")
        self.conn.send(text)

    def send_binary(self, data: bytes) -> None:
        self.conn.send_binary(data)

    def recv_payload(self, timeout: float) -> Union[bytes, str]:
        import websocket

        self.conn.settimeout(timeout)
        try:
            payload = self.conn.recv()
        except websocket.WebSocketTimeoutException:
            raise TimeoutError("no message") from None
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            raise PeerClosed("closed") from None
        if payload == "" and not self.conn.connected:
            raise PeerClosed("closed")
        return payload  # type: ignore[no-any-return]

    def wait_closed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv_payload(max(0.01, deadline - time.monotonic()))
            except PeerClosed:
                return
            except TimeoutError:
                break
        raise TimeoutError("connection still open")

    def close(self) -> None:
        self.conn.close()


# --- the peer ------------------------------------------------------------------------------


class Peer:
    """One end of a P3 connection; ``kind`` is "tcp" (also TLS) or "ws"."""

    def __init__(self, kind: str, link: Any) -> None:
        self.kind = kind
        self._link = link
        self.conn = link.conn  # the socket or WebSocket underneath
        self.closed = False
        self.backlog: List[Raw] = []  # messages recv_json() read while expecting others
        self.received: List[Raw] = []  # every message recv_json() read
        self._send_lock = threading.Lock()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def chunks(self) -> List[bytes]:
        """Every recv() result of the raw stream (TCP only)."""
        return self._link.chunks  # type: ignore[no-any-return]

    # bytes
    def send_payload(self, payload: Union[bytes, str]) -> None:
        """One message body: framed on TCP, a text message on WebSocket."""
        with self._send_lock:
            self._link.send_payload(payload)

    def send_wire(self, raw: bytes) -> None:
        """Raw bytes on the stream, no framing added (TCP only)."""
        with self._send_lock:
            self._link.send_wire(raw)

    def send_binary(self, data: bytes) -> None:
        """A binary WebSocket message (WebSocket only)."""
        with self._send_lock:
            self._link.send_binary(data)

    def recv_payload(self, timeout: float = TIMEOUT) -> Union[bytes, str]:
        """The next message body as it came (text arrives as ``str`` on WebSocket)."""
        return self._link.recv_payload(timeout)  # type: ignore[no-any-return]

    def recv_bytes(self, timeout: float = TIMEOUT) -> bytes:
        payload = self.recv_payload(timeout)
        return payload.encode("utf-8") if isinstance(payload, str) else payload

    def recv_wire(self, count: int, timeout: float = TIMEOUT) -> bytes:
        """Exactly ``count`` bytes of the raw stream (TCP only)."""
        return self._link.recv_wire(count, timeout)  # type: ignore[no-any-return]

    def wait_closed(self, timeout: float = TIMEOUT) -> None:
        """Read until the other end closes the connection."""
        self._link.wait_closed(timeout)

    def close(self) -> None:
        self.closed = True
        self._link.close()

    # typed messages and raw dicts
    def send(self, message: Union[m.Message, Raw]) -> None:
        """A typed message (through the codec) or a raw JSON dict, as it is."""
        if isinstance(message, dict):
            self.send_payload(codec.dumps(message))
        else:
            self.send_payload(codec.encode_message(message))

    def recv(self, timeout: float = TIMEOUT) -> m.Message:
        return codec.decode_message(self.recv_bytes(timeout))

    def recv_json(self, timeout: float = TIMEOUT) -> Raw:
        """The next message as a dict (amounts as Decimal), checked against the contract."""
        payload = self.recv_payload(timeout)
        codec.decode_message(payload)
        raw: Raw = json.loads(payload, parse_float=Decimal)
        self.received.append(raw)
        return raw

    # requests, as a raw client (the simulator tests)
    def send_request(
        self,
        message_type: str,
        data: Optional[Raw] = None,
        *,
        resource: Optional[str] = None,
        tag: Optional[str] = None,
        **envelope: Any,
    ) -> str:
        """Send a raw request; returns its tag."""
        tag = tag or uuid.uuid4().hex
        message: Raw = {"type": message_type, "tag": tag, **envelope}
        if resource is not None:
            message["resource"] = resource
        if data is not None:
            message[data_key(message_type)] = data
        self.send(message)
        return tag

    def expect(self, predicate: Callable[[Raw], bool], timeout: float = TIMEOUT) -> Raw:
        for index, raw in enumerate(self.backlog):
            if predicate(raw):
                return self.backlog.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("expected message did not arrive")
            raw = self.recv_json(remaining)
            if predicate(raw):
                return raw
            self.backlog.append(raw)

    def response(self, tag: str, timeout: float = TIMEOUT) -> Raw:
        return self.expect(
            lambda m: m.get("tag") == tag and m["type"].endswith("_RESPONSE"), timeout
        )

    def request(
        self,
        message_type: str,
        data: Optional[Raw] = None,
        *,
        resource: Optional[str] = None,
        timeout: float = TIMEOUT,
    ) -> Raw:
        return self.response(self.send_request(message_type, data, resource=resource), timeout)

    def login(self, merchant: str = "m-1", secret: str = "s3cr3t") -> Raw:
        return self.request(
            "LOGIN_MERCHANT_REQUEST",
            {"providerMode": "TEST", "merchantIdentifier": merchant, "merchantSecret": secret},
        )

    def execute(
        self,
        amount: str,
        resource: str = "devices/reader1",
        currency: str = "EUR",
        **parameters: Any,
    ) -> str:
        extra_request = parameters.pop("request", {})
        transaction = {
            "type": "CHARGE",
            "amount": Decimal(amount),
            "currency": currency,
            "autoCapture": True,
            **parameters,
        }
        return self.send_request(
            "EXECUTE_TRANSACTION_REQUEST",
            {"transactionParameters": transaction, **extra_request},
            resource=resource,
        )

    def follow(
        self,
        tag: str,
        on_action: Optional[Callable[[Peer, Raw], None]] = None,
        timeout: float = TIMEOUT,
    ) -> List[Raw]:
        """Every message of the transaction ``tag`` up to its final response."""
        messages = []
        while True:
            raw = self.expect(lambda m: m.get("tag") == tag, timeout)
            messages.append(raw)
            if raw["type"].endswith("_ACTION"):
                (on_action or answer_actions)(self, raw)
            if raw["type"].endswith("_RESPONSE"):
                return messages

    def charge(self, amount: str, **kwargs: Any) -> List[Raw]:
        on_action = kwargs.pop("on_action", None)
        return self.follow(self.execute(amount, **kwargs), on_action)


def connect(url: str) -> Peer:
    """A raw client connection to ``tcp://host:port`` or ``ws://host:port/path``."""
    if url.startswith("tcp://"):
        host, port = url[len("tcp://") :].rsplit(":", 1)
        return Peer("tcp", _TcpLink(socket.create_connection((host, int(port)), timeout=TIMEOUT)))
    if url.startswith("ws://"):
        return Peer("ws", _WsClientLink(url))
    raise ValueError(f"not a tcp:// or ws:// URL: {url}")


def answer_actions(peer: Peer, action: Raw) -> None:
    """Default answers: sign on receipt, first application, CREDIT, keep currency."""
    kind = action["executeTransactionAction"]["action"]
    resource = action["resource"]
    request_type, data = {
        "SIGNATURE": ("SUBMIT_SIGNATURE_REQUEST", {"signOnReceipt": True}),
        "APPLICATION_SELECTION": (
            "SUBMIT_APPLICATION_SELECTION_REQUEST",
            {"applicationIdentifier": "A0000000031010"},
        ),
        "CREDIT_DEBIT_SELECTION": (
            "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST",
            {"selection": "CREDIT"},
        ),
        "DCC_SELECTION": ("SUBMIT_DCC_SELECTION_REQUEST", {"useConvertedAmount": False}),
    }[kind]
    response = peer.request(request_type, data, resource=resource)
    assert response["status"] == "OK", response


# --- the scripted server -----------------------------------------------------------------


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
        if kind == "ws":
            from websockets.sync.server import serve

            self._ws_server = serve(
                self._ws_handler, "127.0.0.1", 0, ping_interval=None, ssl=ssl_context
            )
            self.port = self._ws_server.socket.getsockname()[1]
            threading.Thread(target=self._ws_server.serve_forever, daemon=True).start()
            self.url = f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{self.port}/"
        else:
            self._listener = socket.create_server(("127.0.0.1", 0))
            self.port = self._listener.getsockname()[1]
            self._ssl = ssl_context
            self.url = f"{'tls' if ssl_context else 'tcp'}://127.0.0.1:{self.port}"
            threading.Thread(target=self._accept_loop, daemon=True).start()

    def _run(self, peer: Peer) -> None:
        self.peers.append(peer)
        try:
            self.handler(peer)
        except Exception as exc:  # surfaced by the test through .errors
            if not _client_went_away(exc):
                self.errors.put(exc)

    def _ws_handler(self, conn: Any) -> None:
        link = _WsServerLink(conn)
        peer = Peer("ws", link)
        self._run(peer)
        # websockets closes the connection when this returns; a TCP socket simply
        # stays open. Make both alike: open until the client or the test ends it.
        if not peer.closed:
            link.hold_open()

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
            peer = Peer("tcp", _TcpLink(conn))
            threading.Thread(target=self._run, args=(peer,), daemon=True).start()

    def close(self) -> None:
        for peer in list(self.peers):
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
