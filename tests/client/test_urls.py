"""URLs that carry secrets or ask for TLS: a password never shows in a message
or ``PayClient.url``; WebSocket credentials go out as HTTP Basic auth in the
handshake; credentials that framed TCP cannot carry, and an ``ssl_context`` that
a plain-text URL would ignore, are refused at construction (issue 11)."""

from __future__ import annotations

import base64
import queue
import socket
import ssl
from typing import Iterator, Optional

import pytest

from payprotocol import PayClient, transport
from payprotocol.transport import open_transport

from ..support.peer import Peer, ScriptedServer

pytestmark = pytest.mark.timeout(30)

PASSWORD = "hunter2-s3cr3t"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port on 127.0.0.1 that counts nothing but whether anyone connected."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.3)
    yield sock
    sock.close()


def _nobody_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except socket.timeout:
        return True
    conn.close()
    return False


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@127.0.0.1:4245",
        f"ftp://user:{PASSWORD}@127.0.0.1/",
        f"ws://user:{PASSWORD}@/path",
    ],
)
def test_a_url_error_never_shows_the_password(url: str) -> None:
    for attempt in (
        lambda: open_transport(url, connect_timeout=1),
        lambda: PayClient(url),
        lambda: transport.check_url(url),
    ):
        with pytest.raises(ValueError) as caught:
            attempt()
        assert PASSWORD not in str(caught.value)
        assert "user:***@" in str(caught.value)


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_payclient_url_and_repr_hold_no_password(scheme: str) -> None:
    client = PayClient(f"{scheme}://user:{PASSWORD}@127.0.0.1:1/p3")
    assert client.url == f"{scheme}://user:***@127.0.0.1:1/p3"
    assert PASSWORD not in repr(client)


def test_websocket_credentials_go_out_as_basic_auth_in_the_handshake() -> None:
    headers: queue.Queue[Optional[str]] = queue.Queue()

    def handler(peer: Peer) -> None:
        headers.put(peer.conn.request.headers.get("Authorization"))

    with ScriptedServer("ws", handler) as server:
        # A percent-encoded "@" and space in the password, as a URL must carry them.
        url = server.url.replace("ws://", "ws://pos%20user:p%40ss%20word@")
        with PayClient(url, timeout=5) as client:
            sent = headers.get(timeout=5)
            assert sent == "Basic " + base64.b64encode(b"pos user:p@ss word").decode("ascii")
            assert client.connected
            assert "p%40ss" not in client.url


def test_a_websocket_url_without_credentials_sends_no_authorization() -> None:
    headers: queue.Queue[Optional[str]] = queue.Queue()

    def handler(peer: Peer) -> None:
        headers.put(peer.conn.request.headers.get("Authorization"))

    with ScriptedServer("ws", handler) as server, PayClient(server.url, timeout=5):
        assert headers.get(timeout=5) is None


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_credentials_on_framed_tcp_are_refused_not_dropped(
    scheme: str, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    url = f"{scheme}://user:{PASSWORD}@127.0.0.1:{port}"
    with pytest.raises(ValueError, match="credentials") as caught:
        PayClient(url)
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ValueError, match="credentials"):
        open_transport(url, connect_timeout=1)
    assert _nobody_connected(listener)


@pytest.mark.parametrize(("scheme", "secure"), [("tcp", "tls://"), ("ws", "wss://")])
def test_an_ssl_context_with_a_plain_url_is_refused_at_construction(
    scheme: str, secure: str, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    url = f"{scheme}://127.0.0.1:{port}/"
    context = ssl.create_default_context()
    with pytest.raises(ValueError, match=secure):
        PayClient(url, ssl_context=context)  # not at connect: nothing is sent
    with pytest.raises(ValueError, match=secure):
        open_transport(url, connect_timeout=1, ssl_context=context)
    assert _nobody_connected(listener)
