"""The request table and pure routing: no sockets, no threads of its own.

Strategy: every request in flight is a :class:`PendingRequest` in one
:class:`RequestTable` keyed by its tag. Everything the client decides about a
message or an outcome is a pure function of the table and the message, so it
can be unit-tested with an injected clock and no I/O:

* :meth:`RequestTable.route` says what a received message is: the
  *completion* of a waiting request, an *update* or *action* of one, a
  foreign *error* that ends one, a *late* response nobody waits for any more,
  or something to *ignore* (the routing oddities of p3-protocol.md 6.5: a
  tagless response completes the one waiting request of its type);
  :meth:`RequestTable.route_misfit` does the same for a message whose fields do
  not fit the contract (it fails its own request, or goes on raw).
* :meth:`RequestTable.await_outcome` blocks on the request's own latch under a
  sliding deadline: each update or action re-arms the idle limit, under an
  absolute cap (architecture rule 6).
* the money rules (:func:`~payprotocol._settle.settle` and friends) live
  in :mod:`._settle`; :meth:`RequestTable.await_outcome` raises what
  :func:`~payprotocol._settle.failure_for` says for a request that ended
  without a response.

The per-request latch is one bare ``threading.Lock`` held until the outcome is
in: cheaper than ``threading.Event`` (no Condition, no second wake-up), and it
wakes exactly the one waiter (architecture rule 1).
"""

from __future__ import annotations

import enum
import functools
import itertools
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar

import attrs

from . import models as m
from ._settle import expected_of, failure_for
from .errors import ProtocolViolationError, RequestTimeoutError
from .naming import response_type

__all__ = [
    "TRANSACTION_TYPES",
    "Clock",
    "PendingRequest",
    "RequestTable",
    "Route",
    "TagSource",
    "custom_identifier_of",
    "data_of",
    "transaction_in",
    "transaction_of",
    "wait_limits",
    "with_custom_identifier",
]

#: Requests whose final response decides money: a lost response means "outcome unknown".
TRANSACTION_TYPES = frozenset({"EXECUTE_TRANSACTION_REQUEST", "AMEND_TRANSACTION_REQUEST"})

Clock = Callable[[], float]
T = TypeVar("T")
UpdateCallback = Callable[[Any], None]
ActionCallback = Callable[[m.ExecuteTransactionAction], None]


