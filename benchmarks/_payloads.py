"""Sample P3 objects shared by the benchmarks: one realistic transaction, as
the wire dict a PayServer sends (amounts as ``Decimal``; write it with
``payprotocol.codec.dumps``, which keeps them exact)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict

TRANSACTION_ID = "9a1e4c0b7d2f4e1a8c3b5d6e7f809112"


def _line(key: str, label: str, value: str) -> Dict[str, str]:
    return {"key": key, "label": label, "value": value}


def _receipt(kind: str) -> Dict[str, Any]:
    return {
        "data": {
            "RECEIPT_TYPE": _line("RECEIPT_TYPE", "Receipt", kind),
            "TRANSACTION_TYPE": _line("TRANSACTION_TYPE", "Type", "Payment"),
            "SUBJECT": _line("SUBJECT", "Subject", "Table 4"),
            "AMOUNT_AND_CURRENCY": _line("AMOUNT_AND_CURRENCY", "Amount", "10.00 EUR"),
            "STATUS_TEXT": _line("STATUS_TEXT", "Status", "APPROVED"),
            "DATE": _line("DATE", "Date", "29/11/2026"),
            "TIME": _line("TIME", "Time", "12:00:00"),
        },
        "merchantDetails": [
            _line("NAME", "Merchant", "Cafe Central"),
            _line("ADDRESS", "Address", "Herrengasse 14"),
            _line("ZIP_CITY", "City", "1010 Wien"),
            _line("PHONE", "Phone", "+43 1 533 37 63"),
        ],
        "paymentDetails": [
            _line("SCHEME", "Card", "VISA"),
            _line("MASKED_ACCOUNT", "Account", "************0119"),
            _line("AID", "AID", "A0000000031010"),
            _line("ENTRY_MODE", "Entry", "Chip"),
            _line("CVM", "Verification", "Signature"),
        ],
        "clearingDetails": [
            _line("TERMINAL_ID", "TID", "12345678"),
            _line("MERCHANT_ID", "MID", "000000012345678"),
            _line("TRANSACTION_ID", "Transaction", TRANSACTION_ID),
            _line("AUTHORIZATION_CODE", "Auth code", "123456"),
        ],
        "tipLineRequired": False,
        "signatureLineRequired": kind == "Merchant Receipt",
    }


def transaction(*, with_receipts: bool) -> Dict[str, Any]:
    """An approved 10.00 EUR charge (section 4 of the contract)."""
    wire: Dict[str, Any] = {
        "transactionIdentifier": TRANSACTION_ID,
        "type": "CHARGE",
        "status": "APPROVED",
        "statusDetails": {"code": "APPROVED", "description": "Transaction approved"},
        "amount": Decimal("10.00"),
        "currency": "EUR",
        "includedTipAmount": Decimal("0.00"),
        "subject": "Table 4",
        "customIdentifier": "order4711",
        "mode": "ONLINE",
        "captured": True,
        "created": "2026-11-29T12:00:00Z",
        "referencedTransactionIdentifier": None,
        "metadata": {"clerk": "anna"},
        "cardDetails": {
            "scheme": "VISA",
            "maskedCardNumber": "************0119",
            "cardholderName": "A SHOPPER",
            "expiryMonth": 12,
            "expiryYear": 2030,
            "countryCodeNumeric": "276",
        },
        "paymentDetails": {"source": "ICC", "cvm": "SIGNATURE"},
    }
    if with_receipts:
        wire["merchantReceipt"] = _receipt("Merchant Receipt")
        wire["customerReceipt"] = _receipt("Customer Receipt")
    return wire
