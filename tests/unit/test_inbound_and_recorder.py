"""What server messages do (Inbound) and what the journal side records,
without sockets: a dispatcher that runs its jobs when the test says so, and a
journal that remembers its calls."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, Callable, List, Optional, Tuple

import pytest

from payprotocol import models as m
from payprotocol._dispatch import Subscribers
from payprotocol._inbound import Inbound
from payprotocol._recorder import JournalRecorder, NullRecorder, open_recorder, recover
from payprotocol._requests import PendingRequest, RequestTable
from payprotocol.errors import (
    ConnectionLostError,
    ProtocolViolationError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from payprotocol.journal import JournalError, PendingOutcome

pytestmark = pytest.mark.unit


class StepDispatcher:
    """The dispatcher's interface; jobs run only in :meth:`run_all`."""

    def __init__(self) -> None:
        self.jobs: List[Callable[[], None]] = []

    def put(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def call(self, callback: Callable[[Any], None], argument: Any) -> None:
        self.jobs.append(lambda: callback(argument))

    def run_callback(self, callback: Callable[[Any], None], argument: Any) -> None:
        callback(argument)

    def barrier(self) -> Any:
        import threading

        done = threading.Event()
        self.jobs.append(done.set)
        return done

    def run_all(self) -> None:
        while self.jobs:
            self.jobs.pop(0)()


class Calls:
    """Records every call made on it, by method name."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: List[Tuple[str, tuple, dict]] = []
        self.fail = fail

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if self.fail:
                raise JournalError("disk full")
            return None

        return record


def tx(status: Optional[str] = "APPROVED") -> m.Transaction:
    return m.Transaction("tx-1", "CHARGE", status, amount=10, currency="EUR")


class World:
    def __init__(self, on_update: Any = None, on_action: Any = None) -> None:
        self.table = RequestTable()
        self.dispatcher = StepDispatcher()
        self.recorder = Calls()
        self.updates: Subscribers[Any] = Subscribers()
        self.actions: Subscribers[Any] = Subscribers()
        self.lates: Subscribers[Any] = Subscribers()
        self.aborted: List[str] = []
        self.inbound = Inbound(
            self.table,
            self.dispatcher,  # type: ignore[arg-type]
            self.recorder,  # type: ignore[arg-type]
            self.updates,
            self.actions,
            self.lates,
            abort=self.aborted.append,
        )
        self.request = self.table.new_request(
            "t1",
            "EXECUTE_TRANSACTION_REQUEST",
            resource="devices/r1",
            custom_identifier="order-1",
            on_update=on_update,
            on_action=on_action,
        )
        self.table.register(self.request)


def final(status: str = "APPROVED", tag: str = "t1") -> m.Message:
    return m.Message(
        "EXECUTE_TRANSACTION_RESPONSE",
        tag,
        "devices/r1",
        m.ExecuteTransactionResponse(tx(status)),
        "OK",
    )


def test_a_final_response_completes_its_request_behind_a_callback_barrier() -> None:
    world = World()
    world.inbound.message(final())
    request = world.request
    assert request.done and request.response is not None
    assert request.callbacks_done is not None and not request.callbacks_done.is_set()
    world.dispatcher.run_all()
    assert request.callbacks_done.is_set()


def test_a_response_after_the_timeout_is_late_journaled_and_reported() -> None:
    world = World()
    seen: List[m.Message] = []
    world.lates.add(seen.append)
    world.request.finish(failure=ConnectionLostError("timed out"))
    late = final("APPROVED")
    world.inbound.message(late)
    world.dispatcher.run_all()
    assert seen == [late]
    assert world.recorder.calls == [("late", ("t1", tx("APPROVED")), {})]


def test_updates_re_arm_the_timeout_and_reach_per_call_then_client_wide_callbacks() -> None:
    order: List[Tuple[str, Any]] = []
    world = World(on_update=lambda u: order.append(("call", u)))
    world.updates.add(lambda u: order.append(("client", u)))
    world.request.last_activity = 0.0
    update = m.ExecuteTransactionUpdate(["INSERT CARD"])
    world.inbound.message(m.Message("EXECUTE_TRANSACTION_UPDATE", "t1", data=update))
    unknown = m.RawMessage("EXECUTE_TRANSACTION_WHATEVER", "t1", data={"x": 1})
    world.inbound.message(unknown)
    assert world.request.last_activity > 0.0
    world.dispatcher.run_all()
    assert order == [("call", update), ("client", update), ("call", unknown), ("client", unknown)]


def test_an_action_nobody_handles_is_aborted_one_with_a_handler_is_not() -> None:
    world = World()
    action = m.Message(
        "EXECUTE_TRANSACTION_ACTION", "t1", data=m.ExecuteTransactionAction("SIGNATURE")
    )
    world.inbound.message(action)
    world.dispatcher.run_all()
    assert world.aborted == ["devices/r1"]

    answered: List[Any] = []
    handled = World(on_action=answered.append)
    handled.inbound.message(action)
    handled.dispatcher.run_all()
    assert handled.aborted == [] and answered == [action.data]


def test_a_response_that_does_not_fit_fails_only_its_request() -> None:
    world = World()
    violation = ProtocolViolationError("bad field")
    raw = {"type": "EXECUTE_TRANSACTION_RESPONSE", "tag": "t1", "executeTransactionResponse": 5}
    world.inbound.misfit(violation, raw)
    assert world.request.failure is violation


def test_a_message_for_nobody_is_ignored_without_callbacks() -> None:
    world = World()
    world.inbound.message(
        m.Message("EXECUTE_TRANSACTION_UPDATE", "nobody", data=m.ExecuteTransactionUpdate())
    )
    assert world.dispatcher.jobs == [] and not world.request.done


# --- the recorder -----------------------------------------------------------------


def request(kind: str = "EXECUTE_TRANSACTION_REQUEST") -> PendingRequest:
    return RequestTable().new_request("t1", kind, resource="devices/r1", custom_identifier="c-1")


def test_without_a_journal_the_journal_calls_say_what_to_pass() -> None:
    recorder = open_recorder(None)
    assert type(recorder) is NullRecorder
    with pytest.raises(RuntimeError, match=r"journal='pos-journal\.sqlite'"):
        recorder.journal()


def test_the_recorder_writes_each_fact_of_a_transaction() -> None:
    journal = Calls()
    recorder = JournalRecorder(journal, owned=False)  # type: ignore[arg-type]
    req = request()
    recorder.sent(req, {"transactionParameters": {}})
    recorder.not_sent(req, ConnectionLostError("down"))
    recorder.settled(req, final("DECLINED"))
    refusal = ServerError(
        "DEVICE_BUSY", "busy", None, m.Message("EXECUTE_TRANSACTION_RESPONSE", "t1")
    )
    recorder.refused(req, refusal)
    unknown = TransactionOutcomeUnknownError("?", tag="t1", resource=None, custom_identifier="c-1")
    unknown.__cause__ = ConnectionLostError("link dropped")
    recorder.unknown(req, unknown)
    names = [(name, kwargs.get("status")) for name, _, kwargs in journal.calls]
    assert names == [
        ("register_owner", None),  # the client's owner id, alive until close()
        ("record_sent", None),
        ("record_outcome", "NOT_SENT"),
        ("record_outcome", "DECLINED"),
        ("record_outcome", "ERROR"),
        ("mark_unknown", None),
    ]
    assert journal.calls[-1][1] == ("t1", "link dropped", None)


def test_plain_requests_are_never_journaled() -> None:
    journal = Calls()
    recorder = JournalRecorder(journal, owned=False)  # type: ignore[arg-type]
    lookup = request("GET_TRANSACTION_REQUEST")
    recorder.sent(lookup, None)
    recorder.settled(
        lookup, m.Message("GET_TRANSACTION_RESPONSE", "t1", data=m.GetTransactionResponse(tx()))
    )
    assert [c[0] for c in journal.calls] == ["register_owner"]


def test_a_failing_write_before_the_send_raises_later_ones_are_logged() -> None:
    journal = Calls()
    recorder = JournalRecorder(journal, owned=False)  # type: ignore[arg-type]
    journal.fail = True
    with pytest.raises(JournalError):
        recorder.sent(request(), {})
    recorder.settled(request(), final())  # logged, never masks the caller's result


def test_only_a_journal_the_client_opened_is_closed_with_it() -> None:
    mine, theirs = Calls(), Calls()
    mine.register_owner = lambda: "owner-1"  # type: ignore[attr-defined]
    JournalRecorder(mine, owned=True).close()  # type: ignore[arg-type]
    JournalRecorder(theirs, owned=False).close()  # type: ignore[arg-type]
    assert [c[0] for c in mine.calls] == ["release_owner", "close"]
    assert [c[0] for c in theirs.calls] == ["register_owner"]


# --- recover ----------------------------------------------------------------------


def pending(
    tag: str, custom: Optional[str], amount: str = "10", owner: Optional[str] = "dead", **asked: Any
) -> PendingOutcome:
    parameters = {
        "transactionParameters": {"type": "CHARGE", "amount": Decimal(amount), **asked}
    }
    sent = datetime.datetime.now(datetime.timezone.utc)
    return PendingOutcome(
        tag, "EXECUTE_TRANSACTION_REQUEST", "devices/r1", custom, parameters, sent, None,
        owner=owner,
    )  # fmt: skip


class PendingJournal(Calls):
    """A journal with these pending entries; owners named "alive..." are alive."""

    def __init__(self, entries: List[PendingOutcome]) -> None:
        super().__init__()
        self.entries = entries
        self.batches: List[List[Tuple[str, Any, str]]] = []

    def pending(self) -> List[PendingOutcome]:
        return self.entries

    def owner_alive(self, owner: Optional[str]) -> bool:
        return owner is not None and owner.startswith("alive")

    def record_lookups(self, outcomes: List[Tuple[str, Any, str]]) -> List[str]:
        self.batches.append(list(outcomes))
        return [
            "settled" if status in ("APPROVED", "NOT_FOUND") else "pending"
            for _, _, status in outcomes
        ]


def approved_tx(**changes: Any) -> m.Transaction:
    fields: dict = dict(
        transaction_identifier="tx", type="CHARGE", status="APPROVED", amount=Decimal("10"),
        currency="EUR", custom_identifier=None,
    )  # fmt: skip
    fields.update(changes)
    return m.Transaction(**fields)


def test_recover_records_found_not_found_and_skips_what_it_must() -> None:
    journal = PendingJournal(
        [
            pending("found", "c-found"),
            pending("absent", "c-absent"),
            pending("flying", "c-flying", owner="me"),  # this client waits for it
            pending("mine", "c-mine", owner="me"),  # this client's, no longer waited for
            pending("theirs", "c-theirs", owner="alive-other-client"),
            pending("other", "c-other", amount="99"),
            pending("nameless", None),
        ]
    )

    def look_up(custom_identifier: str) -> m.Transaction:
        if custom_identifier == "c-absent":
            raise ServerError("TRANSACTION_NOT_FOUND", "none")
        return approved_tx()

    results = recover(journal, look_up, in_flight=lambda tag: tag == "flying", owner="me")  # type: ignore[arg-type]
    by_tag = {r.pending.tag: (r.result, r.transaction is not None, r.resolved) for r in results}
    assert by_tag == {
        "found": ("found", True, True),
        "absent": ("not_found", False, True),
        "flying": ("in_flight", False, False),
        "mine": ("found", True, True),
        "theirs": ("in_flight", False, False),  # another live client: never settled from here
        "other": ("mismatch", False, False),  # amount 10 is not the 99 asked for
        "nameless": ("error", False, False),
    }
    [batch] = journal.batches  # one transaction for every outcome
    assert {tag: status for tag, _, status in batch} == {
        "found": "APPROVED",
        "absent": "NOT_FOUND",
        "mine": "APPROVED",
    }


@pytest.mark.parametrize(
    "failure",
    [
        ServerError("INTERNAL_ERROR", "boom"),
        ServerError("NOT_LOGGED_IN", "log in first"),
        RequestTimeoutError("no answer"),
        ConnectionLostError("down"),
        ProtocolViolationError("GET_TRANSACTION_RESPONSE holds no transaction"),
    ],
)
def test_one_failing_lookup_never_stops_the_others(failure: Exception) -> None:
    journal = PendingJournal([pending("odd", "c-odd"), pending("fine", "c-fine")])

    def look_up(custom_identifier: str) -> m.Transaction:
        if custom_identifier == "c-odd":
            raise failure
        return approved_tx()

    results = recover(journal, look_up, in_flight=lambda tag: False)  # type: ignore[arg-type]
    assert [(r.pending.tag, r.result, r.resolved) for r in results] == [
        ("odd", "error", False),
        ("fine", "found", True),
    ]
    assert results[0].error is failure
    assert [[tag for tag, _, _ in batch] for batch in journal.batches] == [["fine"]]


@pytest.mark.parametrize(
    ("found", "asked"),
    [
        (approved_tx(custom_identifier="someone-else"), {}),
        (approved_tx(currency="USD"), {"currency": "EUR"}),
        (approved_tx(type="REFUND"), {}),
        (approved_tx(amount=Decimal("10.01")), {}),
    ],
)
def test_a_transaction_that_is_not_the_requests_is_a_mismatch(
    found: m.Transaction, asked: Any
) -> None:
    journal = PendingJournal([pending("one", "c-1", **asked)])
    [result] = recover(journal, lambda c: found, in_flight=lambda tag: False)  # type: ignore[arg-type]
    assert (result.result, result.resolved) == ("mismatch", False)
    assert journal.batches == [[]]


def test_the_amount_may_differ_after_a_tip_or_total_step() -> None:
    entry = pending("one", "c-1")
    entry.parameters["processParameters"] = {"steps": {"askForTip": {"maxTipAmount": 5}}}
    journal = PendingJournal([entry])
    [result] = recover(
        journal,  # type: ignore[arg-type]
        lambda c: approved_tx(amount=Decimal("12.00"), custom_identifier="c-1"),
        in_flight=lambda tag: False,
    )
    assert (result.result, result.resolved) == ("found", True)


def test_a_non_final_lookup_stays_pending() -> None:
    journal = PendingJournal([pending("one", "c-1")])
    [result] = recover(
        journal,  # type: ignore[arg-type]
        lambda c: m.Transaction("tx", "CHARGE", "PENDING", amount=Decimal("10")),
        in_flight=lambda tag: False,
    )
    assert (result.result, result.resolved) == ("still_pending", False)
