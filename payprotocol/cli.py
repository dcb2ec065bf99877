"""The ``payprotocol`` command line (also ``python -m payprotocol``).

Commands:

* ``demo``: a guided tour against an in-process simulator (no setup needed).
* ``simulate``: run the embedded PayServer simulator until Ctrl-C.
* ``devices``, ``charge``, ``refund``, ``capture``, ``tip-adjust``,
  ``lookup``: talk to a PayServer (a real one, or ``payprotocol simulate``).
  The merchant secret comes from ``PAYPROTOCOL_MERCHANT_SECRET`` or a hidden
  prompt, never from an argument (arguments end up in shell histories and
  process lists).

Exit codes (the same for every command):

* 0: approved or accepted (for ``devices``/``lookup``/``simulate``: success).
* 1: the transaction was declined, aborted or failed (status ``DECLINED``,
  ``ABORTED`` or ``ERROR``); for ``demo``: a step did not end as expected.
* 2: usage error (bad arguments, bad amount, unknown device, no secret).
* 3: connection error or server error (refused connection, lost connection,
  timeout of a plain request, an ``ERROR`` response such as
  ``AUTHENTICATION_FAILED`` or ``TRANSACTION_NOT_FOUND``).
* 4: outcome unknown: a transaction was sent but its result never arrived
  (or its status is ``INCONCLUSIVE``). The card may have been charged: look it
  up by the custom identifier that is printed, never charge again.
* 130: interrupted (Ctrl-C) before any transaction was sent.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import logging
import os
import re
import signal
import ssl
import sys
import threading
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from . import __version__, codec
from . import models as m
from ._cli_console import (
    StatusLine,
    StdinLines,
    describe_transaction,
    money,
    transaction_json,
)
from .client import PayClient
from .errors import (
    ConnectionLostError,
    PayProtocolError,
    ProtocolViolationError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from .transport import safe_url

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_DECLINED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_DECLINED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_OUTCOME_UNKNOWN = 4
EXIT_INTERRUPTED = 130

SECRET_ENV = "PAYPROTOCOL_MERCHANT_SECRET"
MERCHANT_ENV = "PAYPROTOCOL_MERCHANT_ID"
URL_ENV = "PAYPROTOCOL_URL"
DEFAULT_URL = "tcp://127.0.0.1:4245"

logger = logging.getLogger("payprotocol.cli")

_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_EXIT_CODES = (
    "exit codes: 0 approved/accepted, 1 declined or aborted, 2 usage error, "
    "3 connection or server error, 4 outcome unknown (look it up, never retry)"
)
_GIVE_UP_AFTER = 3  # Ctrl-C presses, while not abortable, before we stop waiting


class UsageError(Exception):
    """Bad input found after argument parsing (exit code 2)."""


# --- argument types ------------------------------------------------------------


def parse_amount(text: str) -> Decimal:
    """A positive amount in major units, exactly as typed (``10.00``, ``7``)."""
    if not _AMOUNT.match(text):
        raise argparse.ArgumentTypeError(
            f"invalid amount {text!r}: write it in major units like 10.00"
        )
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already rules it out
        raise argparse.ArgumentTypeError(f"invalid amount {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid amount {text!r}: it must be above zero")
    return value


def parse_currency(text: str) -> str:
    """An ISO 4217 alpha-3 code, upper-cased."""
    if not _CURRENCY.match(text):
        raise argparse.ArgumentTypeError(f"invalid currency {text!r}: use a code like EUR")
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


def _port(text: str) -> int:
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
        parents=[common],
        help="run the PayServer simulator until Ctrl-C",
        description=(
            "Run the embedded PayServer simulator. Amounts follow the payworks test "
            "card: 10.00 signature, 40.00 PIN, 100.00 declined; cents .01 application "
            "menu, .02 credit/debit, .03 DCC, .09 slow card (time to abort)."
        ),
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    simulate.add_argument(
        "--tcp-port", type=_port, default=4245, help="framed TCP port (0: any free port)"
    )
    simulate.add_argument(
        "--ws-port", type=_port, default=8080, help="WebSocket port (0: any free port)"
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
        "--step-delay", type=_seconds, default=0.4, help="seconds between reader steps"
    )
    simulate.add_argument(
        "--slow-presentation",
        type=_seconds,
        default=3.0,
        help="seconds the card takes to appear for .09 amounts (time to abort)",
    )
    simulate.add_argument(
        "--action-timeout",
        type=_seconds,
        default=60.0,
        help="seconds a reader waits for an answer to its question before aborting",
    )
    simulate.add_argument(
        "--fault",
        dest="faults",
        metavar="SPEC",
        action="append",
        default=[],
        help="inject a fault, e.g. drop-after=3, byte-by-byte, late-response=2 (repeatable)",
    )
    simulate.set_defaults(handler=_cmd_simulate)

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
        "--provider-mode", type=_provider_mode, default="TEST", help="provider mode (TEST)"
    )
    remote.add_argument(
        "--timeout", type=_seconds, default=30.0, help="seconds to wait for a plain answer"
    )
    remote.add_argument(
        "--cafile", metavar="PEM", help="CA certificates to trust for tls:// and wss:// URLs"
    )
    remote.add_argument("--json", action="store_true", help="print the result as JSON")

    devices = _command(
        commands, "devices", parents=[remote], help="log in and list the card readers"
    )
    devices.set_defaults(handler=_cmd_devices)

    charge = _command(
        commands,
        "charge",
        parents=[remote],
        help="charge a card on a reader",
        description=(
            "Charge a card. The reader's lines are shown live; questions from the reader "
            "(signature, application, credit/debit, currency conversion) are asked on the "
            "terminal and answered from standard input. Ctrl-C aborts while the reader "
            "allows it."
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
    charge.add_argument("--receipts", action="store_true", help="print the receipts")
    charge.set_defaults(handler=_cmd_charge)

    for name, helptext in (
        ("refund", "refund a charge, fully or partly"),
        ("capture", "capture a pre-authorisation, fully or partly"),
    ):
        amend = _command(commands, name, parents=[remote], help=helptext)
        amend.add_argument("transaction", metavar="TRANSACTION_ID", help="the charge's identifier")
        amend.add_argument("--amount", type=parse_amount, help="partial amount (with --currency)")
        amend.add_argument("--currency", type=parse_currency, help="currency of --amount")
        amend.add_argument("--subject")
        amend.add_argument("--custom-identifier")
        amend.add_argument("--receipts", action="store_true", help="print the receipts")
        amend.set_defaults(handler=_cmd_amend, kind=name)

    tip = _command(commands, "tip-adjust", parents=[remote], help="add a tip to a charge")
    tip.add_argument("transaction", metavar="TRANSACTION_ID", help="the charge's identifier")
    tip.add_argument("tip", metavar="TIP", type=parse_amount, help="the tip, e.g. 2.00")
    tip.add_argument("currency", metavar="CURRENCY", type=parse_currency)
    tip.add_argument("--subject")
    tip.add_argument("--custom-identifier")
    tip.add_argument("--receipts", action="store_true", help="print the receipts")
    tip.set_defaults(handler=_cmd_amend, kind="tip-adjust", amount=None)

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
    lookup.add_argument("--receipts", action="store_true", help="print the receipts")
    lookup.set_defaults(handler=_cmd_lookup)
    return parser


def _command(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, epilog=_EXIT_CODES, **kwargs)
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
    try:
        return handler(args)
    except UsageError as exc:
        _err(f"payprotocol {args.command}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _out(text: str = "") -> None:
    print(text, flush=True)


# --- connecting to a PayServer ----------------------------------------------------


def _merchant_secret(merchant: str) -> str:
    secret = os.environ.get(SECRET_ENV)
    if secret:
        return secret
    try:
        secret = getpass.getpass(f"Merchant secret for {merchant}: ")
    except (EOFError, OSError):
        secret = ""
    if not secret:
        raise UsageError(f"no merchant secret: set {SECRET_ENV} or type it at the prompt")
    return secret


@contextlib.contextmanager
def _session(args: argparse.Namespace) -> Iterator[Tuple[PayClient, m.LoginMerchantResponse]]:
    """Connect and log in; the client is closed on the way out."""
    if not args.merchant:
        raise UsageError(f"give --merchant ID (or set {MERCHANT_ENV})")
    secret = _merchant_secret(args.merchant)
    ssl_context = None
    if args.cafile:
        try:
            ssl_context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use --cafile {args.cafile}: {exc}") from None
    client = PayClient(args.url, timeout=args.timeout, ssl_context=ssl_context)
    try:
        try:
            client.connect()
        except ValueError as exc:  # an unsupported URL
            raise UsageError(str(exc)) from None
        login = client.login(args.merchant, secret, args.provider_mode)
        yield client, login
    finally:
        client.close()


def _remote(
    args: argparse.Namespace, body: Callable[[PayClient, m.LoginMerchantResponse], int]
) -> int:
    """Run ``body`` on a logged-in client and turn the SDK's errors into exit codes."""
    try:
        with _session(args) as (client, login):
            return body(client, login)
    except TransactionOutcomeUnknownError as exc:
        _report_unknown(args, exc.custom_identifier, str(exc))
        return EXIT_OUTCOME_UNKNOWN
    except ServerError as exc:
        _err(f"payprotocol {args.command}: the PayServer refused: {exc.error_type}: {exc.message}")
        return EXIT_CONNECTION
    except (ConnectionLostError, RequestTimeoutError, ProtocolViolationError) as exc:
        _err(f"payprotocol {args.command}: connection error: {exc}")
        return EXIT_CONNECTION
    except PayProtocolError as exc:
        _err(f"payprotocol {args.command}: error: {exc}")
        return EXIT_CONNECTION


