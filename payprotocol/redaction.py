"""Redaction of secrets in wire values: what ``repr``, logs, traces, cassettes
and the journal show instead of a merchant secret or a signature image.

Strategy: one declared set of wire keys (:data:`SENSITIVE_WIRE_KEYS`) and one
pure function (:func:`redact`) that masks their values at any depth of a wire
dict. The models mark the same fields ``metadata={"sensitive": True}`` (see
:mod:`payprotocol.model_fields`); a unit test checks that this set is exactly
the set those marks name, so the two cannot drift. This module imports nothing
of the package, so the models' field helpers can use it without a cycle;
:mod:`payprotocol.models`, :mod:`payprotocol.codec` and the package re-export
both names.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SENSITIVE_WIRE_KEYS", "redact"]

#: Wire keys whose values are secrets (the models' ``sensitive`` fields).
SENSITIVE_WIRE_KEYS = frozenset({"merchantSecret", "signature"})
_MASK = "***"


def redact(value: Any) -> Any:
    """A copy of a wire value with every sensitive key's value replaced by ``'***'``."""
    if isinstance(value, dict):
        return {
            k: (_MASK if k in SENSITIVE_WIRE_KEYS and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
