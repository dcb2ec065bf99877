"""The callback side: subscriber lists and the dispatcher thread that runs them.

Strategy (architecture rules 2 and 4, after kazoo's ``handlers/threading``):
the reader never runs user code. It puts small jobs on the dispatcher's
queue; one thread (``payprotocol-dispatcher``) runs them in arrival order, so
a slow callback delays other callbacks but never a response or a keepalive.
A callback that raises anything at all (``SystemExit`` and other
``BaseException`` included: on this thread they can only come from user code)
is logged with its traceback and passed to the error hook; the dispatcher
outlives any one job.

The queue is bounded by a policy, not by blocking: :meth:`Dispatcher.put`
never blocks (the reader must go on reading, keepalives included). A
:class:`Job` says what may happen to it:

* ``coalesce`` (a key, e.g. one request's updates): once more than
  ``coalesce_above`` jobs are pending, a job whose key already has an
  undelivered job replaces that job's work in place instead of queueing
  another (the latest update wins, at the earlier one's place in the queue);
* ``droppable`` (late-result notifications): refused once ``max_pending`` jobs
  are pending, counted in a rate-limited WARNING;
* everything else (actions, the final-result barriers, connection-state
  changes, journal writes) is always queued: never dropped.

:meth:`Dispatcher.stop` (``close()``) discards what is still queued, except
the ``essential`` jobs (barriers, state changes, journal writes), which still
run; it logs how many were discarded and joins the thread, bounded. Once it has
returned, no further job starts (one already running may finish).

:meth:`Dispatcher.barrier` queues a marker behind everything queued so far:
``charge()`` waits on it (bounded) so that it returns after the updates that
came before its final response reached their callbacks.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable, Deque, Dict, Generic, Hashable, List, Optional, TypeVar

from ._ratelimit import RateLimitedLog

__all__ = ["Dispatcher", "ErrorHook", "Job", "Subscribers"]

logger = logging.getLogger("payprotocol")

ErrorHook = Callable[[BaseException, Any], None]
C = TypeVar("C", bound=Callable[..., Any])


class Subscribers(Generic[C]):
    """One list of client-wide callbacks; safe to change while it is read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: List[C] = []

    def add(self, callback: C) -> Callable[[], None]:
        """Subscribe ``callback``; returns the function that unsubscribes it."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def snapshot(self) -> List[C]:
        with self._lock:
            return list(self._callbacks)


class Job:
    """One unit of dispatcher work, with what the queue policy may do to it."""

    __slots__ = ("coalesce", "droppable", "essential", "on_discard", "run")

    def __init__(
        self,
        run: Callable[[], None],
        *,
        coalesce: Optional[Hashable] = None,
        droppable: bool = False,
        essential: bool = False,
        on_discard: Optional[Callable[[], None]] = None,
    ) -> None:
        self.run = run
        #: Jobs with the same key may be coalesced to the latest when the queue is long.
        self.coalesce = coalesce
        #: May be refused when the queue is full (a notification, nothing more).
        self.droppable = droppable
        #: Still runs when the dispatcher stops (not a request's user callback).
        self.essential = essential
        #: Called instead when the job is discarded (a barrier sets its event).
        self.on_discard = on_discard

    def __call__(self) -> None:
        self.run()


#: The bound: at most this many pending jobs before droppable ones are refused.
MAX_PENDING = 10_000
#: Above this many pending jobs, updates of one request coalesce to the latest.
COALESCE_ABOVE = 100


class Dispatcher:
    """Runs user callbacks on one thread of its own, in arrival order."""

    def __init__(
        self,
        on_callback_error: Optional[ErrorHook] = None,
        *,
        max_pending: int = MAX_PENDING,
        coalesce_above: int = COALESCE_ABOVE,
        warnings: Optional[RateLimitedLog] = None,
    ) -> None:
        self._on_callback_error = on_callback_error
        self._max_pending = max_pending
        self._coalesce_above = coalesce_above
        self._warnings = warnings if warnings is not None else RateLimitedLog(logger)
        self._jobs: Deque[Job] = collections.deque()
        self._latest: Dict[Hashable, Job] = {}  # coalesce key -> its undelivered job
        self._cond = threading.Condition(threading.Lock())
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        #: Counters, for tests and diagnostics.
        self.coalesced = 0
        self.dropped = 0

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="payprotocol-dispatcher", daemon=True
                )
                self._thread.start()

    @property
    def thread(self) -> Optional[threading.Thread]:
        return self._thread

    @property
    def pending(self) -> int:
        """How many jobs are queued (not counting one that is running)."""
        with self._cond:
            return len(self._jobs)

    def on_dispatcher_thread(self) -> bool:
        """Whether the caller is a callback (its progress cannot need callbacks)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def put(self, work: Callable[[], None]) -> None:
        """Queue ``work`` (a :class:`Job`, or a plain callable: never dropped)
        under the queue policy; never blocks."""
        job = work if isinstance(work, Job) else Job(work)
        with self._cond:
            if self._stopping:
                discarded = True
            else:
                discarded = False
                depth = len(self._jobs)
                key = job.coalesce
                if key is not None and depth >= self._coalesce_above:
                    queued = self._latest.get(key)
                    if queued is not None:
                        queued.run = job.run  # the latest wins, in the earlier one's place
                        self.coalesced += 1
                        return
                if job.droppable and depth >= self._max_pending:
                    self.dropped += 1
                    dropped = self.dropped
                else:
                    if key is not None:
                        self._latest[key] = job
                    self._jobs.append(job)
                    self._cond.notify()
                    return
        if discarded:
            if job.on_discard is not None:
                job.on_discard()
            return
        suppressed = self._warnings.allow("dispatcher-drop")
        if suppressed is not None:
            self._warnings.write(
                suppressed,
                "callback queue full (%d pending): a late-result notification was dropped "
                "(%d so far)",
                self._max_pending,
                dropped,
            )

    def call(self, callback: Callable[[Any], None], argument: Any) -> None:
        """Queue ``callback(argument)``, contained like every callback; never
        dropped, and still run when the dispatcher stops (connection states)."""
        self.put(Job(lambda: self.run_callback(callback, argument), essential=True))

    def barrier(self) -> threading.Event:
        """An event set once everything queued before it has run (or been discarded)."""
        done = threading.Event()
        self.put(Job(done.set, essential=True, on_discard=done.set))
        return done

    def run_callback(self, callback: Callable[[Any], None], argument: Any) -> None:
        """Run one user callback on this thread; whatever it raises (``SystemExit``
        and ``KeyboardInterrupt`` included) is logged and passed to the error
        hook, never raised (rule 4): the dispatcher must not die of user code."""
        try:
            callback(argument)
        except BaseException as exc:  # contained by design (rule 4)
            logger.error("callback %r raised; continuing", callback, exc_info=exc)
            if self._on_callback_error is not None:
                try:
                    self._on_callback_error(exc, argument)
                except BaseException as hook_exc:
                    logger.error("on_callback_error hook raised", exc_info=hook_exc)

    def stop(self, join_timeout: float) -> None:
        """Discard what is queued (essential jobs still run), then end the thread,
        joined for at most ``join_timeout`` s; never joins itself. After it
        returns, no job starts any more."""
        with self._cond:
            self._stopping = True
            kept: Deque[Job] = collections.deque()
            discarded: List[Job] = []
            for job in self._jobs:
                (kept if job.essential else discarded).append(job)
            self._jobs = kept
            self._latest.clear()
            self._cond.notify()
        for job in discarded:
            if job.on_discard is not None:
                job.on_discard()
        if discarded:
            logger.warning("close(): %d queued callbacks were discarded", len(discarded))
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            # Not started, or close() from a callback: the essential jobs run
            # after that callback returns, then the loop ends.
            return
        thread.join(join_timeout)
        with self._cond:
            # Whatever is left (a callback overran the join) never starts now.
            left = list(self._jobs)
            self._jobs.clear()
        for job in left:
            if job.on_discard is not None:
                job.on_discard()
        if thread.is_alive():
            logger.warning(
                "a callback is still running %.1f s after close(); %d queued jobs were "
                "discarded and no further callback will start",
                join_timeout,
                len(left),
            )

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    if self._stopping:
                        return
                    self._cond.wait()
                job = self._jobs.popleft()
                if job.coalesce is not None and self._latest.get(job.coalesce) is job:
                    del self._latest[job.coalesce]
            try:
                job()
            except BaseException:  # the dispatcher must outlive any one job
                logger.exception("callback dispatcher job failed")
