"""The one cattrs converter that produces P3 wire dicts: every model to and
from the JSON-ready dict of its wire object (p3-protocol.md sections 3 and 4).

Public so that the codec and anything else that needs a model as a wire dict
share one configuration; most callers want :func:`payprotocol.codec.to_wire`,
:func:`~payprotocol.codec.from_wire` or :func:`~payprotocol.codec.wire_json`.
It uses cattrs' public API only (``get_structure_hook``, cattrs >= 24.1) and
depends on nothing in the package but :mod:`payprotocol.naming`.

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
import re
import sys
import types
from decimal import Decimal
from typing import Any, Callable, Dict, List, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from .naming import to_camel

__all__ = ["converter"]

if sys.version_info >= (3, 10):
    from types import UnionType

    _UNION_ORIGINS: tuple[Any, ...] = (Union, UnionType)
else:  # pragma: no cover - Python 3.9
    _UNION_ORIGINS = (Union,)

converter = cattrs.Converter(detailed_validation=False)


# --- scalars -----------------------------------------------------------------


def _structure_decimal(value: Any, _: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        amount = Decimal(value)  # tolerated: a server that quotes its amounts
        if amount.is_finite():  # not "NaN" or "Infinity": no JSON number can carry those
            return amount
        raise ValueError(f"amount {value!r} is not a finite number")
    raise TypeError(f"expected a JSON number for an amount, got {type(value).__name__}")


# ISO 8601 as PayServers write it (6.2): ``T`` (or a space), seconds, 0 to 9
# fraction digits, then ``Z``, an offset (``+01:00``, ``+0100``, ``+01``) or
# nothing (naive means UTC). One pattern on every Python: ``fromisoformat``
# accepts different sets of variants on 3.9, 3.10 and 3.11+.
_ISO_8601 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?",
    re.ASCII,
)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _structure_datetime(value: Any, _: Any) -> datetime.datetime:
    if isinstance(value, str):
        found = _ISO_8601.fullmatch(value)
        if found is None:
            raise ValueError("not an ISO 8601 timestamp")
        year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = found.groups()
        zone = datetime.timezone.utc
        if sign is not None:
            offset = datetime.timedelta(hours=int(off_h), minutes=int(off_m or 0))
            zone = datetime.timezone(-offset if sign == "-" else offset)
        micros = int((fraction or "0")[:6].ljust(6, "0"))  # beyond microseconds: cut
        return datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, zone
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH + datetime.timedelta(milliseconds=value)  # epoch milliseconds, exact
    raise TypeError(f"expected an ISO 8601 timestamp string, got {type(value).__name__}")


def _unstructure_datetime(value: datetime.datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)  # tolerated: an identifier sent as a number
    raise TypeError(f"expected a string, got {type(value).__name__}")


_BOOLEAN_TEXT = {"true": True, "false": False}


def _structure_bool(value: Any, _: Any) -> bool:
    # Not cattrs' bool(value), which makes "false" true: true, false, or their
    # JSON spelling as a string (6.2).
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _BOOLEAN_TEXT:
        return _BOOLEAN_TEXT[value]
    raise TypeError(f"expected true or false, got {value!r}")


_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def _structure_int(value: Any, _: Any) -> int:
    # Not cattrs' int(value), which truncates 12.5 and accepts true: a JSON
    # integer, or a string of digits (6.2).
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise TypeError(f"expected a JSON integer, got {value!r}")


converter.register_structure_hook(Decimal, _structure_decimal)
converter.register_unstructure_hook(Decimal, lambda value: value)
converter.register_structure_hook(datetime.datetime, _structure_datetime)
converter.register_unstructure_hook(datetime.datetime, _unstructure_datetime)
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(int, _structure_int)


# --- containers: strict about the JSON type, hooks bound once -----------------
# Each factory resolves the inner type's hook once, when it builds the outer
# hook (``get_structure_hook``, cached by cattrs), never per value.


def _optional_inner(type_: Any) -> Any:
    """``X`` of ``Optional[X]`` (two-member union with None), else None."""
    if get_origin(type_) not in _UNION_ORIGINS:
        return None
    args = get_args(type_)
    if len(args) != 2 or type(None) not in args:
        return None
    return args[0] if args[1] is type(None) else args[1]


def _make_optional_hook(type_: Any) -> Callable[[Any, Any], Any]:
    # cattrs' own Optional handling dispatches on the inner type at every call,
    # the single largest cost of decoding a transaction; bind it once instead.
    inner = _optional_inner(type_)
    hook = converter.get_structure_hook(inner)

    def structure(value: Any, _: Any) -> Any:
        return None if value is None else hook(value, inner)

    return structure


def _is_list(type_: Any) -> bool:
    return get_origin(type_) in (list, List)


def _make_list_hook(type_: Any) -> Callable[[Any, Any], Any]:
    (item_type,) = get_args(type_) or (Any,)
    if item_type is Any:

        def structure_any(value: Any, _: Any) -> Any:
            if not isinstance(value, list):
                raise TypeError(f"expected a JSON array, got {type(value).__name__}")
            return list(value)

        return structure_any
    hook = converter.get_structure_hook(item_type)

    def structure(value: Any, _: Any) -> Any:
        # cattrs would iterate a string into a list of characters; a lone value
        # where a list is expected is a one-item list (6.2).
        if not isinstance(value, list):
            return [hook(value, item_type)]
        return [hook(item, item_type) for item in value]

    return structure


def _is_str_dict(type_: Any) -> bool:
    return get_origin(type_) in (dict, Dict) and get_args(type_)[:1] == (str,)


def _make_dict_hook(type_: Any) -> Callable[[Any, Any], Any]:
    value_type = get_args(type_)[1]
    if value_type is Any:

        def structure_any(value: Any, _: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected a JSON object, got {type(value).__name__}")
            return dict(value)  # JSON keys are always strings; values stay as parsed

        return structure_any
    hook = converter.get_structure_hook(value_type)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return {key: hook(item, value_type) for key, item in value.items()}

    return structure


converter.register_structure_hook_factory(
    lambda type_: _optional_inner(type_) is not None, _make_optional_hook
)
converter.register_structure_hook_factory(_is_list, _make_list_hook)
converter.register_structure_hook_factory(_is_str_dict, _make_dict_hook)


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
    folded: Dict[str, Any] = {str(member.value).upper(): member for member in enum_class}
    optional = type(None) in get_args(type_)

    def structure(value: Any, _: Any) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise TypeError(f"expected a string for {enum_class.__name__}, got {value!r}")
        found = members.get(value)
        if found is None:  # "approved" is APPROVED (6.2); an unknown value stays a str
            found = folded.get(value.upper(), value) if value.isascii() else value
        return found

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


# Wire types that JSON parsing already yields exactly: the generated code checks
# ``type(v) is T`` inline and calls the scalar hook only for anything else (which
# converts what is tolerated, such as an int amount, or raises).
_EXACT_TYPES = (str, bool, int, Decimal)


def _field_source(field: attrs.Attribute[Any], i: int, namespace: Dict[str, Any]) -> str:
    """Source that reads one field's wire value from ``data`` into ``v<i>``."""
    key = to_camel(field.name)
    inner = _optional_inner(field.type)
    target = field.type if inner is None else inner
    namespace[f"t{i}"], namespace[f"h{i}"] = target, converter.get_structure_hook(target)
    convert = f"v{i} = h{i}(v{i}, t{i})"
    exact = target in _EXACT_TYPES
    if field.default is attrs.NOTHING or field.metadata.get("wire_required"):
        # Required (on the wire, at least): KeyError names the missing wire key.
        test = f"type(v{i}) is not t{i}" if exact else "True"
        return f"    v{i} = data[{key!r}]\n    if {test}:\n        {convert}\n"
    if field.default is None:  # absent is None (explicit nulls went to extra_fields)
        test = f"v{i} is not None" + (f" and type(v{i}) is not t{i}" if exact else "")
        return f"    v{i} = data.get({key!r})\n    if {test}:\n        {convert}\n"
    # A non-None default (a list, False): absent and explicit null both take it;
    # the null itself is in extra_fields and written back (see _make_unstructure).
    namespace[f"d{i}"] = field.default
    is_factory = isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
    default = f"d{i}.factory()" if is_factory else f"d{i}"
    test = f"type(v{i}) is not t{i}" if exact else "True"
    return (
        f"    v{i} = data.get({key!r})\n"
        f"    if v{i} is None:\n        v{i} = {default}\n"
        f"    elif {test}:\n        {convert}\n"
    )


