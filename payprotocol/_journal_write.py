"""The journal's write rules and session bookkeeping (used by
:mod:`payprotocol.journal` alone).

Strategy: :func:`apply_outcome` is the one place that decides what an outcome
does to a row (settle it, keep it pending, mark a conflict, or change
nothing), inside the caller's write transaction; :func:`add_owner` registers
an owner (its OS lock taken first, see ``_owners.py``); :func:`finish` ends a
journal's session (its owners and this machine's dead sessions removed, then
the connection closed), so that a dead session in a file without its ``-wal``
can only mean an unclean stop whose WAL was lost.
"""

from __future__ import annotations

import logging
import os
import platform
import sqlite3
import threading
from typing import Any, Callable, Dict, List, Optional

from . import models as m
from ._journal_rows import SETTLING_STATUSES, JournalError, format_time, now, to_json
from ._owners import OwnerLock, is_alive
from .codec import to_wire

__all__ = ["add_owner", "apply_outcome", "dead_sessions", "finish", "host", "stored_json"]

_log = logging.getLogger("payprotocol.journal")


def host() -> str:
    return platform.node() or "unknown-host"


def dead_sessions(connection: sqlite3.Connection, locks: Optional[str]) -> List[str]:
    """The journal sessions of this machine whose process is gone."""
    rows = connection.execute("SELECT owner, host FROM owners WHERE kind = 'journal'").fetchall()
    here = host()
    return [owner for owner, where in rows if where == here and not is_alive(locks, owner)]


def add_owner(
    db: sqlite3.Connection, locks: Optional[str], owners: Dict[str, OwnerLock], kind: str
) -> str:
    """Register a new owner of ``kind`` (``"client"`` or ``"journal"``): its
    lock is put in ``owners`` and its row written; returns its id."""
    # The lock is taken before the id is written anywhere (see _owners.py).
    owner_lock = OwnerLock(locks)
    owners[owner_lock.owner] = owner_lock
    db.execute(
        "INSERT INTO owners (owner, host, pid, kind, started_at) VALUES (?, ?, ?, ?, ?)",
        (owner_lock.owner, host(), os.getpid(), kind, format_time(now())),
    )
    return owner_lock.owner


def finish(
    connection: sqlite3.Connection,
    lock: threading.Lock,
    owners: Dict[str, OwnerLock],
    locks: Optional[str],
) -> None:
    """End a journal's session: remove its owners (rows, then locks) and this
    machine's dead journal sessions, then close. Runs once: from close(), or
    when the interpreter exits (or the journal is collected) without it.
    Every clean end leaves no dead session behind, so a dead session in a
    file without its ``-wal`` means an unclean stop whose WAL was lost."""
    with lock:
        try:
            for owner in [*owners, *dead_sessions(connection, locks)]:
                connection.execute("DELETE FROM owners WHERE owner = ?", (owner,))
        except sqlite3.Error as exc:  # pragma: no cover - best effort at the end
            _log.error("journal: could not remove its owners: %s", exc)
        finally:
            for owner_lock in owners.values():
                owner_lock.release()
            owners.clear()
            connection.close()


def stored_json(tag: str, convert: Callable[[Any], Any], value: Any) -> Optional[str]:
    """``value`` as the journal's JSON text, or ``None`` (logged) when it is
    nested too deeply to write: the outcome it came with still counts."""
    try:
        return to_json(convert(value))
    except RecursionError:
        _log.error("journal %s: a server object nested too deeply to store; not kept", tag)
        return None


def apply_outcome(
    db: sqlite3.Connection,
    tag: str,
    transaction: Optional[m.Transaction],
    status: str,
    error: Optional[str],
    *,
    lookup: bool,
    delivered: bool = False,
) -> str:
    """Record one outcome on a row (in the caller's write transaction), by
    the rules of :meth:`Journal.record_outcome` (``lookup``: of
    :meth:`Journal.record_lookups`); returns what happened."""
    row = db.execute(
        "SELECT resolved, conflict, status, transaction_identifier, conflict_status,"
        " transaction_json FROM transactions WHERE tag = ?",
        (tag,),
    ).fetchone()
    if row is None:
        raise JournalError(f"tag {tag!r} is not in the journal")
    resolved, conflict, old_status, old_identifier, conflict_status, old_json = row
    final = status in SETTLING_STATUSES
    transaction_json = None if transaction is None else stored_json(tag, to_wire, transaction)
    identifier = None if transaction is None else transaction.transaction_identifier
    stamp = format_time(now())
    if (not resolved and not conflict) or (conflict and lookup and final and transaction):
        # A non-final answer becomes the reason; a final one keeps the
        # earlier reason as history ("timed out, later resolved").
        db.execute(
            "UPDATE transactions SET status = ?, error = ?, transaction_json = ?,"
            " transaction_identifier = ?, outcome_at = ?, resolved = ?, conflict = 0,"
            " reason = CASE WHEN ? THEN reason ELSE ? END WHERE tag = ?",
            (
                status,
                error,
                transaction_json,
                identifier,
                stamp,
                int(final),
                int(final),
                f"response status {status}: outcome not final, look it up",
                tag,
            ),
        )
        return "settled" if final else "pending"
    if conflict and lookup:
        return "conflict"  # only the server's final record settles a conflict
    if not final:
        _log.warning("journal %s: %s ignored, the row is already %s", tag, status, old_status)
        return "conflict" if conflict else "unchanged"
    agrees = status == old_status and (
        identifier is None or old_identifier is None or identifier == old_identifier
    )
    if agrees or (conflict and status == conflict_status):
        return "conflict" if conflict else "unchanged"
    if delivered and not conflict:
        # What the caller was told stays first; the answer written before it
        # (a late response that raced it to the journal) becomes the conflict.
        db.execute(
            "UPDATE transactions SET status = ?, error = ?, transaction_json = ?,"
            " transaction_identifier = ?, conflict = 1, conflict_status = ?,"
            " conflict_transaction_json = ?, conflict_at = ? WHERE tag = ?",
            (status, error, transaction_json, identifier, old_status, old_json, stamp, tag),
        )
        status, identifier, old_status, old_identifier = (
            old_status,
            old_identifier,
            status,
            identifier,
        )
    else:
        db.execute(
            "UPDATE transactions SET conflict = 1, conflict_status = ?,"
            " conflict_transaction_json = ?, conflict_at = ? WHERE tag = ?",
            (status, transaction_json, stamp, tag),
        )
    _log.error(
        "journal %s: CONFLICT, a final outcome %s (transaction %s) disagrees with the "
        "recorded %s (transaction %s); both kept, look it up (recover)",
        tag,
        status,
        identifier,
        old_status,
        old_identifier,
    )
    return "conflict"
