"""The tolerant reader over the wire (p3-protocol.md 6.2 to 6.5), over TCP and
WebSocket: a scripted server sends what a real PayServer plausibly might, and
the client reads everything it can, judges strictly only what decides money,
and never loses the connection to one unreadable message.

One example per bullet of the contract; the property tests
(``test_mutation_properties.py``) cover the same ground at random."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any, Dict, List, Optional

import pytest

from payprotocol import (
    PayClient,
    ProtocolViolationError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from payprotocol import models as m

from ..support.messages import reply, wire
from ..support.peer import Peer, Serve
from ..support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

Raw = Dict[str, Any]


def tx_wire(request: m.Message, **fields: Any) -> Raw:
    """The transaction object of a final response to ``request``, as wire JSON."""
    parameters = request.data.transaction_parameters
    transaction: Raw = {
        "transactionIdentifier": "tx-1",
        "type": "CHARGE",
        "status": "APPROVED",
        "amount": Decimal("10.00"),
        "currency": "EUR",
        "customIdentifier": parameters.custom_identifier,
        "created": "2026-11-29T12:00:00Z",
    }
    for key, value in fields.items():
        if value is _DELETE:
            transaction.pop(key, None)
        else:
            transaction[key] = value
    return transaction


_DELETE = object()


def final_wire(request: m.Message, **fields: Any) -> Raw:
    return wire(
        "EXECUTE_TRANSACTION_RESPONSE",
        request.tag,
        {"transaction": tx_wire(request, **fields)},
        resource=request.resource,
        status="OK",
    )


def answer_lookups(peer: Peer, transaction: Optional[Raw] = None) -> None:
    """Answer every following lookup with ``transaction`` (its identifier echoed)."""
    while True:
        try:
            request = peer.recv(timeout=10)
        except Exception:
            return
        found = dict(transaction or {"status": "APPROVED"})
        found["transactionIdentifier"] = request.data.transaction_identifier
        peer.send(
            wire("GET_TRANSACTION_RESPONSE", request.tag, {"transaction": found}, status="OK")
        )


def charge(client: PayClient, **kwargs: Any) -> m.Transaction:
    return client.charge("devices/r1", Decimal("10.00"), "EUR", **kwargs)


# --- 6.2 a field that does not fit never costs the message ---------------------------------


def test_a_lower_case_status_comes_back_as_that_status(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        message = final_wire(request, status="approved")
        message["status"] = "ok"
        peer.send(message)

    with PayClient(serve(handler).url, timeout=5) as client:
        tx = charge(client)
    assert tx.status is m.TransactionStatus.APPROVED


def test_a_lower_case_error_status_on_a_signature_response_is_an_error(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        error = {"type": "INVALID_REQUEST", "message": "signature refused"}
        peer.send(wire("SUBMIT_SIGNATURE_RESPONSE", request.tag, {}, status="error", error=error))

    with PayClient(serve(handler).url, timeout=5) as client, pytest.raises(ServerError) as caught:
        client.submit_signature("devices/r1", on_receipt=True)
    assert caught.value.error_type == "INVALID_REQUEST"


@pytest.mark.parametrize("error", [{}, None])
def test_an_empty_error_object_on_an_ok_login_is_no_error(serve: Serve, error: Any) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        data = {"devices": [{"name": "Counter", "identifier": "r1", "resource": "devices/r1"}]}
        peer.send(wire("LOGIN_MERCHANT_RESPONSE", request.tag, data, status="OK", error=error))

    with PayClient(serve(handler).url, timeout=5) as client:
        login = client.login("m-1", "s3cr3t")
    assert [device.resource for device in login.devices] == ["devices/r1"]


def test_an_error_object_without_type_is_still_the_server_saying_no(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(wire("GET_TRANSACTION_RESPONSE", request.tag, status="ERROR", error={}))

    with PayClient(serve(handler).url, timeout=5) as client, pytest.raises(ServerError) as caught:
        client.get_transaction(transaction_identifier="tx-1")
    assert caught.value.error_type == "UNKNOWN"


def test_a_byte_order_mark_in_front_of_a_message_costs_nothing(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        update = {"information": ["Present card", "10.00 EUR"], "abortable": True}
        peer.send_payload(
            "\ufeff"
            + codec_dumps(wire("EXECUTE_TRANSACTION_UPDATE", request.tag, update, status="OK"))
        )
        peer.send_payload("\ufeff" + codec_dumps(final_wire(request)))
        answer_lookups(peer)

    updates: List[Any] = []
    with PayClient(serve(handler).url, timeout=5) as client:
        tx = charge(client, on_update=updates.append)
        assert client.connected
        assert client.get_transaction(transaction_identifier="tx-1").status == "APPROVED"
    assert tx.status == "APPROVED"
    assert [update.information for update in updates] == [["Present card", "10.00 EUR"]]


def codec_dumps(message: Raw) -> str:
    from payprotocol.codec import dumps

    return dumps(message)


def test_an_approved_response_with_epoch_milliseconds_is_approved_and_can_be_looked_up(
    serve: Serve,
) -> None:
    millis = 1795953600000  # 2026-11-29T08:00:00Z

    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(final_wire(request, created=millis))
        answer_lookups(peer, tx_wire(request, created=millis))

    with PayClient(serve(handler).url, timeout=5) as client:
        tx = charge(client)
        found = client.get_transaction(transaction_identifier="tx-1")
    assert tx.status == "APPROVED" == found.status
    assert tx.created is not None and tx.created.timestamp() * 1000 == millis
    assert found.created == tx.created


def test_misfit_transaction_fields_leave_the_outcome_readable(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        receipt = {"data": {}, "merchantDetails": {"key": "NAME", "value": "Cafe"}}
        peer.send(
            final_wire(
                request,
                captured="true",
                statusDetails="approved by the issuer",
                merchantReceipt=receipt,
            )
        )
        answer_lookups(peer, tx_wire(request, statusDetails="approved by the issuer"))

    with PayClient(serve(handler).url, timeout=5) as client:
        tx = charge(client)
        assert client.get_transaction(transaction_identifier="tx-1").status == "APPROVED"
    assert tx.status == "APPROVED"
    assert tx.captured is True
    assert tx.status_details is None
    assert tx.extra_fields["statusDetails"] == "approved by the issuer"


def test_an_update_that_does_not_fit_reaches_on_update_typed(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        update = {"information": "Present card", "abortable": "true", "state": "waiting_for_pin"}
        peer.send(wire("EXECUTE_TRANSACTION_UPDATE", request.tag, update))
        peer.send(final_wire(request))

    updates: List[Any] = []
    with PayClient(serve(handler).url, timeout=5) as client:
        tx = charge(client, on_update=updates.append)
    assert tx.status == "APPROVED"
    [update] = updates
    assert isinstance(update, m.ExecuteTransactionUpdate)
    assert update.information == ["Present card"]  # the README's quickstart callback works
    assert update.abortable is True
    assert update.state is m.ProcessState.WAITING_FOR_PIN


def test_an_action_without_its_action_field_reaches_on_action(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        action = {"abortable": "maybe"}
        peer.send(
            wire("EXECUTE_TRANSACTION_ACTION", request.tag, action, resource=request.resource)
        )
        peer.send(final_wire(request))

    actions: List[Any] = []
    with PayClient(serve(handler).url, timeout=5) as client:
        tx = charge(client, on_action=actions.append)
    assert tx.status == "APPROVED"
    [action] = actions
    assert isinstance(action, m.ExecuteTransactionAction)
    assert action.tag is not None and action.resource == "devices/r1"


def test_an_action_that_does_not_fit_with_no_handler_is_aborted(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(wire("EXECUTE_TRANSACTION_ACTION", request.tag, {"action": ["SIGNATURE"]}))
        abort = peer.recv()
        assert abort.type == "ABORT_TRANSACTION_REQUEST"
        peer.send(reply(abort, m.AbortTransactionResponse()))
        peer.send(final_wire(request, status="ABORTED"))

    with PayClient(serve(handler).url, timeout=5) as client:
        tx = charge(client)  # no on_action anywhere: the automatic abort
    assert tx.status == "ABORTED"


# --- 6.3 money is judged, never guessed ----------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"status": _DELETE},
        {"status": None},
        {"status": 7},
        {"status": "PENDING"},
        {"status": "INCONCLUSIVE"},
        {"status": "APPROVED_PERHAPS"},
        {"customIdentifier": "somebody-else"},
        {"currency": "USD"},
    ],
    ids=["missing", "null", "number", "pending", "inconclusive", "unknown", "other-id", "usd"],
)
def test_an_untrusted_final_response_is_outcome_unknown_with_what_was_received(
    serve: Serve, fields: Dict[str, Any]
) -> None:
    sent: List[Raw] = []

    def handler(peer: Peer) -> None:
        request = peer.recv()
        message = final_wire(request, **fields)
        message["futureEnvelopeField"] = {"kept": [1, 2]}
        sent.append(message)
        peer.send(message)
        answer_lookups(peer)

    with PayClient(serve(handler).url, timeout=5) as client:
        with pytest.raises(TransactionOutcomeUnknownError) as caught:
            charge(client)
        assert client.connected  # nothing wrong with the connection
        assert client.get_transaction(transaction_identifier="tx-1").status == "APPROVED"
    assert caught.value.received == sent[0]  # as received, nothing dropped


def test_a_final_response_with_a_different_amount_is_its_outcome(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(final_wire(request, amount=Decimal("12.00"), includedTipAmount=Decimal("2.00")))

    with PayClient(serve(handler).url, timeout=5) as client:
        tx = charge(client)
    assert tx.status == "APPROVED" and tx.amount == Decimal("12.00")


# --- 6.4 one unreadable message never costs the connection ----------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        '{"type": "EXECUTE_TRANSACTION_RESPONSE", "tag": "%s", "status": "OK", broken',
        '["EXECUTE_TRANSACTION_RESPONSE", {"tag": "%s"}]',
    ],
    ids=["not-json", "not-object"],
)
def test_an_unreadable_message_with_a_transaction_tag_ends_it_at_once(
    serve: Serve, garbage: str
) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send_payload(garbage % request.tag)
        answer_lookups(peer)

    with PayClient(serve(handler).url, timeout=5, transaction_timeout=30) as client:
        with pytest.raises(TransactionOutcomeUnknownError) as caught:
            charge(client)  # ends at once, not after the 30 s timeout
        cause = caught.value.__cause__
        assert isinstance(cause, ProtocolViolationError) and not cause.broken_stream
        assert cause.payload is not None and caught.value.tag.encode() in cause.payload
        assert client.connected
        assert client.get_transaction(transaction_identifier="tx-1").status == "APPROVED"


def test_an_unreadable_message_with_a_lookup_tag_ends_it_with_a_protocol_violation(
    serve: Serve,
) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send_payload('{"tag": "' + request.tag + '", "type": ')
        answer_lookups(peer)

    with PayClient(serve(handler).url, timeout=30) as client:
        with pytest.raises(ProtocolViolationError) as caught:
            client.get_transaction(transaction_identifier="tx-1")
        assert not caught.value.broken_stream
        assert client.get_transaction(transaction_identifier="tx-2").status == "APPROVED"


def test_an_unreadable_message_is_logged_by_its_length_never_its_content(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send_payload("SECRET-LOOKING-GARBAGE {")
        peer.send(final_wire(request))

    with (
        caplog.at_level(logging.DEBUG, logger="payprotocol"),
        PayClient(serve(handler).url, timeout=5) as client,
    ):
        assert charge(client).status == "APPROVED"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "24 bytes" in logged
    assert "SECRET-LOOKING" not in logged


def test_a_binary_websocket_message_that_is_not_utf8_is_skipped(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        if peer.kind == "ws":
            peer.send_binary(b'{"type": "\xff\xfe"}')
        else:
            peer.send_payload(b'{"type": "\xff\xfe"}')
        peer.send(final_wire(request))

    with PayClient(serve(handler).url, timeout=5) as client:
        assert charge(client).status == "APPROVED"
        assert client.connected


# --- 6.5 routing oddities ------------------------------------------------------------------


def test_a_tagless_response_completes_the_one_waiting_request_of_its_type(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        message = final_wire(request)
        del message["tag"]
        peer.send(message)

    with (
        caplog.at_level(logging.WARNING, logger="payprotocol"),
        PayClient(serve(handler).url, timeout=5) as client,
    ):
        assert charge(client).status == "APPROVED"
    assert any("without a tag" in record.getMessage() for record in caplog.records)


def test_a_tagless_response_with_two_waiting_requests_is_a_late_result(serve: Serve) -> None:
    both = threading.Barrier(2, timeout=10)

    def handler(peer: Peer) -> None:
        first, second = peer.recv(), peer.recv()
        peer.send(wire("GET_TRANSACTION_RESPONSE", None, {"transaction": {"status": "APPROVED"}}))
        for request in (first, second):
            found = {"transactionIdentifier": request.data.transaction_identifier}
            peer.send(wire("GET_TRANSACTION_RESPONSE", request.tag, {"transaction": found}))

    late: List[m.Message] = []
    results: List[Any] = []
    with PayClient(serve(handler).url, timeout=5) as client:
        client.on_late_result(late.append)

        def lookup(identifier: str) -> None:
            both.wait()
            results.append(client.get_transaction(transaction_identifier=identifier))

        threads = [threading.Thread(target=lookup, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        eventually(lambda: len(late) == 1)
    assert sorted(tx.transaction_identifier for tx in results) == ["a", "b"]
    assert late[0].tag is None


def test_a_tagged_foreign_error_ends_a_plain_request_with_a_server_error(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        error = {"type": "INTERNAL_ERROR", "message": "no lookups today"}
        peer.send(wire("GENERIC_ERROR_RESPONSE", request.tag, status="ERROR", error=error))

    with PayClient(serve(handler).url, timeout=30) as client, pytest.raises(ServerError) as caught:
        client.get_transaction(transaction_identifier="tx-1")
    assert caught.value.error_type == "INTERNAL_ERROR"


def test_a_tagged_foreign_error_ends_a_transaction_as_outcome_unknown(serve: Serve) -> None:
    sent: List[Raw] = []

    def handler(peer: Peer) -> None:
        request = peer.recv()
        error = {"type": "INTERNAL_ERROR", "message": "backend trouble"}
        message = wire("ABORT_TRANSACTION_RESPONSE", request.tag, {}, status="ERROR", error=error)
        sent.append(message)
        peer.send(message)

    with (
        PayClient(serve(handler).url, timeout=5, transaction_timeout=30) as client,
        pytest.raises(TransactionOutcomeUnknownError) as caught,
    ):
        charge(client)
    assert isinstance(caught.value.__cause__, ServerError)
    assert caught.value.received == sent[0]
