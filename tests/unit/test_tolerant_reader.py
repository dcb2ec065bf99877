"""The tolerant reader at codec level: p3-protocol.md 6.1 and 6.2, one example
(or a few) per rule. Each test here failed before the tolerant reader existed
(the whole message was a ProtocolViolationError, or the value was misread),
except the ones marked "guard": behaviour that already held and must survive
the change (a missing status stays None; requests stay strict; the timestamps
``...Z``, ``...z``, naive and ``+01:00``). The other ISO 8601 variants were
accepted before only on Python 3.11+ (``fromisoformat``), never on 3.9 and
3.10; epoch milliseconds never.
The same rules over real TCP and WebSocket connections live in tests/client.
"""

from __future__ import annotations

import datetime
import json
import logging
from decimal import Decimal
from typing import Any, Dict, List

import pytest

from payprotocol import (
    ActionType,
    ExecuteTransactionAction,
    ExecuteTransactionUpdate,
    Status,
    TransactionStatus,
    decode_message,
    encode_message,
)
from payprotocol import models as m
from payprotocol.codec import dumps

pytestmark = pytest.mark.unit

TAG = "t-42"


def _receipt(**changes: Any) -> Dict[str, Any]:
    """A receipt with every field (the encoder writes the non-None defaults)."""
    receipt: Dict[str, Any] = {
        "data": {"SUBJECT": {"key": "SUBJECT", "label": "Subject", "value": "Table 4"}},
        "merchantDetails": [{"key": "NAME", "label": "Merchant", "value": "Cafe"}],
        "paymentDetails": [],
        "clearingDetails": [],
        "tipLineRequired": False,
        "signatureLineRequired": True,
    }
    receipt.update(changes)
    return receipt


def _transaction(**changes: Any) -> Dict[str, Any]:
    transaction: Dict[str, Any] = {
        "transactionIdentifier": "9a1e",
        "type": "CHARGE",
        "status": "APPROVED",
        "statusDetails": {"code": "APPROVED", "description": "Transaction approved"},
        "amount": Decimal("10.00"),
        "currency": "EUR",
        "customIdentifier": "order4711",
        "captured": True,
        "created": "2026-11-29T12:00:00Z",
        "cardDetails": {"scheme": "VISA", "expiryMonth": 12, "expiryYear": 2030},
        "merchantReceipt": _receipt(),
    }
    transaction.update(changes)
    return {key: value for key, value in transaction.items() if value is not _ABSENT}


_ABSENT = object()


def _response(transaction: Any, **envelope: Any) -> Dict[str, Any]:
    wire = {"type": "EXECUTE_TRANSACTION_RESPONSE", "tag": TAG, "resource": "devices/r1"}
    wire.update({"status": "OK", **envelope})
    wire["executeTransactionResponse"] = {"transaction": transaction}
    return wire


def _decode(wire: Dict[str, Any]) -> m.Message:
    return decode_message(dumps(wire).encode("utf-8"))