def _slot_setters(cls: type) -> Dict[str, Callable[[Any, Any], None]] | None:
    """Slot setters of every field, when building ``cls`` needs nothing but them.

    That is: slotted, no validators, converters or init hooks, and every field
    not read from the wire (``extra_fields`` aside) defaults to ``None``.
    """
    if any(hasattr(cls, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__")):
        return None
    wire = {field.name for field in _wire_fields(cls)} | {"extra_fields"}
    setters: Dict[str, Callable[[Any, Any], None]] = {}
    for field in attrs.fields(cls):
        descriptor = getattr(cls, field.name, None)
        if (
            not isinstance(descriptor, types.MemberDescriptorType)
            or field.validator is not None
            or field.converter is not None
            or (field.name not in wire and field.default is not None)
        ):
            return None
        setters[field.name] = descriptor.__set__
    return setters


def _make_structure(cls: type) -> Callable[[Any, Any], Any]:
    # Generated source rather than cattrs' make_dict_structure_fn: decoding a
    # transaction builds ~60 small objects, and cattrs' per-field hook calls
    # (Optional dispatch, a Python call per string) made typed decoding 6x the
    # cost of json.loads; this keeps it under 3x (benchmarks/bench_codec.py).
    attrs.resolve_types(cls)
    fields = _wire_fields(cls)
    known = frozenset(to_camel(field.name) for field in fields)
    namespace: Dict[str, Any] = {"cls": cls, "known": known}
    body = [_field_source(field, i, namespace) for i, field in enumerate(fields)]
    setters = _slot_setters(cls)
    if setters is None:
        args = [
            f"{getattr(field, 'alias', None) or field.name.lstrip('_')}=v{i}"
            if field.kw_only
            else f"v{i}"
            for i, field in enumerate(fields)
        ]
        args.append("extra_fields=extras")
        construct = f"    return cls({', '.join(args)})\n"
    else:
        # Fill the slots directly: half the cost of the frozen __init__, which
        # does nothing else for these classes (checked by _slot_setters).
        namespace["new"] = object.__new__
        values = {field.name: f"v{i}" for i, field in enumerate(fields)}
        values["extra_fields"] = "extras"
        construct = "    inst = new(cls)\n"
        for name, setter in setters.items():
            namespace[f"set_{name}"] = setter
            construct += f"    set_{name}(inst, {values.get(name, 'None')})\n"
        construct += "    return inst\n"
    source = (
        "def structure(data, _):\n"
        "    if not isinstance(data, dict):\n"
        f"        raise TypeError('expected a JSON object for {cls.__name__}, got '"
        " + type(data).__name__)\n"
        "    if known.issuperset(data) and None not in data.values():\n"
        "        extras = {}\n"
        "    else:  # unknown keys and explicit nulls are kept, to be written back\n"
        "        extras = {k: v for k, v in data.items() if k not in known or v is None}\n"
        + "".join(body)
        + construct
    )
    exec(compile(source, f"<payprotocol structure {cls.__qualname__}>", "exec"), namespace)
    structure: Callable[[Any, Any], Any] = namespace["structure"]
    return structure


def _make_unstructure(cls: type) -> Callable[[Any], Any]:
    overrides = _overrides(cls)
    overrides["extra_fields"] = override(omit=True)
    generated: Callable[[Any], Any] = make_dict_unstructure_fn(cls, converter, **overrides)
    # Fields with a non-None default (a list, False) always go on the wire; when
    # one arrived as an explicit null and still holds its default, write the null.
    defaults: Dict[str, Any] = {}
    for field in _wire_fields(cls):
        if field.default is not None and field.default is not attrs.NOTHING:
            value = field.default
            if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
                value = value.factory()
            defaults[to_camel(field.name)] = converter.unstructure(value)

    def unstructure(instance: Any) -> Any:
        wire = generated(instance)
        extras = instance.extra_fields
        if not extras:
            return wire
        merged = {**extras, **wire}
        for key in defaults.keys() & extras.keys():
            # A known key in extra_fields arrived as null or did not fit (kept as
            # received by the tolerant reader): while its attribute holds the
            # default, the value as received is what goes back.
            if merged[key] == defaults[key]:
                merged[key] = extras[key]
        return merged

    return unstructure


converter.register_structure_hook_factory(attrs.has, _make_structure)
converter.register_unstructure_hook_factory(attrs.has, _make_unstructure)
