"""Every flow of p3-protocol.md section 5 through PayClient against the real
simulator, over framed TCP and WebSocket."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, List

import pytest

from payprotocol import (
    ConnectionLostError,
    PayClient,
    ServerError,
    TransactionOutcomeUnknownError,
)
from payprotocol import models as m
from payprotocol.simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.timeout(60)

READER = "devices/reader1"


def sign_on_receipt(client: PayClient) -> Any:
    return lambda action: client.submit_signature(action.resource, on_receipt=True)


def test_login_lists_devices(url: str) -> None:
    with PayClient(url, timeout=5) as client:
        login = client.login("merchant-1", "secret-1", m.ProviderMode.TEST)
    assert [d.resource for d in login.devices] == ["devices/reader1", "devices/reader2"]
    assert login.devices[0].type == m.DeviceType.MOCK


def test_requests_before_login_are_refused(url: str) -> None:
    with PayClient(url, timeout=5) as client, pytest.raises(ServerError) as caught:
        client.charge(READER, Decimal("10.00"), "EUR")
    assert caught.value.error_type == m.ErrorType.NOT_LOGGED_IN


def test_wrong_secret_is_refused() -> None:
    config = SimulatorConfig(step_delay=0.005, merchants={"m-1": "right"}, ws_port=None)
    with Simulator(config) as sim, PayClient(sim.tcp_url, timeout=5) as client:
        with pytest.raises(ServerError) as caught:
            client.login("m-1", "wrong")
        assert caught.value.error_type == m.ErrorType.AUTHENTICATION_FAILED
        assert client.login("m-1", "right").devices


def test_signature_charge_answered_on_receipt(client: PayClient) -> None:
    updates: List[Any] = []
    actions: List[Any] = []

    def on_action(action: m.ExecuteTransactionAction) -> None:
        actions.append(action)
        client.submit_signature(action.resource, on_receipt=True)

    tx = client.charge(
        READER,
        Decimal("10.00"),
        "EUR",
        subject="Table 4",
        on_update=updates.append,
        on_action=on_action,
    )
    assert tx.status == m.TransactionStatus.APPROVED
    assert tx.amount == Decimal("10.00") and str(tx.amount) == "10.00"
    assert [a.action for a in actions] == [m.ActionType.SIGNATURE]
    assert all(len(u.information) == 2 for u in updates)
    assert tx.merchant_receipt is not None and tx.customer_receipt is not None
    assert tx.merchant_receipt.signature_line_required
    assert tx.custom_identifier  # assigned by the client


def test_signature_image(client: PayClient) -> None:
    tx = client.charge(
        READER,
        Decimal("10.00"),
        "EUR",
        on_action=lambda a: client.submit_signature(a.resource, b"\x89PNG\r\n\x1a\nfake"),
    )
    assert tx.status == "APPROVED"


def test_pin_charge(client: PayClient) -> None:
    states: List[Any] = []
    tx = client.charge(READER, Decimal("40.00"), "EUR", on_update=lambda u: states.append(u.state))
    assert tx.status == "APPROVED"
    assert m.ProcessState.WAITING_FOR_PIN in states


@pytest.mark.parametrize(
    ("amount", "code"),
    [("100.00", None), ("200.00", None), ("300.00", "CARD_BLOCKED"), ("21.00", "PIN_INCORRECT")],
)
def test_declines(client: PayClient, amount: str, code: str) -> None:
    tx = client.charge(READER, Decimal(amount), "EUR", on_action=sign_on_receipt(client))
    assert tx.status == m.TransactionStatus.DECLINED
    assert tx.merchant_receipt is None and tx.customer_receipt is None
    if code:
        assert tx.status_details is not None and tx.status_details.code == code


def test_application_selection(client: PayClient) -> None:
    offered: List[Any] = []

    def choose(action: m.ExecuteTransactionAction) -> None:
        assert action.action == m.ActionType.APPLICATION_SELECTION
        assert action.application_selection is not None
        offered.extend(action.application_selection.applications)
        client.submit_application_selection(action.resource, offered[0].identifier)

    assert client.charge(READER, Decimal("5.01"), "EUR", on_action=choose).status == "APPROVED"
    assert len(offered) >= 2


def test_credit_debit_selection(client: PayClient) -> None:
    def choose(action: m.ExecuteTransactionAction) -> None:
        assert action.action == m.ActionType.CREDIT_DEBIT_SELECTION
        client.submit_credit_debit_selection(action.resource, m.CreditDebit.DEBIT)

    assert client.charge(READER, Decimal("5.02"), "EUR", on_action=choose).status == "APPROVED"


def test_dcc_selection(client: PayClient) -> None:
    seen: List[m.DccSelection] = []

    def choose(action: m.ExecuteTransactionAction) -> None:
        assert action.dcc_selection is not None
        seen.append(action.dcc_selection)
        client.submit_dcc_selection(action.resource, use_converted_amount=False)

    assert client.charge(READER, Decimal("5.03"), "EUR", on_action=choose).status == "APPROVED"
    assert seen[0].original_amount == Decimal("5.03")


def test_action_answer_without_pending_action(client: PayClient) -> None:
    with pytest.raises(ServerError) as caught:
        client.submit_signature(READER, on_receipt=True)
    assert caught.value.error_type == m.ErrorType.NO_PENDING_ACTION


def test_abort_slow_presentation(client: PayClient) -> None:
    aborted = threading.Event()

    def on_update(update: m.ExecuteTransactionUpdate) -> None:
        if update.abortable and not aborted.is_set():
            aborted.set()
            client.abort_transaction(update.resource or READER)

    tx = client.charge(READER, Decimal("20.09"), "EUR", on_update=on_update)
    assert tx.status == m.TransactionStatus.ABORTED


def test_abort_without_transaction(client: PayClient) -> None:
    with pytest.raises(ServerError) as caught:
        client.abort_transaction(READER)
    assert caught.value.error_type == m.ErrorType.TRANSACTION_NOT_FOUND


def test_signature_stage_is_not_abortable(client: PayClient) -> None:
    errors: List[ServerError] = []

    def on_action(action: m.ExecuteTransactionAction) -> None:
        try:
            client.abort_transaction(action.resource or READER)
        except ServerError as exc:
            errors.append(exc)
        client.submit_signature(action.resource, on_receipt=True)

    tx = client.charge(READER, Decimal("10.00"), "EUR", on_action=on_action)
    assert tx.status == "APPROVED"
    assert errors[0].error_type == m.ErrorType.TRANSACTION_NOT_ABORTABLE


def test_unhandled_action_aborts(client: PayClient) -> None:
    tx = client.charge(READER, Decimal("5.02"), "EUR")  # credit/debit, nobody answers
    assert tx.status == m.TransactionStatus.ABORTED


def test_unhandled_signature_waits_for_the_server(url: str) -> None:
    # SIGNATURE is not abortable: the client logs why and waits for the reader
    # to end the step itself (here its 0.5 s action timeout), never silently.
    config = SimulatorConfig(step_delay=0.005, action_timeout=0.5)
    with (
        Simulator(config) as sim,
        PayClient(sim.tcp_url if url.startswith("tcp") else sim.ws_url, timeout=5) as client,
    ):
        client.login("merchant-1", "secret-1")
        tx = client.charge(READER, Decimal("10.00"), "EUR")
    assert tx.status in (m.TransactionStatus.APPROVED, m.TransactionStatus.ABORTED)


def test_device_busy_and_other_device_in_parallel(client: PayClient) -> None:
    results: List[Any] = []
    presenting = threading.Event()  # the slow card is being waited for: abortable

    def on_update(update: Any) -> None:
        if update.abortable:
            presenting.set()

    first = threading.Thread(
        target=lambda: results.append(
            client.charge(READER, Decimal("20.09"), "EUR", on_update=on_update)
        )
    )
    first.start()
    assert presenting.wait(5)
    with pytest.raises(ServerError) as caught:
        client.charge(READER, Decimal("1.00"), "EUR")
    assert caught.value.error_type == m.ErrorType.DEVICE_BUSY
    # Another reader and a lookup work while the first transaction runs.
    other = client.charge("devices/reader2", Decimal("1.00"), "EUR")
    assert other.status == "APPROVED"
    assert client.get_transaction(transaction_identifier=other.transaction_identifier or "")
    client.abort_transaction(READER)
    first.join(10)
    assert results[0].status == "ABORTED"


def test_unknown_resource(client: PayClient) -> None:
    with pytest.raises(ServerError) as caught:
        client.charge("devices/nowhere", Decimal("1.00"), "EUR")
    assert caught.value.error_type == m.ErrorType.UNKNOWN_RESOURCE


def test_refunds_full_partial_and_never_more_than_left(client: PayClient) -> None:
    charge = client.charge(READER, Decimal("50.00"), "EUR")
    assert charge.transaction_identifier
    updates: List[Any] = []
    part = client.refund(
        charge.transaction_identifier,
        amount=Decimal("20.00"),
        currency="EUR",
        on_update=updates.append,
    )
    assert part.type == m.TransactionType.REFUND and part.amount == Decimal("20.00")
    assert part.referenced_transaction_identifier == charge.transaction_identifier
    assert updates and isinstance(updates[0], m.AmendTransactionUpdate)
    with pytest.raises(ServerError) as caught:
        client.refund(charge.transaction_identifier, amount=Decimal("30.01"), currency="EUR")
    assert caught.value.error_type == m.ErrorType.INVALID_REQUEST
    rest = client.refund(charge.transaction_identifier)  # default: all that is left
    assert rest.amount == Decimal("30.00")
    with pytest.raises(ServerError):
        client.refund(charge.transaction_identifier, amount=Decimal("0.01"), currency="EUR")


def test_refund_of_unknown_transaction(client: PayClient) -> None:
    with pytest.raises(ServerError) as caught:
        client.refund("no-such-transaction")
    assert caught.value.error_type == m.ErrorType.TRANSACTION_NOT_FOUND


def test_preauthorisation_capture_once(client: PayClient) -> None:
    auth = client.charge(READER, Decimal("80.00"), "EUR", auto_capture=False)
    assert auth.status == "APPROVED" and auth.captured is False
    assert auth.transaction_identifier
    with pytest.raises(ServerError):
        client.capture(auth.transaction_identifier, amount=Decimal("80.01"), currency="EUR")
    captured = client.capture(auth.transaction_identifier, amount=Decimal("75.00"), currency="EUR")
    assert captured.type == m.TransactionType.CAPTURE and captured.amount == Decimal("75.00")
    with pytest.raises(ServerError):
        client.capture(auth.transaction_identifier)


def test_tip_adjust(client: PayClient) -> None:
    charge = client.charge(
        READER, Decimal("30.00"), "EUR", tip_adjustable=True, on_action=sign_on_receipt(client)
    )
    assert charge.transaction_identifier
    adjusted = client.tip_adjust(charge.transaction_identifier, Decimal("4.50"), "EUR")
    assert adjusted.type == m.TransactionType.TIP_ADJUST
    assert adjusted.included_tip_amount == Decimal("4.50")
    assert adjusted.amount == Decimal("34.50")


def test_lookup_by_both_identifiers(client: PayClient) -> None:
    charge = client.charge(READER, Decimal("2.34"), "EUR", custom_identifier="order-4711-x")
    assert charge.transaction_identifier
    by_id = client.get_transaction(transaction_identifier=charge.transaction_identifier)
    by_custom = client.get_transaction(custom_identifier="order-4711-x")
    assert by_id.transaction_identifier == by_custom.transaction_identifier
    assert by_custom.amount == Decimal("2.34")
    with pytest.raises(ServerError) as caught:
        client.get_transaction(custom_identifier="never-charged")
    assert caught.value.error_type == m.ErrorType.TRANSACTION_NOT_FOUND


def test_offline_mode_is_accepted(client: PayClient) -> None:
    tx = client.charge(READER, Decimal("7.00"), "EUR", mode=m.Mode.OFFLINE)
    assert tx.status == m.TransactionStatus.ACCEPTED


def test_tip_step_process_parameters(client: PayClient) -> None:
    steps = m.ProcessParameters(
        m.ProcessSteps(
            ask_for_tip=m.AmountStep(
                suggested_amount=Decimal("2.00"), max_tip_amount=Decimal("5.00")
            )
        )
    )
    tx = client.charge(READER, Decimal("5.50"), "EUR", process_parameters=steps)
    assert tx.status == "APPROVED"


def test_raw_request_unknown_type(client: PayClient) -> None:
    with pytest.raises(ServerError) as caught:
        client.request("FROBNICATE_REQUEST", {"x": Decimal("1.10")})
    assert caught.value.error_type == m.ErrorType.UNKNOWN_MESSAGE_TYPE


def test_raw_request_typed_lookup(client: PayClient) -> None:
    charge = client.charge(READER, Decimal("3.00"), "EUR")
    response = client.request(
        "GET_TRANSACTION_REQUEST", {"transactionIdentifier": charge.transaction_identifier}
    )
    assert isinstance(response.data, m.GetTransactionResponse)
    assert response.data.transaction is not None
    assert response.data.transaction.amount == Decimal("3.00")


def test_closed_client_refuses_requests(url: str) -> None:
    client = PayClient(url, timeout=5)
    client.connect()
    client.close()
    with pytest.raises(ConnectionLostError):
        client.get_transaction(custom_identifier="x")


def test_outcome_unknown_is_never_a_silent_failure(url: str, simulator: Simulator) -> None:
    from payprotocol.simulator import FaultPlan

    with PayClient(url, timeout=5) as client:
        client.login("merchant-1", "secret-1")
        simulator.set_faults(FaultPlan(drop_after=4))
        with pytest.raises(TransactionOutcomeUnknownError) as caught:
            client.charge(READER, Decimal("10.00"), "EUR", on_action=sign_on_receipt(client))
    simulator.set_faults(None)
    assert simulator.wait_idle(5)  # the reader finishes the transaction on its own
    truth = simulator.store.get_by_custom_identifier(caught.value.custom_identifier or "")
    assert truth is not None
    with PayClient(url, timeout=5) as client:
        client.login("merchant-1", "secret-1")
        found = client.get_transaction(custom_identifier=caught.value.custom_identifier or "")
    # The lookup tells the POS exactly what the reader did without it.
    assert (found.transaction_identifier, found.status) == (
        truth.transaction_identifier,
        truth.status,
    )
    assert m.is_final_status(found.status)
