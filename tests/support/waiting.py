"""Wait on states, not on time: ``eventually(condition)`` polls until the
condition holds (or fails the test at the timeout), and ``finished(sim, id)``
is the simulator's own final record of a transaction. ``eventually`` is the
one place a test polls: a bounded wait on a state, never a guess at a time."""

from __future__ import annotations

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
