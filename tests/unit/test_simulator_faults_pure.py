"""The simulator's fault mutations as pure functions (payprotocol.simulator.faults):
a wire dict and a FaultPlan in, what to send out. No sockets, no threads."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict

import pytest

from payprotocol.codec import dumps
from payprotocol.framing import FrameDecoder
from payprotocol.simulator.faults import (
    MALFORMED_KINDS,
    FaultPlan,
    Malformed,
    Outgoing,
    injections,
    malformed_frame,
    malformed_ws_message,
    outgoing,
    send_delay,
    with_faults,
    with_unknown_enums,
    with_unknown_fields,
)
from payprotocol.simulator.outbox import TransactionContext

pytestmark = pytest.mark.unit


def _response(transaction: bool = True) -> Dict[str, Any]:
    data: Dict[str, Any] = {"transaction": {"transactionIdentifier": "t-1", "amount": 10}}
    if not transaction:
        data = {}
    return {
        "type": "EXECUTE_TRANSACTION_RESPONSE",
        "tag": "tag-1",
        "resource": "/devices/1",
        "status": "OK",
        "executeTransactionResponse": data,
    }


def _login() -> Dict[str, Any]:
    return {
        "type": "LOGIN_MERCHANT_RESPONSE",
        "tag": "login",
        "status": "OK",
        "loginMerchantResponse": {
            "devices": [{"resource": "/devices/1", "comlink": "USB"}, {"resource": "/devices/2"}]
        },
    }


def _update() -> Dict[str, Any]:
    return {
        "type": "EXECUTE_TRANSACTION_UPDATE",
        "tag": "tag-1",
        "resource": "/devices/1",
        "status": "OK",
        "executeTransactionUpdate": {"state": "PROCESSING"},
    }


# --- wire mutations ---------------------------------------------------------------


def test_unknown_fields_at_every_level_without_touching_the_input() -> None:
    wire = _response()
    before = copy.deepcopy(wire)
    out = with_unknown_fields(wire)
    assert wire == before
    assert out["simulatorTrace"] == {"unknownEnvelopeField": True}
    data = out["executeTransactionResponse"]
    assert data["futureDataField"] == "kept by tolerant clients"
    assert data["transaction"]["futureTransactionField"] == {"nested": [1, 2]}
    assert data["transaction"]["transactionIdentifier"] == "t-1"
    # the envelope keeps its order; the new key comes last
    assert list(out)[:-1] == list(wire) and list(out)[-1] == "simulatorTrace"


def test_unknown_fields_without_a_transaction_or_data_object() -> None:
    out = with_unknown_fields(_response(transaction=False))
    assert out["executeTransactionResponse"] == {"futureDataField": "kept by tolerant clients"}
    error = {"type": "GET_TRANSACTION_RESPONSE", "tag": "x", "status": "ERROR"}
    assert with_unknown_fields(error) == {**error, "simulatorTrace": {"unknownEnvelopeField": True}}


def test_unknown_enums_rewrite_login_comlinks_only() -> None:
    wire = _login()
    before = copy.deepcopy(wire)
    out = with_unknown_enums(wire)
    assert wire == before
    devices = out["loginMerchantResponse"]["devices"]
    assert [d["comlink"] for d in devices] == ["NFC_BRIDGE", "NFC_BRIDGE"]
    assert [d["resource"] for d in devices] == ["/devices/1", "/devices/2"]
    assert with_unknown_enums(_response()) == _response()
    failed = {"type": "LOGIN_MERCHANT_RESPONSE", "tag": "x", "status": "ERROR"}
    assert with_unknown_enums(failed) == failed


def test_with_faults_applies_only_what_the_plan_says() -> None:
    assert with_faults(FaultPlan(), _login()) == _login()
    both = with_faults(FaultPlan(unknown_fields=True, unknown_enums=True), _login())
    assert "simulatorTrace" in both
    assert both["loginMerchantResponse"]["futureDataField"] == "kept by tolerant clients"
    assert both["loginMerchantResponse"]["devices"][0]["comlink"] == "NFC_BRIDGE"


# --- delays -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_type", "final", "expected"),
    [
        ("EXECUTE_TRANSACTION_RESPONSE", True, 2.0),
        ("AMEND_TRANSACTION_RESPONSE", True, 2.0),
        ("GET_TRANSACTION_RESPONSE", False, 0.5),
        ("LOGIN_MERCHANT_RESPONSE", False, 0.5),
        ("EXECUTE_TRANSACTION_UPDATE", False, 0.0),
        ("EXECUTE_TRANSACTION_ACTION", False, 0.0),
    ],
)
def test_send_delay(message_type: str, final: bool, expected: float) -> None:
    plan = FaultPlan(response_delay=0.5, late_response=2.0)
    assert send_delay(plan, message_type, final=final) == expected
    assert send_delay(FaultPlan(), message_type, final=final) == 0.0


# --- injections -----------------------------------------------------------------------


def test_no_injection_without_faults() -> None:
    assert injections(FaultPlan(), TransactionContext("t", "/devices/1", "EXECUTE")) == []


def test_injections_in_order_with_tag_resource_and_latest_abortable() -> None:
    plan = FaultPlan(malformed="not-object", unknown_enums=True, unknown_message_type=True)
    context = TransactionContext("t", "/devices/1", "EXECUTE", latest_abortable=True)
    malformed, update, notice = injections(plan, context)
    assert malformed == Malformed("not-object")
    assert isinstance(update, dict) and isinstance(notice, dict)
    assert update == {
        "type": "EXECUTE_TRANSACTION_UPDATE",
        "tag": "t",
        "resource": "/devices/1",
        "status": "OK",
        "executeTransactionUpdate": {
            "state": "WAITING_FOR_BIOMETRICS",
            "stateDetails": "WAITING_FOR_BIOMETRICS",
            "information": ["Checking", "biometrics"],
            "abortable": True,
        },
    }
    assert notice["type"] == "EXECUTE_TRANSACTION_NOTICE"
    assert notice["executeTransactionNotice"] == {
        "notice": "a message type this client does not know"
    }


def test_amend_injections_have_no_resource() -> None:
    plan = FaultPlan(unknown_message_type=True)
    (notice,) = injections(plan, TransactionContext("a", None, "AMEND"))
    assert isinstance(notice, dict)
    assert notice["type"] == "AMEND_TRANSACTION_NOTICE" and "resource" not in notice
    assert list(notice) == ["type", "tag", "status", "amendTransactionNotice"]


# --- outgoing: one message in, what to write out ----------------------------------


def test_outgoing_without_faults_is_the_message_itself() -> None:
    assert outgoing(FaultPlan(), _update()) == Outgoing((_update(),), 0.0, False)
    context = TransactionContext("tag-1", "/devices/1", "EXECUTE", sent=1)
    assert outgoing(FaultPlan(), _update(), transaction=context) == Outgoing((_update(),))


def test_outgoing_duplicates_only_a_final_response() -> None:
    plan = FaultPlan(duplicate_response=True, late_response=1.5)
    final = outgoing(plan, _response(), final=True)
    assert final.payloads == (_response(), _response()) and final.delay == 1.5
    assert outgoing(plan, _update()).payloads == (_update(),)


def test_outgoing_injects_after_a_transactions_first_message_only() -> None:
    plan = FaultPlan(malformed="huge-length", unknown_message_type=True)
    first = TransactionContext("tag-1", "/devices/1", "EXECUTE", sent=1)
    out = outgoing(plan, _update(), transaction=first)
    assert out.payloads[0] == _update()
    assert out.payloads[1] == Malformed("huge-length")
    assert isinstance(out.payloads[2], dict)
    assert out.payloads[2]["type"] == "EXECUTE_TRANSACTION_NOTICE"
    second = TransactionContext("tag-1", "/devices/1", "EXECUTE", sent=2)
    assert outgoing(plan, _update(), transaction=second).payloads == (_update(),)
    # a message outside any transaction (login, lookup) never carries injections
    assert outgoing(plan, _login()).payloads == (_login(),)


def test_outgoing_injections_are_not_decorated_but_the_message_is() -> None:
    plan = FaultPlan(unknown_fields=True, unknown_message_type=True)
    first = TransactionContext("tag-1", "/devices/1", "EXECUTE", sent=1)
    message, notice = outgoing(plan, _update(), transaction=first).payloads
    assert isinstance(message, dict) and "simulatorTrace" in message
    assert isinstance(notice, dict) and "simulatorTrace" not in notice


@pytest.mark.parametrize(("sent", "close"), [(1, False), (2, False), (3, True), (4, True)])
def test_outgoing_closes_once_drop_after_is_reached(sent: int, close: bool) -> None:
    plan = FaultPlan(drop_after=3)
    context = TransactionContext("tag-1", "/devices/1", "EXECUTE", sent=sent)
    assert outgoing(plan, _update(), transaction=context).close is close
    assert outgoing(plan, _login()).close is False  # only transaction messages count


def test_outgoing_does_not_change_its_inputs() -> None:
    plan = FaultPlan(unknown_fields=True, unknown_enums=True, duplicate_response=True, drop_after=1)
    wire = _response()
    before = copy.deepcopy(wire)
    context = TransactionContext("tag-1", "/devices/1", "EXECUTE", sent=1)
    outgoing(plan, wire, final=True, transaction=context)
    assert wire == before
    assert context == TransactionContext("tag-1", "/devices/1", "EXECUTE", sent=1)


def test_outgoing_payloads_serialise() -> None:
    plan = FaultPlan(unknown_fields=True, unknown_enums=True, unknown_message_type=True)
    context = TransactionContext("tag-1", "/devices/1", "EXECUTE", sent=1)
    for payload in outgoing(plan, _update(), transaction=context).payloads:
        assert isinstance(payload, dict)
        assert json.loads(dumps(payload)) == payload


# --- malformed payloads ------------------------------------------------------------


def test_malformed_frames() -> None:
    assert malformed_frame("huge-length") == b"\xff\xff\xff\xff"
    (body,) = FrameDecoder(1 << 20).feed(malformed_frame("invalid-utf8"))
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    (body,) = FrameDecoder(1 << 20).feed(malformed_frame("not-object"))
    assert json.loads(body) == [1, 2, 3]


def test_malformed_ws_messages() -> None:
    huge = malformed_ws_message("huge-length", 1000)
    assert isinstance(huge, str) and len(huge) == 1001
    assert json.loads(huge)["type"] == "EXECUTE_TRANSACTION_NOTICE"
    binary = malformed_ws_message("invalid-utf8", 1000)
    assert isinstance(binary, bytes)
    with pytest.raises(UnicodeDecodeError):
        binary.decode("utf-8")
    assert malformed_ws_message("not-object", 1000) == "[1, 2, 3]"


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_malformed_kind_has_bytes_on_both_transports(kind: str) -> None:
    assert malformed_frame(kind)
    assert malformed_ws_message(kind, 1 << 20)
