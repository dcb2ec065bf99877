"""The journal side of the client: one recorder object, and recovery.

Strategy: the client tells a recorder what happened to each transaction
request (about to be sent, not sent, settled, refused, outcome unknown, a late
answer) and never asks whether a journal exists. :class:`JournalRecorder`
writes those facts to a :class:`~payprotocol.journal.Journal`;
:class:`NullRecorder` (no ``journal=``) does nothing. Plain requests (login,
lookups, action answers) are never journaled: only an execute or an amend can
move money.

The write before the send is the one that matters: it raises, and the request
is not sent, when it fails. Every later write is bookkeeping: a failure is
logged and never masks the caller's result, because a row left pending is
settled by :func:`recover` later.

:mod:`payprotocol.journal` (and ``sqlite3`` with it) is imported only when a
journal is given.
"""

from __future__ import annotations

import logging
import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple, Union

import attrs

from . import models as m
from ._requests import PendingRequest, transaction_of
from .errors import ServerError, TransactionOutcomeUnknownError

if TYPE_CHECKING:
    from .journal import Journal, PendingOutcome

__all__ = ["JournalRecorder", "NullRecorder", "RecoveredOutcome", "open_recorder", "recover"]

logger = logging.getLogger("payprotocol")


@attrs.frozen
class RecoveredOutcome:
    """What :meth:`PayClient.recover` found for one pending journal entry.

    ``transaction`` is the server's record (``None`` when it has none: the
    request never became a transaction, so no money moved); ``resolved`` says
    whether the outcome is now final in the journal."""

    pending: PendingOutcome
    transaction: Optional[m.Transaction]
    resolved: bool


class NullRecorder:
    """No journal: every fact is dropped, and journal-only calls say why.

    It is also the recorder interface: :class:`JournalRecorder` overrides
    every method."""

    def sent(self, request: PendingRequest, parameters: Any) -> None:
        """Called before the send; with a journal, a failure stops the send."""

    def not_sent(self, request: PendingRequest, error: BaseException) -> None:
        """The send failed: the request never left the process."""

    def settled(self, request: PendingRequest, response: m.Message) -> None:
        """A final response that settles the request (returned to the caller)."""

    def refused(self, request: PendingRequest, error: ServerError) -> None:
        """The server refused the request (:class:`ServerError`): nothing was charged."""

    def unknown(self, request: PendingRequest, error: TransactionOutcomeUnknownError) -> None:
        """The outcome is unknown: the row stays pending, with the reason."""

    def late(self, tag: str, transaction: m.Transaction) -> None:
        """A late answer for ``tag``: it settles an unknown outcome."""

    def journal(self) -> Journal:
        raise RuntimeError("this PayClient has no journal: pass journal='pos-journal.sqlite'")

    def close(self) -> None:
        """Close a journal the client opened itself."""


