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

* one row per request, keyed by the P3 ``tag``; ``custom_identifier`` is
  indexed because that is what a lookup uses;
* the request's data object and the final transaction are stored as their
  wire JSON (:func:`payprotocol.codec.to_wire`, read back with
  :func:`~payprotocol.codec.from_wire`) written by :func:`payprotocol.codec.dumps`
  (exact ``Decimal`` amounts) after :func:`payprotocol.codec.redact` (no secret
  reaches the disk);
* one ``sqlite3`` connection per :class:`Journal`, shared by every thread under
  one lock; WAL mode, so other processes (a reconciliation tool) can read while
  the POS writes;
* ``PRAGMA application_id`` marks the file as ours and ``PRAGMA user_version``
  holds the schema version, so a later release can migrate the file and an
  unrelated or corrupt file is refused with a :class:`JournalError` instead of
  being modified.

Standard library only, plus the package's codec (its public wire helpers).
``sqlite3`` is imported here alone, so ``import payprotocol`` loads it only
when a journal is used.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import sqlite3
import threading
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import attrs

from . import models as m
from .codec import dumps, from_wire, redact, to_wire
from .errors import PayProtocolError

__all__ = [
    "SCHEMA_VERSION",
    "Journal",
    "JournalEntry",
    "JournalError",
    "PendingOutcome",
]

_log = logging.getLogger("payprotocol.journal")

#: Schema version written to ``PRAGMA user_version``; bump it with a migration.
SCHEMA_VERSION = 1

# ``PRAGMA application_id`` of a journal file: the bytes "P3JL". It lets us tell
# "an empty new file" from "somebody else's SQLite database" without guessing.
_APPLICATION_ID = int.from_bytes(b"P3JL", "big")

# Outcomes that settle a row: a final transaction status, or what the client
# itself knows for sure (never sent; looked up and never became a transaction).
# Anything else, including a status this version does not know, stays pending.
_SETTLING_STATUSES = m.FINAL_STATUSES | {"NOT_SENT", "NOT_FOUND"}

