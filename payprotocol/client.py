"""``PayClient``: the blocking P3 client with callbacks.

Threads (see architecture.md, rules 1-11):

* **caller threads** call the public methods. Each request gets a slot in the
  tag table (registered *before* the send, removed in ``finally``) and blocks
  on the slot's own ``Event``; nothing ever wakes all waiters.
* **the reader thread** only receives, decodes and routes: a response
  completes its slot; an update or action re-arms its transaction's sliding
  timeout and is queued for the dispatcher; a response nobody waits for any
  more goes to ``on_late_result``. When the connection ends, every slot fails
  at once.
* **the dispatcher thread** runs user callbacks in arrival order, so a slow
  callback never delays reading. Callbacks may answer actions, abort and look
  up transactions (those only need the reader); starting a transaction from a
  callback would wait for callbacks that cannot run, so it raises
  :class:`CallbackDeadlockError` instead.

No lock is held while user code runs; sends are serialized by the transport.
"""

from __future__ import annotations

import base64
import enum
import functools
import logging
import os
import queue
import random
import ssl
import threading
import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

import attrs

from . import codec
from . import models as m
from .errors import (
    ConnectionLostError,
    PayProtocolError,
    ProtocolViolationError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from .framing import DEFAULT_MAX_FRAME_SIZE
from .journal import Journal, JournalError, PendingOutcome
from .transport import Transport, open_transport, safe_url

__all__ = [
    "CallbackDeadlockError",
    "ConnectionState",
    "PayClient",
    "ReconnectPolicy",
    "RecoveredOutcome",
]

logger = logging.getLogger("payprotocol")
wire_logger = logging.getLogger("payprotocol.wire")

DeviceRef = Union[m.Device, str]
Amount = Union[Decimal, int, str]
UpdateCallback = Callable[[Any], None]
ActionCallback = Callable[[m.ExecuteTransactionAction], None]
LateResultCallback = Callable[[m.Message], None]
ErrorHook = Callable[[BaseException, Any], None]
StateCallback = Callable[["ConnectionState"], None]
T = TypeVar("T")

# Requests whose final response decides money: a lost response means "outcome unknown".
_TRANSACTION_TYPES = frozenset({"EXECUTE_TRANSACTION_REQUEST", "AMEND_TRANSACTION_REQUEST"})
_JOIN_TIMEOUT = 2.0
_CALLBACK_DRAIN_TIMEOUT = 1.0


class ConnectionState(str, enum.Enum):
    """The client's connection, as reported to ``on_connection_state``."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@attrs.frozen
class ReconnectPolicy:
    """Opt-in automatic reconnect: exponential backoff with jitter, capped.

    The n-th wait is ``min(max_delay, initial_delay * multiplier**n)``, scaled by
    a random factor in ``[1 - jitter, 1 + jitter]`` so that many POS terminals
    do not hammer a restarted PayServer in step. After reconnecting, the client
    logs in again with the last credentials. It applies to connections lost
    after :meth:`PayClient.connect` succeeded; a failing first ``connect``
    raises, so the caller knows at once. Requests made while disconnected
    fail fast with :class:`ConnectionLostError` (use ``wait_connected``); a
    transaction is never re-sent.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: Optional[int] = None

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay, self.initial_delay * self.multiplier**attempt)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


@attrs.frozen
class RecoveredOutcome:
    """What :meth:`PayClient.recover` found for one pending journal entry.

    ``transaction`` is the server's record (``None`` when it has none: the
    request never became a transaction, so no money moved); ``resolved`` says
    whether the outcome is now final in the journal."""

    pending: PendingOutcome
    transaction: Optional[m.Transaction]
    resolved: bool


class CallbackDeadlockError(PayProtocolError, RuntimeError):
    """A call made from a callback would wait for callbacks that cannot run
    (for example starting a transaction from ``on_update``)."""


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@attrs.define(eq=False)
class _Slot:
    """One request in flight: its own event, its outcome and its callbacks."""

    tag: str
    request_type: str
    resource: Optional[str]
    custom_identifier: Optional[str]
    on_update: Optional[UpdateCallback]
    on_action: Optional[ActionCallback]
    response: Optional[m.Message] = None
    failure: Optional[BaseException] = None
    sent: bool = False
    created: float = attrs.field(factory=time.monotonic)
    last_activity: float = attrs.field(factory=time.monotonic)
    # Set by the dispatcher once the callbacks queued before the final response ran.
    callbacks_done: Optional[threading.Event] = None
    # A one-shot latch on one bare lock, held until the outcome is in: cheaper
    # than threading.Event (no Condition, no second wake-up of the waiter).
    _ready: threading.Lock = attrs.field(factory=_held_lock, alias="_ready")
    _guard: threading.Lock = attrs.field(factory=threading.Lock, alias="_guard")
    _done: bool = attrs.field(default=False, alias="_done")

    @property
    def is_transaction(self) -> bool:
        return self.request_type in _TRANSACTION_TYPES

    @property
    def response_type(self) -> str:
        """The only message type that completes this request (P3 naming rule)."""
        return codec.response_type(self.request_type)

    @property
    def done(self) -> bool:
        return self._done

    def finish(
        self, response: Optional[m.Message] = None, failure: Optional[BaseException] = None
    ) -> bool:
        """Record the outcome once (atomically: a response and a timeout may race);
        False when the slot already had one."""
        with self._guard:
            if self._done:
                return False
            self.response, self.failure, self._done = response, failure, True
        self._ready.release()
        return True

    def wait(self, timeout: float) -> bool:
        """Block until the outcome is in or ``timeout`` passes; True when it is in."""
        if self._done:
            return True
        if self._ready.acquire(timeout=max(timeout, 0.0)):
            self._ready.release()  # stays open for any later wait
            return True
        return self._done


