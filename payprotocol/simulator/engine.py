"""The simulated PayServer's logic: sessions, transactions, actions, aborts,
amends and lookups (p3-protocol.md sections 3 to 7). No sockets here.

Strategy: a :class:`Session` per connection turns each incoming payload into
outgoing :class:`~payprotocol.models.Message` objects handed to an
:class:`Outbox` (the connection layer owns bytes, faults and sockets). A plain
request (login, lookup, abort, an action answer) is answered on the calling
thread. A transaction (execute or amend) is played by its own thread, because
it lives in time: it waits for the card, for the shopper, for an action answer
or an abort, while the connection keeps serving other requests.

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

import base64
import binascii
import logging
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Set, Union

import attrs

from ..codec import decode_parsed, parse_message, response_type
from ..errors import ProtocolViolationError
from ..models import (
    ActionType,
    AmendParameters,
    AmendTransactionRequest,
    AmendTransactionResponse,
    AmendTransactionUpdate,
    Application,
    ApplicationSelection,
    DccSelection,
    Device,
    ErrorDetails,
    ExecuteTransactionAction,
    ExecuteTransactionRequest,
    ExecuteTransactionResponse,
    ExecuteTransactionUpdate,
    GetTransactionRequest,
    GetTransactionResponse,
    LoginMerchantRequest,
    LoginMerchantResponse,
    Message,
    Mode,
    PaymentDetails,
    ProcessState,
    RawMessage,
    Status,
    SubmitApplicationSelectionRequest,
    SubmitCreditDebitSelectionRequest,
    SubmitDccSelectionRequest,
    SubmitSignatureRequest,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from .cards import TEST_APPLICATIONS, Cvm, Extra, Outcome, card_script, dcc_quote, format_money
from .config import SimulatedDevice, SimulatorConfig
from .records import card_details, new_identifier, now, with_receipts, with_status
from .store import AmendRefused, StoredTransaction, TransactionStore
from .validation import REQUEST_TYPES, InvalidRequest, validate_request

__all__ = ["Outbox", "PayServerEngine", "Session", "TransactionContext"]

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


@attrs.define
class TransactionContext:
    """Identifies the messages of one execute or amend, for per-transaction
    faults. ``sent`` counts the messages the connection wrote for it."""

    tag: str
    resource: Optional[str]
    kind: str  # "EXECUTE" or "AMEND"
    sent: int = 0
    injected: bool = False
    latest_abortable: bool = False


class Outbox:
    """Where a session's messages go. The connection layer subclasses it."""

    closed: bool = False

    def send(
        self,
        message: Message,
        *,
        transaction: Optional[TransactionContext] = None,
        final: bool = False,
    ) -> None:
        """Queue one message; ``final`` marks a transaction's final response."""
        raise NotImplementedError

    def close(self) -> None:
        """End the connection."""
        raise NotImplementedError


def error_message(
    request_type: str, tag: Optional[str], resource: Optional[str], error_type: str, text: str
) -> Message:
    """An ``ERROR`` response with the P3 error object and no data object."""
    return RawMessage(
        response_type(request_type),
        tag,
        resource,
        None,
        Status.ERROR,
        ErrorDetails(type=error_type, message=text, developer_message=f"simulator: {text}"),
    )


