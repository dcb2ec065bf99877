"""Faults found where two merged features meet (the review of issues 9 to 13)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Dict

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


def _recovered_with(journal: Journal, found: m.Transaction) -> Any:
    """The one result of ``recover()`` when the server answers ``found``."""
    from payprotocol._recorder import recover

    [result] = recover(
        journal, lambda custom: found, in_flight=lambda tag: False, owner=journal.owner
    )
    return result


def _found(**changes: Any) -> m.Transaction:
    """The server's answer for order-1: approved, 10.00 EUR, unless changed."""
    fields: Dict[str, Any] = dict(
        transaction_identifier="tx-9", type="CHARGE", status="APPROVED",
        amount=Decimal("10.00"), currency="EUR", custom_identifier="order-1",
    )  # fmt: skip
    fields.update(changes)
    return m.Transaction(**fields)


@pytest.mark.parametrize(
    "changes",
    [{"custom_identifier": "order-2"}, {"currency": "USD"}, {"type": "REFUND"}],
)
def test_a_late_answer_that_is_not_the_requests_never_settles_its_row(
    tmp_path: Path, changes: dict
) -> None:
    journal = _journal_with_unknown_charge(tmp_path / "j.sqlite")
    recorder = JournalRecorder(journal, owned=True)
    recorder.late("t1", _found(status="DECLINED", **changes))
    assert [p.tag for p in journal.pending()] == ["t1"]
    recorder.close()


def test_a_late_answer_that_is_the_requests_settles_its_row(tmp_path: Path) -> None:
    journal = _journal_with_unknown_charge(tmp_path / "j.sqlite")
    recorder = JournalRecorder(journal, owned=True)
    recorder.late("t1", _found(status="DECLINED"))
    assert journal.pending() == []
    recorder.close()


def test_recover_reads_the_currency_as_the_charge_does_without_regard_to_case(
    tmp_path: Path,
) -> None:
    # settle() takes "eur" for the EUR asked (6.2/6.3); recover() must not call
    # the same answer a mismatch, or the row could never be settled.
    journal = _journal_with_unknown_charge(tmp_path / "j.sqlite")
    result = _recovered_with(journal, _found(currency="eur"))
    assert (result.result, result.resolved) == ("found", True)
    assert journal.pending() == []
    journal.close()


def test_a_timeout_on_a_stream_stuck_mid_message_ends_the_connection_at_once() -> None:
    # Before the caller hears of the timeout, so a lookup it makes next waits
    # for the reconnect instead of failing on the closed connection.
    from typing import List

    from payprotocol._connection import Connection

    class StuckTransport:
        description = "stuck"
        closed = False

        def mid_message(self) -> bool:
            return True

        def close(self) -> None:
            self.closed = True

    ended: List[Any] = []
    transport = StuckTransport()
    connection = Connection(
        transport,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        lambda conn, failure: ended.append((conn, failure)),
    )
    connection.request_timed_out()  # the reader was never started: only this can report
    assert transport.closed
    assert [conn for conn, _ in ended] == [connection]


_APPROVED = {
    "transactionIdentifier": "tx-9", "type": "CHARGE", "status": "APPROVED",
    "amount": 10, "currency": "EUR", "customIdentifier": "order-1",
}  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        {"transaction": [_APPROVED]},  # the transaction in a list
        {"transaction": "APPROVED"},  # not an object
        "approved",  # the data object itself does not fit
        [{"transaction": _APPROVED}],
    ],
)
def test_an_error_whose_transaction_could_not_be_read_is_outcome_unknown(data: object) -> None:
    # An ERROR without a transaction means nothing was charged; one whose
    # transaction was there but unreadable says nothing readable about the
    # money (6.3: an unreadable status settles nothing), so it is not a refusal.
    import json

    from payprotocol import codec
    from payprotocol._requests import RequestTable
    from payprotocol._settle import settle
    from payprotocol.errors import TransactionOutcomeUnknownError

    raw = {
        "type": "EXECUTE_TRANSACTION_RESPONSE", "tag": "t1", "status": "ERROR",
        "error": {"type": "INTERNAL_ERROR", "message": "boom"},
        "executeTransactionResponse": data,
    }  # fmt: skip
    message = codec.decode_message(json.dumps(raw).encode())
    request = RequestTable().new_request(
        "t1", "EXECUTE_TRANSACTION_REQUEST", custom_identifier="order-1"
    )
    request.sent = True
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        settle(request, message)
    assert caught.value.received == raw


def test_an_error_without_any_transaction_is_still_a_refusal() -> None:
    from payprotocol._requests import RequestTable
    from payprotocol._settle import settle
    from payprotocol.errors import ServerError

    message = m.Message(
        "EXECUTE_TRANSACTION_RESPONSE", "t1", None, m.ExecuteTransactionResponse(None),
        "ERROR", m.ErrorDetails("INVALID_REQUEST", "no"),
    )  # fmt: skip
    request = RequestTable().new_request("t1", "EXECUTE_TRANSACTION_REQUEST")
    with pytest.raises(ServerError):
        settle(request, message)


def _deep_approved(depth: int) -> bytes:
    return (
        b'{"type":"EXECUTE_TRANSACTION_RESPONSE","tag":"t1","status":"OK",'
        b'"executeTransactionResponse":{"transaction":{"transactionIdentifier":"tx-9",'
        b'"type":"CHARGE","status":"APPROVED","currency":"EUR","amount":10,'
        b'"customIdentifier":"order-1","metadata":'
        + b'{"a":' * depth + b"1" + b"}" * depth + b"}}}"
    )