def _report_unknown(args: argparse.Namespace, custom_identifier: Optional[str], why: str) -> None:
    _err(f"payprotocol {args.command}: OUTCOME UNKNOWN: {why}")
    _err("The card may have been charged. Do NOT charge again; look the transaction up:")
    _err(
        f"  payprotocol lookup --url {safe_url(args.url)} --merchant {args.merchant} "
        f"--custom-identifier {custom_identifier}"
    )


def _find_device(login: m.LoginMerchantResponse, wanted: str) -> m.Device:
    for device in login.devices:
        if wanted in (device.resource, device.identifier, device.name):
            return device
    known = ", ".join(device.resource for device in login.devices) or "none"
    raise UsageError(f"no reader {wanted!r} (readers: {known})")


def _exit_code_of(transaction: m.Transaction) -> int:
    status = str(transaction.status)
    if not m.is_final_status(status):  # INCONCLUSIVE, not final, or a status we do not know
        return EXIT_OUTCOME_UNKNOWN
    return EXIT_DECLINED if status in m.FAILED_STATUSES else EXIT_OK


def _print_transaction(args: argparse.Namespace, transaction: m.Transaction) -> None:
    if args.json:
        _out(transaction_json(transaction))
    else:
        for line in describe_transaction(transaction):
            _out(line)
    if getattr(args, "receipts", False) and not args.json:
        _print_receipts(transaction)
    if transaction.status == m.TransactionStatus.INCONCLUSIVE:
        _err(
            "The outcome is INCONCLUSIVE: look it up again later "
            f"(custom identifier {transaction.custom_identifier}); do not charge again."
        )


