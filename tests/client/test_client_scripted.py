"""PayClient against a scripted server over real sockets: correlation,
callbacks, timeouts, faults. Runs over framed TCP and WebSocket."""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import Any, List

import pytest

from payprotocol import (
    CallbackDeadlockError,
    ConnectionLostError,
    PayClient,
    ProtocolViolationError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from payprotocol import models as m

from ..support.messages import execute_final as final
from ..support.messages import execute_update, reply, transaction, wire
from ..support.peer import Peer, ScriptedServer, Serve
from ..support.waiting import eventually

pytestmark = pytest.mark.timeout(30)


update = execute_update


def lookup_echo(peer: Peer) -> None:
    """Answers every GET_TRANSACTION_REQUEST with the identifier it asked for."""
    while True:
        try:
            request = peer.recv(timeout=30)
        except Exception:
            return
        identifier = request.data.transaction_identifier
        peer.send(
            reply(request, m.GetTransactionResponse(transaction(transaction_identifier=identifier)))
        )


def test_out_of_order_responses(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        first, second = peer.recv(), peer.recv()
        for request in (second, first):  # answer in the reverse order
            identifier = request.data.transaction_identifier
            peer.send(
                reply(
                    request,
                    m.GetTransactionResponse(transaction(transaction_identifier=identifier)),
                )
            )

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client:
        results: dict = {}
        threads = [
            threading.Thread(
                target=lambda i=i: results.__setitem__(
                    i, client.get_transaction(transaction_identifier=f"id-{i}")
                )
            )
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    assert {i: tx.transaction_identifier for i, tx in results.items()} == {0: "id-0", 1: "id-1"}


def test_16_threads_x_100_requests_all_matched(serve: Serve) -> None:
    server = serve(lookup_echo)
    mismatches: List[Any] = []
    with PayClient(server.url, timeout=20) as client:

        def worker(n: int) -> None:
            for i in range(100):
                identifier = f"t{n}-{i}"
                got = client.get_transaction(
                    transaction_identifier=identifier
                ).transaction_identifier
                if got != identifier:
                    mismatches.append((identifier, got))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(25)
        assert not any(thread.is_alive() for thread in threads)
    assert mismatches == []


def test_callbacks_in_arrival_order_per_call_and_client_wide(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        for i in range(20):
            peer.send(update(request, [f"line {i}", "10.00 EUR"]))
        peer.send(final(request))

    server = serve(handler)
    per_call: List[str] = []
    client_wide: List[str] = []
    with PayClient(server.url, timeout=5) as client:
        client.on_update(lambda u: client_wide.append(u.information[0]))
        tx = client.charge(
            "devices/r1",
            Decimal("10.00"),
            "EUR",
            on_update=lambda u: per_call.append(u.information[0]),
        )
        # No waiting: charge() returns after the updates before its response ran.
        assert len(per_call) == len(client_wide) == 20
    assert tx.status == m.TransactionStatus.APPROVED
    assert per_call == client_wide == [f"line {i}" for i in range(20)]


def test_raising_callback_is_contained(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(update(request, ["one", ""]))
        peer.send(update(request, ["two", ""]))
        peer.send(final(request))

    server = serve(handler)
    seen: List[str] = []
    hooked: List[Any] = []

    def bad(update: Any) -> None:
        seen.append(update.information[0])
        raise RuntimeError("boom in POS code")

    with PayClient(
        server.url, timeout=5, on_callback_error=lambda exc, arg: hooked.append(exc)
    ) as client:
        client.on_update(lambda u: seen.append("global " + u.information[0]))
        with caplog.at_level(logging.ERROR, logger="payprotocol"):
            # No waiting: charge() returns after the updates before its response ran.
            tx = client.charge("devices/r1", Decimal("10.00"), "EUR", on_update=bad)
    assert tx.status == "APPROVED"
    assert seen == ["one", "global one", "two", "global two"]
    assert len(hooked) == 2 and all(isinstance(exc, RuntimeError) for exc in hooked)
    assert "boom in POS code" in caplog.text


def test_answer_action_from_callback(serve: Serve) -> None:
    answers: List[m.Message] = []

    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(
            reply(
                request,
                m.ExecuteTransactionAction(m.ActionType.SIGNATURE),
                type="EXECUTE_TRANSACTION_ACTION",
            )
        )
        answer = peer.recv()
        answers.append(answer)
        peer.send(reply(answer, m.SubmitSignatureResponse()))
        peer.send(final(request))

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client:
        client.on_action(lambda a: client.submit_signature(a.resource, on_receipt=True))
        tx = client.charge("devices/r1", Decimal("10.00"), "EUR")
    assert tx.status == "APPROVED"
    assert answers[0].type == "SUBMIT_SIGNATURE_REQUEST"
    assert answers[0].resource == "devices/r1"
    assert answers[0].data.sign_on_receipt is True


def test_starting_a_transaction_from_a_callback_raises(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(update(request, ["x", "y"]))
        peer.send(final(request))

    server = serve(handler)
    errors: List[BaseException] = []
    with PayClient(server.url, timeout=5) as client:

        def reenter(_: Any) -> None:
            try:
                client.charge("devices/r2", Decimal("1.00"), "EUR")
            except CallbackDeadlockError as exc:
                errors.append(exc)

        client.charge("devices/r1", Decimal("10.00"), "EUR", on_update=reenter)
    assert len(errors) == 1 and "callback" in str(errors[0])


def test_abort_from_callback(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(update(request, ["Present card", "10.00 EUR"], abortable=True))
        abort = peer.recv()
        assert abort.type == "ABORT_TRANSACTION_REQUEST" and abort.resource == "devices/r1"
        peer.send(reply(abort, m.AbortTransactionResponse()))
        peer.send(final(request, "ABORTED"))

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client:
        tx = client.charge(
            "devices/r1",
            Decimal("10.00"),
            "EUR",
            on_update=lambda u: client.abort_transaction(u.resource) if u.abortable else None,
        )
    assert tx.status == m.TransactionStatus.ABORTED


def test_abort_refused_raises_server_error(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        abort = peer.recv()
        error = m.ErrorDetails("TRANSACTION_NOT_ABORTABLE", "not now", "signature stage")
        peer.send(reply(abort, status="ERROR", error=error))

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client, pytest.raises(ServerError) as caught:
        client.abort_transaction("devices/r1")
    assert caught.value.error_type == "TRANSACTION_NOT_ABORTABLE"
    assert caught.value.developer_message == "signature stage"
    assert caught.value.response is not None


def test_action_without_handler_aborts(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(
            reply(
                request,
                m.ExecuteTransactionAction("CREDIT_DEBIT_SELECTION"),
                type="EXECUTE_TRANSACTION_ACTION",
            )
        )
        abort = peer.recv()
        assert abort.type == "ABORT_TRANSACTION_REQUEST"
        peer.send(final(request, "ABORTED"))  # the two responses in either order
        peer.send(reply(abort, m.AbortTransactionResponse()))

    server = serve(handler)
    with (
        caplog.at_level(logging.WARNING, logger="payprotocol"),
        PayClient(server.url, timeout=5) as client,
    ):
        tx = client.charge("devices/r1", Decimal("10.00"), "EUR")
    assert tx.status == "ABORTED"
    assert "no on_action handler" in caplog.text


def test_disconnect_mid_transaction_is_outcome_unknown(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(update(request, ["Processing", ""]))
        time.sleep(0.1)
        peer.close()

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client:
        started = time.monotonic()
        with pytest.raises(TransactionOutcomeUnknownError) as caught:
            client.charge("devices/r1", Decimal("10.00"), "EUR", custom_identifier="order-1")
        assert time.monotonic() - started < 1.5
        assert caught.value.custom_identifier == "order-1"
        assert caught.value.resource == "devices/r1"
        assert isinstance(caught.value.__cause__, ConnectionLostError)
        with pytest.raises(ConnectionLostError):
            client.get_transaction(custom_identifier="order-1")


def test_close_while_charge_waits(serve: Serve) -> None:
    sent = threading.Event()
    server = serve(lambda peer: (peer.recv(), sent.set()))  # then silence
    client = PayClient(server.url, timeout=5)
    client.connect()
    outcome: List[BaseException] = []

    def charge() -> None:
        try:
            client.charge("devices/r1", Decimal("10.00"), "EUR")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=charge)
    thread.start()
    assert sent.wait(5)  # the charge is on the server: its outcome is now unknown
    started = time.monotonic()
    client.close()
    thread.join(2)
    assert time.monotonic() - started < 1.0
    assert isinstance(outcome[0], TransactionOutcomeUnknownError)
    assert outcome[0].custom_identifier  # assigned by the client, so a lookup is possible


def test_sliding_timeout_kept_alive_by_updates_then_cap(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        for i in range(8):  # 1.6 s of progress, each gap shorter than the 0.5 s timeout
            time.sleep(0.2)
            peer.send(update(request, [f"step {i}", ""]))
        peer.send(final(request))
        request = peer.recv()
        for i in range(30):  # never finishes: the absolute cap must end it
            time.sleep(0.2)
            peer.send(update(request, [f"step {i}", ""]))

    server = serve(handler)
    with PayClient(
        server.url, timeout=5, transaction_timeout=0.5, transaction_max_duration=3.0
    ) as client:
        assert client.charge("devices/r1", Decimal("10.00"), "EUR").status == "APPROVED"
        client.transaction_max_duration = 1.0
        started = time.monotonic()
        with pytest.raises(TransactionOutcomeUnknownError) as caught:
            client.charge("devices/r1", Decimal("10.00"), "EUR")
        assert 0.9 < time.monotonic() - started < 2.0
        assert isinstance(caught.value.__cause__, RequestTimeoutError)


def test_silence_times_out(serve: Serve) -> None:
    server = serve(lambda peer: (peer.recv(), peer.recv()))  # then silence
    with PayClient(server.url, timeout=0.3, transaction_timeout=0.3) as client:
        with pytest.raises(RequestTimeoutError):
            client.get_transaction(transaction_identifier="x")
        with pytest.raises(TransactionOutcomeUnknownError):
            client.charge("devices/r1", Decimal("10.00"), "EUR")


def test_late_result_goes_to_callback_and_log(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    gave_up = threading.Event()

    def handler(peer: Peer) -> None:
        request = peer.recv()
        assert gave_up.wait(5)  # answer only once the client's wait has timed out
        peer.send(
            reply(request, m.GetTransactionResponse(transaction(transaction_identifier="late-1")))
        )

    server = serve(handler)
    late: List[m.Message] = []
    arrived = threading.Event()
    with (
        caplog.at_level(logging.WARNING, logger="payprotocol"),
        PayClient(server.url, timeout=0.3) as client,
    ):
        client.on_late_result(lambda message: (late.append(message), arrived.set()))
        with pytest.raises(RequestTimeoutError):
            client.get_transaction(transaction_identifier="late-1")
        gave_up.set()
        assert arrived.wait(3)
    assert late[0].data.transaction.transaction_identifier == "late-1"
    assert "late or duplicate" in caplog.text


def test_unknown_message_type_reaches_on_update_as_raw(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(
            m.RawMessage(
                "EXECUTE_TRANSACTION_HINT", request.tag, request.resource, {"hint": Decimal("1.50")}
            )
        )
        peer.send(final(request))

    server = serve(handler)
    seen: List[Any] = []
    with PayClient(server.url, timeout=5) as client:
        client.charge("devices/r1", Decimal("10.00"), "EUR", on_update=seen.append)
    assert isinstance(seen[0], m.RawMessage)
    assert seen[0].data == {"hint": Decimal("1.50")}


def test_raw_request(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        assert isinstance(request, m.RawMessage) and request.data == {"x": Decimal("0.10")}
        peer.send(m.RawMessage("PING_RESPONSE", request.tag, None, {"pong": True}, status="OK"))

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client:
        response = client.request("PING_REQUEST", {"x": Decimal("0.10")})
    assert response.type == "PING_RESPONSE" and response.data == {"pong": True}


def test_amounts_are_exact_on_the_wire(serve: Serve) -> None:
    seen: List[bytes] = []

    def handler(peer: Peer) -> None:
        payload = peer.recv_bytes()
        seen.append(payload)
        from payprotocol import decode_message

        peer.send(final(decode_message(payload)))

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client:
        client.charge("devices/r1", Decimal("12345678.90"), "EUR", application_fee=Decimal("0.10"))
        with pytest.raises(TypeError):
            client.charge("devices/r1", 10.0, "EUR")  # type: ignore[arg-type]
    assert b'"amount":12345678.90' in seen[0] and b'"applicationFee":0.10' in seen[0]


def test_server_error_response(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(reply(request, status="ERROR", error=m.ErrorDetails("DEVICE_BUSY", "busy")))

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client, pytest.raises(ServerError) as caught:
        client.charge("devices/r1", Decimal("10.00"), "EUR")
    assert caught.value.error_type == m.ErrorType.DEVICE_BUSY


def test_secrets_never_logged(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(reply(request, m.LoginMerchantResponse([m.Device("devices/r1")])))
        request = peer.recv()
        peer.send(reply(request, m.SubmitSignatureResponse()))

    server = serve(handler)
    with (
        caplog.at_level(logging.DEBUG),
        PayClient(server.url, timeout=5, wire_trace=True) as client,
    ):
        login = client.login("merchant-1", "TOPSECRET-123")
        client.submit_signature("devices/r1", b"PNG-SIGNATURE-IMAGE")
    assert login.devices[0].resource == "devices/r1"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("payprotocol"))
    assert "LOGIN_MERCHANT_REQUEST" in ours and "merchantSecret" in ours
    assert "TOPSECRET-123" not in ours
    assert "UE5HLVNJR05BVFVSRS1JTUFHRQ" not in ours  # base64 of the image


def test_no_threads_left_after_close(serve: Serve) -> None:
    server = serve(lookup_echo)
    before = set(threading.enumerate())
    with PayClient(server.url, timeout=5) as client:
        client.get_transaction(transaction_identifier="a")

    def leftover() -> List[threading.Thread]:
        new = set(threading.enumerate()) - before
        return [t for t in new if t.name.startswith("payprotocol")]

    eventually(lambda: leftover() == [], message=f"threads left: {leftover()}")
    client.close()  # idempotent


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff\xff\xff\xff",  # a 4 GiB length
        b"\x00\x00\x00\x00",  # a length of 0
    ],
)
def test_a_broken_frame_stream_closes_the_connection(garbage: bytes) -> None:
    def handler(peer: Peer) -> None:
        peer.recv()
        peer.recv()
        peer.send_wire(garbage)

    with ScriptedServer("tcp", handler) as server, PayClient(server.url, timeout=5) as client:
        results: List[BaseException] = []

        def charge() -> None:
            try:
                client.charge("devices/r1", Decimal("10.00"), "EUR")
            except BaseException as exc:
                results.append(exc)

        thread = threading.Thread(target=charge)
        thread.start()  # the server waits for both requests before the garbage
        with pytest.raises(ProtocolViolationError) as caught:
            client.get_transaction(transaction_identifier="x")
        assert caught.value.broken_stream
        thread.join(2)
        assert isinstance(results[0], TransactionOutcomeUnknownError)
        assert isinstance(results[0].__cause__, ProtocolViolationError)
        assert results[0].__cause__.broken_stream
        eventually(lambda: not client.connected)


def test_a_field_that_does_not_fit_costs_only_that_field(serve: Serve) -> None:
    def handler(peer: Peer) -> None:
        request = peer.recv()
        data = {"transaction": {"transactionIdentifier": "x", "amount": "not a number"}}
        peer.send(wire("GET_TRANSACTION_RESPONSE", request.tag, data, status="OK"))
        lookup_echo(peer)

    server = serve(handler)
    with PayClient(server.url, timeout=5) as client:
        found = client.get_transaction(transaction_identifier="x")  # 6.2: the rest decodes
        assert (found.transaction_identifier, found.amount) == ("x", None)
        assert found.extra_fields == {"amount": "not a number"}  # kept as received
        assert client.get_transaction(transaction_identifier="y").transaction_identifier == "y"


def test_final_response_before_a_broken_frame_is_not_lost() -> None:
    from payprotocol import codec
    from payprotocol.framing import encode_frame

    def handler(peer: Peer) -> None:
        request = peer.recv()
        good = encode_frame(codec.encode_message(final(request)))
        peer.send_wire(good + b"\xff\xff\xff\xff")  # one write: the answer, then garbage

    with ScriptedServer("tcp", handler) as server, PayClient(server.url, timeout=5) as client:
        tx = client.charge("devices/r1", Decimal("10.00"), "EUR")
        assert tx.status == "APPROVED"
        eventually(lambda: not client.connected)  # the violation still closes the connection
