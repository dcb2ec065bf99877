"""The payworks test card (p3-protocol.md section 7): the amount decides the outcome.

Pure functions, no I/O. :func:`card_script` reads the digits of the amount once
and returns a :class:`CardScript` that the engine plays step by step:

* hundreds digit = outcome: 0 approve online, 1 decline at once, 2 decline
  after online authorisation, 3 card blocked, 4-9 approve like 0;
* tens digit = cardholder verification: 0 none, 1 signature, 2 offline PIN,
  3 offline PIN and signature, 4 online PIN (5-9: none);
* units digit = PIN result: 0 correct, anything else fails (only matters when a
  PIN is asked);
* cents (simulator extras): .01 application selection, .02 credit/debit
  selection, .03 DCC selection, .09 slow card presentation.

So 10.00 is signature + approved, 40.00 online PIN + approved and 100.00
declined at once, as the documentation promises.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Optional

import attrs

from .._iso4217 import MINOR_UNITS

__all__ = [
    "TEST_APPLICATIONS",
    "TEST_CARD",
    "CardScript",
    "Cvm",
    "Extra",
    "Outcome",
    "card_script",
    "currency_decimals",
    "dcc_quote",
    "format_money",
    "is_currency",
]


class Outcome(enum.Enum):
    """What the card and the issuer decide."""

    APPROVE = "APPROVE"
    DECLINE_AT_ONCE = "DECLINE_AT_ONCE"
    DECLINE_ONLINE = "DECLINE_ONLINE"
    BLOCKED = "BLOCKED"


class Cvm(enum.Enum):
    """Cardholder verification method; the value is what ``paymentDetails.cvm`` says."""

    NONE = "NONE"
    SIGNATURE = "SIGNATURE"
    OFFLINE_PIN = "OFFLINE_PIN"
    OFFLINE_PIN_AND_SIGNATURE = "OFFLINE_PIN_AND_SIGNATURE"
    ONLINE_PIN = "ONLINE_PIN"

    @property
    def asks_pin(self) -> bool:
        return self in (Cvm.OFFLINE_PIN, Cvm.OFFLINE_PIN_AND_SIGNATURE, Cvm.ONLINE_PIN)

    @property
    def asks_signature(self) -> bool:
        return self in (Cvm.SIGNATURE, Cvm.OFFLINE_PIN_AND_SIGNATURE)


class Extra(enum.Enum):
    """The simulator's extra step chosen by the cents."""

    NONE = "NONE"
    APPLICATION_SELECTION = "APPLICATION_SELECTION"
    CREDIT_DEBIT_SELECTION = "CREDIT_DEBIT_SELECTION"
    DCC_SELECTION = "DCC_SELECTION"
    SLOW_PRESENTATION = "SLOW_PRESENTATION"


_OUTCOMES = {1: Outcome.DECLINE_AT_ONCE, 2: Outcome.DECLINE_ONLINE, 3: Outcome.BLOCKED}
_CVMS = {
    1: Cvm.SIGNATURE,
    2: Cvm.OFFLINE_PIN,
    3: Cvm.OFFLINE_PIN_AND_SIGNATURE,
    4: Cvm.ONLINE_PIN,
}
_EXTRAS = {
    1: Extra.APPLICATION_SELECTION,
    2: Extra.CREDIT_DEBIT_SELECTION,
    3: Extra.DCC_SELECTION,
    9: Extra.SLOW_PRESENTATION,
}


@attrs.frozen
class CardScript:
    """What the test card will do for one amount."""

    outcome: Outcome
    cvm: Cvm
    pin_correct: bool
    extra: Extra


def card_script(amount: Decimal) -> CardScript:
    """The test card's behaviour for ``amount`` (a positive ``Decimal``)."""
    whole = int(amount)  # truncates toward zero; amounts are positive here
    cents = int((amount * 100) % 100)
    return CardScript(
        outcome=_OUTCOMES.get((whole // 100) % 10, Outcome.APPROVE),
        cvm=_CVMS.get((whole // 10) % 10, Cvm.NONE),
        pin_correct=whole % 10 == 0,
        extra=_EXTRAS.get(cents, Extra.NONE),
    )


@attrs.frozen
class TestCard:
    """The card the simulated shopper always presents."""

    __test__ = False  # not a pytest class, despite the name

    scheme: str = "VISA"
    masked_card_number: str = "************0119"
    cardholder_name: str = "A SHOPPER"
    expiry_month: int = 12
    expiry_year: int = 2030
    country_code_numeric: str = "276"


TEST_CARD = TestCard()

#: The applications offered by ``APPLICATION_SELECTION`` (identifier, name).
TEST_APPLICATIONS = (("A0000000031010", "VISA CREDIT"), ("A0000000032010", "VISA ELECTRON"))


def is_currency(currency: str) -> bool:
    """Whether ``currency`` is a current ISO 4217 alphabetic code."""
    return currency in MINOR_UNITS


def currency_decimals(currency: str) -> Optional[int]:
    """How many decimals an amount in ``currency`` may have (ISO 4217);
    ``None`` for a code without minor units (``XAU``) or an unknown one."""
    return MINOR_UNITS.get(currency)


def format_money(amount: Optional[Decimal], currency: Optional[str]) -> str:
    """``10.00 EUR``: the amount with its currency's decimals, for display lines."""
    if amount is None:
        return f"- {currency or ''}".strip()
    decimals = currency_decimals(currency or "")
    shown = amount if decimals is None else amount.quantize(Decimal(1).scaleb(-decimals))
    return f"{shown} {currency or ''}".strip()


def dcc_quote(amount: Decimal, currency: str) -> tuple[Decimal, str, Decimal, Decimal]:
    """A fixed dynamic-currency-conversion quote: (converted, currency, rate, markup)."""
    target = "USD" if currency != "USD" else "EUR"
    rate = Decimal("1.142") if target == "USD" else Decimal("0.876")
    return (amount * rate).quantize(Decimal("0.01")), target, rate, Decimal("3.5")
