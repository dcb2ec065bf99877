"""``payprotocol charge`` driven from a terminal or a script (private).

Strategy: the charge runs on a worker thread (:class:`InteractiveCharge`) so the
main thread stays free for Ctrl-C, which asks the reader to abort only while it
says it can; the final response is always awaited. The reader's questions
(signature, application, credit or debit, currency conversion) are answered
from :class:`Answers`: the ones given up front on the command line
(``--signature receipt``, ...) are used as they are; the others are asked on
the terminal, and a menu that gets a wrong answer says why before it asks
again. Without a terminal nothing can be asked, so :func:`missing_answers`
lets the command refuse such a charge before anything is sent: the card, not
the amount, decides which questions come, so a script gives all four.
"""

from __future__ import annotations

import argparse
import functools
import logging
import threading
import uuid
from typing import Any, Callable, List, Optional, Sequence

import attrs

from . import models as m
from ._cli_console import StatusLine, StdinLines, money
from .client import PayClient
from .errors import PayProtocolError, ServerError

__all__ = ["ANSWER_FLAGS", "Answers", "InteractiveCharge", "missing_answers"]

logger = logging.getLogger("payprotocol.cli")

_GIVE_UP_AFTER = 3  # Ctrl-C presses, while not abortable, before we stop waiting

#: The flags that answer the reader's questions up front, with their values.
ANSWER_FLAGS = (
    ("--signature", "receipt|refuse"),
    ("--application", "N"),
    ("--credit-debit", "credit|debit"),
    ("--dcc", "yes|no"),
)


@attrs.frozen
class Answers:
    """The answers given up front (``None``: ask on the terminal)."""

    signature: Optional[str] = None  # "receipt" or "refuse"
    application: Optional[str] = None  # a number from 1, an identifier or a name
    credit_debit: Optional[str] = None  # "credit" or "debit"
    dcc: Optional[str] = None  # "yes" or "no"

    @classmethod
    def of(cls, args: argparse.Namespace) -> Answers:
        return cls(args.signature, args.application, args.credit_debit, args.dcc)


def missing_answers(answers: Answers) -> List[str]:
    """The flags (as ``--flag VALUES``) a run without a terminal still lacks."""
    given = (answers.signature, answers.application, answers.credit_debit, answers.dcc)
    return [f"{flag} {values}" for (flag, values), value in zip(ANSWER_FLAGS, given) if not value]


