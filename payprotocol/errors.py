"""Exceptions raised by payprotocol.

Every exception derives from :class:`PayProtocolError`. What each one means for
the money is the important part:

* :class:`ServerError`: the PayServer answered with ``status: "ERROR"``. The
  request was refused; nothing was charged by *this* request.
* :class:`ConnectionLostError` / :class:`RequestTimeoutError`: a plain request
  (login, lookup, action answer, abort) did not get its answer. Safe to retry.
* :class:`TransactionOutcomeUnknownError`: a transaction (execute or amend) was
  sent but its final response can no longer be awaited. The card **may** have
  been charged. Do not charge again: look the transaction up by its custom
  identifier (``GET_TRANSACTION_REQUEST``).
* :class:`ProtocolViolationError`: a peer broke the wire rules. Either one
  message could not be read (its request failed, the connection stays up) or
  the stream itself is broken (the connection was closed):
  ``broken_stream`` tells which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:
    from .models import Message

__all__ = [
    "CallbackDeadlockError",
    "ConnectionLostError",
    "PayProtocolError",
    "ProtocolViolationError",
    "RequestTimeoutError",
    "ServerError",
    "TransactionOutcomeUnknownError",
]


class PayProtocolError(Exception):
    """Base class of every error payprotocol raises."""


class ProtocolViolationError(PayProtocolError):
    """A peer broke the P3 wire rules; ``broken_stream`` says which kind
    (p3-protocol.md 6.4):

    * ``broken_stream`` is ``False``: **one message** could not be read (not
      UTF-8, not JSON, not a JSON object, or its envelope does not fit). It was
      skipped and the connection stays up; only the request whose tag it
      carried ended with this error (a transaction as
      :class:`TransactionOutcomeUnknownError`, with this error as its cause).
    * ``broken_stream`` is ``True``: **the stream itself** is broken (a frame
      length of 0 or above the size cap, a WebSocket protocol error). The
      connection was closed and every request in flight ended.

    ``raw`` holds the decoded JSON object when the message was valid JSON (so
    its ``tag`` can still be read), else ``None``. ``payload`` holds the bytes
    of an unreadable message as received (kept, never logged), else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        raw: Optional[Dict[str, Any]] = None,
        broken_stream: bool = False,
        payload: Optional[bytes] = None,
    ) -> None:
        super().__init__(message)
        self.raw = raw
        self.broken_stream = broken_stream
        self.payload = payload


class ServerError(PayProtocolError):
    """The PayServer answered a request with ``status: "ERROR"`` (P3 error object)."""

    def __init__(
        self,
        error_type: str,
        message: str,
        developer_message: Optional[str] = None,
        response: Optional[Message] = None,
    ) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.developer_message = developer_message
        self.response = response


class ConnectionLostError(PayProtocolError):
    """The connection ended (or never came up) before the answer arrived.

    For anything but a transaction this is safe to retry once connected again.
    """


class RequestTimeoutError(PayProtocolError):
    """A plain request got no response within its timeout. Safe to retry."""


class TransactionOutcomeUnknownError(PayProtocolError):
    """An execute or amend request left the process, but its final response
    can no longer be awaited (connection lost, timeout, protocol violation).

    The payment may have gone through. Never retry blindly: look it up with
    ``get_transaction(custom_identifier=...)``.

    ``received`` is the final response as received (its JSON object, nothing
    dropped) when one arrived but could not be trusted (its transaction status
    missing, unreadable or not final; its ``customIdentifier`` or ``currency``
    not the request's; an ``ERROR`` whose transaction may have moved money; a
    message of the request's tag whose fields could not be read), else
    ``None`` (nothing arrived, or nothing that was a JSON object).
    """

    def __init__(
        self,
        message: str,
        *,
        tag: str,
        resource: Optional[str],
        custom_identifier: Optional[str],
        received: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.tag = tag
        self.resource = resource
        self.custom_identifier = custom_identifier
        self.received = received


class CallbackDeadlockError(PayProtocolError, RuntimeError):
    """A call made from a callback would wait for callbacks that cannot run
    (for example starting a transaction from ``on_update``). Nothing was sent."""
