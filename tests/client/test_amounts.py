"""Amounts reach the wire in their currency's minor units, through the client,
against the simulator over TCP and WebSocket (the simulator keeps the amount it
received, so what comes back is what was sent)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from payprotocol import PayClient

pytestmark = pytest.mark.timeout(30)


def test_an_amount_in_exponent_notation_is_sent_as_10_00(client: PayClient) -> None:
    client.on_action(lambda a: client.submit_signature(a.resource or "", on_receipt=True))
    tx = client.charge("devices/reader1", Decimal("1E+1"), "EUR")
    assert tx.status == "APPROVED"
    assert str(tx.amount) == "10.00"


def test_a_bad_amount_is_refused_before_anything_is_sent(client: PayClient) -> None:
    sent = []
    for amount, currency, rule in (
        ("10,00", "EUR", "comma"),
        ("10.001", "EUR", "at most 2 decimal"),
        ("5.5", "JPY", "at most 0 decimal"),
        ("-5", "EUR", "sign"),
        ("0", "EUR", "above zero"),
        ("ten", "EUR", "decimal number"),
        ("5.00", "XYZ", "ISO 4217"),
    ):
        with pytest.raises(ValueError, match=rule):
            client.charge("devices/reader1", amount, currency, custom_identifier=f"bad-{rule}")
        sent.append(f"bad-{rule}")
    for custom_identifier in sent:  # the server never heard of any of them
        with pytest.raises(Exception, match="TRANSACTION_NOT_FOUND"):
            client.get_transaction(custom_identifier=custom_identifier)


def test_a_tip_goes_on_the_captured_amount_of_a_pre_authorisation(client: PayClient) -> None:
    preauth = client.charge("devices/reader1", Decimal("40.00"), "EUR", auto_capture=False)
    assert preauth.status == "APPROVED" and preauth.captured is False
    identifier = preauth.transaction_identifier or ""
    captured = client.capture(identifier, amount=Decimal("30.00"), currency="EUR")
    assert captured.amount == Decimal("30.00")
    tipped = client.tip_adjust(identifier, Decimal("2.00"), "EUR")
    assert (tipped.amount, tipped.included_tip_amount) == (Decimal("32.00"), Decimal("2.00"))
    rest = client.refund(identifier)  # what is left to refund: the captured amount plus tip
    assert rest.amount == Decimal("32.00")


def test_the_raw_request_api_normalises_the_amounts_of_a_typed_request(client: PayClient) -> None:
    from payprotocol import models as m

    client.on_action(lambda a: client.submit_signature(a.resource or "", on_receipt=True))
    request = m.ExecuteTransactionRequest(
        m.TransactionParameters(type="CHARGE", amount=Decimal("1E+1"), currency="EUR"),
        mode="ONLINE",
    )
    response = client.request("EXECUTE_TRANSACTION_REQUEST", request, resource="devices/reader1")
    assert str(response.data.transaction.amount) == "10.00"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="sign"):
        client.request(
            "EXECUTE_TRANSACTION_REQUEST",
            m.ExecuteTransactionRequest(
                m.TransactionParameters(type="CHARGE", amount=Decimal("-5"), currency="EUR")
            ),
            resource="devices/reader1",
        )