def _resource_of(device: DeviceRef) -> str:
    return device.resource if isinstance(device, m.Device) else device


def _exact(amount: Amount, what: str = "amount") -> Decimal:
    """Money is exact: Decimal, int or a decimal string; a float is refused."""
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int, str)):
        raise TypeError(f"{what} must be a Decimal (or int/str), not {type(amount).__name__}")
    value = Decimal(amount)
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {amount!r}")
    return value


def _mismatch(pending: PendingOutcome, found: m.Transaction) -> Optional[str]:
    """Why ``found`` is not the transaction ``pending`` asked for, or None."""
    asked = pending.parameters.get("transactionParameters")
    if not isinstance(asked, dict):
        return None
    checks: List[Tuple[str, Any, Any]] = [("type", asked.get("type"), found.type)]
    if pending.message_type == "EXECUTE_TRANSACTION_REQUEST":
        checks.append(("amount", asked.get("amount"), found.amount))
    else:
        reference = asked.get("referencedTransactionIdentifier")
        checks.append(("reference", reference, found.referenced_transaction_identifier))
    for name, wanted, got in checks:
        same = wanted == got if isinstance(got, Decimal) else str(wanted) == str(got)
        if wanted is not None and got is not None and not same:
            return f"transaction {found.transaction_identifier} has {name} {got}, not {wanted}"
    return None


