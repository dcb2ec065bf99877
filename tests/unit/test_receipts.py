"""The receipt formatter: printing order, widths, tip and signature lines."""

from __future__ import annotations

from typing import List, Optional

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from payprotocol import Receipt, ReceiptLine, Transaction, decode_message
from payprotocol.receipts import MIN_WIDTH, format_receipt

from . import _strategies as strategies
from .test_codec import EXAMPLES

pytestmark = pytest.mark.unit

WIDTHS = [24, 32, 40, 48]


def _line(key: str, label: Optional[str], value: Optional[str]) -> ReceiptLine:
    return ReceiptLine(key, label, value)


def _data(*lines: ReceiptLine) -> dict[str, ReceiptLine]:
    return {line.key: line for line in lines}


FULL = Receipt(
    data=_data(
        _line("SUBJECT", "Subject", "Table 4"),  # deliberately first: order comes from P3
        _line("TIME", "Time", "12:00:00"),
        _line("DATE", "Date", "29/11/2026"),
        _line("STATUS_TEXT", "Status", "APPROVED"),
        _line("AMOUNT_AND_CURRENCY", "Amount", "10.00 EUR"),
        _line("TRANSACTION_TYPE", "Type", "Payment"),
        _line("RECEIPT_TYPE", "Receipt", "Merchant Receipt"),
    ),
    merchant_details=[
        _line("NAME", "Merchant", "Cafe Central"),
        _line("ADDRESS", "Address", "Herrengasse 14, 1010 Wien, Austria"),
    ],
    payment_details=[
        _line("SCHEME", "Card", "VISA"),
        _line("MASKED_ACCOUNT", "Account", "************0119"),
    ],
    clearing_details=[
        _line("TERMINAL_ID", "TID", "12345678"),
        _line("TRANSACTION_ID", "Transaction", "9a1e4c0b7d2f4e1a8c3b5d6e7f809112"),
    ],
    tip_line_required=True,
    signature_line_required=True,
)

# Text that marks each step of the P3 printing order, in that order.
ORDER = [
    "Cafe Central",
    "Merchant Receipt",
    "10.00 EUR",
    "VISA",
    "APPROVED",
    "29/11/2026",
    "12:00:00",
    "12345678",
    "Tip",
    "Total",
    "Cardholder signature",
    "Table 4",
]


def _lines(text: str) -> List[str]:
    return text.split("\n")


@pytest.mark.parametrize("width", WIDTHS)
def test_follows_the_p3_printing_order(width: int) -> None:
    text = format_receipt(FULL, width)
    positions = [text.index(marker) for marker in ORDER]
    assert positions == sorted(positions), text


@pytest.mark.parametrize("width", WIDTHS)
def test_no_line_is_wider_than_the_printer(width: int) -> None:
    for line in _lines(format_receipt(FULL, width)):
        assert len(line) <= width, repr(line)


def test_label_left_value_right() -> None:
    lines = _lines(format_receipt(FULL, 40))
    assert "Amount                         10.00 EUR" in lines
    assert "Card                                VISA" in lines
    assert all(len(line) == 40 for line in lines if line.startswith(("Amount", "Card ")))


@pytest.mark.parametrize("width", WIDTHS)
def test_long_values_wrap_right_aligned_and_lose_nothing(width: int) -> None:
    lines = _lines(format_receipt(FULL, width))
    # The identifier has no spaces: broken across lines when wider than the paper.
    joined = "".join(line.strip() for line in lines)
    assert "9a1e4c0b7d2f4e1a8c3b5d6e7f809112" in joined
    assert "Herrengasse14,1010Wien,Austria" in joined.replace(" ", "")
    if width < len("Transaction") + 1 + 32:
        at = lines.index("Transaction")
        assert lines[at + 1].endswith(("9a1e4c0b7d2f4e1a8c3b5d6e7f809112"[:width],))
        assert lines[at + 1] and len(lines[at + 1]) == width


def test_a_value_that_fits_stays_on_the_label_line() -> None:
    assert "Receipt         Merchant Receipt" in _lines(format_receipt(FULL, 32))
    assert "Receipt Merchant Receipt" in _lines(format_receipt(FULL, 24))  # exactly fits
    narrow = _lines(format_receipt(FULL, 20))  # 20 < 7 + 1 + 16: the label stands alone
    at = narrow.index("Receipt")
    assert narrow[at + 1] == "Merchant Receipt".rjust(20)


