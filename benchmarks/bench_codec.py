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

Both decoding paths of the tolerant reader (p3-protocol.md 6.2) are reported:
``strict`` is the well-formed message (the fast path, which the target is
about); ``tolerant`` is the same message with one field that does not fit
(``statusDetails`` sent as a string), which fails the strict path and is
decoded again field by field. Its WARNING is silenced while timing.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import timeit
from decimal import Decimal
from typing import Callable, List

from _payloads import transaction

from payprotocol import decode_message, encode_message
from payprotocol.codec import dumps

TARGET_RATIO = 3.0


def sample_response() -> bytes:
    """A full ``EXECUTE_TRANSACTION_RESPONSE`` with both receipts, as wire bytes."""
    message = {
        "type": "EXECUTE_TRANSACTION_RESPONSE",
        "tag": "4f1c2d7e-0a55-4c53-9d0b-2b8f7c1e9a10",
        "resource": "devices/counter1",
        "status": "OK",
        "executeTransactionResponse": {"transaction": transaction(with_receipts=True)},
    }
    return dumps(message).encode("utf-8")


def misfit_response() -> bytes:
    """:func:`sample_response` with one misfit: the tolerant fallback path."""
    wire = json.loads(sample_response(), parse_float=Decimal)
    wire["executeTransactionResponse"]["transaction"]["statusDetails"] = "Transaction approved"
    return dumps(wire).encode("utf-8")


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
        f"{name:<8} typed {typed_median * 1e6:8.1f} us   json {plain_median * 1e6:8.1f} us"
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
        "strict",
        lambda: decode_message(payload),
        lambda: json.loads(payload, parse_float=Decimal),
        args.rounds,
        args.number,
    )
    misfit = misfit_response()
    logging.getLogger("payprotocol.codec").disabled = True  # one WARNING per decode
    tolerant = decode_message(misfit).data.transaction
    assert tolerant.status_details is None and "statusDetails" in tolerant.extra_fields
    tolerant_ratio = _compare(
        "tolerant",
        lambda: decode_message(misfit),
        lambda: json.loads(misfit, parse_float=Decimal),
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
        f"strict decode ratio {decode_ratio:.2f} (target <= {TARGET_RATIO:g}): {verdict}; "
        f"tolerant fallback ratio {tolerant_ratio:.2f}; encode ratio {encode_ratio:.2f}"
    )
    return 0 if decode_ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