def _same_json(message: m.Message, wire: Dict[str, Any]) -> bool:
    return json.loads(encode_message(message), parse_float=Decimal) == json.loads(
        dumps(wire), parse_float=Decimal
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- 6.2 first bullet: a misfit leaves its default, is kept, warned once --------------


@pytest.mark.parametrize(
    ("field", "value", "default"),
    [
        ("captured", "yes", None),  # a string where a boolean is expected
        ("created", "29/11/2026 12:00", None),  # another timestamp format
        ("statusDetails", "Transaction approved", None),  # a string where an object is
        ("metadata", ["clerk", "anna"], None),  # a list where an object is
        ("cardDetails", 7, None),
    ],
)
def test_a_misfit_field_defaults_is_kept_and_warned_once(
    caplog: pytest.LogCaptureFixture, field: str, value: Any, default: Any
) -> None:
    wire = _response(_transaction(**{field: value}))
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        message = _decode(wire)
    transaction = message.data.transaction
    attribute = {"statusDetails": "status_details", "cardDetails": "card_details"}.get(field, field)
    assert getattr(transaction, attribute) == default
    assert transaction.extra_fields == {field: value}  # as received, under its wire key
    # Everything else decoded as usual: the outcome above all.
    assert transaction.status is TransactionStatus.APPROVED
    assert transaction.amount == Decimal("10.00") and transaction.custom_identifier == "order4711"
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "EXECUTE_TRANSACTION_RESPONSE" in warnings[0] and TAG in warnings[0]
    assert f"executeTransactionResponse.transaction.{field}" in warnings[0]
    assert _same_json(message, wire)  # written back exactly as received


def test_an_object_where_a_list_is_expected_is_kept_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    groups = {"NAME": {"label": "Merchant", "value": "Cafe"}}  # no ReceiptLine: no "key"
    wire = _response(_transaction(merchantReceipt=_receipt(merchantDetails=groups)))
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        message = _decode(wire)
    decoded = message.data.transaction.merchant_receipt
    assert decoded.merchant_details == [] and decoded.signature_line_required is True
    assert decoded.extra_fields == {"merchantDetails": groups}
    (warning,) = _warnings(caplog)
    assert "transaction.merchantReceipt.merchantDetails" in warning
    assert _same_json(message, wire)


def test_a_misfit_deep_inside_a_list_costs_only_that_field() -> None:
    lines = [
        {"key": "NAME", "label": "Merchant", "value": "Cafe"},
        {"key": "CITY", "label": ["Wien"], "value": "1010 Wien"},
    ]
    wire = _response(_transaction(merchantReceipt=_receipt(merchantDetails=lines)))
    message = _decode(wire)
    details = message.data.transaction.merchant_receipt.merchant_details
    assert [line.key for line in details] == ["NAME", "CITY"]
    assert details[1].label is None and details[1].extra_fields == {"label": ["Wien"]}
    assert details[1].value == "1010 Wien"
    assert _same_json(message, wire)


@pytest.mark.parametrize("action", [_ABSENT, None, 7, ["SIGNATURE"]])
def test_an_action_without_a_readable_action_is_still_a_typed_action(
    caplog: pytest.LogCaptureFixture, action: Any
) -> None:
    data: Dict[str, Any] = {} if action is _ABSENT else {"action": action}
    wire = {"type": "EXECUTE_TRANSACTION_ACTION", "tag": TAG, "resource": "devices/r1"}
    wire["executeTransactionAction"] = data
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        message = _decode(wire)
    assert isinstance(message.data, ExecuteTransactionAction)
    assert message.data.action is None
    assert (message.data.tag, message.data.resource) == (TAG, "devices/r1")
    (warning,) = _warnings(caplog)
    assert "EXECUTE_TRANSACTION_ACTION" in warning and "executeTransactionAction.action" in warning
    assert _same_json(message, wire)


def test_a_data_object_that_is_no_object_still_gives_the_typed_model() -> None:
    wire = {"type": "EXECUTE_TRANSACTION_UPDATE", "tag": TAG, "executeTransactionUpdate": "hi"}
    message = _decode(wire)
    assert isinstance(message.data, ExecuteTransactionUpdate)
    assert message.data.information == [] and message.data.tag == TAG
    assert message.extra_fields == {"executeTransactionUpdate": "hi"}
    assert _same_json(message, wire)


@pytest.mark.parametrize(("name", "value"), [("tag", 17), ("resource", ["a"]), ("status", 1)])
def test_an_envelope_field_that_does_not_fit_is_kept(name: str, value: Any) -> None:
    wire = _response(_transaction(), **{name: value})
    message = _decode(wire)
    assert getattr(message, name) is None and message.extra_fields[name] == value
    assert message.data.transaction.status is TransactionStatus.APPROVED
    assert _same_json(message, wire)


def test_the_warning_never_shows_the_value(caplog: pytest.LogCaptureFixture) -> None:
    wire = _response(_transaction(cardholderName=None, cardDetails={"cardholderName": ["s3cr3t"]}))
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        _decode(wire)
    assert caplog.records and "s3cr3t" not in caplog.text
    assert "cardDetails.cardholderName" in caplog.text


# --- the transaction's status: missing or unreadable is None, never a final status -----


# (absent and null: guards; the other three failed the whole message before)
@pytest.mark.parametrize("status", [_ABSENT, None, 1, ["APPROVED"], {"code": "APPROVED"}])
def test_a_missing_or_unreadable_transaction_status_is_none(status: Any) -> None:
    wire = _response(_transaction(status=status))
    message = _decode(wire)
    transaction = message.data.transaction
    assert transaction.status is None and not m.is_final_status(transaction.status)
    if status is not _ABSENT:
        assert transaction.extra_fields == {"status": status}
    assert transaction.amount == Decimal("10.00")
    assert _same_json(message, wire)


# --- 6.2 second bullet: the unambiguous coercions -----------------------------------


@pytest.mark.parametrize(
    ("changes", "attribute", "expected"),
    [
        ({"captured": "true"}, "captured", True),
        ({"captured": "false"}, "captured", False),
        (
            {"cardDetails": {"expiryMonth": "07", "expiryYear": "2030"}},
            "card_details",
            m.CardDetails(expiry_month=7, expiry_year=2030),
        ),
    ],
)
def test_booleans_and_integers_as_strings_are_coerced(
    caplog: pytest.LogCaptureFixture, changes: Dict[str, Any], attribute: str, expected: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="payprotocol"):
        message = _decode(_response(_transaction(**changes)))
    assert getattr(message.data.transaction, attribute) == expected
    assert message.data.transaction.extra_fields == {}
    assert _warnings(caplog) == []  # a coercion is no misfit


UTC = datetime.timezone.utc
PLUS_1 = datetime.timezone(datetime.timedelta(hours=1))


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (1795953600000, datetime.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)),  # epoch ms
        (1795953600123, datetime.datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-29T12:00:00Z", datetime.datetime(2026, 11, 29, 12, tzinfo=UTC)),
        ("2026-11-29T12:00:00z", datetime.datetime(2026, 11, 29, 12, tzinfo=UTC)),
        ("2026-11-29T12:00:00", datetime.datetime(2026, 11, 29, 12, tzinfo=UTC)),
        ("2026-11-29T12:00:00.5Z", datetime.datetime(2026, 11, 29, 12, 0, 0, 500000, UTC)),
        ("2026-11-29T12:00:00.12Z", datetime.datetime(2026, 11, 29, 12, 0, 0, 120000, UTC)),
        (
            "2026-11-29T12:00:00.123456789Z",
            datetime.datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC),
        ),
        (
            "2026-11-29T13:00:00+01:00",
            datetime.datetime(2026, 11, 29, 13, tzinfo=PLUS_1),
        ),
        (
            "2026-11-29T06:30:00.1-0530",
            datetime.datetime(
                2026, 11, 29, 6, 30, 0, 100000,
                tzinfo=datetime.timezone(-datetime.timedelta(hours=5, minutes=30)),
            ),
        ),
        (
            "2026-11-29 13:00:00+01",
            datetime.datetime(2026, 11, 29, 13, tzinfo=PLUS_1),
        ),
    ],
)  # fmt: skip
def test_timestamps_in_iso_8601_variants_and_epoch_milliseconds(
    created: Any, expected: datetime.datetime
) -> None:
    transaction = _decode(_response(_transaction(created=created))).data.transaction
    assert transaction.created == expected and transaction.created.tzinfo is not None
    assert transaction.extra_fields == {}


