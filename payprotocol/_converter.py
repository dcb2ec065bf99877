"""The one cattrs converter that maps every model to and from its wire dict.

Configured once, at import, with generated (un)structure functions per class:

* attribute names become lowerCamelCase keys (``auto_capture`` -> ``autoCapture``);
* ``Decimal`` stays ``Decimal`` in both directions (JSON is parsed with
  ``parse_float=Decimal`` and written by :mod:`payprotocol.codec` without a
  float round trip); an int becomes an exact ``Decimal``, a float is refused;
* ``Union[SomeEnum, str]`` yields the enum member, or the plain string when the
  enum does not know the value;
* datetimes are ISO 8601 strings, read as aware datetimes (naive means UTC);
* wire keys a class does not know, and known keys sent as an explicit ``null``,
  go to ``extra_fields`` and are written back, so an object the client echoes
  reaches the server unchanged. A ``None`` attribute is left off the wire.
"""

from __future__ import annotations

import datetime
import enum
import sys
from decimal import Decimal
from typing import Any, Callable, Dict, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

__all__ = ["converter", "to_camel"]

if sys.version_info >= (3, 10):
    from types import UnionType

    _UNION_ORIGINS: tuple[Any, ...] = (Union, UnionType)
else:  # pragma: no cover - Python 3.9
    _UNION_ORIGINS = (Union,)

converter = cattrs.Converter(detailed_validation=False)


def to_camel(name: str) -> str:
    """``snake_case`` attribute name -> lowerCamelCase wire key."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# --- scalars -----------------------------------------------------------------


def _structure_decimal(value: Any, _: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        return Decimal(value)  # tolerated: a server that quotes its amounts
    raise TypeError(f"expected a JSON number for an amount, got {type(value).__name__}")


def _structure_datetime(value: Any, _: Any) -> datetime.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 timestamp string, got {type(value).__name__}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _unstructure_datetime(value: datetime.datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)  # tolerated: an identifier sent as a number
    raise TypeError(f"expected a string, got {type(value).__name__}")


converter.register_structure_hook(Decimal, _structure_decimal)
converter.register_unstructure_hook(Decimal, lambda value: value)
converter.register_structure_hook(datetime.datetime, _structure_datetime)
converter.register_unstructure_hook(datetime.datetime, _unstructure_datetime)
converter.register_structure_hook(str, _structure_str)


# --- Union[SomeEnum, str]: tolerant enums ------------------------------------


def _tolerant_enum(type_: Any) -> type[enum.Enum] | None:
    """The enum of ``Union[SomeEnum, str]`` (optionally with ``None``), else None."""
    if get_origin(type_) not in _UNION_ORIGINS:
        return None
    args = set(get_args(type_)) - {type(None)}
    enums = [arg for arg in args if isinstance(arg, type) and issubclass(arg, enum.Enum)]
    if len(enums) == 1 and args == {enums[0], str}:
        return enums[0]
    return None


def _make_tolerant_enum_hook(type_: Any) -> Callable[[Any, Any], Any]:
    enum_class = _tolerant_enum(type_)
    assert enum_class is not None
    members: Dict[Any, Any] = {member.value: member for member in enum_class}
    optional = type(None) in get_args(type_)

    def structure(value: Any, _: Any) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise TypeError(f"expected a string for {enum_class.__name__}, got {value!r}")
        return members.get(value, value)

    return structure


converter.register_structure_hook_factory(
    lambda type_: _tolerant_enum(type_) is not None, _make_tolerant_enum_hook
)
converter.register_unstructure_hook_factory(
    lambda type_: _tolerant_enum(type_) is not None, lambda _: _unstructure_enum_or_str
)


def _unstructure_enum_or_str(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


# --- attrs models ------------------------------------------------------------


def _wire_fields(cls: type) -> list[attrs.Attribute[Any]]:
    return [
        field
        for field in attrs.fields(cls)
        if field.name != "extra_fields" and not field.metadata.get("envelope")
    ]


def _overrides(cls: type) -> Dict[str, Any]:
    """camelCase renames; ``None`` left off the wire; envelope context skipped."""
    result: Dict[str, Any] = {
        field.name: override(rename=to_camel(field.name), omit_if_default=field.default is None)
        for field in _wire_fields(cls)
    }
    for field in attrs.fields(cls):
        if field.metadata.get("envelope"):
            result[field.name] = override(omit=True)
    return result


def _make_structure(cls: type) -> Callable[[Any, Any], Any]:
    generated: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, converter, **_overrides(cls))
    known = frozenset(to_camel(field.name) for field in _wire_fields(cls))

    def structure(data: Any, _: Any) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
        if not known.issuperset(data) or None in data.values():
            extras = {k: v for k, v in data.items() if k not in known or v is None}
            data = {k: v for k, v in data.items() if k not in extras}
            data["extra_fields"] = extras
        return generated(data, cls)

    return structure


def _make_unstructure(cls: type) -> Callable[[Any], Any]:
    overrides = _overrides(cls)
    overrides["extra_fields"] = override(omit=True)
    generated: Callable[[Any], Any] = make_dict_unstructure_fn(cls, converter, **overrides)

    def unstructure(instance: Any) -> Any:
        wire = generated(instance)
        extras = instance.extra_fields
        return {**extras, **wire} if extras else wire

    return unstructure


converter.register_structure_hook_factory(attrs.has, _make_structure)
converter.register_unstructure_hook_factory(attrs.has, _make_unstructure)
