"""Transports: move one P3 message's bytes over a socket. The only client
module that touches sockets.

Each transport offers the same four operations: connect (in the factory),
``send(message_bytes)`` (thread safe), a blocking ``receive()`` that returns one
message's bytes, and ``close()``, which wakes a ``receive`` blocked in another
thread at once (``shutdown`` on the socket; closing a file descriptor alone does
not reliably wake a blocked ``recv``). ``receive`` raises
:class:`ConnectionLostError` when the link ends and
:class:`ProtocolViolationError` when the peer breaks the framing rules.

Keepalive: framed TCP turns on TCP keepalive (with the tuning options the
platform has); WebSocket sends a ping after ``ping_interval`` seconds of
silence and declares the link dead when nothing, pong included, comes back
within ``pong_timeout``. The reader thread does this itself from its socket
timeout, so no extra thread is needed.

Imports: ``websocket`` (websocket-client) is imported only when a WebSocket
transport is opened, and ``ssl`` only when a ``tls://``/``wss://`` URL needs a
default context; annotations name ``ssl.SSLContext`` under ``TYPE_CHECKING``.
So ``import payprotocol.transport`` (and a plain ``tcp://`` client) loads
neither. ``ssl.SSLError`` is an ``OSError``, which is what the handlers catch.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Optional, Protocol, Union
from urllib.parse import unquote, urlsplit

from .errors import ConnectionLostError, ProtocolViolationError
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_frame

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_PORTS",
    "TcpTransport",
    "TlsTransport",
    "Transport",
    "WebSocketTransport",
    "check_url",
    "open_transport",
    "safe_url",
]

logger = logging.getLogger("payprotocol")

DEFAULT_PORTS = {"tcp": 4245, "tls": 4245, "ws": 8080, "wss": 8080}
_RECV_SIZE = 65536


class Transport(Protocol):
    """What the client needs from a connection."""

    description: str

    def send(self, message: bytes) -> None: ...

    def receive(self) -> bytes: ...

    def mid_message(self) -> bool: ...

    def close(self) -> None: ...


def _enable_tcp_keepalive(sock: socket.socket, idle: int = 30, interval: int = 10) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Only the options this platform has (no TCP_KEEPIDLE on older Windows/macOS).
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):  # the platform may refuse a value
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    if hasattr(socket, "SIO_KEEPALIVE_VALS"):  # pragma: no cover - Windows
        sock.ioctl(socket.SIO_KEEPALIVE_VALS, (1, idle * 1000, interval * 1000))  # type: ignore[attr-defined]


def _limit_send_time(sock: socket.socket, seconds: float) -> None:
    """Make a blocking send give up after ``seconds`` without progress (a peer
    that stops reading must not block a sender, and the send lock, forever)."""
    if sys.platform == "win32":  # pragma: no cover - Windows takes milliseconds
        value: Union[int, bytes] = max(1, int(seconds * 1000))
    else:
        whole = int(seconds)
        value = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    with contextlib.suppress(OSError):  # a platform without it keeps TCP's own limits
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


class TcpTransport:
    """P3 framed TCP (``tcp://``), optionally inside TLS (``tls://``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        scheme = "tls" if ssl_context is not None else "tcp"
        self.description = f"{scheme}://{host}:{port}"
        self._closed = threading.Event()
        self._send_lock = threading.Lock()
        self._decoder = FrameDecoder(max_frame_size)
        self._ready: deque[bytes] = deque()
        try:
            raw = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise ConnectionLostError(f"cannot connect to {self.description}: {exc}") from exc
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _enable_tcp_keepalive(raw)
            _limit_send_time(raw, connect_timeout)
            self._sock = ssl_context.wrap_socket(raw, server_hostname=host) if ssl_context else raw
            self._sock.settimeout(None)
        except OSError as exc:  # ssl.SSLError included: it is an OSError
            raw.close()
            raise ConnectionLostError(f"cannot connect to {self.description}: {exc}") from exc

    def send(self, message: bytes) -> None:
        frame = encode_frame(message)
        with self._send_lock:
            if self._closed.is_set():
                raise ConnectionLostError("the connection is closed")
            try:
                self._sock.sendall(frame)
            except OSError as exc:
                # Part of a frame may be out: the stream cannot be trusted any more.
                self.close()
                raise ConnectionLostError(f"sending failed: {exc}") from exc

    def mid_message(self) -> bool:
        """Whether part of a message has arrived and the rest has not."""
        return self._decoder.buffered > 0

    def receive(self) -> bytes:
        while not self._ready:
            if self._closed.is_set():
                raise ConnectionLostError("the connection is closed")
            if self._decoder.broken is not None:  # after the good messages before it
                raise ProtocolViolationError(str(self._decoder.broken), broken_stream=True)
            try:
                chunk = self._sock.recv(_RECV_SIZE)
            except OSError as exc:
                if self._closed.is_set():  # close() raced the recv: say so, not EBADF
                    raise ConnectionLostError("the connection is closed") from exc
                raise ConnectionLostError(f"receiving failed: {exc}") from exc
            if not chunk:
                raise ConnectionLostError(
                    "the connection is closed"
                    if self._closed.is_set()
                    else "the server closed the connection"
                )
            self._ready.extend(self._decoder.feed(chunk))  # ProtocolViolationError passes up
        return self._ready.popleft()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):  # wakes a receive blocked in another thread
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class TlsTransport(TcpTransport):
    """P3 framed TCP inside TLS (``tls://``). The context decides what is trusted;
    ``ssl.create_default_context()`` checks the certificate and the host name."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        ssl_context: ssl.SSLContext,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        super().__init__(
            host,
            port,
            connect_timeout=connect_timeout,
            ssl_context=ssl_context,
            max_frame_size=max_frame_size,
        )


class WebSocketTransport:
    """P3 over WebSocket (``ws://``, ``wss://``): one text message per P3 message.

    Uses websocket-client's low-level ``WebSocket`` (never ``run_forever``) so the
    client's own reader thread owns the receive loop.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
    ) -> None:
        self.description = safe_url(url)
        # websocket-client ignores a URL's user:password; send it as HTTP Basic
        # auth in the handshake instead, and connect to the URL without it.
        url, header = _basic_auth(url)
        self._max_size = max_frame_size
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._ping_sent_at: Optional[float] = None
        self._closed = threading.Event()
        import websocket  # here, not at module level: only a WebSocket URL needs it

        # enable_multithread: websocket-client locks its own sends, including the
        # pong it writes from our reader thread when the server pings.
        sslopt = {"context": ssl_context} if ssl_context is not None else None
        # skip_utf8_validation: websocket-client's check is pure Python (143 us for
        # a 774-byte message); the codec decodes strictly and refuses bad UTF-8.
        self._ws = websocket.WebSocket(
            enable_multithread=True, sslopt=sslopt, skip_utf8_validation=True
        )
        try:
            self._ws.connect(url, timeout=connect_timeout, header=header)  # type: ignore[no-untyped-call]
            if self._ws.sock is not None:
                _enable_tcp_keepalive(self._ws.sock)
            self._ws.settimeout(ping_interval)
        except (OSError, websocket.WebSocketException) as exc:  # ssl.SSLError is an OSError
            self._ws.shutdown()  # type: ignore[no-untyped-call]
            raise ConnectionLostError(f"cannot connect to {self.description}: {exc}") from exc

    def send(self, message: bytes) -> None:
        import websocket  # loaded by __init__; a dict look-up from here on

        if self._closed.is_set():
            raise ConnectionLostError("the connection is closed")
        try:
            self._ws.send(message.decode("utf-8"), websocket.ABNF.OPCODE_TEXT)
        except (OSError, websocket.WebSocketException) as exc:
            self.close()  # part of a frame may be out: the stream cannot be trusted
            raise ConnectionLostError(f"sending failed: {exc}") from exc

    def mid_message(self) -> bool:
        """Always False: websocket-client keeps a partly received message to
        itself; the keepalive (a ping unanswered in pong_timeout) ends a stall."""
        return False

    def receive(self) -> bytes:
        import websocket  # loaded by __init__; a dict look-up from here on

        while True:
            if self._closed.is_set():
                raise ConnectionLostError("the connection is closed")
            try:
                opcode, frame = self._ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                self._keepalive()
                continue
            except websocket.WebSocketConnectionClosedException as exc:
                raise ConnectionLostError(
                    self._lost_reason("the server closed the connection")
                ) from exc
            except websocket.WebSocketProtocolException as exc:
                raise ProtocolViolationError(
                    f"WebSocket protocol error: {exc}", broken_stream=True
                ) from exc
            except (OSError, websocket.WebSocketException) as exc:
                raise ConnectionLostError(self._lost_reason(f"receiving failed: {exc}")) from exc
            self._ping_sent_at = None  # anything received proves the link is alive
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                data: bytes = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
                if len(data) > self._max_size:
                    raise ProtocolViolationError(
                        f"message of {len(data)} bytes exceeds the limit of {self._max_size} bytes",
                        broken_stream=True,
                    )
                return data
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ConnectionLostError(self._lost_reason("the server closed the connection"))

    def _lost_reason(self, reason: str) -> str:
        return "the connection is closed" if self._closed.is_set() else reason

    def _keepalive(self) -> None:
        import websocket

        now = time.monotonic()
        if self._ping_sent_at is None:
            self._ping_sent_at = now
            try:
                self._ws.ping()
            except (OSError, websocket.WebSocketException) as exc:
                raise ConnectionLostError(f"sending a ping failed: {exc}") from exc
        elif now - self._ping_sent_at >= self._pong_timeout:
            logger.warning(
                "no pong within %.1f s: the link to %s is dead",
                self._pong_timeout,
                self.description,
            )
            raise ConnectionLostError(f"no answer to a ping within {self._pong_timeout} s")

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        import websocket

        try:
            self._ws.send_close()  # polite goodbye; the server may already be gone
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            # shutdown(SHUT_RDWR) inside abort() wakes a receive blocked in another thread
            self._ws.abort()  # type: ignore[no-untyped-call]
            self._ws.shutdown()  # type: ignore[no-untyped-call]


