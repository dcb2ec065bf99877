"""The shape every simulated transaction follows, and the amend run
(p3-protocol.md sections 3.3 to 3.6). No sockets here.

Strategy: an execute (:class:`~.execute.ExecuteRun`, a card payment on a
reader) and an amend (:class:`AmendRun`: refund, capture, tip adjust) are both
a :class:`TransactionRun`, played on its own thread in four parts:

1. *validate* -- ``prepare(...)`` checks the request against the simulator's
   state (the reader is connected; the amend's ledger rules, booked under the
   store's lock) and raises :class:`~.outbox.Refusal` for an ``ERROR`` response;
2. *register* -- :meth:`TransactionRun.start` claims the reader (execute only),
   puts the new transaction in the store and spawns the run's thread;
3. *steps* -- ``_play()`` sends the updates (and actions) and returns the
   approved transaction, or raises :class:`TransactionEnded` (declined,
   aborted);
4. *final response* -- :meth:`TransactionRun.run` stores the outcome, frees
   the reader, then sends the last update and the final response, in that
   order, so a lookup never lags the response and the next payment may start
   as soon as the client has it.

A run knows the engine only as a :class:`RunHost` (config, store, threads,
the shutdown flag), so the runs do not import the engine.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, ClassVar, Dict, List, Optional, Protocol, Tuple

from ..models import (
    AmendParameters,
    AmendTransactionRequest,
    AmendTransactionResponse,
    AmendTransactionUpdate,
    Message,
    Mode,
    ProcessState,
    Status,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from .cards import format_money
from .config import SimulatorConfig
from .outbox import Outbox, Refusal, TransactionContext
from .records import new_identifier, now, with_receipts, with_status
from .store import AmendRefused, StoredTransaction, TransactionStore

__all__ = ["AmendRun", "RunHost", "TransactionEnded", "TransactionRun"]

log = logging.getLogger("payprotocol.simulator")


class TransactionEnded(Exception):
    """The run ends before approval: the transaction is declined or aborted.

    ``status`` is the transaction's final status, ``code`` and ``description``
    its status details.
    """

    _ENDINGS: ClassVar[Dict[TransactionStatus, Tuple[ProcessState, str]]] = {
        TransactionStatus.ABORTED: (ProcessState.ABORTED, "Aborted"),
        TransactionStatus.DECLINED: (ProcessState.DECLINED, "Declined"),
    }

    def __init__(self, status: TransactionStatus, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description

    @classmethod
    def aborted(cls, code: str, description: str) -> TransactionEnded:
        """Ends the transaction ``ABORTED`` (merchant abort, timeout, shutdown...)."""
        return cls(TransactionStatus.ABORTED, code, description)

    @classmethod
    def declined(cls, code: str, description: str) -> TransactionEnded:
        """Ends the transaction ``DECLINED`` (by the card, the PIN or the issuer)."""
        return cls(TransactionStatus.DECLINED, code, description)

    @property
    def state(self) -> ProcessState:
        """The state of the run's last update."""
        return self._ENDINGS[self.status][0]

    @property
    def information(self) -> List[str]:
        """The display lines of the run's last update."""
        return [self._ENDINGS[self.status][1], self.description]


class RunHost(Protocol):
    """The engine as a run sees it (:class:`~.engine.PayServerEngine`)."""

    @property
    def config(self) -> SimulatorConfig: ...

    @property
    def store(self) -> TransactionStore: ...

    @property
    def stopping(self) -> bool: ...

    def wait_stopping(self, seconds: float) -> bool: ...

    def release(self, run: TransactionRun) -> None: ...

    def spawn(self, name: str, target: Callable[[], None]) -> None: ...


