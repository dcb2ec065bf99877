"""Benchmark: typed P3 decoding versus plain ``json.loads`` of the same bytes.

Run with ``python benchmarks/bench_codec.py [--rounds N] [--number N]``.

The payload is a realistic ``EXECUTE_TRANSACTION_RESPONSE``: an approved
charge with card, payment and status details and both receipts (seven data
lines plus merchant, payment and clearing details each). Each round times the
typed decode (:func:`payprotocol.decode_message`) and a bare
``json.loads(..., parse_float=Decimal)`` back to back, so both see the same
machine state. The report gives the medians over the rounds and the median of
the per-round ratios, the cost of the typed layer on top of parsing; the
verdict (target: at most 3) uses the latter, which shrugs off load that comes
and goes. Encoding (:func:`payprotocol.encode_message`) is measured the same
way against ``json.dumps`` of the parsed object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from decimal import Decimal
from typing import Any, Callable, Dict, List

from payprotocol import decode_message, encode_message

TARGET_RATIO = 3.0


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
            _line("TRANSACTION_ID", "Transaction", "9a1e4c0b7d2f4e1a8c3b5d6e7f809112"),
            _line("AUTHORIZATION_CODE", "Auth code", "123456"),
        ],
        "tipLineRequired": False,
        "signatureLineRequired": kind == "Merchant Receipt",
    }


def sample_response() -> bytes:
    """A full ``EXECUTE_TRANSACTION_RESPONSE`` with both receipts, as wire bytes."""
    transaction = {
        "transactionIdentifier": "9a1e4c0b7d2f4e1a8c3b5d6e7f809112",
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
        "merchantReceipt": _receipt("Merchant Receipt"),
        "customerReceipt": _receipt("Customer Receipt"),
    }
    message = {
        "type": "EXECUTE_TRANSACTION_RESPONSE",
        "tag": "4f1c2d7e-0a55-4c53-9d0b-2b8f7c1e9a10",
        "resource": "devices/counter1",
        "status": "OK",
        "executeTransactionResponse": {"transaction": transaction},
    }
    # json.dumps cannot write Decimal; amounts are small, so str() is exact here.
    return (
        json.dumps(message, default=str)
        .replace('"10.00"', "10.00")
        .replace('"0.00"', "0.00")
        .encode("utf-8")
    )


def _per_call(function: Callable[[], object], number: int) -> float:
    """Seconds per call, the best of a short repeat to shed scheduler noise."""
    return min(timeit.repeat(function, number=number, repeat=3)) / number


def _compare(
    name: str,
    typed: Callable[[], object],
    plain: Callable[[], object],
    rounds: int,
    number: int,
) -> float:
    typed_times: List[float] = []
    plain_times: List[float] = []
    for _ in range(rounds):
        # Interleaved so that drift (CPU frequency, other load) hits both alike.
        typed_times.append(_per_call(typed, number))
        plain_times.append(_per_call(plain, number))
    typed_median = statistics.median(typed_times)
    plain_median = statistics.median(plain_times)
    # The median of the per-round ratios is the figure we judge: each round's
    # pair ran back to back, so load that comes and goes cancels out.
    ratio = statistics.median(t / p for t, p in zip(typed_times, plain_times))
    print(
        f"{name:<7} typed {typed_median * 1e6:8.1f} us   json {plain_median * 1e6:8.1f} us"
        f"   ratio of medians {typed_median / plain_median:5.2f}"
        f"   median round ratio {ratio:5.2f}"
    )
    return ratio


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--number", type=int, default=500, help="calls per timing")
    args = parser.parse_args(argv)

    payload = sample_response()
    message = decode_message(payload)
    parsed = json.loads(payload, parse_float=Decimal)
    # The typed layer must be lossless on this payload, or the figures mean nothing.
    assert json.loads(encode_message(message), parse_float=Decimal) == parsed

    print(
        f"python {sys.version.split()[0]}, payload {len(payload)} bytes, "
        f"{args.rounds} rounds x {args.number} calls"
    )
    decode_ratio = _compare(
        "decode",
        lambda: decode_message(payload),
        lambda: json.loads(payload, parse_float=Decimal),
        args.rounds,
        args.number,
    )
    encode_ratio = _compare(
        "encode",
        lambda: encode_message(message),
        lambda: json.dumps(parsed, default=str).encode("utf-8"),
        args.rounds,
        args.number,
    )
    verdict = "OK" if decode_ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(
        f"decode ratio {decode_ratio:.2f} (target <= {TARGET_RATIO:g}): {verdict}; "
        f"encode ratio {encode_ratio:.2f}"
    )
    return 0 if decode_ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
