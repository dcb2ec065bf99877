"""Money arguments: exact amounts in the currency's minor units.

Strategy: every amount a caller passes goes through :func:`exact` before it
reaches a model, so a ``float`` (and ``True``, which Python counts as an
``int``) is refused at the call, with the argument's name, long before
anything is sent; so is text that is not a plain decimal number (``"10,00"``,
``"ten"``, ``"+5"``), each with a ``ValueError`` naming the rule and the value.
Just before a request is sent, :func:`normalised` puts every amount of a
charge or an amend into its currency's minor units (ISO 4217: EUR 2, JPY 0,
KWD 3, from :mod:`payprotocol._iso4217`): ``Decimal("1E+1")`` EUR goes on the
wire as ``10.00``, ``10.001`` EUR is refused rather than rounded (rounding
money is the caller's decision), and a currency that is not an ISO 4217 code is
refused. Amounts stay :class:`~decimal.Decimal` from here to the wire.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation
from typing import Optional, TypeVar, Union

import attrs

from . import models as m
from ._iso4217 import MINOR_UNITS, PUBLISHED

__all__ = [
    "Amount",
    "amount_in",
    "display",
    "exact",
    "minor_units",
    "normalised",
    "optional_exact",
]

Amount = Union[Decimal, int, str]

# A plain decimal number as text: digits with an optional point, an optional
# exponent (Decimal's own notation), and no sign, no comma, no underscore.
_NUMBER = re.compile(r"\s*(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_SPECIAL = re.compile(r"\s*[+-]?(?:nan|snan|inf|infinity)\s*", re.IGNORECASE)
# Wide enough for any amount a card payment can have; a wider one is refused.
_CONTEXT = Context(prec=40, traps=[InvalidOperation])


def exact(amount: Amount, what: str = "amount") -> Decimal:
    """Money is exact: a Decimal, an int or plain decimal text, finite and
    without a sign. A float is refused (``TypeError``), so are ``"10,00"``,
    ``"ten"``, ``"-5"`` and ``"NaN"`` (``ValueError`` naming the rule)."""
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int, str)):
        raise TypeError(f"{what} must be a Decimal (or int/str), not {type(amount).__name__}")
    value = _parse_text(amount, what) if isinstance(amount, str) else Decimal(amount)
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {_shown(amount)}")
    if value.is_signed():
        raise ValueError(
            f"{what} must not carry a sign (amounts are never negative), got {_shown(amount)}"
        )
    return value


def optional_exact(amount: Optional[Amount], what: str = "amount") -> Optional[Decimal]:
    """:func:`exact`, passing ``None`` (no amount given) through."""
    return None if amount is None else exact(amount, what)


def minor_units(currency: str) -> Optional[int]:
    """The number of decimals of ``currency`` (ISO 4217); ``None`` for a code the
    standard gives no minor unit (``XAU``, ``XTS``). ``ValueError`` for anything
    that is not a current ISO 4217 alphabetic code."""
    if not isinstance(currency, str):
        raise TypeError(f"currency must be a str, not {type(currency).__name__}")
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        pass
    hint = (
        f": write it in capitals, {currency.upper()!r}" if currency.upper() in MINOR_UNITS else ""
    )
    raise ValueError(
        f"currency must be an ISO 4217 code like 'EUR' (List One, {PUBLISHED}), "
        f"got {currency!r}{hint}"
    )


def amount_in(
    amount: Amount, currency: Optional[str], what: str = "amount", *, zero: bool = False
) -> Decimal:
    """``amount`` checked by :func:`exact` and written in ``currency``'s minor
    units (``10`` EUR is ``10.00``, ``1E+1`` JPY is ``10``). Refused with a
    ``ValueError``: zero unless ``zero`` allows it, more decimals than the
    currency has (``10.001`` EUR; ``10.000`` is fine, nothing is lost), a
    currency that is not ISO 4217. Without a currency (a partial refund that
    leaves it to the charge) the amount is only written without an exponent."""
    value = exact(amount, what)
    if not zero and value == 0:
        raise ValueError(f"{what} must be above zero, got {_shown(amount)}")
    decimals = None if currency is None else minor_units(currency)
    if decimals is None:  # no minor unit known: keep the decimals, drop an exponent
        decimals = max(-int(value.as_tuple().exponent), 0)
    places = Decimal(1).scaleb(-decimals)
    try:
        normal = value.quantize(places, context=_CONTEXT)
    except InvalidOperation:
        raise ValueError(f"{what} is too large, got {_shown(amount)}") from None
    if normal != value:
        raise ValueError(
            f"{what} must have at most {decimals} decimal(s) for {currency} (ISO 4217), "
            f"got {_shown(amount)}"
        )
    return normal


def display(amount: Optional[Decimal], currency: Optional[str]) -> str:
    """``10.00 EUR`` for showing an amount (``-`` when absent): in the
    currency's minor units where that changes no value, otherwise as held."""
    if amount is None:
        return f"- {currency or ''}".strip()
    shown = amount
    decimals = MINOR_UNITS.get(currency or "")
    if decimals is not None and amount.is_finite():
        try:
            normal = amount.quantize(Decimal(1).scaleb(-decimals), context=_CONTEXT)
        except InvalidOperation:
            normal = amount
        if normal == amount:
            shown = normal
    return f"{shown} {currency or ''}".strip()


