"""Who owns a journal row, and whether that owner is still alive.

Strategy: every writer of a journal (each :class:`~payprotocol.PayClient` with
a journal, and each open :class:`~payprotocol.journal.Journal` itself) has an
*owner id*, a random hex string, and holds an exclusive OS lock on its own
small lock file ``<journal>-owners/<owner>.lock`` for exactly as long as it
lives. The operating system drops the lock when the process dies, however it
dies (SIGKILL, a crash, power off), so "can I take that lock?" is a liveness
test that needs no heartbeat and no clock:

* POSIX: ``fcntl.flock`` (BSD semantics: the lock belongs to the open file,
  so two owners in one process do not share it);
* Windows: ``msvcrt.locking`` of the file's first byte (``LK_NBLCK``), which
  Windows releases when the handle's process ends.

Owners in *this* process are also kept in a process-wide set and answered
from it, never by opening their lock file (cheaper, and immune to any
per-process lock semantics). No ``fork``, no signals, no POSIX-only call
without its Windows path. The lock file of a dead owner is removed by
whoever finds it dead (best effort: Windows refuses to remove a file another
process has open, and that is harmless).

Standard library only; imported by :mod:`payprotocol.journal` alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Optional, Set

__all__ = ["OwnerLock", "is_alive", "lock_directory", "new_owner_id"]

if sys.platform == "win32":  # pragma: no cover - exercised on Windows CI only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


# Owner ids alive in this process (their lock is held by this process).
_live: Set[str] = set()
_live_lock = threading.Lock()


def new_owner_id() -> str:
    """A fresh owner id: 128 random bits, never reused."""
    return os.urandom(16).hex()


def lock_directory(journal_path: str) -> Optional[str]:
    """Where the owners' lock files of a journal live (None for ``:memory:``)."""
    if journal_path == ":memory:" or journal_path.startswith("file:"):
        return None
    return os.path.abspath(journal_path) + "-owners"


def _lock_path(directory: str, owner: str) -> str:
    if not owner or not all(c in "0123456789abcdef" for c in owner):
        raise ValueError(f"not an owner id: {owner!r}")
    return os.path.join(directory, owner + ".lock")


class OwnerLock:
    """A live owner: its lock file is locked until :meth:`release`.

    Take it *before* writing the owner's id anywhere: a checker only ever
    looks at owners it found in the journal, so it can never see the file
    between its creation and its lock."""

    def __init__(self, directory: Optional[str], owner: Optional[str] = None) -> None:
        self.owner = owner or new_owner_id()
        self._fd: Optional[int] = None
        self._path: Optional[str] = None
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
            path = _lock_path(directory, self.owner)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            if not _try_lock(fd):  # pragma: no cover - a fresh random name
                os.close(fd)
                raise OSError(f"cannot lock the new owner file {path}")
            self._fd, self._path = fd, path
        with _live_lock:
            _live.add(self.owner)

    def release(self) -> None:
        """The owner ends: drop the lock and remove the file. Idempotent."""
        with _live_lock:
            _live.discard(self.owner)
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _unlock(fd)
        finally:
            os.close(fd)
        if self._path is not None:
            # OSError: e.g. a checker has it open on Windows; harmless.
            with contextlib.suppress(OSError):
                os.remove(self._path)


def is_alive(directory: Optional[str], owner: str) -> bool:
    """Whether ``owner`` (on this machine) still holds its lock.

    An owner of this process answers from memory. Otherwise its lock file is
    tried: held means alive; free (we got it) or missing means dead, and the
    file is removed."""
    with _live_lock:
        if owner in _live:
            return True
    if directory is None:
        return False
    path = _lock_path(directory, owner)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        if not _try_lock(fd):
            return True
        _unlock(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):  # Windows: another checker may have it open
        os.remove(path)  # dead: nobody will lock this name again
    return False
