"""Hypothesis strategies that build any payprotocol model from its attrs fields.

Derived from the field types, like the converter itself, so a new field or model
is covered without touching the tests. Values stay inside what the wire can
carry: finite decimals, aware datetimes, text without lone surrogates, and
unknown fields whose names no model uses.
"""

from __future__ import annotations

import datetime
import enum
from decimal import Decimal
from typing import Any, Dict, List, Union, get_args, get_origin

import attrs
from hypothesis import strategies as st

from payprotocol import models as m
from payprotocol.codec import MESSAGE_TYPES, data_key

_NONE = type(None)

# Unknown wire keys: a prefix no P3 key has, so they can never shadow a known one.
unknown_keys = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8).map(
    lambda s: "x" + s.capitalize()
)
decimals = st.decimals(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), decimals, st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
extra_fields = st.dictionaries(unknown_keys, json_values, max_size=3)
aware_datetimes = st.datetimes(
    min_value=datetime.datetime(1971, 1, 1),
    max_value=datetime.datetime(2999, 12, 31),
    timezones=st.sampled_from(
        [datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=5, minutes=30))]
    ),
)


def for_type(type_: Any) -> st.SearchStrategy[Any]:
    """A strategy of wire-representable values of a model field's type."""
    origin, args = get_origin(type_), get_args(type_)
    if origin is Union:
        enums = [arg for arg in args if isinstance(arg, type) and issubclass(arg, enum.Enum)]
        if enums and str in args:
            # An enum's value in another letter case reads as the member (6.2),
            # so a plain-string value is one no member matches case-insensitively.
            names = {str(member.value).upper() for member in enums[0]}
            others = st.text(max_size=20).filter(lambda text: text.upper() not in names)
            rest = [for_type(arg) for arg in args if arg is not str and arg is not enums[0]]
            return st.one_of(st.sampled_from(list(enums[0])), others, *rest)
        return st.one_of(*(for_type(arg) for arg in args))
    if type_ is _NONE:
        return st.none()
    if origin in (list, List):
        return st.lists(for_type(args[0]), max_size=3)
    if origin in (dict, Dict):
        return st.dictionaries(st.text(max_size=10), for_type(args[1]), max_size=3)
    if type_ is Any:
        return json_values
    if type_ is str:
        return st.text(max_size=20)
    if type_ is bool:
        return st.booleans()
    if type_ is int:
        return st.integers(-(10**9), 10**9)
    if type_ is Decimal:
        return decimals
    if type_ is datetime.datetime:
        return aware_datetimes
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return st.sampled_from(list(type_))
    if attrs.has(type_):
        return model(type_)
    raise NotImplementedError(f"no strategy for {type_!r}")


def model(cls: type, **fixed: Any) -> st.SearchStrategy[Any]:
    """Instances of the attrs model ``cls`` (envelope context fields left None)."""
    attrs.resolve_types(cls)
    kwargs: Dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        if field.name in fixed:
            kwargs[field.name] = st.just(fixed[field.name])
        elif field.name == "extra_fields":
            kwargs[field.name] = extra_fields
        elif field.metadata.get("wire_required"):  # never None on a valid wire
            kwargs[field.name] = for_type(field.type).filter(lambda value: value is not None)
        elif not field.metadata.get("envelope"):
            kwargs[field.name] = for_type(field.type)
    strategy = st.builds(cls, **kwargs)
    if cls is m.ProcessSteps:  # the model allows one of the two, not both
        return st.one_of(
            st.builds(cls, ask_for_tip=for_type(m.AmountStep)),
            st.builds(cls, ask_for_total_amount=for_type(m.AmountStep)),
            st.builds(cls),
        )
    return strategy


@st.composite
def messages(draw: st.DrawFn) -> m.Message:
    """A typed message of any known type, its data context matching the envelope."""
    message_type = draw(st.sampled_from(sorted(MESSAGE_TYPES)))
    tag = draw(st.text(min_size=1, max_size=36))
    resource = draw(st.none() | st.text(min_size=1, max_size=20))
    data = draw(model(MESSAGE_TYPES[message_type]))
    if any(field.metadata.get("envelope") for field in attrs.fields(type(data))):
        data = attrs.evolve(data, tag=tag, resource=resource)
    envelope_extras = draw(
        st.dictionaries(
            unknown_keys.filter(lambda key: key != data_key(message_type)), json_values, max_size=2
        )
    )
    return m.Message(
        message_type,
        tag,
        resource,
        data,
        draw(st.none() | st.sampled_from(list(m.Status)) | st.text(min_size=1, max_size=8)),
        draw(st.none() | model(m.ErrorDetails)),
        draw(st.none() | st.text(max_size=5)),
        extra_fields=envelope_extras,
    )
