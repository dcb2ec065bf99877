"""Every JSON example of the wire contract decodes and re-encodes unchanged
(issue 9, deliverable 5), read from ``data/p3-contract-examples.md``: the
contract's ```json blocks, copied verbatim.

A block may hold several JSON values one after the other. A value with a P3
message ``type`` is decoded as a message; the others are data objects, or the
transaction and receipt objects of section 4, decoded as their model (listed
below in contract order, so that a new or removed example shows). The
placeholders are filled with the contract's own examples: the envelope's
``{"...": "..."}`` with the 3.2 request data, the update's transaction
snapshot with the section 4 transaction, ``RECEIPT`` with the receipt. All of
it must decode on the strict path: no WARNING.
"""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from payprotocol import decode_message, encode_message
from payprotocol import models as m
from payprotocol.codec import MESSAGE_TYPES, data_key, dumps, from_wire, to_wire

pytestmark = pytest.mark.unit

EXAMPLES_FILE = Path(__file__).parent / "data" / "p3-contract-examples.md"
_BLOCK = re.compile(r"^```json\n(.*?)^```", re.DOTALL | re.MULTILINE)
_DECODER = json.JSONDecoder(parse_float=Decimal)

# The values without a message type, in contract order.
DATA_OBJECTS: List[type] = [
    m.ExecuteTransactionRequest,  # 3.2 request data
    m.ExecuteTransactionUpdate,  # 3.2 update data
    *[m.ExecuteTransactionAction] * 4,  # 3.2 the four actions
    m.Transaction,  # 4
    m.Receipt,  # 4, RECEIPT
]


def _values(block: str) -> List[str]:
    """The JSON texts one block holds, one after the other."""
    texts, index = [], 0
    while True:
        while index < len(block) and block[index].isspace():
            index += 1
        if index == len(block):
            return texts
        start = index
        depth, in_string, escaped = 0, False, False
        for index in range(start, len(block)):
            char = block[index]
            if in_string:
                escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
            elif char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    break
        index += 1
        texts.append(block[start:index])


def _examples() -> List[str]:
    text = EXAMPLES_FILE.read_text(encoding="utf-8")
    return [value for block in _BLOCK.findall(text) for value in _values(block)]


def _is_message(value: Dict[str, Any]) -> bool:
    kind = value.get("type")
    return isinstance(kind, str) and kind.endswith(("_REQUEST", "_RESPONSE", "_UPDATE", "_ACTION"))


def _filled() -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(messages, data objects), placeholders filled."""
    texts = _examples()
    receipt_text = next(text for text in texts if text.lstrip().startswith('{"data"'))
    texts = [text.replace("RECEIPT", receipt_text) if '"RECEIPT_TYPE"' not in text else text
             for text in texts]  # fmt: skip
    values = [_DECODER.decode(text) for text in texts]
    messages = [value for value in values if _is_message(value)]
    objects = [value for value in values if not _is_message(value)]
    request_data, transaction = objects[0], objects[DATA_OBJECTS.index(m.Transaction)]
    for message in messages:
        if message.get("executeTransactionRequest") == {"...": "..."}:
            message["executeTransactionRequest"] = request_data
    update = objects[1]
    assert set(update["transaction"]) == {"..."}
    update["transaction"] = transaction
    return messages, objects


def _json(data: bytes) -> Any:
    return json.loads(data, parse_float=Decimal)


def test_the_examples_file_holds_every_example() -> None:
    messages, objects = _filled()
    assert [message["type"] for message in messages] == [
        "EXECUTE_TRANSACTION_REQUEST",  # 2, the envelope
        "LOGIN_MERCHANT_REQUEST",
        "LOGIN_MERCHANT_RESPONSE",
        "EXECUTE_TRANSACTION_REQUEST",  # the vendor's offline example
        "EXECUTE_TRANSACTION_REQUEST",  # the vendor's tip-adjustable example
        "AMEND_TRANSACTION_REQUEST",
    ]
    assert len(objects) == len(DATA_OBJECTS)
    assert "..." not in json.dumps(messages + objects, default=str)


@pytest.mark.parametrize("index", range(6))
def test_every_message_example_decodes_and_re_encodes_unchanged(
    index: int, caplog: pytest.LogCaptureFixture
) -> None:
    wire = _filled()[0][index]
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        message = decode_message(dumps(wire).encode("utf-8"))
    assert type(message) is m.Message and caplog.records == []  # typed, strict path
    assert _json(encode_message(message)) == _json(dumps(wire).encode("utf-8"))


@pytest.mark.parametrize("index", range(len(DATA_OBJECTS)))
def test_every_object_example_decodes_and_re_encodes_unchanged(
    index: int, caplog: pytest.LogCaptureFixture
) -> None:
    value = _filled()[1][index]
    model = DATA_OBJECTS[index]
    decoded = from_wire(value, model)  # strict: raises if anything does not fit
    assert _json(dumps(to_wire(decoded)).encode()) == value
    # Inside a message of its type, through the codec, too.
    message_type = {v: k for k, v in MESSAGE_TYPES.items()}.get(model)
    if message_type is not None:
        wire = {"type": message_type, "tag": "t-1", "resource": "devices/counter1"}
        wire[data_key(message_type)] = value
        with caplog.at_level(logging.WARNING, logger="payprotocol"):
            message = decode_message(dumps(wire))
        assert caplog.records == []
        assert _json(encode_message(message)) == _json(dumps(wire).encode())


def test_the_vendor_request_examples_read_as_auto_capture_and_online() -> None:
    vendor = _filled()[0][3:5]
    for wire in vendor:
        request = decode_message(dumps(wire)).data
        assert isinstance(request, m.ExecuteTransactionRequest)
        # Absent on the wire, and kept absent (re-encoded unchanged, above); it
        # reads as autoCapture true (3.2), as the simulator takes it.
        assert request.transaction_parameters.auto_capture is None
    assert decode_message(dumps(vendor[0])).data.mode == m.Mode.OFFLINE
    assert decode_message(dumps(vendor[1])).data.mode is None  # reads as ONLINE
    assert decode_message(dumps(vendor[1])).data.transaction_parameters.tip_adjustable is True


def test_the_transaction_models_its_receipt_flags() -> None:
    transaction = from_wire(
        {"status": "APPROVED", "tipLineRequired": True, "signatureLineRequired": False},
        m.Transaction,
    )
    assert (transaction.tip_line_required, transaction.signature_line_required) == (True, False)
    assert transaction.extra_fields == {}
    assert to_wire(m.Transaction(tip_line_required=False)) == {"tipLineRequired": False}


def vendor_request_examples() -> List[Dict[str, Any]]:
    """The vendor's offline and tip-adjustable request examples (3.2), verbatim
    (also sent to the simulator by tests/simulator/test_vendor_examples.py)."""
    return _filled()[0][3:5]
