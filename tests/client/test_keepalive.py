"""Keepalive: a WebSocket peer that goes silent (no pong) is declared dead
within ping_interval + pong_timeout, and every waiting call ends."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from typing import Any, Iterator

import pytest

from payprotocol import ConnectionLostError, PayClient, RequestTimeoutError

from ..support.waiting import eventually

pytestmark = pytest.mark.timeout(30)

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture
def silent_ws_server() -> Iterator[str]:
    """Completes the WebSocket handshake, then never answers anything (a
    half-dead PayServer: the TCP connection stays up, nothing comes back)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connections = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        connections.append(conn)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:  # the client went away before its handshake was complete
                return
            request += chunk
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        # Swallow whatever the client sends (pings, requests); answer nothing.
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{port}/"
    listener.close()
    for conn in connections:
        conn.close()


def test_missing_pong_declares_the_link_dead(silent_ws_server: str) -> None:
    with PayClient(silent_ws_server, timeout=10, ping_interval=0.3, pong_timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(ConnectionLostError) as caught:
            client.get_transaction(custom_identifier="x")  # would wait 10 s for an answer
        elapsed = time.monotonic() - started
        assert elapsed < 2.0
        assert "ping" in str(caught.value)
        eventually(lambda: not client.connected)


def test_tcp_keepalive_is_on() -> None:
    from payprotocol.transport import TcpTransport

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        transport = TcpTransport("127.0.0.1", listener.getsockname()[1], connect_timeout=5)
        sock = transport._sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        transport.close()
        transport.close()  # idempotent
    finally:
        listener.close()


def test_close_wakes_a_blocked_receive() -> None:
    from payprotocol.transport import TcpTransport

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        transport = TcpTransport("127.0.0.1", listener.getsockname()[1], connect_timeout=5)
        errors = []

        def receive() -> None:
            try:
                transport.receive()
            except ConnectionLostError as exc:
                errors.append(exc)

        in_recv = threading.Event()
        real_socket = transport._sock

        class Watched:  # the transport's socket, telling when recv is entered
            def recv(self, size: int) -> bytes:
                in_recv.set()
                return real_socket.recv(size)

            def __getattr__(self, name: str) -> Any:
                return getattr(real_socket, name)

        transport._sock = Watched()  # type: ignore[assignment]
        reader = threading.Thread(target=receive)
        reader.start()
        assert in_recv.wait(5)  # (a close racing the C call is woken all the same)
        started = time.monotonic()
        transport.close()
        reader.join(2)
        assert not reader.is_alive() and time.monotonic() - started < 0.5
        assert "closed" in str(errors[0])
    finally:
        listener.close()


def test_a_peer_that_stops_reading_cannot_block_a_send_forever() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    outcomes: list = []
    try:
        with PayClient(url, timeout=1) as client:

            def send_big() -> None:
                try:  # 4 MiB per request: the socket buffers fill, then send stalls
                    client.request("BLOB_REQUEST", {"blob": "x" * (4 << 20)})
                except Exception as exc:
                    outcomes.append(exc)

            senders = [threading.Thread(target=send_big) for _ in range(4)]
            started = time.monotonic()
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(10)
            assert not any(sender.is_alive() for sender in senders)
            assert time.monotonic() - started < 8
            assert len(outcomes) == 4
            assert any("sending failed" in str(exc) for exc in outcomes)
            # A request whose bytes all went out before the stall waits out its timeout.
            assert all(
                isinstance(exc, (ConnectionLostError, RequestTimeoutError)) for exc in outcomes
            ), outcomes
            # The stream was closed, not left half-written.
            eventually(lambda: not client.connected)
    finally:
        listener.close()
        for conn, _ in accepted:
            conn.close()
