"""The simulator's transaction store and the amend ledger (p3-protocol.md 3.5, 3.6).

Every transaction the simulator creates is kept here, from its creation
(status ``INITIALIZED``/``PENDING``) to its final status, so that a client that
lost a response can look it up with ``GET_TRANSACTION_REQUEST``. The store
belongs to the :class:`~payprotocol.simulator.Simulator`, not to a server run:
it survives ``stop()``/``start()`` and ``restart()``.

Amend rules are checked and booked here, under the store's lock, so two
refunds racing on two connections can never exceed what is left of a charge.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Dict, List, Optional

import attrs

from ..models import AmendParameters, Transaction, TransactionStatus, TransactionType

__all__ = ["AmendPlan", "AmendRefused", "StoredTransaction", "TransactionStore"]

_FINAL_OK = (TransactionStatus.APPROVED, TransactionStatus.ACCEPTED)


@attrs.define
class StoredTransaction:
    """One stored transaction with the bookkeeping amends need."""

    transaction: Transaction
    merchant: str
    pre_authorisation: bool = False
    captured_amount: Optional[Decimal] = None  # for a pre-authorisation, once captured
    refunded: Decimal = Decimal(0)
    tip: Decimal = Decimal(0)  # the latest tip adjust

    @property
    def refundable(self) -> Decimal:
        """What a refund may still return: the captured amount plus tip, minus refunds."""
        if self.pre_authorisation:
            base = self.captured_amount if self.captured_amount is not None else Decimal(0)
        else:
            base = self.transaction.amount or Decimal(0)
        return base + self.tip - self.refunded


class AmendRefused(Exception):
    """An amend request breaks a rule; ``error_type`` is the P3 error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@attrs.frozen
class AmendPlan:
    """A booked amend: what the new transaction will be."""

    type: TransactionType
    amount: Decimal
    currency: str
    included_tip_amount: Optional[Decimal]
    referenced: Transaction