def _print_receipts(transaction: m.Transaction, width: int = 40) -> None:
    from .receipts import format_receipt

    for receipt in (transaction.merchant_receipt, transaction.customer_receipt):
        if receipt is not None:
            _out()
            _out(format_receipt(receipt, width=width))


# --- devices ------------------------------------------------------------------------


def _cmd_devices(args: argparse.Namespace) -> int:
    def body(client: PayClient, login: m.LoginMerchantResponse) -> int:
        if args.json:
            _out(codec.wire_json(login))
            return EXIT_OK
        location = (login.information or {}).get("location")
        if location:
            _out(f"Location: {location}")
        if not login.devices:
            _out("No card readers.")
        for device in login.devices:
            kind = "/".join(str(part) for part in (device.type, device.comlink) if part)
            _out(f"{device.resource:<24} {device.name or '':<24} {kind}")
        return EXIT_OK

    return _remote(args, body)


# --- charge ------------------------------------------------------------------------------


class _InteractiveCharge:
    """One charge driven from a terminal: live status, questions, Ctrl-C to abort.

    The charge itself runs on a worker thread so that the main thread stays free
    to receive Ctrl-C (a ``KeyboardInterrupt`` inside ``client.charge`` would
    abandon the wait, and the result with it). Ctrl-C asks the PayServer to
    abort only while the latest update said ``abortable``; the final response is
    always awaited.
    """

    def __init__(
        self,
        client: PayClient,
        device: m.Device,
        args: argparse.Namespace,
        status: StatusLine,
        answers: StdinLines,
    ) -> None:
        self.client = client
        self.device = device
        self.args = args
        self.status = status
        self.answers = answers
        self.custom_identifier: str = args.custom_identifier or uuid.uuid4().hex
        self.abortable = False
        self.finished = threading.Event()
        self.transaction: Optional[m.Transaction] = None
        self.failure: Optional[BaseException] = None

    def run(self) -> Optional[m.Transaction]:
        """The final transaction; ``None`` when the user stopped waiting."""
        worker = threading.Thread(target=self._charge, name="payprotocol-charge", daemon=True)
        worker.start()
        presses = 0
        while not self.finished.is_set():
            try:
                self.finished.wait(0.2)
            except KeyboardInterrupt:
                try:
                    presses = self._interrupted(presses)
                except KeyboardInterrupt:  # pressed again while the abort was being sent
                    presses += 1
                if presses >= _GIVE_UP_AFTER:
                    self.status.finish()
                    return None
        self.status.finish()
        if self.failure is not None:
            raise self.failure
        return self.transaction

    def _charge(self) -> None:
        try:
            self.transaction = self.client.charge(
                self.device,
                self.args.amount,
                self.args.currency,
                subject=self.args.subject,
                custom_identifier=self.custom_identifier,
                auto_capture=self.args.auto_capture,
                on_update=self._on_update,
                on_action=self._on_action,
            )
        except BaseException as exc:  # handed to the main thread, which maps it
            self.failure = exc
        finally:
            self.finished.set()

    def _interrupted(self, presses: int) -> int:
        if self.abortable:
            self.status.print("Ctrl-C: asking the reader to abort...")
            try:
                self.client.abort_transaction(self.device)
            except ServerError as exc:
                self.status.print(f"The abort was refused ({exc.error_type}); still waiting.")
            except PayProtocolError as exc:
                self.status.print(f"The abort could not be sent ({exc}); still waiting.")
            else:
                self.status.print("Abort accepted; waiting for the final result.")
            return 0
        presses += 1
        left = _GIVE_UP_AFTER - presses
        if left > 0:
            self.status.print(
                "The reader cannot abort at this step; waiting for the result "
                f"(Ctrl-C {left} more time(s) to stop waiting: the outcome would be unknown)."
            )
        return presses

    def _on_update(self, update: object) -> None:
        if isinstance(update, m.ExecuteTransactionUpdate):
            self.abortable = bool(update.abortable)
            self.status.show(update.information, "Ctrl-C to abort" if self.abortable else "")

    def _ask(self, question: str) -> Optional[str]:
        self.status.prompt(question)
        answer = self.answers.read(cancel=self.finished)
        self.status.answered(answer)
        return None if answer is None else answer.strip()

    def _on_action(self, action: m.ExecuteTransactionAction) -> None:
        kind = action.action
        if kind == m.ActionType.SIGNATURE:
            self._signature()
        elif kind == m.ActionType.APPLICATION_SELECTION:
            self._application(action.application_selection)
        elif kind == m.ActionType.CREDIT_DEBIT_SELECTION:
            self._credit_debit()
        elif kind == m.ActionType.DCC_SELECTION:
            self._dcc(action.dcc_selection)
        else:
            self.status.print(f"The reader asks for {kind}, which this program cannot answer.")
            self._abort_for_lack_of_answer()

    def _signature(self) -> None:
        self.status.print("The reader asks for the shopper's signature.")
        while not self.finished.is_set():
            answer = self._ask("Has the shopper signed the paper receipt? [y/n] ")
            if answer is None:
                self._abort_for_lack_of_answer()
                return
            if answer.lower() in ("y", "yes"):
                self._submit(lambda: self.client.submit_signature(self.device, on_receipt=True))
                return
            if answer.lower() in ("n", "no"):
                if self._try_abort():
                    return
                self.status.print("The reader cannot abort now; the signature is needed.")

    def _application(self, selection: Optional[m.ApplicationSelection]) -> None:
        applications = selection.applications if selection is not None else []
        if not applications:
            self.status.print("The reader asks to choose an application but lists none.")
            self._abort_for_lack_of_answer()
            return
        self.status.print("The card holds several applications:")
        for number, application in enumerate(applications, 1):
            self.status.print(f"  {number}. {application.name or ''} ({application.identifier})")
        while not self.finished.is_set():
            answer = self._ask(f"Which one? [1-{len(applications)}] ")
            if answer is None:
                self._abort_for_lack_of_answer()
                return
            chosen = _pick(applications, answer)
            if chosen is not None:
                identifier = chosen.identifier
                self._submit(
                    functools.partial(
                        self.client.submit_application_selection, self.device, identifier
                    )
                )
                return

    def _credit_debit(self) -> None:
        while not self.finished.is_set():
            answer = self._ask("Credit or debit? [c/d] ")
            if answer is None:
                self._abort_for_lack_of_answer()
                return
            choice = {"c": "CREDIT", "credit": "CREDIT", "d": "DEBIT", "debit": "DEBIT"}
            selection = choice.get(answer.lower())
            if selection is not None:
                self._submit(
                    functools.partial(
                        self.client.submit_credit_debit_selection, self.device, selection
                    )
                )
                return

    def _dcc(self, quote: Optional[m.DccSelection]) -> None:
        if quote is not None:
            self.status.print(
                "Currency conversion offered: "
                f"{money(quote.converted_amount, quote.converted_currency)}"
                f" instead of {money(quote.original_amount, quote.original_currency)}"
                f" (rate {quote.exchange_rate}, markup {quote.markup}%)"
            )
        while not self.finished.is_set():
            answer = self._ask("Pay in the converted currency? [y/n] ")
            if answer is None:
                self._abort_for_lack_of_answer()
                return
            if answer.lower() in ("y", "yes", "n", "no"):
                use = answer.lower().startswith("y")
                self._submit(functools.partial(self.client.submit_dcc_selection, self.device, use))
                return

    def _submit(self, send: Callable[[], Any]) -> None:
        try:
            send()
        except ServerError as exc:
            self.status.print(f"The reader refused the answer: {exc.error_type}: {exc.message}")
        except PayProtocolError as exc:
            self.status.print(f"The answer could not be sent: {exc}")

    def _try_abort(self) -> bool:
        try:
            self.client.abort_transaction(self.device)
        except PayProtocolError as exc:
            logger.info("abort refused: %s", exc)
            return False
        self.status.print("Aborting the transaction.")
        return True

    def _abort_for_lack_of_answer(self) -> None:
        if self.finished.is_set():
            return
        self.status.print("No answer: asking the reader to abort.")
        if not self._try_abort():
            self.status.print("The reader refused the abort; waiting for it to give up.")


