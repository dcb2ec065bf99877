"""Transports: move one P3 message's bytes over a socket. With
:mod:`._sockets` (opening under a deadline, the TLS-safe stream) and
:mod:`._wsframes` (WebSocket frames in), the only client code that touches
sockets.

Each transport offers the same four operations: connect (in the factory),
``send(message_bytes)`` (thread safe), a blocking ``receive()`` that returns one
message's bytes, and ``close()``, which wakes a ``receive`` blocked in another
thread at once (``shutdown`` on the socket; closing a file descriptor alone does
not reliably wake a blocked ``recv``). Connecting, TLS and WebSocket
handshakes included, has one deadline (``connect_timeout``) and a
:class:`ConnectCancel` cuts it short. ``receive`` raises
:class:`ConnectionLostError` when the link ends and
:class:`ProtocolViolationError` when the peer breaks the framing rules.

Keepalive: framed TCP turns on TCP keepalive (with the tuning options the
platform has); WebSocket sends a ping after ``ping_interval`` seconds of
silence and declares the link dead when nothing, pong included, comes back
within ``pong_timeout``. The reader thread does this itself from its timed
waits for data (``poll``, never a socket timeout: TLS sockets are
non-blocking and guarded, see :mod:`._sockets`), so no extra thread is needed.

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
from typing import TYPE_CHECKING, Optional, Protocol, Tuple, Union
from urllib.parse import unquote, urlsplit

from ._sockets import ConnectAttempt, ConnectCancel, Stream
from ._wsframes import BINARY, CLOSE, PING, TEXT, WsFrameDecoder
from .errors import ConnectionLostError, ProtocolViolationError
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_frame

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_PORTS",
    "ConnectCancel",
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
    """P3 framed TCP (``tcp://``), optionally inside TLS (``tls://``).

    The connect and the TLS handshake share one deadline (``connect_timeout``)
    and a :class:`ConnectCancel` cuts them short. Inside TLS the socket is a
    :class:`Stream` (one thread in the SSL object at a time)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        cancel: Optional[ConnectCancel] = None,
    ) -> None:
        scheme = "tls" if ssl_context is not None else "tcp"
        self.description = f"{scheme}://{host}:{port}"
        self._closed = threading.Event()
        self._send_lock = threading.Lock()
        self._decoder = FrameDecoder(max_frame_size)
        self._ready: deque[bytes] = deque()
        sock: Union[socket.socket, Stream]
        with ConnectAttempt(self.description, connect_timeout, cancel) as attempt:
            try:
                raw = attempt.open(host, port, ssl_context)
            except OSError as exc:  # ssl.SSLError included: it is an OSError
                raise attempt.failure(exc) from exc
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _enable_tcp_keepalive(raw)
                if ssl_context is None:
                    _limit_send_time(raw, connect_timeout)
                    raw.settimeout(None)
                    sock = raw
                else:
                    sock = Stream(raw, connect_timeout, tls=True)
            except OSError as exc:
                raw.close()
                raise attempt.failure(exc) from exc
        self._sock = sock

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
        cancel: Optional[ConnectCancel] = None,
    ) -> None:
        super().__init__(
            host,
            port,
            connect_timeout=connect_timeout,
            ssl_context=ssl_context,
            max_frame_size=max_frame_size,
            cancel=cancel,
        )


