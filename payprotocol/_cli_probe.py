"""Telling a framed-TCP port from a WebSocket (HTTP) port, for the CLI (private).

Strategy: the two P3 transports look alike from outside (a port that accepts a
connection), and the wrong scheme fails slowly and obscurely: ``tcp://`` to a
WebSocket server gets no answer until the server's HTTP handshake times out
(10 s, then "the server closed the connection"); ``ws://`` to a framed-TCP
port says "Connection to remote host was lost". So the CLI asks the port
itself: it sends a plain HTTP request on a connection of its own and reads
the first bytes of the answer. An HTTP server answers with a status line
(``HTTP/1.1 400 ...``); a P3 framed-TCP server reads ``GET `` as a length far
above its frame cap and closes the connection, which is harmless. For
``tcp://`` the question is asked when the login has not been answered within
3 s (a PayServer answers sooner; one that does not only sees one extra
connection it refuses), so the mistake is named in about 3 s instead of 10;
for both schemes it is also asked after the connection failed.
Only ``tcp://`` and ``ws://`` are checked (TLS would need its own handshake).
"""

from __future__ import annotations

import threading
from typing import Callable, Optional
from urllib.parse import urlsplit

from ._sockets import answers_http

__all__ = ["SchemeCheck"]

_ASK_AFTER = 3.0  # s without a login answer before a tcp:// port is asked
_PROBE_TIMEOUT = 2.0  # answers_http's own bound


class SchemeCheck:
    """Names the right scheme when a ``tcp://`` URL points at a WebSocket port
    or a ``ws://`` URL at a framed-TCP port.

    Used around connecting and logging in: for ``tcp://``, a thread asks the
    port after ``ask_after`` seconds without an answer and, when it speaks
    HTTP, calls ``give_up`` (closing the client, which ends the login at once);
    :meth:`hint` then returns the sentence to add to the error.
    """

    def __init__(
        self, url: str, give_up: Callable[[], None], *, ask_after: float = _ASK_AFTER
    ) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme.lower()
        self.host = parts.hostname or ""
        self._shown_host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        try:
            self.port: Optional[int] = parts.port
        except ValueError:
            self.port = None
        self._give_up = give_up
        self._ask_after = ask_after
        self._done = threading.Event()
        self._http: Optional[bool] = None
        self._asked = False
        self.gave_up = False  # the login was ended because the port answers HTTP
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> SchemeCheck:
        if self.scheme == "tcp" and self.host and self.port:
            self._thread = threading.Thread(
                target=self._watch, name="payprotocol-scheme-check", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(_PROBE_TIMEOUT + 1)

    def _watch(self) -> None:
        if self._done.wait(self._ask_after):
            return
        self._ask()
        if self._http and not self._done.is_set():
            self.gave_up = True
            self._give_up()

    def _ask(self) -> None:
        if not self._asked and self.port:
            self._asked = True
            self._http = answers_http(self.host, self.port)

    def hint(self) -> Optional[str]:
        """After a failed connect or login: the right scheme, when the port
        shows it (``None`` when it does not, or for other schemes)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(_PROBE_TIMEOUT + 1)
        if self.scheme not in ("tcp", "ws") or not self.port:
            return None
        self._ask()
        if self.scheme == "tcp" and self._http:
            return (
                f"port {self.port} answers HTTP: it is a WebSocket server, "
                f"use ws://{self._shown_host}:{self.port}/"
            )
        if self.scheme == "ws" and self._http is False:
            return (
                f"port {self.port} does not answer HTTP: if it is the framed TCP port, "
                f"use tcp://{self._shown_host}:{self.port}"
            )
        return None