@pytest.mark.parametrize(
    "created", ["2026-11-29", "2026-11-29T12:00Z", "2026-11-29T12:00:00.Z", "2026-13-01T00:00:00Z",
                "2026-11-29T12:00:00.1234567890Z", True, Decimal("1795953600000.5")]
)  # fmt: skip
def test_other_timestamps_are_misfits(created: Any) -> None:
    transaction = _decode(_response(_transaction(created=created))).data.transaction
    assert transaction.created is None and transaction.extra_fields == {"created": created}


def test_a_lone_value_where_a_list_is_expected_is_a_one_item_list() -> None:
    line = {"key": "NAME", "label": "Merchant", "value": "Cafe"}
    wire = _response(_transaction(merchantReceipt=_receipt(merchantDetails=line)))
    receipt = _decode(wire).data.transaction.merchant_receipt
    assert receipt.merchant_details == [m.ReceiptLine("NAME", "Merchant", "Cafe")]
    assert receipt.extra_fields == {}


def test_an_update_with_one_information_string_and_a_string_abortable() -> None:
    wire = {
        "type": "EXECUTE_TRANSACTION_UPDATE",
        "tag": TAG,
        "executeTransactionUpdate": {"information": "Present card", "abortable": "true"},
    }
    update = _decode(wire).data
    assert isinstance(update, ExecuteTransactionUpdate)
    assert update.information == ["Present card"] and update.abortable is True


