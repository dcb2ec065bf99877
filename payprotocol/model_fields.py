"""The attrs field helpers every P3 model is declared with.

Strategy: each helper is one ``attrs.field`` recipe with the metadata the
single cattrs converter (:mod:`payprotocol.wire_converter`) and the tolerant
reader of :mod:`payprotocol.codec` read: ``sensitive`` (a secret, masked in
``repr`` and by :func:`payprotocol.redaction.redact`), ``wire_required`` and
``envelope``; :func:`extra` is the ``extra_fields`` bag of unknown keys, its
``repr`` redacted too. Sans-IO; imports only :mod:`payprotocol.redaction`.
"""

from __future__ import annotations

from typing import Any

import attrs

from .redaction import redact

__all__ = ["context", "extra", "mask", "redacted_repr", "sensitive", "wire_required"]


def mask(value: object) -> str:
    """The ``repr`` of a secret: ``None`` or ``'***'``."""
    return "None" if value is None else "'***'"


def sensitive() -> Any:
    """An optional field whose value is a secret: masked in repr, logs, traces."""
    return attrs.field(default=None, repr=mask, metadata={"sensitive": True})


def redacted_repr(value: object) -> str:
    """``repr`` with secrets masked: unknown fields and raw data may hold one too."""
    return repr(redact(value))


def extra() -> Any:
    """The ``extra_fields`` of a model: wire keys it does not know, kept as received."""
    return attrs.field(factory=dict, kw_only=True, repr=lambda v: redacted_repr(v) if v else "{}")


def wire_required() -> Any:
    """A field the wire requires but a tolerant reader may find missing (6.2):
    strictly decoded it must be present; the tolerant fallback leaves it ``None``
    and reports the misfit."""
    return attrs.field(default=None, metadata={"wire_required": True})


def context() -> Any:
    """Filled by the codec from the envelope; never written into the data object."""
    return attrs.field(default=None, kw_only=True, metadata={"envelope": True})