def test_a_readable_approval_nested_too_deeply_to_store_still_settles_the_journal(
    tmp_path: Path,
) -> None:
    # Valid JSON the reader takes (metadata nested 600 deep): the journal
    # cannot write the transaction as JSON, but its outcome must not be lost to
    # that (nor raise RecursionError to a caller whose card was charged).
    from payprotocol import codec
    from payprotocol._recorder import recover
    from payprotocol._requests import RequestTable
    from payprotocol._settle import settle

    journal = _journal_with_unknown_charge(tmp_path / "j.sqlite")
    message = codec.decode_parsed(codec.parse_message(_deep_approved(600)))
    request = RequestTable().new_request("t2", "EXECUTE_TRANSACTION_REQUEST")
    recorder = JournalRecorder(journal, owned=False)
    recorder.sent(request, {})
    recorder.settled(request, settle(request, message))
    assert journal.get("t2").status == "APPROVED"  # type: ignore[union-attr]
    # recover() writes what a lookup found the same way
    found = codec.decode_parsed(codec.parse_message(_deep_approved(600))).data.transaction  # type: ignore[union-attr]
    [result] = recover(
        journal, lambda custom: found, in_flight=lambda tag: False, owner=journal.owner
    )
    assert (result.result, result.resolved) == ("found", True)
    recorder.close()
    journal.close()


def test_an_unknown_outcome_whose_response_is_nested_too_deeply_keeps_its_reason(
    tmp_path: Path,
) -> None:
    from payprotocol import codec

    journal = _journal_with_unknown_charge(tmp_path / "j.sqlite")
    received = codec.parse_message(_deep_approved(600))
    assert journal.mark_unknown("t1", "an untrusted answer", received)
    [pending] = journal.pending()
    assert pending.reason == "an untrusted answer"
    journal.close()


def test_recover_reads_an_unknown_type_name_as_information_as_the_charge_does(
    tmp_path: Path,
) -> None:
    # settle() compares the type only when it is one this version knows (an
    # unknown name is information, 6.1/6.3); recover() must do the same.
    journal = _journal_with_unknown_charge(tmp_path / "j.sqlite")
    result = _recovered_with(journal, _found(type="SALE"))
    assert (result.result, result.resolved) == ("found", True)
    journal.close()


def test_without_a_journal_a_late_answer_for_another_identifier_keeps_it_unresolved() -> None:
    from payprotocol._recorder import NullRecorder
    from payprotocol._requests import RequestTable
    from payprotocol.errors import CustomIdentifierInUseError

    recorder = NullRecorder()
    table = RequestTable()
    first = table.new_request("t1", "EXECUTE_TRANSACTION_REQUEST", custom_identifier="order-1")
    recorder.sent(first, None)  # then its outcome stays unknown
    recorder.late(
        "t1", m.Transaction("tx-9", "CHARGE", "DECLINED", custom_identifier="order-2")
    )
    again = table.new_request("t2", "EXECUTE_TRANSACTION_REQUEST", custom_identifier="order-1")
    with pytest.raises(CustomIdentifierInUseError):
        recorder.sent(again, None)
    recorder.late("t1", m.Transaction("tx-1", "CHARGE", "DECLINED", custom_identifier="order-1"))
    recorder.sent(again, None)  # its own final answer resolved it


@pytest.mark.parametrize("status", ["FAILED", ["OK"], 0, "PENDING"])
def test_an_unreadable_envelope_status_settles_no_transaction(status: object) -> None:
    # 6.3: the outcome rests on the envelope's status as well as the
    # transaction's; one that is present but neither OK nor ERROR (in any case)
    # cannot be judged, so even an APPROVED transaction is outcome unknown.
    import json

    from payprotocol import codec
    from payprotocol._requests import RequestTable
    from payprotocol._settle import settle
    from payprotocol.errors import TransactionOutcomeUnknownError

    raw = {
        "type": "EXECUTE_TRANSACTION_RESPONSE", "tag": "t1", "status": status,
        "executeTransactionResponse": {"transaction": _APPROVED},
    }  # fmt: skip
    message = codec.decode_message(json.dumps(raw).encode())
    request = RequestTable().new_request(
        "t1", "EXECUTE_TRANSACTION_REQUEST", custom_identifier="order-1"
    )
    request.sent = True
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        settle(request, message)
    assert caught.value.received == raw


@pytest.mark.parametrize("status", ["OK", "ok", None])
def test_a_readable_or_absent_envelope_status_leaves_the_transaction_to_judge(
    status: object,
) -> None:
    import json

    from payprotocol import codec
    from payprotocol._requests import RequestTable
    from payprotocol._settle import settle

    raw = {
        "type": "EXECUTE_TRANSACTION_RESPONSE", "tag": "t1", "status": status,
        "executeTransactionResponse": {"transaction": _APPROVED},
    }  # fmt: skip
    message = codec.decode_message(json.dumps(raw).encode())
    request = RequestTable().new_request(
        "t1", "EXECUTE_TRANSACTION_REQUEST", custom_identifier="order-1"
    )
    request.sent = True
    assert settle(request, message) is message
