"""Warnings of one kind, rate-limited: a flood of messages is not a flood of log lines.

Strategy: per kind (a short string), at most one line per ``interval`` seconds
of an injectable monotonic clock; the lines in between are counted, and the
next line written for that kind says how many were suppressed. Nothing is
written on a timer: a count waits for the next message of its kind.
Thread-safe (the reader and the dispatcher both warn).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional

__all__ = ["RateLimitedLog"]

#: The default: one line per kind per 10 s.
DEFAULT_INTERVAL = 10.0


class RateLimitedLog:
    """At most one WARNING per kind per ``interval``; the rest are counted."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next: Dict[str, float] = {}
        self._suppressed: Dict[str, int] = {}

    def allow(self, kind: str) -> Optional[int]:
        """``None`` when a line of ``kind`` must be suppressed now (it is counted);
        otherwise how many were suppressed since the last line of ``kind``."""
        now = self._clock()
        with self._lock:
            due = self._next.get(kind)
            if due is not None and now < due:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return None
            self._next[kind] = now + self._interval
            return self._suppressed.pop(kind, 0)

    def warning(self, kind: str, msg: str, *args: Any) -> None:
        """Log ``msg % args`` at WARNING unless a line of ``kind`` was written less
        than ``interval`` ago. Callers with costly arguments use :meth:`allow`."""
        suppressed = self.allow(kind)
        if suppressed is not None:
            self.write(suppressed, msg, *args)

    def write(self, suppressed: int, msg: str, *args: Any) -> None:
        """Write one line, with the count :meth:`allow` returned."""
        if suppressed:
            msg += " (%s similar messages suppressed)"
            args = (*args, f"{suppressed:,}")
        self._logger.warning(msg, *args)