class TagSource:
    """Unique request tags: a random per-client prefix and a counter.

    P3 only asks tags to be unique per connection; the random prefix keeps them
    unique across clients and reconnects too (a journal may hold tags of many
    processes), and a counter costs a fraction of ``uuid4()`` per request."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"


@functools.lru_cache(maxsize=256)
def _response_type(request_type: str) -> str:
    return response_type(request_type)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


class PendingRequest:
    """One request in flight: its latch, its outcome, its callbacks and its clock.

    ``last_activity`` is re-armed by every update or action of the request (the
    sliding timeout); ``callbacks_done`` is set by the dispatcher once the
    callbacks queued before the final response ran. A plain slotted class: one
    is made per request, on the hot path."""

    __slots__ = (
        "_done",
        "_guard",
        "_ready",
        "callbacks_done",
        "clock",
        "created",
        "currency",
        "custom_identifier",
        "failure",
        "is_transaction",
        "last_activity",
        "on_action",
        "on_update",
        "received",
        "request_type",
        "resource",
        "response",
        "response_type",
        "sent",
        "tag",
        "transaction_type",
    )

    def __init__(
        self,
        tag: str,
        request_type: str,
        resource: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        clock: Clock = time.monotonic,
        *,
        currency: Optional[str] = None,
        transaction_type: Optional[str] = None,
    ) -> None:
        self.tag = tag
        self.request_type = request_type
        self.resource = resource
        self.custom_identifier = custom_identifier
        self.on_update = on_update
        self.on_action = on_action
        self.clock = clock
        #: What the request asked for, cross-checked against a transaction's
        #: final response (6.3); ``None`` when the request did not say.
        self.currency = currency
        self.transaction_type = transaction_type
        self.response: Optional[m.Message] = None
        #: The JSON object of the message that ended the request, as received.
        self.received: Optional[Dict[str, Any]] = None
        self.failure: Optional[BaseException] = None
        self.sent = False
        self.callbacks_done: Optional[threading.Event] = None
        self.created = self.last_activity = clock()
        self.is_transaction = request_type in TRANSACTION_TYPES
        #: The only message type that completes this request (P3 naming rule).
        self.response_type = _response_type(request_type)
        self._ready = _held_lock()
        self._guard = threading.Lock()
        self._done = False

    def __repr__(self) -> str:
        state = "done" if self._done else ("sent" if self.sent else "new")
        return f"<PendingRequest {self.request_type} tag={self.tag} {state}>"

    @property
    def done(self) -> bool:
        return self._done

    def touch(self) -> None:
        """Progress (an update or action): re-arm the sliding timeout."""
        self.last_activity = self.clock()

    def finish(
        self,
        response: Optional[m.Message] = None,
        failure: Optional[BaseException] = None,
        received: Optional[Dict[str, Any]] = None,
    ) -> bool:
        """Record the outcome once (atomically: a response and a timeout may
        race); False when the request already had one. ``received`` is the
        JSON object of the message that ended it, as it arrived."""
        with self._guard:
            if self._done:
                return False
            self.response, self.failure, self.received = response, failure, received
            self._done = True
        self._ready.release()
        return True

    def wait(self, timeout: float) -> bool:
        """Block until the outcome is in or ``timeout`` passes; True when it is in."""
        if self._done:
            return True
        if self._ready.acquire(timeout=max(timeout, 0.0)):
            self._ready.release()  # stays open for any later wait
            return True
        return self._done

    def deadline(self, idle: float, cap: float) -> float:
        """When this request times out unless progress re-arms it (clock time)."""
        return min(self.last_activity + idle, cap)


class Route(enum.Enum):
    """What a received message means for the request table."""

    COMPLETE = "complete"  # the final response of a waiting request
    FAIL = "fail"  # an unreadable final response: fails its request
    ERROR = "error"  # a foreign ERROR message with its tag: ends its request (6.5)
    UPDATE = "update"  # progress of a waiting request, for on_update
    ACTION = "action"  # the reader needs an answer, for on_action
    LATE = "late"  # a response nobody waits for (after a timeout, or twice)
    IGNORE = "ignore"  # not a response, and for no waiting request


class RequestTable:
    """The requests in flight by tag, under one lock, with an injectable clock."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._requests: Dict[str, PendingRequest] = {}

    def new_request(
        self,
        tag: str,
        request_type: str,
        *,
        resource: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        data: Any = None,
    ) -> PendingRequest:
        """A request on this table's clock (not yet registered). ``data`` is the
        request's data object: a transaction's currency and type are read from
        it for the cross-checks of its final response."""
        currency, transaction_type = expected_of(data)
        return PendingRequest(
            tag,
            request_type,
            resource,
            custom_identifier,
            on_update,
            on_action,
            self.clock,
            currency=currency,
            transaction_type=transaction_type,
        )

    def register(self, request: PendingRequest) -> None:
        """Register before the send (rule 1): a response can never come first."""
        with self._lock:
            if request.tag in self._requests:
                raise ValueError(f"tag {request.tag!r} is already in flight")
            self._requests[request.tag] = request

    def remove(self, request: PendingRequest) -> None:
        with self._lock:
            if self._requests.get(request.tag) is request:
                del self._requests[request.tag]

    def get(self, tag: Optional[str]) -> Optional[PendingRequest]:
        if tag is None:
            return None
        with self._lock:
            return self._requests.get(tag)

    def __contains__(self, tag: object) -> bool:
        with self._lock:
            return tag in self._requests

    def __len__(self) -> int:
        with self._lock:
            return len(self._requests)

    def fail_all(self, failure: BaseException) -> None:
        """End every wait at once (the connection's end, or close)."""
        with self._lock:
            requests = list(self._requests.values())
        for request in requests:
            request.finish(failure=failure)

    def route(self, message: m.Message) -> Tuple[Route, Optional[PendingRequest]]:
        """What ``message`` is, and for which waiting request. Pure: changes nothing.

        Only the response type that matches the request completes it; a
        foreign message with its tag and status ``ERROR`` (neither that
        response nor an update or action) ends it (:attr:`Route.ERROR`); any
        other foreign message with its tag is progress, passed to
        ``on_update``. A response for a request that already has its outcome
        is late. A response without a tag completes the one waiting request
        of its type when exactly one waits, else it is late (6.5)."""
        if message.tag is None:
            return self._route_tagless(message)
        request = self.get(message.tag)
        if request is None:
            if message.type.endswith("_RESPONSE"):
                return Route.LATE, None
            return Route.IGNORE, None
        if message.type == request.response_type:
            return (Route.LATE if request.done else Route.COMPLETE), request
        if message.type == "EXECUTE_TRANSACTION_ACTION" and isinstance(
            message.data, m.ExecuteTransactionAction
        ):
            return Route.ACTION, request
        if message.is_error and not message.type.endswith(("_UPDATE", "_ACTION")):
            return (Route.LATE if request.done else Route.ERROR), request
        return Route.UPDATE, request

    def _route_tagless(self, message: m.Message) -> Tuple[Route, Optional[PendingRequest]]:
        if not message.type.endswith("_RESPONSE"):
            return Route.IGNORE, None
        with self._lock:
            waiting = [
                request
                for request in self._requests.values()
                if request.response_type == message.type and not request.done
            ]
        if len(waiting) == 1:
            return Route.COMPLETE, waiting[0]
        return Route.LATE, None

    def route_misfit(self, message: m.RawMessage) -> Tuple[Route, Optional[PendingRequest]]:
        """Like :meth:`route` for a message whose fields do not fit the
        contract: it fails its own request when it is (or may be) that
        request's response (late if that request already has its outcome);
        an ``EXECUTE_TRANSACTION_ACTION`` of a waiting request is still an
        action (the transaction must not stall); anything else goes on whole,
        as a raw message."""
        request = self.get(message.tag)
        if request is not None:
            if message.type in (request.response_type, "UNKNOWN"):
                return (Route.LATE if request.done else Route.FAIL), request
            if message.type == "EXECUTE_TRANSACTION_ACTION":
                return Route.ACTION, request
        route, found = self.route(message)
        if route is Route.COMPLETE:  # a tagless response that does not fit
            return Route.FAIL, found
        return route, found

    def await_outcome(self, request: PendingRequest, idle: float, cap: float) -> m.Message:
        """Block until ``request`` has its response and return it, or raise what
        ended it (see :func:`failure_for`). ``idle`` is the silence limit that
        progress re-arms; ``cap`` the absolute clock time it never passes."""
        while True:
            if request.wait(request.deadline(idle, cap) - self.clock()):
                break
            now = self.clock()
            if now >= request.deadline(idle, cap):
                # Finish it so that a response racing in now counts as late.
                request.finish(failure=RequestTimeoutError(_timeout_text(request, now, idle, cap)))
                break
        if request.failure is not None:
            raise failure_for(request)
        assert request.response is not None
        return request.response


