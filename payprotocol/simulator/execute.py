"""The execute run: one card payment on one reader, step by step
(p3-protocol.md sections 3.3 and 3.4). No sockets here.

Strategy: :class:`ExecuteRun` is a :class:`~.runs.TransactionRun` whose steps
follow the test card's script (:func:`~.cards.card_script`: the amount decides
the verification, the extra step and the outcome). It lives in time: it waits
for the card, for the shopper, for an action answer or an abort. Sessions on
other threads deliver answers and aborts through :meth:`ExecuteRun.answer`
and :meth:`ExecuteRun.abort` under the run's condition; the run checks the
abort flag at every step boundary, so an accepted abort always ends the
transaction ``ABORTED``. A shutdown skips the waits; an owner that went away
cannot answer an action any more.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from decimal import Decimal
from typing import Any, Callable, List, Optional, Protocol

import attrs

from ..models import (
    ActionType,
    Application,
    ApplicationSelection,
    DccSelection,
    ExecuteTransactionAction,
    ExecuteTransactionRequest,
    ExecuteTransactionResponse,
    ExecuteTransactionUpdate,
    Mode,
    PaymentDetails,
    ProcessState,
    SubmitApplicationSelectionRequest,
    SubmitCreditDebitSelectionRequest,
    SubmitDccSelectionRequest,
    SubmitSignatureRequest,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from .cards import TEST_APPLICATIONS, Cvm, Extra, Outcome, card_script, dcc_quote
from .config import SimulatedDevice
from .outbox import Outbox, Refusal
from .records import card_details, new_identifier, now, with_receipts, with_status
from .runs import RunHost, TransactionEnded, TransactionRun
from .store import StoredTransaction

__all__ = ["ExecuteHost", "ExecuteRun"]


class ExecuteHost(RunHost, Protocol):
    """The engine as an execute run sees it: a run host with the reader registry."""

    def claim(self, run: ExecuteRun) -> None: ...


def _merchant_abort() -> TransactionEnded:
    return TransactionEnded.aborted("ABORTED", "Aborted by the merchant")


class ExecuteRun(TransactionRun):
    """One card transaction on one reader (``EXECUTE_TRANSACTION_REQUEST``).

    It lives in time: it waits for the card, the shopper, an action answer or
    an abort, which other threads (the sessions) deliver through
    :meth:`abort` and :meth:`answer` under the run's condition.
    """

    kind = "EXECUTE"
    host: ExecuteHost
    update_model = ExecuteTransactionUpdate
    response_model = ExecuteTransactionResponse

    @classmethod
    def prepare(
        cls,
        host: ExecuteHost,
        outbox: Outbox,
        tag: str,
        device: SimulatedDevice,
        request: ExecuteTransactionRequest,
        merchant: str,
    ) -> ExecuteRun:
        """Check that the reader can take a payment now."""
        if not device.connected:
            raise Refusal("DEVICE_NOT_CONNECTED", f"{device.resource} is not connected")
        return cls(host, outbox, tag, device, request, merchant)

    def __init__(
        self,
        host: ExecuteHost,
        outbox: Outbox,
        tag: str,
        device: SimulatedDevice,
        request: ExecuteTransactionRequest,
        merchant: str,
    ) -> None:
        parameters = request.transaction_parameters
        super().__init__(
            host,
            outbox,
            tag,
            device.resource,
            merchant,
            Transaction(
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
            ),
        )
        self.resource: str = device.resource
        self.device = device
        self.request = request
        self.pre_auth = parameters.auto_capture is False  # absent reads as true (3.2)
        self.offline = request.mode == Mode.OFFLINE
        self.script = card_script(parameters.amount)
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

    # --- the shared shape: register and final-response hooks ------------------

    @property
    def thread_name(self) -> str:
        return f"p3sim-execute-{self.device.identifier}"

    def stored(self) -> StoredTransaction:
        return StoredTransaction(self.transaction, self.merchant, pre_authorisation=self.pre_auth)

    def start(self) -> None:
        """Claim the reader (``DEVICE_BUSY`` when another transaction runs there), then play."""
        self.host.claim(self)
        super().start()

    def _end(self) -> None:
        with self._cond:
            self._finished = True
            self._abortable = False
            self._pending = None

    def _approved_lines(self, transaction: Transaction) -> List[str]:
        return [
            "Approved" if transaction.status == TransactionStatus.APPROVED else "Accepted",
            self._money(transaction),
        ]

    # --- called by sessions (other threads) --------------------------------

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def abort(self, accept: Callable[[], None]) -> None:
        """``ABORT_TRANSACTION_REQUEST``: accept (calling ``accept`` to send the
        OK) or raise ``TRANSACTION_NOT_ABORTABLE`` / ``TRANSACTION_NOT_FOUND``."""
        with self._cond:
            if self._finished:
                raise Refusal("TRANSACTION_NOT_FOUND", f"no transaction runs on {self.resource}")
            if not self._abortable:
                raise Refusal(
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
                raise Refusal(
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
                raise Refusal(
                    "INVALID_REQUEST",
                    f"submitApplicationSelectionRequest.applicationIdentifier {chosen!r} "
                    f"is not one of {', '.join(self._pending_choices)}",
                )
        elif action == ActionType.SIGNATURE and data.signature:
            try:
                base64.b64decode(data.signature, validate=True)
            except (binascii.Error, ValueError):
                raise Refusal(
                    "INVALID_REQUEST", "submitSignatureRequest.signature is not valid base64"
                ) from None

    # --- the steps -----------------------------------------------------------

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
            raise TransactionEnded.declined("CARD_BLOCKED", "Card blocked")
        if script.outcome == Outcome.DECLINE_AT_ONCE:
            raise TransactionEnded.declined("DECLINED", "Declined by the card")
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
                raise TransactionEnded.declined("PIN_INCORRECT", "Incorrect PIN")
        if not self.offline:
            self._update(ProcessState.PROCESSING, "AUTHORIZING",
                         ["Authorising", "Please wait"], False)  # fmt: skip
            self._pause(cfg.step_delay)
            if script.outcome == Outcome.DECLINE_ONLINE:
                raise TransactionEnded.declined("DECLINED_BY_ISSUER", "Declined by the issuer")
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

    # --- step helpers (overrides and additions) --------------------------------

    def _owner_gone(self) -> bool:
        return self.outbox.closed

    def _update(
        self, state: ProcessState, details: str, information: List[str], abortable: bool
    ) -> None:
        with self._cond:
            # Leaving an abortable step: an abort accepted just before still wins.
            if self._abort_requested:
                raise _merchant_abort()
            self._abortable = abortable
        self._send_update(state, details, information, abortable)

    def _pause(self, seconds: float) -> None:
        """Wait between steps; an accepted abort ends the wait, a shutdown skips it."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while True:
                if self._abort_requested:
                    raise _merchant_abort()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.host.stopping:
                    return
                self._cond.wait(remaining)

    def _present_card(self, seconds: float) -> None:
        self._pause(seconds)
        if self.host.stopping:
            raise TransactionEnded.aborted("SERVER_SHUTDOWN", "The PayServer stopped")

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
                        raise _merchant_abort()
                    if self.host.stopping or self._owner_gone():
                        if optional:
                            return None
                        code = "SERVER_SHUTDOWN" if self.host.stopping else "CLIENT_DISCONNECTED"
                        raise TransactionEnded.aborted(code, f"No answer to {kind.value}")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if optional:
                            return None
                        raise TransactionEnded.aborted(
                            "ACTION_TIMEOUT", f"No answer to {kind.value}"
                        )
                    # Polls now and then as well: the owner's outbox may close quietly.
                    self._cond.wait(min(remaining, 0.25))
            finally:
                self._pending, self._answer = None, None
