"""Money arguments: exact amounts only.

Strategy: every amount a caller passes goes through :func:`exact` before it
reaches a model, so a ``float`` (and ``True``, which Python counts as an
``int``) is refused at the call, with the argument's name, long before
anything is sent. Amounts stay :class:`~decimal.Decimal` from here to the wire.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Optional, Union

__all__ = ["Amount", "exact", "optional_exact"]

Amount = Union[Decimal, int, str]


def exact(amount: Amount, what: str = "amount") -> Decimal:
    """Money is exact: Decimal, int or a decimal string; a float is refused."""
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int, str)):
        raise TypeError(f"{what} must be a Decimal (or int/str), not {type(amount).__name__}")
    value = Decimal(amount)
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {amount!r}")
    return value


def optional_exact(amount: Optional[Amount], what: str = "amount") -> Optional[Decimal]:
    """:func:`exact`, passing ``None`` (no amount given) through."""
    return None if amount is None else exact(amount, what)
