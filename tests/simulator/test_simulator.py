"""The simulated PayServer over real sockets on 127.0.0.1, without the client.

Each test talks raw P3 through tests/support/peer.py (framing + codec,
websocket-client for WebSocket), so the simulator is checked against the
contract on its own.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from decimal import Decimal
from typing import Iterator, List

import pytest
import websocket

from payprotocol.simulator import (
    FaultPlan,
    SimulatedDevice,
    Simulator,
    SimulatorConfig,
    card_script,
)

from ..support.messages import final_transaction, of_type, updates
from ..support.peer import Peer, PeerClosed, connect
from ..support.waiting import eventually, finished

FAST = dict(step_delay=0.005, slow_presentation=1.0)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(**FAST)) as simulator:  # type: ignore[arg-type]
        yield simulator


@pytest.fixture(autouse=True)
def _no_faults(sim: Simulator) -> Iterator[None]:
    sim.set_faults(FaultPlan())
    yield
    assert sim.wait_idle(), "a transaction is still running"


@pytest.fixture(params=["tcp", "ws"])
def peer(request: pytest.FixtureRequest, sim: Simulator) -> Iterator[Peer]:
    raw: Peer = connect(sim.tcp_url if request.param == "tcp" else sim.ws_url)
    with raw:
        assert raw.login()["status"] == "OK"
        yield raw


@pytest.fixture
def tcp(sim: Simulator) -> Iterator[Peer]:
    with connect(sim.tcp_url) as raw:
        assert raw.login()["status"] == "OK"
        yield raw


def error_of(response: dict) -> str:  # type: ignore[type-arg]
    assert response["status"] == "ERROR", response
    assert response["error"]["message"]
    return str(response["error"]["type"])


# --- lifecycle and login --------------------------------------------------------------


def test_urls_and_default_devices(sim: Simulator) -> None:
    assert sim.tcp_url == f"tcp://127.0.0.1:{sim.tcp_port}"
    assert sim.ws_url == f"ws://127.0.0.1:{sim.ws_port}/"
    assert [d.resource for d in sim.config.devices] == ["devices/reader1", "devices/reader2"]


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_login_ok(sim: Simulator, transport: str) -> None:
    with connect(sim.tcp_url if transport == "tcp" else sim.ws_url) as raw:
        response = raw.login()
    assert response["type"] == "LOGIN_MERCHANT_RESPONSE"
    assert response["status"] == "OK"
    data = response["loginMerchantResponse"]
    assert data["information"]["location"]
    assert data["devices"][0] == {
        "resource": "devices/reader1",
        "name": "Reader 1",
        "identifier": "reader1",
        "type": "MOCK",
        "comlink": "MOCK",
    }


def test_login_refused_for_unknown_merchant() -> None:
    config = SimulatorConfig(ws_port=None, merchants={"m-1": "right"})
    with Simulator(config) as sim, connect(sim.tcp_url) as raw:
        assert error_of(raw.login("m-1", "wrong")) == "AUTHENTICATION_FAILED"
        assert error_of(raw.login("m-2", "right")) == "AUTHENTICATION_FAILED"
        assert error_of(raw.request("GET_TRANSACTION_REQUEST", {"customIdentifier": "x"})) == (
            "NOT_LOGGED_IN"
        )
        assert raw.login("m-1", "right")["status"] == "OK"


def test_login_refused_for_empty_secret(sim: Simulator) -> None:
    with connect(sim.tcp_url) as raw:
        assert error_of(raw.login("m-1", "")) == "AUTHENTICATION_FAILED"


def test_requests_before_login_get_not_logged_in(sim: Simulator) -> None:
    with connect(sim.tcp_url) as raw:
        response = raw.response(raw.execute("10.00"))
        assert response["type"] == "EXECUTE_TRANSACTION_RESPONSE"
        assert error_of(response) == "NOT_LOGGED_IN"
        response = raw.request("ABORT_TRANSACTION_REQUEST", {}, resource="devices/reader1")
        assert error_of(response) == "NOT_LOGGED_IN"


def test_login_state_belongs_to_the_connection(sim: Simulator, tcp: Peer) -> None:
    with connect(sim.tcp_url) as other:
        assert error_of(other.response(other.execute("10.00"))) == "NOT_LOGGED_IN"


def test_restart_on_the_same_ports_keeps_the_store() -> None:
    with Simulator(SimulatorConfig(**FAST)) as sim:  # type: ignore[arg-type]
        tcp_url, ws_url = sim.tcp_url, sim.ws_url
        with connect(sim.tcp_url) as raw:
            raw.login()
            charged = final_transaction(raw.charge("5.00", customIdentifier="keep-me"))
        sim.restart()
        assert (sim.tcp_url, sim.ws_url) == (tcp_url, ws_url)
        for raw in (connect(sim.tcp_url), connect(sim.ws_url)):
            with raw:
                raw.login()
                found = raw.request("GET_TRANSACTION_REQUEST", {"customIdentifier": "keep-me"})
                assert found["getTransactionResponse"]["transaction"] == charged
        sim.stop()
        sim.start()
        assert sim.store.get(charged["transactionIdentifier"]) is not None
        assert sim.tcp_url == tcp_url


def test_restart_decides_a_running_transaction() -> None:
    config = SimulatorConfig(step_delay=0.005, slow_presentation=30.0)
    with Simulator(config) as sim, connect(sim.tcp_url) as raw:
        raw.login()
        raw.execute("5.09", customIdentifier="slow-one")  # waits 30 s for the card
        raw.expect(lambda m: m.get("executeTransactionUpdate", {}).get("abortable") is True)
        signing = connect(sim.tcp_url)
        signing.login()
        signing.execute("10.00", resource="devices/reader2", customIdentifier="signing")
        signing.expect(lambda m: m["type"] == "EXECUTE_TRANSACTION_ACTION")
        started = time.monotonic()
        sim.restart()
        assert time.monotonic() - started < 5
        signing.close()
        slow = sim.store.get_by_custom_identifier("slow-one")
        assert slow is not None and slow.status == "ABORTED"
        assert slow.status_details is not None and slow.status_details.code == "SERVER_SHUTDOWN"
        signed = sim.store.get_by_custom_identifier("signing")
        assert signed is not None and signed.status == "APPROVED"
        assert signed.merchant_receipt is not None
        assert signed.merchant_receipt.signature_line_required


# --- envelope and request errors -----------------------------------------------------


def test_unknown_message_type(peer: Peer) -> None:
    tag = peer.send_request("FROBNICATE_REQUEST", {"x": 1})
    response = peer.response(tag)
    assert response["type"] == "FROBNICATE_RESPONSE"
    assert error_of(response) == "UNKNOWN_MESSAGE_TYPE"


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"amount": None}, "executeTransactionRequest.transactionParameters.amount"),
        ({"amount": "ten"}, "executeTransactionRequest.transactionParameters.amount"),
        ({"amount": Decimal("-1.00")}, "executeTransactionRequest.transactionParameters.amount"),
        ({"amount": Decimal("1.001")}, "executeTransactionRequest.transactionParameters.amount"),
        ({"currency": "euro"}, "executeTransactionRequest.transactionParameters.currency"),
        ({"autoCapture": "yes"}, "executeTransactionRequest.transactionParameters.autoCapture"),
        ({"type": "REFUND"}, "executeTransactionRequest.transactionParameters.type"),
    ],
)
def test_invalid_execute_names_the_field(tcp: Peer, parameters: dict, field: str) -> None:  # type: ignore[type-arg]
    transaction = {"type": "CHARGE", "amount": Decimal("10.00"), "currency": "EUR"}
    transaction["autoCapture"] = True  # type: ignore[assignment]
    transaction.update(parameters)
    transaction = {k: v for k, v in transaction.items() if v is not None}
    tag = tcp.send_request(
        "EXECUTE_TRANSACTION_REQUEST",
        {"transactionParameters": transaction},
        resource="devices/reader1",
    )
    response = tcp.response(tag)
    assert error_of(response) == "INVALID_REQUEST"
    assert field in response["error"]["message"]


def test_missing_tag_and_missing_data(tcp: Peer) -> None:
    tcp.send_payload('{"type": "GET_TRANSACTION_REQUEST", "getTransactionRequest": {}}')
    response = tcp.recv_json()
    assert error_of(response) == "INVALID_REQUEST" and "tag" in response["error"]["message"]
    response = tcp.request("EXECUTE_TRANSACTION_REQUEST", None, resource="devices/reader1")
    assert error_of(response) == "INVALID_REQUEST"
    assert "executeTransactionRequest" in response["error"]["message"]
    response = tcp.request("GET_TRANSACTION_REQUEST", {})
    assert "exactly one" in response["error"]["message"]


def test_unknown_resource_and_missing_resource(tcp: Peer) -> None:
    assert error_of(tcp.response(tcp.execute("10.00", resource="devices/nope"))) == (
        "UNKNOWN_RESOURCE"
    )
    response = tcp.request("ABORT_TRANSACTION_REQUEST", {})
    assert error_of(response) == "INVALID_REQUEST" and "resource" in response["error"]["message"]


def test_device_not_connected() -> None:
    devices = [
        SimulatedDevice("reader1", "Reader 1"),
        SimulatedDevice("off", "Off", connected=False),
    ]
    with (
        Simulator(SimulatorConfig(ws_port=None, devices=devices)) as sim,
        connect(sim.tcp_url) as raw,
    ):
        raw.login()
        assert error_of(raw.response(raw.execute("10.00", resource="devices/off"))) == (
            "DEVICE_NOT_CONNECTED"
        )


# --- test-card outcomes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "status", "code", "cvm", "action"),
    [
        ("10.00", "APPROVED", "APPROVED", "SIGNATURE", "SIGNATURE"),
        ("40.00", "APPROVED", "APPROVED", "ONLINE_PIN", None),
        ("100.00", "DECLINED", "DECLINED", "NONE", None),
        ("5.00", "APPROVED", "APPROVED", "NONE", None),
        ("20.00", "APPROVED", "APPROVED", "OFFLINE_PIN", None),
        ("21.00", "DECLINED", "PIN_INCORRECT", "OFFLINE_PIN", None),
        ("44.00", "DECLINED", "PIN_INCORRECT", "ONLINE_PIN", None),
        ("30.00", "APPROVED", "APPROVED", "OFFLINE_PIN_AND_SIGNATURE", "SIGNATURE"),
        ("200.00", "DECLINED", "DECLINED_BY_ISSUER", "NONE", None),
        ("210.00", "DECLINED", "DECLINED_BY_ISSUER", "SIGNATURE", None),
        ("300.00", "DECLINED", "CARD_BLOCKED", "NONE", None),
        ("400.00", "APPROVED", "APPROVED", "NONE", None),
    ],
)
def test_test_card_outcomes(
    peer: Peer, amount: str, status: str, code: str, cvm: str, action: object
) -> None:
    messages = peer.charge(amount, subject="Table 4", customIdentifier=f"card-{amount}")
    transaction = final_transaction(messages)
    assert transaction["status"] == status
    assert transaction["statusDetails"]["code"] == code
    assert transaction["amount"] == Decimal(amount)
    assert transaction["type"] == "CHARGE"
    assert len(transaction["transactionIdentifier"]) == 32
    assert transaction["cardDetails"]["maskedCardNumber"].endswith("0119")
    assert transaction["paymentDetails"]["cvm"] == cvm
    actions = [
        m["executeTransactionAction"]["action"]
        for m in of_type(messages, "EXECUTE_TRANSACTION_ACTION")
    ]
    assert actions == ([action] if action else [])
    for update in updates(messages):
        assert len(update["information"]) == 2 and all(update["information"])
        assert isinstance(update["abortable"], bool) and update["state"] and update["stateDetails"]
    states = [u["state"] for u in updates(messages)]
    assert "WAITING_FOR_CARD_PRESENTATION" in states
    assert states[-1] == ("APPROVED" if status == "APPROVED" else "DECLINED")
    assert ("WAITING_FOR_PIN" in states) == ("PIN" in cvm and code != "CARD_BLOCKED")
    if status == "APPROVED":
        assert transaction["merchantReceipt"]["data"]["RECEIPT_TYPE"]["value"] == "Merchant Receipt"
        assert transaction["customerReceipt"]["data"]["AMOUNT_AND_CURRENCY"]["value"] == (
            f"{amount} EUR"
        )
        assert transaction["merchantReceipt"]["data"]["SUBJECT"]["value"] == "Table 4"
        assert transaction["captured"] is True
    else:
        assert "merchantReceipt" not in transaction and "customerReceipt" not in transaction


def test_signature_comes_after_online_authorisation_and_is_not_abortable(tcp: Peer) -> None:
    tag = tcp.execute("10.00")
    update = tcp.expect(lambda m: m["type"] == "EXECUTE_TRANSACTION_ACTION")
    states = [u["state"] for u in updates(tcp.backlog)]
    details = [u["stateDetails"] for u in updates(tcp.backlog)]
    assert details.index("AUTHORIZING") < len(details) - 1 and states[-1] == "ACTION_REQUIRED"
    assert updates(tcp.backlog)[-1]["abortable"] is False
    response = tcp.request("ABORT_TRANSACTION_REQUEST", {}, resource="devices/reader1")
    assert error_of(response) == "TRANSACTION_NOT_ABORTABLE"
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    bad = tcp.request(
        "SUBMIT_SIGNATURE_REQUEST", {"signature": "***not base64***"}, resource="devices/reader1"
    )
    assert error_of(bad) == "INVALID_REQUEST"
    ok = tcp.request("SUBMIT_SIGNATURE_REQUEST", {"signature": png}, resource="devices/reader1")
    assert ok["type"] == "SUBMIT_SIGNATURE_RESPONSE" and ok["status"] == "OK"
    assert ok["submitSignatureResponse"] == {}
    transaction = final_transaction(tcp.follow(tag))
    assert transaction["status"] == "APPROVED"
    assert transaction["merchantReceipt"]["signatureLineRequired"] is False
    assert update["resource"] == "devices/reader1"


def test_offline_mode_is_accepted(tcp: Peer) -> None:
    transaction = final_transaction(tcp.charge("200.00", request={"mode": "OFFLINE"}))
    assert transaction["status"] == "ACCEPTED" and transaction["mode"] == "OFFLINE"
    assert "merchantReceipt" in transaction


def test_ask_for_tip_adds_the_tip(tcp: Peer) -> None:
    steps = {"askForTip": {"suggestedAmount": Decimal("1.00"), "maxTipAmount": Decimal("5.00")}}
    messages = tcp.charge("5.00", request={"processParameters": {"steps": steps}})
    transaction = final_transaction(messages)
    assert transaction["amount"] == Decimal("6.00")
    assert transaction["includedTipAmount"] == Decimal("1.00")


def test_amounts_stay_exact_decimals_on_the_wire(sim: Simulator) -> None:
    with connect(sim.tcp_url) as raw:
        raw.login()
        raw.follow(raw.execute("5.00"))
        assert any(b'"amount":5.00' in chunk for chunk in raw.chunks)


def test_card_script_digit_rules() -> None:
    assert card_script(Decimal("10.00")).cvm.value == "SIGNATURE"
    assert card_script(Decimal("40.00")).cvm.value == "ONLINE_PIN"
    assert card_script(Decimal("100.00")).outcome.value == "DECLINE_AT_ONCE"
    assert card_script(Decimal("12.09")).extra.value == "SLOW_PRESENTATION"
    assert card_script(Decimal("12.01")).extra.value == "APPLICATION_SELECTION"
    assert not card_script(Decimal("21.00")).pin_correct


# --- actions -------------------------------------------------------------------------------


def test_application_selection(peer: Peer) -> None:
    tag = peer.execute("5.01")
    action = peer.expect(lambda m: m["type"] == "EXECUTE_TRANSACTION_ACTION")
    data = action["executeTransactionAction"]
    assert data["action"] == "APPLICATION_SELECTION"
    ids = [a["identifier"] for a in data["applicationSelection"]["applications"]]
    assert ids == ["A0000000031010", "A0000000032010"]
    wrong = peer.request(
        "SUBMIT_DCC_SELECTION_REQUEST", {"useConvertedAmount": True}, resource="devices/reader1"
    )
    assert error_of(wrong) == "NO_PENDING_ACTION"
    unknown = peer.request(
        "SUBMIT_APPLICATION_SELECTION_REQUEST",
        {"applicationIdentifier": "A999"},
        resource="devices/reader1",
    )
    assert error_of(unknown) == "INVALID_REQUEST"
    ok = peer.request(
        "SUBMIT_APPLICATION_SELECTION_REQUEST",
        {"applicationIdentifier": "A0000000032010"},
        resource="devices/reader1",
    )
    assert ok["status"] == "OK" and ok["type"] == "SUBMIT_APPLICATION_SELECTION_RESPONSE"
    transaction = final_transaction(peer.follow(tag))
    lines = {
        line["key"]: line["value"] for line in transaction["merchantReceipt"]["paymentDetails"]
    }
    assert lines["APPLICATION"] == "VISA ELECTRON"
    again = peer.request(
        "SUBMIT_APPLICATION_SELECTION_REQUEST",
        {"applicationIdentifier": "A0000000031010"},
        resource="devices/reader1",
    )
    assert error_of(again) == "NO_PENDING_ACTION"


def test_credit_debit_selection(peer: Peer) -> None:
    def answer(p: Peer, action: dict) -> None:  # type: ignore[type-arg]
        assert action["executeTransactionAction"]["action"] == "CREDIT_DEBIT_SELECTION"
        response = p.request(
            "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST",
            {"selection": "DEBIT"},
            resource=action["resource"],
        )
        assert response["status"] == "OK"

    transaction = final_transaction(peer.charge("5.02", on_action=answer))
    lines = {
        line["key"]: line["value"] for line in transaction["customerReceipt"]["paymentDetails"]
    }
    assert lines["ACCOUNT_TYPE"] == "DEBIT"


def test_dcc_selection(peer: Peer) -> None:
    seen = []

    def answer(p: Peer, action: dict) -> None:  # type: ignore[type-arg]
        seen.append(action["executeTransactionAction"])
        response = p.request(
            "SUBMIT_DCC_SELECTION_REQUEST",
            {"useConvertedAmount": True},
            resource=action["resource"],
        )
        assert response["status"] == "OK"

    transaction = final_transaction(peer.charge("5.03", on_action=answer))
    dcc = seen[0]["dccSelection"]
    assert seen[0]["action"] == "DCC_SELECTION"
    assert dcc["originalAmount"] == Decimal("5.03") and dcc["originalCurrency"] == "EUR"
    assert dcc["convertedCurrency"] == "USD" and isinstance(dcc["exchangeRate"], Decimal)
    lines = {
        line["key"]: line["value"] for line in transaction["merchantReceipt"]["paymentDetails"]
    }
    assert lines["DCC"].startswith(str(dcc["convertedAmount"]))


def test_answer_without_pending_action(peer: Peer) -> None:
    for request_type, data in [
        ("SUBMIT_SIGNATURE_REQUEST", {"signOnReceipt": True}),
        ("SUBMIT_APPLICATION_SELECTION_REQUEST", {"applicationIdentifier": "A0000000031010"}),
        ("SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST", {"selection": "CREDIT"}),
        ("SUBMIT_DCC_SELECTION_REQUEST", {"useConvertedAmount": False}),
    ]:
        response = peer.request(request_type, data, resource="devices/reader2")
        assert response["type"] == request_type.replace("_REQUEST", "_RESPONSE")
        assert error_of(response) == "NO_PENDING_ACTION"


# --- abort and busy devices ------------------------------------------------------------


def test_abort_during_slow_card_presentation(peer: Peer) -> None:
    tag = peer.execute("5.09", customIdentifier="abort-me")
    peer.expect(lambda m: m.get("executeTransactionUpdate", {}).get("abortable") is True)
    abort_tag = peer.send_request("ABORT_TRANSACTION_REQUEST", {}, resource="devices/reader1")
    both = [
        peer.expect(lambda m: m.get("tag") in (tag, abort_tag) and m["type"].endswith("_RESPONSE"))
        for _ in range(2)
    ]
    by_type = {m["type"]: m for m in both}
    assert by_type["ABORT_TRANSACTION_RESPONSE"]["status"] == "OK"
    transaction = by_type["EXECUTE_TRANSACTION_RESPONSE"]["executeTransactionResponse"][
        "transaction"
    ]
    assert transaction["status"] == "ABORTED" and "merchantReceipt" not in transaction
    assert by_type["EXECUTE_TRANSACTION_RESPONSE"]["status"] == "OK"
    response = peer.request("ABORT_TRANSACTION_REQUEST", {}, resource="devices/reader1")
    assert error_of(response) == "TRANSACTION_NOT_FOUND"


def test_abort_during_an_abortable_action(tcp: Peer) -> None:
    tag = tcp.execute("5.02")
    tcp.expect(lambda m: m["type"] == "EXECUTE_TRANSACTION_ACTION")
    assert (
        tcp.request("ABORT_TRANSACTION_REQUEST", {}, resource="devices/reader1")["status"] == "OK"
    )
    assert final_transaction(tcp.follow(tag))["status"] == "ABORTED"


def test_abort_without_transaction(tcp: Peer) -> None:
    response = tcp.request("ABORT_TRANSACTION_REQUEST", {}, resource="devices/reader2")
    assert response["type"] == "ABORT_TRANSACTION_RESPONSE"
    assert error_of(response) == "TRANSACTION_NOT_FOUND"


def test_device_busy_and_parallel_devices(sim: Simulator, tcp: Peer) -> None:
    slow = tcp.execute("5.09")
    tcp.expect(lambda m: m.get("tag") == slow)
    busy = tcp.response(tcp.execute("10.00"))
    assert error_of(busy) == "DEVICE_BUSY"
    with connect(sim.tcp_url) as other:  # another connection, same reader
        other.login()
        assert error_of(other.response(other.execute("5.00"))) == "DEVICE_BUSY"
        assert final_transaction(other.charge("5.00", resource="devices/reader2"))["status"] == (
            "APPROVED"
        )
    assert (
        tcp.request("ABORT_TRANSACTION_REQUEST", {}, resource="devices/reader1")["status"] == "OK"
    )
    assert final_transaction(tcp.follow(slow))["status"] == "ABORTED"
    assert final_transaction(tcp.charge("5.00"))["status"] == "APPROVED"  # free again


def test_disconnect_mid_transaction_still_ends_and_stores(sim: Simulator) -> None:
    raw = connect(sim.tcp_url)
    raw.login()
    raw.execute("10.00", customIdentifier="gone-while-signing")
    raw.expect(lambda m: m["type"] == "EXECUTE_TRANSACTION_ACTION")
    raw.close()
    done = eventually(lambda: finished(sim, "gone-while-signing"))
    assert done.status == "APPROVED" and done.merchant_receipt.signature_line_required
    raw = connect(sim.tcp_url)
    raw.login()
    raw.execute("5.01", customIdentifier="gone-while-choosing")
    raw.expect(lambda m: m["type"] == "EXECUTE_TRANSACTION_ACTION")
    raw.close()
    done = eventually(lambda: finished(sim, "gone-while-choosing"))
    assert done.status == "ABORTED" and done.status_details.code == "CLIENT_DISCONNECTED"
    with connect(sim.tcp_url) as again:  # the reader is free and the server alive
        again.login()
        assert final_transaction(again.charge("5.00"))["status"] == "APPROVED"


# --- amend: refunds, capture, tip adjust ---------------------------------------------------


def amend(raw: Peer, kind: str, reference: str, **parameters: object) -> List[dict]:  # type: ignore[type-arg]
    data = {
        "transactionParameters": {
            "type": kind,
            "referencedTransactionIdentifier": reference,
            **parameters,
        }
    }
    tag = raw.send_request("AMEND_TRANSACTION_REQUEST", data, resource=None)
    return raw.follow(tag)


def amended(messages: List[dict]) -> dict:  # type: ignore[type-arg]
    response = messages[-1]
    assert response["type"] == "AMEND_TRANSACTION_RESPONSE" and response["status"] == "OK", response
    assert len(messages) >= 2
    for update in messages[:-1]:
        assert update["type"] == "AMEND_TRANSACTION_UPDATE"
        assert len(update["amendTransactionUpdate"]["information"]) == 2
        assert update["amendTransactionUpdate"]["abortable"] is False
    return response["amendTransactionResponse"]["transaction"]  # type: ignore[no-any-return]


def test_refunds_partial_and_full_never_more_than_left(peer: Peer) -> None:
    charge = final_transaction(peer.charge("5.00"))
    reference = charge["transactionIdentifier"]
    refund = amended(
        amend(
            peer,
            "REFUND",
            reference,
            amount=Decimal("2.00"),
            currency="EUR",
            customIdentifier="refund-1",
        )
    )
    assert refund["type"] == "REFUND" and refund["status"] == "APPROVED"
    assert refund["amount"] == Decimal("2.00")
    assert refund["referencedTransactionIdentifier"] == reference
    assert refund["merchantReceipt"]["data"]["TRANSACTION_TYPE"]["value"] == "Refund"
    too_much = amend(peer, "REFUND", reference, amount=Decimal("3.01"))[-1]
    assert error_of(too_much) == "INVALID_REQUEST" and "exceeds" in too_much["error"]["message"]
    rest = amended(amend(peer, "REFUND", reference))
    assert rest["amount"] == Decimal("3.00")
    nothing = amend(peer, "REFUND", reference)[-1]
    assert error_of(nothing) == "INVALID_REQUEST" and "nothing" in nothing["error"]["message"]
    assert error_of(amend(peer, "REFUND", refund["transactionIdentifier"])[-1]) == "INVALID_REQUEST"


def test_amend_errors(tcp: Peer) -> None:
    declined = final_transaction(tcp.charge("100.00"))
    response = amend(tcp, "REFUND", declined["transactionIdentifier"])[-1]
    assert error_of(response) == "INVALID_REQUEST" and "approved" in response["error"]["message"]
    assert error_of(amend(tcp, "REFUND", "f" * 32)[-1]) == "TRANSACTION_NOT_FOUND"
    charge = final_transaction(tcp.charge("5.00"))
    response = amend(tcp, "REFUND", charge["transactionIdentifier"], currency="USD")[-1]
    assert error_of(response) == "INVALID_REQUEST" and "currency" in response["error"]["message"]
    response = amend(tcp, "CAPTURE", charge["transactionIdentifier"])[-1]
    assert (
        error_of(response) == "INVALID_REQUEST"
        and "pre-authorisation" in response["error"]["message"]
    )
    response = amend(tcp, "VOID", charge["transactionIdentifier"])[-1]
    assert "type" in response["error"]["message"]


def test_capture_a_pre_authorisation_once(peer: Peer) -> None:
    preauth = final_transaction(peer.charge("6.00", autoCapture=False))
    assert preauth["status"] == "APPROVED" and preauth["captured"] is False
    reference = preauth["transactionIdentifier"]
    refused = amend(peer, "REFUND", reference)[-1]
    assert error_of(refused) == "INVALID_REQUEST" and "captured" in refused["error"]["message"]
    assert error_of(amend(peer, "CAPTURE", reference, amount=Decimal("6.01"))[-1]) == (
        "INVALID_REQUEST"
    )
    capture = amended(amend(peer, "CAPTURE", reference, amount=Decimal("5.00")))
    assert capture["type"] == "CAPTURE" and capture["amount"] == Decimal("5.00")
    again = amend(peer, "CAPTURE", reference)[-1]
    assert error_of(again) == "INVALID_REQUEST" and "already" in again["error"]["message"]
    looked_up = peer.request("GET_TRANSACTION_REQUEST", {"transactionIdentifier": reference})
    assert looked_up["getTransactionResponse"]["transaction"]["captured"] is True
    assert (
        error_of(amend(peer, "REFUND", reference, amount=Decimal("5.01"))[-1]) == "INVALID_REQUEST"
    )
    assert amended(amend(peer, "REFUND", reference))["amount"] == Decimal("5.00")


def test_tip_adjust(peer: Peer) -> None:
    charge = final_transaction(peer.charge("5.00", tipAdjustable=True))
    assert charge["merchantReceipt"]["tipLineRequired"] is True
    reference = charge["transactionIdentifier"]
    missing = amend(peer, "TIP_ADJUST", reference)[-1]
    assert (
        error_of(missing) == "INVALID_REQUEST"
        and "includedTipAmount" in missing["error"]["message"]
    )
    adjusted = amended(amend(peer, "TIP_ADJUST", reference, includedTipAmount=Decimal("1.50")))
    assert adjusted["type"] == "TIP_ADJUST"
    assert adjusted["amount"] == Decimal("6.50") and adjusted["includedTipAmount"] == Decimal(
        "1.50"
    )
    assert amended(amend(peer, "REFUND", reference))["amount"] == Decimal("6.50")


# --- lookups ---------------------------------------------------------------------------------


def test_lookups(sim: Simulator, peer: Peer) -> None:
    first = final_transaction(peer.charge("5.00", customIdentifier="order-77"))
    second = final_transaction(peer.charge("100.00", customIdentifier="order-77"))
    by_id = peer.request(
        "GET_TRANSACTION_REQUEST", {"transactionIdentifier": first["transactionIdentifier"]}
    )
    assert by_id["type"] == "GET_TRANSACTION_RESPONSE"
    assert by_id["getTransactionResponse"]["transaction"] == first
    by_custom = peer.request("GET_TRANSACTION_REQUEST", {"customIdentifier": "order-77"})
    assert by_custom["getTransactionResponse"]["transaction"] == second  # the latest one
    missing = peer.request("GET_TRANSACTION_REQUEST", {"customIdentifier": "no-such-order"})
    assert error_of(missing) == "TRANSACTION_NOT_FOUND"
    both = peer.request(
        "GET_TRANSACTION_REQUEST", {"customIdentifier": "a", "transactionIdentifier": "b"}
    )
    assert error_of(both) == "INVALID_REQUEST"
    with connect(sim.tcp_url) as stranger:  # another merchant sees nothing
        stranger.login("someone-else", "x")
        hidden = stranger.request("GET_TRANSACTION_REQUEST", {"customIdentifier": "order-77"})
        assert error_of(hidden) == "TRANSACTION_NOT_FOUND"
    stored = sim.store.get(first["transactionIdentifier"])
    assert stored is not None and stored.amount == Decimal("5.00")


def test_lookup_while_running_shows_pending(tcp: Peer) -> None:
    tag = tcp.execute("5.09", customIdentifier="running-now")
    tcp.expect(lambda m: m.get("tag") == tag)
    found = tcp.request("GET_TRANSACTION_REQUEST", {"customIdentifier": "running-now"})
    assert found["getTransactionResponse"]["transaction"]["status"] == "PENDING"
    tcp.request("ABORT_TRANSACTION_REQUEST", {}, resource="devices/reader1")
    tcp.follow(tag)


# --- broken clients ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x05hello",  # not JSON
        b"\x00\x00\x00\x02\xff\xfe",  # not UTF-8
        b"\x00\x00\x00\x09[1, 2, 3]",  # not an object
        b"\x00\x00\x00\x00",  # empty frame
        b"\xff\xff\xff\xff",  # beyond the size cap
    ],
)
def test_tcp_garbage_closes_only_that_connection(sim: Simulator, tcp: Peer, garbage: bytes) -> None:
    with connect(sim.tcp_url) as bad:
        bad.send_wire(garbage)
        bad.wait_closed()
    assert final_transaction(tcp.charge("5.00"))["status"] == "APPROVED"


@pytest.mark.parametrize("garbage", ["hello", "[1, 2, 3]", b"\x00binary"])
def test_ws_garbage_closes_only_that_connection(sim: Simulator, tcp: Peer, garbage: object) -> None:
    with connect(sim.ws_url) as bad:
        if isinstance(garbage, bytes):
            bad.send_binary(garbage)
        else:
            bad.send_payload(garbage)
        bad.wait_closed()
    assert final_transaction(tcp.charge("5.00"))["status"] == "APPROVED"


def test_ws_wrong_path_is_refused(sim: Simulator) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        connect(sim.ws_url + "elsewhere")
    assert caught.value.status_code == 404


def test_secrets_are_not_logged(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="payprotocol.simulator")
    with connect(sim.tcp_url) as raw:
        raw.login("m-1", "top-secret-value")
        raw.charge("10.00")
    assert "LOGIN_MERCHANT_REQUEST" in caplog.text and "EXECUTE_TRANSACTION_RESPONSE" in caplog.text
    assert "top-secret-value" not in caplog.text


def test_many_connections_in_parallel(sim: Simulator) -> None:
    results: List[str] = []

    def pay(resource: str) -> None:
        with connect(sim.tcp_url) as raw:
            raw.login()
            for _ in range(3):
                results.append(final_transaction(raw.charge("5.00", resource=resource))["status"])

    threads = [threading.Thread(target=pay, args=(f"devices/reader{i}",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["APPROVED"] * 6


def test_closed_socket_errors_are_peer_closed(sim: Simulator) -> None:
    raw = connect(sim.tcp_url)
    raw.conn.shutdown(socket.SHUT_WR)
    with pytest.raises(PeerClosed):
        raw.recv_json(2)
    raw.close()
