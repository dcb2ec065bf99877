"""The P3 envelope (p3-protocol.md section 2): one message's bytes <-> :class:`Message`.

Sans-IO. ``decode_message`` parses the UTF-8 JSON with ``parse_float=Decimal``
(amounts never touch a binary float), checks the envelope and turns the data
object, found under the lowerCamelCase of ``type``, into the model registered
for that type. Types we do not know become :class:`RawMessage` with everything
kept. ``encode_message`` is the inverse and writes ``Decimal`` as the exact JSON
number it holds (``10.00`` stays ``10.00``).

Server messages are read as a tolerant reader (p3-protocol.md 6.2): strictly
first, the fast path a well-formed message never leaves; when that fails, field
by field (:mod:`payprotocol._tolerant`), each misfit kept as received in
``extra_fields`` and logged at WARNING on ``payprotocol.codec`` (type, tag,
path; never the value). Requests are read strictly.

Errors say which rule the peer broke; :class:`ProtocolViolationError.raw` keeps
the parsed object when the JSON itself was fine, so a caller can still route
the failure to the right tag.

It is also the public home of the wire helpers the rest of the package uses:
:func:`to_wire`, :func:`from_wire` and :func:`wire_json` (over the one converter
of :mod:`payprotocol.wire_converter`), and re-exports the naming rules
(:func:`data_key`, :func:`response_type`, from :mod:`payprotocol.naming`) and
the redaction (:func:`redact`, :data:`SENSITIVE_WIRE_KEYS`, owned by
:mod:`payprotocol.models`, which never imports this module).
"""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type, TypeVar, Union

import attrs

from . import models as m
from ._tolerant import Misfit, json_type, structure_tolerant
from .errors import ProtocolViolationError
from .models import SENSITIVE_WIRE_KEYS, redact
from .naming import data_key, response_type
from .wire_converter import converter

__all__ = [
    "MESSAGE_TYPES",
    "SENSITIVE_WIRE_KEYS",
    "Misfit",
    "data_key",
    "decode_message",
    "decode_parsed",
    "decode_tolerant",
    "dumps",
    "encode_message",
    "from_wire",
    "message_to_wire",
    "parse_message",
    "raw_message",
    "response_type",
    "redact",
    "redacted_text",
    "to_wire",
    "wire_json",
]

logger = logging.getLogger("payprotocol.codec")
_T = TypeVar("_T")

#: Every P3 message type this version knows, with the model of its data object.
MESSAGE_TYPES: Dict[str, type] = {
    "LOGIN_MERCHANT_REQUEST": m.LoginMerchantRequest,
    "LOGIN_MERCHANT_RESPONSE": m.LoginMerchantResponse,
    "EXECUTE_TRANSACTION_REQUEST": m.ExecuteTransactionRequest,
    "EXECUTE_TRANSACTION_UPDATE": m.ExecuteTransactionUpdate,
    "EXECUTE_TRANSACTION_ACTION": m.ExecuteTransactionAction,
    "EXECUTE_TRANSACTION_RESPONSE": m.ExecuteTransactionResponse,
    "SUBMIT_SIGNATURE_REQUEST": m.SubmitSignatureRequest,
    "SUBMIT_SIGNATURE_RESPONSE": m.SubmitSignatureResponse,
    "SUBMIT_APPLICATION_SELECTION_REQUEST": m.SubmitApplicationSelectionRequest,
    "SUBMIT_APPLICATION_SELECTION_RESPONSE": m.SubmitApplicationSelectionResponse,
    "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST": m.SubmitCreditDebitSelectionRequest,
    "SUBMIT_CREDIT_DEBIT_SELECTION_RESPONSE": m.SubmitCreditDebitSelectionResponse,
    "SUBMIT_DCC_SELECTION_REQUEST": m.SubmitDccSelectionRequest,
    "SUBMIT_DCC_SELECTION_RESPONSE": m.SubmitDccSelectionResponse,
    "ABORT_TRANSACTION_REQUEST": m.AbortTransactionRequest,
    "ABORT_TRANSACTION_RESPONSE": m.AbortTransactionResponse,
    "AMEND_TRANSACTION_REQUEST": m.AmendTransactionRequest,
    "AMEND_TRANSACTION_UPDATE": m.AmendTransactionUpdate,
    "AMEND_TRANSACTION_RESPONSE": m.AmendTransactionResponse,
    "GET_TRANSACTION_REQUEST": m.GetTransactionRequest,
    "GET_TRANSACTION_RESPONSE": m.GetTransactionResponse,
}

