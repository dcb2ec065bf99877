"""What each message from the server does: the routing table's verdict, carried out.

Strategy: :meth:`RequestTable.route` decides (pure); :class:`Inbound` acts on
the reader thread, quickly and without user code. A completion finishes its
request (and, for a transaction, queues the barrier its caller waits on
before returning); updates and actions re-arm the sliding timeout and go to
the dispatcher; a response nobody waits for any more goes to
``on_late_result``, the log at WARNING and the journal (architecture rule 7).
An action with no handler at all is answered with an abort, decided on the
dispatcher when it is its turn (a handler may have been registered since).

Under a flood the jobs carry the dispatcher's queue policy (see
:mod:`._dispatch`): a request's updates coalesce to the latest, late-result
notifications may be dropped (counted), while actions, barriers and the
journal write of a late result are never dropped (journal writes of one tag
coalesce to the latest). The WARNINGs of one kind (late result, message for
no waiting request, unexpected type passed to on_update) are rate-limited,
with a count of what was suppressed.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable, Dict, Iterator, List, Optional

import attrs

from . import models as m
from ._dispatch import Dispatcher, Job, Subscribers
from ._ratelimit import RateLimitedLog
from ._recorder import NullRecorder
from ._requests import PendingRequest, RequestTable, Route, transaction_of
from ._settle import server_error
from .codec import raw_message, redacted_text
from .errors import PayProtocolError, ProtocolViolationError

__all__ = ["ActionCallback", "Inbound", "LateResultCallback", "UpdateCallback"]

logger = logging.getLogger("payprotocol")

UpdateCallback = Callable[[Any], None]
ActionCallback = Callable[[m.ExecuteTransactionAction], None]
LateResultCallback = Callable[[m.Message], None]

# The envelope's tag as JSON text: a best-effort scan of an unreadable message.
_TAG = re.compile(r'"tag"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _tags_in(payload: bytes) -> Iterator[str]:
    """Every string that a ``"tag": "..."`` in the payload's text names."""
    text = bytes(payload).decode("utf-8", errors="replace")
    for found in _TAG.finditer(text):
        try:
            tag = json.loads(f'"{found.group(1)}"')
        except ValueError:
            continue
        if isinstance(tag, str):
            yield tag


def _action_of(message: m.Message) -> m.ExecuteTransactionAction:
    """A typed action from an ``EXECUTE_TRANSACTION_ACTION`` whose data could
    not be typed at all (the codec types every data object it can): its
    ``action`` when that is a string (else ``None``, as the codec reads an
    unreadable one), everything else kept under its wire key in
    ``extra_fields``."""
    data = message.data if isinstance(message.data, dict) else {}
    action = data.get("action")
    extras = {key: value for key, value in data.items() if key != "action"}
    if not isinstance(action, str):
        if "action" in data:
            extras["action"] = action
        action = None
    return m.ExecuteTransactionAction(
        action=action, extra_fields=extras, tag=message.tag, resource=message.resource
    )


