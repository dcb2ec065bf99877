"""The callback side: subscriber lists and the dispatcher thread that runs them.

Strategy (architecture rules 2 and 4, after kazoo's ``handlers/threading``):
the reader never runs user code. It puts small jobs on the dispatcher's
queue; one thread (``payprotocol-dispatcher``) runs them in arrival order, so
a slow callback delays other callbacks but never a response or a keepalive.
A callback that raises is logged with its traceback and passed to the error
hook; the dispatcher outlives any one job.

:meth:`Dispatcher.barrier` queues a marker behind everything queued so far:
``charge()`` waits on it (bounded) so that it returns after the updates that
came before its final response reached their callbacks.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Generic, List, Optional, TypeVar

__all__ = ["Dispatcher", "ErrorHook", "Subscribers"]

logger = logging.getLogger("payprotocol")

ErrorHook = Callable[[BaseException, Any], None]
C = TypeVar("C", bound=Callable[..., Any])
Job = Callable[[], None]


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


class Dispatcher:
    """Runs user callbacks on one thread of its own, in arrival order."""

    def __init__(self, on_callback_error: Optional[ErrorHook] = None) -> None:
        self._on_callback_error = on_callback_error
        self._jobs: queue.SimpleQueue[Optional[Job]] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

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

    def on_dispatcher_thread(self) -> bool:
        """Whether the caller is a callback (its progress cannot need callbacks)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def put(self, job: Job) -> None:
        self._jobs.put(job)

    def call(self, callback: Callable[[Any], None], argument: Any) -> None:
        """Queue ``callback(argument)``, contained like every callback."""
        self._jobs.put(lambda: self.run_callback(callback, argument))

    def barrier(self) -> threading.Event:
        """An event set once everything queued before it has run."""
        done = threading.Event()
        self._jobs.put(done.set)
        return done

    def run_callback(self, callback: Callable[[Any], None], argument: Any) -> None:
        """Run one user callback on this thread; an exception is logged and
        passed to the error hook, never raised (rule 4)."""
        try:
            callback(argument)
        except Exception as exc:
            logger.exception("callback %r raised; continuing", callback)
            if self._on_callback_error is not None:
                try:
                    self._on_callback_error(exc, argument)
                except Exception:
                    logger.exception("on_callback_error hook raised")

    def stop(self, join_timeout: float) -> None:
        """Run what is queued, then end the thread; never joins itself."""
        self._jobs.put(None)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(join_timeout)
            if thread.is_alive():
                logger.warning("a callback is still running %.0f s after close()", join_timeout)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # the dispatcher must outlive any one job
                logger.exception("callback dispatcher job failed")
