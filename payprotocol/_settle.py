"""The money rules: what a transaction's final response (or its absence)
means for the caller (p3-protocol.md 6.3). No I/O, no state of its own.

Strategy: pure functions of one :class:`~payprotocol._requests.PendingRequest`
and one message. :func:`settle` turns a final response into what the caller
gets: the response, a :class:`ServerError`, or
:class:`TransactionOutcomeUnknownError` when the response does not prove the
money's fate (money is judged, never guessed; the untrusted response is kept
as received); :func:`failure_for` does the same for a request that ended
without a response. :func:`expected_of` reads what a request asked for, and
:func:`contradiction` is the one cross-check of a transaction against it,
shared by settlement and by the journal's late-answer and recovery checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from . import models as m
from .codec import message_to_wire
from .errors import (
    ConnectionLostError,
    PayProtocolError,
    ProtocolViolationError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from .naming import data_key

if TYPE_CHECKING:
    from ._requests import PendingRequest

__all__ = [
    "contradiction",
    "expected_of",
    "failure_for",
    "outcome_unknown",
    "server_error",
    "settle",
]


def failure_for(request: PendingRequest) -> PayProtocolError:
    """The exception for a request that ended without a response.

    A transaction that was sent may have moved money: outcome unknown, with the
    failure as its cause. One connection failure ends many waits, so each gets
    its own exception object (a shared one would mix their tracebacks)."""
    failure = request.failure
    assert failure is not None
    if request.is_transaction and request.sent:
        return outcome_unknown(request, failure, received=request.received)
    if isinstance(failure, ProtocolViolationError):
        violation = ProtocolViolationError(
            str(failure),
            raw=failure.raw,
            broken_stream=failure.broken_stream,
            payload=failure.payload,
        )
        violation.__cause__ = failure.__cause__
        return violation
    if isinstance(failure, ConnectionLostError):
        copy = type(failure)(str(failure))
        copy.__cause__ = failure.__cause__
        return copy
    if isinstance(failure, PayProtocolError):
        return failure
    return ConnectionLostError(f"{request.request_type} failed: {failure!r}")


def server_error(response: m.Message) -> ServerError:
    """The :class:`ServerError` that an ``ERROR`` response stands for."""
    error = response.error
    error_type = getattr(error, "type", None)  # an error object without type is still an error
    return ServerError(
        "UNKNOWN" if error_type is None or error_type == "" else str(error_type),
        (error.message if error else None) or "the server reported an error",
        error.developer_message if error else None,
        response,
    )


def outcome_unknown(
    request: PendingRequest,
    cause: BaseException,
    *,
    received: Optional[Dict[str, Any]] = None,
) -> TransactionOutcomeUnknownError:
    """The money may have moved, and this request can no longer tell.
    ``received`` is the untrusted final response as received, if one came."""
    unknown = TransactionOutcomeUnknownError(
        f"{request.request_type} was sent but its outcome is unknown ({cause}); "
        f"look it up by custom identifier {request.custom_identifier!r} "
        "instead of charging again",
        tag=request.tag,
        resource=request.resource,
        custom_identifier=request.custom_identifier,
        received=received,
    )
    unknown.__cause__ = cause
    return unknown


def _received(request: PendingRequest, response: m.Message) -> Dict[str, Any]:
    """The response's JSON object as it arrived (re-encoded from the decoded
    message only when the reader did not keep it, as in unit tests)."""
    if request.received is not None and request.response is response:
        return request.received
    return message_to_wire(response)


def _unreadable_envelope_status(response: m.Message) -> bool:
    """Whether the envelope's ``status`` was sent but is neither ``OK`` nor
    ``ERROR`` (an unknown word, or a value the reader kept as a misfit); an
    absent status leaves the judgement to the transaction's."""
    if response.status is None:
        return response.extra_fields.get("status") is not None
    return str(response.status) not in ("OK", "ERROR")


def _untrusted(
    request: PendingRequest, response: m.Message, problem: str
) -> TransactionOutcomeUnknownError:
    return outcome_unknown(
        request,
        ProtocolViolationError(f"{response.type} (tag {response.tag}) {problem}"),
        received=_received(request, response),
    )


def _same_text(left: Any, right: Any) -> bool:
    return str(left).strip().upper() == str(right).strip().upper()


_KNOWN_TYPES = frozenset(str(kind) for kind in m.TransactionType)