def _pick(applications: Sequence[m.Application], answer: str) -> Optional[m.Application]:
    if answer.isdigit() and 1 <= int(answer) <= len(applications):
        return applications[int(answer) - 1]
    for application in applications:
        if answer.upper() in (application.identifier.upper(), (application.name or "").upper()):
            return application
    return None


def _cmd_charge(args: argparse.Namespace) -> int:
    def body(client: PayClient, login: m.LoginMerchantResponse) -> int:
        device = _find_device(login, args.device)
        status = StatusLine(sys.stderr)
        charge = _InteractiveCharge(client, device, args, status, StdinLines())
        status.print(
            f"Charging {money(args.amount, args.currency)} on {device.name or device.resource} "
            f"(custom identifier {charge.custom_identifier})"
        )
        try:
            transaction = charge.run()
        except TransactionOutcomeUnknownError as exc:
            _report_unknown(args, charge.custom_identifier, str(exc))
            return EXIT_OUTCOME_UNKNOWN
        if transaction is None:
            _report_unknown(args, charge.custom_identifier, "stopped waiting for the result")
            return EXIT_OUTCOME_UNKNOWN
        _print_transaction(args, transaction)
        return _exit_code_of(transaction)

    return _remote(args, body)


# --- refund / capture / tip-adjust / lookup ------------------------------------------------