def _timeout_text(request: PendingRequest, now: float, idle: float, cap: float) -> str:
    if request.is_transaction and now >= cap:
        return f"{request.request_type} took longer than {cap - request.created:.1f} s"
    waited = now - request.created
    return f"no response to {request.request_type} within {idle:.1f} s (waited {waited:.1f} s)"


def wait_limits(
    request: PendingRequest,
    timeout: Optional[float],
    *,
    plain_timeout: float,
    transaction_timeout: float,
    transaction_max_duration: float,
) -> Tuple[float, float]:
    """The idle limit and the absolute cap (clock time) of a request's wait,
    which covers its send too. ``timeout`` (the caller's) replaces the default
    idle limit; a plain request's cap is its idle limit, a transaction's is
    ``transaction_max_duration`` after it started."""
    if request.is_transaction:
        idle = transaction_timeout if timeout is None else timeout
        return idle, request.created + transaction_max_duration
    idle = plain_timeout if timeout is None else timeout
    return idle, request.created + idle


def custom_identifier_of(data: Any) -> Optional[str]:
    """The custom identifier in a transaction request's data object (a model or
    a raw wire dict), if it has one."""
    if isinstance(data, (m.ExecuteTransactionRequest, m.AmendTransactionRequest)):
        return data.transaction_parameters.custom_identifier
    if isinstance(data, dict):
        parameters = data.get("transactionParameters")
        if isinstance(parameters, dict):
            found = parameters.get("customIdentifier")
            return found if isinstance(found, str) else None
    return None


def with_custom_identifier(request_type: str, data: Any) -> Tuple[Any, Optional[str]]:
    """An execute or amend request's data object with a custom identifier
    (a new one assigned when it has none, like ``charge()`` does), and that
    identifier. Other requests, and data without transaction parameters, are
    returned as they are. A raw dict is copied, never changed in place."""
    if request_type not in TRANSACTION_TYPES:
        return data, custom_identifier_of(data)
    if isinstance(data, (m.ExecuteTransactionRequest, m.AmendTransactionRequest)):
        if data.transaction_parameters.custom_identifier is None:
            assigned = attrs.evolve(data.transaction_parameters, custom_identifier=uuid.uuid4().hex)
            data = attrs.evolve(data, transaction_parameters=assigned)  # type: ignore[arg-type]
        return data, data.transaction_parameters.custom_identifier
    wire = data.get("transactionParameters") if isinstance(data, dict) else None
    if isinstance(wire, dict) and wire.get("customIdentifier") is None:
        data = {**data, "transactionParameters": {**wire, "customIdentifier": uuid.uuid4().hex}}
    return data, custom_identifier_of(data)


def data_of(response: m.Message, model: Type[T]) -> T:
    """The response's data object, which must be a ``model``."""
    if not isinstance(response.data, model):
        raise ProtocolViolationError(
            f"{response.type} carries {type(response.data).__name__}, expected {model.__name__}"
        )
    return response.data


def transaction_in(response: m.Message) -> m.Transaction:
    """The transaction a response must hold (a lookup's, or a settled one's)."""
    transaction = transaction_of(response)
    if transaction is None:
        raise ProtocolViolationError(f"{response.type} (tag {response.tag}) holds no transaction")
    return transaction


def transaction_of(response: Optional[m.Message]) -> Optional[m.Transaction]:
    """The transaction a response (or an error's response) holds, if any."""
    transaction = getattr(getattr(response, "data", None), "transaction", None)
    return transaction if isinstance(transaction, m.Transaction) else None