def safe_url(url: str) -> str:
    """``url`` with the password of a ``user:password@`` part masked as ``***``,
    for logs, reprs, messages and ``PayClient.url``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return parts._replace(netloc=f"{userinfo}@{host}").geturl()


def _basic_auth(url: str) -> tuple[str, list[str]]:
    """``url`` without its ``user:password@`` part, and the handshake headers
    that carry it (``Authorization: Basic``, RFC 7617, UTF-8)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, []
    import base64

    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return parts._replace(netloc=host).geturl(), [f"Authorization: Basic {token}"]


def check_url(url: str, ssl_context: Optional[ssl.SSLContext] = None) -> None:
    """Raise ``ValueError`` (naming the URL with its password masked) unless
    ``url`` is one ``open_transport`` can use as asked.

    Refused: an unknown scheme, no host, credentials on ``tcp://``/``tls://``
    (P3 framed TCP has no place for them; they would silently be dropped), and
    an ``ssl_context`` with ``tcp://``/``ws://`` (it would silently be ignored
    and the login, secret included, sent in plain text). ``PayClient`` calls it
    at construction, so a wrong URL fails there, not at connect.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"unsupported URL scheme in {safe_url(url)!r}: use tcp://, tls://, ws:// or wss://"
        )
    if not parts.hostname:
        raise ValueError(f"no host in {safe_url(url)!r}")
    parts.port  # noqa: B018 - raises ValueError for a bad port (its message names only the port)
    if scheme in ("tcp", "tls") and "@" in parts.netloc:
        raise ValueError(
            f"credentials in {safe_url(url)!r}: P3 framed TCP has no place for them;"
            " log in with PayClient.login instead"
        )
    if ssl_context is not None and scheme in ("tcp", "ws"):
        secure = "tls" if scheme == "tcp" else "wss"
        raise ValueError(
            f"an ssl_context was given but {safe_url(url)!r} is not encrypted:"
            f" use {secure}:// (tls:// or wss://) for TLS"
        )


def open_transport(
    url: str,
    *,
    connect_timeout: float,
    ssl_context: Optional[ssl.SSLContext] = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ping_interval: float = 20.0,
    pong_timeout: float = 10.0,
) -> Transport:
    """Connect to ``tcp://``, ``tls://``, ``ws://`` or ``wss://`` and return the transport.

    TLS verifies the certificate and host name by default; pass ``ssl_context``
    to trust a PayServer's own certificate.
    """
    check_url(url, ssl_context)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    assert parts.hostname  # checked by check_url
    port = parts.port or DEFAULT_PORTS[scheme]
    if scheme == "tcp":
        return TcpTransport(
            parts.hostname, port, connect_timeout=connect_timeout, max_frame_size=max_frame_size
        )
    context: Optional[ssl.SSLContext] = None  # a plain ws:// URL never uses TLS
    if scheme in ("tls", "wss"):
        if ssl_context is None:
            import ssl  # only a secure URL without the caller's context needs the module

            ssl_context = ssl.create_default_context()
        context = ssl_context
    if scheme == "tls":
        assert context is not None
        return TlsTransport(
            parts.hostname,
            port,
            connect_timeout=connect_timeout,
            ssl_context=context,
            max_frame_size=max_frame_size,
        )
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return WebSocketTransport(
        f"{scheme}://{parts.netloc}{path}{query}",
        connect_timeout=connect_timeout,
        ssl_context=context,
        max_frame_size=max_frame_size,
        ping_interval=ping_interval,
        pong_timeout=pong_timeout,
    )
