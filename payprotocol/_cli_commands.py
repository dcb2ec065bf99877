"""The commands that talk to a PayServer: ``devices``, ``charge``, ``refund``,
``capture``, ``tip-adjust`` and ``lookup`` (private).

Strategy: every command is a small ``body(client, login)`` run by
:func:`_remote`, which connects, logs in, closes the client on the way out and
is the one place where the SDK's exceptions become exit codes, so the commands
agree on them. Money safety comes first: a transaction sent whose result never
arrived is reported as OUTCOME UNKNOWN (exit 4) with the exact ``lookup``
command to run, never as a failure. ``charge`` runs the payment on a worker
thread (:class:`_InteractiveCharge`) so the main thread stays free for Ctrl-C,
which asks the reader to abort only while it says it can. The merchant secret
comes from the environment or a hidden prompt, never from an argument.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import logging
import os
import ssl
import sys
import threading
import uuid
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple

from . import codec
from . import models as m
from ._cli_common import (
    EXIT_CONNECTION,
    EXIT_DECLINED,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
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

__all__ = ["cmd_amend", "cmd_charge", "cmd_devices", "cmd_lookup"]

logger = logging.getLogger("payprotocol.cli")

_GIVE_UP_AFTER = 3  # Ctrl-C presses, while not abortable, before we stop waiting


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
    try:  # the URL is checked here, and its password masked in the message
        client = PayClient(
            args.url,
            timeout=args.timeout,
            ssl_context=ssl_context,
            record=args.record,
            record_cardholder_name=args.record_cardholder_name,
        )
    except ValueError as exc:  # an unsupported URL, or --cafile with tcp:// or ws://
        raise UsageError(str(exc)) from None
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
        err(f"payprotocol {args.command}: the PayServer refused: {exc.error_type}: {exc.message}")
        return EXIT_CONNECTION
    except (ConnectionLostError, RequestTimeoutError, ProtocolViolationError) as exc:
        err(f"payprotocol {args.command}: connection error: {exc}")
        return EXIT_CONNECTION
    except PayProtocolError as exc:
        err(f"payprotocol {args.command}: error: {exc}")
        return EXIT_CONNECTION


def _report_unknown(args: argparse.Namespace, custom_identifier: Optional[str], why: str) -> None:
    err(f"payprotocol {args.command}: OUTCOME UNKNOWN: {why}")
    err("The card may have been charged. Do NOT charge again; look the transaction up:")
    err(
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
            out(format_receipt(receipt, width=width, transaction=owner))


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


def cmd_charge(args: argparse.Namespace) -> int:
    """``payprotocol charge``: one interactive charge (P3 ``EXECUTE_TRANSACTION``)."""

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


def cmd_amend(args: argparse.Namespace) -> int:
    """``payprotocol refund``/``capture``/``tip-adjust`` (P3 ``AMEND_TRANSACTION``)."""
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