# Requests that address no device carry an explicit ``"resource": null`` (3.5, 3.6).
_NULL_RESOURCE_TYPES = frozenset({"AMEND_TRANSACTION_REQUEST", "GET_TRANSACTION_REQUEST"})
_STATUS_TYPE: Any = Optional[Union[m.Status, str]]
# Resolved once: cattrs' dispatch costs per call.
_structure_status = converter.get_structure_hook(_STATUS_TYPE)
_ENVELOPE_KEYS = frozenset({"type", "tag", "resource", "status", "error", "version"})
_NULLABLE_ENVELOPE_KEYS = ("tag", "status", "error", "version")
# Data models that carry the envelope's tag/resource for callbacks.
_CONTEXT_MODELS = frozenset(
    cls
    for cls in MESSAGE_TYPES.values()
    if any(field.metadata.get("envelope") for field in attrs.fields(cls))
)


_DATA_KEYS = {message_type: data_key(message_type) for message_type in MESSAGE_TYPES}


# --- JSON with exact decimals ------------------------------------------------


def _write_json(value: Any, out: Callable[[str], None]) -> None:
    if type(value) is dict:  # the usual case first: isinstance(Mapping) is slow
        _write_object(value, out)
    elif isinstance(value, str):
        out(encode_basestring(value))
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as a JSON number")
        out(str(value))  # '10.00', '1E+2': both valid JSON numbers, exactly as held
    elif isinstance(value, int):
        out(int.__repr__(value))
    elif isinstance(value, float):
        # Money is exact: a binary float (0.1 + 0.2 = 0.30000000000000004) never
        # reaches the wire, whichever field or metadata entry it hides in.
        raise TypeError(f"float {value!r} in a P3 message: use Decimal (or int or str)")
    elif isinstance(value, Mapping):
        _write_object(value, out)
    elif isinstance(value, (list, tuple)):
        out("[")
        for index, item in enumerate(value):
            if index:
                out(",")
            _write_json(item, out)
        out("]")
    else:
        raise TypeError(f"{type(value).__name__} cannot be written as JSON")


def _write_object(value: Mapping[Any, Any], out: Callable[[str], None]) -> None:
    out("{")
    first = True
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, got {key!r}")
        out(encode_basestring(key) + ":" if first else "," + encode_basestring(key) + ":")
        first = False
        _write_json(item, out)
    out("}")


def dumps(value: Any) -> str:
    """Compact JSON text; ``Decimal`` is written as its exact number."""
    parts: list[str] = []
    _write_json(value, parts.append)
    return "".join(parts)


# --- encode --------------------------------------------------------------------


def message_to_wire(message: m.Message) -> Dict[str, Any]:
    """The JSON object of ``message`` (before serialisation)."""
    wire: Dict[str, Any] = dict(message.extra_fields)
    wire["type"] = message.type
    if message.tag is not None:
        wire["tag"] = message.tag
    if message.resource is not None or message.type in _NULL_RESOURCE_TYPES:
        wire["resource"] = message.resource
    if message.status is not None:
        wire["status"] = str(message.status)
    if message.error is not None:
        wire["error"] = converter.unstructure(message.error, m.ErrorDetails)
    if message.version is not None:
        wire["version"] = message.version
    if isinstance(message, m.RawMessage):
        if message.data is not None:
            wire[data_key(message.type)] = message.data
    else:
        model = MESSAGE_TYPES.get(message.type)
        if model is None:
            raise ValueError(f"unknown message type {message.type!r}: send it as a RawMessage")
        data = model() if message.data is None else message.data
        if not isinstance(data, model):
            raise TypeError(f"{message.type} carries {model.__name__}, not {type(data).__name__}")
        key = _DATA_KEYS[message.type]
        data_wire = converter.unstructure(data, model)
        # The decoder keeps an explicit null data object, or one that was no
        # object, in extra_fields; it stands as long as the data is still empty.
        if not (key in message.extra_fields and data_wire == converter.unstructure(model(), model)):
            wire[key] = data_wire
    return wire


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_message(message: m.Message) -> bytes:
    """UTF-8 JSON bytes of one P3 message (frame it for TCP, send as text on WebSocket)."""
    text = dumps(message_to_wire(message))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate arrives as a legal JSON escape ("\\ud800") but has no
        # UTF-8 form; write it back as the same escape. It can only sit inside a
        # JSON string, so escaping it in the text is exact.
        return _LONE_SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text).encode()


