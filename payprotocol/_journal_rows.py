"""The journal's schema, its row records and the small helpers around them.

Strategy: :mod:`payprotocol.journal` is the SQLite logic (opening, migrating,
the write rules); this module holds what that logic reads and writes: the
schema migrations, the two public row records (re-exported by
:mod:`payprotocol.journal`), and the JSON and time helpers. No ``sqlite3``
import here.
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import attrs

from . import models as m
from .codec import dumps, redact
from .errors import CustomIdentifierInUseError, PayProtocolError

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SETTLING_STATUSES",
    "JournalEntry",
    "JournalError",
    "PendingOutcome",
    "format_time",
    "migrate",
    "reuse_refusal",
    "from_json",
    "now",
    "parse_time",
    "status_text",
    "to_json",
]

#: Schema version written to ``PRAGMA user_version``; bump it with a migration.
SCHEMA_VERSION = 3

# ``PRAGMA application_id`` of a journal file: the bytes "P3JL". It lets us tell
# "an empty new file" from "somebody else's SQLite database" without guessing.
APPLICATION_ID = int.from_bytes(b"P3JL", "big")

# Outcomes that settle a row: a final transaction status, or what the client
# itself knows for sure (never sent; looked up and never became a transaction).
# Anything else, including a status this version does not know, stays pending.
SETTLING_STATUSES = m.FINAL_STATUSES | {"NOT_SENT", "NOT_FOUND"}

# Schema migrations: MIGRATIONS[n] takes a file from version n - 1 to n. They
# run inside one write transaction, so a crash mid-migration leaves the old
# version intact.
MIGRATIONS: Dict[int, Tuple[str, ...]] = {
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
    # 2: a second final outcome that disagrees is kept beside the first (a
    # conflict, open until a lookup settles it); the untrusted final response
    # of an unknown outcome is kept as received.
    2: (
        "ALTER TABLE transactions ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0"
        " CHECK (conflict IN (0, 1))",
        "ALTER TABLE transactions ADD COLUMN conflict_status TEXT",
        "ALTER TABLE transactions ADD COLUMN conflict_transaction_json TEXT",
        "ALTER TABLE transactions ADD COLUMN conflict_at TEXT",
        "ALTER TABLE transactions ADD COLUMN received TEXT",  # redacted JSON, untrusted
        "DROP INDEX transactions_unresolved",
        "CREATE INDEX transactions_open ON transactions (id) WHERE resolved = 0 OR conflict = 1",
    ),
    # 3: every row names its owner, and the owners alive hold a lock (_owners.py).
    3: (
        "ALTER TABLE transactions ADD COLUMN owner TEXT",
        """
        CREATE TABLE owners (
            owner TEXT PRIMARY KEY,
            host TEXT NOT NULL,                -- the machine whose OS holds its lock
            pid INTEGER NOT NULL,
            kind TEXT NOT NULL,                -- "client" or "journal"
            started_at TEXT NOT NULL
        )
        """,
    ),
}


class JournalError(PayProtocolError):
    """The journal cannot be used: the file is not a payprotocol journal, is
    corrupt, was written by a newer version, is missing or empty although it
    must exist, lost its ``-wal`` file after an unclean stop, is locked for
    too long, or the journal is closed. Also raised for a tag the journal does
    not hold."""


@attrs.frozen
class PendingOutcome:
    """A journaled transaction request whose final outcome is not known, or
    whose recorded outcomes disagree (``conflict``).

    Either no response was recorded (the client is still waiting, gave up, or
    the process died), or the response said ``INCONCLUSIVE``/``PENDING``, or
    two final responses disagreed. Look it up
    (``get_transaction(custom_identifier=...)``, or :meth:`PayClient.recover`)
    before charging again.
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
    #: The last status recorded (e.g. ``"INCONCLUSIVE"``, or the first of a conflict).
    status: Optional[str] = None
    #: True when two final outcomes disagree: ``status`` and ``conflict_status``.
    conflict: bool = False
    conflict_status: Optional[str] = None
    #: The client that wrote the row (see :meth:`Journal.owner_alive`).
    owner: Optional[str] = None
    #: The untrusted final response as received (redacted wire JSON), if any.
    received: Optional[Dict[str, Any]] = None


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
    #: True while the outcome must still be looked up (unresolved, or a conflict).
    pending: bool
    #: Two final outcomes disagree; the second is ``conflict_status``/``conflict_transaction``.
    conflict: bool = False
    conflict_status: Optional[str] = None
    conflict_transaction: Optional[m.Transaction] = None
    #: The untrusted final response of an unknown outcome, as received (redacted).
    received: Optional[Dict[str, Any]] = None
    owner: Optional[str] = None


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_time(value: datetime.datetime) -> str:
    # Fixed-width UTC text sorts like time, so prune() can compare it in SQL.
    if value.tzinfo is None:
        raise ValueError("journal timestamps must be timezone-aware")
    return value.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def to_json(value: Any) -> str:
    # codec.dumps writes Decimal as its exact digits; redact masks secrets first.
    return dumps(redact(value))


def from_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def status_text(status: Union[m.TransactionStatus, str]) -> str:
    text = str(status)  # a TransactionStatus prints as its wire value
    if not text:
        raise ValueError("status must be a non-empty string")
    return text


def migrate(execute: Callable[[str], Any], version: int) -> None:
    """Run the migrations from ``version`` to :data:`SCHEMA_VERSION` (inside
    the caller's write transaction)."""
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[step]:
            execute(statement)
    # PRAGMA takes no parameters; the value is our own int.
    execute(f"PRAGMA user_version={SCHEMA_VERSION}")


# A row with one of these outcomes proves no transaction exists under its
# custom identifier, so the identifier may be used again without opting in.
_HARMLESS_STATUSES = ("NOT_SENT", "NOT_FOUND")

_REUSE_ADVICE = {
    "unresolved": "its outcome is not known yet: recover it first "
    "(PayClient.recover() or `payprotocol recover`), never charge it again",
    "conflict": "its recorded outcomes disagree: recover it first "
    "(PayClient.recover() or `payprotocol recover`)",
    "settled": "a transaction already exists under it: use a new custom identifier, "
    "or pass allow_identifier_reuse=True to reuse it deliberately",
}


def reuse_refusal(
    rows: Iterable[Sequence[Any]], custom_identifier: str, allowed: bool
) -> Optional[CustomIdentifierInUseError]:
    """The error that refuses a new request under ``custom_identifier``, given
    the journal rows already holding it (``resolved, conflict, status,
    has_transaction`` each), or None when it may be used."""
    state = None
    for resolved, conflict, status, has_transaction in rows:
        if conflict or not resolved:
            state = "conflict" if conflict else "unresolved"
            break
        harmless = status in _HARMLESS_STATUSES or (status == "ERROR" and not has_transaction)
        if not harmless and not allowed:
            state = "settled"
    if state is None:
        return None
    return CustomIdentifierInUseError(
        f"custom identifier {custom_identifier!r} is in use: {_REUSE_ADVICE[state]};"
        " nothing was sent",
        custom_identifier=custom_identifier,
        state=state,
    )
