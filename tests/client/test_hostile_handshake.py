"""Hostile peers on 127.0.0.1 (issue 11): a connect, TLS handshake and
WebSocket handshake share one deadline that a trickling peer cannot stretch,
and ``close()`` from another thread cuts a connect (or a reconnect attempt)
short; a WebSocket frame or fragmented message over the size cap is refused
on its header, before its payload is read."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
import time
from typing import Callable, Iterator, List

import pytest

from payprotocol import (
    ConnectionLostError,
    PayClient,
    PayProtocolError,
    ReconnectPolicy,
    RequestTimeoutError,
)

from ..support.messages import ws_frame as frame
from ..support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Behaviour = Callable[[socket.socket, "RawServer"], None]
Servers = Callable[..., "RawServer"]


class RawServer:
    """Accepts on 127.0.0.1 and runs the next behaviour for each connection
    (the last one repeats). ``stop`` ends every behaviour's loop."""

    def __init__(self, *behaviours: Behaviour) -> None:
        self.behaviours = list(behaviours)
        self.stop = threading.Event()
        self.trickling = threading.Event()  # set once a peer is inside a handshake
        self.sent = 0  # bytes trickled so far
        self.connections: List[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            many = len(self.behaviours) > 1
            behaviour = self.behaviours.pop(0) if many else self.behaviours[0]
            threading.Thread(target=self._run, args=(behaviour, conn), daemon=True).start()

    def _run(self, behaviour: Behaviour, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the client went away
            behaviour(conn, self)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for conn in self.connections:
            conn.close()


def read_request(conn: socket.socket) -> bytes:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            raise OSError("client gone")
        request += chunk
    return request


def accept_header(request: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    return b"Sec-WebSocket-Accept: " + base64.b64encode(hashlib.sha1(key + _GUID).digest())


def handshake(conn: socket.socket) -> None:
    """A correct WebSocket opening handshake, server side."""
    accept = accept_header(read_request(conn))
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n" + accept + b"\r\n\r\n"
    )


def trickle_handshake(conn: socket.socket, server: RawServer) -> None:
    """Answers 101, then one header byte every 0.2 s, for as long as it likes."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nX-Slow: ")
    server.trickling.set()
    while not server.stop.wait(0.2):
        conn.sendall(b"a")
        server.sent += 1


def silent_after_hello(conn: socket.socket, server: RawServer) -> None:
    """Reads the TLS ClientHello and never answers (a stalled TLS handshake)."""
    conn.recv(4096)
    server.trickling.set()
    server.stop.wait(30)


def serve_then_hang_up(conn: socket.socket, server: RawServer) -> None:
    handshake(conn)
    conn.close()


def url(kind: str, server: RawServer) -> str:
    return f"{'tls' if kind == 'tls' else 'ws'}://127.0.0.1:{server.port}/"


@pytest.fixture
def servers() -> Iterator[Servers]:
    started: List[RawServer] = []

    def start(*behaviours: Behaviour) -> RawServer:
        server = RawServer(*behaviours)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


# --- one deadline ------------------------------------------------------------------------


def test_a_trickled_handshake_cannot_stretch_the_connect_timeout(servers: Servers) -> None:
    server = servers(trickle_handshake)
    client = PayClient(url("ws", server), timeout=1)
    started = time.monotonic()
    with pytest.raises(ConnectionLostError) as caught:
        client.connect()
    elapsed = time.monotonic() - started
    # Bytes kept arriving (each one in less than the timeout), the deadline held.
    assert elapsed < 2.5, elapsed
    assert "within the timeout of 1 s" in str(caught.value)
    assert not client.connected
    client.close()


@pytest.mark.parametrize("kind", ["ws", "tls"])
def test_close_cuts_a_connect_in_progress_short(servers: Servers, kind: str) -> None:
    server = servers(trickle_handshake if kind == "ws" else silent_after_hello)
    client = PayClient(url(kind, server), timeout=30)
    outcome: List[BaseException] = []

    def connect() -> None:
        try:
            client.connect()
        except BaseException as exc:
            outcome.append(exc)

    connecting = threading.Thread(target=connect)
    connecting.start()
    assert server.trickling.wait(10)  # the client is inside the handshake now
    started = time.monotonic()
    client.close()
    connecting.join(5)
    assert not connecting.is_alive()
    assert time.monotonic() - started < 1.5
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionLostError), outcome
    assert "closed" in str(outcome[0])


def test_close_cuts_a_reconnect_attempt_short(servers: Servers) -> None:
    # The first connection is fine and hangs up; every reconnect then trickles.
    server = servers(serve_then_hang_up, trickle_handshake)
    policy = ReconnectPolicy(initial_delay=0.01, jitter=0.0)
    client = PayClient(url("ws", server), timeout=30, reconnect=policy)
    client.connect()
    assert server.trickling.wait(10)  # a reconnect attempt is inside the handshake
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 1.5
    eventually(
        lambda: not any(t.name == "payprotocol-reconnect" for t in threading.enumerate()),
        timeout=2,
    )


# --- the WebSocket size cap, on each frame header ------------------------------------------


def then(send: Callable[[socket.socket, RawServer], None]) -> Behaviour:
    """A handshake, then ``send`` once the client's first message is in."""

    def behaviour(conn: socket.socket, server: RawServer) -> None:
        handshake(conn)
        conn.recv(65536)  # the client's request
        send(conn, server)
        server.stop.wait(30)  # hold the connection open: only the client may end it

    return behaviour


def refused(client: PayClient) -> PayProtocolError:
    started = time.monotonic()
    with pytest.raises(PayProtocolError) as caught:
        client.get_transaction(transaction_identifier="t-1")
    assert time.monotonic() - started < 3  # refused at once, not at the 20 s timeout
    eventually(lambda: not client.connected)
    return caught.value


def test_a_frame_announcing_256_mib_is_refused_on_its_header(servers: Servers) -> None:
    # Only the 10 header bytes are sent: a client that waited for the payload
    # (buffering it) would hang here; the cap is judged on the header.
    server = servers(then(lambda conn, _: conn.sendall(frame(b"", length=256 << 20))))
    with PayClient(url("ws", server), timeout=20) as client:
        error = refused(client)
    assert "exceeds the limit of 1048576 bytes" in str(error)


def test_a_fragmented_message_over_the_cap_is_refused(servers: Servers) -> None:
    # 16 KiB fragments, never a final one; the cap is 64 KiB: the fifth header
    # takes the running total over it (a client that buffered the whole message
    # before judging it would wait forever).
    def fragments(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(frame(b"{" * 16384, fin=False))
        for _ in range(63):
            conn.sendall(frame(b" " * 16384, opcode=0x0, fin=False))

    server = servers(then(fragments))
    with PayClient(url("ws", server), timeout=20, max_frame_size=64 << 10) as client:
        error = refused(client)
    assert "exceeds the limit of 65536 bytes" in str(error)


def test_a_timeout_on_a_websocket_stuck_mid_frame_closes_the_connection(
    servers: Servers,
) -> None:
    # Half a frame, then silence: a request timing out now closes the
    # connection (as on framed TCP) instead of leaving every later one to time out.
    server = servers(then(lambda conn, _: conn.sendall(frame(b'{"type":"GET', length=200))))
    with PayClient(url("ws", server), timeout=0.5, ping_interval=60, reconnect=None) as client:
        with pytest.raises(RequestTimeoutError):
            client.get_transaction(transaction_identifier="t-1")
        eventually(lambda: not client.connected)
        with pytest.raises(ConnectionLostError):
            client.get_transaction(transaction_identifier="t-2", timeout=10)
