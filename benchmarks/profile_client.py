"""Profile: where ``PayClient``'s request path spends CPU while it holds the GIL.

Run it under py-spy, which samples every thread and, with ``--gil``, keeps
only the samples of the thread holding the GIL (blocked waits, on the latch or
in ``recv``, drop out by themselves)::

    py-spy record --gil --rate 2000 --format raw -o /tmp/client.txt -- \\
        python benchmarks/profile_client.py --calls 20000
    python benchmarks/profile_client.py --categorize /tmp/client.txt

The first command makes ``--calls`` sequential ``get_transaction`` round trips
over ``tcp://`` against the benchmark's server (``bench_client.py``), which runs
in a separate process, so that py-spy sees only the client; the second groups
the collapsed stacks by what they do (encode, decode, routing, tag, latch,
logging, transport, ...) and prints the share of GIL-holding samples each takes.

``--micro`` times the pieces of the request path one by one with ``timeit``
(best of 7 repeats, in-process, no server), next to the cheaper way of doing
each that the profile suggests, so that every suggestion comes with its saving.

``--yappi`` profiles the same loop in-process with yappi's CPU clock (all
threads; heavier, it inflates small functions) as a cross-check, and prints the
inclusive CPU per call of the functions that matter.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import logging
import os
import resource
import sys
import threading
import time
import timeit
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from _payloads import TRANSACTION_ID
from bench_client import _PREFIX, _SUFFIX, HOST, ServerProcess

# What a frame belongs to. A sample is charged to the first rule that matches
# one of its frames, walking from the innermost frame outwards, so logging or
# uuid code counts as such wherever it is called from, and everything under
# encode_message counts as encoding. (module fragment, function or "*", item)
_RULES: Sequence[Tuple[str, str, str]] = (
    ("logging/__init__", "*", "logging (logger.debug, isEnabledFor)"),
    ("uuid.py", "*", "tag generation (uuid.uuid4)"),
    ("attr/_make", "evolve", "attrs.evolve"),
    ("attr/_funcs", "evolve", "attrs.evolve"),
    ("json/encoder", "*", "encode: JSON writing (codec.dumps)"),
    ("json/", "*", "decode: JSON parse (json, parse_float=Decimal)"),
    ("codec.py", "parse_message", "decode: JSON parse (json, parse_float=Decimal)"),
    ("codec.py", "decode_message", "decode: typing (decode_parsed, cattrs structure)"),
    ("codec.py", "decode_parsed", "decode: typing (decode_parsed, cattrs structure)"),
    ("codec.py", "_optional_str", "decode: typing (decode_parsed, cattrs structure)"),
    ("codec.py", "_write_json", "encode: JSON writing (codec.dumps)"),
    ("codec.py", "dumps", "encode: JSON writing (codec.dumps)"),
    ("codec.py", "message_to_wire", "encode: to wire dict (cattrs unstructure)"),
    ("codec.py", "encode_message", "encode: to wire dict (cattrs unstructure)"),
    ("framing.py", "encode_frame", "transport send (frame, lock, sendall)"),
    ("transport.py", "send", "transport send (frame, lock, sendall)"),
    ("framing.py", "*", "transport receive (recv, FrameDecoder.feed, deque)"),
    ("transport.py", "receive", "transport receive (recv, FrameDecoder.feed, deque)"),
    ("client.py", "wait", "latch (_Slot.wait / finish)"),
    ("client.py", "finish", "latch (_Slot.wait / finish)"),
    ("client.py", "_held_lock", "slot creation (_Slot.__init__, locks)"),
    ("client.py", "_route", "routing (_route, slot lookup, response_type)"),
    ("client.py", "response_type", "routing (_route, slot lookup, response_type)"),
    ("codec.py", "response_type", "routing (_route, slot lookup, response_type)"),
    ("_Slot", "*", "slot creation (_Slot.__init__, locks)"),
    ("attrs generated", "*", "model construction (Message, GetTransactionRequest)"),
    ("client.py", "_await", "await loop (deadline arithmetic, monotonic)"),
    ("client.py", "is_transaction", "request path glue (_call, get_transaction, ...)"),
    ("client.py", "_read_loop", "reader loop glue (_read_loop, _trace)"),
    ("client.py", "_trace", "request path glue (_call, get_transaction, ...)"),
    ("client.py", "*", "request path glue (_call, get_transaction, ...)"),
    ("threading.py", "*", "threading.py (Thread/Event machinery)"),
    ("bench_client.py", "_request_text", "encode: JSON writing (codec.dumps)"),
    ("bench_client.py", "_read_loop", "reader loop glue (_read_loop, _trace)"),
    ("bench_client.py", "*", "request path glue (_call, get_transaction, ...)"),
)


def _frame_parts(frame: str) -> Tuple[str, str]:
    """(function, location) of one py-spy raw frame ``function (file:line)``."""
    function, _, location = frame.partition(" (")
    return function.strip(), location.rstrip(")")


def _item_of(stack: List[str]) -> str:
    for frame in reversed(stack):  # innermost first
        function, location = _frame_parts(frame)
        for fragment, name, item in _RULES:
            # py-spy names methods Class.method; the rules name the method.
            if fragment in location and name in ("*", function.rpartition(".")[2]):
                return item
    return "other (benchmark loop, interpreter)"


# The caller's measured loop, and the reader threads (the SDK's, the baseline's).
_COUNTED = ("_measured_loop (", "PayClient._read_loop (", "ThreadedRawTcpClient._read_loop (")


def categorize(path: str) -> Dict[str, int]:
    """Samples per item from py-spy's ``--format raw`` output (collapsed stacks)."""
    counts: Dict[str, int] = collections.Counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            stack_text, _, count = line.rstrip("\n").rpartition(" ")
            if not stack_text:
                continue
            frames = stack_text.split(";")
            if not any(frame.startswith(_COUNTED) for frame in frames):
                continue  # start-up, imports, the server's launch
            counts[_item_of(frames)] += int(count)
    return dict(counts)


