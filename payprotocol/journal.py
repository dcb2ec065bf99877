"""A durable journal of transaction requests and their outcomes (SQLite).

Why it exists: a card transaction can be approved on the reader while its
``EXECUTE_TRANSACTION_RESPONSE`` never reaches the POS (connection lost,
timeout, the POS process crashed or lost power). Raising
:class:`~payprotocol.errors.TransactionOutcomeUnknownError` tells the caller in
*this* process; the journal makes sure the fact survives the process. Every
execute or amend request is written to disk **before** it is sent, and stays
"pending" until its outcome is recorded. After a restart, :meth:`Journal.pending`
lists exactly the transactions a POS must look up (``GET_TRANSACTION_REQUEST``
by custom identifier) instead of charging again.

Strategy:

* one row per request, keyed by the P3 ``tag``, with its custom identifier
  (indexed: a lookup and the reuse check use it) and its **owner**, the
  client that wrote it, alive while it holds an OS lock (``_owners.py``);
* wire JSON (exact ``Decimal``), redacted before it reaches the disk; the
  schema in ``_journal_rows.py``, the outcome rules (settle, keep pending,
  conflict) in ``_journal_write.py``, opening and migrating the file in
  ``_journal_open.py``;
* one ``sqlite3`` connection per :class:`Journal`, shared by every thread under
  one lock; WAL mode, so other processes can read while a POS writes;
* ``PRAGMA application_id`` marks the file as ours and ``PRAGMA user_version``
  holds the schema version: older files are migrated, foreign or newer ones
  refused with a :class:`JournalError`, never modified.

``sqlite3`` is imported by the journal modules alone, so ``import payprotocol``
loads it only when a journal is used.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sqlite3
import threading
import weakref
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import attrs

from . import models as m
from ._journal_open import check_file, connect, open_session
from ._journal_rows import (
    SCHEMA_VERSION,
    JournalEntry,
    JournalError,
    PendingOutcome,
    format_time,
    from_json,
    now,
    parse_time,
    reuse_refusal,
    status_text,
    to_json,
)
from ._journal_write import add_owner, apply_outcome, finish, host, stored_json
from ._owners import OwnerLock, is_alive, lock_directory
from .codec import from_wire, to_wire

__all__ = [
    "SCHEMA_VERSION",
    "Journal",
    "JournalEntry",
    "JournalError",
    "PendingOutcome",
]

_log = logging.getLogger("payprotocol.journal")

_COLUMNS = (
    "tag, message_type, resource, custom_identifier, parameters, sent_at, reason, "
    "status, error, transaction_json, outcome_at, resolved, conflict, conflict_status, "
    "conflict_transaction_json, received, owner"
)


class Journal:
    """A durable, thread-safe journal of transaction requests (SQLite file).

    ``Journal(path)`` opens or creates the file. Use one instance per process
    and share it between threads; several processes on **one machine** may
    open the same file (never share it between machines: see the README).
    Every method raises :class:`JournalError` when SQLite fails.

    ``create=False`` refuses a file that is missing or empty instead of
    creating it (creating one always logs a WARNING with its path).
    ``accept_missing_wal=True`` opens a file whose ``-wal`` was lost after an
    unclean stop (otherwise a :class:`JournalError`): the rows of that WAL are
    gone for good.

    Durability: WAL mode. The request row is committed with
    ``synchronous=FULL`` (the WAL is synced before :meth:`record_sent`
    returns, so the request leaves only once its row survives power loss);
    outcomes are committed with ``NORMAL`` (no sync of their own: they reach
    the disk with the next full sync or checkpoint). A lost outcome only
    leaves its row pending, and :meth:`PayClient.recover` settles it.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        timeout: float = 10.0,
        create: bool = True,
        accept_missing_wal: bool = False,
    ) -> None:
        """Open or create the journal at ``path``.

        ``timeout`` is how long a write waits for another process holding the
        file's write lock before failing with :class:`JournalError`.
        """
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        self._owners: Dict[str, OwnerLock] = {}
        self._locks = lock_directory(self._path)
        fresh, wal_missing = check_file(self._path, self._locks, create)
        connection = connect(self._path, timeout)
        self._connection: Optional[sqlite3.Connection] = connection
        try:
            self._session = open_session(
                connection,
                self._path,
                self._locks,
                self._owners,
                wal_missing and not accept_missing_wal,
            )
        except BaseException:
            self._connection = None
            for owner_lock in self._owners.values():
                owner_lock.release()
            connection.close()
            raise
        self._finalizer = weakref.finalize(
            self, finish, connection, self._lock, self._owners, self._locks
        )
        if fresh:
            _log.warning("created a new, empty journal file %s", os.path.abspath(self._path))

    # -- plumbing --

    def _conn(self) -> sqlite3.Connection:
        # Called with self._lock held.
        if self._connection is None:
            raise JournalError(f"journal {self._path!r} is closed")
        return self._connection

    @contextlib.contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, with SQLite errors as JournalError.

        Fetching rows can fail too (a damaged page is found while reading), so
        the whole block is guarded, not just ``execute``.
        """
        with self._lock:
            connection = self._conn()
            try:
                yield connection
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self._path!r}: {exc}") from exc

    @contextlib.contextmanager
    def _write(self, *, synced: bool) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: other writers wait);
        ``synced=False`` commits it with ``synchronous=NORMAL``."""
        with self._guard() as db:
            if not synced:
                db.execute("PRAGMA synchronous=NORMAL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            finally:
                if not synced:
                    db.execute("PRAGMA synchronous=FULL")

    # -- owners --

    @property
    def path(self) -> str:
        """The journal file's path as given."""
        return self._path

    @property
    def owner(self) -> str:
        """This journal session's own owner id (rows written without one)."""
        return self._session

    def register_owner(self) -> str:
        """A new owner id (a client's), alive until :meth:`release_owner` or
        until this process ends; see :meth:`owner_alive`."""
        try:
            with self._guard() as db:
                return add_owner(db, self._locks, self._owners, "client")
        except OSError as exc:
            raise JournalError(f"journal {self._path!r}: cannot lock an owner: {exc}") from exc

    def release_owner(self, owner: str) -> None:
        """The owner's client closed: its rows may now be recovered by anyone."""
        with self._guard() as db:
            owner_lock = self._owners.pop(owner, None)
            db.execute("DELETE FROM owners WHERE owner = ?", (owner,))
        if owner_lock is not None:
            owner_lock.release()

    def owner_alive(self, owner: Optional[str]) -> bool:
        """Whether the client that wrote a row may still be waiting for it.

        An owner of this machine is alive while it holds its OS lock (any
        process; the OS drops the lock when a process dies, however it dies).
        An owner registered by **another machine** cannot be checked, so it
        counts as alive: its rows are never settled from here. A dead owner's
        registration is removed."""
        if owner is None:
            return False
        with self._guard() as db:
            row = db.execute("SELECT host FROM owners WHERE owner = ?", (owner,)).fetchone()
            if row is not None and row[0] != host():
                return True
            if is_alive(self._locks, owner):
                return True
            if row is not None:
                db.execute("DELETE FROM owners WHERE owner = ?", (owner,))
            return False

    def owner_host(self, owner: Optional[str]) -> Optional[str]:
        """The machine an owner registered from, while it is registered."""
        with self._guard() as db:
            row = db.execute("SELECT host FROM owners WHERE owner = ?", (owner,)).fetchone()
        return None if row is None else str(row[0])

    # -- the API --

    def record_sent(
        self,
        *,
        tag: str,
        message_type: str,
        resource: Optional[str],
        custom_identifier: Optional[str],
        parameters: Union[Mapping[str, Any], Any],
        owner: Optional[str] = None,
        allow_identifier_reuse: bool = False,
    ) -> None:
        """Journal a transaction request; call it **before** the request is sent.

        ``message_type`` is normally ``EXECUTE_TRANSACTION_REQUEST`` or
        ``AMEND_TRANSACTION_REQUEST``; ``parameters`` is the request's data
        object as its wire dict (an attrs model is unstructured first);
        ``owner`` the writing client's id (default: this journal's own).
        Secrets are masked before anything is written. When this returns, the
        row is committed and synced, so it survives a crash or power loss.

        In the same transaction (so two processes cannot both pass), the
        custom identifier is checked: a row with it that is unresolved or in
        conflict raises :class:`~payprotocol.errors.CustomIdentifierInUseError`;
        so does a settled one (a transaction exists under it) unless
        ``allow_identifier_reuse``. Raises :class:`JournalError` when the tag is
        already journaled or the write fails. Either way: do not send.
        """
        if attrs.has(type(parameters)):
            parameters = to_wire(parameters)
        if not isinstance(parameters, Mapping):
            raise TypeError(f"parameters must be a wire dict, got {type(parameters).__name__}")
        payload = to_json(dict(parameters))
        with self._write(synced=True) as db:
            if custom_identifier is not None:
                refusal = reuse_refusal(
                    db.execute(
                        "SELECT resolved, conflict, status, transaction_json IS NOT NULL"
                        " FROM transactions WHERE custom_identifier = ?",
                        (custom_identifier,),
                    ).fetchall(),
                    custom_identifier,
                    allow_identifier_reuse,
                )
                if refusal is not None:
                    raise refusal
            try:
                db.execute(
                    "INSERT INTO transactions (tag, message_type, resource, custom_identifier,"
                    " parameters, sent_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        tag,
                        message_type,
                        resource,
                        custom_identifier,
                        payload,
                        format_time(now()),
                        owner or self._session,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise JournalError(f"tag {tag!r} is already in the journal: {exc}") from exc

    def record_outcome(
        self,
        tag: str,
        transaction: Optional[m.Transaction],
        *,
        status: Union[m.TransactionStatus, str],
        error: Optional[str] = None,
        delivered: bool = False,
    ) -> str:
        """Record a response's outcome for the request journaled under ``tag``.

        ``status`` is the transaction's status, or for example ``"ERROR"`` for
        a ``ServerError`` response (request refused), ``NOT_SENT`` or
        ``NOT_FOUND``. Any other status (``INCONCLUSIVE``, ``PENDING``, one this
        version does not know) keeps the row pending. A row that is already
        settled is never re-opened by a non-final status and never
        overwritten: a final outcome that disagrees with it (another status,
        or another transaction) marks the row as a **conflict**, keeps both,
        logs at ERROR and shows it in :meth:`pending` until a lookup
        (:meth:`record_lookups`) settles it.

        ``delivered`` marks the outcome the caller was given (the response
        that completed the call): in a conflict it stays the row's ``status``
        even when a late response was written first, the other one becoming
        ``conflict_status``.

        Returns what happened: ``"settled"``, ``"pending"``, ``"conflict"`` or
        ``"unchanged"``. Raises :class:`JournalError` if ``tag`` was never
        journaled.
        """
        with self._write(synced=False) as db:
            return apply_outcome(
                db, tag, transaction, status_text(status), error, lookup=False, delivered=delivered
            )

    def record_lookups(
        self, outcomes: Iterable[Tuple[str, Optional[m.Transaction], str]]
    ) -> List[str]:
        """Record what lookups found, ``(tag, transaction, status)`` each, in
        **one** transaction. A lookup is the server's own record, so a final
        one also settles a conflict; otherwise the rules of
        :meth:`record_outcome` apply. Returns what happened to each."""
        with self._write(synced=False) as db:
            return [
                apply_outcome(db, tag, transaction, status_text(status), None, lookup=True)
                for tag, transaction, status in outcomes
            ]

    def mark_unknown(
        self, tag: str, reason: str, received: Optional[Mapping[str, Any]] = None
    ) -> bool:
        """Note that the client stopped waiting for ``tag`` (connection lost,
        timeout, an untrusted answer): the row stays pending and ``reason`` is
        kept, with ``received`` (the final response as received, if any:
        stored redacted, as JSON text).

        Returns False, changing nothing, when the outcome was already recorded
        (a response that won the race against the timeout). Raises
        :class:`JournalError` if ``tag`` was never journaled.
        """
        received_json = None if received is None else stored_json(tag, dict, received)
        with self._guard() as db:
            cursor = db.execute(
                "UPDATE transactions SET reason = ?, received = coalesce(?, received)"
                " WHERE tag = ? AND resolved = 0",
                (reason, received_json, tag),
            )
            if cursor.rowcount:
                return True
            if db.execute("SELECT 1 FROM transactions WHERE tag = ?", (tag,)).fetchone() is None:
                raise JournalError(f"tag {tag!r} is not in the journal")
            return False

    def pending(self) -> List[PendingOutcome]:
        """Every transaction whose outcome is unknown or in conflict, oldest first."""
        with self._guard() as db:
            rows = db.execute(
                "SELECT tag, message_type, resource, custom_identifier, parameters, sent_at,"
                " reason, status, conflict, conflict_status, owner, received"
                " FROM transactions WHERE resolved = 0 OR conflict = 1 ORDER BY id"
            ).fetchall()
        return [
            PendingOutcome(
                tag=row[0],
                message_type=row[1],
                resource=row[2],
                custom_identifier=row[3],
                parameters=self._decode(row[4], row[0]),
                sent_at=parse_time(row[5]),
                reason=row[6],
                status=row[7],
                conflict=bool(row[8]),
                conflict_status=row[9],
                owner=row[10],
                received=None if row[11] is None else self._decode(row[11], row[0]),
            )
            for row in rows
        ]

    def get(self, tag: str) -> Optional[JournalEntry]:
        """The full row journaled under ``tag``, or None."""
        with self._guard() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM transactions WHERE tag = ?", (tag,)
            ).fetchone()
        return None if row is None else self._entry(row)

    def find(self, custom_identifier: str) -> List[JournalEntry]:
        """Every row with this custom identifier, oldest first (there may be
        several: a charge that was looked up and retried, a refund reusing it)."""
        with self._guard() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM transactions WHERE custom_identifier = ? ORDER BY id",
                (custom_identifier,),
            ).fetchall()
        return [self._entry(row) for row in rows]

    def entries(self) -> List[JournalEntry]:
        """Every row, pending, conflicting and settled, oldest first."""
        with self._guard() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM transactions ORDER BY id").fetchall()
        return [self._entry(row) for row in rows]

    def prune(self, before: datetime.datetime) -> int:
        """Delete settled rows sent before ``before`` (aware datetime) and
        return how many. Pending and conflicting rows are never deleted."""
        cutoff = format_time(before)
        with self._guard() as db:
            cursor = db.execute(
                "DELETE FROM transactions WHERE resolved = 1 AND conflict = 0 AND sent_at < ?",
                (cutoff,),
            )
            return cursor.rowcount

    def check(self) -> None:
        """Run SQLite's ``quick_check`` over the whole file; raise
        :class:`JournalError` if it finds corruption."""
        with self._guard() as db:
            results = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if results != ["ok"]:
            raise JournalError(f"journal {self._path!r} is corrupt: {'; '.join(results[:5])}")

    def backup(self, target: Union[str, os.PathLike[str]]) -> None:
        """Copy the journal, consistently, to a new file ``target`` with
        SQLite's online backup API (a plain file copy can miss the ``-wal``)."""
        with self._guard() as db:
            destination = sqlite3.connect(os.fspath(target))
            try:
                db.backup(destination)
                destination.execute("DELETE FROM owners")  # nobody owns a backup
                destination.commit()
            finally:
                destination.close()

    def close(self) -> None:
        """Close the file. Idempotent; later calls raise :class:`JournalError`."""
        with self._lock:
            if self._connection is None:
                return
            self._connection = None
        try:
            self._finalizer()
        except sqlite3.Error as exc:  # pragma: no cover - close rarely fails
            raise JournalError(f"closing journal {self._path!r}: {exc}") from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._connection is None else "open"
        return f"<Journal {self._path!r} {state}>"

    # -- decoding rows --

    def _decode(self, text: str, tag: str) -> Dict[str, Any]:
        try:
            value = from_json(text)
        except ValueError as exc:
            raise JournalError(f"journal row {tag!r} holds invalid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise JournalError(f"journal row {tag!r} holds {type(value).__name__}, not an object")
        return value

    def _transaction(self, text: Optional[str], tag: str) -> Optional[m.Transaction]:
        if text is None:
            return None
        try:
            # Tolerant: a transaction read with misfits kept (6.2) reads back as such.
            return from_wire(self._decode(text, tag), m.Transaction, tolerant=True)
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
            raise JournalError(f"journal row {tag!r} holds a bad transaction: {exc}") from exc

    def _entry(self, row: Tuple[Any, ...]) -> JournalEntry:
        (tag, message_type, resource, custom_identifier, parameters, sent_at, reason,
         status, error, transaction_json, outcome_at, resolved, conflict, conflict_status,
         conflict_json, received, owner) = row  # fmt: skip
        return JournalEntry(
            tag=tag,
            message_type=message_type,
            resource=resource,
            custom_identifier=custom_identifier,
            parameters=self._decode(parameters, tag),
            sent_at=parse_time(sent_at),
            reason=reason,
            status=status,
            error=error,
            transaction=self._transaction(transaction_json, tag),
            outcome_at=None if outcome_at is None else parse_time(outcome_at),
            pending=bool(conflict) or not resolved,
            conflict=bool(conflict),
            conflict_status=conflict_status,
            conflict_transaction=self._transaction(conflict_json, tag),
            received=None if received is None else self._decode(received, tag),
            owner=owner,
        )
