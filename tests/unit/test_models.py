"""Models and the converter: round trips, exact decimals, tolerance, secrets."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any, Dict, List

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payprotocol import (
    CardDetails,
    ExecuteTransactionRequest,
    LoginMerchantRequest,
    Message,
    ProviderMode,
    RawMessage,
    Receipt,
    ReceiptLine,
    SubmitSignatureRequest,
    Transaction,
    TransactionParameters,
    TransactionStatus,
    TransactionType,
    decode_message,
    encode_message,
)
from payprotocol.codec import MESSAGE_TYPES
from payprotocol.naming import to_camel
from payprotocol.wire_converter import converter

from . import _strategies as strategies

pytestmark = pytest.mark.unit

ALL_MODELS = sorted(
    {cls for cls in vars(__import__("payprotocol").models).values() if attrs.has(cls)}
    - {Message, RawMessage},
    key=lambda cls: cls.__name__,
)


def _round_trip(value: Any) -> Any:
    cls = type(value)
    wire = json.loads(
        json.dumps(converter.unstructure(value, cls), default=str), parse_float=Decimal
    )
    return converter.structure(wire, cls)


def _exact_wire(value: Any) -> str:
    """The model as JSON text, through the codec's exact writer."""
    from payprotocol.codec import dumps

    return dumps(converter.unstructure(value, type(value)))


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_MODELS, ids=lambda cls: cls.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_model_round_trips(cls: type, data: st.DataObject) -> None:
    from payprotocol.codec import dumps

    value = data.draw(strategies.model(cls))
    wire = json.loads(dumps(converter.unstructure(value, cls)), parse_float=Decimal)
    assert converter.structure(wire, cls) == value


@settings(max_examples=200, deadline=None)
@given(message=strategies.messages())
def test_every_message_round_trips_through_the_codec(message: Message) -> None:
    encoded = encode_message(message)
    decoded = decode_message(encoded)
    assert decoded == message
    assert encode_message(decoded) == encoded


def test_message_types_cover_every_model_named_in_the_catalogue() -> None:
    assert len(MESSAGE_TYPES) == 21
    for message_type, model in MESSAGE_TYPES.items():
        assert attrs.has(model), message_type


def test_attribute_names_map_to_lower_camel_case() -> None:
    assert to_camel("auto_capture") == "autoCapture"
    assert to_camel("show_add_tip_confirmation_screen") == "showAddTipConfirmationScreen"
    assert to_camel("amount") == "amount"
    wire = converter.unstructure(
        TransactionParameters(TransactionType.CHARGE, Decimal("1.00"), "EUR", auto_capture=True)
    )
    assert wire == {
        "type": "CHARGE",
        "amount": Decimal("1.00"),
        "currency": "EUR",
        "autoCapture": True,
    }


def test_none_attributes_are_left_off_the_wire() -> None:
    wire = converter.unstructure(CardDetails(scheme="VISA"))
    assert wire == {"scheme": "VISA"}


# --- decimals ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["10.00", "0.10", "12345678.99", "1E+2", "1E-7", "-0.00", "0", "5", "0.000", "-1.5E-7"]
)
def test_decimals_go_out_exactly_as_they_came_in(text: str) -> None:
    payload = (
        '{"type":"GET_TRANSACTION_RESPONSE","tag":"t","getTransactionResponse":'
        '{"transaction":{"amount":'
        + text
        + ',"includedTipAmount":'
        + text
        + ',"metadata":{"fee":'
        + text
        + "}}}}"
    )
    message = decode_message(payload)
    transaction = message.data.transaction
    assert isinstance(transaction.amount, Decimal)
    assert str(transaction.amount) == text
    assert encode_message(message).decode() == payload


def test_amounts_are_decimal_not_float() -> None:
    message = decode_message(
        '{"type":"EXECUTE_TRANSACTION_REQUEST","tag":"t","resource":"d",'
        '"executeTransactionRequest":{"transactionParameters":{"type":"CHARGE",'
        '"amount":0.10,"currency":"EUR","autoCapture":true,"applicationFee":0.1}}}'
    )
    params = message.data.transaction_parameters
    assert params.amount == Decimal("0.10") and type(params.amount) is Decimal
    assert params.application_fee + params.amount == Decimal("0.20")  # no 0.30000000000000004


def test_integer_amount_becomes_exact_decimal() -> None:
    transaction = converter.structure({"amount": 10}, Transaction)
    assert transaction.amount == Decimal(10) and type(transaction.amount) is Decimal


