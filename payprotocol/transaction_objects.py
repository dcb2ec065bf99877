"""The transaction object of P3 (p3-protocol.md section 4) and the objects
nested in it: status details, card and payment details, receipts.

Strategy: the shared shapes every transaction message carries live here, one
small attrs class each, declared by the same rules as every model (see
:mod:`payprotocol.models`, which re-exports them and is the place to import
them from). Sans-IO; imports only the enums and
:mod:`payprotocol.model_fields`.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional, Union

import attrs

from ._enums import Mode, TransactionStatus, TransactionType
from .model_fields import extra as _extra

__all__ = [
    "CardDetails",
    "PaymentDetails",
    "Receipt",
    "ReceiptLine",
    "StatusDetails",
    "Transaction",
]


@attrs.frozen
class StatusDetails:
    """``statusDetails`` of a transaction: a ``code`` and a ``description``
    of why it ended as it did (for example a decline reason)."""

    code: Optional[str] = None
    description: Optional[str] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class CardDetails:
    """``cardDetails`` of a transaction: the card's scheme, masked number,
    holder and expiry (never the full number)."""

    scheme: Optional[str] = None
    masked_card_number: Optional[str] = None
    cardholder_name: Optional[str] = None
    expiry_month: Optional[int] = None
    expiry_year: Optional[int] = None
    country_code_numeric: Optional[str] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class PaymentDetails:
    """``paymentDetails`` of a transaction: how the card was read (``source``)
    and how the cardholder was verified (``cvm``)."""

    source: Optional[str] = None
    cvm: Optional[str] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class ReceiptLine:
    """One line of a :class:`Receipt`: a ``key``, its ``label`` and ``value``."""

    key: str
    label: Optional[str] = None
    value: Optional[str] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class Receipt:
    """A merchant or customer receipt; see :mod:`payprotocol.receipts` to print it."""

    data: Dict[str, ReceiptLine] = attrs.field(factory=dict)
    merchant_details: List[ReceiptLine] = attrs.field(factory=list)
    payment_details: List[ReceiptLine] = attrs.field(factory=list)
    clearing_details: List[ReceiptLine] = attrs.field(factory=list)
    tip_line_required: bool = False
    signature_line_required: bool = False
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class Transaction:
    """The transaction object (section 4). ``status`` is the outcome of a payment:
    a declined or aborted payment is a normal ``Transaction``, not an error."""

    transaction_identifier: Optional[str] = None
    type: Optional[Union[TransactionType, str]] = None
    status: Optional[Union[TransactionStatus, str]] = None
    status_details: Optional[StatusDetails] = None
    amount: Optional[Decimal] = None
    currency: Optional[str] = None
    included_tip_amount: Optional[Decimal] = None
    subject: Optional[str] = None
    custom_identifier: Optional[str] = None
    mode: Optional[Union[Mode, str]] = None
    captured: Optional[bool] = None
    created: Optional[datetime.datetime] = None
    referenced_transaction_identifier: Optional[str] = None
    metadata: Optional[Dict[str, Any]] = None
    card_details: Optional[CardDetails] = None
    payment_details: Optional[PaymentDetails] = None
    merchant_receipt: Optional[Receipt] = None
    customer_receipt: Optional[Receipt] = None
    #: Print tip and total lines, a signature line (section 4: documented on the
    #: transaction; ``None`` when absent, then each receipt's own flag applies).
    tip_line_required: Optional[bool] = None
    signature_line_required: Optional[bool] = None
    extra_fields: Dict[str, Any] = _extra()