class TransactionStore:
    """Thread-safe store of every simulated transaction, by transaction
    identifier and by custom identifier (the latest one wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: Dict[str, StoredTransaction] = {}
        self._by_custom: Dict[str, str] = {}

    # --- public lookups ----------------------------------------------------

    def get(self, transaction_identifier: str) -> Optional[Transaction]:
        """The transaction with this ``transactionIdentifier``, or ``None``."""
        with self._lock:
            record = self._records.get(transaction_identifier)
            return None if record is None else record.transaction

    def get_by_custom_identifier(self, custom_identifier: str) -> Optional[Transaction]:
        """The latest transaction created with this ``customIdentifier``, or ``None``."""
        with self._lock:
            identifier = self._by_custom.get(custom_identifier)
            return None if identifier is None else self._records[identifier].transaction

    def transactions(self) -> List[Transaction]:
        """Every stored transaction, oldest first."""
        with self._lock:
            return [record.transaction for record in self._records.values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __contains__(self, transaction_identifier: object) -> bool:
        with self._lock:
            return transaction_identifier in self._records

    def clear(self) -> None:
        """Forget every transaction."""
        with self._lock:
            self._records.clear()
            self._by_custom.clear()

    # --- used by the engine ------------------------------------------------

    def put(self, record: StoredTransaction) -> None:
        """Add (or replace) a transaction."""
        identifier = record.transaction.transaction_identifier
        assert identifier is not None
        with self._lock:
            self._records[identifier] = record
            if record.transaction.custom_identifier:
                self._by_custom[record.transaction.custom_identifier] = identifier

    def update(self, transaction: Transaction) -> None:
        """Replace the stored snapshot of a transaction (its status moved on)."""
        identifier = transaction.transaction_identifier
        assert identifier is not None
        with self._lock:
            self._records[identifier].transaction = transaction

    def lookup(
        self,
        merchant: str,
        *,
        transaction_identifier: Optional[str] = None,
        custom_identifier: Optional[str] = None,
    ) -> Optional[Transaction]:
        """A merchant's transaction by either identifier (merchants do not see
        each other's transactions)."""
        with self._lock:
            identifier = transaction_identifier
            if identifier is None and custom_identifier is not None:
                identifier = self._by_custom.get(custom_identifier)
            record = None if identifier is None else self._records.get(identifier)
            if record is None or record.merchant != merchant:
                return None
            return record.transaction

    def book_amend(self, merchant: str, parameters: AmendParameters) -> AmendPlan:
        """Check an ``AMEND_TRANSACTION_REQUEST`` against section 3.5's rules and
        book it. Raises :class:`AmendRefused` naming the rule that failed."""
        with self._lock:
            record = self._records.get(parameters.referenced_transaction_identifier)
            if record is None or record.merchant != merchant:
                raise AmendRefused(
                    "TRANSACTION_NOT_FOUND",
                    f"no transaction {parameters.referenced_transaction_identifier!r}",
                )
            charge = record.transaction
            if charge.type != TransactionType.CHARGE or charge.status not in _FINAL_OK:
                raise AmendRefused(
                    "INVALID_REQUEST",
                    "only an approved or accepted CHARGE can be amended; "
                    f"this is a {charge.type} with status {charge.status}",
                )
            currency = charge.currency or ""
            if parameters.currency is not None and parameters.currency != currency:
                raise AmendRefused(
                    "INVALID_REQUEST",
                    f"currency {parameters.currency} differs from the charge's {currency}",
                )
            kind = parameters.type
            if kind == TransactionType.REFUND:
                return self._book_refund(record, parameters, currency)
            if kind == TransactionType.CAPTURE:
                return self._book_capture(record, parameters, currency)
            if kind == TransactionType.TIP_ADJUST:
                return self._book_tip_adjust(record, parameters, currency)
            raise AmendRefused(
                "INVALID_REQUEST",
                "amendTransactionRequest.transactionParameters.type must be "
                f"REFUND, CAPTURE or TIP_ADJUST, got {kind!r}",
            )

    @staticmethod
    def _book_refund(
        record: StoredTransaction, parameters: AmendParameters, currency: str
    ) -> AmendPlan:
        if record.pre_authorisation and record.captured_amount is None:
            raise AmendRefused(
                "INVALID_REQUEST",
                "a pre-authorisation is captured, not refunded: capture it first",
            )
        left = record.refundable
        if left <= 0:
            raise AmendRefused("INVALID_REQUEST", "nothing is left to refund on this charge")
        amount = left if parameters.amount is None else parameters.amount
        if amount > left:
            raise AmendRefused(
                "INVALID_REQUEST",
                f"refund of {amount} {currency} exceeds the {left} {currency} left to refund",
            )
        record.refunded += amount
        return AmendPlan(TransactionType.REFUND, amount, currency, None, record.transaction)

    @staticmethod
    def _book_capture(
        record: StoredTransaction, parameters: AmendParameters, currency: str
    ) -> AmendPlan:
        if not record.pre_authorisation:
            raise AmendRefused(
                "INVALID_REQUEST", "only a pre-authorisation (autoCapture false) can be captured"
            )
        if record.captured_amount is not None:
            raise AmendRefused("INVALID_REQUEST", "this pre-authorisation is already captured")
        authorised = record.transaction.amount or Decimal(0)
        amount = authorised if parameters.amount is None else parameters.amount
        if amount > authorised:
            raise AmendRefused(
                "INVALID_REQUEST",
                f"capture of {amount} {currency} exceeds the {authorised} {currency} authorised",
            )
        record.captured_amount = amount
        record.transaction = attrs.evolve(record.transaction, captured=True)
        return AmendPlan(TransactionType.CAPTURE, amount, currency, None, record.transaction)

    @staticmethod
    def _book_tip_adjust(
        record: StoredTransaction, parameters: AmendParameters, currency: str
    ) -> AmendPlan:
        tip = parameters.included_tip_amount
        if tip is None:
            raise AmendRefused(
                "INVALID_REQUEST",
                "amendTransactionRequest.transactionParameters.includedTipAmount is required "
                "for TIP_ADJUST",
            )
        if record.refunded > 0:
            raise AmendRefused("INVALID_REQUEST", "a refunded charge cannot be tip adjusted")
        # The tip goes on what the shopper pays: a captured pre-authorisation's
        # captured amount (40.00 authorised, 30.00 captured, tip 2.00: 32.00).
        if record.pre_authorisation and record.captured_amount is not None:
            base = record.captured_amount
        else:
            base = record.transaction.amount or Decimal(0)
        record.tip = tip
        return AmendPlan(TransactionType.TIP_ADJUST, base + tip, currency, tip, record.transaction)
