"""The commands that talk to a PayServer: ``devices``, ``charge``, ``refund``,
``capture``, ``tip-adjust`` and ``lookup`` (private).

Strategy: every command is a small ``body(client, login)`` run by
:func:`_remote`, which connects, logs in, closes the client on the way out and
is the one place where the SDK's exceptions become exit codes, so the commands
agree on them. Money safety comes first: a transaction sent whose result never
arrived is reported as OUTCOME UNKNOWN (exit 4) with the exact ``lookup``
command to run, never as a failure. ``charge`` runs the payment on a worker
thread (``_cli_charge``) so the main thread stays free for Ctrl-C, which asks
the reader to abort only while it says it can. The merchant secret
comes from the environment or a hidden prompt, never from an argument.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import ssl
import sys
import uuid
from decimal import Decimal
from typing import Any, Callable, Iterator, Optional, Tuple

from . import codec
from . import models as m
from ._cli_charge import Answers, InteractiveCharge, missing_answers
from ._cli_common import (
    EXIT_CONNECTION,
    EXIT_DECLINED,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_USAGE,
    MERCHANT_ENV,
    SECRET_ENV,
    UsageError,
    err,
    out,
)
from ._cli_console import (
    StatusLine,
    StdinLines,
    describe_transaction,
    framed,
    money,
    transaction_json,
)
from ._cli_probe import SchemeCheck
from ._money import amount_in
from .client import PayClient
from .errors import (
    ConnectionLostError,
    CustomIdentifierInUseError,
    PayProtocolError,
    ProtocolViolationError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from .transport import safe_url

__all__ = ["cmd_amend", "cmd_charge", "cmd_devices", "cmd_lookup", "run_remote"]

logger = logging.getLogger("payprotocol.cli")

_GIVE_UP_AFTER = 3  # Ctrl-C presses, while not abortable, before we stop waiting


# --- connecting to a PayServer ----------------------------------------------------


def _merchant_secret(merchant: str) -> str:
    secret = os.environ.get(SECRET_ENV)
    if secret:
        return secret
    try:
        secret = _read_secret(f"Merchant secret for {merchant}: ")
    except (EOFError, OSError):
        secret = ""
    if not secret:
        raise UsageError(f"no merchant secret: set {SECRET_ENV} or type it at the prompt")
    return secret


def _read_secret(prompt: str) -> str:
    """The secret from a hidden prompt on the terminal; without a terminal
    (a script, a service) one line of standard input, read quietly: getpass
    would print two warnings about echoing before it, on a pipe that echoes
    nothing."""
    if sys.platform != "win32":  # Windows: getpass reads the console itself
        try:
            with open("/dev/tty", "rb"):
                pass
        except OSError:  # no controlling terminal
            return _stdin_line()
    return getpass.getpass(prompt)


def _stdin_line() -> str:
    """One line of standard input, read byte by byte from the descriptor so that
    nothing after it is buffered away."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return ""
    line = bytearray()
    while len(line) < 4096:
        byte = os.read(fd, 1)
        if not byte or byte == b"\n":
            break
        line += byte
    return line.decode("utf-8", "replace").rstrip("\r")


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
    try:  # the URL is checked here, and its password masked in the message
        client = PayClient(
            args.url,
            timeout=args.timeout,
            ssl_context=ssl_context,
            journal=getattr(args, "journal", None),  # --journal FILE, or recover's Journal
            record=args.record,
            record_cardholder_name=args.record_cardholder_name,
        )
    except ValueError as exc:  # an unsupported URL, or --cafile with tcp:// or ws://
        raise UsageError(str(exc)) from None
    try:
        with SchemeCheck(args.url, client.close) as check:  # tcp:// to a WebSocket port?
            try:
                client.connect()
            except ValueError as exc:  # an unsupported URL
                raise UsageError(str(exc)) from None
            except ConnectionLostError as exc:
                raise _with_hint(exc, check) from exc
            try:
                login = client.login(args.merchant, secret, args.provider_mode)
            except (ConnectionLostError, ProtocolViolationError, RequestTimeoutError) as exc:
                raise _with_hint(exc, check) from exc
        yield client, login
    finally:
        client.close()


def _with_hint(exc: PayProtocolError, check: SchemeCheck) -> PayProtocolError:
    """``exc``, or a :class:`ConnectionLostError` that names the right scheme."""
    hint = check.hint()
    if hint is None:
        return exc
    what = "no answer to the login over framed TCP" if check.gave_up else str(exc).rstrip(".")
    return ConnectionLostError(f"{what}; {hint}")


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
    except CustomIdentifierInUseError as exc:  # refused before anything was sent
        err(f"payprotocol {args.command}: error: {exc}")
        return EXIT_USAGE
    except ServerError as exc:
        err(f"payprotocol {args.command}: the PayServer refused: {exc.error_type}: {exc.message}")
        return EXIT_CONNECTION
    except (ConnectionLostError, RequestTimeoutError, ProtocolViolationError) as exc:
        err(f"payprotocol {args.command}: connection error: {exc}")
        return EXIT_CONNECTION
    except PayProtocolError as exc:
        err(f"payprotocol {args.command}: error: {exc}")
        return EXIT_CONNECTION