def print_categories(
    counts: Dict[str, int], calls: Optional[int], seconds: Optional[float]
) -> None:
    total = sum(counts.values())
    print(f"{'item':<56}{'samples':>9}{'% GIL':>8}")
    for item, count in sorted(counts.items(), key=lambda pair: -pair[1]):
        print(f"  {item:<54}{count:9d}{100 * count / total:8.1f}")
    print(f"  {'total':<54}{total:9d}{100.0:8.1f}")
    if calls and seconds:
        print(f"({calls} calls in {seconds:.2f} s of GIL-holding samples)")


def _measured_loop(call: Callable[[], Any], calls: int) -> None:
    """The round trips the profile counts (the categorizer keeps only the samples
    under this function, or in a reader thread)."""
    for _ in range(calls):
        call()


def _round_trips(calls: int, side: str, profile_with_yappi: bool) -> None:
    from bench_client import RawTcpClient, ThreadedRawTcpClient

    from payprotocol import PayClient

    with ServerProcess() as server, contextlib.ExitStack() as stack:
        call: Callable[[], Any]
        if side == "sdk":
            client = stack.enter_context(PayClient(f"tcp://{HOST}:{server.tcp_port}"))

            def call() -> Any:
                return client.get_transaction(transaction_identifier=TRANSACTION_ID)

        else:
            raw = (ThreadedRawTcpClient if side == "raw+thread" else RawTcpClient)(server.tcp_port)
            stack.callback(raw.close)
            call = raw.get_transaction
        for _ in range(500):  # warm-up
            call()
        if profile_with_yappi:
            import yappi  # type: ignore[import-untyped, import-not-found, unused-ignore]

            yappi.set_clock_type("cpu")
            yappi.start(builtins=True, profile_threads=True)
        started = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _measured_loop(call, calls)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        user, system = after.ru_utime - usage.ru_utime, after.ru_stime - usage.ru_stime
        switches = after.ru_nvcsw - usage.ru_nvcsw
        if profile_with_yappi:
            yappi.stop()
            _print_yappi(yappi, calls)
    print(
        f"{calls} {side} get_transaction round trips: {elapsed / calls * 1e6:.1f} us wall, "
        f"{(user + system) / calls * 1e6:.1f} us client CPU per call (user "
        f"{user / calls * 1e6:.1f}, system {system / calls * 1e6:.1f}), "
        f"{switches / calls:.2f} voluntary context switches per call",
        file=sys.stderr,
    )