class TransactionRun:
    """What an execute and an amend share: registering, the final response,
    and the helpers that send a run's messages. Subclasses give the steps."""

    kind: ClassVar[str]  # "EXECUTE" or "AMEND": the message type prefix
    update_model: ClassVar[Any]
    response_model: ClassVar[Any]

    def __init__(
        self,
        host: RunHost,
        outbox: Outbox,
        tag: str,
        resource: Optional[str],
        merchant: str,
        transaction: Transaction,
    ) -> None:
        self.host = host
        self.config = host.config
        self.outbox = outbox
        self.tag = tag
        self.resource = resource
        self.merchant = merchant
        self.transaction = transaction
        self.context = TransactionContext(tag, resource, self.kind)

    # --- register -------------------------------------------------------------

    @property
    def thread_name(self) -> str:
        return f"p3sim-{self.kind.lower()}"

    def stored(self) -> StoredTransaction:
        """The store's record of the new transaction."""
        return StoredTransaction(self.transaction, self.merchant)

    def start(self) -> None:
        """Register the run (store the pending transaction) and play it on its thread."""
        self.host.store.put(self.stored())
        self.host.spawn(self.thread_name, self.run)

    def wake(self) -> None:
        """Something the run waits on may have changed (abort, owner gone, shutdown)."""

    # --- the run ----------------------------------------------------------------

    def run(self) -> None:
        """The run's thread: the steps, then the outcome and the final response."""
        try:
            try:
                transaction = self._play()
            except TransactionEnded as ended:
                transaction = with_status(
                    self.transaction, ended.status, ended.code, ended.description
                )
                state, lines = ended.state, ended.information
            else:
                state, lines = ProcessState.APPROVED, self._approved_lines(transaction)
        except Exception:
            log.exception("simulated transaction %s failed", self.tag)
            transaction = with_status(
                self.transaction, TransactionStatus.ERROR, "INTERNAL_ERROR", "Simulator error"
            )
            state, lines = ProcessState.FAILED, ["Error", "Simulator error"]
        self._end()
        # Store first, free the device, then tell the client: see the module docstring.
        self.host.store.update(transaction)
        self.host.release(self)
        log.info(
            "%s %s%s: %s (%s)",
            transaction.type,
            transaction.transaction_identifier,
            "" if self.resource is None else f" on {self.resource}",
            transaction.status,
            self._money(transaction),
        )
        self._send_update(state, str(state), lines, False)
        self._send(
            f"{self.kind}_TRANSACTION_RESPONSE",
            self.response_model(transaction=transaction),
            final=True,
        )

    def _play(self) -> Transaction:
        """The steps; returns the approved transaction or raises TransactionEnded."""
        raise NotImplementedError

    def _approved_lines(self, transaction: Transaction) -> List[str]:
        """The display lines of an approved run's last update."""
        raise NotImplementedError

    def _end(self) -> None:
        """The steps are over (before the outcome is stored): refuse what comes late."""

    # --- step helpers -------------------------------------------------------------

    def _money(self, transaction: Optional[Transaction] = None) -> str:
        transaction = transaction or self.transaction
        return format_money(transaction.amount, transaction.currency)

    def _pause(self, seconds: float) -> None:
        """Wait between steps; a shutdown skips the wait."""
        self.host.wait_stopping(seconds)

    def _update(
        self, state: ProcessState, details: str, information: List[str], abortable: bool
    ) -> None:
        """One step's update."""
        self._send_update(state, details, information, abortable)

    def _send_update(
        self, state: ProcessState, details: str, information: List[str], abortable: bool
    ) -> None:
        self.context.latest_abortable = abortable
        self._send(
            f"{self.kind}_TRANSACTION_UPDATE",
            self.update_model(
                information=information, state=state, state_details=details, abortable=abortable
            ),
        )

    def _send(self, message_type: str, data: Any, *, final: bool = False) -> None:
        self.outbox.send(
            Message(message_type, self.tag, self.resource, data, Status.OK),
            transaction=self.context,
            final=final,
        )


class AmendRun(TransactionRun):
    """A refund, capture or tip adjust of an earlier charge. Not abortable and
    without a reader: it is processed and approved."""

    kind = "AMEND"
    update_model = AmendTransactionUpdate
    response_model = AmendTransactionResponse

    _VERBS: ClassVar[Dict[TransactionType, Tuple[str, str]]] = {
        TransactionType.REFUND: ("Refunding", "Refunded"),
        TransactionType.CAPTURE: ("Capturing", "Captured"),
        TransactionType.TIP_ADJUST: ("Adjusting tip", "Tip adjusted"),
    }

    @classmethod
    def prepare(
        cls,
        host: RunHost,
        outbox: Outbox,
        tag: str,
        request: AmendTransactionRequest,
        merchant: str,
    ) -> AmendRun:
        """Check the amend rules and book the amend (``AMEND_TRANSACTION_REQUEST``)."""
        parameters: AmendParameters = request.transaction_parameters
        try:
            plan = host.store.book_amend(merchant, parameters)
        except AmendRefused as exc:
            raise Refusal(exc.error_type, exc.message) from None
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
        return cls(host, outbox, tag, None, merchant, transaction)

    def _play(self) -> Transaction:
        verb = self._VERBS[TransactionType(self.transaction.type)][0]
        self._pause(self.config.step_delay)
        self._update(ProcessState.PROCESSING, "PROCESSING_AMEND", [verb, self._money()], False)
        self._pause(self.config.step_delay)
        return with_receipts(
            with_status(
                self.transaction, TransactionStatus.APPROVED, "APPROVED", "Transaction approved"
            ),
            self.config.merchant_name,
        )

    def _approved_lines(self, transaction: Transaction) -> List[str]:
        return [self._VERBS[TransactionType(transaction.type)][1], self._money(transaction)]