def _cmd_amend(args: argparse.Namespace) -> int:
    partial = args.kind in ("refund", "capture")
    if partial and (args.amount is None) != (args.currency is None):
        raise UsageError("give --amount and --currency together (or neither for the full amount)")
    custom_identifier: str = args.custom_identifier or uuid.uuid4().hex

    def body(client: PayClient, login: m.LoginMerchantResponse) -> int:
        status = StatusLine(sys.stderr)

        def on_update(update: object) -> None:
            if isinstance(update, m.AmendTransactionUpdate):
                status.show(update.information)

        try:
            if args.kind == "refund":
                transaction = client.refund(
                    args.transaction,
                    amount=args.amount,
                    currency=args.currency,
                    subject=args.subject,
                    custom_identifier=custom_identifier,
                    on_update=on_update,
                )
            elif args.kind == "capture":
                transaction = client.capture(
                    args.transaction,
                    amount=args.amount,
                    currency=args.currency,
                    subject=args.subject,
                    custom_identifier=custom_identifier,
                    on_update=on_update,
                )
            else:
                transaction = client.tip_adjust(
                    args.transaction,
                    args.tip,
                    args.currency,
                    subject=args.subject,
                    custom_identifier=custom_identifier,
                    on_update=on_update,
                )
        except KeyboardInterrupt:
            status.finish()
            _report_unknown(args, custom_identifier, "interrupted while waiting for the result")
            return EXIT_OUTCOME_UNKNOWN
        status.finish()
        _print_transaction(args, transaction)
        return _exit_code_of(transaction)

    return _remote(args, body)