class WebSocketTransport:
    """P3 over WebSocket (``ws://``, ``wss://``): one text message per P3 message.

    websocket-client's ``WebSocket`` does only the opening handshake, on a
    socket opened here under the connect deadline; after it, the socket is a
    :class:`Stream`, frames going out are websocket-client's ``ABNF`` and
    frames coming in go through :class:`WsFrameDecoder` (the size cap checked
    on each frame header). The reader does the keepalive from its timed waits.
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
        cancel: Optional[ConnectCancel] = None,
    ) -> None:
        self.description = safe_url(url)
        # websocket-client ignores a URL's user:password; send it as HTTP Basic
        # auth in the handshake instead, and connect to the URL without it.
        url, header = _basic_auth(url)
        self._decoder = WsFrameDecoder(max_frame_size)
        self._ready: deque[Tuple[int, bytes]] = deque()
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._last_received = time.monotonic()
        self._ping_sent_at: Optional[float] = None
        self._closed = threading.Event()
        self._send_lock = threading.Lock()
        import websocket  # here, not at module level: only a WebSocket URL needs it

        self._abnf = websocket.ABNF
        parts = urlsplit(url)
        assert parts.hostname
        port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
        with ConnectAttempt(self.description, connect_timeout, cancel) as attempt:
            try:
                sock = attempt.open(parts.hostname, port, ssl_context)
            except OSError as exc:  # ssl.SSLError included
                raise attempt.failure(exc) from exc
            # skip_utf8_validation: the codec decodes strictly and refuses bad UTF-8.
            handshaker = websocket.WebSocket(skip_utf8_validation=True)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _enable_tcp_keepalive(sock)
                sock.settimeout(attempt.remaining())  # each step; the watchdog bounds the sum
                # redirect_limit=0: a redirect would open a socket outside the deadline.
                handshaker.connect(url, header=header, socket=sock, redirect_limit=0)  # type: ignore[no-untyped-call]
                response = handshaker.handshake_response
                if response is None or response.status != 101:
                    status = "no answer" if response is None else f"status {response.status}"
                    raise websocket.WebSocketException(f"handshake refused ({status})")
                self._stream = Stream(sock, connect_timeout, tls=ssl_context is not None)
            except (OSError, websocket.WebSocketException, ConnectionLostError) as exc:
                sock.close()
                raise attempt.failure(exc) from exc

    def send(self, message: bytes) -> None:
        self._send_frame(self._abnf.OPCODE_TEXT, message)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        frame = self._abnf.create_frame(payload, opcode).format()
        with self._send_lock:
            if self._closed.is_set():
                raise ConnectionLostError("the connection is closed")
            try:
                self._stream.sendall(frame)
            except OSError as exc:
                self.close()  # part of a frame may be out: the stream cannot be trusted
                raise ConnectionLostError(f"sending failed: {exc}") from exc

    def mid_message(self) -> bool:
        """Whether part of a message (or a fragment of one) has arrived and the rest has not."""
        return self._decoder.buffered > 0

    def receive(self) -> bytes:
        while True:
            while self._ready:
                opcode, payload = self._ready.popleft()
                if opcode in (TEXT, BINARY):
                    return payload
                if opcode == PING:
                    self._send_frame(self._abnf.OPCODE_PONG, payload)
                elif opcode == CLOSE:
                    raise ConnectionLostError(self._lost_reason("the server closed the connection"))
            if self._closed.is_set():
                raise ConnectionLostError("the connection is closed")
            if self._decoder.broken is not None:  # after the good messages before it
                raise ProtocolViolationError(str(self._decoder.broken), broken_stream=True)
            try:
                chunk = self._stream.recv_within(self._keepalive_wait())
            except OSError as exc:
                raise ConnectionLostError(self._lost_reason(f"receiving failed: {exc}")) from exc
            if chunk is None:
                self._keepalive()
                continue
            if not chunk:
                raise ConnectionLostError(self._lost_reason("the server closed the connection"))
            self._last_received = time.monotonic()  # any byte proves the link alive
            self._ping_sent_at = None
            self._ready.extend(self._decoder.feed(chunk))  # ProtocolViolationError passes up

    def _lost_reason(self, reason: str) -> str:
        return "the connection is closed" if self._closed.is_set() else reason

    def _keepalive_wait(self) -> float:
        """Seconds until the keepalive has something to do."""
        if self._ping_sent_at is None:
            due = self._last_received + self._ping_interval
        else:
            due = self._ping_sent_at + self._pong_timeout
        return max(0.0, due - time.monotonic())

    def _keepalive(self) -> None:
        now = time.monotonic()
        if self._ping_sent_at is None:
            if now - self._last_received >= self._ping_interval:
                self._ping_sent_at = now
                self._send_frame(self._abnf.OPCODE_PING, b"")
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
        # A polite goodbye (status 1000) if the socket takes it at once; a sender
        # stuck on a peer that stopped reading holds the lock and gets none.
        if self._send_lock.acquire(blocking=False):
            try:
                goodbye = self._abnf.create_frame(b"\x03\xe8", self._abnf.OPCODE_CLOSE)
                self._stream.send_nowait(goodbye.format())
            finally:
                self._send_lock.release()
        self._stream.shutdown()  # wakes a receive waiting in another thread
        self._stream.close()


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
    cancel: Optional[ConnectCancel] = None,
) -> Transport:
    """Connect to ``tcp://``, ``tls://``, ``ws://`` or ``wss://`` and return the transport.

    TLS verifies the certificate and host name by default; pass ``ssl_context``
    to trust a PayServer's own certificate. The TCP connect, the TLS handshake
    and the WebSocket handshake together must finish within
    ``connect_timeout`` seconds; ``cancel.cancel()`` cuts them short.
    """
    check_url(url, ssl_context)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    assert parts.hostname  # checked by check_url
    port = parts.port or DEFAULT_PORTS[scheme]
    if scheme == "tcp":
        return TcpTransport(
            parts.hostname,
            port,
            connect_timeout=connect_timeout,
            max_frame_size=max_frame_size,
            cancel=cancel,
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
            cancel=cancel,
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
        cancel=cancel,
    )
