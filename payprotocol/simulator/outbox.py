"""What the simulated PayServer's logic hands to the connection layer.

Strategy: the engine and its transaction runs never touch bytes. They produce
:class:`~payprotocol.models.Message` objects and give them to an
:class:`Outbox`, together with the :class:`TransactionContext` of the execute
or amend they belong to, which is all the connection layer needs to apply the
per-transaction faults. A request that must be refused raises
:class:`Refusal`; the session turns it into an ``ERROR`` response built by
:func:`error_message`.
"""

from __future__ import annotations

from typing import Optional, Union

import attrs

from ..models import ErrorDetails, Message, RawMessage, Status
from ..naming import response_type

__all__ = ["Outbox", "Refusal", "TransactionContext", "error_message"]


@attrs.define
class TransactionContext:
    """Identifies the messages of one execute or amend, for per-transaction
    faults. ``sent`` counts the messages the connection wrote for it."""

    tag: str
    resource: Optional[str]
    kind: str  # "EXECUTE" or "AMEND"
    sent: int = 0
    latest_abortable: bool = False


class Outbox:
    """Where a session's messages go. The connection layer subclasses it."""

    closed: bool = False

    def send(
        self,
        message: Message,
        *,
        transaction: Optional[TransactionContext] = None,
        final: bool = False,
    ) -> None:
        """Queue one message; ``final`` marks a transaction's final response."""
        raise NotImplementedError

    def close(self) -> None:
        """End the connection."""
        raise NotImplementedError

    def send_raw(self, payload: Union[str, bytes], *, delay: float = 0.0) -> None:
        """Queue one payload exactly as given, after ``delay`` seconds (a replay)."""
        raise NotImplementedError

    def drop_after_queued(self, *, delay: float = 0.0) -> None:
        """Hang up once what is queued is written (a replayed server-side close)."""
        raise NotImplementedError


class Refusal(Exception):
    """A request is refused with a P3 error type (sent as an ERROR response)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def error_message(
    request_type: str, tag: Optional[str], resource: Optional[str], error_type: str, text: str
) -> Message:
    """An ``ERROR`` response with the P3 error object and no data object."""
    return RawMessage(
        response_type(request_type),
        tag,
        resource,
        None,
        Status.ERROR,
        ErrorDetails(type=error_type, message=text, developer_message=f"simulator: {text}"),
    )