def contradiction(
    found: m.Transaction,
    *,
    custom_identifier: Optional[str],
    currency: Any,
    transaction_type: Any,
) -> Optional[Tuple[str, Any, Any]]:
    """The first field, as ``(name, asked, found)``, in which ``found``
    contradicts what a request asked for, or ``None``. Only what both sides
    say readably is compared: the custom identifier exactly, the currency
    without regard to case, and the type when ``found``'s is one this version
    knows (an unknown type name is information, not a contradiction). The one
    rule for settlement, late answers and recovery."""
    custom = found.custom_identifier
    if custom_identifier is not None and custom is not None and custom != custom_identifier:
        return "custom identifier", custom_identifier, custom
    if (
        currency is not None
        and found.currency is not None
        and not _same_text(found.currency, currency)
    ):
        return "currency", currency, found.currency
    kind = found.type
    if (
        transaction_type is not None
        and str(kind) in _KNOWN_TYPES
        and not _same_text(kind, transaction_type)
    ):
        return "type", transaction_type, kind
    return None


def _mismatch(request: PendingRequest, transaction: m.Transaction) -> Optional[str]:
    """Why a final response's transaction is not this request's outcome, or
    ``None`` (see :func:`contradiction`). The amount is not compared: a tip
    or total step or a currency conversion may change it."""
    found = contradiction(
        transaction,
        custom_identifier=request.custom_identifier,
        currency=request.currency,
        transaction_type=request.transaction_type,
    )
    if found is None:
        return None
    name, wanted, got = found
    if name == "custom identifier":
        return f"is for custom identifier {got!r}, not this request's {wanted!r}"
    if name == "currency":
        return f"is in currency {got!r}, not this request's {wanted!r}"
    return f"is a {got}, not this request's {wanted}"


def _unreadable_transaction(response: m.Message) -> bool:
    """Whether the response carried a transaction (or its data object) that
    the tolerant reader could not read and kept as received instead."""
    kept = getattr(response.data, "extra_fields", None)
    if isinstance(kept, dict) and kept.get("transaction") is not None:
        return True
    return response.extra_fields.get(data_key(response.type)) is not None


def settle(request: PendingRequest, response: m.Message) -> m.Message:
    """Judge a final response: return it, or raise what it means for the money
    (p3-protocol.md 6.3: money is judged, never guessed).

    * a plain request: an ``ERROR`` response is a :class:`ServerError`;
    * a transaction (execute or amend) is judged by the transaction it holds:
      without one, an ``ERROR`` means the request was refused before any
      transaction existed (:class:`ServerError`), and an ``OK`` proves nothing
      (outcome unknown); one that was sent but could not be read (kept as
      received) is outcome unknown either way. With one whose custom identifier, currency or type
      contradicts the request's, it is not this request's outcome (outcome
      unknown). Otherwise an ``ERROR`` is a :class:`ServerError` only when the
      status says no money moved (``DECLINED``, ``ABORTED``, ``ERROR``), else
      the outcome is unknown; an ``OK`` is returned only when the status is
      final (``APPROVED``, ``ACCEPTED``, ``DECLINED``, ``ABORTED``,
      ``ERROR``): a missing, unreadable or non-final status (``PENDING``,
      ``INITIALIZED``, ``INCONCLUSIVE``, a value this version does not know)
      settles nothing, outcome unknown.

    Every outcome-unknown raised here carries the response as received
    (:attr:`TransactionOutcomeUnknownError.received`).
    """
    if not request.is_transaction:
        if response.is_error:
            raise server_error(response)
        return response
    transaction = getattr(response.data, "transaction", None)
    if not isinstance(transaction, m.Transaction):
        if _unreadable_transaction(response):
            # It was there but did not fit: its status is unreadable (6.3).
            raise _untrusted(request, response, "holds a transaction that could not be read")
        if response.is_error:
            raise server_error(response)
        raise _untrusted(request, response, "holds no transaction")
    mismatch = _mismatch(request, transaction)
    if mismatch is not None:
        raise _untrusted(request, response, mismatch)
    if _unreadable_envelope_status(response):
        raise _untrusted(request, response, "has an envelope status that is neither OK nor ERROR")
    if response.is_error:
        error = server_error(response)
        if str(transaction.status) not in m.FAILED_STATUSES:
            raise outcome_unknown(request, error, received=_received(request, response))
        raise error
    if not m.is_final_status(transaction.status):
        status = transaction.status
        problem = (
            "holds a transaction without a readable status"
            if status is None
            else f"holds a transaction whose status {str(status)!r} is not final"
        )
        raise _untrusted(request, response, problem)
    return response


def expected_of(data: Any) -> Tuple[Optional[str], Optional[str]]:
    """The currency and transaction type a transaction request's data object
    (a model or a raw wire dict) asks for; ``None`` for what it does not say."""
    if isinstance(data, (m.ExecuteTransactionRequest, m.AmendTransactionRequest)):
        parameters: Any = data.transaction_parameters
        kind = parameters.type
        return parameters.currency, None if kind is None else str(kind)
    if isinstance(data, dict):
        found = data.get("transactionParameters")
        if isinstance(found, dict):
            currency, kind = found.get("currency"), found.get("type")
            return (
                currency if isinstance(currency, str) else None,
                kind if isinstance(kind, str) else None,
            )
    return None, None