_YAPPI_FUNCTIONS = (
    "get_transaction",
    "_call",
    "encode_message",
    "message_to_wire",
    "dumps",
    "decode_message",
    "parse_message",
    "decode_parsed",
    "_route",
    "uuid4",
    "debug",
    "isEnabledFor",
    "send",
    "receive",
    "feed",
    "wait",
    "finish",
    "_await",
    "evolve",
    "__init__",
)


def _print_yappi(yappi: object, calls: int) -> None:
    stats = yappi.get_func_stats()  # type: ignore[attr-defined]
    rows = [
        stat
        for stat in stats
        if stat.name in _YAPPI_FUNCTIONS
        and ("payprotocol" in stat.module or stat.module.endswith(("uuid.py", "__init__.py")))
        and stat.ncall >= calls // 2
    ]
    rows.sort(key=lambda stat: -stat.ttot)
    print(f"{'function (yappi, CPU clock)':<60}{'calls':>8}{'incl us/call':>14}{'excl us':>10}")
    for stat in rows:
        where = f"{stat.module.rsplit('/', 1)[-1]}:{stat.lineno} {stat.name}"
        print(
            f"  {where:<58}{stat.ncall / calls:8.2f}{stat.ttot / calls * 1e6:14.2f}"
            f"{stat.tsub / calls * 1e6:10.2f}"
        )


# --- micro-benchmarks -------------------------------------------------------------


def _best_us(call: Callable[[], Any], number: int) -> float:
    """Microseconds per call: the best of 7 repeats (the least disturbed)."""
    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6