@pytest.mark.parametrize("width", WIDTHS)
def test_tip_and_total_lines_only_when_required(width: int) -> None:
    with_tip = _lines(format_receipt(FULL, width))
    tip = [line for line in with_tip if line.startswith(("Tip ", "Total "))]
    assert len(tip) == 2 and all(line.endswith("____") and len(line) == width for line in tip)
    without = format_receipt(attrs.evolve(FULL, tip_line_required=False), width)
    assert (
        "Tip" not in without
        and "Total " not in without
        and "____" not in without.replace("X" + "_" * (width - 1), "")
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_signature_line_only_when_required(width: int) -> None:
    text = format_receipt(FULL, width)
    assert "X" + "_" * (width - 1) in _lines(text)
    assert "Cardholder signature" in text
    without = format_receipt(attrs.evolve(FULL, signature_line_required=False), width)
    assert "Cardholder signature" not in without and "X___" not in without


@pytest.mark.parametrize(
    ("on_transaction", "on_receipt", "printed"),
    [
        (True, False, True),  # the transaction's flag decides (section 4)
        (False, True, False),
        (None, True, True),  # no flag on the transaction: the receipt's
        (None, False, False),
    ],
)
def test_the_transactions_flags_decide_and_the_receipts_are_the_fallback(
    on_transaction: Optional[bool], on_receipt: bool, printed: bool
) -> None:
    receipt = attrs.evolve(FULL, tip_line_required=on_receipt, signature_line_required=on_receipt)
    transaction = Transaction(
        merchant_receipt=receipt,
        tip_line_required=on_transaction,
        signature_line_required=on_transaction,
    )
    text = format_receipt(receipt, 32, transaction=transaction)
    assert ("Cardholder signature" in text) is printed
    assert any(line.startswith("Tip ") for line in _lines(text)) is printed
    assert format_receipt(receipt, 32) == format_receipt(receipt, 32, transaction=None)


def test_each_flag_of_the_transaction_is_taken_on_its_own() -> None:
    receipt = attrs.evolve(FULL, tip_line_required=True, signature_line_required=True)
    text = format_receipt(receipt, 32, transaction=Transaction(signature_line_required=False))
    assert "Cardholder signature" not in text  # the transaction's
    assert any(line.startswith("Tip ") for line in _lines(text))  # the receipt's


def test_missing_keys_are_skipped() -> None:
    sparse = Receipt(
        data=_data(_line("AMOUNT_AND_CURRENCY", "Amount", "5.00 EUR")),
        payment_details=[_line("SCHEME", None, "VISA"), _line("CVM", "Verification", None)],
        clearing_details=[_line("EMPTY", None, None), _line("BLANK", "", "  ")],
    )
    assert _lines(format_receipt(sparse, 32)) == [
        "Amount" + "5.00 EUR".rjust(26),
        "",
        "VISA".rjust(32),
        "Verification",
    ]


def test_empty_receipt_is_empty_text() -> None:
    assert format_receipt(Receipt()) == ""


def test_only_flags_still_print_the_lines() -> None:
    text = format_receipt(Receipt(tip_line_required=True, signature_line_required=True), 24)
    assert "Tip" in text and "X" + "_" * 23 in text


def test_unplaced_data_lines_are_printed_after_clearing_details() -> None:
    receipt = attrs.evolve(
        FULL,
        data={**FULL.data, "LOYALTY_POINTS": _line("LOYALTY_POINTS", "Points", "120")},
    )
    text = format_receipt(receipt, 40)
    assert text.index("12345678") < text.index("Points") < text.index("Tip")


def test_newlines_and_tabs_in_values_do_not_break_the_layout() -> None:
    receipt = Receipt(merchant_details=[_line("ADDRESS", "Address", "Herrengasse 14\n1010\tWien")])
    assert _lines(format_receipt(receipt, 40)) == ["Address" + "Herrengasse 14 1010 Wien".rjust(33)]


def test_width_below_minimum_is_refused() -> None:
    assert MIN_WIDTH <= 24
    with pytest.raises(ValueError):
        format_receipt(FULL, MIN_WIDTH - 1)
    format_receipt(FULL, MIN_WIDTH)


def test_default_width_is_40() -> None:
    assert format_receipt(FULL) == format_receipt(FULL, 40)


def test_contract_example_receipt() -> None:
    transaction = decode_message(EXAMPLES["execute response (3.2, 4)"]).data.transaction
    merchant = format_receipt(transaction.merchant_receipt, 32)
    customer = format_receipt(transaction.customer_receipt, 32)
    assert "Merchant Receipt" in merchant and "Cardholder signature" in merchant
    assert "Customer Receipt" in customer and "Cardholder signature" not in customer
    assert merchant.index("Cafe Central") < merchant.index("VISA") < merchant.index("Table 4")


@given(receipt=strategies.model(Receipt), width=st.integers(MIN_WIDTH, 64))
def test_any_receipt_fits_any_width(receipt: Receipt, width: int) -> None:
    for line in _lines(format_receipt(receipt, width)):
        assert len(line) <= width