# Schema migrations: _MIGRATIONS[n] takes a file from version n - 1 to n. They
# run inside one write transaction, so a crash mid-migration leaves the old
# version intact.
_MIGRATIONS: Dict[int, Tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE transactions (
            -- insertion order: "oldest first" without trusting the wall clock
            id INTEGER PRIMARY KEY,
            tag TEXT NOT NULL UNIQUE,
            message_type TEXT NOT NULL,
            resource TEXT,
            custom_identifier TEXT,
            parameters TEXT NOT NULL,          -- redacted wire JSON of the data object
            sent_at TEXT NOT NULL,             -- ISO 8601, UTC
            reason TEXT,                       -- why the outcome is (or was) unknown
            status TEXT,                       -- last status recorded, NULL before any
            error TEXT,
            transaction_json TEXT,             -- redacted wire JSON of the Transaction
            transaction_identifier TEXT,
            outcome_at TEXT,                   -- ISO 8601, UTC, when status was recorded
            resolved INTEGER NOT NULL DEFAULT 0 CHECK (resolved IN (0, 1))
        )
        """,
        "CREATE INDEX transactions_custom_identifier ON transactions (custom_identifier)",
        "CREATE INDEX transactions_unresolved ON transactions (id) WHERE resolved = 0",
    ),
}

_COLUMNS = (
    "tag, message_type, resource, custom_identifier, parameters, sent_at, reason, "
    "status, error, transaction_json, outcome_at, resolved"
)


class JournalError(PayProtocolError):
    """The journal cannot be used: the file is not a payprotocol journal, is
    corrupt, was written by a newer version, is locked for too long, or the
    journal is closed. Also raised for a tag the journal does not hold."""


# --- records -------------------------------------------------------------------


@attrs.frozen
class PendingOutcome:
    """A journaled transaction request whose final outcome is not known.

    Either no response was recorded (the client is still waiting, gave up, or
    the process died), or the response said ``INCONCLUSIVE``/``PENDING``. Look
    it up (``get_transaction(custom_identifier=...)``) before charging again,
    then call :meth:`Journal.record_outcome`.
    """

    tag: str
    message_type: str
    resource: Optional[str]
    custom_identifier: Optional[str]
    #: The request's data object as sent (wire keys, Decimal amounts, secrets masked).
    parameters: Dict[str, Any]
    #: When the request was journaled, just before sending (aware, UTC).
    sent_at: datetime.datetime
    #: Why the outcome is unknown (from :meth:`Journal.mark_unknown`), if known.
    reason: Optional[str]
    #: The last non-final status recorded (e.g. ``"INCONCLUSIVE"``), or None.
    status: Optional[str] = None


@attrs.frozen
class JournalEntry:
    """One full journal row: the request and, once known, its outcome."""

    tag: str
    message_type: str
    resource: Optional[str]
    custom_identifier: Optional[str]
    parameters: Dict[str, Any]
    sent_at: datetime.datetime
    reason: Optional[str]
    #: Last status recorded (transaction status, or e.g. ``"ERROR"``); None before any.
    status: Optional[str]
    error: Optional[str]
    #: The transaction from the response (amounts exact), if one was recorded.
    transaction: Optional[m.Transaction]
    #: When the status was recorded (aware, UTC), or None.
    outcome_at: Optional[datetime.datetime]
    #: True while the outcome must still be looked up (see :class:`PendingOutcome`).
    pending: bool


# --- helpers -------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _format_time(value: datetime.datetime) -> str:
    # Fixed-width UTC text sorts like time, so prune() can compare it in SQL.
    if value.tzinfo is None:
        raise ValueError("journal timestamps must be timezone-aware")
    return value.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def _to_json(value: Any) -> str:
    # codec.dumps writes Decimal as its exact digits; redact masks secrets first.
    return dumps(redact(value))


def _from_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _status_text(status: Union[m.TransactionStatus, str]) -> str:
    text = str(status)  # a TransactionStatus prints as its wire value
    if not text:
        raise ValueError("status must be a non-empty string")
    return text


# --- the journal ---------------------------------------------------------------


class Journal:
    """A durable, thread-safe journal of transaction requests (SQLite file).

    ``Journal(path)`` opens or creates the file. Use one instance per process
    and share it between threads; several processes may open the same file.
    Every method raises :class:`JournalError` when SQLite fails.

    Durability: WAL mode with ``synchronous=FULL``. With WAL, ``NORMAL`` would
    survive a crash of the process but may lose the last commits on power loss
    or an OS crash, which is exactly when a POS needs to know a payment was in
    flight. ``FULL`` syncs the WAL on every commit; one fsync per payment is
    negligible next to a card transaction that takes seconds.
    """

    def __init__(self, path: Union[str, os.PathLike[str]], *, timeout: float = 10.0) -> None:
        """Open or create the journal at ``path``.

        ``timeout`` is how long a write waits for another process holding the
        file's write lock before failing with :class:`JournalError`.
        """
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: autocommit, so each write (one statement) is
            # committed and synced when execute() returns, on every Python
            # version; only opening uses an explicit transaction.
            connection = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {self._path!r}: {exc}") from exc
        self._connection: Optional[sqlite3.Connection] = connection
        try:
            self._open(connection)
        except BaseException:
            self._connection = None
            connection.close()
            raise

    # -- opening and migration --

    def _open(self, connection: sqlite3.Connection) -> None:
        try:
            # Read-only checks first: never switch a foreign database to WAL.
            self._check_identity(connection, write=False)
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal" and self._path != ":memory:":
                # e.g. a file system without shared memory; FULL is still
                # durable with a rollback journal, only readers block writers.
                _log.warning("journal %r runs in %s mode, not WAL", self._path, mode)
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("BEGIN IMMEDIATE")  # one opener migrates at a time
            try:
                self._check_identity(connection, write=True)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise JournalError(
                f"{self._path!r} is not a usable payprotocol journal "
                f"(corrupt, not an SQLite file, or locked): {exc}"
            ) from exc

    def _check_identity(self, connection: sqlite3.Connection, *, write: bool) -> None:
        """Refuse foreign or newer files; with ``write``, create or migrate."""
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        has_tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if application_id == 0 and version == 0 and not has_tables:
            if write:
                connection.execute(f"PRAGMA application_id={_APPLICATION_ID}")
                self._migrate(connection, 0)
            return
        if application_id != _APPLICATION_ID:
            raise JournalError(
                f"{self._path!r} is an SQLite database but not a payprotocol journal "
                f"(application_id {application_id:#x}); refusing to touch it"
            )
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self._path!r} has schema version {version}, written by a newer "
                f"payprotocol; this version understands up to {SCHEMA_VERSION}"
            )
        if write and version < SCHEMA_VERSION:
            self._migrate(connection, version)

    @staticmethod
    def _migrate(connection: sqlite3.Connection, version: int) -> None:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                connection.execute(statement)
        # PRAGMA takes no parameters; the value is our own int.
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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

    # -- the API --

    @property
    def path(self) -> str:
        """The journal file's path as given."""
        return self._path

    def record_sent(
        self,
        *,
        tag: str,
        message_type: str,
        resource: Optional[str],
        custom_identifier: Optional[str],
        parameters: Union[Mapping[str, Any], Any],
    ) -> None:
        """Journal a transaction request; call it **before** the request is sent.

        ``message_type`` is normally ``EXECUTE_TRANSACTION_REQUEST`` or
        ``AMEND_TRANSACTION_REQUEST``; ``parameters`` is the request's data
        object as its wire dict (an attrs model is unstructured first). Secrets
        are masked before anything is written. When this returns, the row is
        committed and synced, so it survives a crash or power loss.

        Raises :class:`JournalError` when the tag is already journaled (tags
        are unique per request) or the write fails: then do not send.
        """
        if attrs.has(type(parameters)):
            parameters = to_wire(parameters)
        if not isinstance(parameters, Mapping):
            raise TypeError(f"parameters must be a wire dict, got {type(parameters).__name__}")
        payload = _to_json(dict(parameters))
        with self._guard() as db:
            try:
                db.execute(
                    "INSERT INTO transactions (tag, message_type, resource, custom_identifier,"
                    " parameters, sent_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (tag, message_type, resource, custom_identifier, payload, _format_time(_now())),
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
    ) -> None:
        """Record the outcome of the request journaled under ``tag``.

        ``status`` is the transaction's status, or for example ``"ERROR"`` for
        a ``ServerError`` response (request refused), ``NOT_SENT`` or
        ``NOT_FOUND``. Any other status (``INCONCLUSIVE``, ``PENDING``, one this
        version does not know) is recorded but keeps the row pending, because
        the outcome must still be looked up. Recording again (a lookup
        after a restart, a late response) replaces the earlier outcome.

        Raises :class:`JournalError` if ``tag`` was never journaled.
        """
        status_text = _status_text(status)
        transaction_json: Optional[str] = None
        transaction_identifier: Optional[str] = None
        if transaction is not None:
            transaction_json = _to_json(to_wire(transaction))
            transaction_identifier = transaction.transaction_identifier
        resolved = status_text in _SETTLING_STATUSES
        with self._guard() as db:
            # A non-final answer becomes the reason; a final one keeps the
            # earlier reason as history ("timed out, later resolved").
            cursor = db.execute(
                "UPDATE transactions SET status = ?, error = ?, transaction_json = ?,"
                " transaction_identifier = ?, outcome_at = ?, resolved = ?,"
                " reason = CASE WHEN ? THEN reason ELSE ? END WHERE tag = ?",
                (
                    status_text,
                    error,
                    transaction_json,
                    transaction_identifier,
                    _format_time(_now()),
                    int(resolved),
                    int(resolved),
                    f"response status {status_text}: outcome not final, look it up",
                    tag,
                ),
            )
            if cursor.rowcount == 0:
                raise JournalError(f"tag {tag!r} is not in the journal")

    def mark_unknown(self, tag: str, reason: str) -> bool:
        """Note that the client stopped waiting for ``tag`` (connection lost,
        timeout): the row stays pending and ``reason`` is kept.

        Returns False, changing nothing, when the outcome was already recorded
        (a response that won the race against the timeout). Raises
        :class:`JournalError` if ``tag`` was never journaled.
        """
        with self._guard() as db:
            cursor = db.execute(
                "UPDATE transactions SET reason = ? WHERE tag = ? AND resolved = 0",
                (reason, tag),
            )
            if cursor.rowcount:
                return True
            if db.execute("SELECT 1 FROM transactions WHERE tag = ?", (tag,)).fetchone() is None:
                raise JournalError(f"tag {tag!r} is not in the journal")
            return False

    def pending(self) -> List[PendingOutcome]:
        """Every transaction whose outcome is unknown, oldest first."""
        with self._guard() as db:
            rows = db.execute(
                "SELECT tag, message_type, resource, custom_identifier, parameters, sent_at,"
                " reason, status FROM transactions WHERE resolved = 0 ORDER BY id"
            ).fetchall()
        return [
            PendingOutcome(
                tag=row[0],
                message_type=row[1],
                resource=row[2],
                custom_identifier=row[3],
                parameters=self._decode(row[4], row[0]),
                sent_at=_parse_time(row[5]),
                reason=row[6],
                status=row[7],
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

    def prune(self, before: datetime.datetime) -> int:
        """Delete resolved rows sent before ``before`` (aware datetime) and
        return how many. Pending rows are never deleted."""
        cutoff = _format_time(before)
        with self._guard() as db:
            cursor = db.execute(
                "DELETE FROM transactions WHERE resolved = 1 AND sent_at < ?", (cutoff,)
            )
            return cursor.rowcount

    def check(self) -> None:
        """Run SQLite's ``quick_check`` over the whole file; raise
        :class:`JournalError` if it finds corruption."""
        with self._guard() as db:
            results = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if results != ["ok"]:
            raise JournalError(f"journal {self._path!r} is corrupt: {'; '.join(results[:5])}")

    def close(self) -> None:
        """Close the file. Idempotent; later calls raise :class:`JournalError`."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
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
            value = _from_json(text)
        except ValueError as exc:
            raise JournalError(f"journal row {tag!r} holds invalid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise JournalError(f"journal row {tag!r} holds {type(value).__name__}, not an object")
        return value

    def _entry(self, row: Tuple[Any, ...]) -> JournalEntry:
        (tag, message_type, resource, custom_identifier, parameters, sent_at, reason,
         status, error, transaction_json, outcome_at, resolved) = row  # fmt: skip
        transaction: Optional[m.Transaction] = None
        if transaction_json is not None:
            try:
                # Tolerant: a transaction read with misfits kept (6.2) reads back as such.
                wire = self._decode(transaction_json, tag)
                transaction = from_wire(wire, m.Transaction, tolerant=True)
            except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
                raise JournalError(f"journal row {tag!r} holds a bad transaction: {exc}") from exc
        return JournalEntry(
            tag=tag,
            message_type=message_type,
            resource=resource,
            custom_identifier=custom_identifier,
            parameters=self._decode(parameters, tag),
            sent_at=_parse_time(sent_at),
            reason=reason,
            status=status,
            error=error,
            transaction=transaction,
            outcome_at=None if outcome_at is None else _parse_time(outcome_at),
            pending=not resolved,
        )
