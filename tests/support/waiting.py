"""Wait on states, not on time: ``eventually(condition)`` polls until the
condition holds (or fails the test at the timeout), and ``finished(sim, id)``
is the simulator's own final record of a transaction; ``blocked_in`` tells
where a thread is blocked."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


def eventually(
    condition: Callable[[], T], timeout: float = 5.0, *, message: Optional[str] = None
) -> T:
    """``condition()``'s first truthy value; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"not within {timeout} s: {condition}")
        time.sleep(0.01)


def finished(sim: Any, custom_identifier: str) -> Any:
    """The simulator's stored transaction once it has ended, else None."""
    stored = sim.store.get_by_custom_identifier(custom_identifier)
    if stored is not None and stored.status not in ("PENDING", "INITIALIZED"):
        return stored
    return None


def blocked_in(thread: threading.Thread, function: str, settle: float = 0.05) -> bool:
    """Whether ``thread`` is blocked in a C call (such as a socket's recv) made
    from the Python function ``function``: its innermost frame is that function
    and has not moved on while we let it run for ``settle`` s (a thread that
    merely executes the function's first lines moves on as soon as it may)."""

    def where() -> Any:
        frame = sys._current_frames().get(thread.ident or -1)
        if frame is None or frame.f_code.co_name != function:
            return None
        return (frame, frame.f_lasti)

    before = where()
    time.sleep(settle)
    return before is not None and where() == before