class PayClient:
    """A synchronous client of one PayServer connection.

    ``url`` is ``tcp://host:port``, ``tls://host:port``, ``ws://host:port/path`` or
    ``wss://host:port/path``. ``timeout`` bounds plain requests (and connecting);
    transactions use a sliding ``transaction_timeout`` re-armed by every update
    or action, under ``transaction_max_duration``. Use it as a context manager,
    or call :meth:`connect` and :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        transaction_timeout: float = 120.0,
        transaction_max_duration: float = 900.0,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        reconnect: Optional[ReconnectPolicy] = None,
        journal: Union[Journal, str, os.PathLike[str], None] = None,
        on_callback_error: Optional[ErrorHook] = None,
        wire_trace: bool = False,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.transaction_timeout = transaction_timeout
        self.transaction_max_duration = transaction_max_duration
        self._ssl_context = ssl_context
        self._max_frame_size = max_frame_size
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._reconnect_policy = reconnect
        self._journal = (
            journal if isinstance(journal, Journal) or journal is None else Journal(journal)
        )
        self._owns_journal = journal is not None and not isinstance(journal, Journal)
        self._on_callback_error = on_callback_error
        self._wire_trace = wire_trace
        self._lock = threading.Lock()  # guards the tag table, callback lists, lifecycle
        self._slots: Dict[str, _Slot] = {}
        self._update_callbacks: List[UpdateCallback] = []
        self._action_callbacks: List[ActionCallback] = []
        self._late_callbacks: List[LateResultCallback] = []
        self._state_callbacks: List[StateCallback] = []
        self._transport: Optional[Transport] = None
        self._reader: Optional[threading.Thread] = None
        self._dispatcher: Optional[threading.Thread] = None
        self._reconnector: Optional[threading.Thread] = None
        self._jobs: queue.SimpleQueue[Optional[Callable[[], None]]] = queue.SimpleQueue()
        self._state = ConnectionState.DISCONNECTED
        self._usable = threading.Event()  # set while CONNECTED: requests may be sent
        self._stopping = threading.Event()
        self._closed = False
        self._connection_error: Optional[BaseException] = None
        # Kept in memory only, to log in again after a reconnect.
        self._credentials: Optional[Tuple[str, str, Union[m.ProviderMode, str]]] = None

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self) -> PayClient:
        if self._transport is None:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PayClient {safe_url(self.url)} {self._state.value}>"

    @property
    def connected(self) -> bool:
        """True while the connection is up and requests can be sent."""
        return self._state is ConnectionState.CONNECTED

    @property
    def state(self) -> ConnectionState:
        """The connection's state; changes are reported to ``on_connection_state``."""
        return self._state

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the client is connected (and, after
        a reconnect, logged in again). Returns whether it is."""
        return self._usable.wait(timeout)

    def connect(self) -> None:
        """Open the connection and start the reader and dispatcher threads."""
        with self._lock:
            if self._closed:
                raise ConnectionLostError("the client is closed")
            if self._transport is not None:
                raise RuntimeError("already connected")
        self._set_state(ConnectionState.CONNECTING)
        try:
            transport = self._open_transport()
        except BaseException:
            self._set_state(ConnectionState.DISCONNECTED)
            raise
        self._install(transport)
        self._set_state(ConnectionState.CONNECTED)

    def _open_transport(self) -> Transport:
        return open_transport(
            self.url,
            connect_timeout=self.timeout,
            ssl_context=self._ssl_context,
            max_frame_size=self._max_frame_size,
            ping_interval=self._ping_interval,
            pong_timeout=self._pong_timeout,
        )

    def _install(self, transport: Transport) -> None:
        """Make ``transport`` the connection and start a reader for it."""
        reader = threading.Thread(
            target=self._read_loop, args=(transport,), name="payprotocol-reader", daemon=True
        )
        with self._lock:
            if self._closed:  # a reconnect that finished connecting after close()
                transport.close()
                raise ConnectionLostError("the client is closed")
            self._transport = transport
            self._connection_error = None
            self._reader = reader
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch_loop, name="payprotocol-dispatcher", daemon=True
                )
                self._dispatcher.start()
        reader.start()
        logger.info("connected to %s", transport.description)

    def _set_state(self, state: ConnectionState) -> None:
        with self._lock:
            self._set_state_locked(state)

    def _set_state_locked(self, state: ConnectionState) -> None:
        """Change the state; the caller holds ``self._lock``, so a check and the
        change it depends on happen together. Callbacks are queued, not run."""
        if self._state is state or self._state is ConnectionState.CLOSED:
            return
        self._state = state
        if state is ConnectionState.CONNECTED:
            self._usable.set()
        else:
            self._usable.clear()
        logger.info("connection state: %s", state.value)
        for callback in self._state_callbacks:
            self._jobs.put(functools.partial(self._run_callback, callback, state))

    def close(self) -> None:
        """Close the connection; every waiting call raises at once. Idempotent.

        Stops reconnecting, wakes the reader, joins the threads (never from
        themselves) and closes a journal the client opened itself."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            transport, reader = self._transport, self._reader
        self._stopping.set()
        if transport is not None:
            transport.close()  # wakes the reader's blocked receive
        current = threading.current_thread()
        for thread in (self._reconnector, reader):
            if thread is not None and thread is not current:
                thread.join(_JOIN_TIMEOUT)
        with self._lock:
            transport = self._transport  # a reconnect may have installed a new one
        if transport is not None:
            transport.close()
        self._fail_all(ConnectionLostError("the client was closed"))
        self._set_state(ConnectionState.CLOSED)
        self._jobs.put(None)  # the dispatcher runs what is queued, then stops
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not current:
            dispatcher.join(_JOIN_TIMEOUT)
            if dispatcher.is_alive():
                logger.warning("a callback is still running %.0f s after close()", _JOIN_TIMEOUT)
        if self._journal is not None and self._owns_journal:
            self._journal.close()
        logger.info("closed the connection to %s", safe_url(self.url))

    # --- reconnect -----------------------------------------------------------

    def _connection_ended(self, transport: Transport, failure: BaseException) -> None:
        """Called by a reader whose connection ended: fail every wait, maybe reconnect."""
        with self._lock:
            if self._transport is not transport:
                return
            self._connection_error = failure
            closing = self._closed
            start_reconnect = (
                not closing
                and self._reconnect_policy is not None
                and (self._reconnector is None or not self._reconnector.is_alive())
            )
            if start_reconnect:
                self._reconnector = threading.Thread(
                    target=self._reconnect_loop, name="payprotocol-reconnect", daemon=True
                )
        if not closing:
            logger.warning("connection to %s lost: %s", transport.description, failure)
        self._fail_all(failure)
        if closing:
            return
        self._set_state(ConnectionState.DISCONNECTED)
        if start_reconnect:
            assert self._reconnector is not None
            self._reconnector.start()

    def _reconnect_loop(self) -> None:
        policy = self._reconnect_policy
        assert policy is not None
        attempt = 0
        while not self._stopping.is_set():
            self._set_state(ConnectionState.RECONNECTING)
            if policy.max_attempts is not None and attempt >= policy.max_attempts:
                logger.error("giving up reconnecting after %d attempts", attempt)
                self._set_state(ConnectionState.DISCONNECTED)
                return
            if self._stopping.wait(policy.delay(attempt)):
                return
            attempt += 1
            try:
                transport = self._open_transport()
            except ConnectionLostError as exc:
                logger.info("reconnect attempt %d failed: %s", attempt, exc)
                continue
            try:
                self._install(transport)
            except ConnectionLostError:  # closed meanwhile
                return
            if self._credentials is not None:
                try:
                    self._login(*self._credentials, timeout=None, internal=True)
                except ServerError as exc:
                    logger.error("logging in again after a reconnect failed: %s", exc)
                    transport.close()
                    self._set_state(ConnectionState.DISCONNECTED)
                    return
                except PayProtocolError as exc:
                    logger.info("reconnect attempt %d failed while logging in: %s", attempt, exc)
                    transport.close()  # its reader ends; the next attempt starts afresh
                    continue
            with self._lock:
                # A connection that died during the login is the next attempt's job.
                if self._transport is transport and self._connection_error is None:
                    self._reconnector = None
                    self._set_state_locked(ConnectionState.CONNECTED)
                    return

    # --- callbacks ---------------------------------------------------------

    def on_update(self, callback: UpdateCallback) -> Callable[[], None]:
        """Call ``callback`` with every update (``EXECUTE_TRANSACTION_UPDATE``,
        ``AMEND_TRANSACTION_UPDATE``, or a :class:`RawMessage` of an unknown type)
        of every request. Returns a function that unsubscribes it."""
        return self._subscribe(self._update_callbacks, callback)

    def on_action(self, callback: ActionCallback) -> Callable[[], None]:
        """Call ``callback`` with every ``EXECUTE_TRANSACTION_ACTION``; answer it
        with ``submit_signature`` and friends (allowed from the callback)."""
        return self._subscribe(self._action_callbacks, callback)

    def on_late_result(self, callback: LateResultCallback) -> Callable[[], None]:
        """Call ``callback`` with each response nobody waits for any more (it came
        after a timeout, or twice). Such a response may prove a payment happened."""
        return self._subscribe(self._late_callbacks, callback)

    def on_connection_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` with each :class:`ConnectionState` change (connecting,
        connected, disconnected, reconnecting, closed)."""
        return self._subscribe(self._state_callbacks, callback)

    def _subscribe(self, callbacks: List[Any], callback: Any) -> Callable[[], None]:
        with self._lock:
            callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in callbacks:
                    callbacks.remove(callback)

        return unsubscribe

    # --- public requests -----------------------------------------------------

    def login(
        self,
        merchant_identifier: str,
        merchant_secret: str,
        provider_mode: Union[m.ProviderMode, str] = m.ProviderMode.TEST,
        *,
        timeout: Optional[float] = None,
    ) -> m.LoginMerchantResponse:
        """Log the merchant in on this connection (``LOGIN_MERCHANT_REQUEST``).

        With a reconnect policy, the credentials are kept in memory (never
        written anywhere) to log in again after a reconnect."""
        response = self._login(merchant_identifier, merchant_secret, provider_mode, timeout)
        if self._reconnect_policy is not None:
            with self._lock:
                self._credentials = (merchant_identifier, merchant_secret, provider_mode)
        return response

    def _login(
        self,
        merchant_identifier: str,
        merchant_secret: str,
        provider_mode: Union[m.ProviderMode, str],
        timeout: Optional[float],
        *,
        internal: bool = False,
    ) -> m.LoginMerchantResponse:
        data = m.LoginMerchantRequest(provider_mode, merchant_identifier, merchant_secret)
        response = self._call("LOGIN_MERCHANT_REQUEST", data, timeout=timeout, internal=internal)
        return self._data(response, m.LoginMerchantResponse)

    def execute_transaction(
        self,
        device: DeviceRef,
        parameters: m.TransactionParameters,
        *,
        mode: Optional[Union[m.Mode, str]] = None,
        process_parameters: Optional[m.ProcessParameters] = None,
        session_identifier: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        timeout: Optional[float] = None,
    ) -> m.Transaction:
        """Run a card transaction (``EXECUTE_TRANSACTION_REQUEST``) and block until
        its ``EXECUTE_TRANSACTION_RESPONSE``. A declined or aborted payment is a
        returned :class:`Transaction`. When no custom identifier is given, one is
        assigned, so the transaction can always be looked up.

        ``timeout`` is the sliding silence limit (default ``transaction_timeout``).
        Raises :class:`TransactionOutcomeUnknownError` when the request was sent
        but its outcome can no longer be awaited: look it up, never charge again.
        """
        if parameters.custom_identifier is None:
            parameters = attrs.evolve(parameters, custom_identifier=uuid.uuid4().hex)
        data = m.ExecuteTransactionRequest(
            parameters,
            mode=mode,
            session_identifier=session_identifier,
            process_parameters=process_parameters,
        )
        response = self._call(
            "EXECUTE_TRANSACTION_REQUEST",
            data,
            resource=_resource_of(device),
            on_update=on_update,
            on_action=on_action,
            timeout=timeout,
            custom_identifier=parameters.custom_identifier,
        )
        return self._transaction_of(response)

    def charge(
        self,
        device: DeviceRef,
        amount: Amount,
        currency: str,
        *,
        subject: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        auto_capture: bool = True,
        statement_descriptor: Optional[str] = None,
        application_fee: Optional[Amount] = None,
        included_tip_amount: Optional[Amount] = None,
        metadata: Optional[Dict[str, Any]] = None,
        tip_adjustable: Optional[bool] = None,
        mode: Optional[Union[m.Mode, str]] = None,
        process_parameters: Optional[m.ProcessParameters] = None,
        session_identifier: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        timeout: Optional[float] = None,
    ) -> m.Transaction:
        """Charge a card (an ``EXECUTE_TRANSACTION_REQUEST`` of type ``CHARGE``).
        ``auto_capture=False`` makes a pre-authorisation, captured later with
        :meth:`capture`. See :meth:`execute_transaction` for the outcome rules."""
        parameters = m.TransactionParameters(
            m.TransactionType.CHARGE,
            _exact(amount),
            currency,
            auto_capture,
            subject=subject,
            custom_identifier=custom_identifier,
            statement_descriptor=statement_descriptor,
            application_fee=None if application_fee is None else _exact(application_fee),
            included_tip_amount=None
            if included_tip_amount is None
            else _exact(included_tip_amount),
            metadata=metadata,
            tip_adjustable=tip_adjustable,
        )
        return self.execute_transaction(
            device,
            parameters,
            mode=mode,
            process_parameters=process_parameters,
            session_identifier=session_identifier,
            on_update=on_update,
            on_action=on_action,
            timeout=timeout,
        )

    def abort_transaction(self, device: DeviceRef, *, timeout: Optional[float] = None) -> None:
        """Ask the server to abort the device's transaction (``ABORT_TRANSACTION_REQUEST``).

        Returns once the abort is accepted; the transaction's own call still
        returns only with its final response. Raises :class:`ServerError`
        (``TRANSACTION_NOT_ABORTABLE``, ``TRANSACTION_NOT_FOUND``) when refused.
        """
        self._call(
            "ABORT_TRANSACTION_REQUEST",
            m.AbortTransactionRequest(),
            resource=_resource_of(device),
            timeout=timeout,
        )

    def submit_signature(
        self,
        device: DeviceRef,
        signature: Union[str, bytes, None] = None,
        *,
        on_receipt: bool = False,
        timeout: Optional[float] = None,
    ) -> None:
        """Answer a ``SIGNATURE`` action (``SUBMIT_SIGNATURE_REQUEST``): a PNG image
        (bytes, or already base64 text), or ``on_receipt=True`` to sign on paper."""
        if (signature is None) == (not on_receipt):
            raise ValueError("give either a signature image or on_receipt=True")
        if isinstance(signature, bytes):
            signature = base64.b64encode(signature).decode("ascii")
        data = m.SubmitSignatureRequest(
            signature=signature, sign_on_receipt=True if on_receipt else None
        )
        self._call("SUBMIT_SIGNATURE_REQUEST", data, resource=_resource_of(device), timeout=timeout)

    def submit_application_selection(
        self, device: DeviceRef, application_identifier: str, *, timeout: Optional[float] = None
    ) -> None:
        """Answer an ``APPLICATION_SELECTION`` action
        (``SUBMIT_APPLICATION_SELECTION_REQUEST``) with the chosen application's AID."""
        data = m.SubmitApplicationSelectionRequest(application_identifier)
        self._call(
            "SUBMIT_APPLICATION_SELECTION_REQUEST",
            data,
            resource=_resource_of(device),
            timeout=timeout,
        )

    def submit_credit_debit_selection(
        self,
        device: DeviceRef,
        selection: Union[m.CreditDebit, str],
        *,
        timeout: Optional[float] = None,
    ) -> None:
        """Answer a ``CREDIT_DEBIT_SELECTION`` action
        (``SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST``) with ``CREDIT`` or ``DEBIT``."""
        data = m.SubmitCreditDebitSelectionRequest(selection)
        self._call(
            "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST",
            data,
            resource=_resource_of(device),
            timeout=timeout,
        )

    def submit_dcc_selection(
        self, device: DeviceRef, use_converted_amount: bool, *, timeout: Optional[float] = None
    ) -> None:
        """Answer a ``DCC_SELECTION`` action (``SUBMIT_DCC_SELECTION_REQUEST``)."""
        data = m.SubmitDccSelectionRequest(use_converted_amount)
        self._call(
            "SUBMIT_DCC_SELECTION_REQUEST", data, resource=_resource_of(device), timeout=timeout
        )

    def amend_transaction(
        self,
        parameters: m.AmendParameters,
        *,
        mode: Optional[Union[m.Mode, str]] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
    ) -> m.Transaction:
        """Refund, capture or tip-adjust an earlier transaction without a card
        (``AMEND_TRANSACTION_REQUEST``); returns the new transaction. Same
        timeout and outcome rules as :meth:`execute_transaction`."""
        if parameters.custom_identifier is None:
            parameters = attrs.evolve(parameters, custom_identifier=uuid.uuid4().hex)
        response = self._call(
            "AMEND_TRANSACTION_REQUEST",
            m.AmendTransactionRequest(parameters, mode=mode),
            on_update=on_update,
            timeout=timeout,
            custom_identifier=parameters.custom_identifier,
        )
        return self._transaction_of(response)

    def refund(
        self,
        transaction_identifier: str,
        *,
        amount: Optional[Amount] = None,
        currency: Optional[str] = None,
        subject: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
    ) -> m.Transaction:
        """Refund a charge, fully or (with ``amount`` and ``currency``) partly
        (``AMEND_TRANSACTION_REQUEST`` of type ``REFUND``)."""
        parameters = m.AmendParameters(
            m.TransactionType.REFUND,
            transaction_identifier,
            amount=None if amount is None else _exact(amount),
            currency=currency,
            subject=subject,
            custom_identifier=custom_identifier,
            metadata=metadata,
        )
        return self.amend_transaction(parameters, on_update=on_update, timeout=timeout)

    def capture(
        self,
        transaction_identifier: str,
        *,
        amount: Optional[Amount] = None,
        currency: Optional[str] = None,
        subject: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
    ) -> m.Transaction:
        """Capture a pre-authorisation, fully or partly
        (``AMEND_TRANSACTION_REQUEST`` of type ``CAPTURE``)."""
        parameters = m.AmendParameters(
            m.TransactionType.CAPTURE,
            transaction_identifier,
            amount=None if amount is None else _exact(amount),
            currency=currency,
            subject=subject,
            custom_identifier=custom_identifier,
            metadata=metadata,
        )
        return self.amend_transaction(parameters, on_update=on_update, timeout=timeout)

    def tip_adjust(
        self,
        transaction_identifier: str,
        tip_amount: Amount,
        currency: str,
        *,
        subject: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
    ) -> m.Transaction:
        """Add a tip to a charge (``AMEND_TRANSACTION_REQUEST`` of type
        ``TIP_ADJUST`` with ``includedTipAmount``)."""
        parameters = m.AmendParameters(
            m.TransactionType.TIP_ADJUST,
            transaction_identifier,
            currency=currency,
            subject=subject,
            custom_identifier=custom_identifier,
            included_tip_amount=_exact(tip_amount, "tip_amount"),
        )
        return self.amend_transaction(parameters, on_update=on_update, timeout=timeout)

    def get_transaction(
        self,
        *,
        transaction_identifier: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> m.Transaction:
        """Look a transaction up by one identifier (``GET_TRANSACTION_REQUEST``).
        Raises :class:`ServerError` ``TRANSACTION_NOT_FOUND`` when there is none."""
        if (transaction_identifier is None) == (custom_identifier is None):
            raise ValueError("give exactly one of transaction_identifier and custom_identifier")
        data = m.GetTransactionRequest(transaction_identifier, custom_identifier)
        response = self._call("GET_TRANSACTION_REQUEST", data, timeout=timeout)
        return self._transaction_of(response)

    def pending_outcomes(self) -> List[PendingOutcome]:
        """Journaled transactions whose outcome is unknown, oldest first (needs
        ``journal=``). Never charge these again: :meth:`recover` them."""
        return self._require_journal().pending()

    def recover(self, *, timeout: Optional[float] = None) -> List[RecoveredOutcome]:
        """Resolve every pending journal entry with ``GET_TRANSACTION_REQUEST`` by
        its custom identifier, record what the server says, and return it.

        Call it after :meth:`login`. A lookup that finds nothing
        (``TRANSACTION_NOT_FOUND``) means the request never became a
        transaction: recorded as ``NOT_FOUND``, nothing was charged. A
        non-final status (``INCONCLUSIVE``, ``PENDING``) stays pending. Other
        errors (connection lost, timeouts) propagate; run it again later.
        """
        journal = self._require_journal()
        results: List[RecoveredOutcome] = []
        for pending in journal.pending():
            with self._lock:
                in_flight = pending.tag in self._slots
            if in_flight:  # this client still waits for it: its own response will settle it
                continue
            if pending.custom_identifier is None:
                logger.error("journal entry %s has no custom identifier to look up", pending.tag)
                results.append(RecoveredOutcome(pending, None, False))
                continue
            try:
                found: Optional[m.Transaction] = self.get_transaction(
                    custom_identifier=pending.custom_identifier, timeout=timeout
                )
            except ServerError as exc:
                if exc.error_type != m.ErrorType.TRANSACTION_NOT_FOUND:
                    raise
                found = None
            mismatch = None if found is None else _mismatch(pending, found)
            if mismatch is not None:
                # A reused custom identifier: that record is not this request's.
                logger.error("not recovering %s: the server's %s", pending.tag, mismatch)
                results.append(RecoveredOutcome(pending, None, False))
                continue
            status = "NOT_FOUND" if found is None else (found.status or "UNKNOWN")
            journal.record_outcome(pending.tag, found, status=status)
            resolved = found is None or m.is_final_status(status)
            results.append(RecoveredOutcome(pending, found, resolved))
            logger.info("recovered %s (%s): %s", pending.tag, pending.custom_identifier, status)
        return results

    def _require_journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("this PayClient has no journal: pass journal='pos-journal.sqlite'")
        return self._journal

    def request(
        self,
        type: str,
        data: Any = None,
        *,
        resource: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        timeout: Optional[float] = None,
    ) -> m.Message:
        """Send any request type (raw API) with the same tag correlation,
        callbacks, timeouts and errors; returns the response message.

        ``data`` is a model instance for a known type, or a ``dict`` sent as it is.
        """
        custom_identifier = None
        if isinstance(data, (m.ExecuteTransactionRequest, m.AmendTransactionRequest)):
            custom_identifier = data.transaction_parameters.custom_identifier
        elif isinstance(data, dict):
            parameters = data.get("transactionParameters")
            if isinstance(parameters, dict):
                custom_identifier = parameters.get("customIdentifier")
        return self._call(
            type,
            data,
            resource=resource,
            on_update=on_update,
            on_action=on_action,
            timeout=timeout,
            custom_identifier=custom_identifier,
        )

    # --- request machinery ---------------------------------------------------

    def _call(
        self,
        request_type: str,
        data: Any,
        *,
        resource: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        timeout: Optional[float] = None,
        custom_identifier: Optional[str] = None,
        internal: bool = False,
    ) -> m.Message:
        if (
            request_type == "EXECUTE_TRANSACTION_REQUEST"
            and threading.current_thread() is self._dispatcher
        ):
            raise CallbackDeadlockError(
                "a transaction cannot be started from a callback: its updates and actions "
                "would need the callback thread, which is busy running this callback"
            )
        tag = str(uuid.uuid4())
        slot = _Slot(tag, request_type, resource, custom_identifier, on_update, on_action)
        if isinstance(data, dict) or (data is not None and request_type not in codec.MESSAGE_TYPES):
            message: m.Message = m.RawMessage(request_type, tag, resource, data)
        else:
            message = m.Message(request_type, tag, resource, data)
        payload = codec.encode_message(message)  # bad input fails here, before any slot
        with self._lock:
            transport = self._transport
            # While reconnecting, requests fail fast (documented): only the
            # client's own login may use a connection that is not yet usable.
            usable = self._state is ConnectionState.CONNECTED or internal
            if (
                self._closed
                or transport is None
                or self._connection_error is not None
                or not usable
            ):
                reason = self._connection_error or f"the client is {self._state.value}"
                raise ConnectionLostError(f"cannot send {request_type}: {reason}")
            self._slots[tag] = slot
        journal = self._journal if slot.is_transaction else None
        try:
            if journal is not None:
                # Committed before the request leaves: a crash from here on is recoverable.
                journal.record_sent(
                    tag=tag,
                    message_type=request_type,
                    resource=resource,
                    custom_identifier=custom_identifier,
                    parameters={} if data is None else data,
                )
            self._trace("->", payload)
            logger.debug("-> %s tag=%s resource=%s", request_type, tag, resource)
            try:
                transport.send(payload)
            except ConnectionLostError as exc:
                self._journal_outcome(journal, tag, status="NOT_SENT", error=str(exc))
                raise
            slot.sent = True
            try:
                response = self._await(slot, timeout)
                if slot.is_transaction:
                    return self._settle_transaction(slot, journal, response)
            except TransactionOutcomeUnknownError as exc:
                if journal is not None:
                    self._journal_write(journal.mark_unknown, tag, str(exc.__cause__ or exc))
                raise
            if response.is_error:
                raise self._server_error(response)
            return response
        finally:
            with self._lock:
                self._slots.pop(tag, None)

    def _settle_transaction(
        self, slot: _Slot, journal: Optional[Journal], response: m.Message
    ) -> m.Message:
        """Judge an execute/amend response by what it says about the money."""
        transaction = getattr(response.data, "transaction", None)
        if not isinstance(transaction, m.Transaction):
            if response.is_error:  # refused before any transaction existed
                error = self._server_error(response)
                self._journal_outcome(journal, slot.tag, status="ERROR", error=str(error))
                raise error
            violation = ProtocolViolationError(f"{response.type} holds no transaction")
            raise self._outcome_unknown(slot, violation)
        status = str(transaction.status or "UNKNOWN")
        if response.is_error:
            error = self._server_error(response)
            if status not in m.FAILED_STATUSES:  # an error, yet maybe charged: unknown
                raise self._outcome_unknown(slot, error)
            self._journal_outcome(journal, slot.tag, transaction, status=status, error=str(error))
            raise error
        self._journal_outcome(journal, slot.tag, transaction, status=status)
        if slot.callbacks_done is not None and threading.current_thread() is not self._dispatcher:
            slot.callbacks_done.wait(_CALLBACK_DRAIN_TIMEOUT)
        return response

    @staticmethod
    def _server_error(response: m.Message) -> ServerError:
        error = response.error
        return ServerError(
            str(error.type) if error else "UNKNOWN",
            (error.message if error else None) or "the server reported an error",
            error.developer_message if error else None,
            response,
        )

    def _journal_outcome(
        self,
        journal: Optional[Journal],
        tag: str,
        transaction: Optional[m.Transaction] = None,
        *,
        status: Union[m.TransactionStatus, str],
        error: Optional[str] = None,
    ) -> None:
        if journal is not None:
            self._journal_write(
                journal.record_outcome, tag, transaction, status=status, error=error
            )

    @staticmethod
    def _journal_write(write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        # The caller's result matters more than the bookkeeping: log, never mask it.
        try:
            write(*args, **kwargs)
        except JournalError as exc:
            logger.error("journal write failed: %s", exc)

    def _await(self, slot: _Slot, timeout: Optional[float]) -> m.Message:
        started = slot.created  # the timeout covers the send as well
        if slot.is_transaction:
            idle = self.transaction_timeout if timeout is None else timeout
            cap = started + self.transaction_max_duration
        else:
            idle = self.timeout if timeout is None else timeout
            cap = started + idle
        while True:
            deadline = min(slot.last_activity + idle, cap)
            remaining = deadline - time.monotonic()
            if slot.wait(remaining):
                break
            now = time.monotonic()
            if now >= cap or now >= slot.last_activity + idle:
                # Mark it finished so a response racing in now counts as late.
                slot.finish(
                    failure=RequestTimeoutError(self._timeout_text(slot, now - started, idle, cap))
                )
                break
        if slot.failure is not None:
            self._raise_failure(slot)
        assert slot.response is not None
        return slot.response

    def _timeout_text(self, slot: _Slot, waited: float, idle: float, cap: float) -> str:
        if slot.is_transaction and time.monotonic() >= cap:
            return f"{slot.request_type} took longer than {self.transaction_max_duration:.1f} s"
        return f"no response to {slot.request_type} within {idle:.1f} s (waited {waited:.1f} s)"

    def _raise_failure(self, slot: _Slot) -> None:
        failure = slot.failure
        assert failure is not None
        if slot.is_transaction and slot.sent:
            raise self._outcome_unknown(slot, failure)
        if isinstance(failure, (ConnectionLostError, ProtocolViolationError)):
            # One connection failure ends many waits: give each thread its own
            # exception object (raising a shared one mixes their tracebacks).
            raise type(failure)(str(failure)) from failure.__cause__
        raise failure

    @staticmethod
    def _outcome_unknown(slot: _Slot, cause: BaseException) -> TransactionOutcomeUnknownError:
        unknown = TransactionOutcomeUnknownError(
            f"{slot.request_type} was sent but its outcome is unknown ({cause}); "
            f"look it up by custom identifier {slot.custom_identifier!r} "
            "instead of charging again",
            tag=slot.tag,
            resource=slot.resource,
            custom_identifier=slot.custom_identifier,
        )
        unknown.__cause__ = cause
        return unknown

    @staticmethod
    def _data(response: m.Message, model: type[T]) -> T:
        if not isinstance(response.data, model):
            raise ProtocolViolationError(
                f"{response.type} carries {type(response.data).__name__}, expected {model.__name__}"
            )
        return response.data

    def _transaction_of(self, response: m.Message) -> m.Transaction:
        transaction = getattr(response.data, "transaction", None)
        if not isinstance(transaction, m.Transaction):
            raise ProtocolViolationError(
                f"{response.type} (tag {response.tag}) holds no transaction"
            )
        return transaction

    def _trace(self, direction: str, payload: bytes) -> None:
        if self._wire_trace and wire_logger.isEnabledFor(logging.DEBUG):
            wire_logger.debug("%s %s", direction, codec.redacted_text(payload))

    # --- reader thread -------------------------------------------------------

    def _read_loop(self, transport: Transport) -> None:
        failure: BaseException
        try:
            while True:
                payload = transport.receive()
                self._trace("<-", payload)
                try:
                    message = codec.decode_message(payload)
                except ProtocolViolationError as exc:
                    if exc.raw is None:  # not UTF-8 or not a JSON object: the stream is suspect
                        raise
                    self._route_misfit(exc, exc.raw)
                    continue
                self._route(message)
        except ProtocolViolationError as exc:
            logger.error("closing the connection: the server broke the protocol: %s", exc)
            failure = exc
        except ConnectionLostError as exc:
            failure = exc
        except Exception as exc:  # a bug must still end every wait
            logger.exception("reader thread failed")
            failure = ConnectionLostError(f"reader failed: {exc!r}")
        transport.close()  # idempotent; releases the socket of a dead connection now
        self._connection_ended(transport, failure)

    def _route_misfit(self, violation: ProtocolViolationError, raw: Dict[str, Any]) -> None:
        """A JSON message whose fields do not fit the contract. The connection is
        fine; a response fails only its own request, anything else goes on whole
        as a raw message (an update for its request, or a late result)."""
        message = codec.raw_message(raw)
        logger.error(
            "%s (tag %s) does not fit the contract: %s", message.type, message.tag, violation
        )
        with self._lock:
            slot = self._slots.get(message.tag) if message.tag is not None else None
        if slot is not None and (message.type == slot.response_type or message.type == "UNKNOWN"):
            slot.finish(failure=violation)
        else:
            self._route(message)

    def _fail_all(self, failure: BaseException) -> None:
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            slot.finish(failure=failure)

    def _route(self, message: m.Message) -> None:
        logger.debug("<- %s tag=%s status=%s", message.type, message.tag, message.status)
        with self._lock:
            slot = self._slots.get(message.tag) if message.tag is not None else None
        if slot is not None and message.type == slot.response_type:
            if slot.is_transaction and not slot.done:
                # The caller returns after the updates queued before this response
                # reached its callbacks (bounded: a stuck callback cannot hold it).
                slot.callbacks_done = threading.Event()
                self._jobs.put(slot.callbacks_done.set)
            if not slot.finish(response=message):
                self._late_result(message)
            return
        if slot is None:
            if message.type.endswith("_RESPONSE"):
                self._late_result(message)
            else:
                logger.warning(
                    "%s for tag %s which no request waits for; ignored: %s",
                    message.type,
                    message.tag,
                    codec.redacted_text(message),
                )
            return
        slot.last_activity = time.monotonic()  # progress re-arms the sliding timeout
        if message.type == "EXECUTE_TRANSACTION_ACTION" and isinstance(
            message.data, m.ExecuteTransactionAction
        ):
            action = message.data
            self._jobs.put(lambda: self._deliver_action(slot, action))
            return
        if not message.type.endswith(("_UPDATE", "_ACTION")):
            logger.warning(
                "%s for tag %s of a %s: passed to on_update",
                message.type,
                message.tag,
                slot.request_type,
            )
        # Typed updates go on as their data; anything else (unknown types, other
        # responses) whole, as its data alone says too little.
        is_update = message.type.endswith("_UPDATE") and not isinstance(message, m.RawMessage)
        update = message.data if is_update else message
        self._jobs.put(lambda: self._deliver_update(slot, update))

    def _late_result(self, message: m.Message) -> None:
        logger.warning(
            "late or duplicate %s for tag %s (nobody waits for it): %s",
            message.type,
            message.tag,
            codec.redacted_text(message),
        )
        transaction = getattr(message.data, "transaction", None)
        if self._journal is not None and message.tag and isinstance(transaction, m.Transaction):
            # A late answer to a journaled transaction settles its unknown outcome.
            self._jobs.put(functools.partial(self._record_late, message.tag, transaction))
        with self._lock:
            callbacks = list(self._late_callbacks)
        for callback in callbacks:
            self._jobs.put(functools.partial(self._run_callback, callback, message))

    def _record_late(self, tag: str, transaction: m.Transaction) -> None:
        assert self._journal is not None
        if self._journal.get(tag) is not None:
            self._journal_outcome(
                self._journal, tag, transaction, status=transaction.status or "UNKNOWN"
            )

    # --- dispatcher thread ---------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # the dispatcher must outlive any one job
                logger.exception("callback dispatcher job failed")

    def _deliver_update(self, slot: _Slot, update: Any) -> None:
        with self._lock:
            callbacks = [slot.on_update, *self._update_callbacks]
        for callback in callbacks:
            if callback is not None:
                self._run_callback(callback, update)

    def _deliver_action(self, slot: _Slot, action: m.ExecuteTransactionAction) -> None:
        with self._lock:
            callbacks = [c for c in (slot.on_action, *self._action_callbacks) if c is not None]
        for callback in callbacks:
            self._run_callback(callback, action)
        if not callbacks:  # decided here, not when it arrived: a handler may have gone
            logger.warning(
                "%s action for tag %s but no on_action handler is registered: aborting the "
                "transaction on %s",
                action.action,
                slot.tag,
                slot.resource,
            )
            self._abort_unhandled(slot)

    def _abort_unhandled(self, slot: _Slot) -> None:
        if slot.resource is None:
            return
        try:
            self.abort_transaction(slot.resource)
        except PayProtocolError as exc:
            # Still waiting, not silently: the server ends the step (its action
            # timeout) or the sliding timeout makes the outcome unknown.
            logger.error(
                "could not abort the transaction on %s (%s): it waits for the server to end "
                "it; register on_action to answer actions",
                slot.resource,
                exc,
            )

    def _run_callback(self, callback: Callable[[Any], None], argument: Any) -> None:
        try:
            callback(argument)
        except Exception as exc:
            logger.exception("callback %r raised; continuing", callback)
            if self._on_callback_error is not None:
                try:
                    self._on_callback_error(exc, argument)
                except Exception:
                    logger.exception("on_callback_error hook raised")
