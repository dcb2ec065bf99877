"""The envelope codec against every JSON example of the wire contract
(/work/shared/p3-protocol.md), plus decode errors, nulls and redaction."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any, Dict

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payprotocol import (
    ActionType,
    DccSelection,
    ExecuteTransactionAction,
    ExecuteTransactionResponse,
    ExecuteTransactionUpdate,
    LoginMerchantRequest,
    LoginMerchantResponse,
    Message,
    ProtocolViolationError,
    ProviderMode,
    RawMessage,
    Status,
    SubmitSignatureRequest,
    TransactionStatus,
    codec,
    decode_message,
    encode_message,
    models,
    naming,
    redact,
    redacted_text,
)
from payprotocol import models as m
from payprotocol.codec import MESSAGE_TYPES, data_key, dumps, message_to_wire
from payprotocol.naming import to_camel

pytestmark = pytest.mark.unit

# --- the contract's examples, copied verbatim; "..." placeholders and RECEIPT
# are filled with real content ---------------------------------------------------

RECEIPT = """{"data": {
   "RECEIPT_TYPE": {"key": "RECEIPT_TYPE", "label": "Receipt", "value": "Merchant Receipt"},
   "TRANSACTION_TYPE": {"key": "TRANSACTION_TYPE", "label": "Type", "value": "Payment"},
   "SUBJECT": {"key": "SUBJECT", "label": "Subject", "value": "Table 4"},
   "AMOUNT_AND_CURRENCY": {"key": "AMOUNT_AND_CURRENCY", "label": "Amount", "value": "10.00 EUR"},
   "STATUS_TEXT": {"key": "STATUS_TEXT", "label": "Status", "value": "APPROVED"},
   "DATE": {"key": "DATE", "label": "Date", "value": "29/11/2026"},
   "TIME": {"key": "TIME", "label": "Time", "value": "12:00:00"}},
 "merchantDetails": [{"key": "NAME", "label": "Merchant", "value": "Cafe Central"}],
 "paymentDetails": [{"key": "SCHEME", "label": "Card", "value": "VISA"}],
 "clearingDetails": [{"key": "TERMINAL_ID", "label": "TID", "value": "12345678"}],
 "tipLineRequired": false, "signatureLineRequired": true}"""

CUSTOMER_RECEIPT = RECEIPT.replace("Merchant Receipt", "Customer Receipt").replace(
    '"signatureLineRequired": true', '"signatureLineRequired": false'
)

TRANSACTION = """{"transactionIdentifier": "9a1e4c0b7d2f4e1a8c3b5d6e7f809112",
 "type": "CHARGE", "status": "APPROVED",
 "statusDetails": {"code": "APPROVED", "description": "Transaction approved"},
 "amount": 10.00, "currency": "EUR", "includedTipAmount": 0.00,
 "subject": "Table 4", "customIdentifier": "order4711", "mode": "ONLINE",
 "captured": true, "created": "2026-11-29T12:00:00Z",
 "referencedTransactionIdentifier": null, "metadata": {"clerk": "anna"},
 "cardDetails": {"scheme": "VISA", "maskedCardNumber": "************0119",
   "cardholderName": "A SHOPPER", "expiryMonth": 12, "expiryYear": 2030,
   "countryCodeNumeric": "276"},
 "paymentDetails": {"source": "ICC", "cvm": "SIGNATURE"},
 "merchantReceipt": RECEIPT, "customerReceipt": CUSTOMER_RECEIPT}""".replace(
    "CUSTOMER_RECEIPT", CUSTOMER_RECEIPT
).replace("RECEIPT,", RECEIPT + ",")

EXECUTE_REQUEST_DATA = """{"mode": "ONLINE",
 "transactionParameters": {"type": "CHARGE", "amount": 10.00, "currency": "EUR",
   "autoCapture": true, "subject": "Table 4", "customIdentifier": "order4711",
   "statementDescriptor": "CAFE CENTRAL", "applicationFee": 0.10,
   "includedTipAmount": 1.00, "metadata": {"clerk": "anna"}, "tipAdjustable": false},
 "sessionIdentifier": "optional, a session registered on the backend",
 "processParameters": {"steps": {"askForTip": {"suggestedAmount": 2.00,
   "maxTipAmount": 5.00, "showAddTipConfirmationScreen": true,
   "showTotalAmountConfirmationScreen": false}}}}"""

# Section 2: the envelope, its data object filled with the 3.2 request.
ENVELOPE = """{
  "type": "EXECUTE_TRANSACTION_REQUEST",
  "tag": "4f1c2d7e-0a55-4c53-9d0b-2b8f7c1e9a10",
  "resource": "devices/counter1",
  "executeTransactionRequest": EXECUTE_REQUEST_DATA
}""".replace("EXECUTE_REQUEST_DATA", EXECUTE_REQUEST_DATA)

LOGIN_REQUEST = """{"type": "LOGIN_MERCHANT_REQUEST", "tag": "t-1",
 "loginMerchantRequest": {"providerMode": "TEST",
   "merchantIdentifier": "m-123", "merchantSecret": "s3cr3t"}}"""

LOGIN_RESPONSE = """{"type": "LOGIN_MERCHANT_RESPONSE", "tag": "t-1", "status": "OK",
 "loginMerchantResponse": {
   "information": {"location": "Front desk"},
   "devices": [{"name": "Counter reader", "identifier": "counter1",
                "resource": "devices/counter1", "type": "MIURA", "comlink": "USB"}]}}"""

UPDATE_DATA = """{"state": "WAITING_FOR_CARD_PRESENTATION",
 "stateDetails": "WAITING_FOR_CARD_PRESENTATION",
 "information": ["Present card", "10.00 EUR"], "abortable": true,
 "transaction": TRANSACTION}""".replace("TRANSACTION", TRANSACTION)

ACTIONS = [
    """{"action": "SIGNATURE"}""",
    """{"action": "APPLICATION_SELECTION",
 "applicationSelection": {"applications": [
    {"identifier": "A0000000031010", "name": "VISA CREDIT"},
    {"identifier": "A0000000032010", "name": "VISA ELECTRON"}]}}""",
    """{"action": "CREDIT_DEBIT_SELECTION"}""",
    """{"action": "DCC_SELECTION",
 "dccSelection": {"originalAmount": 10.00, "originalCurrency": "EUR",
   "convertedAmount": 11.42, "convertedCurrency": "USD",
   "exchangeRate": 1.142, "markup": 3.5}}""",
]

AMEND_REQUEST = """{"type": "AMEND_TRANSACTION_REQUEST", "tag": "t-9", "resource": null,
 "amendTransactionRequest": {"mode": "ONLINE", "transactionParameters": {
   "type": "REFUND", "referencedTransactionIdentifier": "9a1e4c0b7d2f4e1a8c3b5d6e7f809112",
   "amount": 5.00, "currency": "EUR", "subject": "Returned mug",
   "customIdentifier": "refund4711"}}}"""

ERROR_OBJECT = """{"type": "TRANSACTION_NOT_ABORTABLE",
 "message": "The transaction cannot be aborted now",
 "developerMessage": "signature step is not abortable"}"""


def _envelope(
    message_type: str,
    data: str,
    *,
    tag: str = "t-2",
    resource: str = '"devices/counter1"',
    extra: str = "",
) -> str:
    return (
        f'{{"type": "{message_type}", "tag": "{tag}", "resource": {resource},{extra}'
        f' "{data_key(message_type)}": {data}}}'
    )


EXAMPLES: Dict[str, str] = {
    "envelope (2)": ENVELOPE,
    "login request (3.1)": LOGIN_REQUEST,
    "login response (3.1)": LOGIN_RESPONSE,
    "execute request (3.2)": _envelope("EXECUTE_TRANSACTION_REQUEST", EXECUTE_REQUEST_DATA),
    "execute update (3.2)": _envelope(
        "EXECUTE_TRANSACTION_UPDATE", UPDATE_DATA, extra=' "status": "OK",'
    ),
    **{
        f"execute action {i} (3.2)": _envelope("EXECUTE_TRANSACTION_ACTION", action)
        for i, action in enumerate(ACTIONS)
    },
    "execute response (3.2, 4)": _envelope(
        "EXECUTE_TRANSACTION_RESPONSE",
        f'{{"transaction": {TRANSACTION}}}',
        extra=' "status": "OK",',
    ),
    "failed execute response (2)": _envelope(
        "EXECUTE_TRANSACTION_RESPONSE",
        '{"transaction": {"transactionIdentifier": "x1", "status": "ERROR"}}',
        extra=' "status": "ERROR", "error": {"type": "INTERNAL_ERROR", "message": "backend down",'
        ' "developerMessage": "HTTP 503"},',
    ),
    "signature request (3.3)": _envelope(
        "SUBMIT_SIGNATURE_REQUEST", '{"signature": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"}', tag="t-3"
    ),
    "sign on receipt (3.3)": _envelope(
        "SUBMIT_SIGNATURE_REQUEST", '{"signOnReceipt": true}', tag="t-3"
    ),
    "application selection (3.3)": _envelope(
        "SUBMIT_APPLICATION_SELECTION_REQUEST", '{"applicationIdentifier": "A0000000031010"}'
    ),
    "credit/debit selection (3.3)": _envelope(
        "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST", '{"selection": "CREDIT"}'
    ),
    "debit selection (3.3)": _envelope(
        "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST", '{"selection": "DEBIT"}'
    ),
    "dcc selection (3.3)": _envelope(
        "SUBMIT_DCC_SELECTION_REQUEST", '{"useConvertedAmount": true}'
    ),
    **{
        f"{name.lower()} response (3.3)": _envelope(
            f"SUBMIT_{name}_RESPONSE", "{}", tag="t-3", extra=' "status": "OK",'
        )
        for name in (
            "SIGNATURE",
            "APPLICATION_SELECTION",
            "CREDIT_DEBIT_SELECTION",
            "DCC_SELECTION",
        )
    },
    "refused signature (3.3)": _envelope(
        "SUBMIT_SIGNATURE_RESPONSE",
        "{}",
        tag="t-3",
        extra=' "status": "ERROR", "error": {"type": "NO_PENDING_ACTION",'
        ' "message": "no action is pending", "developerMessage": ""},',
    ),
    "abort request (3.4)": _envelope("ABORT_TRANSACTION_REQUEST", "{}", tag="t-4"),
    "abort accepted (3.4)": _envelope(
        "ABORT_TRANSACTION_RESPONSE", "{}", tag="t-4", extra=' "status": "OK",'
    ),
    "abort refused (2, 3.4)": _envelope(
        "ABORT_TRANSACTION_RESPONSE",
        "{}",
        tag="t-4",
        extra=f' "status": "ERROR", "error": {ERROR_OBJECT},',
    ),
    "amend request (3.5)": AMEND_REQUEST,
    "amend update (3.5)": _envelope(
        "AMEND_TRANSACTION_UPDATE",
        '{"state": "PROCESSING", "stateDetails": "PROCESSING", '
        '"information": ["Refunding", "5.00 EUR"], "abortable": false}',
        tag="t-9",
        resource="null",
    ),
    "amend response (3.5)": _envelope(
        "AMEND_TRANSACTION_RESPONSE",
        '{"transaction": '
        + TRANSACTION.replace('"type": "CHARGE"', '"type": "REFUND"').replace(
            '"referencedTransactionIdentifier": null',
            '"referencedTransactionIdentifier": "9a1e4c0b7d2f4e1a8c3b5d6e7f809112"',
        )
        + "}",
        tag="t-9",
        resource="null",
        extra=' "status": "OK",',
    ),
    "lookup by identifier (3.6)": _envelope(
        "GET_TRANSACTION_REQUEST",
        '{"transactionIdentifier": "9a1e4c0b7d2f4e1a8c3b5d6e7f809112"}',
        tag="t-6",
        resource="null",
    ),
    "lookup by custom identifier (3.6)": _envelope(
        "GET_TRANSACTION_REQUEST", '{"customIdentifier": "order4711"}', tag="t-6", resource="null"
    ),
    "lookup response (3.6)": _envelope(
        "GET_TRANSACTION_RESPONSE",
        f'{{"transaction": {TRANSACTION}}}',
        tag="t-6",
        resource="null",
        extra=' "status": "OK",',
    ),
    "lookup not found (3.6)": _envelope(
        "GET_TRANSACTION_RESPONSE",
        "{}",
        tag="t-6",
        resource="null",
        extra=' "status": "ERROR", "error": {"type": "TRANSACTION_NOT_FOUND",'
        ' "message": "no such transaction", "developerMessage": "unknown order4712"},',
    ),
    "version (2)": _envelope(
        "ABORT_TRANSACTION_RESPONSE", "{}", extra=' "status": "OK", "version": "1.1",'
    ),
}


def _json(text: Any) -> Any:
    return json.loads(text, parse_float=Decimal)


def test_examples_are_valid_json_with_no_placeholder_left() -> None:
    for name, text in EXAMPLES.items():
        assert "..." not in text and "RECEIPT" not in text.replace('"RECEIPT_TYPE"', ""), name
        assert isinstance(_json(text), dict), name
    # The full transaction holds both receipts.
    transaction = _json(TRANSACTION)
    assert transaction["merchantReceipt"]["data"]["RECEIPT_TYPE"]["value"] == "Merchant Receipt"
    assert transaction["customerReceipt"]["data"]["RECEIPT_TYPE"]["value"] == "Customer Receipt"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_contract_example_round_trips(name: str) -> None:
    text = EXAMPLES[name]
    message = decode_message(text.encode("utf-8"))
    assert type(message) is Message  # every example is of a known type
    assert _json(encode_message(message)) == _json(text)
    # str input decodes the same as bytes input
    assert decode_message(text) == message


def test_execute_response_decodes_to_typed_models() -> None:
    message = decode_message(EXAMPLES["execute response (3.2, 4)"])
    assert message.status is Status.OK and not message.is_error
    data = message.data
    assert isinstance(data, ExecuteTransactionResponse)
    transaction = data.transaction
    assert transaction is not None
    assert transaction.status is TransactionStatus.APPROVED
    assert transaction.amount == Decimal("10.00") and str(transaction.amount) == "10.00"
    assert transaction.included_tip_amount is not None
    assert str(transaction.included_tip_amount) == "0.00"
    assert transaction.card_details is not None and transaction.card_details.expiry_month == 12
    assert transaction.referenced_transaction_identifier is None
    assert transaction.extra_fields == {"referencedTransactionIdentifier": None}
    receipt = transaction.merchant_receipt
    assert receipt is not None and receipt.signature_line_required
    assert receipt.data["AMOUNT_AND_CURRENCY"].value == "10.00 EUR"
    assert receipt.clearing_details[0].label == "TID"


def test_update_and_action_carry_the_envelope_context() -> None:
    update = decode_message(EXAMPLES["execute update (3.2)"]).data
    assert isinstance(update, ExecuteTransactionUpdate)
    assert (update.tag, update.resource) == ("t-2", "devices/counter1")
    assert update.information == ["Present card", "10.00 EUR"] and update.abortable is True
    action = decode_message(EXAMPLES["execute action 3 (3.2)"]).data
    assert isinstance(action, ExecuteTransactionAction)
    assert action.action is ActionType.DCC_SELECTION and action.tag == "t-2"
    assert isinstance(action.dcc_selection, DccSelection)
    assert str(action.dcc_selection.exchange_rate) == "1.142"


def test_error_response_keeps_its_data_object() -> None:
    message = decode_message(EXAMPLES["failed execute response (2)"])
    assert message.is_error and message.error is not None
    assert message.error.type == "INTERNAL_ERROR" and message.error.developer_message == "HTTP 503"
    assert message.data.transaction.status is TransactionStatus.ERROR


def test_login_response_devices() -> None:
    data = decode_message(LOGIN_RESPONSE).data
    assert isinstance(data, LoginMerchantResponse)
    assert [device.resource for device in data.devices] == ["devices/counter1"]
    assert data.information == {"location": "Front desk"}


# --- encoding -----------------------------------------------------------------------


def test_encode_writes_compact_utf8_with_exact_decimals() -> None:
    message = decode_message(EXAMPLES["execute request (3.2)"])
    encoded = encode_message(message)
    assert b'"amount":10.00' in encoded and b'"applicationFee":0.10' in encoded
    assert b": " not in encoded


def test_encode_non_ascii_as_utf8() -> None:
    message = Message(
        "GET_TRANSACTION_REQUEST",
        "t",
        data=decode_message(EXAMPLES["lookup by custom identifier (3.6)"]).data,
    )
    message = decode_message(encode_message(message).replace(b"order4711", "Café ☕".encode()))
    assert message.data.custom_identifier == "Café ☕"
    assert "Café ☕".encode() in encode_message(message)


def test_requests_without_a_device_send_an_explicit_null_resource() -> None:
    wire = message_to_wire(decode_message('{"type": "GET_TRANSACTION_REQUEST", "tag": "t"}'))
    assert "resource" in wire and wire["resource"] is None


def test_absent_data_object_is_written_as_empty_object() -> None:
    wire = message_to_wire(Message("ABORT_TRANSACTION_REQUEST", "t", "devices/a"))
    assert wire["abortTransactionRequest"] == {}


def test_encode_refuses_wrong_data_model_and_unknown_type() -> None:
    with pytest.raises(TypeError):
        encode_message(Message("ABORT_TRANSACTION_REQUEST", "t", data=SubmitSignatureRequest()))
    with pytest.raises(ValueError, match="RawMessage"):
        encode_message(Message("FANCY_NEW_REQUEST", "t"))


def test_data_key_naming_rule() -> None:
    assert data_key("LOGIN_MERCHANT_REQUEST") == "loginMerchantRequest"
    assert data_key("SUBMIT_DCC_SELECTION_RESPONSE") == "submitDccSelectionResponse"


def test_naming_rules_have_one_home_and_the_codec_re_exports_them() -> None:
    assert codec.data_key is naming.data_key
    assert codec.response_type is naming.response_type
    assert naming.response_type("GET_TRANSACTION_REQUEST") == "GET_TRANSACTION_RESPONSE"
    assert naming.response_type("PING") == "PING_RESPONSE"
    assert codec.redact is m.redact and codec.SENSITIVE_WIRE_KEYS is m.SENSITIVE_WIRE_KEYS


def test_wire_helpers_round_trip_a_model() -> None:
    transaction = m.Transaction(
        amount=Decimal("10.00"),
        status=TransactionStatus.APPROVED,
        extra_fields={"futureField": 1},
    )
    wire = codec.to_wire(transaction)
    assert wire == {"amount": Decimal("10.00"), "status": "APPROVED", "futureField": 1}
    assert codec.from_wire(wire, m.Transaction) == transaction
    assert codec.wire_json(transaction) == dumps(wire)
    assert '"amount":10.00' in codec.wire_json(transaction)
    with pytest.raises(TypeError):
        codec.from_wire({"amount": 1.5}, m.Transaction)


def test_dumps_writes_decimal_as_is() -> None:
    assert dumps({"a": Decimal("1E+2"), "b": [Decimal("-0.00"), 1, None, True]}) == (
        '{"a":1E+2,"b":[-0.00,1,null,true]}'
    )
    with pytest.raises(ValueError):
        dumps(Decimal("Infinity"))
    with pytest.raises(TypeError):
        dumps({1: "x"})


# --- forward compatibility -------------------------------------------------------------


def _add_unknown_everywhere(value: Any, path: str = "") -> Any:
    """Copy of a wire value with an unknown field in every object (and list item)."""
    if isinstance(value, dict):
        copy = {key: _add_unknown_everywhere(item, f"{path}.{key}") for key, item in value.items()}
        if not path.endswith("Receipt.data"):  # a receipt's data maps keys to lines
            copy["xFuture"] = {"at": path or "root", "n": Decimal("1.50"), "none": None}
        return copy
    if isinstance(value, list):
        return [_add_unknown_everywhere(item, f"{path}[]") for item in value]
    return value


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_unknown_fields_at_every_level_survive(name: str) -> None:
    wire = _add_unknown_everywhere(_json(EXAMPLES[name]))
    message = decode_message(dumps(wire))
    assert _json(encode_message(message)) == wire


def test_unknown_enum_values_survive() -> None:
    text = (
        EXAMPLES["execute response (3.2, 4)"]
        .replace('"status": "APPROVED"', '"status": "PARTIALLY_APPROVED"')
        .replace('"type": "CHARGE"', '"type": "INSTALMENT"')
        .replace('"mode": "ONLINE"', '"mode": "DEFERRED"')
        .replace('"status": "OK"', '"status": "WARNING"')
    )
    message = decode_message(text)
    assert message.status == "WARNING" and type(message.status) is str
    assert message.data.transaction.status == "PARTIALLY_APPROVED"
    assert _json(encode_message(message)) == _json(text)
    update = EXAMPLES["execute update (3.2)"].replace(
        "WAITING_FOR_CARD_PRESENTATION", "WAITING_FOR_FACE_ID"
    )
    assert _json(encode_message(decode_message(update))) == _json(update)
    action = _envelope("EXECUTE_TRANSACTION_ACTION", '{"action": "LOYALTY_SELECTION"}')
    assert decode_message(action).data.action == "LOYALTY_SELECTION"


def test_unknown_message_types_become_raw_messages_and_survive() -> None:
    text = (
        '{"type": "DEVICE_BATTERY_UPDATE", "tag": "t-2", "resource": "devices/counter1",'
        ' "status": "OK", "deviceBatteryUpdate": {"level": 0.42, "charging": true},'
        ' "priority": 3}'
    )
    message = decode_message(text)
    assert isinstance(message, RawMessage)
    assert message.tag == "t-2" and message.resource == "devices/counter1"
    assert message.data == {"level": Decimal("0.42"), "charging": True}
    assert message.extra_fields == {"priority": 3}
    assert _json(encode_message(message)) == _json(text)


def test_unknown_message_type_with_any_data_shape_is_kept() -> None:
    for data in ("[1, 2]", '"text"', "null", "7"):
        text = f'{{"type": "ODD_UPDATE", "tag": "t", "oddUpdate": {data}}}'
        assert _json(encode_message(decode_message(text))) == _json(text)
    no_data = '{"type": "ODD_UPDATE", "tag": "t"}'
    assert _json(encode_message(decode_message(no_data))) == _json(no_data)


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "ABORT_TRANSACTION_RESPONSE", "tag": "t", "resource": null, "status": "OK",'
        ' "error": null, "version": null, "abortTransactionResponse": {}}',
        '{"type": "ABORT_TRANSACTION_RESPONSE", "tag": null, "status": null,'
        ' "abortTransactionResponse": null}',
        '{"type": "EXECUTE_TRANSACTION_UPDATE", "tag": "t", "executeTransactionUpdate":'
        ' {"information": null, "state": null, "abortable": null, "transaction": null}}',
        '{"type": "LOGIN_MERCHANT_RESPONSE", "tag": "t", "loginMerchantResponse":'
        ' {"devices": [{"resource": "devices/a", "name": null, "type": null}],'
        ' "information": null}}',
        '{"type": "ODD_UPDATE", "tag": "t", "resource": null, "oddUpdate": null, "status": null}',
    ],
)
def test_explicit_nulls_survive(text: str) -> None:
    assert _json(encode_message(decode_message(text))) == _json(text)


def test_numeric_version_is_kept_verbatim() -> None:
    text = (
        '{"type": "ABORT_TRANSACTION_RESPONSE", "tag": "t", "version": 1.1,'
        ' "abortTransactionResponse": {}}'
    )
    message = decode_message(text)
    assert message.version is None and message.extra_fields["version"] == Decimal("1.1")
    assert _json(encode_message(message)) == _json(text)


# --- decode errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"type": "X", "tag": "caf\xe9"}', "UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"type": "X"} trailing', "not valid JSON"),
        (b'{"type": "X", "n": NaN}', "NaN"),
        (b'{"type": "X", "n": -Infinity}', "Infinity"),
        (b"[1, 2]", "JSON object"),
        (b'"LOGIN_MERCHANT_REQUEST"', "JSON object"),
        (b"null", "JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
def test_undecodable_payloads_raise_without_raw(payload: bytes, words: str) -> None:
    with pytest.raises(ProtocolViolationError, match=words) as caught:
        decode_message(payload)
    assert caught.value.raw is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"tag": "t-1"}', "no string 'type'"),
        ('{"type": 7, "tag": "t-1"}', "no string 'type'"),
        ('{"type": "", "tag": "t-1"}', "no string 'type'"),
        ('{"type": null, "tag": "t-1"}', "no string 'type'"),
        # Requests are read strictly (the simulator answers INVALID_REQUEST);
        # server messages that misfit decode tolerantly (test_tolerant_reader.py).
        ('{"type": "ABORT_TRANSACTION_REQUEST", "tag": 17}', "'tag' must be a string"),
        (
            '{"type": "ABORT_TRANSACTION_REQUEST", "tag": "t-1", "resource": ["a"]}',
            "'resource' must be a string",
        ),
        (
            '{"type": "ABORT_TRANSACTION_REQUEST", "tag": "t-1", "abortTransactionRequest": []}',
            "JSON object",
        ),
        (
            '{"type": "LOGIN_MERCHANT_REQUEST", "tag": "t-1", "loginMerchantRequest":'
            ' {"providerMode": "TEST", "merchantIdentifier": "m"}}',
            "missing required field 'merchantSecret'",
        ),
        (
            '{"type": "EXECUTE_TRANSACTION_REQUEST", "tag": "t-1", "executeTransactionRequest":'
            ' {"transactionParameters": {"type": "CHARGE", "amount": "ten", "currency": "EUR",'
            ' "autoCapture": true}}}',
            "EXECUTE_TRANSACTION_REQUEST",
        ),
        (
            '{"type": "EXECUTE_TRANSACTION_REQUEST", "tag": "t-1", "executeTransactionRequest":'
            ' {"transactionParameters": {"type": "CHARGE", "amount": 1, "currency": "EUR",'
            ' "autoCapture": "no"}}}',
            "expected true or false",
        ),
    ],
)
def test_misfit_messages_raise_with_raw_set(text: str, words: str) -> None:
    with pytest.raises(ProtocolViolationError, match=words) as caught:
        decode_message(text)
    assert caught.value.raw == _json(text)


def test_violation_message_names_type_and_tag() -> None:
    with pytest.raises(ProtocolViolationError) as caught:
        decode_message(
            '{"type": "SUBMIT_DCC_SELECTION_REQUEST", "tag": "t-77",'
            ' "submitDccSelectionRequest": {"useConvertedAmount": "yes"}}'
        )
    assert "SUBMIT_DCC_SELECTION_REQUEST" in str(caught.value) and "t-77" in str(caught.value)
    assert caught.value.raw is not None and caught.value.raw["tag"] == "t-77"


# --- redaction ---------------------------------------------------------------------------


def test_redact_masks_secrets_wherever_they_are() -> None:
    value = {
        "merchantSecret": "s3cr3t",
        "a": [{"signature": "iVBOR"}, {"b": {"merchantSecret": "deep"}}],
        "signOnReceipt": True,
        "signature": None,
    }
    assert redact(value) == {
        "merchantSecret": "***",
        "a": [{"signature": "***"}, {"b": {"merchantSecret": "***"}}],
        "signOnReceipt": True,
        "signature": None,
    }
    assert value["merchantSecret"] == "s3cr3t"  # a copy; the original is untouched


@pytest.mark.parametrize("form", ["bytes", "str", "message"])
def test_redacted_text_masks_the_login_secret(form: str) -> None:
    payload: Any = {
        "bytes": LOGIN_REQUEST.encode(),
        "str": LOGIN_REQUEST,
        "message": decode_message(LOGIN_REQUEST),
    }[form]
    text = redacted_text(payload)
    assert "s3cr3t" not in text
    assert _json(text)["loginMerchantRequest"]["merchantSecret"] == "***"
    assert "m-123" in text


def test_redacted_text_masks_signatures_also_in_unknown_places() -> None:
    image = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"
    raw_text = (
        '{"type": "ODD_REQUEST", "tag": "t", "oddRequest": {"items": [{"signature": "'
        + image
        + '"}]}, "xMeta": {"merchantSecret": "s3cr3t"}}'
    )
    for payload in (EXAMPLES["signature request (3.3)"], raw_text):
        for form in (payload, payload.encode(), decode_message(payload)):
            text = redacted_text(form)
            assert image not in text and "s3cr3t" not in text and "***" in text


def test_redacted_text_does_not_echo_garbage() -> None:
    garbage = b"\x00\x01merchantSecret=s3cr3t"
    text = redacted_text(garbage)
    assert "s3cr3t" not in text and str(len(garbage)) in text


def test_message_repr_hides_the_secret() -> None:
    login = decode_message(LOGIN_REQUEST)
    assert isinstance(login.data, LoginMerchantRequest)
    assert "s3cr3t" not in repr(login) and "'***'" in repr(login)
    built = Message(
        "LOGIN_MERCHANT_REQUEST",
        "t-1",
        data=LoginMerchantRequest(ProviderMode.TEST, "m-123", "s3cr3t"),
    )
    assert "s3cr3t" not in repr(built)
    assert built.data.merchant_secret == "s3cr3t"  # masked in repr only, sent as is
    assert b"s3cr3t" in encode_message(built)
    signature = decode_message(EXAMPLES["signature request (3.3)"])
    assert "iVBORw0KGgo" not in repr(signature)
    assert isinstance(signature.data, SubmitSignatureRequest)


def test_lone_surrogate_escapes_survive_a_round_trip() -> None:
    # Legal JSON, yet no UTF-8 form: written back as the same escape.
    text = '{"type": "ODD_UPDATE", "tag": "t\\ud800", "oddUpdate": {"a": "\\udfff \\ud83d\\ude00"}}'
    message = decode_message(text)
    encoded = encode_message(message)
    assert b"\\ud800" in encoded and b"\\udfff" in encoded
    assert "\U0001f600".encode() in encoded  # a proper pair is plain UTF-8
    assert decode_message(encoded) == message


# --- fuzzing: whatever arrives, the decoder raises nothing but ProtocolViolationError ---

_KNOWN_TYPES = sorted(MESSAGE_TYPES)
_FIELD_NAMES = sorted(
    {
        to_camel(field.name)
        for cls in vars(models).values()
        if attrs.has(cls)
        for field in attrs.fields(cls)
    }
)
_fuzz_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
        st.sampled_from(
            ["OK", "ERROR", "CHARGE", "APPROVED", "10.00", "NaN", "2026-11-29T12:00:00Z"]
        ),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=6), inner, max_size=5),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(max_size=200))
def test_random_bytes_raise_nothing_but_protocol_violation(payload: bytes) -> None:
    with contextlib.suppress(ProtocolViolationError):
        decode_message(payload)


@settings(max_examples=400, deadline=None)
@given(
    message_type=st.sampled_from(_KNOWN_TYPES) | st.text(max_size=12),
    envelope=st.dictionaries(
        st.sampled_from(["tag", "resource", "status", "error", "version", "xOther"]),
        _fuzz_values,
        max_size=4,
    ),
    data=_fuzz_values,
)
def test_random_messages_decode_or_raise_protocol_violation(
    message_type: str, envelope: Dict[str, Any], data: Any
) -> None:
    wire = {"type": message_type, **envelope, data_key(message_type): data}
    try:
        message = decode_message(dumps(wire))
    except ProtocolViolationError as exc:
        assert exc.raw is not None or not message_type
        return
    # What decoded can be sent back, and decodes to the same message again.
    assert decode_message(encode_message(message)) == message


def test_floats_are_refused_on_the_way_out() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        codec.dumps({"amount": 0.1 + 0.2})
    with pytest.raises(TypeError):
        codec.encode_message(
            m.Message(
                "GET_TRANSACTION_REQUEST",
                "t",
                None,
                m.GetTransactionRequest(),
                extra_fields={"rate": 1.5},
            )
        )


def test_response_type_follows_the_naming_rule() -> None:
    assert codec.response_type("GET_TRANSACTION_REQUEST") == "GET_TRANSACTION_RESPONSE"
    assert codec.response_type("PING") == "PING_RESPONSE"


def test_raw_message_keeps_a_misfit_whole() -> None:
    raw = {
        "type": "EXECUTE_TRANSACTION_UPDATE",
        "tag": "t",
        "resource": 7,
        "status": "OK",
        "executeTransactionUpdate": {"abortable": "yes"},
        "future": [1],
    }
    message = codec.raw_message(raw)
    assert isinstance(message, m.RawMessage)
    assert (message.type, message.tag, message.resource) == (
        "EXECUTE_TRANSACTION_UPDATE",
        "t",
        None,
    )
    assert message.data == {"abortable": "yes"}
    assert message.extra_fields == {"resource": 7, "status": "OK", "future": [1]}
    assert codec.raw_message({"tag": 5}).type == "UNKNOWN"


def test_the_declared_sensitive_keys_are_exactly_the_models_sensitive_fields() -> None:
    import attrs

    from payprotocol.naming import to_camel

    derived = {
        to_camel(field.name)
        for model in vars(m).values()
        if isinstance(model, type) and attrs.has(model)
        for field in attrs.fields(model)
        if field.metadata.get("sensitive")
    }
    assert derived == set(m.SENSITIVE_WIRE_KEYS)