class _Refusal(Exception):
    """A request is refused with a P3 error type (sent as an ERROR response)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class _Aborted(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class _Declined(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


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
        self._runs: Dict[str, _ExecuteRun] = {}  # resource -> running execute
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

    def running(self, resource: str) -> Optional[_ExecuteRun]:
        with self._lock:
            return self._runs.get(resource)

    def wake_runs_of(self, session: Session) -> None:
        """The session's connection closed: let its runs notice at once."""
        with self._lock:
            runs = [run for run in self._runs.values() if run.session is session]
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

    def claim(self, run: _ExecuteRun) -> None:
        """Make ``run`` the one transaction of its reader, or refuse with
        ``DEVICE_BUSY`` (or ``DEVICE_NOT_CONNECTED`` while shutting down)."""
        with self._lock:
            if self._stopping.is_set():
                raise _Refusal("DEVICE_NOT_CONNECTED", "the PayServer is shutting down")
            if run.resource in self._runs:
                raise _Refusal("DEVICE_BUSY", f"a transaction already runs on {run.resource}")
            self._runs[run.resource] = run

    def release(self, run: _ExecuteRun) -> None:
        """Free the reader ``run`` held (a no-op if it holds none)."""
        with self._lock:
            if self._runs.get(run.resource) is run:
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
        except _Refusal as refusal:
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
            raise _Refusal("UNKNOWN_MESSAGE_TYPE", f"unknown request type {message_type!r}")
        if message_type != "LOGIN_MERCHANT_REQUEST" and self.merchant is None:
            raise _Refusal("NOT_LOGGED_IN", "send LOGIN_MERCHANT_REQUEST first")
        try:
            validate_request(raw)
            message = decode_parsed(raw)
        except InvalidRequest as exc:
            raise _Refusal("INVALID_REQUEST", str(exc)) from None
        except ProtocolViolationError as exc:
            raise _Refusal("INVALID_REQUEST", str(exc)) from None
        device = None
        if message_type in _DEVICE_REQUESTS:
            if resource is None:
                raise _Refusal("INVALID_REQUEST", "resource is required (a device path)")
            device = self.engine.devices.get(resource)
            if device is None:
                raise _Refusal("UNKNOWN_RESOURCE", f"no device {resource!r}")
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
            raise _Refusal("AUTHENTICATION_FAILED", "unknown merchant or wrong secret")
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

    # --- EXECUTE_TRANSACTION_REQUEST ----------------------------------------

    def _execute(self, message: Message, device: SimulatedDevice) -> None:
        if not device.connected:
            raise _Refusal("DEVICE_NOT_CONNECTED", f"{device.resource} is not connected")
        assert self.merchant is not None and message.tag is not None
        run = _ExecuteRun(self, message.tag, device, message.data, self.merchant)
        self.engine.claim(run)  # DEVICE_BUSY when another transaction runs there
        self.engine.store.put(
            StoredTransaction(run.transaction, self.merchant, pre_authorisation=run.pre_auth)
        )
        self.engine.spawn(f"p3sim-execute-{device.identifier}", run.run)

    # --- ABORT_TRANSACTION_REQUEST ------------------------------------------

    def _abort(self, message: Message) -> None:
        assert message.resource is not None
        run = self.engine.running(message.resource)
        if run is None or run.merchant != self.merchant:
            raise _Refusal("TRANSACTION_NOT_FOUND", f"no transaction runs on {message.resource}")
        # The OK goes out before the run can send its ABORTED messages.
        run.abort(lambda: self._respond(message, None))

    # --- SUBMIT_*_REQUEST ----------------------------------------------------

    def _answer(self, message: Message, action: ActionType) -> None:
        assert message.resource is not None
        run = self.engine.running(message.resource)
        if run is None or run.merchant != self.merchant:
            raise _Refusal("NO_PENDING_ACTION", f"no transaction runs on {message.resource}")
        run.answer(action, message.data, lambda: self._respond(message, None))

    # --- AMEND_TRANSACTION_REQUEST ------------------------------------------

    def _amend(self, message: Message) -> None:
        assert self.merchant is not None and message.tag is not None
        request: AmendTransactionRequest = message.data
        parameters: AmendParameters = request.transaction_parameters
        try:
            plan = self.engine.store.book_amend(self.merchant, parameters)
        except AmendRefused as exc:
            raise _Refusal(exc.error_type, exc.message) from None
        charge = plan.referenced
        transaction = Transaction(
            transaction_identifier=new_identifier(),
            type=plan.type,
            status=TransactionStatus.PENDING,
            amount=plan.amount,
            currency=plan.currency,
            included_tip_amount=plan.included_tip_amount,
            subject=parameters.subject or charge.subject,
            custom_identifier=parameters.custom_identifier,
            mode=request.mode or Mode.ONLINE,
            captured=True,
            created=now(),
            referenced_transaction_identifier=charge.transaction_identifier,
            metadata=parameters.metadata,
            card_details=charge.card_details,
            payment_details=charge.payment_details,
        )
        self.engine.store.put(StoredTransaction(transaction, self.merchant))
        context = TransactionContext(message.tag, None, "AMEND")
        self.engine.spawn("p3sim-amend", lambda: self._play_amend(message, transaction, context))

    def _play_amend(
        self, message: Message, transaction: Transaction, context: TransactionContext
    ) -> None:
        verb = {
            TransactionType.REFUND: ("Refunding", "Refunded"),
            TransactionType.CAPTURE: ("Capturing", "Captured"),
            TransactionType.TIP_ADJUST: ("Adjusting tip", "Tip adjusted"),
        }[TransactionType(transaction.type)]
        money = format_money(transaction.amount, transaction.currency)
        steps = (
            (ProcessState.PROCESSING, "PROCESSING_AMEND", [verb[0], money]),
            (ProcessState.APPROVED, "APPROVED", [verb[1], money]),
        )
        for state, details, information in steps:
            self._pause(self.config.step_delay)
            update = AmendTransactionUpdate(
                information=information, state=state, state_details=details, abortable=False
            )
            self.outbox.send(
                Message("AMEND_TRANSACTION_UPDATE", message.tag, None, update, Status.OK),
                transaction=context,
            )
        final = with_receipts(
            with_status(
                transaction, TransactionStatus.APPROVED, "APPROVED", "Transaction approved"
            ),
            self.config.merchant_name,
        )
        self.engine.store.update(final)
        log.info("amend %s %s: APPROVED (%s)", final.type, final.transaction_identifier, money)
        self.outbox.send(
            Message(
                "AMEND_TRANSACTION_RESPONSE",
                message.tag,
                None,
                AmendTransactionResponse(transaction=final),
                Status.OK,
            ),
            transaction=context,
            final=True,
        )

    def _pause(self, seconds: float) -> None:
        # Amends are not abortable: only a shutdown shortens the wait.
        self.engine.wait_stopping(seconds)

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
            raise _Refusal("TRANSACTION_NOT_FOUND", f"no transaction {wanted!r}")
        self._respond(message, GetTransactionResponse(transaction=transaction))


