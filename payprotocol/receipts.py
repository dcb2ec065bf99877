"""Plain-text receipts for a fixed-width printer (p3-protocol.md section 4).

A P3 :class:`~payprotocol.models.Receipt` is data, not layout: keyed lines in
``data`` plus three lists of detail lines and two flags. :func:`format_receipt`
lays them out in the documented printing order:

1. merchant details
2. receipt type (with the transaction type next to it)
3. amount and currency
4. payment details
5. status text
6. date and time
7. clearing details (then any ``data`` line this version does not place, so
   nothing the PayServer sent is dropped)
8. tip and total lines to fill in by hand, when ``tipLineRequired``
9. a signature line, when ``signatureLineRequired``
10. the subject

The two flags are documented on the transaction (section 4): given the
``transaction`` the receipt belongs to, its flags decide, and the receipt's own
flags apply where the transaction has none.

Each line prints its label on the left and its value on the right. A pair that
does not fit on one line gets the label on a line of its own and the value
wrapped below it, right-aligned, so no output line is ever wider than the
printer. Missing keys, labels or values are skipped rather than invented.
"""

from __future__ import annotations

import textwrap
from typing import Iterable, List, Optional

from .models import Receipt, ReceiptLine, Transaction

__all__ = ["MIN_WIDTH", "format_receipt"]

#: The narrowest printer supported (58 mm paper prints 24 to 32 columns).
MIN_WIDTH = 16

# ``data`` keys in printing order, grouped; each group prints as one block.
_HEADER_KEYS = ("RECEIPT_TYPE", "TRANSACTION_TYPE", "AMOUNT_AND_CURRENCY")
_STATUS_KEYS = ("STATUS_TEXT", "DATE", "TIME")
_SUBJECT_KEY = "SUBJECT"
_PLACED_KEYS = frozenset((*_HEADER_KEYS, *_STATUS_KEYS, _SUBJECT_KEY))

_TIP_LABEL = "Tip"
_TOTAL_LABEL = "Total"
_SIGNATURE_CAPTION = "Cardholder signature"


def format_receipt(
    receipt: Receipt, width: int = 40, *, transaction: Optional[Transaction] = None
) -> str:
    """Render ``receipt`` as text for a printer ``width`` characters wide.

    ``transaction`` (the one holding the receipt) supplies ``tipLineRequired``
    and ``signatureLineRequired`` where it has them; otherwise the receipt's.

    Blocks are separated by a blank line; the result has no trailing newline.
    Every line is at most ``width`` characters (``len``; full-width East Asian
    characters are counted as one column). Raises :class:`ValueError` when
    ``width`` is below :data:`MIN_WIDTH`.
    """
    if width < MIN_WIDTH:
        raise ValueError(f"a receipt needs at least {MIN_WIDTH} columns, got {width}")
    data = receipt.data
    leftovers = [line for key, line in data.items() if key not in _PLACED_KEYS]
    blocks: List[List[str]] = [
        _rows(receipt.merchant_details, width),
        _rows(_pick(data, _HEADER_KEYS), width),
        _rows(receipt.payment_details, width),
        _rows(_pick(data, _STATUS_KEYS), width),
        _rows([*receipt.clearing_details, *leftovers], width),
    ]
    tip_line, signature_line = receipt.tip_line_required, receipt.signature_line_required
    if transaction is not None:
        if transaction.tip_line_required is not None:
            tip_line = transaction.tip_line_required
        if transaction.signature_line_required is not None:
            signature_line = transaction.signature_line_required
    if tip_line:
        blocks.append(_fill_in_lines((_TIP_LABEL, _TOTAL_LABEL), width))
    if signature_line:
        blocks.append(_signature_lines(width))
    blocks.append(_rows(_pick(data, (_SUBJECT_KEY,)), width))
    return "\n\n".join("\n".join(block) for block in blocks if block)


def _pick(data: dict[str, ReceiptLine], keys: Iterable[str]) -> List[ReceiptLine]:
    return [data[key] for key in keys if key in data]


def _clean(text: Optional[str]) -> str:
    # Collapse newlines and tabs: a value must not break the column layout.
    return " ".join(text.split()) if text else ""


def _rows(lines: Iterable[ReceiptLine], width: int) -> List[str]:
    out: List[str] = []
    for line in lines:
        out.extend(_row(_clean(line.label), _clean(line.value), width))
    return out


def _row(label: str, value: str, width: int) -> List[str]:
    """One receipt line: ``label`` left, ``value`` right, wrapped when too long."""
    if not label and not value:
        return []
    if label and value and len(label) + 1 + len(value) <= width:
        return [label + value.rjust(width - len(label))]
    rows = _wrap(label, width)
    rows.extend(part.rjust(width) for part in _wrap(value, width))
    return rows


def _wrap(text: str, width: int) -> List[str]:
    # break_long_words: an identifier without spaces still has to fit.
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False)


def _fill_in_lines(labels: Iterable[str], width: int) -> List[str]:
    """``Tip    ________`` rows for the shopper to write on."""
    column = max(len(label) for label in labels) + 2
    return [label.ljust(column) + "_" * (width - column) for label in labels]


def _signature_lines(width: int) -> List[str]:
    """Room to sign, an ``X`` rule, and a caption centred under it."""
    return ["", "X" + "_" * (width - 1), _SIGNATURE_CAPTION[:width].center(width).rstrip()]