def test_quoted_amount_is_tolerated_but_not_nan() -> None:
    assert converter.structure({"amount": "10.50"}, Transaction).amount == Decimal("10.50")
    for bad in ("NaN", "Infinity", "-Infinity", "sNaN", "ten"):
        with pytest.raises((ValueError, ArithmeticError)):
            converter.structure({"amount": bad}, Transaction)


@pytest.mark.parametrize("bad", [1.5, True, [], {}])
def test_amount_of_wrong_type_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError):
        converter.structure({"amount": bad}, Transaction)


def test_non_finite_decimal_is_not_written() -> None:
    with pytest.raises(ValueError):
        encode_message(
            Message(
                "GET_TRANSACTION_RESPONSE",
                "t",
                data=MESSAGE_TYPES["GET_TRANSACTION_RESPONSE"](
                    transaction=Transaction(amount=Decimal("NaN"))
                ),
            )
        )


# --- strict scalars (a wrong type never turns silently into another value; only
# the unambiguous coercions of p3-protocol.md 6.2 apply) ---------------------------


@pytest.mark.parametrize("bad", [0, 1, "yes", "True", "FALSE", " true", [], {}])
def test_booleans_are_strict(bad: Any) -> None:
    with pytest.raises(TypeError):
        converter.structure(
            {"type": "CHARGE", "amount": 1, "currency": "EUR", "autoCapture": bad},
            TransactionParameters,
        )


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False)])
def test_booleans_read_their_json_spelling_as_a_string(text: str, value: bool) -> None:
    parameters = converter.structure(
        {"type": "CHARGE", "amount": 1, "currency": "EUR", "autoCapture": text},
        TransactionParameters,
    )
    assert parameters.auto_capture is value


@pytest.mark.parametrize(
    "bad", [Decimal("12.5"), Decimal("12.0"), True, "-1", "1.5", " 12", "\u0661\u0662", ""]
)
def test_integers_are_strict(bad: Any) -> None:
    with pytest.raises(TypeError):
        converter.structure({"expiryMonth": bad}, CardDetails)


def test_a_digit_string_reads_as_an_integer() -> None:
    assert converter.structure({"expiryMonth": "07"}, CardDetails).expiry_month == 7


@pytest.mark.parametrize("bad", [{"a": "b"}, [["a"]], [True]])
def test_lists_are_strict(bad: Any) -> None:
    from payprotocol import ExecuteTransactionUpdate

    with pytest.raises(TypeError):
        converter.structure({"information": bad}, ExecuteTransactionUpdate)


@pytest.mark.parametrize(("lone", "items"), [("two lines", ["two lines"]), (2, ["2"])])
def test_a_lone_value_where_a_list_is_expected_is_a_one_item_list(
    lone: Any, items: List[str]
) -> None:
    from payprotocol import ExecuteTransactionUpdate

    update = converter.structure({"information": lone}, ExecuteTransactionUpdate)
    assert update.information == items


@pytest.mark.parametrize("bad", ["x", [["a", 1]], 3])
def test_objects_are_strict(bad: Any) -> None:
    with pytest.raises(TypeError):
        converter.structure({"metadata": bad}, Transaction)
    with pytest.raises(TypeError):
        converter.structure({"cardDetails": bad}, Transaction)


def test_identifier_sent_as_number_is_tolerated() -> None:
    assert (
        converter.structure({"transactionIdentifier": 42}, Transaction).transaction_identifier
        == "42"
    )


# --- datetimes ------------------------------------------------------------------


def test_created_is_an_aware_datetime_and_round_trips() -> None:
    transaction = converter.structure({"created": "2026-11-29T12:00:00Z"}, Transaction)
    assert transaction.created == datetime.datetime(2026, 11, 29, 12, tzinfo=datetime.timezone.utc)
    assert converter.unstructure(transaction)["created"] == "2026-11-29T12:00:00Z"


def test_naive_timestamp_is_read_as_utc() -> None:
    transaction = converter.structure({"created": "2026-11-29T12:00:00"}, Transaction)
    assert transaction.created is not None
    assert transaction.created.utcoffset() == datetime.timedelta(0)


# --- forward compatibility --------------------------------------------------------


def test_unknown_enum_values_stay_plain_strings() -> None:
    transaction = converter.structure(
        {"type": "PAYOUT", "status": "REVERSED", "mode": "SEMI_ONLINE"}, Transaction
    )
    assert transaction.type == "PAYOUT" and type(transaction.type) is str
    assert transaction.status == "REVERSED"
    assert converter.unstructure(transaction) == {
        "type": "PAYOUT",
        "status": "REVERSED",
        "mode": "SEMI_ONLINE",
    }