def micro(number: int) -> List[Tuple[str, float]]:
    """(what, us per call) for each piece of the request path and its alternative."""
    # The client's private slot class: measured here as the rewrite's baseline;
    # absent once client.py is split, then its rows are skipped.
    import payprotocol.client as client_module
    from payprotocol import codec, framing
    from payprotocol import models as m
    from payprotocol.client import logger

    slot_class: Any = getattr(client_module, "_Slot", None)
    tag = str(uuid.uuid4())
    request = m.Message(
        "GET_TRANSACTION_REQUEST", tag, None, m.GetTransactionRequest(TRANSACTION_ID)
    )
    payload = codec.encode_message(request)
    response_bytes = (_PREFIX + json.dumps(tag) + _SUFFIX).encode("utf-8")
    response_frame = framing.encode_frame(response_bytes)
    parsed = codec.parse_message(response_bytes)
    wire = codec.message_to_wire(request)
    response = codec.decode_message(response_bytes)
    prefix = os.urandom(8).hex() + "-"
    counter = itertools.count(1)
    debug_enabled = logger.isEnabledFor(logging.DEBUG)
    decoder = framing.FrameDecoder()
    rows: List[Tuple[str, float]] = []

    def row(name: str, call: Callable[[], Any], scale: int = 1) -> None:
        rows.append((name, _best_us(call, max(1, number // scale))))

    row("tag: str(uuid.uuid4())", lambda: str(uuid.uuid4()))
    row("tag: uuid.uuid4().hex", lambda: uuid.uuid4().hex)
    row("tag: os.urandom(16).hex()", lambda: os.urandom(16).hex())
    row("tag: prefix + str(next(counter))", lambda: prefix + str(next(counter)))
    row("tag: f'{prefix}{next(counter):x}'", lambda: f"{prefix}{next(counter):x}")
    row(
        "log: logger.debug(fmt, a, b, c) at WARNING",
        lambda: logger.debug("-> %s tag=%s resource=%s", "GET", tag, None),
    )
    row("log: logger.isEnabledFor(DEBUG)", lambda: logger.isEnabledFor(logging.DEBUG))

    def guarded_debug() -> None:
        if debug_enabled:
            logger.debug("-> %s tag=%s resource=%s", "GET", tag, None)

    row("log: if debug_enabled: logger.debug(...)", guarded_debug)
    row(
        "route: codec.response_type(request_type)",
        lambda: codec.response_type("GET_TRANSACTION_REQUEST"),
    )
    row("route: message.type.endswith('_RESPONSE')", lambda: response.type.endswith("_RESPONSE"))
    if slot_class is not None:
        slot = slot_class(tag, "GET_TRANSACTION_REQUEST", None, None, None, None)
        row(
            "slot: _Slot(...) (attrs, 2 monotonic, 2 locks)",
            lambda: slot_class(tag, "GET_TRANSACTION_REQUEST", None, None, None, None),
        )
        row("slot: slot.response_type (property)", lambda: slot.response_type)
        row("slot: slot.is_transaction (property)", lambda: slot.is_transaction)
    row("slot: a held threading.Lock", _held)
    row("slot: time.monotonic()", time.monotonic)
    row(
        "model: Message(GetTransactionRequest(...))",
        lambda: m.Message(
            "GET_TRANSACTION_REQUEST", tag, None, m.GetTransactionRequest(TRANSACTION_ID)
        ),
    )
    row("encode: codec.encode_message (all)", lambda: codec.encode_message(request))
    row("encode: codec.message_to_wire", lambda: codec.message_to_wire(request))
    row("encode: codec.dumps(wire)", lambda: codec.dumps(wire))
    row(
        "encode: json.dumps(wire, compact, ensure_ascii=False)",
        lambda: json.dumps(wire, separators=(",", ":"), ensure_ascii=False),
    )
    row(
        "encode: hand-written GET_TRANSACTION_REQUEST template",
        lambda: (
            '{"type":"GET_TRANSACTION_REQUEST","tag":'
            + json.dumps(tag)
            + ',"resource":null,"getTransactionRequest":{"transactionIdentifier":'
            + json.dumps(TRANSACTION_ID)
            + "}}"
        ).encode(),
    )
    row("decode: codec.decode_message (all)", lambda: codec.decode_message(response_bytes), 4)
    row("decode: codec.parse_message", lambda: codec.parse_message(response_bytes), 4)
    row("decode: codec.decode_parsed", lambda: codec.decode_parsed(parsed), 4)
    row(
        "decode: json.loads(bytes, parse_float=Decimal)",
        lambda: json.loads(response_bytes, parse_float=Decimal),
        4,
    )
    row("decode: json.loads(bytes)", lambda: json.loads(response_bytes), 4)
    row("frame: framing.encode_frame(payload)", lambda: framing.encode_frame(payload))
    row("frame: FrameDecoder.feed(one whole frame)", lambda: decoder.feed(response_frame))
    return rows


def _held() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


def print_micro(rows: List[Tuple[str, float]]) -> None:
    print(f"{'piece of the request path (best of 7)':<58}{'us/call':>9}")
    for name, us in rows:
        print(f"  {name:<56}{us:9.3f}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="round trips to make")
    parser.add_argument("--yappi", action="store_true", help="profile in-process with yappi")
    parser.add_argument(
        "--side",
        choices=("sdk", "raw+thread", "raw"),
        default="sdk",
        help="what makes the round trips: PayClient or one of bench_client's baselines",
    )
    parser.add_argument("--micro", action="store_true", help="time the pieces with timeit")
    parser.add_argument(
        "--categorize", metavar="RAW", help="group py-spy --format raw output by item"
    )
    parser.add_argument("--seconds-per-sample", type=float, help="1 / py-spy's --rate")
    args = parser.parse_args(argv)
    if args.categorize:
        counts = categorize(args.categorize)
        seconds = None
        if args.seconds_per_sample:
            seconds = sum(counts.values()) * args.seconds_per_sample
        print_categories(counts, args.calls, seconds)
        return 0
    if args.micro:
        print_micro(micro(args.calls))
        return 0
    _round_trips(args.calls, args.side, args.yappi)
    return 0


if __name__ == "__main__":
    sys.exit(main())
