"""The dispatcher on its own (issue 11): plain functions, no sockets, and
``threading.Event`` barriers instead of sleeps. A ``gate`` job holds the
dispatcher thread busy so the test can fill the queue behind it."""

from __future__ import annotations

import logging
import threading
from typing import Any, Iterator, List, Tuple

import pytest

from payprotocol._dispatch import Dispatcher, Job

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

WAIT = 10.0  # an upper bound for an event that is expected to happen


@pytest.fixture
def errors() -> List[Tuple[BaseException, Any]]:
    return []


@pytest.fixture
def dispatcher(errors: List[Tuple[BaseException, Any]]) -> Iterator[Dispatcher]:
    d = Dispatcher(lambda exc, arg: errors.append((exc, arg)), max_pending=10, coalesce_above=3)
    d.start()
    yield d
    d.stop(WAIT)


def hold(dispatcher: Dispatcher) -> threading.Event:
    """Occupy the dispatcher thread until the returned event is set."""
    running, gate = threading.Event(), threading.Event()

    def job() -> None:
        running.set()
        gate.wait(WAIT)

    dispatcher.put(job)
    assert running.wait(WAIT)
    return gate


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_a_callback_raising_a_base_exception_is_contained(
    dispatcher: Dispatcher,
    errors: List[Tuple[BaseException, Any]],
    raised: BaseException,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad(argument: Any) -> None:
        raise raised

    later = threading.Event()
    with caplog.at_level(logging.ERROR, logger="payprotocol"):
        dispatcher.call(bad, "arg")
        dispatcher.call(lambda _: later.set(), None)
        assert later.wait(WAIT), "the dispatcher died: no later callback ran"
    assert dispatcher.thread is not None and dispatcher.thread.is_alive()
    assert errors == [(raised, "arg")]
    [record] = [r for r in caplog.records if "raised; continuing" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[1] is raised


def test_a_base_exception_from_run_callback_inside_a_job_is_contained(
    dispatcher: Dispatcher, errors: List[Tuple[BaseException, Any]]
) -> None:
    def bad(argument: Any) -> None:
        raise SystemExit(1)

    dispatcher.put(lambda: dispatcher.run_callback(bad, 1))
    assert dispatcher.barrier().wait(WAIT)
    assert dispatcher.thread is not None and dispatcher.thread.is_alive()
    assert isinstance(errors[0][0], SystemExit)


def test_updates_of_one_request_coalesce_to_the_latest_when_the_queue_is_long(
    dispatcher: Dispatcher,
) -> None:
    seen: List[Any] = []
    gate = hold(dispatcher)
    for i in range(3):  # reach coalesce_above with work that must all run
        dispatcher.put(lambda i=i: seen.append(("keep", i)))
    for i in range(1000):
        dispatcher.put(Job(lambda i=i: seen.append(("a", i)), coalesce="a"))
        dispatcher.put(Job(lambda i=i: seen.append(("b", i)), coalesce="b"))
    assert dispatcher.pending == 5  # 3 + one slot per request, not 2,003
    done = dispatcher.barrier()
    gate.set()
    assert done.wait(WAIT)
    assert seen == [("keep", 0), ("keep", 1), ("keep", 2), ("a", 999), ("b", 999)]
    assert dispatcher.coalesced == 1998


def test_updates_are_not_coalesced_while_the_queue_is_short(dispatcher: Dispatcher) -> None:
    seen: List[int] = []
    gate = hold(dispatcher)
    dispatcher.put(Job(lambda: seen.append(1), coalesce="a"))
    dispatcher.put(Job(lambda: seen.append(2), coalesce="a"))
    done = dispatcher.barrier()
    gate.set()
    assert done.wait(WAIT)
    assert seen == [1, 2]


def test_droppable_jobs_beyond_the_bound_are_dropped_with_a_counted_warning(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    seen: List[int] = []
    gate = hold(dispatcher)
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        for i in range(50_000):  # never blocks the caller (the reader thread)
            dispatcher.put(Job(lambda i=i: seen.append(i), droppable=True))
    assert dispatcher.pending == 10
    assert dispatcher.dropped == 50_000 - 10
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1  # rate-limited: one line, not 49,990
    done = dispatcher.barrier()
    gate.set()
    assert done.wait(WAIT)
    assert seen == list(range(10))


def test_actions_barriers_and_states_are_never_dropped_by_the_bound(
    dispatcher: Dispatcher,
) -> None:
    seen: List[int] = []
    gate = hold(dispatcher)
    for _ in range(10):
        dispatcher.put(Job(lambda: None, droppable=True))
    barriers = []
    for i in range(100):
        dispatcher.put(lambda i=i: seen.append(i))  # an action
        dispatcher.call(seen.append, 1000 + i)  # a state change
        barriers.append(dispatcher.barrier())
    gate.set()
    assert all(b.wait(WAIT) for b in barriers)
    expected: List[int] = []
    for i in range(100):
        expected += [i, 1000 + i]
    assert seen == expected


def test_close_discards_the_queue_and_no_callback_starts_after_it_returns(
    errors: List[Tuple[BaseException, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    d = Dispatcher(max_pending=10_000)
    d.start()
    started: List[int] = []
    gate = hold(d)
    for i in range(297):
        d.put(Job(lambda i=i: started.append(i), coalesce=("update", i)))
        d.put(lambda i=i: started.append(i))
    barrier = d.barrier()
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        d.stop(0.05)  # the held callback overruns the bounded join
    assert barrier.is_set()  # a waiting charge() is not left hanging
    assert any("594 queued callbacks were discarded" in r.getMessage() for r in caplog.records)
    assert d.thread is not None and d.thread.is_alive()  # still in the held callback
    gate.set()  # the running callback may finish...
    d.thread.join(WAIT)
    assert not d.thread.is_alive()
    assert started == []  # ...but nothing queued ever started
    d.put(lambda: started.append(-1))  # after close: discarded, not queued
    assert started == [] and d.pending == 0


def test_close_still_runs_state_changes_and_ends_the_thread(dispatcher: Dispatcher) -> None:
    seen: List[Any] = []
    gate = hold(dispatcher)
    dispatcher.put(Job(lambda: seen.append("update"), coalesce="a"))
    dispatcher.put(Job(lambda: seen.append("late"), droppable=True))
    dispatcher.call(seen.append, "CLOSED")
    dispatcher.put(Job(lambda: seen.append("journal"), essential=True))
    stopper = threading.Thread(target=dispatcher.stop, args=(WAIT,))
    stopper.start()
    while dispatcher.pending != 2:  # stop() has discarded; it now joins
        pass
    gate.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert dispatcher.thread is not None and not dispatcher.thread.is_alive()
    assert seen == ["CLOSED", "journal"]


def test_stop_from_a_callback_does_not_join_itself(dispatcher: Dispatcher) -> None:
    seen: List[str] = []
    done = threading.Event()

    def closing(_: Any) -> None:
        dispatcher.stop(WAIT)
        seen.append("stopped")

    dispatcher.call(closing, None)
    dispatcher.call(lambda _: done.set(), None)  # essential: runs after that callback
    assert done.wait(WAIT)
    assert dispatcher.thread is not None
    dispatcher.thread.join(WAIT)
    assert not dispatcher.thread.is_alive()
    assert seen == ["stopped"]