def test_an_update_whose_information_is_unreadable_keeps_a_list() -> None:
    wire = {
        "type": "AMEND_TRANSACTION_UPDATE",
        "tag": TAG,
        "amendTransactionUpdate": {"information": {"line1": "Refunding"}, "state": "PROCESSING"},
    }
    update = _decode(wire).data
    assert isinstance(update, m.AmendTransactionUpdate)
    assert update.information == [] and update.state is m.ProcessState.PROCESSING
    assert update.extra_fields == {"information": {"line1": "Refunding"}}


# --- 6.2 third bullet: enum values and the envelope's status, any letter case ---------


def test_enum_values_match_in_any_letter_case() -> None:
    wire = _response(_transaction(status="approved", type="Charge"), status="ok")
    message = _decode(wire)
    assert message.status is Status.OK and not message.is_error
    assert message.data.transaction.status is TransactionStatus.APPROVED
    assert message.data.transaction.type is m.TransactionType.CHARGE
    action = _decode(
        {"type": "EXECUTE_TRANSACTION_ACTION", "tag": TAG,
         "executeTransactionAction": {"action": "signature"}}
    ).data  # fmt: skip
    assert action.action is ActionType.SIGNATURE


def test_an_error_status_in_lower_case_is_an_error() -> None:
    message = _decode(
        {"type": "SUBMIT_SIGNATURE_RESPONSE", "tag": TAG, "status": "error",
         "error": {"type": "NO_PENDING_ACTION"}, "submitSignatureResponse": {}}
    )  # fmt: skip
    assert message.status is Status.ERROR and message.is_error


# --- 6.2 fourth bullet: a leading byte-order mark --------------------------------------


def test_a_leading_byte_order_mark_is_ignored() -> None:
    wire = _response(_transaction())
    text = dumps(wire)
    plain = decode_message(text)
    assert decode_message(b"\xef\xbb\xbf" + text.encode("utf-8")) == plain
    assert decode_message("\ufeff" + text) == plain
    assert plain.data.transaction.status is TransactionStatus.APPROVED


# --- 6.2 fifth bullet: the error object -------------------------------------------------


@pytest.mark.parametrize("status", [_ABSENT, "OK", "ERROR"])
def test_an_error_object_without_type_is_still_an_error(status: Any) -> None:
    wire: Dict[str, Any] = {"type": "LOGIN_MERCHANT_RESPONSE", "tag": TAG}
    if status is not _ABSENT:
        wire["status"] = status
    wire["error"] = {"message": "unknown merchant"}
    wire["loginMerchantResponse"] = {"devices": []}
    message = _decode(wire)
    assert message.is_error
    assert message.error is not None and message.error.type is None
    assert message.error.message == "unknown merchant"
    assert _same_json(message, wire)


# (None: a guard; the two objects failed the login before)
@pytest.mark.parametrize("error", [{}, None, {"type": None, "message": None}])
def test_an_empty_or_null_error_object_on_ok_is_no_error(error: Any) -> None:
    wire = {"type": "LOGIN_MERCHANT_RESPONSE", "tag": TAG, "status": "OK", "error": error,
            "loginMerchantResponse": {"devices": [{"resource": "devices/r1"}]}}  # fmt: skip
    message = _decode(wire)
    assert not message.is_error and message.error is None
    assert message.data.devices[0].resource == "devices/r1"
    assert _same_json(message, wire)