def _cmd_lookup(args: argparse.Namespace) -> int:
    if (args.transaction is None) == (args.custom_identifier is None):
        raise UsageError("give a TRANSACTION_ID or --custom-identifier (exactly one)")

    def body(client: PayClient, login: m.LoginMerchantResponse) -> int:
        transaction = client.get_transaction(
            transaction_identifier=args.transaction, custom_identifier=args.custom_identifier
        )
        _print_transaction(args, transaction)
        return EXIT_OK

    return _remote(args, body)


# --- simulate ------------------------------------------------------------------------------


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulator import FaultPlan, Simulator, SimulatorConfig

    try:
        faults = FaultPlan.parse(args.faults)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.tcp_port is None and args.ws_port is None:
        raise UsageError("nothing to listen on")
    config = SimulatorConfig(
        host=args.host,
        tcp_port=args.tcp_port,
        ws_port=args.ws_port,
        merchants=dict(args.merchants),
        step_delay=args.step_delay,
        slow_presentation=args.slow_presentation,
        action_timeout=args.action_timeout,
        faults=faults,
    )
    _configure_simulator_logging(args.verbose)
    _stop_on_signals()
    simulator = Simulator(config)
    try:
        simulator.start()
    except OSError as exc:
        _err(f"payprotocol simulate: cannot listen: {exc}")
        return EXIT_CONNECTION
    try:
        _out("PayProtocol simulator ready")
        _out(f"  TCP:       {simulator.tcp_url}")
        _out(f"  WebSocket: {simulator.ws_url}")
        merchants = ", ".join(sorted(config.merchants)) or "any identifier with a secret"
        _out(f"  merchants: {merchants}")
        readers = ", ".join(f"{d.resource} ({d.name})" for d in config.devices)
        _out(f"  readers:   {readers}")
        if faults.active:
            _out(f"  faults:    {', '.join(faults.to_specs())}")
        _out("Press Ctrl-C to stop.")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        _out("Stopping the simulator.")
    finally:
        simulator.stop()
    return EXIT_OK


def _configure_simulator_logging(verbosity: int) -> None:
    # The simulator logs every message it sends or receives (secrets redacted) at
    # DEBUG, connections and outcomes at INFO; the websockets library only at -v.
    logging.getLogger("payprotocol.simulator").setLevel(logging.DEBUG)
    logging.getLogger("payprotocol.simulator.websockets").setLevel(
        logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING
    )


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end ``simulate`` cleanly (as a KeyboardInterrupt).

    A shell starts background jobs with SIGINT ignored; a server someone runs
    from a script should still stop on Ctrl-C or ``kill -INT``.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, interrupt)


# --- demo --------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._cli_demo import run_demo

    return run_demo(transport=args.transport, fast=args.fast)
