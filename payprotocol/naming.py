"""The P3 naming rules (p3-protocol.md section 2), in one place.

Pure string functions with no dependencies, so that every layer can use them
without importing another: the wire converter renames attributes with
:func:`to_camel`, the codec finds a message's data object with :func:`data_key`,
and the client and the simulator pair a request with its response type with
:func:`response_type`. :mod:`payprotocol.codec` re-exports the last two.
"""

from __future__ import annotations

__all__ = ["data_key", "response_type", "to_camel"]


def to_camel(name: str) -> str:
    """``snake_case`` attribute name -> lowerCamelCase wire key."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def data_key(message_type: str) -> str:
    """The data object's key: ``LOGIN_MERCHANT_REQUEST`` -> ``loginMerchantRequest``."""
    return to_camel(message_type.lower())


def response_type(request_type: str) -> str:
    """The response of a request type: ``GET_TRANSACTION_REQUEST`` ->
    ``GET_TRANSACTION_RESPONSE`` (a type without the suffix gets it appended)."""
    stem = request_type[: -len("_REQUEST")] if request_type.endswith("_REQUEST") else request_type
    return stem + "_RESPONSE"
