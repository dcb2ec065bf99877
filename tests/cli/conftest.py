"""The ``payprotocol simulate`` subprocess the command-line tests of a module share."""

from __future__ import annotations

from typing import Iterator

import pytest

from ..support.cli import MERCHANT, SECRET, Simulate


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulate]:
    with Simulate("--merchant", f"{MERCHANT}:{SECRET}", "-v") as simulator:  # logs every message
        yield simulator
