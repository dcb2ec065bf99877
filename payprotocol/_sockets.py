"""Sockets for the transports: opening one under a deadline, and a stream that
never lets two threads into the TLS object at once.

Strategy, opening: a connect (TCP connect, TLS handshake and, for WebSocket,
the HTTP upgrade) runs as one :class:`ConnectAttempt` with one absolute
deadline. A watchdog thread (``payprotocol-connect``, alive only while the
attempt is) shuts the socket down when the deadline passes, and
:meth:`ConnectCancel.cancel` (``PayClient.close()``) does the same at once, so
a peer that trickles its answer byte by byte cannot hold ``connect()`` (or a
reconnect attempt) past its timeout or past ``close()``. ``shutdown`` wakes
every blocking call on the socket, including a ``connect`` still waiting for
its SYN-ACK on Linux; the deadline bounds the rest. (Name resolution is not
interruptible: the deadline covers it only once it returns.)

Strategy, the stream: OpenSSL's ``SSL`` object is not meant to be used by two
threads at once, and when the reader thread read while a caller wrote, under
load a connection dropped by itself (a spurious EOF or a closed socket). The
:class:`Stream` puts the socket in non-blocking mode and makes every ``SSL``
call a short non-blocking one under one lock; threads wait for readiness with
``poll``/``select`` outside the lock. So the reader can wait for data as long
as it likes while callers write, and no two threads are ever inside OpenSSL
for the same connection. Plain sockets go through the same code (used by
WebSocket, whose reader needs timed waits for the keepalive).

Also here, so the CLI opens no socket of its own: :func:`answers_http`, the
bounded probe by which :mod:`._cli_probe` tells a WebSocket port from a
framed-TCP one.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Optional, Set, Tuple, Type, Union

from .errors import ConnectionLostError

if TYPE_CHECKING:
    import ssl

__all__ = ["ConnectAttempt", "ConnectCancel", "Stream", "answers_http"]

_RECV_SIZE = 65536
#: The reader re-tries a read after this long even when poll saw nothing: a
#: TLS write may (renegotiation) have read records into the SSL buffer.
_SAFETY_WAKE = 1.0


def _shutdown(sock: socket.socket) -> None:
    # socket.socket's own shutdown: SSLSocket.shutdown would also drop its SSL
    # object under a thread that may be using it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class ConnectCancel:
    """Cuts short every connect in progress, and refuses new ones, once
    :meth:`cancel` was called (``PayClient.close()`` calls it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._attempts: Set[ConnectAttempt] = set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            attempts = list(self._attempts)
        for attempt in attempts:
            attempt.cut("the client was closed")

    def _add(self, attempt: ConnectAttempt) -> None:
        with self._lock:
            if not self._cancelled:
                self._attempts.add(attempt)
                return
        attempt.cut("the client was closed")

    def _discard(self, attempt: ConnectAttempt) -> None:
        with self._lock:
            self._attempts.discard(attempt)


class ConnectAttempt:
    """One connect under one absolute deadline (``timeout`` seconds from now),
    cut short by the deadline or by a :class:`ConnectCancel`. Use as a context
    manager around the whole connect; :meth:`watch` each socket it opens."""

    def __init__(
        self, description: str, timeout: float, cancel: Optional[ConnectCancel] = None
    ) -> None:
        self.description = description
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self._cancel = cancel
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._why: Optional[str] = None  # set once cut
        self._done = threading.Event()
        self._watchdog = threading.Thread(
            target=self._watch_deadline, name="payprotocol-connect", daemon=True
        )

    def __enter__(self) -> ConnectAttempt:
        self._watchdog.start()
        if self._cancel is not None:
            self._cancel._add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._done.set()  # under the lock: no cut after this
        if self._cancel is not None:
            self._cancel._discard(self)
        self._watchdog.join(1.0)

    def _watch_deadline(self) -> None:
        if not self._done.wait(max(0.0, self.deadline - time.monotonic())):
            self.cut(f"no connection within the timeout of {self.timeout:g} s")

    def cut(self, why: str) -> None:
        """End the attempt now: shut the socket down (wakes its blocked call)."""
        with self._lock:
            if self._done.is_set() or self._why is not None:
                return
            self._why = why
            sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def remaining(self) -> float:
        """Seconds left (for the socket timeout of each step); raises once cut."""
        self.check()
        return max(0.001, self.deadline - time.monotonic())

    def check(self) -> None:
        if self._why is not None:
            raise ConnectionLostError(f"cannot connect to {self.description}: {self._why}")

    def watch(self, sock: socket.socket) -> None:
        """Make ``sock`` the one a cut shuts down (shut at once if cut already)."""
        with self._lock:
            self._sock = sock
            cut = self._why is not None
        if cut:
            _shutdown(sock)

    def failure(self, exc: BaseException) -> ConnectionLostError:
        """The error to raise for ``exc`` (the cut's reason, when it was cut)."""
        reason = self._why if self._why is not None else str(exc) or type(exc).__name__
        return ConnectionLostError(f"cannot connect to {self.description}: {reason}")

    def open(
        self, host: str, port: int, ssl_context: Optional[ssl.SSLContext] = None
    ) -> socket.socket:
        """A TCP connection to ``host:port`` (inside TLS with ``ssl_context``,
        the handshake done), its timeout the time left. Raises ``OSError``."""
        last: Optional[OSError] = None
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM
        ):
            sock = socket.socket(family, kind, proto)
            self.watch(sock)
            try:
                sock.settimeout(self.remaining())
                sock.connect(address)
            except (OSError, ConnectionLostError) as exc:
                sock.close()
                self.check()
                last = exc if isinstance(exc, OSError) else OSError(str(exc))
                continue
            break
        else:
            raise last or OSError(f"no address for {host}")
        if ssl_context is None:
            return sock
        try:
            secure = ssl_context.wrap_socket(
                sock, server_hostname=host, do_handshake_on_connect=False
            )
        except OSError:
            sock.close()
            raise
        self.watch(secure)  # same descriptor; the plain object is detached now
        try:
            secure.settimeout(self.remaining())
            secure.do_handshake()
        except BaseException:
            secure.close()
            raise
        return secure