class InteractiveCharge:
    """One charge: live status, the reader's questions answered, Ctrl-C to abort."""

    def __init__(
        self,
        client: PayClient,
        device: m.Device,
        args: argparse.Namespace,
        status: StatusLine,
        lines: StdinLines,
        answers: Answers,
    ) -> None:
        self.client = client
        self.device = device
        self.args = args
        self.status = status
        self.lines = lines
        self.answers = answers
        self.custom_identifier: str = args.custom_identifier or uuid.uuid4().hex
        self.abortable = False
        self.finished = threading.Event()
        self.transaction: Optional[m.Transaction] = None
        self.failure: Optional[BaseException] = None
        self.presses = 0  # Ctrl-C presses while the reader could not abort

    def run(self) -> Optional[m.Transaction]:
        """The final transaction; ``None`` when the user stopped waiting."""
        worker = threading.Thread(target=self._charge, name="payprotocol-charge", daemon=True)
        worker.start()
        # A press is counted in the loop's body, never inside the except clause:
        # a press that lands while the last one is being answered (its message
        # printed, an abort sent) only adds to ``unhandled`` and is answered next.
        unhandled = 0
        while not self.finished.is_set():
            try:
                if unhandled:
                    unhandled -= 1
                    self._interrupted()
                if self.presses >= _GIVE_UP_AFTER:
                    self.status.finish()
                    return None
                if not unhandled:
                    self.finished.wait(0.2)
            except KeyboardInterrupt:
                unhandled += 1
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

    def _interrupted(self) -> None:
        """One Ctrl-C: abort when the reader allows it, else count the press."""
        if self.abortable:
            self.presses = 0
            self.status.print("Ctrl-C: asking the reader to abort...")
            try:
                self.client.abort_transaction(self.device)
            except ServerError as exc:
                self.status.print(f"The abort was refused ({exc.error_type}); still waiting.")
            except PayProtocolError as exc:
                self.status.print(f"The abort could not be sent ({exc}); still waiting.")
            else:
                self.status.print("Abort accepted; waiting for the final result.")
            return
        self.presses += 1  # first: a press during the message below still counts this one
        left = _GIVE_UP_AFTER - self.presses
        if left > 0:
            self.status.print(
                "The reader cannot abort at this step; waiting for the result "
                f"(Ctrl-C {left} more time(s) to stop waiting: the outcome would be unknown)."
            )

    def _on_update(self, update: object) -> None:
        if isinstance(update, m.ExecuteTransactionUpdate):
            self.abortable = bool(update.abortable)
            self.status.show(update.information, "Ctrl-C to abort" if self.abortable else "")

    def _ask(self, question: str) -> Optional[str]:
        self.status.prompt(question)
        answer = self.lines.read(cancel=self.finished)
        self.status.answered(answer)
        return None if answer is None else answer.strip()

    def _again(self, why: str) -> None:
        self.status.print(why)

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
        given = self.answers.signature
        if given is not None:
            self.status.print(f"Answering from --signature {given}.")
        while not self.finished.is_set():
            answer = given or self._ask("Has the shopper signed the paper receipt? [y/n] ")
            if answer is None:
                self._abort_for_lack_of_answer()
                return
            if answer.lower() in ("y", "yes", "receipt"):
                self._submit(lambda: self.client.submit_signature(self.device, on_receipt=True))
                return
            if answer.lower() in ("n", "no", "refuse"):
                if self._try_abort():
                    return
                if given is not None:
                    self.status.print(
                        "The reader cannot abort a signature step; waiting for it to give up."
                    )
                    return
                self.status.print("The reader cannot abort now; the signature is needed.")
            else:
                self._again(f"Please answer y (signed) or n (not signed), not {answer!r}.")

    def _application(self, selection: Optional[m.ApplicationSelection]) -> None:
        applications = selection.applications if selection is not None else []
        if not applications:
            self.status.print("The reader asks to choose an application but lists none.")
            self._abort_for_lack_of_answer()
            return
        self.status.print("The card holds several applications:")
        for number, application in enumerate(applications, 1):
            self.status.print(f"  {number}. {application.name or ''} ({application.identifier})")
        given = self.answers.application
        while not self.finished.is_set():
            answer = given or self._ask(f"Which one? [1-{len(applications)}] ")
            if answer is None:
                self._abort_for_lack_of_answer()
                return
            chosen = _pick(applications, answer)
            if chosen is not None:
                if given is not None:
                    self.status.print(f"Choosing {chosen.name or chosen.identifier} "
                                      f"(--application {given}).")  # fmt: skip
                identifier = chosen.identifier
                self._submit(
                    functools.partial(
                        self.client.submit_application_selection, self.device, identifier
                    )
                )
                return
            why = (
                f"There is no application {answer!r}: "
                f"type a number from 1 to {len(applications)}, or its name."
            )
            if given is not None:
                self.status.print(f"--application: {why}")
                self._abort_for_lack_of_answer()
                return
            self._again(why)

    def _credit_debit(self) -> None:
        given = self.answers.credit_debit
        choice = {"c": "CREDIT", "credit": "CREDIT", "d": "DEBIT", "debit": "DEBIT"}
        while not self.finished.is_set():
            answer = given or self._ask("Credit or debit? [c/d] ")
            if answer is None:
                self._abort_for_lack_of_answer()
                return
            selection = choice.get(answer.lower())
            if selection is not None:
                if given is not None:
                    self.status.print(f"Answering {selection} (--credit-debit {given}).")
                self._submit(
                    functools.partial(
                        self.client.submit_credit_debit_selection, self.device, selection
                    )
                )
                return
            self._again(f"Please answer c (credit) or d (debit), not {answer!r}.")

    def _dcc(self, quote: Optional[m.DccSelection]) -> None:
        if quote is not None:
            self.status.print(
                "Currency conversion offered: "
                f"{money(quote.converted_amount, quote.converted_currency)}"
                f" instead of {money(quote.original_amount, quote.original_currency)}"
                f" (rate {quote.exchange_rate}, markup {quote.markup}%)"
            )
        given = self.answers.dcc
        while not self.finished.is_set():
            answer = given or self._ask("Pay in the converted currency? [y/n] ")
            if answer is None:
                self._abort_for_lack_of_answer()
                return
            if answer.lower() in ("y", "yes", "n", "no"):
                use = answer.lower().startswith("y")
                if given is not None:
                    self.status.print(f"Answering {'yes' if use else 'no'} (--dcc {given}).")
                self._submit(functools.partial(self.client.submit_dcc_selection, self.device, use))
                return
            self._again(f"Please answer y (convert) or n (keep the currency), not {answer!r}.")

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
