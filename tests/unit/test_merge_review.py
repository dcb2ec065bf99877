"""Faults found where two merged features meet (the review of issues 9 to 13)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from payprotocol import models as m
from payprotocol._recorder import JournalRecorder
from payprotocol.journal import Journal

pytestmark = pytest.mark.unit


def _journal_with_unknown_charge(path: Path) -> Journal:
    journal = Journal(str(path))
    journal.record_sent(
        tag="t1",
        message_type="EXECUTE_TRANSACTION_REQUEST",
        resource="devices/r1",
        custom_identifier="order-1",
        parameters={
            "transactionParameters": {
                "type": "CHARGE",
                "amount": "10.00",
                "currency": "EUR",
                "customIdentifier": "order-1",
            }
        },
    )
    journal.mark_unknown("t1", "timed out")
    return journal


@pytest.mark.parametrize(
    "changes",
    [{"custom_identifier": "order-2"}, {"currency": "USD"}, {"type": "REFUND"}],
)
def test_a_late_answer_that_is_not_the_requests_never_settles_its_row(
    tmp_path: Path, changes: dict
) -> None:
    journal = _journal_with_unknown_charge(tmp_path / "j.sqlite")
    recorder = JournalRecorder(journal, owned=True)
    fields = dict(
        transaction_identifier="tx-9",
        type="CHARGE",
        status="DECLINED",
        amount=Decimal("10.00"),
        currency="EUR",
        custom_identifier="order-1",
    )
    fields.update(changes)
    recorder.late("t1", m.Transaction(**fields))  # type: ignore[arg-type]
    assert [p.tag for p in journal.pending()] == ["t1"]
    recorder.close()


def test_a_late_answer_that_is_the_requests_settles_its_row(tmp_path: Path) -> None:
    journal = _journal_with_unknown_charge(tmp_path / "j.sqlite")
    recorder = JournalRecorder(journal, owned=True)
    recorder.late(
        "t1",
        m.Transaction(
            "tx-9", "CHARGE", "DECLINED", amount=Decimal("10.00"), currency="EUR",
            custom_identifier="order-1",
        ),
    )  # fmt: skip
    assert journal.pending() == []
    recorder.close()
