"""The simulated PayServer's listeners: framed TCP and WebSocket, both at once,
plain or both in TLS.

Strategy: :class:`Simulator` owns the listening sockets, the accept threads
and the set of live connections (:mod:`payprotocol.simulator.connections`
reads, writes and injects faults; :mod:`payprotocol.simulator.engine` plays
P3). Stop closes the listeners first, then every connection, and joins each
thread with a bound. With TLS, the framed TCP side wraps each accepted socket
(the handshake runs on that connection's thread, never the accept loop) and
``websockets`` gets the same server context (:mod:`payprotocol.simulator.tls`).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Set, Union

from .config import SimulatorConfig
from .connections import JOIN_TIMEOUT, TcpConnection, WsConnection
from .engine import PayServerEngine
from .faults import FaultPlan
from .listeners import listen, peer_name
from .store import TransactionStore
from .tls import SimulatorTls

if TYPE_CHECKING:
    from websockets.sync.server import Server as WsServer
    from websockets.sync.server import ServerConnection

__all__ = ["Simulator"]

log = logging.getLogger("payprotocol.simulator")


class Simulator:
    """An embedded PayServer speaking P3 over framed TCP and WebSocket.

    ::

        with Simulator(SimulatorConfig(step_delay=0.02)) as sim:
            client = PayClient(sim.tcp_url)      # or sim.ws_url
            ...
            sim.set_faults(FaultPlan.parse(["drop-after=3"]))

    With ``tls=True`` both listeners speak TLS (framed TCP in TLS, WebSocket
    in TLS) with a certificate for ``127.0.0.1`` and ``localhost`` from a
    certificate authority made for this simulator (:class:`SimulatorTls`,
    needs ``trustme``); use :attr:`tls_url` / :attr:`wss_url`, and trust
    :attr:`ca_path` (written at once; ``ca_path=`` chooses the file) or
    :meth:`client_ssl_context`::

        with Simulator(tls=True) as sim:
            client = PayClient(sim.tls_url, ssl_context=sim.client_ssl_context())

    It serves every request of the contract (``LOGIN_MERCHANT_REQUEST``,
    ``EXECUTE_TRANSACTION_REQUEST`` with its updates, actions and response, the
    ``SUBMIT_*_REQUEST`` answers, ``ABORT_TRANSACTION_REQUEST``,
    ``AMEND_TRANSACTION_REQUEST`` and ``GET_TRANSACTION_REQUEST``) with the
    test-card rules of :mod:`payprotocol.simulator.cards`. ``store`` outlives
    :meth:`stop`/:meth:`start`; a second :meth:`start` binds the same ports.
    """

    def __init__(
        self,
        config: Optional[SimulatorConfig] = None,
        *,
        store: Optional[TransactionStore] = None,
        tls: bool = False,
        ca_path: Union[str, Path, None] = None,
    ) -> None:
        if ca_path is not None and not tls:
            raise ValueError("ca_path is for a TLS simulator (tls=True)")
        self.config = config if config is not None else SimulatorConfig()
        #: The certificate authority and server context (``None`` without TLS).
        self.tls: Optional[SimulatorTls] = SimulatorTls(ca_path) if tls else None
        self.store = store if store is not None else TransactionStore()
        self._faults = self.config.faults
        self._engine = self._create_engine()
        self._lifecycle = threading.Lock()
        self._running = False
        self._stop_event = threading.Event()
        self._tcp_listener: Optional[socket.socket] = None
        self._tcp_thread: Optional[threading.Thread] = None
        self._tcp_connections: Set[TcpConnection] = set()
        self._ws_connections: Set[WsConnection] = set()
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
        """Whether the simulator is listening (between :meth:`start` and :meth:`stop`)."""
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
        """``tcp://HOST:PORT`` of the framed TCP listener (``tls://`` with TLS)."""
        return f"{'tls' if self.tls else 'tcp'}://{self._url_host()}:{self.tcp_port}"

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT/PATH`` of the WebSocket listener (``wss://`` with TLS)."""
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{self._url_host()}:{self.ws_port}{self.config.ws_path}"

    @property
    def tls_url(self) -> str:
        """``tls://HOST:PORT`` of the framed TCP listener of a TLS simulator."""
        self._require_tls()
        return self.tcp_url

    @property
    def wss_url(self) -> str:
        """``wss://HOST:PORT/PATH`` of the WebSocket listener of a TLS simulator."""
        self._require_tls()
        return self.ws_url

    @property
    def ca_path(self) -> Path:
        """The PEM file of the certificate authority that a TLS simulator's
        clients trust (``payprotocol charge --cafile``)."""
        return self._require_tls().ca_path

    def client_ssl_context(self) -> ssl.SSLContext:
        """An ``ssl_context`` for :class:`~payprotocol.PayClient` that trusts
        this TLS simulator's certificate authority."""
        return self._require_tls().client_context()

    def _require_tls(self) -> SimulatorTls:
        if self.tls is None:
            raise RuntimeError("this simulator serves no TLS (Simulator(tls=True) does)")
        return self.tls

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
            if self.tls is not None:
                self.tls.write_ca()  # in case someone removed it since
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
            self._engine.shutdown(JOIN_TIMEOUT)
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
        listener = listen(self.config.host, port)
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
            if self.tls is not None:  # the handshake runs on the connection's thread
                sock = self.tls.server_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            connection = TcpConnection(self, self._engine, sock, peer_name(address))
            thread = threading.Thread(
                target=self._serve_tcp, args=(connection,), name="p3sim-tcp", daemon=True
            )
            with self._connections_lock:
                self._tcp_connections.add(connection)
                self._tcp_readers.add(thread)
            thread.start()

    def _serve_tcp(self, connection: TcpConnection) -> None:
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
        listener = listen(self.config.host, port)
        self._ws_port = listener.getsockname()[1]
        self._ws_server = serve(
            self._serve_ws,
            sock=listener,
            ssl=self.tls.server_context if self.tls is not None else None,
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
        connection = WsConnection(self, self._engine, ws, peer_name(ws.remote_address))
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
                self._tcp_thread.join(JOIN_TIMEOUT)
            self._tcp_listener.close()
            self._tcp_listener = None
        with self._connections_lock:
            connections = list(self._tcp_connections)
            readers = list(self._tcp_readers)
        for connection in connections:
            connection.close()
        for reader in readers:
            reader.join(JOIN_TIMEOUT)
        if self._ws_server is not None:
            # Close the connections ourselves: older websockets releases (15, on
            # Python 3.9) stop accepting at shutdown() but leave them open.
            with self._connections_lock:
                ws_connections = list(self._ws_connections)
            for ws_connection in ws_connections:
                ws_connection.close()
            self._ws_server.shutdown()
            if self._ws_thread is not None:
                self._ws_thread.join(JOIN_TIMEOUT)
            self._ws_server = None
