"""The journal side of the client: one recorder object, and recovery.

Strategy: the client tells a recorder what happened to each transaction
request (about to be sent, not sent, settled, refused, outcome unknown, a late
answer) and never asks whether a journal exists. :class:`JournalRecorder`
writes those facts to a :class:`~payprotocol.journal.Journal`;
:class:`NullRecorder` (no ``journal=``) does nothing. Plain requests (login,
lookups, action answers) are never journaled: only an execute or an amend can
move money.

Before anything is sent, the recorder refuses a custom identifier that an
unresolved request already uses (:class:`CustomIdentifierInUseError`): in the
journal, for every process sharing it; without one, in this client's memory.

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
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

import attrs

from . import models as m
from ._requests import PendingRequest, transaction_of
from ._settle import contradiction
from .errors import (
    CustomIdentifierInUseError,
    PayProtocolError,
    ServerError,
    TransactionOutcomeUnknownError,
)

if TYPE_CHECKING:
    from .journal import Journal, JournalEntry, PendingOutcome

__all__ = [
    "RECOVERY_RESULTS",
    "JournalRecorder",
    "NullRecorder",
    "RecoveredOutcome",
    "open_recorder",
    "recover",
]

logger = logging.getLogger("payprotocol")

#: What :func:`recover` can say about one entry (``RecoveredOutcome.result``).
RECOVERY_RESULTS = (
    "found",  # the server's final record: the row is settled with it
    "not_found",  # no transaction under the identifier: nothing was charged
    "still_pending",  # the server's record is not final yet: run recover() again later
    "conflict",  # two final outcomes disagree and the lookup did not settle it
    "mismatch",  # the server's record under the identifier is another request's
    "in_flight",  # its client is alive (this one waiting, or another one): left alone
    "error",  # the lookup failed (``error`` says how): run recover() again later
)


@attrs.frozen
class RecoveredOutcome:
    """What :meth:`PayClient.recover` found for one pending journal entry.

    ``transaction`` is the server's record (``None`` when it has none: the
    request never became a transaction, so no money moved, or the lookup did
    not get that far); ``resolved`` says whether the outcome is now final in
    the journal; ``result`` is one of :data:`RECOVERY_RESULTS`; ``error`` the
    exception the entry's lookup hit (``result == "error"``); ``detail`` a
    human-readable reason for the result, if any."""

    pending: PendingOutcome
    transaction: Optional[m.Transaction]
    resolved: bool
    result: str = "found"
    error: Optional[BaseException] = attrs.field(default=None, eq=False)
    detail: Optional[str] = None


class NullRecorder:
    """No journal: the facts are not written anywhere, but this client still
    refuses to start a request under a custom identifier that one of its own
    requests holds unresolved (in flight, or ended with its outcome unknown).

    It is also the recorder interface: :class:`JournalRecorder` overrides
    every method."""

    owner: Optional[str] = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unresolved: Dict[str, str] = {}  # tag -> custom identifier

    def sent(
        self, request: PendingRequest, parameters: Any, allow_identifier_reuse: bool = False
    ) -> None:
        """Called before the send; raises, and nothing is sent, when the
        request may not go (a reused identifier; with a journal, a failed write)."""
        custom_identifier = request.custom_identifier
        if not request.is_transaction or custom_identifier is None:
            return
        with self._lock:
            if custom_identifier in self._unresolved.values():
                raise CustomIdentifierInUseError(
                    f"custom identifier {custom_identifier!r} is in use by a request of this "
                    "client whose outcome is not known: look it up (get_transaction) before "
                    "charging it again; nothing was sent",
                    custom_identifier=custom_identifier,
                    state="unresolved",
                )
            self._unresolved[request.tag] = custom_identifier

    def _forget(self, tag: str) -> None:
        with self._lock:
            self._unresolved.pop(tag, None)

    def not_sent(self, request: PendingRequest, error: BaseException) -> None:
        """The send failed: the request never left the process."""
        self._forget(request.tag)

    def settled(self, request: PendingRequest, response: m.Message) -> None:
        """A final response that settles the request (returned to the caller)."""
        self._forget(request.tag)

    def refused(self, request: PendingRequest, error: ServerError) -> None:
        """The server refused the request (:class:`ServerError`): nothing was charged."""
        self._forget(request.tag)

    def unknown(self, request: PendingRequest, error: TransactionOutcomeUnknownError) -> None:
        """The outcome is unknown: the row stays pending, with the reason."""

    def late(self, tag: str, transaction: m.Transaction) -> None:
        """A late answer for ``tag``: it settles an unknown outcome (unless it
        is for another custom identifier: not this request's answer)."""
        with self._lock:
            wanted = self._unresolved.get(tag)
        if contradiction(
            transaction, custom_identifier=wanted, currency=None, transaction_type=None
        ):
            return
        if m.is_final_status(str(transaction.status)):
            self._forget(tag)

    def journal(self) -> Journal:
        raise RuntimeError("this PayClient has no journal: pass journal='pos-journal.sqlite'")

    def close(self) -> None:
        """Close a journal the client opened itself."""


class JournalRecorder(NullRecorder):
    """Writes each transaction request's facts to a journal, under this
    client's own owner id (alive until :meth:`close`)."""

    def __init__(self, journal: Journal, *, owned: bool) -> None:
        super().__init__()
        self._journal = journal
        self._owned = owned
        self.owner = journal.register_owner()

    def journal(self) -> Journal:
        return self._journal

    def sent(
        self, request: PendingRequest, parameters: Any, allow_identifier_reuse: bool = False
    ) -> None:
        if request.is_transaction:
            # Committed and synced before the request leaves: a crash from here
            # on is recoverable. A reused identifier or a failure raises, and
            # nothing is sent.
            self._journal.record_sent(
                tag=request.tag,
                message_type=request.request_type,
                resource=request.resource,
                custom_identifier=request.custom_identifier,
                parameters={} if parameters is None else parameters,
                owner=self.owner,
                allow_identifier_reuse=allow_identifier_reuse,
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
                delivered=True,
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
                delivered=True,
            )

    def unknown(self, request: PendingRequest, error: TransactionOutcomeUnknownError) -> None:
        if request.is_transaction:
            received = getattr(error, "received", None)
            self._write(
                self._journal.mark_unknown,
                request.tag,
                str(error.__cause__ or error),
                received if isinstance(received, dict) else None,
            )

    def late(self, tag: str, transaction: m.Transaction) -> None:
        entry = self._journal.get(tag)
        if entry is not None:
            mismatch = _mismatch(entry, transaction)
            if mismatch is not None:
                # Not this request's outcome (6.3): the row stays for recover().
                logger.error("late answer for %s not journaled: %s", tag, mismatch)
                return
            self._write(
                self._journal.record_outcome,
                tag,
                transaction,
                status=transaction.status or "UNKNOWN",
            )

    def close(self) -> None:
        if self.owner is not None:
            self._write(self._journal.release_owner, self.owner)
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


def _same(wanted: Any, got: Any) -> bool:
    if isinstance(got, Decimal) or isinstance(wanted, Decimal):
        try:
            return Decimal(str(wanted)) == Decimal(str(got))
        except ArithmeticError:
            return False
    return str(wanted) == str(got)


def _amount_may_change(
    pending: Union[PendingOutcome, JournalEntry], asked: Dict[str, Any], found: m.Transaction
) -> bool:
    """A tip or total step, a tip, or a currency conversion (DCC) may make
    the transaction's amount differ from the request's (P3 6.3)."""
    process = pending.parameters.get("processParameters")
    if isinstance(process, dict) and process.get("steps"):
        return True
    if found.included_tip_amount not in (None, Decimal(0)) and not _same(
        asked.get("includedTipAmount", 0), found.included_tip_amount
    ):
        return True
    return any("dcc" in key.lower() for key in found.extra_fields)


def _mismatch(pending: Union[PendingOutcome, JournalEntry], found: m.Transaction) -> Optional[str]:
    """Why ``found`` is not the transaction ``pending`` asked for, or None.

    Checked wherever both sides say: the custom identifier, the type, the
    currency (by :func:`~payprotocol._settle.contradiction`, as settle()
    judges a final response), and the amount where nothing could change it
    (an execute without a tip, total or DCC step; a partial refund or
    capture); for an amend, the referenced transaction."""
    asked = pending.parameters.get("transactionParameters")
    if not isinstance(asked, dict):
        asked = {}
    # The identifier, currency and type: the rule settle() applies (6.3).
    contradicted = contradiction(
        found,
        custom_identifier=pending.custom_identifier,
        currency=asked.get("currency"),
        transaction_type=asked.get("type"),
    )
    if contradicted is not None:
        name, wanted, got = contradicted
        return f"transaction {found.transaction_identifier} has {name} {got}, not {wanted}"
    checks: List[Tuple[str, Any, Any]] = []
    if pending.message_type == "EXECUTE_TRANSACTION_REQUEST":
        if not _amount_may_change(pending, asked, found):
            checks.append(("amount", asked.get("amount"), found.amount))
    else:
        reference = asked.get("referencedTransactionIdentifier")
        checks.append(("reference", reference, found.referenced_transaction_identifier))
        if str(asked.get("type")) in ("REFUND", "CAPTURE"):
            checks.append(("amount", asked.get("amount"), found.amount))
    for name, wanted, got in checks:
        if wanted is not None and got is not None and not _same(wanted, got):
            return f"transaction {found.transaction_identifier} has {name} {got}, not {wanted}"
    return None


_RESULT_OF_WRITE = {"settled": "found", "pending": "still_pending", "conflict": "conflict"}


def recover(
    journal: Journal,
    look_up: Callable[[str], m.Transaction],
    in_flight: Callable[[str], bool],
    owner: Optional[str] = None,
) -> List[RecoveredOutcome]:
    """Look up every pending (or conflicting) journal entry by its custom
    identifier, each on its own, and record what the server says in one
    transaction. Returns one result per entry, in journal order.

    ``look_up`` is ``get_transaction(custom_identifier=...)``; ``owner`` is
    the calling client's owner id and ``in_flight`` says whether it still
    waits for a tag. An entry whose owner is another live client (in this
    process or another process on this machine, or any client of another
    machine) is left alone: that client's own response settles it. See
    :meth:`PayClient.recover` for the rules."""
    results: List[Optional[RecoveredOutcome]] = []
    lookups: List[Tuple[int, PendingOutcome, Optional[m.Transaction], str]] = []
    alive: Dict[Optional[str], bool] = {}
    for pending in journal.pending():
        if pending.owner == owner and owner is not None:
            busy = in_flight(pending.tag)
        else:
            if pending.owner not in alive:
                alive[pending.owner] = journal.owner_alive(pending.owner)
            busy = alive[pending.owner]
        if busy:
            results.append(
                RecoveredOutcome(pending, None, False, "in_flight", detail="its client is alive")
            )
            continue
        if pending.custom_identifier is None:
            logger.error("journal entry %s has no custom identifier to look up", pending.tag)
            results.append(
                RecoveredOutcome(
                    pending, None, False, "error", detail="no custom identifier to look up"
                )
            )
            continue
        try:
            found: Optional[m.Transaction] = look_up(pending.custom_identifier)
        except ServerError as exc:
            if exc.error_type != m.ErrorType.TRANSACTION_NOT_FOUND:
                results.append(_failed(pending, exc))
                continue
            found = None
        except PayProtocolError as exc:  # a timeout, a lost connection, an odd answer
            results.append(_failed(pending, exc))
            continue
        mismatch = None if found is None else _mismatch(pending, found)
        if mismatch is not None:
            # A reused custom identifier: that record is not this request's.
            logger.error("not recovering %s: the server's %s", pending.tag, mismatch)
            results.append(RecoveredOutcome(pending, None, False, "mismatch", detail=mismatch))
            continue
        status = "NOT_FOUND" if found is None else str(found.status or "UNKNOWN")
        lookups.append((len(results), pending, found, status))
        results.append(None)
    written = journal.record_lookups([(p.tag, found, status) for _, p, found, status in lookups])
    for (index, pending, found, status), what in zip(lookups, written):
        result = _RESULT_OF_WRITE.get(what, "found")  # "unchanged": settled alike meanwhile
        if result == "found" and found is None:
            result = "not_found"
        results[index] = RecoveredOutcome(
            pending, found, result in ("found", "not_found"), result, detail=status
        )
        logger.info(
            "recovered %s (%s): %s, %s", pending.tag, pending.custom_identifier, status, result
        )
    return [result for result in results if result is not None]


def _failed(pending: PendingOutcome, error: PayProtocolError) -> RecoveredOutcome:
    logger.error("recovering %s (%s) failed: %s", pending.tag, pending.custom_identifier, error)
    return RecoveredOutcome(pending, None, False, "error", error=error, detail=str(error))