Request = TypeVar("Request", m.ExecuteTransactionRequest, m.AmendTransactionRequest)


def normalised(request: Request) -> Request:
    """A charge's or an amend's request with every amount in its currency's
    minor units, or a ``ValueError`` naming the field and the rule (called just
    before the request is sent: nothing leaves the process on a bad amount)."""
    if isinstance(request, m.ExecuteTransactionRequest):
        return _normalised_execute(request)
    return _normalised_amend(request)


def _normalised_execute(request: m.ExecuteTransactionRequest) -> m.ExecuteTransactionRequest:
    p = request.transaction_parameters
    currency = p.currency
    minor_units(currency)
    parameters = attrs.evolve(
        p,
        amount=amount_in(p.amount, currency, "amount"),
        application_fee=_optional(p.application_fee, currency, "application_fee"),
        included_tip_amount=_optional(p.included_tip_amount, currency, "included_tip_amount"),
    )
    process = request.process_parameters
    steps = None if process is None else process.steps
    if process is not None and steps is not None:
        new_steps = attrs.evolve(
            steps,
            ask_for_tip=_step(steps.ask_for_tip, currency, "ask_for_tip"),
            ask_for_total_amount=_step(
                steps.ask_for_total_amount, currency, "ask_for_total_amount"
            ),
        )
        process = attrs.evolve(process, steps=new_steps)
    return attrs.evolve(request, transaction_parameters=parameters, process_parameters=process)


def _normalised_amend(request: m.AmendTransactionRequest) -> m.AmendTransactionRequest:
    p = request.transaction_parameters
    if p.currency is not None:
        minor_units(p.currency)
    parameters = attrs.evolve(
        p,
        amount=None if p.amount is None else amount_in(p.amount, p.currency, "amount"),
        included_tip_amount=_optional(p.included_tip_amount, p.currency, "tip_amount"),
    )
    return attrs.evolve(request, transaction_parameters=parameters)


def _optional(amount: Optional[Amount], currency: Optional[str], what: str) -> Optional[Decimal]:
    return None if amount is None else amount_in(amount, currency, what, zero=True)


def _step(step: Optional[m.AmountStep], currency: str, what: str) -> Optional[m.AmountStep]:
    if step is None:
        return None
    return attrs.evolve(
        step,
        suggested_amount=_optional(step.suggested_amount, currency, f"{what}.suggested_amount"),
        max_tip_amount=_optional(step.max_tip_amount, currency, f"{what}.max_tip_amount"),
    )


def _parse_text(text: str, what: str) -> Decimal:
    if _NUMBER.fullmatch(text):
        return Decimal(text)
    if _SPECIAL.fullmatch(text):
        return Decimal(text.strip())  # NaN, Infinity: refused as not finite
    if "," in text:
        rule = "must use a decimal point, not a comma"
    elif text.strip()[:1] in ("+", "-") and _NUMBER.fullmatch(text.strip()[1:]):
        rule = "must not carry a sign (amounts are never negative)"
    else:
        rule = "must be a decimal number like 10.00"
    raise ValueError(f"{what} {rule}, got {text!r}")


def _shown(amount: Amount) -> str:
    return repr(amount) if isinstance(amount, str) else repr(str(amount))
