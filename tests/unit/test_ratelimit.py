"""Rate-limited WARNINGs (issue 11): one line per kind per interval, with a
count of what was suppressed, on a fake clock; and Inbound using it."""

from __future__ import annotations

import logging
from typing import Any, List

import pytest

from payprotocol import models as m
from payprotocol._dispatch import Subscribers
from payprotocol._inbound import Inbound
from payprotocol._ratelimit import RateLimitedLog
from payprotocol._recorder import NullRecorder
from payprotocol._requests import RequestTable

pytestmark = pytest.mark.unit

log = logging.getLogger("payprotocol")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_one_line_per_kind_per_interval_with_the_suppressed_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limited = RateLimitedLog(log, interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        for i in range(1235):
            limited.warning("late", "late %d", i)
        limited.warning("other", "other kind")  # its own budget
        clock.now += 9.99
        limited.warning("late", "still suppressed")
        clock.now += 0.01
        limited.warning("late", "late again")
        limited.warning("late", "suppressed once more")
        clock.now += 10
        limited.warning("late", "and again")
    assert lines(caplog) == [
        "late 0",
        "other kind",
        "late again (1,235 similar messages suppressed)",
        "and again (1 similar messages suppressed)",
    ]


class Dispatcher:
    def __init__(self) -> None:
        self.jobs: List[Any] = []

    def put(self, job: Any) -> None:
        self.jobs.append(job)

    def run_callback(self, callback: Any, argument: Any) -> None:
        callback(argument)


def test_a_flood_of_late_and_unknown_tag_messages_writes_few_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    inbound = Inbound(
        RequestTable(),
        Dispatcher(),  # type: ignore[arg-type]
        NullRecorder(),
        Subscribers(),
        Subscribers(),
        Subscribers(),
        abort=lambda resource: None,
        warnings=RateLimitedLog(log, clock=clock),
    )
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        for i in range(300):
            inbound.message(m.RawMessage("SOMETHING_NEW", f"x{i}", None, {}))
            inbound.late(m.RawMessage("GET_TRANSACTION_RESPONSE", f"t{i}", None, {}))
        clock.now += 10
        inbound.message(m.RawMessage("SOMETHING_NEW", "y", None, {}))
        inbound.late(m.RawMessage("GET_TRANSACTION_RESPONSE", "z", None, {}))
    written = lines(caplog)
    assert len(written) == 4, written
    assert written[2].endswith("(299 similar messages suppressed)")
    assert written[3].endswith("(299 similar messages suppressed)")
