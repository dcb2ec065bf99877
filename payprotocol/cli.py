"""The ``payprotocol`` command line (also ``python -m payprotocol``).

Commands:

* ``demo``: a guided tour against an in-process simulator (no setup needed).
* ``simulate``: run the embedded PayServer simulator until Ctrl-C.
* ``journal list``, ``recover``: the journal's pending, conflicting and
  settled rows, and their reconciliation (``_cli_journal``; their own exit
  codes are in its docstring and ``--help``).
* ``devices``, ``charge``, ``refund``, ``capture``, ``tip-adjust``,
  ``lookup``: talk to a PayServer (a real one, or ``payprotocol simulate``).
  The merchant secret comes from ``PAYPROTOCOL_MERCHANT_SECRET`` or a hidden
  prompt, never from an argument (arguments end up in shell histories and
  process lists).

Exit codes (the same for every command):

* 0: approved or accepted (for ``devices``/``lookup``/``simulate``: success).
* 1: the transaction was declined, aborted or failed (status ``DECLINED``,
  ``ABORTED`` or ``ERROR``); for ``demo``: a step did not end as expected.
* 2: usage error (bad arguments, bad amount, unknown device, no secret, a
  charge without a terminal whose answers were not given up front, a command
  that needs the ``simulator`` extra without it).
* 3: connection error or server error (refused connection, lost connection,
  timeout of a plain request, an ``ERROR`` response such as
  ``AUTHENTICATION_FAILED`` or ``TRANSACTION_NOT_FOUND``; for ``simulate``: a
  port it cannot listen on).
* 4: outcome unknown: a transaction was sent but its result never arrived
  (or its status is ``INCONCLUSIVE``). The card may have been charged: look it
  up by the custom identifier that is printed, never charge again.
* 130: interrupted (Ctrl-C) before any transaction was sent.

Strategy: this module only parses arguments and runs one handler, mapping a
usage error or a Ctrl-C to its exit code; each handler lives in a private module
by responsibility: ``_cli_commands`` (the commands that talk to a PayServer,
and the one mapping of SDK errors to exit codes), ``_cli_simulate``,
``_cli_demo`` (loaded only when ``demo`` runs), ``_cli_charge`` (the charge
driver), ``_cli_probe`` (which scheme a port speaks), on top of ``_cli_console``
(terminal output) and ``_cli_common`` (exit codes and what every command
shares, re-exported here).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from decimal import Decimal
from typing import Any, Callable, List, Optional, Tuple

from . import __version__
from . import models as m
from ._cli_commands import cmd_amend, cmd_charge, cmd_devices, cmd_lookup
from ._cli_common import (
    DEFAULT_URL,
    EXIT_CONNECTION,
    EXIT_DECLINED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_USAGE,
    MERCHANT_ENV,
    SECRET_ENV,
    URL_ENV,
    UsageError,
    add_record_options,
    add_replay_options,
    err,
    missing_simulator_extra,
)
from ._cli_journal import add_commands, add_journal_option
from ._cli_simulate import FAULT_KINDS, cmd_simulate
from ._money import exact, minor_units

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_DECLINED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_USAGE",
    "main",
]

_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_EXIT_CODES = (
    "exit codes: 0 approved/accepted, 1 declined or aborted, 2 usage error, "
    "3 connection or server error, 4 outcome unknown (look it up, never retry), "
    "130 interrupted before anything was sent"
)
_DEMO_EXIT_CODES = (
    "exit codes: 0 every step ended as expected, 1 a step did not, 2 usage error "
    "(--ws without the simulator extra), 130 interrupted"
)
_SIMULATE_EXIT_CODES = (
    "exit codes: 0 stopped by Ctrl-C or SIGTERM, 2 usage error (a bad fault, the "
    "WebSocket server without the simulator extra), 3 a port cannot be listened on"
)


# --- argument types ------------------------------------------------------------


def parse_amount(text: str) -> Decimal:
    """A positive amount in major units, as typed (``10.00``, ``7``); it is put
    in its currency's minor units once the currency is known."""
    if not _AMOUNT.match(text):
        try:
            exact(text)
        except ValueError as exc:  # a comma, a sign, not a number: say which
            raise argparse.ArgumentTypeError(f"invalid amount {text!r}: {exc}") from None
        raise argparse.ArgumentTypeError(
            f"invalid amount {text!r}: write it in major units like 10.00"
        )
    value = Decimal(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid amount {text!r}: it must be above zero")
    return value


def parse_currency(text: str) -> str:
    """An ISO 4217 alpha-3 code, upper-cased."""
    if not _CURRENCY.match(text):
        raise argparse.ArgumentTypeError(f"invalid currency {text!r}: use a code like EUR")
    try:
        minor_units(text.upper())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid currency {text!r}: {exc}") from None
    return text.upper()


def _provider_mode(text: str) -> str:
    value = text.upper()
    known = [mode.value for mode in m.ProviderMode]
    if value not in known:
        raise argparse.ArgumentTypeError(f"invalid provider mode {text!r}: one of {known}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"seconds must be above 0, got {text!r}")
    return value


def _port(text: str) -> Optional[int]:
    if text.lower() in ("none", "off"):
        return None  # that server is not started
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0 = any free port), got {value}")
    return value


def _merchant_pair(text: str) -> Tuple[str, str]:
    identifier, colon, secret = text.partition(":")
    if not colon or not identifier or not secret:
        raise argparse.ArgumentTypeError("write a merchant as ID:SECRET")
    return identifier, secret


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``payprotocol`` argument parser (one sub-command per job)."""
    parser = argparse.ArgumentParser(
        prog="payprotocol",
        description="Take card payments through a PayServer over the PayProtocol (P3).",
        epilog=_EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"payprotocol {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (twice: debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = _command(
        commands,
        "demo",
        parents=[common],
        epilog=_DEMO_EXIT_CODES,
        help="walk through every kind of payment against a built-in simulator",
        description=(
            "Start a simulated PayServer in this process and walk through a login, a "
            "signature charge, a PIN charge, a declined charge, an aborted charge, a "
            "partial refund and a lookup. Exits 0 when every step ended as expected."
        ),
    )
    transport = demo.add_mutually_exclusive_group()
    transport.add_argument(
        "--tcp", dest="transport", action="store_const", const="tcp", help="framed TCP (default)"
    )
    transport.add_argument(
        "--ws", dest="transport", action="store_const", const="ws", help="WebSocket"
    )
    demo.add_argument("--fast", action="store_true", help="no pauses (for tests)")
    demo.set_defaults(handler=_cmd_demo, transport="tcp")

    simulate = _command(
        commands,
        "simulate",
        help="run the PayServer simulator until Ctrl-C",
        epilog=_SIMULATE_EXIT_CODES,
        description=(
            "Run the embedded PayServer simulator. Amounts follow the payworks test "
            "card: 10.00 signature, 40.00 PIN, 100.00 declined; cents .01 application "
            "menu, .02 credit/debit, .03 DCC, .09 slow card (time to abort)."
        ),
    )
    simulate.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log every message sent and received, secrets redacted (default: connections, "
        "logins and outcomes only); twice: also the WebSocket library's own debug log",
    )
    simulate.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    simulate.add_argument(
        "--tcp-port",
        metavar="PORT",
        type=_port,
        default=4245,
        help="framed TCP port; 0: any free port, none: no TCP server (default: %(default)s)",
    )
    simulate.add_argument(
        "--ws-port",
        metavar="PORT",
        type=_port,
        default=8080,
        help="WebSocket port; 0: any free port, none: no WebSocket server, which needs "
        "the simulator extra (default: %(default)s)",
    )
    simulate.add_argument(
        "--merchant",
        dest="merchants",
        metavar="ID:SECRET",
        type=_merchant_pair,
        action="append",
        default=[],
        help="a merchant that may log in (repeatable; none: any id with a secret)",
    )
    simulate.add_argument(
        "--step-delay",
        metavar="S",
        type=_seconds,
        default=0.4,
        help="seconds between reader steps (default: %(default)s)",
    )
    simulate.add_argument(
        "--slow-presentation",
        metavar="S",
        type=_seconds,
        default=3.0,
        help="seconds the card takes to appear for .09 amounts, time to abort "
        "(default: %(default)s)",
    )
    simulate.add_argument(
        "--action-timeout",
        metavar="S",
        type=_positive_seconds,
        default=60.0,
        help="seconds a reader waits for an answer to its question before aborting "
        "(default: %(default)s)",
    )
    simulate.add_argument(
        "--fault",
        dest="faults",
        metavar="SPEC",
        action="append",
        default=[],
        help="inject a fault (repeatable); the kinds: " + ", ".join(FAULT_KINDS),
    )
    simulate.add_argument(
        "--tls",
        action="store_true",
        help="serve tls:// and wss:// (certificate for 127.0.0.1 and localhost, made at "
        "start; its CA is written to a file to pass as --cafile)",
    )
    simulate.add_argument(
        "--write-ca",
        metavar="PEM",
        help="with --tls: write the CA certificate here (default: a temporary file, "
        "removed at exit)",
    )
    add_replay_options(simulate)
    simulate.set_defaults(handler=cmd_simulate)

    remote = argparse.ArgumentParser(add_help=False, parents=[common])
    remote.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"PayServer URL: tcp://, tls://, ws:// or wss:// (default ${URL_ENV} or "
        f"{DEFAULT_URL})",
    )
    remote.add_argument(
        "--merchant",
        default=os.environ.get(MERCHANT_ENV),
        metavar="ID",
        help=f"merchant identifier (default ${MERCHANT_ENV}); the secret is read from "
        f"${SECRET_ENV} or asked for",
    )
    remote.add_argument(
        "--provider-mode",
        metavar="MODE",
        type=_provider_mode,
        default="TEST",
        help="the provider mode to log in with: "
        + ", ".join(mode.value for mode in m.ProviderMode)
        + " (default: %(default)s)",
    )
    remote.add_argument(
        "--timeout",
        metavar="S",
        type=_positive_seconds,
        default=30.0,
        help="seconds to wait for a plain answer: login, lookup, abort (default: %(default)s)",
    )
    remote.add_argument(
        "--cafile", metavar="PEM", help="CA certificates to trust for tls:// and wss:// URLs"
    )
    remote.add_argument("--json", action="store_true", help="print the result as JSON")
    add_record_options(remote)

    devices = _command(
        commands, "devices", parents=[remote], help="log in and list the card readers"
    )
    devices.set_defaults(handler=cmd_devices)

    charge = _command(
        commands,
        "charge",
        parents=[remote],
        help="charge a card on a reader",
        description=(
            "Charge a card. The reader's lines are shown live; questions from the reader "
            "(signature, application, credit/debit, currency conversion) are asked on the "
            "terminal, or answered by the flags below (a script without a terminal gives all "
            "four). Ctrl-C aborts while the reader allows it."
        ),
    )
    charge.add_argument("device", metavar="DEVICE", help="reader resource, identifier or name")
    charge.add_argument("amount", metavar="AMOUNT", type=parse_amount, help="e.g. 10.00")
    charge.add_argument("currency", metavar="CURRENCY", type=parse_currency, help="e.g. EUR")
    charge.add_argument("--subject", help="what the payment is for")
    charge.add_argument(
        "--custom-identifier", help="your reference, for lookups (default: a fresh one)"
    )
    charge.add_argument(
        "--no-auto-capture",
        dest="auto_capture",
        action="store_false",
        help="pre-authorise only; capture later with 'payprotocol capture'",
    )
    charge.add_argument(
        "--receipts", action="store_true", help="print the receipts, each between cut lines"
    )
    answers = charge.add_argument_group(
        "answers given up front",
        "The reader's questions, answered without asking (needed without a terminal: "
        "the card decides which questions come, so a script gives all four).",
    )
    answers.add_argument(
        "--signature",
        choices=("receipt", "refuse"),
        help="receipt: the shopper signs the paper receipt; refuse: abort if the reader allows",
    )
    answers.add_argument(
        "--application",
        metavar="N",
        help="the card application to use: its number in the reader's list (from 1) or name",
    )
    answers.add_argument(
        "--credit-debit", choices=("credit", "debit"), help="pay by credit or by debit"
    )
    answers.add_argument(
        "--dcc",
        choices=("yes", "no"),
        help="yes: pay in the converted currency offered; no: keep the charge's currency",
    )
    add_journal_option(charge)
    charge.set_defaults(handler=cmd_charge)

    for name, helptext in (
        ("refund", "refund a charge, fully or partly"),
        ("capture", "capture a pre-authorisation, fully or partly"),
    ):
        amend = _command(commands, name, parents=[remote], help=helptext)
        amend.add_argument("transaction", metavar="TRANSACTION_ID", help="the charge's identifier")
        amend.add_argument("--amount", type=parse_amount, help="partial amount (with --currency)")
        amend.add_argument("--currency", type=parse_currency, help="currency of --amount")
        amend.add_argument("--subject", help=f"what the {name} is for (on the receipt)")
        amend.add_argument(
            "--custom-identifier",
            help=f"your reference for the {name}, for lookups (default: a fresh one)",
        )
        amend.add_argument(
            "--receipts", action="store_true", help="print the receipts, each between cut lines"
        )
        add_journal_option(amend)
        amend.set_defaults(handler=cmd_amend, kind=name)

    tip = _command(commands, "tip-adjust", parents=[remote], help="add a tip to a charge")
    tip.add_argument("transaction", metavar="TRANSACTION_ID", help="the charge's identifier")
    tip.add_argument("tip", metavar="TIP", type=parse_amount, help="the tip, e.g. 2.00")
    tip.add_argument(
        "currency", metavar="CURRENCY", type=parse_currency, help="the charge's currency, e.g. EUR"
    )
    tip.add_argument("--subject", help="what the tip adjust is for (on the receipt)")
    tip.add_argument(
        "--custom-identifier",
        help="your reference for the tip adjust, for lookups (default: a fresh one)",
    )
    tip.add_argument(
        "--receipts", action="store_true", help="print the receipts, each between cut lines"
    )
    add_journal_option(tip)
    tip.set_defaults(handler=cmd_amend, kind="tip-adjust", amount=None)

    lookup = _command(
        commands,
        "lookup",
        parents=[remote],
        help="look a transaction up (by identifier or custom identifier)",
        description=(
            "Look a transaction up. Use --custom-identifier for a payment whose outcome "
            "was unknown. Exits 0 when the transaction is found, whatever its status."
        ),
    )
    lookup.add_argument(
        "transaction", metavar="TRANSACTION_ID", nargs="?", help="the transaction's identifier"
    )
    lookup.add_argument("--custom-identifier", help="the custom identifier given when charging")
    lookup.add_argument(
        "--receipts", action="store_true", help="print the receipts, each between cut lines"
    )
    lookup.set_defaults(handler=cmd_lookup)
    add_commands(commands, remote)
    return parser


def _command(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    kwargs.setdefault("epilog", _EXIT_CODES)
    parser: argparse.ArgumentParser = commands.add_parser(name, **kwargs)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``payprotocol`` command line; returns the exit code (see the module doc)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse exits 2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _configure_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    previous = _ctrl_c_raises_keyboard_interrupt()
    try:
        return handler(args)
    except UsageError as exc:
        err(f"payprotocol {args.command}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _ctrl_c_raises_keyboard_interrupt() -> Any:
    """Make SIGINT raise ``KeyboardInterrupt`` (the commands' Ctrl-C handling,
    ``charge``'s abort included, relies on it); returns the handler to put back.

    A shell or script starts background jobs with SIGINT ignored, and a child
    inherits that; without this, Ctrl-C or ``kill -INT`` would do nothing. Only
    the main thread may set a handler (``main`` called from another thread
    leaves it alone), and the library itself never touches signals.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)  # None: set from outside Python
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return previous


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


# --- demo --------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._cli_demo import run_demo

    if args.transport == "ws":
        missing = missing_simulator_extra("the WebSocket tour (demo --ws)")
        if missing:
            raise UsageError(f"{missing} (plain 'payprotocol demo' needs nothing more)")

    return run_demo(transport=args.transport, fast=args.fast)