def _wait(sock: socket.socket, write: bool, timeout: Optional[float]) -> bool:
    """Wait until ``sock`` is readable (or writable); False at the timeout.
    Raises ``OSError`` when ``close()`` has closed the socket meanwhile."""
    fd = sock.fileno()
    if fd < 0:
        raise OSError(errno.EBADF, "the socket is closed")
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT if write else select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1)))
    wanted = [fd]  # pragma: no cover - Windows has no poll
    if write:
        return any(select.select([], wanted, wanted, timeout))
    return any(select.select(wanted, [], wanted, timeout))


class Stream:
    """A connected socket (plain or TLS) in non-blocking mode: a reader waiting
    for data and writers sending, each ``SSL`` call under one lock.

    ``recv_within`` and ``sendall`` raise ``OSError`` (``ssl.SSLError`` is one);
    ``shutdown`` wakes a thread waiting in ``recv_within`` at once."""

    def __init__(self, sock: socket.socket, send_limit: float, *, tls: bool) -> None:
        self.sock = sock
        self._send_limit = send_limit
        self._lock = threading.Lock()
        want_read: Tuple[Type[BaseException], ...] = (BlockingIOError,)
        want_write: Tuple[Type[BaseException], ...] = ()
        if tls:
            import ssl  # loaded already: the socket is an SSLSocket

            want_read = (BlockingIOError, ssl.SSLWantReadError)
            want_write = (ssl.SSLWantWriteError,)
        self._want_read = want_read
        self._want_write = want_write
        sock.setblocking(False)

    def recv(self, size: int = _RECV_SIZE) -> bytes:
        """Block until some bytes arrive; ``b""`` at the end of the stream."""
        data = self.recv_within(None)
        assert data is not None
        return data

    def recv_within(self, timeout: Optional[float]) -> Optional[bytes]:
        """The next bytes, ``b""`` at the end of the stream, None after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            write = False
            with self._lock:
                try:
                    return self.sock.recv(_RECV_SIZE)
                except self._want_read:
                    pass
                except self._want_write:  # TLS may need to write to read
                    write = True
            wait = _SAFETY_WAKE
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = min(wait, left)
            _wait(self.sock, write, wait)

    def sendall(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Send every byte; ``TimeoutError`` after ``send_limit`` s without progress."""
        view = memoryview(data)
        deadline = time.monotonic() + self._send_limit
        while view:
            write = True
            with self._lock:
                try:
                    sent = self.sock.send(view)  # retried with the same bytes, as TLS requires
                except self._want_write:
                    sent = 0
                except self._want_read:  # TLS may need to read to write
                    sent, write = 0, False
            if sent:
                view = view[sent:]
                deadline = time.monotonic() + self._send_limit
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no progress sending for {self._send_limit:g} s")
            _wait(self.sock, write, min(left, _SAFETY_WAKE) if not write else left)

    def send_nowait(self, data: bytes) -> None:
        """Send ``data`` if the socket takes it at once (a polite goodbye); else drop it."""
        with contextlib.suppress(OSError), self._lock:
            self.sock.send(data)

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        _shutdown(self.sock)

    def close(self) -> None:
        with self._lock:  # never while another thread is inside an SSL call
            self.sock.close()


def answers_http(host: str, port: int, timeout: float = 2.0) -> Optional[bool]:
    """True when ``host:port`` answers an HTTP request with an HTTP status line,
    False when it answers something else or closes without a word, ``None`` when
    it cannot be reached or stays silent for ``timeout`` s (the CLI's scheme
    check, :mod:`._cli_probe`)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while len(head) < 5:
                chunk = sock.recv(5 - len(head))
                if not chunk:
                    break
                head += chunk
    except socket.timeout:
        return None
    except ConnectionResetError:
        return False  # it hung up on an HTTP request: not an HTTP server
    except OSError:
        return None
    return head == b"HTTP/"