def test_an_empty_error_object_with_status_error_is_an_error() -> None:
    message = _decode({"type": "ABORT_TRANSACTION_RESPONSE", "tag": TAG, "status": "ERROR",
                       "error": {}})  # fmt: skip
    assert message.is_error and message.error is not None and message.error.type is None


# --- 6.1 inside a message that needed the tolerant path --------------------------------


def test_unknown_fields_and_enum_values_survive_beside_a_misfit() -> None:
    transaction = _transaction(
        captured="maybe", status="PARTIALLY_APPROVED", xFuture={"a": [1, Decimal("2.50")]}
    )
    transaction["cardDetails"]["xTokenised"] = True
    wire = _response(transaction, xTrace="abc")
    message = _decode(wire)
    decoded = message.data.transaction
    assert decoded.status == "PARTIALLY_APPROVED" and type(decoded.status) is str
    assert decoded.extra_fields == {"captured": "maybe", "xFuture": {"a": [1, Decimal("2.50")]}}
    assert decoded.card_details.extra_fields == {"xTokenised": True}
    assert message.extra_fields == {"xTrace": "abc"}
    assert _same_json(message, wire)  # sent back untouched


def test_an_unknown_type_behind_a_byte_order_mark_is_a_raw_message() -> None:
    text = '\ufeff{"type": "PRINT_RECEIPT_UPDATE", "tag": "t-1", "printReceiptUpdate": {"n": 1}}'
    message = decode_message(text.encode("utf-8"))
    assert isinstance(message, m.RawMessage) and message.data == {"n": 1}


def test_decode_tolerant_returns_the_misfits_without_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from payprotocol.codec import decode_tolerant

    raw = json.loads(
        dumps(_response(_transaction(captured="yes", created=[1]))), parse_float=Decimal
    )
    with caplog.at_level(logging.DEBUG, logger="payprotocol"):
        message, misfits = decode_tolerant(raw)
    assert caplog.records == []
    assert sorted(misfit.path for misfit in misfits) == [
        "executeTransactionResponse.transaction.captured",
        "executeTransactionResponse.transaction.created",
    ]
    assert message.data.transaction.status is TransactionStatus.APPROVED


def test_requests_stay_strict() -> None:  # guard
    from payprotocol import ProtocolViolationError

    with pytest.raises(ProtocolViolationError, match="true or false"):
        decode_message(
            '{"type": "EXECUTE_TRANSACTION_REQUEST", "tag": "t", "executeTransactionRequest":'
            ' {"transactionParameters": {"type": "CHARGE", "amount": 1, "currency": "EUR",'
            ' "autoCapture": "yes"}}}'
        )


# --- every field of a full response, one at a time ------------------------------------

_NOTHING_FITS = [[{"z": 1}]]  # no coercion turns this into any field's type


def _leaf_paths(value: Any, path: tuple = ()) -> List[tuple]:  # type: ignore[type-arg]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _leaf_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _leaf_paths(item, (*path, i))]
    return [path]


_FULL = _response(_transaction())
_PATHS = [p for p in _leaf_paths(_FULL) if p[0] == "executeTransactionResponse"]


@pytest.mark.parametrize("path", _PATHS, ids=lambda p: ".".join(map(str, p[2:])))
def test_any_one_field_that_does_not_fit_costs_only_itself(path: tuple) -> None:  # type: ignore[type-arg]
    wire = json.loads(dumps(_FULL), parse_float=Decimal)
    target = wire
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = _NOTHING_FITS
    message = _decode(wire)
    assert type(message.data) is m.ExecuteTransactionResponse
    transaction = message.data.transaction
    expected = None if path[2:] == ("status",) else TransactionStatus.APPROVED
    assert transaction.status is expected
    if path[2:] != ("amount",):
        assert transaction.amount == Decimal("10.00")
    assert _same_json(message, wire)  # the misfit goes back exactly as received