@attrs.define
class Inbound:
    """Carries out the routing of server messages (runs on the reader thread)."""

    table: RequestTable
    dispatcher: Dispatcher
    recorder: NullRecorder
    update_callbacks: Subscribers[UpdateCallback]
    action_callbacks: Subscribers[ActionCallback]
    late_callbacks: Subscribers[LateResultCallback]
    #: ``abort_transaction(resource)``, for actions nobody handles.
    abort: Callable[[str], None]
    #: The rate limit of the WARNINGs of one kind (injectable clock in tests).
    warnings: RateLimitedLog = attrs.field(factory=lambda: RateLimitedLog(logger))

    def message(self, message: m.Message, raw: Optional[Dict[str, Any]] = None) -> None:
        """One decoded message from the server; ``raw`` is its JSON object as
        received (kept with the outcome of the request it ends)."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("<- %s tag=%s status=%s", message.type, message.tag, message.status)
        route, request = self.table.route(message)
        self._carry_out(route, request, message, raw)

    def _carry_out(
        self,
        route: Route,
        request: Optional[PendingRequest],
        message: m.Message,
        raw: Optional[Dict[str, Any]],
    ) -> None:
        if route is Route.COMPLETE:
            assert request is not None
            if message.tag is None:
                logger.warning(
                    "%s without a tag: completes the one waiting %s (tag %s)",
                    message.type,
                    request.request_type,
                    request.tag,
                )
            if request.is_transaction:
                # The caller returns after the updates queued before this response
                # reached their callbacks (bounded: a stuck callback cannot hold it).
                request.callbacks_done = self.dispatcher.barrier()
            if not request.finish(response=message, received=raw):  # a timeout won the race
                self.late(message)
        elif route is Route.ERROR:
            assert request is not None
            error = server_error(message)
            logger.error(
                "%s with status ERROR for tag %s (a %s): it ends that request: %s",
                message.type,
                message.tag,
                request.request_type,
                error,
            )
            if not request.finish(failure=error, received=raw):
                self.late(message)
        elif route is Route.LATE:
            self.late(message)
        elif route is Route.IGNORE:
            suppressed = self.warnings.allow("ignored")
            if suppressed is not None:
                self.warnings.write(
                    suppressed,
                    "%s for tag %s which no request waits for; ignored: %s",
                    message.type,
                    message.tag,
                    redacted_text(message),
                )
        else:
            assert request is not None
            request.touch()  # progress re-arms the sliding timeout
            if route is Route.ACTION:
                action = message.data
                if not isinstance(action, m.ExecuteTransactionAction):
                    action = _action_of(message)
                self._action(request, action)
            else:
                self._update(request, message)

    def misfit(self, violation: ProtocolViolationError, raw: Dict[str, Any]) -> None:
        """A JSON message whose fields do not fit the contract. The connection is
        fine; a response fails only its own request (a transaction's with what
        was received kept), an action still reaches ``on_action`` (or the
        automatic abort) as a typed model, anything else goes on whole as a raw
        message (an update for its request, or a late result)."""
        message = raw_message(raw)
        logger.error(
            "%s (tag %s) does not fit the contract: %s", message.type, message.tag, violation
        )
        route, request = self.table.route_misfit(message)
        if route is Route.FAIL:
            assert request is not None
            if not request.finish(failure=violation, received=raw):
                self.late(message)
        else:
            self._carry_out(route, request, message, raw)

    def unreadable(self, payload: bytes, violation: ProtocolViolationError) -> None:
        """A message that is not UTF-8, not JSON or not a JSON object: skipped,
        the connection stays up (6.4). Logged by its length and problem only,
        never its content. When a best-effort scan of its text finds the tag of
        a waiting request, that request ends now (a transaction as outcome
        unknown, with this error as its cause) instead of at its timeout."""
        request = None
        for tag in _tags_in(payload):
            request = self.table.get(tag)
            if request is not None:
                break
        logger.error(
            "skipped an unreadable message of %d bytes (%s)%s",
            len(payload),
            violation,
            "" if request is None else f"; it ends {request.request_type} tag {request.tag}",
        )
        if request is not None:
            request.finish(
                failure=ProtocolViolationError(
                    f"an unreadable message with the tag of this {request.request_type} "
                    f"arrived ({len(payload)} bytes: {violation})",
                    payload=bytes(payload),
                )
            )

    def late(self, message: m.Message) -> None:
        suppressed = self.warnings.allow("late")
        if suppressed is not None:
            self.warnings.write(
                suppressed,
                "late or duplicate %s for tag %s (nobody waits for it): %s",
                message.type,
                message.tag,
                redacted_text(message),
            )
        transaction = transaction_of(message)
        if message.tag and transaction is not None:
            # A late answer to a journaled transaction settles its unknown outcome:
            # never dropped, still written at close (the latest one per tag).
            tag = message.tag
            self.dispatcher.put(
                Job(
                    lambda: self.recorder.late(tag, transaction),
                    coalesce=("journal", tag),
                    essential=True,
                )
            )
        callbacks = self.late_callbacks.snapshot()
        if callbacks:
            # A notification: refused (counted) when the callback queue is full.
            self.dispatcher.put(Job(lambda: self._deliver_late(callbacks, message), droppable=True))

    def _deliver_late(self, callbacks: List[LateResultCallback], message: m.Message) -> None:
        for callback in callbacks:
            self.dispatcher.run_callback(callback, message)

    def _update(self, request: PendingRequest, message: m.Message) -> None:
        if not message.type.endswith(("_UPDATE", "_ACTION")):
            self.warnings.warning(
                "unexpected-update",
                "%s for tag %s of a %s: passed to on_update",
                message.type,
                message.tag,
                request.request_type,
            )
        # Typed updates go on as their data; anything else (unknown types, other
        # responses) whole, as its data alone says too little.
        is_update = message.type.endswith("_UPDATE") and not isinstance(message, m.RawMessage)
        update = message.data if is_update else message
        # Coalesced to the latest per request when the callback queue is long.
        self.dispatcher.put(
            Job(lambda: self._deliver_update(request, update), coalesce=("update", request))
        )

    def _action(self, request: PendingRequest, action: m.ExecuteTransactionAction) -> None:
        self.dispatcher.put(lambda: self._deliver_action(request, action))

    def _deliver_update(self, request: PendingRequest, update: Any) -> None:
        for callback in (request.on_update, *self.update_callbacks.snapshot()):
            if callback is not None:
                self.dispatcher.run_callback(callback, update)

    def _deliver_action(self, request: PendingRequest, action: m.ExecuteTransactionAction) -> None:
        callbacks = [request.on_action] if request.on_action is not None else []
        callbacks += self.action_callbacks.snapshot()
        for callback in callbacks:
            self.dispatcher.run_callback(callback, action)
        if not callbacks:  # decided here, not when it arrived: a handler may have come
            logger.warning(
                "%s action for tag %s but no on_action handler is registered: aborting the "
                "transaction on %s",
                action.action,
                request.tag,
                request.resource,
            )
            self._abort_unhandled(request)

    def _abort_unhandled(self, request: PendingRequest) -> None:
        if request.resource is None:
            return
        try:
            self.abort(request.resource)
        except PayProtocolError as exc:
            # Still waiting, not silently: the server ends the step (its action
            # timeout) or the sliding timeout makes the outcome unknown.
            logger.error(
                "could not abort the transaction on %s (%s): it waits for the server to end "
                "it; register on_action to answer actions",
                request.resource,
                exc,
            )
