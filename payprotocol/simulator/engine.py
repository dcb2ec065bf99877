"""The simulated PayServer's logic: sessions, the reader registry, requests
(p3-protocol.md sections 3 to 7). No sockets here.

Strategy: a :class:`Session` per connection turns each incoming payload into
outgoing :class:`~payprotocol.models.Message` objects handed to an
:class:`~.outbox.Outbox` (the connection layer owns bytes, faults and
sockets). A plain request (login, lookup, abort, an action answer) is answered
on the calling thread. A transaction (execute or amend) is a run of
:mod:`payprotocol.simulator.runs`, played on its own thread because it lives
in time; :class:`PayServerEngine` keeps the shared state around the sessions:
which run holds which reader, the run threads, the shutdown flag, the store.

Timing and state that clients can observe:

* an abort is accepted only while the latest update said ``abortable: true``;
  the run checks the abort flag at every step boundary, so an accepted abort
  always ends the transaction ``ABORTED``;
* the device is freed *before* the final response is sent, so a client may
  start the next payment as soon as it has the response;
* the store holds every transaction from its creation and gets the outcome
  before the final response leaves, so a lookup never lags the response;
* when the owning connection goes away, the run keeps going (the shopper is
  still at the reader): an action it can no longer get answered ends it
  ``ABORTED``, except a signature, which becomes "sign on the receipt";
* on shutdown (``Simulator.stop``/``restart``) delays are skipped and the
  outcome is decided at once: a card not yet presented means ``ABORTED``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Set, Union

from ..codec import decode_parsed, parse_message
from ..errors import ProtocolViolationError
from ..models import (
    ActionType,
    Device,
    GetTransactionRequest,
    GetTransactionResponse,
    LoginMerchantRequest,
    LoginMerchantResponse,
    Message,
    Status,
)
from ..naming import response_type
from .config import SimulatedDevice, SimulatorConfig
from .execute import ExecuteRun
from .outbox import Outbox, Refusal, error_message
from .runs import AmendRun, TransactionRun
from .store import TransactionStore
from .validation import REQUEST_TYPES, InvalidRequest, validate_request

__all__ = ["PayServerEngine", "Session"]

log = logging.getLogger("payprotocol.simulator")

_ANSWERS = {
    "SUBMIT_SIGNATURE_REQUEST": ActionType.SIGNATURE,
    "SUBMIT_APPLICATION_SELECTION_REQUEST": ActionType.APPLICATION_SELECTION,
    "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST": ActionType.CREDIT_DEBIT_SELECTION,
    "SUBMIT_DCC_SELECTION_REQUEST": ActionType.DCC_SELECTION,
}
_DEVICE_REQUESTS = frozenset(
    {"EXECUTE_TRANSACTION_REQUEST", "ABORT_TRANSACTION_REQUEST", *_ANSWERS}
)


class PayServerEngine:
    """The shared state of the simulated PayServer: readers, running
    transactions, the store. Sessions (connections) come and go around it."""

    def __init__(
        self,
        config: SimulatorConfig,
        store: TransactionStore,
    ) -> None:
        self.config = config
        self.store = store
        self.devices: Dict[str, SimulatedDevice] = {d.resource: d for d in config.devices}
        self._lock = threading.Lock()
        self._runs: Dict[str, ExecuteRun] = {}  # resource -> running execute
        self._threads: Set[threading.Thread] = set()
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        """True from :meth:`shutdown` until :meth:`resume`."""
        return self._stopping.is_set()

    def wait_stopping(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, cut short by :meth:`shutdown`; True if stopping."""
        return self._stopping.wait(seconds)

    def open_session(self, outbox: Outbox, peer: str) -> Session:
        """A new connection arrived."""
        return Session(self, outbox, peer)

    def resume(self) -> None:
        """Accept transactions again after :meth:`shutdown`."""
        self._stopping.clear()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Decide every running transaction now and wait for the runs to end."""
        self._stopping.set()
        with self._lock:
            runs = list(self._runs.values())
            threads = list(self._threads)
        for run in runs:
            run.wake()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def busy(self) -> bool:
        """True while any execute or amend is being played."""
        with self._lock:
            return bool(self._runs or self._threads)

    def running(self, resource: str) -> Optional[ExecuteRun]:
        """The execute that holds the reader ``resource`` now, if any."""
        with self._lock:
            return self._runs.get(resource)

    def wake_runs_of(self, session: Session) -> None:
        """The session's connection closed: let its runs notice at once."""
        with self._lock:
            runs = [run for run in self._runs.values() if run.outbox is session.outbox]
        for run in runs:
            run.wake()

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        """Play ``target`` on a daemon thread that :meth:`shutdown` waits for."""

        def body() -> None:
            try:
                target()
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=body, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def claim(self, run: ExecuteRun) -> None:
        """Make ``run`` the one transaction of its reader, or refuse with
        ``DEVICE_BUSY`` (or ``DEVICE_NOT_CONNECTED`` while shutting down)."""
        with self._lock:
            if self._stopping.is_set():
                raise Refusal("DEVICE_NOT_CONNECTED", "the PayServer is shutting down")
            if run.resource in self._runs:
                raise Refusal("DEVICE_BUSY", f"a transaction already runs on {run.resource}")
            self._runs[run.resource] = run

    def release(self, run: TransactionRun) -> None:
        """Free the reader ``run`` held (a no-op if it holds none)."""
        with self._lock:
            if run.resource is not None and self._runs.get(run.resource) is run:
                del self._runs[run.resource]