def test_known_enum_values_become_members_that_equal_their_string() -> None:
    transaction = converter.structure({"status": "APPROVED"}, Transaction)
    assert transaction.status is TransactionStatus.APPROVED
    assert transaction.status == "APPROVED"
    assert str(transaction.status) == "APPROVED"
    assert TransactionStatus.APPROVED.is_final and not TransactionStatus.PENDING.is_final


def test_unknown_fields_are_kept_and_written_back() -> None:
    wire: Dict[str, Any] = {
        "key": "TIP",
        "label": "Tip",
        "value": "",
        "style": {"bold": True},
        "order": 3,
    }
    line = converter.structure(wire, ReceiptLine)
    assert line.extra_fields == {"style": {"bold": True}, "order": 3}
    assert converter.unstructure(line) == wire


def test_explicit_nulls_are_kept_and_written_back() -> None:
    wire = {
        "data": None,
        "tipLineRequired": None,
        "signatureLineRequired": True,
        "merchantDetails": [{"key": "NAME", "label": None, "value": "Cafe"}],
    }
    receipt = converter.structure(wire, Receipt)
    assert receipt.data == {} and receipt.tip_line_required is False  # defaults apply
    assert receipt.merchant_details[0].label is None
    out = converter.unstructure(receipt)
    assert out["data"] is None and out["tipLineRequired"] is None
    assert out["merchantDetails"] == [{"key": "NAME", "label": None, "value": "Cafe"}]


def test_a_value_set_over_an_explicit_null_wins() -> None:
    receipt = converter.structure({"tipLineRequired": None}, Receipt)
    changed = attrs.evolve(receipt, tip_line_required=True)
    assert converter.unstructure(changed)["tipLineRequired"] is True


def test_missing_required_field_names_the_wire_key() -> None:
    with pytest.raises(KeyError, match="merchantSecret"):
        converter.structure(
            {"providerMode": "TEST", "merchantIdentifier": "m"}, LoginMerchantRequest
        )


def test_process_steps_hold_one_of_the_two() -> None:
    with pytest.raises(ValueError, match="not both"):
        converter.structure(
            {
                "transactionParameters": {
                    "type": "CHARGE",
                    "amount": 1,
                    "currency": "EUR",
                    "autoCapture": True,
                },
                "processParameters": {"steps": {"askForTip": {}, "askForTotalAmount": {}}},
            },
            ExecuteTransactionRequest,
        )


def test_models_are_frozen() -> None:
    line = ReceiptLine("NAME", "Merchant", "Cafe")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        line.value = "other"  # type: ignore[misc]
    decoded = converter.structure({"key": "NAME"}, ReceiptLine)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        decoded.key = "other"  # type: ignore[misc]
    assert decoded == ReceiptLine("NAME")


# --- secrets --------------------------------------------------------------------------


def test_login_request_repr_masks_the_secret() -> None:
    request = LoginMerchantRequest(ProviderMode.TEST, "m-123", "s3cr3t")
    text = repr(request)
    assert "s3cr3t" not in text and "merchant_secret='***'" in text
    assert "m-123" in text


def test_signature_request_repr_masks_the_signature() -> None:
    request = SubmitSignatureRequest(signature="iVBORw0KGgoAAAANSUhEUg==")
    assert "iVBORw0KGgo" not in repr(request) and "signature='***'" in repr(request)
    assert "signature=None" in repr(SubmitSignatureRequest(sign_on_receipt=True))


@given(secret=st.text(min_size=6, max_size=30).filter(lambda s: s.strip() == s and "*" not in s))
def test_a_message_repr_never_contains_the_secret(secret: str) -> None:
    marker = "S3CR3T" + secret
    login = Message(
        "LOGIN_MERCHANT_REQUEST",
        "t-1",
        data=LoginMerchantRequest(ProviderMode.TEST, "m-123", marker),
    )
    signature = Message(
        "SUBMIT_SIGNATURE_REQUEST",
        "t-2",
        "devices/a",
        data=SubmitSignatureRequest(signature=marker),
    )
    raw = RawMessage(
        "LOGIN_MERCHANT_REQUEST",
        "t-3",
        data={"providerMode": "TEST", "merchantIdentifier": "m", "merchantSecret": marker},
    )
    extra = Message(
        "SUBMIT_SIGNATURE_REQUEST",
        "t-4",
        data=SubmitSignatureRequest(
            sign_on_receipt=True, extra_fields={"nested": [{"signature": marker}]}
        ),
        extra_fields={"merchantSecret": marker},
    )
    for message in (login, signature, raw, extra):
        assert marker not in repr(message)
        assert marker not in str(message)
        assert marker not in repr(decode_message(encode_message(message)))
