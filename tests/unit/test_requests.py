"""The request table and the money rules, without sockets or threads.

Routing of responses, updates, actions, late and duplicate messages; the
sliding deadline and its cap on an injected clock; and every settlement rule
of the README's exception table.
"""

from __future__ import annotations

from typing import List, Optional

import pytest

from payprotocol import models as m
from payprotocol._requests import (
    PendingRequest,
    RequestTable,
    Route,
    TagSource,
    custom_identifier_of,
    wait_limits,
)
from payprotocol._settle import failure_for, settle
from payprotocol.errors import (
    ConnectionLostError,
    ProtocolViolationError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)

pytestmark = pytest.mark.unit

EXECUTE = "EXECUTE_TRANSACTION_REQUEST"
AMEND = "AMEND_TRANSACTION_REQUEST"
LOOKUP = "GET_TRANSACTION_REQUEST"


class FakeClock:
    """A clock only the test moves."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def transaction(status: Optional[str] = "APPROVED") -> m.Transaction:
    return m.Transaction("tx-1", m.TransactionType.CHARGE, status, currency="EUR")


def response(
    request: PendingRequest,
    *,
    status: str = "OK",
    tx: Optional[m.Transaction] = None,
    error: Optional[str] = None,
    data: object = None,
) -> m.Message:
    if data is None and request.is_transaction:
        data = m.ExecuteTransactionResponse(tx)
    details = m.ErrorDetails(error, "refused", "dev detail") if error else None
    return m.Message(request.response_type, request.tag, request.resource, data, status, details)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def table(clock: FakeClock) -> RequestTable:
    return RequestTable(clock)


def register(table: RequestTable, tag: str = "t1", kind: str = EXECUTE) -> PendingRequest:
    request = table.new_request(tag, kind, resource="devices/r1", custom_identifier="order-1")
    table.register(request)
    return request


# --- routing ---------------------------------------------------------------------


def test_the_matching_response_type_completes_its_request(table: RequestTable) -> None:
    request = register(table)
    assert table.route(response(request)) == (Route.COMPLETE, request)


def test_routing_is_pure(table: RequestTable) -> None:
    request = register(table)
    table.route(response(request))
    table.route(m.Message("EXECUTE_TRANSACTION_UPDATE", "t1", data=m.ExecuteTransactionUpdate()))
    assert not request.done and "t1" in table and request.last_activity == request.created


def test_a_foreign_response_with_the_tag_is_progress_not_the_outcome(table: RequestTable) -> None:
    request = register(table)
    foreign = m.Message("GET_TRANSACTION_RESPONSE", "t1", data=m.GetTransactionResponse(None))
    assert table.route(foreign) == (Route.UPDATE, request)


def test_updates_and_unknown_types_of_a_waiting_request_are_updates(
    table: RequestTable,
) -> None:
    request = register(table)
    update = m.Message("EXECUTE_TRANSACTION_UPDATE", "t1", data=m.ExecuteTransactionUpdate())
    unknown = m.RawMessage("EXECUTE_TRANSACTION_WHATEVER", "t1", data={})
    assert table.route(update) == (Route.UPDATE, request)
    assert table.route(unknown) == (Route.UPDATE, request)


def test_a_typed_action_is_an_action_and_an_untyped_one_an_update(table: RequestTable) -> None:
    request = register(table)
    action = m.Message(
        "EXECUTE_TRANSACTION_ACTION", "t1", data=m.ExecuteTransactionAction("SIGNATURE")
    )
    raw = m.RawMessage("EXECUTE_TRANSACTION_ACTION", "t1", data={"action": 5})
    assert table.route(action) == (Route.ACTION, request)
    assert table.route(raw) == (Route.UPDATE, request)


def test_a_response_for_no_waiting_request_is_late_anything_else_ignored(
    table: RequestTable,
) -> None:
    register(table)
    late = m.Message("EXECUTE_TRANSACTION_RESPONSE", "gone", data=m.ExecuteTransactionResponse())
    update = m.Message("EXECUTE_TRANSACTION_UPDATE", "gone", data=m.ExecuteTransactionUpdate())
    tagless = m.Message("GET_TRANSACTION_RESPONSE", None)
    assert table.route(late) == (Route.LATE, None)
    assert table.route(update) == (Route.IGNORE, None)
    assert table.route(tagless) == (Route.LATE, None)  # no lookup waits


def test_a_second_response_for_a_finished_request_is_late(table: RequestTable) -> None:
    request = register(table)
    first = response(request, tx=transaction("DECLINED"))
    assert request.finish(response=first)
    duplicate = response(request, tx=transaction("APPROVED"))
    assert table.route(duplicate) == (Route.LATE, request)
    assert not request.finish(response=duplicate)
    assert request.response is first  # the first outcome stands


def test_a_misfit_response_fails_its_request_a_misfit_update_goes_on(
    table: RequestTable,
) -> None:
    request = register(table)
    misfit = m.RawMessage("EXECUTE_TRANSACTION_RESPONSE", "t1", data={"transaction": 5})
    untyped = m.RawMessage("UNKNOWN", "t1")
    update = m.RawMessage("EXECUTE_TRANSACTION_UPDATE", "t1", data={"abortable": []})
    assert table.route_misfit(misfit) == (Route.FAIL, request)
    assert table.route_misfit(untyped) == (Route.FAIL, request)
    assert table.route_misfit(update) == (Route.UPDATE, request)
    assert table.route_misfit(m.RawMessage("UNKNOWN", "other")) == (Route.IGNORE, None)


# --- the table -------------------------------------------------------------------


def test_a_tag_in_flight_cannot_be_registered_twice(table: RequestTable) -> None:
    register(table)
    with pytest.raises(ValueError, match="already in flight"):
        register(table)


def test_remove_removes_only_that_request(table: RequestTable) -> None:
    first = register(table)
    table.remove(first)
    second = register(table)
    table.remove(first)  # a stale removal leaves the new request alone
    assert table.get("t1") is second and len(table) == 1


def test_fail_all_ends_every_wait(table: RequestTable) -> None:
    requests = [register(table, tag) for tag in ("a", "b", "c")]
    failure = ConnectionLostError("gone")
    table.fail_all(failure)
    assert all(r.done and r.failure is failure for r in requests)


def test_tags_are_unique_and_differ_between_clients() -> None:
    one, two = TagSource(), TagSource()
    tags = [one.next() for _ in range(1000)] + [two.next() for _ in range(1000)]
    assert len(set(tags)) == 2000


# --- the sliding deadline --------------------------------------------------------


def test_progress_slides_the_deadline_under_the_cap(table: RequestTable, clock: FakeClock) -> None:
    request = register(table)
    idle, cap = 10.0, request.created + 25.0
    assert request.deadline(idle, cap) == request.created + 10
    clock.now += 8
    request.touch()
    assert request.deadline(idle, cap) == request.created + 18
    clock.now += 9
    request.touch()
    assert request.deadline(idle, cap) == request.created + 25  # the cap, not 27


def test_a_plain_request_times_out_at_its_idle_limit(table: RequestTable, clock: FakeClock) -> None:
    request = register(table, kind=LOOKUP)
    clock.now += 3.0  # the idle limit has passed: no real waiting
    with pytest.raises(
        RequestTimeoutError, match=r"no response to GET_TRANSACTION_REQUEST within 3\.0 s"
    ):
        table.await_outcome(request, 3.0, request.created + 3.0)
    assert request.done  # a response racing in now counts as late


def test_a_sent_transaction_that_times_out_has_an_unknown_outcome(
    table: RequestTable, clock: FakeClock
) -> None:
    request = register(table)
    request.sent = True
    clock.now += 60.0
    request.touch()  # progress re-arms the idle limit, never past the cap
    clock.now += 40.0
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        table.await_outcome(request, 120.0, request.created + 100.0)
    assert "took longer than 100.0 s" in str(caught.value.__cause__)
    assert (caught.value.tag, caught.value.resource, caught.value.custom_identifier) == (
        "t1",
        "devices/r1",
        "order-1",
    )


def test_a_response_in_time_is_returned(table: RequestTable, clock: FakeClock) -> None:
    request = register(table)
    answer = response(request, tx=transaction())
    request.finish(response=answer)
    clock.now += 1000  # already finished: the clock no longer matters
    assert table.await_outcome(request, 1.0, request.created + 1.0) is answer


def test_wait_limits_for_plain_requests_and_transactions(table: RequestTable) -> None:
    plain, tx = register(table, "p", LOOKUP), register(table, "x", EXECUTE)
    limits = {
        "plain_timeout": 30.0,
        "transaction_timeout": 120.0,
        "transaction_max_duration": 900.0,
    }
    assert wait_limits(plain, None, **limits) == (30.0, plain.created + 30.0)
    assert wait_limits(plain, 2.0, **limits) == (2.0, plain.created + 2.0)
    assert wait_limits(tx, None, **limits) == (120.0, tx.created + 900.0)
    assert wait_limits(tx, 5.0, **limits) == (5.0, tx.created + 900.0)


# --- failures without a response -------------------------------------------------


def test_a_sent_transaction_whose_connection_ended_has_an_unknown_outcome(
    table: RequestTable,
) -> None:
    request = register(table, kind=AMEND)
    request.sent = True
    lost = ConnectionLostError("link dropped")
    request.finish(failure=lost)
    unknown = failure_for(request)
    assert isinstance(unknown, TransactionOutcomeUnknownError) and unknown.__cause__ is lost


def test_an_unsent_transaction_fails_plainly_each_waiter_its_own_exception(
    table: RequestTable,
) -> None:
    first, second = register(table, "a"), register(table, "b", LOOKUP)
    violation = ProtocolViolationError("bad frame")
    table.fail_all(violation)
    errors: List[BaseException] = [failure_for(first), failure_for(second)]
    assert all(type(e) is ProtocolViolationError and str(e) == "bad frame" for e in errors)
    assert errors[0] is not errors[1] and errors[0] is not violation


def test_a_plain_timeout_is_raised_as_it_is(table: RequestTable) -> None:
    request = register(table, kind=LOOKUP)
    timeout = RequestTimeoutError("slow")
    request.finish(failure=timeout)
    assert failure_for(request) is timeout


# --- settlement: the README's exception table ------------------------------------


@pytest.mark.parametrize("status", ["APPROVED", "ACCEPTED", "DECLINED", "ABORTED"])
def test_an_ok_transaction_response_is_returned_whatever_its_status(
    table: RequestTable, status: str
) -> None:
    request = register(table)
    answer = response(request, tx=transaction(status))
    assert settle(request, answer) is answer


def test_a_plain_error_response_is_a_server_error(table: RequestTable) -> None:
    request = register(table, kind=LOOKUP)
    answer = response(
        request, status="ERROR", error="TRANSACTION_NOT_FOUND", data=m.GetTransactionResponse()
    )
    with pytest.raises(ServerError) as caught:
        settle(request, answer)
    error = caught.value
    assert (error.error_type, error.message, error.developer_message) == (
        "TRANSACTION_NOT_FOUND",
        "refused",
        "dev detail",
    )
    assert error.response is answer


def test_a_plain_ok_response_is_returned(table: RequestTable) -> None:
    request = register(table, kind=LOOKUP)
    answer = response(request, data=m.GetTransactionResponse(transaction()))
    assert settle(request, answer) is answer


def test_a_refusal_before_any_transaction_existed_is_a_server_error(table: RequestTable) -> None:
    request = register(table)
    with pytest.raises(ServerError, match="DEVICE_BUSY"):
        settle(request, response(request, status="ERROR", error="DEVICE_BUSY"))


def test_an_ok_without_a_transaction_proves_nothing(table: RequestTable) -> None:
    request = register(table)
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        settle(request, response(request))
    assert isinstance(caught.value.__cause__, ProtocolViolationError)


@pytest.mark.parametrize("status", sorted(m.FAILED_STATUSES))
def test_an_error_whose_transaction_failed_is_a_server_error(
    table: RequestTable, status: str
) -> None:
    request = register(table)
    answer = response(request, status="ERROR", error="INTERNAL_ERROR", tx=transaction(status))
    with pytest.raises(ServerError) as caught:
        settle(request, answer)
    assert caught.value.response is answer


@pytest.mark.parametrize("status", ["APPROVED", "ACCEPTED", "PENDING", "INCONCLUSIVE", None, "NEW"])
def test_an_error_whose_transaction_may_have_moved_money_is_unknown(
    table: RequestTable, status: Optional[str]
) -> None:
    request = register(table)
    answer = response(request, status="ERROR", error="INTERNAL_ERROR", tx=transaction(status))
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        settle(request, answer)
    assert isinstance(caught.value.__cause__, ServerError)
    assert caught.value.custom_identifier == "order-1"


def test_an_error_object_alone_makes_a_response_an_error(table: RequestTable) -> None:
    request = register(table, kind=LOOKUP)
    answer = m.Message(
        request.response_type, "t1", data=m.GetTransactionResponse(), error=m.ErrorDetails("X")
    )
    with pytest.raises(ServerError, match="X: the server reported an error"):
        settle(request, answer)


# --- request data ----------------------------------------------------------------


def test_the_custom_identifier_is_found_in_models_and_raw_dicts() -> None:
    parameters = m.TransactionParameters("CHARGE", 1, "EUR", True, custom_identifier="c-1")
    assert custom_identifier_of(m.ExecuteTransactionRequest(parameters)) == "c-1"
    assert custom_identifier_of({"transactionParameters": {"customIdentifier": "c-2"}}) == "c-2"
    assert custom_identifier_of({"transactionParameters": {"customIdentifier": 7}}) is None
    assert custom_identifier_of({"other": 1}) is None
    assert custom_identifier_of(None) is None


# --- routing oddities (p3-protocol.md 6.5) -------------------------------------------


def test_a_tagless_response_completes_the_one_waiting_request_of_its_type(
    table: RequestTable,
) -> None:
    execute = register(table, "t1")
    register(table, "t2", kind=LOOKUP)
    tagless = m.Message("EXECUTE_TRANSACTION_RESPONSE", None, data=m.ExecuteTransactionResponse())
    assert table.route(tagless) == (Route.COMPLETE, execute)
    update = m.Message("EXECUTE_TRANSACTION_UPDATE", None, data=m.ExecuteTransactionUpdate())
    assert table.route(update) == (Route.IGNORE, None)  # only responses


def test_a_tagless_response_with_two_or_no_waiting_requests_of_its_type_is_late(
    table: RequestTable,
) -> None:
    first = register(table, "t1")
    register(table, "t2")
    tagless = m.Message("EXECUTE_TRANSACTION_RESPONSE", None, data=m.ExecuteTransactionResponse())
    assert table.route(tagless) == (Route.LATE, None)
    first.finish(failure=RequestTimeoutError("gone"))  # done: no longer waiting
    assert table.route(tagless)[0] is Route.COMPLETE
    assert table.route(m.Message("LOGIN_MERCHANT_RESPONSE", None)) == (Route.LATE, None)


def test_a_tagless_misfit_response_fails_the_one_waiting_request(table: RequestTable) -> None:
    request = register(table, "t1")
    misfit = m.RawMessage("EXECUTE_TRANSACTION_RESPONSE", None, data={"transaction": 5})
    assert table.route_misfit(misfit) == (Route.FAIL, request)


def test_a_tagged_foreign_error_ends_its_request(table: RequestTable) -> None:
    request = register(table)
    error = m.ErrorDetails("INTERNAL_ERROR", "no")
    foreign = m.Message("GET_TRANSACTION_RESPONSE", "t1", status="ERROR", error=error)
    unknown = m.RawMessage("SOMETHING_ELSE", "t1", status="ERROR", error=error)
    assert table.route(foreign) == (Route.ERROR, request)
    assert table.route(unknown) == (Route.ERROR, request)
    # An update or action in error is progress, an OK foreign message too.
    update = m.Message("EXECUTE_TRANSACTION_UPDATE", "t1", status="ERROR", error=error)
    assert table.route(update) == (Route.UPDATE, request)
    ok = m.Message("GET_TRANSACTION_RESPONSE", "t1", status="OK")
    assert table.route(ok) == (Route.UPDATE, request)
    request.finish(failure=RequestTimeoutError("gone"))
    assert table.route(foreign) == (Route.LATE, request)


def test_a_misfit_action_of_a_waiting_request_is_still_an_action(table: RequestTable) -> None:
    request = register(table)
    misfit = m.RawMessage("EXECUTE_TRANSACTION_ACTION", "t1", data={"abortable": "x"})
    assert table.route_misfit(misfit) == (Route.ACTION, request)
    assert table.route_misfit(m.RawMessage("EXECUTE_TRANSACTION_ACTION", "x")) == (
        Route.IGNORE,
        None,
    )


@pytest.mark.parametrize("kind", [EXECUTE, AMEND])
def test_a_foreign_error_of_a_sent_transaction_is_outcome_unknown(
    table: RequestTable, kind: str
) -> None:
    request = register(table, kind=kind)
    request.sent = True
    error = ServerError("INTERNAL_ERROR", "no")
    request.finish(failure=error, received={"type": "X", "status": "ERROR"})
    unknown = failure_for(request)
    assert isinstance(unknown, TransactionOutcomeUnknownError)
    assert unknown.__cause__ is error
    assert unknown.received == {"type": "X", "status": "ERROR"}


def test_a_foreign_error_of_a_plain_request_is_that_server_error(table: RequestTable) -> None:
    request = register(table, kind=LOOKUP)
    request.sent = True
    error = ServerError("INTERNAL_ERROR", "no")
    request.finish(failure=error)
    assert failure_for(request) is error


# --- money judged, never guessed (6.3) -----------------------------------------------


def charge_request(
    table: RequestTable, currency: str = "EUR", kind: str = "CHARGE"
) -> PendingRequest:
    parameters = m.TransactionParameters(kind, 10, currency, True, custom_identifier="order-1")
    request = table.new_request(
        "t1",
        EXECUTE,
        resource="devices/r1",
        custom_identifier="order-1",
        data=m.ExecuteTransactionRequest(parameters),
    )
    table.register(request)
    request.sent = True
    return request


def final_response(request: PendingRequest, tx: m.Transaction, *, keep: bool = True) -> m.Message:
    """The response as the reader hands it over: finished with its raw JSON."""
    answer = response(request, tx=tx)
    received = {"type": answer.type, "tag": "t1", "as": "received"}
    assert request.finish(response=answer, received=received if keep else None)
    return answer


@pytest.mark.parametrize("status", [None, "PENDING", "INITIALIZED", "INCONCLUSIVE", "NEW", ""])
def test_an_ok_response_whose_status_is_missing_or_not_final_is_outcome_unknown(
    table: RequestTable, status: Optional[str]
) -> None:
    request = charge_request(table)
    answer = final_response(request, transaction(status))
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        settle(request, answer)
    assert caught.value.received == {"type": answer.type, "tag": "t1", "as": "received"}
    assert caught.value.custom_identifier == "order-1"
    assert isinstance(caught.value.__cause__, ProtocolViolationError)


@pytest.mark.parametrize("status", sorted(m.FINAL_STATUSES))
def test_an_ok_response_with_a_final_status_is_returned(table: RequestTable, status: str) -> None:
    request = charge_request(table)
    answer = final_response(request, transaction(status))
    assert settle(request, answer) is answer


def test_a_response_for_another_custom_identifier_is_outcome_unknown(table: RequestTable) -> None:
    request = charge_request(table)
    tx = m.Transaction("tx-1", "CHARGE", "APPROVED", currency="EUR", custom_identifier="order-2")
    answer = final_response(request, tx)
    with pytest.raises(TransactionOutcomeUnknownError, match="order-2") as caught:
        settle(request, answer)
    assert caught.value.received is not None


@pytest.mark.parametrize("status", ["APPROVED", "DECLINED"])
def test_a_response_in_another_currency_is_outcome_unknown(
    table: RequestTable, status: str
) -> None:
    request = charge_request(table)
    tx = m.Transaction("tx-1", "CHARGE", status, currency="USD", custom_identifier="order-1")
    with pytest.raises(TransactionOutcomeUnknownError, match="USD"):
        settle(request, final_response(request, tx))


def test_a_response_of_another_known_type_is_outcome_unknown_an_unknown_type_is_not(
    table: RequestTable,
) -> None:
    request = charge_request(table)
    tx = m.Transaction("tx-1", m.TransactionType.REFUND, "APPROVED", currency="EUR")
    with pytest.raises(TransactionOutcomeUnknownError, match="REFUND"):
        settle(request, final_response(request, tx))
    other = charge_request(RequestTable())
    tx = m.Transaction("tx-1", "PREAUTHORIZATION", "APPROVED", currency="EUR")
    assert settle(other, final_response(other, tx)).data.transaction is tx


def test_the_cross_checks_compare_only_what_both_sides_say(table: RequestTable) -> None:
    request = charge_request(table)
    tx = m.Transaction("tx-1", m.TransactionType.CHARGE, "APPROVED", currency="eur")
    assert settle(request, final_response(request, tx)).data.transaction is tx
    bare = charge_request(RequestTable())
    nothing = m.Transaction(status=m.TransactionStatus.APPROVED)  # no identifiers, no currency
    assert settle(bare, final_response(bare, nothing)).data.transaction is nothing
    # The amount may differ (a tip step, a currency conversion): not judged.
    tipped = m.Transaction("tx-1", "CHARGE", "APPROVED", amount=12, currency="EUR")
    third = charge_request(RequestTable())
    assert settle(third, final_response(third, tipped)).data.transaction is tipped


def test_received_is_the_message_re_encoded_when_the_reader_kept_no_raw_object(
    table: RequestTable,
) -> None:
    request = charge_request(table)
    answer = final_response(request, transaction("PENDING"), keep=False)
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        settle(request, answer)
    assert caught.value.received is not None
    assert caught.value.received["executeTransactionResponse"]["transaction"]["status"] == "PENDING"


def test_an_error_response_that_may_have_moved_money_keeps_what_was_received(
    table: RequestTable,
) -> None:
    request = charge_request(table)
    answer = response(request, status="ERROR", error="INTERNAL_ERROR", tx=transaction("APPROVED"))
    request.finish(response=answer, received={"kept": True})
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        settle(request, answer)
    assert caught.value.received == {"kept": True}


def test_a_response_without_a_transaction_keeps_what_was_received(table: RequestTable) -> None:
    request = charge_request(table)
    answer = response(request, data=m.ExecuteTransactionResponse())
    request.finish(response=answer, received={"kept": True})
    with pytest.raises(TransactionOutcomeUnknownError) as caught:
        settle(request, answer)
    assert caught.value.received == {"kept": True}


def test_an_error_object_without_type_is_an_unknown_error_type(table: RequestTable) -> None:
    request = register(table, kind=LOOKUP)
    error = m.ErrorDetails("")
    answer = m.Message(request.response_type, "t1", status="ERROR", error=error)
    with pytest.raises(ServerError) as caught:
        settle(request, answer)
    assert caught.value.error_type == "UNKNOWN"


def test_the_expected_currency_and_type_come_from_models_and_raw_dicts() -> None:
    from payprotocol._settle import expected_of

    parameters = m.TransactionParameters("CHARGE", 1, "EUR", True)
    assert expected_of(m.ExecuteTransactionRequest(parameters)) == ("EUR", "CHARGE")
    amend = m.AmendParameters(m.TransactionType.REFUND, "tx-1")
    assert expected_of(m.AmendTransactionRequest(amend)) == (None, "REFUND")
    raw = {"transactionParameters": {"currency": "USD", "type": 5}}
    assert expected_of(raw) == ("USD", None)
    assert expected_of(None) == (None, None) == expected_of({"transactionParameters": 1})


def test_a_copied_protocol_violation_keeps_its_attributes(table: RequestTable) -> None:
    request = register(table, kind=LOOKUP)
    request.sent = True
    violation = ProtocolViolationError("bad", raw={"a": 1}, broken_stream=True, payload=b"x")
    request.finish(failure=violation)
    copy = failure_for(request)
    assert isinstance(copy, ProtocolViolationError) and copy is not violation
    assert (copy.raw, copy.broken_stream, copy.payload) == ({"a": 1}, True, b"x")
