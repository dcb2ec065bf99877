"""Message builders shared by the tests: typed replies a scripted server sends
(``reply``, ``execute_update``, ``execute_final``, ``transaction``) and raw wire
dicts (``wire``) for what the typed models cannot express (wrong field types,
unknown message types); ``ws_frame``, a raw WebSocket frame as a server sends it."""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any, Dict, List, Optional

from payprotocol import models as m


def data_key(message_type: str) -> str:
    """The data object's key: ``EXECUTE_TRANSACTION_UPDATE`` -> ``executeTransactionUpdate``."""
    first, *rest = message_type.lower().split("_")
    return first + "".join(part.capitalize() for part in rest)


def wire(
    message_type: str, tag: Optional[str], data: Any = None, **envelope: Any
) -> Dict[str, Any]:
    """A raw message dict, its data under the key the naming rule gives."""
    message: Dict[str, Any] = {"type": message_type, "tag": tag, **envelope}
    if data is not None:
        message[data_key(message_type)] = data
    return message


def transaction(status: str = "APPROVED", amount: str = "10.00", **fields: Any) -> m.Transaction:
    return m.Transaction(
        transaction_identifier=fields.pop("transaction_identifier", "tx-1"),
        type="CHARGE",
        status=status,
        amount=Decimal(amount),
        currency="EUR",
        **fields,
    )


def reply(
    request: m.Message,
    data: Any = None,
    *,
    type: Optional[str] = None,
    status: str = "OK",
    error: Optional[m.ErrorDetails] = None,
) -> m.Message:
    """The response (or, with ``type``, an update/action) for ``request``."""
    message_type = type or request.type.replace("_REQUEST", "_RESPONSE")
    return m.Message(
        message_type,
        request.tag,
        request.resource,
        data,
        status=status if message_type.endswith("_RESPONSE") else None,
        error=error,
    )


def execute_update(
    request: m.Message,
    lines: List[str],
    abortable: bool = True,
    state: str = "WAITING_FOR_CARD_PRESENTATION",
) -> m.Message:
    data = m.ExecuteTransactionUpdate(lines, state=state, abortable=abortable)
    return reply(request, data, type="EXECUTE_TRANSACTION_UPDATE")


def execute_final(request: m.Message, outcome: str = "APPROVED", **reply_args: Any) -> m.Message:
    """The final EXECUTE_TRANSACTION_RESPONSE with a transaction whose status is ``outcome``."""
    return reply(request, m.ExecuteTransactionResponse(transaction(outcome)), **reply_args)


# --- reading raw messages (the simulator tests) ---------------------------------------------


def of_type(messages: List[Dict[str, Any]], message_type: str) -> List[Dict[str, Any]]:
    return [message for message in messages if message["type"] == message_type]


def updates(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [
        message["executeTransactionUpdate"]
        for message in of_type(messages, "EXECUTE_TRANSACTION_UPDATE")
    ]


def final_transaction(messages: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The transaction of a raw transaction's final, successful response."""
    response = messages[-1]
    assert response["type"] == "EXECUTE_TRANSACTION_RESPONSE", response
    assert response["status"] == "OK", response
    transaction: Dict[str, Any] = response["executeTransactionResponse"]["transaction"]
    return transaction


def ws_frame(
    payload: bytes, opcode: int = 0x1, *, fin: bool = True, length: Optional[int] = None
) -> bytes:
    """A server's WebSocket frame (unmasked, RFC 6455 5.2); ``length`` announces
    a size other than the payload's."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack(">H", size)
    else:
        head += bytes([127]) + struct.pack(">Q", size)
    return head + payload
