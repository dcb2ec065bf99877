"""Money arguments are exact (Decimal, int or decimal text; nothing else) and go on
the wire in their currency's minor units (ISO 4217)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import pytest

from payprotocol import codec
from payprotocol import models as m
from payprotocol._money import amount_in, display, exact, minor_units, normalised, optional_exact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value", [True, False, 10.0, 0.1, None, [1], b"10"])
def test_anything_but_decimal_int_or_text_is_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="amount must be a Decimal"):
        exact(value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", Decimal("-Infinity")])
def test_a_non_finite_amount_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="finite"):
        exact(value)


def test_exact_amounts_pass_unchanged_and_none_means_absent() -> None:
    assert exact("10.00") == Decimal("10.00") and str(exact("10.00")) == "10.00"
    assert exact(7) == Decimal(7)
    assert optional_exact(None) is None
    with pytest.raises(TypeError, match="tip_amount"):
        exact(1.5, "tip_amount")


# --- minor units (ISO 4217), the rules and their messages ----------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "wire"),
    [
        (Decimal("1E+1"), "EUR", "10.00"),
        ("1E+1", "EUR", "10.00"),
        (7, "EUR", "7.00"),
        ("10.5", "EUR", "10.50"),
        ("10.000", "EUR", "10.00"),  # trailing zeros lose nothing
        ("500", "JPY", "500"),
        ("500.00", "JPY", "500"),
        ("1.5", "KWD", "1.500"),
        ("12.3456", "CLF", "12.3456"),
        ("0.125", "XAU", "0.125"),  # ISO gives gold no minor unit: kept as given
        (Decimal("1E+1"), None, "10"),  # a partial refund without a currency
    ],
)
def test_amounts_are_written_in_the_currencys_minor_units(
    amount: Any, currency: Any, wire: str
) -> None:
    assert str(amount_in(amount, currency)) == wire


@pytest.mark.parametrize(
    ("amount", "currency", "rule"),
    [
        ("10,00", "EUR", "decimal point, not a comma, got '10,00'"),
        ("1,000.00", "EUR", "not a comma, got '1,000.00'"),
        ("-5", "EUR", "must not carry a sign .*got '-5'"),
        ("+5", "EUR", "must not carry a sign .*got '\\+5'"),
        (Decimal("-5.00"), "EUR", "must not carry a sign .*got '-5.00'"),
        (Decimal("-0"), "EUR", "must not carry a sign"),
        (-3, "EUR", "must not carry a sign"),
        ("0", "EUR", "must be above zero, got '0'"),
        (Decimal("0.00"), "EUR", "must be above zero"),
        ("ten", "EUR", "must be a decimal number like 10.00, got 'ten'"),
        ("", "EUR", "must be a decimal number"),
        ("1_000", "EUR", "must be a decimal number"),
        ("10.001", "EUR", "at most 2 decimal\\(s\\) for EUR .*got '10.001'"),
        ("1.5", "JPY", "at most 0 decimal\\(s\\) for JPY"),
        ("1.0005", "KWD", "at most 3 decimal\\(s\\) for KWD"),
        ("1E+60", "EUR", "too large"),
        ("NaN", "EUR", "finite"),
        ("10.00", "XYZ", "ISO 4217 code like 'EUR'.*got 'XYZ'"),
        ("10.00", "eur", "got 'eur': write it in capitals, 'EUR'"),
        ("10.00", "EURO", "ISO 4217"),
    ],
)
def test_each_broken_rule_is_a_value_error_naming_it_and_the_value(
    amount: Any, currency: str, rule: str
) -> None:
    with pytest.raises(ValueError, match=rule) as raised:
        amount_in(amount, currency, "amount")
    assert not isinstance(raised.value, InvalidOperation)  # never the bare decimal error
    assert str(raised.value).startswith(("amount", "currency"))


def test_zero_where_the_message_allows_it() -> None:
    assert str(amount_in("0", "EUR", "tip_amount", zero=True)) == "0.00"
    with pytest.raises(ValueError, match="tip_amount must not carry a sign"):
        amount_in("-1", "EUR", "tip_amount", zero=True)


def test_minor_units_of_the_usual_currencies() -> None:
    assert (minor_units("EUR"), minor_units("JPY"), minor_units("KWD")) == (2, 0, 3)
    assert minor_units("XTS") is None
    with pytest.raises(ValueError, match="ISO 4217"):
        minor_units("XYZ")


def test_display_uses_minor_units_without_changing_a_value() -> None:
    assert display(Decimal("1E+1"), "EUR") == "10.00 EUR"
    assert display(Decimal("7"), "JPY") == "7 JPY"
    assert display(Decimal("10.005"), "EUR") == "10.005 EUR"  # never rounded for show
    assert display(None, "EUR") == "- EUR"
    assert display(Decimal("3"), None) == "3"


def _charge_request(**fields: Any) -> m.ExecuteTransactionRequest:
    parameters = dict(type="CHARGE", amount=Decimal("1E+1"), currency="EUR", auto_capture=True)
    parameters.update(fields.pop("parameters", {}))
    return m.ExecuteTransactionRequest(m.TransactionParameters(**parameters), **fields)


def test_a_charge_request_goes_on_the_wire_in_minor_units() -> None:
    steps = m.ProcessSteps(ask_for_tip=m.AmountStep(Decimal("2"), Decimal("5.0")))
    request = normalised(
        _charge_request(
            parameters=dict(application_fee=Decimal("0.1"), included_tip_amount=Decimal("0")),
            process_parameters=m.ProcessParameters(steps),
        )
    )
    text = codec.encode_message(
        m.Message("EXECUTE_TRANSACTION_REQUEST", "t-1", data=request)
    ).decode()
    assert '"amount":10.00' in text and "1E+1" not in text
    assert '"applicationFee":0.10' in text and '"includedTipAmount":0.00' in text
    assert '"suggestedAmount":2.00' in text and '"maxTipAmount":5.00' in text


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"parameters": {"amount": Decimal("10.001")}}, "amount must have at most 2"),
        ({"parameters": {"amount": Decimal(0)}}, "amount must be above zero"),
        ({"parameters": {"currency": "XYZ"}}, "currency must be an ISO 4217 code"),
        ({"parameters": {"amount": 10.0}}, "amount must be a Decimal"),
        ({"parameters": {"application_fee": Decimal("-1")}}, "application_fee must not carry"),
    ],
)
def test_a_charge_request_breaking_a_rule_is_refused(fields: Any, rule: str) -> None:
    with pytest.raises((ValueError, TypeError), match=rule):
        normalised(_charge_request(**fields))


def test_an_amend_request_goes_on_the_wire_in_minor_units() -> None:
    refund = normalised(
        m.AmendTransactionRequest(m.AmendParameters("REFUND", "tx-1", Decimal("5"), "JPY"))
    )
    assert str(refund.transaction_parameters.amount) == "5"
    tip = normalised(
        m.AmendTransactionRequest(
            m.AmendParameters("TIP_ADJUST", "tx-1", currency="EUR", included_tip_amount=2)
        )
    )
    assert str(tip.transaction_parameters.included_tip_amount) == "2.00"
    with pytest.raises(ValueError, match="amount must be above zero"):
        normalised(m.AmendTransactionRequest(m.AmendParameters("REFUND", "tx-1", Decimal(0))))
    with pytest.raises(ValueError, match="tip_amount must have at most 0 decimal"):
        normalised(
            m.AmendTransactionRequest(
                m.AmendParameters("TIP_ADJUST", "t", currency="JPY", included_tip_amount="0.5")
            )
        )