class Session:
    """One connection's conversation: its login and its requests."""

    def __init__(self, engine: PayServerEngine, outbox: Outbox, peer: str) -> None:
        self.engine = engine
        self.outbox = outbox
        self.peer = peer
        self.merchant: Optional[str] = None

    @property
    def config(self) -> SimulatorConfig:
        return self.engine.config

    def close(self) -> None:
        """The connection ended; transactions it started carry on."""
        self.engine.wake_runs_of(self)

    # --- dispatch ----------------------------------------------------------

    def handle(self, payload: Union[bytes, str]) -> None:
        """Handle one incoming message.

        Raises :class:`ProtocolViolationError` when the payload is not a UTF-8
        JSON object: the connection layer then closes this connection only.
        """
        raw = parse_message(payload)
        message_type = raw.get("type")
        tag = raw.get("tag")
        resource = raw.get("resource")
        if not isinstance(message_type, str) or not message_type:
            self._send_error(
                "UNKNOWN_REQUEST",
                _str_or_none(tag),
                None,
                "INVALID_REQUEST",
                "type is required (a message type string)",
            )
            return
        if not isinstance(tag, str) or not tag:
            self._send_error(
                message_type,
                None,
                _str_or_none(resource),
                "INVALID_REQUEST",
                "tag is required (a unique string per request)",
            )
            return
        if resource is not None and not isinstance(resource, str):
            self._send_error(
                message_type, tag, None, "INVALID_REQUEST", "resource must be a string or null"
            )
            return
        try:
            self._dispatch(raw, message_type, tag, resource)
        except Refusal as refusal:
            self._send_error(message_type, tag, resource, refusal.error_type, refusal.message)
        except Exception:  # a simulator bug must not kill the connection silently
            log.exception("simulator failed on %s (tag %s)", message_type, tag)
            self._send_error(message_type, tag, resource, "INTERNAL_ERROR", "simulator error")

    def _dispatch(
        self,
        raw: Dict[str, Any],
        message_type: str,
        tag: str,
        resource: Optional[str],
    ) -> None:
        if message_type not in REQUEST_TYPES:
            raise Refusal("UNKNOWN_MESSAGE_TYPE", f"unknown request type {message_type!r}")
        if message_type != "LOGIN_MERCHANT_REQUEST" and self.merchant is None:
            raise Refusal("NOT_LOGGED_IN", "send LOGIN_MERCHANT_REQUEST first")
        try:
            validate_request(raw)
            message = decode_parsed(raw)
        except InvalidRequest as exc:
            raise Refusal("INVALID_REQUEST", str(exc)) from None
        except ProtocolViolationError as exc:
            raise Refusal("INVALID_REQUEST", str(exc)) from None
        device = None
        if message_type in _DEVICE_REQUESTS:
            if resource is None:
                raise Refusal("INVALID_REQUEST", "resource is required (a device path)")
            device = self.engine.devices.get(resource)
            if device is None:
                raise Refusal("UNKNOWN_RESOURCE", f"no device {resource!r}")
        if message_type == "LOGIN_MERCHANT_REQUEST":
            self._login(message)
        elif message_type == "EXECUTE_TRANSACTION_REQUEST":
            assert device is not None
            self._execute(message, device)
        elif message_type == "ABORT_TRANSACTION_REQUEST":
            self._abort(message)
        elif message_type in _ANSWERS:
            self._answer(message, _ANSWERS[message_type])
        elif message_type == "AMEND_TRANSACTION_REQUEST":
            self._amend(message)
        elif message_type == "GET_TRANSACTION_REQUEST":
            self._get_transaction(message)

    def _send_error(
        self,
        request_type: str,
        tag: Optional[str],
        resource: Optional[str],
        error_type: str,
        text: str,
    ) -> None:
        self.outbox.send(error_message(request_type, tag, resource, error_type, text))

    def _respond(self, request: Message, data: Any) -> None:
        self.outbox.send(
            Message(response_type(request.type), request.tag, request.resource, data, Status.OK)
        )

    # --- LOGIN_MERCHANT_REQUEST ---------------------------------------------

    def _login(self, message: Message) -> None:
        data: LoginMerchantRequest = message.data
        merchants = self.config.merchants
        known = (
            merchants.get(data.merchant_identifier) == data.merchant_secret
            if merchants
            else bool(data.merchant_secret)
        )
        if not known:
            self.merchant = None  # a failed login also ends an earlier one
            raise Refusal("AUTHENTICATION_FAILED", "unknown merchant or wrong secret")
        self.merchant = data.merchant_identifier
        log.info("%s logged in as merchant %s", self.peer, self.merchant)
        devices = [
            Device(resource=d.resource, name=d.name, identifier=d.identifier, type=d.type,
                   comlink=d.comlink)
            for d in self.config.devices
        ]  # fmt: skip
        self._respond(
            message,
            LoginMerchantResponse(devices=devices, information={"location": self.config.location}),
        )

    # --- EXECUTE_TRANSACTION_REQUEST and AMEND_TRANSACTION_REQUEST ----------

    def _execute(self, message: Message, device: SimulatedDevice) -> None:
        assert self.merchant is not None and message.tag is not None
        ExecuteRun.prepare(
            self.engine, self.outbox, message.tag, device, message.data, self.merchant
        ).start()

    def _amend(self, message: Message) -> None:
        assert self.merchant is not None and message.tag is not None
        AmendRun.prepare(self.engine, self.outbox, message.tag, message.data, self.merchant).start()

    # --- ABORT_TRANSACTION_REQUEST ------------------------------------------

    def _abort(self, message: Message) -> None:
        assert message.resource is not None
        run = self.engine.running(message.resource)
        if run is None or run.merchant != self.merchant:
            raise Refusal("TRANSACTION_NOT_FOUND", f"no transaction runs on {message.resource}")
        # The OK goes out before the run can send its ABORTED messages.
        run.abort(lambda: self._respond(message, None))

    # --- SUBMIT_*_REQUEST ----------------------------------------------------

    def _answer(self, message: Message, action: ActionType) -> None:
        assert message.resource is not None
        run = self.engine.running(message.resource)
        if run is None or run.merchant != self.merchant:
            raise Refusal("NO_PENDING_ACTION", f"no transaction runs on {message.resource}")
        run.answer(action, message.data, lambda: self._respond(message, None))

    # --- GET_TRANSACTION_REQUEST ----------------------------------------------

    def _get_transaction(self, message: Message) -> None:
        assert self.merchant is not None
        request: GetTransactionRequest = message.data
        transaction = self.engine.store.lookup(
            self.merchant,
            transaction_identifier=request.transaction_identifier,
            custom_identifier=request.custom_identifier,
        )
        if transaction is None:
            wanted = request.transaction_identifier or request.custom_identifier
            raise Refusal("TRANSACTION_NOT_FOUND", f"no transaction {wanted!r}")
        self._respond(message, GetTransactionResponse(transaction=transaction))


def _str_or_none(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None