def run_remote(
    args: argparse.Namespace, body: Callable[[PayClient, m.LoginMerchantResponse], int]
) -> int:
    """``body`` on a logged-in client, the SDK's errors as exit codes (for the
    journal commands of ``_cli_journal``)."""
    return _remote(args, body)


def _report_unknown(args: argparse.Namespace, custom_identifier: Optional[str], why: str) -> None:
    err(f"payprotocol {args.command}: OUTCOME UNKNOWN: {why}")
    err("The card may have been charged. Do NOT charge again; look the transaction up:")
    err(
        f"  payprotocol lookup --url {safe_url(args.url)} --merchant {args.merchant} "
        f"--custom-identifier {custom_identifier}"
    )


def _in_minor_units(amount: Decimal, currency: Optional[str], what: str) -> Decimal:
    """The typed amount in its currency's minor units (``7`` EUR is ``7.00``),
    checked before anything is sent; a rule it breaks is a usage error."""
    try:
        return amount_in(amount, currency, what)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced standard input
        return False


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
        out(transaction_json(transaction))
    else:
        for line in describe_transaction(transaction):
            out(line)
    if getattr(args, "receipts", False) and not args.json:
        _print_receipts(transaction)
    if transaction.status == m.TransactionStatus.INCONCLUSIVE:
        err(
            "The outcome is INCONCLUSIVE: look it up again later "
            f"(custom identifier {transaction.custom_identifier}); do not charge again."
        )


def _print_receipts(transaction: m.Transaction, width: int = 40) -> None:
    from .receipts import format_receipt

    # The transaction's tip and signature flags (section 4) are for the merchant's
    # copy, the one the shopper signs; the customer's copy keeps its own.
    for receipt, owner in (
        (transaction.merchant_receipt, transaction),
        (transaction.customer_receipt, None),
    ):
        if receipt is not None:
            out()
            out(framed(format_receipt(receipt, width=width, transaction=owner), width))


# --- devices ------------------------------------------------------------------------


def cmd_devices(args: argparse.Namespace) -> int:
    """``payprotocol devices``: log in and list the card readers (P3 ``LOGIN_MERCHANT``)."""

    def body(client: PayClient, login: m.LoginMerchantResponse) -> int:
        if args.json:
            out(codec.wire_json(login))
            return EXIT_OK
        location = (login.information or {}).get("location")
        if location:
            out(f"Location: {location}")
        if not login.devices:
            out("No card readers.")
        for device in login.devices:
            kind = "/".join(str(part) for part in (device.type, device.comlink) if part)
            out(f"{device.resource:<24} {device.name or '':<24} {kind}")
        return EXIT_OK

    return _remote(args, body)


# --- charge ------------------------------------------------------------------------------


def cmd_charge(args: argparse.Namespace) -> int:
    """``payprotocol charge``: one interactive charge (P3 ``EXECUTE_TRANSACTION``)."""

    args.amount = _in_minor_units(args.amount, args.currency, "AMOUNT")
    answers = Answers.of(args)
    missing = missing_answers(answers)
    if missing and not _is_terminal(sys.stdin):
        raise UsageError(
            "no terminal to ask the reader's questions on: give the answers up front "
            f"(the card decides which questions come): {', '.join(missing)}"
        )

    def body(client: PayClient, login: m.LoginMerchantResponse) -> int:
        device = _find_device(login, args.device)
        status = StatusLine(sys.stderr)
        charge = InteractiveCharge(client, device, args, status, StdinLines(), answers)
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


def cmd_amend(args: argparse.Namespace) -> int:
    """``payprotocol refund``/``capture``/``tip-adjust`` (P3 ``AMEND_TRANSACTION``)."""
    partial = args.kind in ("refund", "capture")
    if partial and (args.amount is None) != (args.currency is None):
        raise UsageError("give --amount and --currency together (or neither for the full amount)")
    if args.amount is not None:
        args.amount = _in_minor_units(args.amount, args.currency, "--amount")
    if args.kind == "tip-adjust":
        args.tip = _in_minor_units(args.tip, args.currency, "TIP")
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


def cmd_lookup(args: argparse.Namespace) -> int:
    """``payprotocol lookup``: find a transaction (P3 ``GET_TRANSACTION``)."""
    if (args.transaction is None) == (args.custom_identifier is None):
        raise UsageError("give a TRANSACTION_ID or --custom-identifier (exactly one)")

    def body(client: PayClient, login: m.LoginMerchantResponse) -> int:
        transaction = client.get_transaction(
            transaction_identifier=args.transaction, custom_identifier=args.custom_identifier
        )
        _print_transaction(args, transaction)
        return EXIT_OK

    return _remote(args, body)