# --- decode --------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON and cannot be re-encoded.
    raise ValueError(f"{name} is not a JSON number")


# Built once: json.loads with options would build a new decoder per message.
_JSON_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


def parse_message(payload: Union[bytes, bytearray, memoryview, str]) -> Dict[str, Any]:
    """One message's UTF-8 JSON as a dict (amounts as ``Decimal``), untyped.

    Raises :class:`ProtocolViolationError` when it is not UTF-8, not JSON, or
    not a JSON object. :func:`decode_parsed` types it."""
    if isinstance(payload, str):
        text = payload
    else:
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolViolationError(f"message is not valid UTF-8: {exc}") from None
    if text[:1] == "\ufeff":  # a leading byte-order mark is ignored (6.2)
        text = text[1:]
    try:
        value = _JSON_DECODER.decode(text)
    except ValueError as exc:  # JSONDecodeError, and big-int limits
        raise ProtocolViolationError(f"message is not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolViolationError("message JSON is nested too deeply") from None
    if not isinstance(value, dict):
        raise ProtocolViolationError(
            f"message must be a JSON object, got a JSON {type(value).__name__}"
        )
    return value


def _optional_str(raw: Dict[str, Any], key: str) -> Optional[str]:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ProtocolViolationError(f"envelope field {key!r} must be a string, got {value!r}", raw=raw)


def decode_message(payload: Union[bytes, bytearray, memoryview, str]) -> m.Message:
    """Parse one P3 message; unknown types become :class:`RawMessage`.

    Server messages (any type but a ``_REQUEST``) are read as a tolerant reader
    (p3-protocol.md 6.2): a field that does not fit is kept as received and
    logged, and the rest decodes. Raises :class:`ProtocolViolationError` when
    the payload is not UTF-8, not a JSON object or has no string ``type``, and,
    for a request, when a field does not fit its model.
    """
    return decode_parsed(parse_message(payload))


_DECODE_ERRORS = (TypeError, ValueError, KeyError, ArithmeticError, AttributeError)


def decode_parsed(raw: Dict[str, Any]) -> m.Message:
    """:func:`decode_message` for an object :func:`parse_message` already parsed.

    Strict first (the fast path, which a well-formed message never leaves); a
    server message that fails it is decoded again field by field
    (:func:`decode_tolerant`)."""
    message_type = raw.get("type")
    if not isinstance(message_type, str) or not message_type:
        raise ProtocolViolationError("message has no string 'type'", raw=raw)
    try:
        return _decode_strict(raw, message_type)
    except (ProtocolViolationError, *_DECODE_ERRORS) as exc:
        if message_type.endswith("_REQUEST"):  # we read requests strictly (the simulator)
            if isinstance(exc, ProtocolViolationError):
                raise
            # A KeyError carries the wire key of a missing required field.
            problem = (
                f"missing required field {exc.args[0]!r}" if type(exc) is KeyError else repr(exc)
            )
            raise ProtocolViolationError(
                f"{message_type} (tag {raw.get('tag')!r}) does not fit the contract: {problem}",
                raw=raw,
            ) from exc
    message, misfits = decode_tolerant(raw)
    tag = message.tag if message.tag is not None else raw.get("tag")
    for misfit in misfits:
        logger.warning(
            "%s (tag %s): %s does not fit (%s); kept as received, the rest decoded",
            message_type,
            tag if isinstance(tag, str) else f"<{json_type(tag)}>",
            misfit.path,
            misfit.reason,
        )
    return message


def _is_empty_error(error_object: Any, status: Any) -> bool:
    """``"error": {}`` (or members all null) on a response that is not ``ERROR``
    says nothing (6.2): no error."""
    return (
        type(error_object) is dict
        and status != "ERROR"
        and all(value is None for value in error_object.values())
    )


def _envelope_extras(raw: Dict[str, Any], message_type: str, key: str) -> Dict[str, Any]:
    extras = {k: v for k, v in raw.items() if k not in _ENVELOPE_KEYS and k != key}
    if "resource" in raw and raw["resource"] is None and message_type not in _NULL_RESOURCE_TYPES:
        extras["resource"] = None  # keep an explicit null the encoder would not write
    for name in _NULLABLE_ENVELOPE_KEYS:
        if name in raw and raw[name] is None:
            extras[name] = None  # likewise; the encoder writes a non-None value over it
    return extras


def _decode_strict(raw: Dict[str, Any], message_type: str) -> m.Message:
    """Every field fits, or an exception: the fast path."""
    tag = _optional_str(raw, "tag")
    resource = _optional_str(raw, "resource")
    version = raw.get("version")
    model = MESSAGE_TYPES.get(message_type)
    key = _DATA_KEYS[message_type] if model is not None else data_key(message_type)
    extras = _envelope_extras(raw, message_type, key)
    status: Optional[Union[m.Status, str]] = _structure_status(raw.get("status"), _STATUS_TYPE)
    error_object = raw.get("error")
    error = None
    if error_object is not None:
        if _is_empty_error(error_object, status):
            extras["error"] = error_object  # written back as received
        else:
            error = converter.structure(error_object, m.ErrorDetails)
    if version is not None and not isinstance(version, str):
        extras["version"] = version  # unexpected type: keep it verbatim
        version = None
    data_object = raw.get(key)
    if data_object is None and key in raw:
        extras[key] = None  # an explicit null data object is written back as null
    if model is None:
        return m.RawMessage(
            message_type, tag, resource, data_object, status, error, version, extra_fields=extras
        )
    data = model() if data_object is None else converter.structure(data_object, model)
    if model in _CONTEXT_MODELS:
        data = attrs.evolve(data, tag=tag, resource=resource)
    return m.Message(message_type, tag, resource, data, status, error, version, extra_fields=extras)


def decode_tolerant(raw: Dict[str, Any]) -> Tuple[m.Message, List[Misfit]]:
    """A parsed message decoded field by field (p3-protocol.md 6.2), and its misfits.

    Never raises for an object with a string ``type``. Each field that does not
    fit (after the unambiguous coercions) leaves its attribute at the default
    (usually ``None``) and is kept as received under its wire key in the
    owning object's ``extra_fields`` (envelope fields in the message's), from
    where :func:`encode_message` writes it back. :func:`decode_parsed` logs the
    misfits; this function only returns them. A data object of a known type
    always becomes its model (an update's ``information`` stays a list, an
    action whose ``action`` is unreadable is an action with ``action=None``).
    """
    message_type = raw.get("type")
    if not isinstance(message_type, str) or not message_type:
        raise ProtocolViolationError("message has no string 'type'", raw=raw)
    model = MESSAGE_TYPES.get(message_type)
    key = _DATA_KEYS[message_type] if model is not None else data_key(message_type)
    extras = _envelope_extras(raw, message_type, key)
    misfits: List[Misfit] = []

    def misfit(name: str, value: Any, reason: str) -> None:
        extras[name] = value
        misfits.append(Misfit(name, f"{reason}, got a JSON {json_type(value)}"))

    envelope: Dict[str, Optional[str]] = {}
    for name in ("tag", "resource"):
        value = raw.get(name)
        envelope[name] = value if value is None or isinstance(value, str) else None
        if envelope[name] is None and value is not None:
            misfit(name, value, "expected a string")
    tag, resource = envelope["tag"], envelope["resource"]
    status: Optional[Union[m.Status, str]] = None
    if raw.get("status") is not None:
        try:
            status = _structure_status(raw["status"], _STATUS_TYPE)
        except _DECODE_ERRORS:
            misfit("status", raw["status"], "expected a string")
    error = None
    error_object = raw.get("error")
    if error_object is not None:
        if _is_empty_error(error_object, status):
            extras["error"] = error_object
        elif not isinstance(error_object, dict):
            misfit("error", error_object, "expected an object")
        else:
            error = _tolerant_object(error_object, m.ErrorDetails, "error", misfits)
    version = raw.get("version")
    if version is not None and not isinstance(version, str):
        extras["version"] = version
        version = None
    data_object = raw.get(key)
    if data_object is None and key in raw:
        extras[key] = None
    if model is None:
        message: m.Message = m.RawMessage(
            message_type, tag, resource, data_object, status, error, version, extra_fields=extras
        )
        return message, misfits
    if data_object is None:
        data = model()
    elif not isinstance(data_object, dict):
        misfit(key, data_object, "expected an object")
        data = model()
    else:
        data = _tolerant_object(data_object, model, key, misfits)
    if model in _CONTEXT_MODELS:
        data = attrs.evolve(data, tag=tag, resource=resource)
    message = m.Message(
        message_type, tag, resource, data, status, error, version, extra_fields=extras
    )
    return message, misfits


def _tolerant_object(value: Dict[str, Any], model: Type[_T], path: str, out: List[Misfit]) -> _T:
    """``value`` as a ``model``: strictly if it fits, else field by field. Every
    model a server message holds at its top can be built from any object."""
    try:
        return converter.structure(value, model)
    except _DECODE_ERRORS:
        instance, misfits = structure_tolerant(value, model, path)
        out.extend(misfits)
        return instance  # type: ignore[no-any-return]


def raw_message(raw: Dict[str, Any]) -> m.RawMessage:
    """A parsed message kept whole, undecoded: for one whose fields did not fit
    its model (:attr:`ProtocolViolationError.raw`), so that nothing is dropped.
    Envelope fields of the wrong type stay in ``extra_fields``."""
    message_type = raw.get("type")
    type_text = message_type if isinstance(message_type, str) and message_type else "UNKNOWN"
    key = data_key(type_text)
    tag, resource = raw.get("tag"), raw.get("resource")
    string_envelope = {
        name for name, value in (("tag", tag), ("resource", resource)) if isinstance(value, str)
    }
    extras = {k: v for k, v in raw.items() if k not in string_envelope and k not in ("type", key)}
    return m.RawMessage(
        type_text,
        tag if isinstance(tag, str) else None,
        resource if isinstance(resource, str) else None,
        raw.get(key),
        extra_fields=extras,
    )


# --- wire objects: one model as its wire dict, and back -------------------------


def to_wire(obj: Any) -> Any:
    """The wire form of a model (its JSON-ready dict, lowerCamelCase keys, unknown
    fields kept, ``None`` left off); other values come back as their wire value."""
    return converter.unstructure(obj)


def from_wire(data: Any, cls: Type[_T], *, tolerant: bool = False) -> _T:
    """A wire dict as an instance of the model ``cls``: :func:`to_wire` inverted.

    Raises ``TypeError``, ``ValueError`` or ``KeyError`` (a missing required
    wire key) when ``data`` does not fit ``cls``. With ``tolerant=True`` a
    field that does not fit is kept as received in ``extra_fields`` instead
    (p3-protocol.md 6.2, as :func:`decode_message` reads server messages, and
    without a log line); only an object ``cls`` cannot be built from at all
    still raises ``TypeError``. That reads back what :func:`to_wire` wrote of
    a tolerantly decoded model."""
    if not tolerant:
        return converter.structure(data, cls)
    try:
        return converter.structure(data, cls)
    except _DECODE_ERRORS:
        instance, _ = structure_tolerant(data, cls, "")
        return instance  # type: ignore[no-any-return]


def wire_json(obj: Any) -> str:
    """Compact JSON text of :func:`to_wire` of ``obj``, amounts exact (not redacted)."""
    return dumps(converter.unstructure(obj))


# --- redaction: the rules live with the models' metadata --------------------------


def redacted_text(payload: Union[bytes, str, m.Message]) -> str:
    """One message as safe text for a log or wire trace (secrets masked).

    Bytes that are not a JSON object are not echoed (they could hold anything):
    only their length is shown.
    """
    if isinstance(payload, m.Message):
        return dumps(redact(message_to_wire(payload)))
    try:
        return dumps(redact(parse_message(payload)))
    except ProtocolViolationError:
        return f"<{len(payload)} bytes that are not a JSON object>"