class _ExecuteRun:
    """One card transaction on one reader, played on its own thread."""

    def __init__(
        self,
        session: Session,
        tag: str,
        device: SimulatedDevice,
        request: ExecuteTransactionRequest,
        merchant: str,
    ) -> None:
        self.session = session
        self.engine = session.engine
        self.config = session.config
        self.tag = tag
        self.device = device
        self.resource = device.resource
        self.merchant = merchant
        self.request = request
        self.context = TransactionContext(tag, device.resource, "EXECUTE")
        parameters = request.transaction_parameters
        self.pre_auth = not parameters.auto_capture
        self.offline = request.mode == Mode.OFFLINE
        self.script = card_script(parameters.amount)
        self.transaction = Transaction(
            transaction_identifier=new_identifier(),
            type=TransactionType.CHARGE,
            status=TransactionStatus.PENDING,
            amount=parameters.amount,
            currency=parameters.currency,
            included_tip_amount=parameters.included_tip_amount or Decimal("0.00"),
            subject=parameters.subject,
            custom_identifier=parameters.custom_identifier,
            mode=request.mode or Mode.ONLINE,
            captured=False,
            created=now(),
            metadata=parameters.metadata,
        )
        self._cond = threading.Condition()
        self._abortable = False
        self._abort_requested = False
        self._finished = False
        self._pending: Optional[ActionType] = None
        self._pending_choices: List[str] = []
        self._answer: Any = None
        # What the shopper chose along the way, for the receipts.
        self._application = TEST_APPLICATIONS[0][1]
        self._account_type: Optional[str] = None
        self._dcc_text: Optional[str] = None
        self._signature_on_receipt = False

    # --- called by sessions (other threads) --------------------------------

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def abort(self, accept: Callable[[], None]) -> None:
        """``ABORT_TRANSACTION_REQUEST``: accept (calling ``accept`` to send the
        OK) or raise ``TRANSACTION_NOT_ABORTABLE`` / ``TRANSACTION_NOT_FOUND``."""
        with self._cond:
            if self._finished:
                raise _Refusal("TRANSACTION_NOT_FOUND", f"no transaction runs on {self.resource}")
            if not self._abortable:
                raise _Refusal(
                    "TRANSACTION_NOT_ABORTABLE", "the transaction cannot be aborted at this step"
                )
            accept()
            self._abort_requested = True
            self._cond.notify_all()

    def answer(self, action: ActionType, data: Any, accept: Callable[[], None]) -> None:
        """``SUBMIT_*_REQUEST``: take the answer to the pending action."""
        with self._cond:
            if self._finished or self._pending != action:
                pending = "none" if self._pending is None else self._pending.value
                raise _Refusal(
                    "NO_PENDING_ACTION", f"no {action.value} action is pending (pending: {pending})"
                )
            self._check_answer(action, data)
            accept()
            self._answer = data
            self._pending = None
            self._cond.notify_all()

    def _check_answer(self, action: ActionType, data: Any) -> None:
        if action == ActionType.APPLICATION_SELECTION:
            chosen = data.application_identifier
            if chosen not in self._pending_choices:
                raise _Refusal(
                    "INVALID_REQUEST",
                    f"submitApplicationSelectionRequest.applicationIdentifier {chosen!r} "
                    f"is not one of {', '.join(self._pending_choices)}",
                )
        elif action == ActionType.SIGNATURE and data.signature:
            try:
                base64.b64decode(data.signature, validate=True)
            except (binascii.Error, ValueError):
                raise _Refusal(
                    "INVALID_REQUEST", "submitSignatureRequest.signature is not valid base64"
                ) from None

    # --- the run ------------------------------------------------------------

    def run(self) -> None:
        transaction = self.transaction
        try:
            try:
                transaction = self._play()
            except _Aborted as exc:
                transaction = with_status(
                    self.transaction, TransactionStatus.ABORTED, exc.code, exc.description
                )
                state, lines = ProcessState.ABORTED, ["Aborted", exc.description]
            except _Declined as exc:
                transaction = with_status(
                    self.transaction, TransactionStatus.DECLINED, exc.code, exc.description
                )
                state, lines = ProcessState.DECLINED, ["Declined", exc.description]
            else:
                state = ProcessState.APPROVED
                lines = [
                    "Approved" if transaction.status == TransactionStatus.APPROVED else "Accepted",
                    self._money(transaction),
                ]
        except Exception:
            log.exception("simulated transaction %s failed", self.tag)
            transaction = with_status(
                self.transaction, TransactionStatus.ERROR, "INTERNAL_ERROR", "Simulator error"
            )
            state, lines = ProcessState.FAILED, ["Error", "Simulator error"]
        with self._cond:
            self._finished = True
            self._abortable = False
            self._pending = None
        # Store first, free the device, then tell the client: see the module docstring.
        self.engine.store.update(transaction)
        self.engine.release(self)
        log.info(
            "transaction %s on %s: %s (%s)",
            transaction.transaction_identifier,
            self.resource,
            transaction.status,
            self._money(transaction),
        )
        self._send_update(state, str(state), lines, False)
        self._send(
            "EXECUTE_TRANSACTION_RESPONSE",
            ExecuteTransactionResponse(transaction=transaction),
            final=True,
        )

    def _play(self) -> Transaction:
        cfg = self.config
        script = self.script
        self._update(ProcessState.CONNECTING_TO_ACCESSORY, "CONNECTING_TO_ACCESSORY",
                     ["Connecting", self.device.name], False)  # fmt: skip
        self._pause(cfg.step_delay)
        self._update(ProcessState.INITIALIZING_TRANSACTION, "INITIALIZING_TRANSACTION",
                     ["Initializing", self._money()], False)  # fmt: skip
        self._pause(cfg.step_delay)
        self._ask_amount_step()
        self._update(ProcessState.WAITING_FOR_CARD_PRESENTATION, "WAITING_FOR_CARD_PRESENTATION",
                     ["Present card", self._money()], True)  # fmt: skip
        slow = script.extra == Extra.SLOW_PRESENTATION
        self._present_card(cfg.slow_presentation if slow else cfg.step_delay)
        self.transaction = attrs.evolve(
            self.transaction,
            card_details=card_details(),
            payment_details=PaymentDetails(source="ICC", cvm=script.cvm.value),
        )
        self._update(ProcessState.PROCESSING, "READING_CARD",
                     ["Reading card", "Do not remove card"], False)  # fmt: skip
        self._pause(cfg.step_delay)
        if script.outcome == Outcome.BLOCKED:
            raise _Declined("CARD_BLOCKED", "Card blocked")
        if script.outcome == Outcome.DECLINE_AT_ONCE:
            raise _Declined("DECLINED", "Declined by the card")
        self._extra_step(script.extra)
        if script.cvm.asks_pin:
            self._update(ProcessState.WAITING_FOR_PIN, "WAITING_FOR_PIN",
                         ["Enter PIN", self._money()], True)  # fmt: skip
            self._pause(cfg.step_delay)
            online = script.cvm == Cvm.ONLINE_PIN and not self.offline
            self._update(ProcessState.PROCESSING,
                         "ONLINE_PIN_VERIFICATION" if online else "PIN_VERIFICATION",
                         ["Verifying PIN", "Please wait"], False)  # fmt: skip
            self._pause(cfg.step_delay)
            if not script.pin_correct:
                raise _Declined("PIN_INCORRECT", "Incorrect PIN")
        if not self.offline:
            self._update(ProcessState.PROCESSING, "AUTHORIZING",
                         ["Authorising", "Please wait"], False)  # fmt: skip
            self._pause(cfg.step_delay)
            if script.outcome == Outcome.DECLINE_ONLINE:
                raise _Declined("DECLINED_BY_ISSUER", "Declined by the issuer")
        if script.cvm.asks_signature:
            self._signature()
        self._update(ProcessState.WAITING_FOR_CARD_REMOVAL, "WAITING_FOR_CARD_REMOVAL",
                     ["Remove card", "Thank you"], False)  # fmt: skip
        self._pause(cfg.step_delay)
        if self.offline:
            status, code, text = TransactionStatus.ACCEPTED, "ACCEPTED", "Accepted offline"
        else:
            status, code, text = TransactionStatus.APPROVED, "APPROVED", "Transaction approved"
        approved = attrs.evolve(
            with_status(self.transaction, status, code, text), captured=not self.pre_auth
        )
        return with_receipts(
            approved,
            cfg.merchant_name,
            application_name=self._application,
            account_type=self._account_type,
            dcc_text=self._dcc_text,
            signature_on_receipt=self._signature_on_receipt,
            tip_line=bool(self.request.transaction_parameters.tip_adjustable),
        )

    def _ask_amount_step(self) -> None:
        """``processParameters.steps``: the shopper adds a tip or types a total."""
        process = self.request.process_parameters
        steps = None if process is None else process.steps
        if steps is None:
            return
        amount = self.request.transaction_parameters.amount
        if steps.ask_for_tip is not None:
            step, lines = steps.ask_for_tip, ["Add a tip?", self._money()]
            tip = step.suggested_amount or Decimal(0)
            if step.max_tip_amount is not None:
                tip = min(tip, step.max_tip_amount)
        else:
            assert steps.ask_for_total_amount is not None
            step, lines = steps.ask_for_total_amount, ["Enter total", self._money()]
            total = step.suggested_amount or amount
            tip = max(total - amount, Decimal(0))
            if step.max_tip_amount is not None:
                tip = min(tip, step.max_tip_amount)
        self._update(ProcessState.PREPARING, "ASKING_FOR_TIP", lines, True)
        self._pause(self.config.step_delay)
        self.transaction = attrs.evolve(
            self.transaction,
            amount=amount + tip,
            included_tip_amount=(self.transaction.included_tip_amount or Decimal(0)) + tip,
        )

    def _extra_step(self, extra: Extra) -> None:
        if extra == Extra.APPLICATION_SELECTION:
            applications = [Application(identifier=i, name=n) for i, n in TEST_APPLICATIONS]
            answer = self._await_action(
                ExecuteTransactionAction(
                    action=ActionType.APPLICATION_SELECTION,
                    application_selection=ApplicationSelection(applications=applications),
                ),
                ["Select application", "on the POS"],
                choices=[i for i, _ in TEST_APPLICATIONS],
            )
            chosen: SubmitApplicationSelectionRequest = answer
            self._application = dict(TEST_APPLICATIONS)[chosen.application_identifier]
        elif extra == Extra.CREDIT_DEBIT_SELECTION:
            selection: SubmitCreditDebitSelectionRequest = self._await_action(
                ExecuteTransactionAction(action=ActionType.CREDIT_DEBIT_SELECTION),
                ["Credit or debit?", "Select on the POS"],
            )
            self._account_type = str(selection.selection)
        elif extra == Extra.DCC_SELECTION:
            amount = self.transaction.amount or Decimal(0)
            currency = self.transaction.currency or ""
            converted, target, rate, markup = dcc_quote(amount, currency)
            dcc: SubmitDccSelectionRequest = self._await_action(
                ExecuteTransactionAction(
                    action=ActionType.DCC_SELECTION,
                    dcc_selection=DccSelection(
                        original_amount=amount,
                        original_currency=currency,
                        converted_amount=converted,
                        converted_currency=target,
                        exchange_rate=rate,
                        markup=markup,
                    ),
                ),
                ["Pay in your currency?", f"{converted} {target}"],
            )
            if dcc.use_converted_amount:
                self._dcc_text = f"{converted} {target} (rate {rate}, markup {markup}%)"

    def _signature(self) -> None:
        """The SIGNATURE action: after online authorisation, not abortable."""
        answer: Optional[SubmitSignatureRequest] = self._await_action(
            ExecuteTransactionAction(action=ActionType.SIGNATURE),
            ["Signature required", "Please sign"],
            abortable=False,
            optional=True,
        )
        # No answer possible any more (client gone, shutdown): sign on paper.
        self._signature_on_receipt = answer is None or not answer.signature

    # --- step helpers ---------------------------------------------------------

    def _money(self, transaction: Optional[Transaction] = None) -> str:
        transaction = transaction or self.transaction
        return format_money(transaction.amount, transaction.currency)

    def _owner_gone(self) -> bool:
        return self.session.outbox.closed

    def _update(
        self, state: ProcessState, details: str, information: List[str], abortable: bool
    ) -> None:
        with self._cond:
            # Leaving an abortable step: an abort accepted just before still wins.
            if self._abort_requested:
                raise _Aborted("ABORTED", "Aborted by the merchant")
            self._abortable = abortable
        self._send_update(state, details, information, abortable)

    def _send_update(
        self, state: ProcessState, details: str, information: List[str], abortable: bool
    ) -> None:
        self.context.latest_abortable = abortable
        self._send(
            "EXECUTE_TRANSACTION_UPDATE",
            ExecuteTransactionUpdate(
                information=information, state=state, state_details=details, abortable=abortable
            ),
        )

    def _send(self, message_type: str, data: Any, *, final: bool = False) -> None:
        self.session.outbox.send(
            Message(message_type, self.tag, self.resource, data, Status.OK),
            transaction=self.context,
            final=final,
        )

    def _pause(self, seconds: float) -> None:
        """Wait between steps; an accepted abort ends the wait, a shutdown skips it."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while True:
                if self._abort_requested:
                    raise _Aborted("ABORTED", "Aborted by the merchant")
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.engine.stopping:
                    return
                self._cond.wait(remaining)

    def _present_card(self, seconds: float) -> None:
        self._pause(seconds)
        if self.engine.stopping:
            raise _Aborted("SERVER_SHUTDOWN", "The PayServer stopped")

    def _await_action(
        self,
        action: ExecuteTransactionAction,
        information: List[str],
        *,
        abortable: bool = True,
        choices: Optional[List[str]] = None,
        optional: bool = False,
    ) -> Any:
        """Send ``EXECUTE_TRANSACTION_ACTION`` and wait for the matching
        ``SUBMIT_*_REQUEST`` (or an abort, the owner leaving, a shutdown)."""
        kind = ActionType(action.action)
        self._update(ProcessState.ACTION_REQUIRED, kind.value, information, abortable)
        with self._cond:
            self._pending, self._pending_choices, self._answer = kind, choices or [], None
        self._send("EXECUTE_TRANSACTION_ACTION", action)
        deadline = time.monotonic() + self.config.action_timeout
        with self._cond:
            try:
                while True:
                    if self._answer is not None:
                        return self._answer
                    if self._abort_requested:
                        raise _Aborted("ABORTED", "Aborted by the merchant")
                    if self.engine.stopping or self._owner_gone():
                        if optional:
                            return None
                        code = "SERVER_SHUTDOWN" if self.engine.stopping else "CLIENT_DISCONNECTED"
                        raise _Aborted(code, f"No answer to {kind.value}")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if optional:
                            return None
                        raise _Aborted("ACTION_TIMEOUT", f"No answer to {kind.value}")
                    # Polls now and then as well: the owner's outbox may close quietly.
                    self._cond.wait(min(remaining, 0.25))
            finally:
                self._pending, self._answer = None, None


def _str_or_none(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None
