"""The tolerant reader's slow path: a wire object decoded field by field (p3-protocol.md 6.2).

Strategy: the codec decodes every message strictly first, with the generated
functions of :mod:`payprotocol.wire_converter` (the fast path). Only when that
fails does it come here, for the one object that failed. Each field is tried
with the converter's own hook, so the unambiguous coercions of 6.2 (which the
hooks already apply) behave the same on both paths. A field that still does
not fit is taken apart where it can be: a nested object, each item of a list,
each value of a dict, recursively, so that the misfit stays as small as
possible. What remains a misfit leaves its attribute at the default, is kept
as received in the owning object's ``extra_fields`` under its wire key (the
converter writes it back from there while the attribute holds the default, so
an echoed object still reaches the server unchanged), and is reported as a
:class:`Misfit` with its wire path; the codec logs those.

A field the model itself requires (no default: ``ReceiptLine.key``,
``Device.resource``) cannot default, so an object missing one cannot be
built: the misfit moves up to the field that holds the object (for a list
item, the whole list). A field marked ``wire_required`` in its metadata (the
wire needs it, the model does not: ``ExecuteTransactionAction.action``,
``ErrorDetails.type``) defaults to ``None`` with a misfit reported.

Sans-IO, no logging here: the codec names the message and the tag.
"""

from __future__ import annotations

import datetime
import functools
from decimal import Decimal
from typing import Any, Dict, List, Tuple, Union, get_args, get_origin

import attrs

from .naming import to_camel
from .wire_converter import converter

__all__ = ["Misfit", "json_type", "structure_tolerant"]

_ERRORS = (TypeError, ValueError, KeyError, ArithmeticError, AttributeError)


@attrs.frozen
class Misfit:
    """One wire value that did not fit its model: kept as received, reported."""

    #: Wire path, for example ``executeTransactionResponse.transaction.created``.
    path: str
    #: What was expected and what came (JSON types only, never the value).
    reason: str


class _Unfit(Exception):
    """A value that does not fit its type (the reason, without the value)."""


def json_type(value: Any) -> str:
    """The JSON type of a parsed value, for messages that must not show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _describe(type_: Any) -> str:
    if type_ is bool:
        return "true or false"
    if type_ is int:
        return "an integer"
    if type_ is str:
        return "a string"
    if type_ is Decimal:
        return "a number"
    if type_ is datetime.datetime:
        return "an ISO 8601 timestamp or epoch milliseconds"
    if attrs.has(type_) or get_origin(type_) in (dict, Dict):
        return "an object"
    if get_origin(type_) in (list, List):
        return "an array"
    return "a string"  # the enums: Union[SomeEnum, str]


def _without_none(type_: Any) -> Any:
    """``X`` of ``Optional[X]``; any other type as it is."""
    if get_origin(type_) is Union:
        args = [arg for arg in get_args(type_) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
        return Union[tuple(args)]
    return type_


@functools.cache
def _plan(cls: type) -> Tuple[Tuple[attrs.Attribute[Any], str, Any], ...]:
    """The wire fields of ``cls``: (field, wire key, type without ``None``)."""
    attrs.resolve_types(cls)
    return tuple(
        (field, to_camel(field.name), _without_none(field.type))
        for field in attrs.fields(cls)
        if field.name != "extra_fields" and not field.metadata.get("envelope")
    )


def structure_tolerant(data: Any, cls: type, path: str) -> Tuple[Any, List[Misfit]]:
    """``data`` as a ``cls``, whatever fits; the misfits, with ``path`` as their root.

    Raises ``TypeError`` when ``data`` is not a JSON object or lacks a field the
    model cannot do without (nothing to build: the caller keeps it whole)."""
    misfits: List[Misfit] = []
    try:
        return _model(data, cls, path, misfits), misfits
    except _Unfit as exc:
        raise TypeError(f"{path}: {exc}") from None


def _model(data: Any, cls: type, path: str, misfits: List[Misfit]) -> Any:
    if not isinstance(data, dict):
        raise _Unfit(f"expected an object, got a JSON {json_type(data)}")
    plan = _plan(cls)
    known = {key for _, key, _ in plan}
    extras = {key: value for key, value in data.items() if key not in known or value is None}
    values: Dict[str, Any] = {}
    found: List[Misfit] = []
    for field, key, type_ in plan:
        where = f"{path}.{key}" if path else key
        required = field.default is attrs.NOTHING
        value = data.get(key)
        if value is None:
            if required:
                raise _Unfit(f"{where} is required, got {'null' if key in data else 'nothing'}")
            if field.metadata.get("wire_required"):
                found.append(
                    Misfit(where, "required, got " + ("null" if key in data else "nothing"))
                )
            continue  # the default
        try:
            values[getattr(field, "alias", None) or field.name.lstrip("_")] = _value(
                value, type_, where, found
            )
        except _Unfit as exc:
            if required:
                raise _Unfit(f"{where}: {exc}") from None
            extras[key] = value  # kept as received; the attribute keeps its default
            found.append(Misfit(where, str(exc)))
    try:
        instance = cls(**values, extra_fields=extras)
    except _ERRORS as exc:  # an __attrs_post_init__ that refuses the combination
        raise _Unfit(f"does not fit {cls.__name__}: {type(exc).__name__}") from None
    misfits.extend(found)
    return instance


def _value(value: Any, type_: Any, path: str, misfits: List[Misfit]) -> Any:
    """One wire value as ``type_``: the converter's hook first, then taken apart."""
    try:
        return converter.structure(value, type_)
    except _ERRORS:
        pass
    if attrs.has(type_):
        return _model(value, type_, path, misfits)
    origin = get_origin(type_)
    if origin in (list, List):
        (item_type,) = get_args(type_) or (Any,)
        if not isinstance(value, list):  # a lone value is a one-item list (6.2)
            return [_value(value, item_type, path, misfits)]
        found: List[Misfit] = []
        items = [_value(item, item_type, f"{path}[{i}]", found) for i, item in enumerate(value)]
        misfits.extend(found)
        return items
    if origin in (dict, Dict) and isinstance(value, dict):
        value_type = get_args(type_)[1]
        found = []
        result = {
            key: _value(item, value_type, f"{path}.{key}", found) for key, item in value.items()
        }
        misfits.extend(found)
        return result
    raise _Unfit(f"expected {_describe(type_)}, got a JSON {json_type(value)}")