class JournalRecorder(NullRecorder):
    """Writes each transaction request's facts to a journal."""

    def __init__(self, journal: Journal, *, owned: bool) -> None:
        self._journal = journal
        self._owned = owned

    def journal(self) -> Journal:
        return self._journal

    def sent(self, request: PendingRequest, parameters: Any) -> None:
        if request.is_transaction:
            # Committed and synced before the request leaves: a crash from here
            # on is recoverable. A failure raises, and nothing is sent.
            self._journal.record_sent(
                tag=request.tag,
                message_type=request.request_type,
                resource=request.resource,
                custom_identifier=request.custom_identifier,
                parameters={} if parameters is None else parameters,
            )

    def not_sent(self, request: PendingRequest, error: BaseException) -> None:
        if request.is_transaction:
            self._write(
                self._journal.record_outcome, request.tag, None, status="NOT_SENT", error=str(error)
            )

    def settled(self, request: PendingRequest, response: m.Message) -> None:
        transaction = transaction_of(response)
        if request.is_transaction and transaction is not None:
            self._write(
                self._journal.record_outcome,
                request.tag,
                transaction,
                status=transaction.status or "UNKNOWN",
            )

    def refused(self, request: PendingRequest, error: ServerError) -> None:
        if request.is_transaction:
            transaction = transaction_of(error.response)
            status = "ERROR" if transaction is None else transaction.status or "ERROR"
            self._write(
                self._journal.record_outcome,
                request.tag,
                transaction,
                status=status,
                error=str(error),
            )

    def unknown(self, request: PendingRequest, error: TransactionOutcomeUnknownError) -> None:
        if request.is_transaction:
            self._write(self._journal.mark_unknown, request.tag, str(error.__cause__ or error))

    def late(self, tag: str, transaction: m.Transaction) -> None:
        if self._journal.get(tag) is not None:
            self._write(
                self._journal.record_outcome,
                tag,
                transaction,
                status=transaction.status or "UNKNOWN",
            )

    def close(self) -> None:
        if self._owned:
            self._journal.close()

    @staticmethod
    def _write(write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        from .journal import JournalError  # loaded already: a journal exists

        # The caller's result matters more than the bookkeeping: log, never mask it.
        try:
            write(*args, **kwargs)
        except JournalError as exc:
            logger.error("journal write failed: %s", exc)


def open_recorder(journal: Union[Journal, str, os.PathLike[str], None]) -> NullRecorder:
    """The recorder for ``PayClient(journal=...)``: a path is opened (and
    closed with the client); a :class:`Journal` is used as it is."""
    if journal is None:
        return NullRecorder()
    if isinstance(journal, (str, os.PathLike)):
        from .journal import Journal

        return JournalRecorder(Journal(journal), owned=True)
    return JournalRecorder(journal, owned=False)


def _mismatch(pending: PendingOutcome, found: m.Transaction) -> Optional[str]:
    """Why ``found`` is not the transaction ``pending`` asked for, or None."""
    asked = pending.parameters.get("transactionParameters")
    if not isinstance(asked, dict):
        return None
    checks: List[Tuple[str, Any, Any]] = [("type", asked.get("type"), found.type)]
    if pending.message_type == "EXECUTE_TRANSACTION_REQUEST":
        checks.append(("amount", asked.get("amount"), found.amount))
    else:
        reference = asked.get("referencedTransactionIdentifier")
        checks.append(("reference", reference, found.referenced_transaction_identifier))
    for name, wanted, got in checks:
        same = wanted == got if isinstance(got, Decimal) else str(wanted) == str(got)
        if wanted is not None and got is not None and not same:
            return f"transaction {found.transaction_identifier} has {name} {got}, not {wanted}"
    return None


def recover(
    journal: Journal,
    look_up: Callable[[str], m.Transaction],
    in_flight: Callable[[str], bool],
) -> List[RecoveredOutcome]:
    """Resolve every pending journal entry by its custom identifier.

    ``look_up`` is ``get_transaction(custom_identifier=...)``; ``in_flight``
    says whether this client still waits for a tag (its own response will
    settle it). See :meth:`PayClient.recover` for the rules."""
    results: List[RecoveredOutcome] = []
    for pending in journal.pending():
        if in_flight(pending.tag):
            continue
        if pending.custom_identifier is None:
            logger.error("journal entry %s has no custom identifier to look up", pending.tag)
            results.append(RecoveredOutcome(pending, None, False))
            continue
        try:
            found: Optional[m.Transaction] = look_up(pending.custom_identifier)
        except ServerError as exc:
            if exc.error_type != m.ErrorType.TRANSACTION_NOT_FOUND:
                raise
            found = None
        mismatch = None if found is None else _mismatch(pending, found)
        if mismatch is not None:
            # A reused custom identifier: that record is not this request's.
            logger.error("not recovering %s: the server's %s", pending.tag, mismatch)
            results.append(RecoveredOutcome(pending, None, False))
            continue
        status = "NOT_FOUND" if found is None else (found.status or "UNKNOWN")
        journal.record_outcome(pending.tag, found, status=status)
        resolved = found is None or m.is_final_status(status)
        results.append(RecoveredOutcome(pending, found, resolved))
        logger.info("recovered %s (%s): %s", pending.tag, pending.custom_identifier, status)
    return results
