"""Realistic transaction objects and receipts (p3-protocol.md section 4).

Pure builders: given what happened, they return the frozen models the engine
sends and stores. Receipts exist only for transactions that did not fail
(``APPROVED``/``ACCEPTED``): a declined or aborted payment carries none.
"""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any, List, Optional

import attrs

from ..models import (
    CardDetails,
    PaymentDetails,
    Receipt,
    ReceiptLine,
    StatusDetails,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from .cards import TEST_CARD, format_money

__all__ = ["card_details", "new_identifier", "now", "with_receipts", "with_status"]

_TYPE_TEXT = {
    TransactionType.CHARGE: "Payment",
    TransactionType.REFUND: "Refund",
    TransactionType.CAPTURE: "Capture",
    TransactionType.TIP_ADJUST: "Tip adjustment",
}

TERMINAL_ID = "12345678"


def new_identifier() -> str:
    """A fresh 32-hex-digit ``transactionIdentifier``."""
    return uuid.uuid4().hex


def now() -> datetime.datetime:
    """The current UTC time, to the second (as a reader's clock shows it)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def card_details() -> CardDetails:
    """The test card's ``cardDetails``."""
    return CardDetails(
        scheme=TEST_CARD.scheme,
        masked_card_number=TEST_CARD.masked_card_number,
        cardholder_name=TEST_CARD.cardholder_name,
        expiry_month=TEST_CARD.expiry_month,
        expiry_year=TEST_CARD.expiry_year,
        country_code_numeric=TEST_CARD.country_code_numeric,
    )


def with_status(
    transaction: Transaction, status: TransactionStatus, code: str, description: str
) -> Transaction:
    """``transaction`` with a new ``status`` and ``statusDetails``."""
    return _evolve(
        transaction, status=status, status_details=StatusDetails(code=code, description=description)
    )


def _evolve(transaction: Transaction, **changes: Any) -> Transaction:
    return attrs.evolve(transaction, **changes)


def _line(key: str, label: str, value: str) -> ReceiptLine:
    return ReceiptLine(key=key, label=label, value=value)


def _money(amount: Optional[Decimal], currency: Optional[str]) -> str:
    return format_money(amount, currency)


def _receipt(
    transaction: Transaction,
    receipt_type: str,
    merchant_name: str,
    payment_lines: List[ReceiptLine],
    *,
    signature_line: bool,
    tip_line: bool,
) -> Receipt:
    created = transaction.created or now()
    data = {
        line.key: line
        for line in (
            _line("RECEIPT_TYPE", "Receipt", receipt_type),
            _line(
                "TRANSACTION_TYPE",
                "Type",
                _TYPE_TEXT.get(transaction.type, str(transaction.type)),  # type: ignore[call-overload]
            ),
            _line("SUBJECT", "Subject", transaction.subject or ""),
            _line(
                "AMOUNT_AND_CURRENCY", "Amount", _money(transaction.amount, transaction.currency)
            ),
            _line("STATUS_TEXT", "Status", str(transaction.status)),
            _line("DATE", "Date", created.strftime("%d/%m/%Y")),
            _line("TIME", "Time", created.strftime("%H:%M:%S")),
        )
    }
    if not transaction.subject:
        del data["SUBJECT"]
    return Receipt(
        data=data,
        merchant_details=[
            _line("NAME", "Merchant", merchant_name),
            _line("ADDRESS", "Address", "1 Simulator Street, Berlin"),
        ],
        payment_details=payment_lines,
        clearing_details=[
            _line("TERMINAL_ID", "TID", TERMINAL_ID),
            _line("MERCHANT_ID", "MID", "SIM0001"),
            _line(
                "TRANSACTION_IDENTIFIER", "Transaction", transaction.transaction_identifier or ""
            ),
            _line(
                "AUTHORIZATION_CODE", "Auth code", (transaction.transaction_identifier or "")[:6]
            ),
        ],
        tip_line_required=tip_line,
        signature_line_required=signature_line,
    )


def with_receipts(
    transaction: Transaction,
    merchant_name: str,
    *,
    application_name: Optional[str] = None,
    account_type: Optional[str] = None,
    dcc_text: Optional[str] = None,
    signature_on_receipt: bool = False,
    tip_line: bool = False,
) -> Transaction:
    """``transaction`` with merchant and customer receipts added.

    The merchant copy gets a signature line when the shopper signs on paper;
    the tip line appears on both when the charge is tip adjustable. The
    transaction carries both flags as well (``tipLineRequired``,
    ``signatureLineRequired``: section 4).
    """
    details = transaction.card_details or card_details()
    payment: PaymentDetails = transaction.payment_details or PaymentDetails()
    lines = [
        _line("SCHEME", "Card", details.scheme or ""),
        _line("MASKED_ACCOUNT", "Card number", details.masked_card_number or ""),
        _line("APPLICATION", "Application", application_name or "VISA CREDIT"),
        _line("ENTRY_MODE", "Entry", payment.source or "ICC"),
        _line("CVM", "Verification", payment.cvm or "NONE"),
    ]
    if account_type:
        lines.append(_line("ACCOUNT_TYPE", "Account", account_type))
    if dcc_text:
        lines.append(_line("DCC", "Converted amount", dcc_text))
    merchant = _receipt(
        transaction,
        "Merchant Receipt",
        merchant_name,
        lines,
        signature_line=signature_on_receipt,
        tip_line=tip_line,
    )
    customer = _receipt(
        transaction,
        "Customer Receipt",
        merchant_name,
        lines,
        signature_line=False,
        tip_line=tip_line,
    )
    # Section 4: the vendor documents the two flags on the transaction; they stay
    # inside each receipt too (the merchant copy's signature line is the one).
    return _evolve(
        transaction,
        merchant_receipt=merchant,
        customer_receipt=customer,
        tip_line_required=tip_line,
        signature_line_required=signature_on_receipt,
    )
