"""Opening a journal file: its checks, migration and session (used by
:mod:`payprotocol.journal` alone).

Strategy: before SQLite touches the path, :func:`check_file` decides whether
the file is new (missing or empty: refused with ``create=False``) and whether
its ``-wal`` is missing. :func:`open_session` then checks the file read-only
(never switch a foreign database to WAL), turns on WAL, and in one
``BEGIN IMMEDIATE`` transaction (one opener migrates at a time) creates or
migrates the schema, refuses a missing ``-wal`` after an unclean stop, removes
this machine's dead sessions and registers the new one. Foreign or newer files
are refused with a :class:`JournalError`, never modified.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Dict, Optional, Tuple

from ._journal_rows import APPLICATION_ID, SCHEMA_VERSION, JournalError, migrate
from ._journal_write import add_owner, dead_sessions
from ._owners import OwnerLock

__all__ = ["check_file", "connect", "open_session"]

_log = logging.getLogger("payprotocol.journal")


def check_file(path: str, locks: Optional[str], create: bool) -> Tuple[bool, bool]:
    """``(fresh, wal_missing)`` for the journal file at ``path`` (both False
    for an in-memory journal, ``locks`` None). Raises :class:`JournalError`
    for a missing or empty file when ``create`` is False."""
    if locks is None:
        return False, False
    try:
        fresh = os.path.getsize(path) == 0
    except FileNotFoundError:
        fresh = True
    except OSError as exc:
        raise JournalError(f"cannot open journal {path!r}: {exc}") from exc
    if fresh and not create:
        raise JournalError(
            f"journal {path!r} is missing or empty, but it must exist "
            "(its pending rows would be lost without a word): restore it from "
            "a backup, or create a new journal deliberately"
        )
    return fresh, not os.path.exists(path + "-wal")


def connect(path: str, timeout: float) -> sqlite3.Connection:
    """The journal's one connection, or :class:`JournalError`."""
    try:
        # isolation_level=None: autocommit; writes of several statements
        # use explicit transactions.
        return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open journal {path!r}: {exc}") from exc


def open_session(
    connection: sqlite3.Connection,
    path: str,
    locks: Optional[str],
    owners: Dict[str, OwnerLock],
    check_wal: bool,
) -> str:
    """Check, migrate and register a new journal session (its owner id, also
    put in ``owners``); ``check_wal``: refuse a dead session without ``-wal``."""
    try:
        # Read-only checks first: never switch a foreign database to WAL.
        check_identity(connection, path, write=False)
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        wal = str(mode).lower() == "wal"
        if not wal and locks is not None:
            # e.g. a file system without shared memory; FULL is still
            # durable with a rollback journal, only readers block writers.
            _log.warning("journal %r runs in %s mode, not WAL", path, mode)
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("BEGIN IMMEDIATE")  # one opener migrates at a time
        try:
            check_identity(connection, path, write=True)
            dead = dead_sessions(connection, locks)
            if dead and check_wal and wal:
                raise JournalError(
                    f"journal {path!r} was not closed cleanly and its -wal file "
                    "is missing (deleted, or the file was copied without it): the "
                    "newest rows, pending payments among them, may be lost. Restore "
                    "the -wal file beside it, or open it with accept_missing_wal=True "
                    "once you have reconciled with the PayServer"
                )
            for owner in dead:
                connection.execute("DELETE FROM owners WHERE owner = ?", (owner,))
            session = add_owner(connection, locks, owners, "journal")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        if wal:
            # The session row reaches the main file, so a later copy of the
            # file without its -wal still shows an open session.
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return session
    except sqlite3.Error as exc:
        raise JournalError(
            f"{path!r} is not a usable payprotocol journal "
            f"(corrupt, not an SQLite file, or locked): {exc}"
        ) from exc
    except OSError as exc:
        raise JournalError(f"journal {path!r}: cannot lock an owner: {exc}") from exc


def check_identity(connection: sqlite3.Connection, path: str, *, write: bool) -> None:
    """Refuse foreign or newer files; with ``write``, create or migrate."""
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    has_tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    if application_id == 0 and version == 0 and not has_tables:
        if write:
            connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
            migrate(connection.execute, 0)
        return
    if application_id != APPLICATION_ID:
        raise JournalError(
            f"{path!r} is an SQLite database but not a payprotocol journal "
            f"(application_id {application_id:#x}); refusing to touch it"
        )
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"journal {path!r} has schema version {version}, written by a newer "
            f"payprotocol; this version understands up to {SCHEMA_VERSION}"
        )
    if write and version < SCHEMA_VERSION:
        migrate(connection.execute, version)
