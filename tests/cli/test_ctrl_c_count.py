"""Ctrl-C presses while the reader cannot abort are counted exactly, also when
one lands while the previous press is being answered (found by the stress run:
the press was counted as the first one again, and its message never came)."""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any, List

import pytest

from payprotocol import models as m
from payprotocol._cli_charge import InteractiveCharge


class PressingEvent:
    """``finished`` whose first two waits are Ctrl-C presses; it ends after 50 waits."""

    def __init__(self) -> None:
        self.waits = 0
        self.done = False

    def is_set(self) -> bool:
        return self.done

    def set(self) -> None:
        self.done = True

    def wait(self, timeout: float) -> bool:
        self.waits += 1
        if self.waits <= 2:
            raise KeyboardInterrupt
        if self.waits >= 50:
            self.done = True
        return self.done


class Status:
    def __init__(self) -> None:
        self.printed: List[str] = []

    def print(self, text: str) -> None:
        self.printed.append(text)
        if len(self.printed) == 1:
            raise KeyboardInterrupt  # the next press lands while this one is shown

    def finish(self) -> None:
        pass


class Client:
    def charge(self, *args: Any, **kwargs: Any) -> m.Transaction:
        raise AssertionError("not called: the worker is not the subject here")


@pytest.mark.timeout(10)
def test_a_press_during_the_last_presses_message_still_counts() -> None:
    args = argparse.Namespace(custom_identifier="c-1", amount=Decimal("10.00"), currency="EUR")
    charge = InteractiveCharge(
        Client(), m.Device("devices/r1"), args, Status(), None, None  # type: ignore[arg-type]
    )
    charge.finished = PressingEvent()  # type: ignore[assignment]
    charge._charge = lambda: None  # type: ignore[method-assign]
    assert charge.run() is None  # three presses: it stopped waiting
    assert charge.presses == 3
    assert any("1 more" in text for text in charge.status.printed)  # type: ignore[attr-defined]
