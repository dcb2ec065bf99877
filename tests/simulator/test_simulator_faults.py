"""The simulator's fault injection (FaultPlan), checked over real sockets."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Iterator

import pytest

from payprotocol.codec import decode_message
from payprotocol.errors import ProtocolViolationError
from payprotocol.framing import FrameDecoder
from payprotocol.models import ProcessState, RawMessage
from payprotocol.simulator import FaultPlan, Simulator, SimulatorConfig

from ..support.messages import final_transaction
from ..support.peer import Peer, PeerClosed, connect
from ..support.waiting import eventually, finished


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(step_delay=0.01, slow_presentation=1.0)) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _reset(sim: Simulator) -> Iterator[None]:
    sim.set_faults(FaultPlan())
    yield
    sim.set_faults(FaultPlan())
    assert sim.wait_idle(), "a transaction is still running"


def logged_in(sim: Simulator, transport: str) -> Peer:
    raw: Peer = connect(sim.tcp_url if transport == "tcp" else sim.ws_url)
    assert raw.login()["status"] == "OK"
    return raw


transports = pytest.mark.parametrize("transport", ["tcp", "ws"])


# --- FaultPlan.parse ---------------------------------------------------------------------


def test_parse_every_spec() -> None:
    plan = FaultPlan.parse(
        [
            "byte-by-byte",
            "coalesce=0.2",
            "response-delay=1.5",
            "drop-after=3",
            "duplicate-response",
            "late-response=2.0",
            "malformed=huge-length",
            "unknown-fields,unknown-enums",
            "unknown-message",
        ]
    )
    assert plan == FaultPlan(
        byte_by_byte=True,
        coalesce=True,
        coalesce_window=0.2,
        response_delay=1.5,
        drop_after=3,
        duplicate_response=True,
        late_response=2.0,
        malformed="huge-length",
        unknown_fields=True,
        unknown_enums=True,
        unknown_message_type=True,
    )
    assert FaultPlan.parse(plan.to_specs()) == plan
    assert FaultPlan.parse([]) == FaultPlan() == FaultPlan.parse(["none"])
    assert not FaultPlan().active and plan.active


@pytest.mark.parametrize(
    "spec",
    [
        "explode",
        "drop-after",
        "drop-after=0",
        "drop-after=x",
        "late-response=-1",
        "malformed=weird",
        "byte-by-byte=1",
        "response-delay=nan",
    ],
)
def test_parse_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        FaultPlan.parse([spec])


# --- byte level (TCP) --------------------------------------------------------------------


def test_byte_by_byte_tcp(sim: Simulator) -> None:
    sim.set_faults(FaultPlan(byte_by_byte=True))
    with connect(sim.tcp_url) as raw:
        assert raw.login()["status"] == "OK"
        assert final_transaction(raw.charge("5.00"))["status"] == "APPROVED"
        # Written one byte per send(): the reads cannot line up with the messages.
        assert len(raw.chunks) > len(raw.received)


def test_byte_by_byte_ws_sends_fragmented_messages(sim: Simulator) -> None:
    sim.set_faults(FaultPlan(byte_by_byte=True))
    with logged_in(sim, "ws") as raw:
        assert final_transaction(raw.charge("5.00"))["status"] == "APPROVED"


def test_coalesce_tcp(sim: Simulator) -> None:
    sim.set_faults(FaultPlan(coalesce=True, coalesce_window=0.2))
    with connect(sim.tcp_url) as raw:
        raw.login()
        raw.charge("5.00")
        frames_per_chunk = [len(FrameDecoder().feed(c)) for c in raw.chunks]
        assert max(frames_per_chunk) >= 2  # several messages in one write


@transports
def test_coalesce_keeps_messages_whole(sim: Simulator, transport: str) -> None:
    sim.set_faults(FaultPlan.parse(["coalesce"]))
    with logged_in(sim, transport) as raw:
        assert final_transaction(raw.charge("10.00"))["status"] == "APPROVED"


# --- timing ------------------------------------------------------------------------------


@transports
def test_response_delay(sim: Simulator, transport: str) -> None:
    with logged_in(sim, transport) as raw:
        sim.set_faults(FaultPlan(response_delay=0.4))
        started = time.monotonic()
        tag = raw.send_request("GET_TRANSACTION_REQUEST", {"customIdentifier": "nothing"})
        with pytest.raises(TimeoutError):
            raw.response(tag, timeout=0.2)
        assert raw.response(tag)["error"]["type"] == "TRANSACTION_NOT_FOUND"
        assert time.monotonic() - started >= 0.4


@transports
def test_late_final_response(sim: Simulator, transport: str) -> None:
    sim.set_faults(FaultPlan(late_response=0.6))
    with logged_in(sim, transport) as raw:
        tag = raw.execute("5.00", customIdentifier=f"late-{transport}")
        raw.expect(
            lambda m: m.get("executeTransactionUpdate", {}).get("state") == "APPROVED", timeout=5
        )
        ended = time.monotonic()
        stored = sim.store.get_by_custom_identifier(f"late-{transport}")
        assert stored is not None and stored.status == "APPROVED"  # the store already knows
        response = raw.response(tag)
        assert time.monotonic() - ended >= 0.5
        assert response["executeTransactionResponse"]["transaction"]["status"] == "APPROVED"


@transports
def test_duplicate_final_response(sim: Simulator, transport: str) -> None:
    sim.set_faults(FaultPlan(duplicate_response=True))
    with logged_in(sim, transport) as raw:
        tag = raw.execute("5.00")
        first = raw.response(tag)
        second = raw.response(tag)
        assert first == second and first["type"] == "EXECUTE_TRANSACTION_RESPONSE"


# --- drop after K ------------------------------------------------------------------------


@transports
@pytest.mark.parametrize("k", [1, 3, 8])
def test_drop_after_k_messages(sim: Simulator, transport: str, k: int) -> None:
    custom = f"drop-{transport}-{k}"
    with logged_in(sim, transport) as raw:
        sim.set_faults(FaultPlan(drop_after=k))
        tag = raw.execute("5.00", customIdentifier=custom)
        got = []
        with pytest.raises(PeerClosed):
            while True:
                got.append(raw.expect(lambda m: m.get("tag") == tag))
        assert len(got) == k
    sim.set_faults(FaultPlan())
    done = eventually(lambda: finished(sim, custom))
    assert done.status == "APPROVED"  # the transaction went on: look it up
    with logged_in(sim, transport) as again:
        found = again.request("GET_TRANSACTION_REQUEST", {"customIdentifier": custom})
        assert found["getTransactionResponse"]["transaction"]["status"] == "APPROVED"


def test_drop_after_counts_per_transaction_and_set_faults_applies_at_once(sim: Simulator) -> None:
    with logged_in(sim, "tcp") as raw:
        sim.set_faults(FaultPlan(drop_after=100))
        assert final_transaction(raw.charge("5.00"))["status"] == "APPROVED"  # 7 < 100
        assert raw.login()["status"] == "OK"  # plain responses are not counted
        sim.set_faults(FaultPlan())
        assert final_transaction(raw.charge("5.00"))["status"] == "APPROVED"


# --- malformed messages ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["huge-length", "invalid-utf8", "not-object"])
def test_malformed_tcp(sim: Simulator, kind: str) -> None:
    with connect(sim.tcp_url) as raw:
        raw.login()
        sim.set_faults(FaultPlan(malformed=kind))
        raw.execute("5.00", customIdentifier=f"malformed-{kind}")
        # Read the raw stream: the transaction's first message intact, then the bad one.
        length = int.from_bytes(raw.recv_wire(4), "big")
        first = decode_message(raw.recv_wire(length))
        assert first.type == "EXECUTE_TRANSACTION_UPDATE"
        header = raw.recv_wire(4)
        if kind == "huge-length":
            assert header == b"\xff\xff\xff\xff"
            with pytest.raises(ProtocolViolationError, match="exceeds"):
                FrameDecoder().feed(header)
        else:
            body = raw.recv_wire(int.from_bytes(header, "big"))
            with pytest.raises(ProtocolViolationError):
                decode_message(body)
            if kind == "not-object":
                assert body == b"[1, 2, 3]"
            else:
                with pytest.raises(UnicodeDecodeError):
                    body.decode("utf-8")
    sim.set_faults(FaultPlan())
    assert eventually(lambda: finished(sim, f"malformed-{kind}")).status == "APPROVED"


@pytest.mark.parametrize("kind", ["huge-length", "invalid-utf8", "not-object"])
def test_malformed_ws(sim: Simulator, kind: str) -> None:
    with logged_in(sim, "ws") as raw:
        sim.set_faults(FaultPlan(malformed=kind))
        raw.execute("5.00")
        assert raw.recv_json()["type"] == "EXECUTE_TRANSACTION_UPDATE"
        payload = raw.recv_payload(5)
        if kind == "huge-length":
            assert isinstance(payload, str) and len(payload) > sim.config.max_frame_size
        elif kind == "invalid-utf8":
            assert isinstance(payload, bytes)  # binary: a text frame cannot carry it
            with pytest.raises(UnicodeDecodeError):
                payload.decode("utf-8")
        else:
            assert payload == "[1, 2, 3]"


# --- forward compatibility faults ---------------------------------------------------------


@transports
def test_unknown_fields(sim: Simulator, transport: str) -> None:
    sim.set_faults(FaultPlan(unknown_fields=True))
    with logged_in(sim, transport) as raw:
        messages = raw.charge("5.00")
        response = messages[-1]
        assert response["simulatorTrace"] == {"unknownEnvelopeField": True}
        assert response["executeTransactionResponse"]["futureDataField"]
        assert response["executeTransactionResponse"]["transaction"]["futureTransactionField"]
        decoded = decode_message(json.dumps(response, default=str))
        assert "simulatorTrace" in decoded.extra_fields
        assert "futureDataField" in decoded.data.extra_fields
        assert "futureTransactionField" in decoded.data.transaction.extra_fields


@transports
def test_unknown_enums(sim: Simulator, transport: str) -> None:
    sim.set_faults(FaultPlan(unknown_enums=True))
    raw = connect(sim.tcp_url if transport == "tcp" else sim.ws_url)
    with raw:
        login = raw.login()
        assert login["loginMerchantResponse"]["devices"][0]["comlink"] == "NFC_BRIDGE"
        messages = raw.charge("5.00")
    states = [
        m["executeTransactionUpdate"]["state"] for m in messages if "executeTransactionUpdate" in m
    ]
    assert states.count("WAITING_FOR_BIOMETRICS") == 1
    assert final_transaction(messages)["status"] == "APPROVED"
    update = next(
        m
        for m in messages
        if m.get("executeTransactionUpdate", {}).get("state") == "WAITING_FOR_BIOMETRICS"
    )
    decoded = decode_message(json.dumps(update))
    assert decoded.data.state == "WAITING_FOR_BIOMETRICS"
    assert not isinstance(decoded.data.state, ProcessState)


@transports
def test_unknown_message_type_with_the_transaction_tag(sim: Simulator, transport: str) -> None:
    sim.set_faults(FaultPlan(unknown_message_type=True))
    with logged_in(sim, transport) as raw:
        tag = raw.execute("5.00")
        messages = raw.follow(tag)
    notices = [m for m in messages if m["type"] == "EXECUTE_TRANSACTION_NOTICE"]
    assert len(notices) == 1 and notices[0]["resource"] == "devices/reader1"
    assert isinstance(decode_message(json.dumps(notices[0])), RawMessage)
    assert final_transaction(messages)["status"] == "APPROVED"


def test_unknown_message_type_on_amend(sim: Simulator) -> None:
    with logged_in(sim, "tcp") as raw:
        charge = final_transaction(raw.charge("5.00"))
        sim.set_faults(FaultPlan(unknown_message_type=True, unknown_enums=True))
        tag = raw.send_request(
            "AMEND_TRANSACTION_REQUEST",
            {
                "transactionParameters": {
                    "type": "REFUND",
                    "amount": Decimal("1.00"),
                    "referencedTransactionIdentifier": charge["transactionIdentifier"],
                }
            },
        )
        messages = raw.follow(tag)
    types = [m["type"] for m in messages]
    assert "AMEND_TRANSACTION_NOTICE" in types and types[-1] == "AMEND_TRANSACTION_RESPONSE"


def test_all_faults_at_once_still_end_the_transaction(sim: Simulator) -> None:
    sim.set_faults(
        FaultPlan.parse(
            [
                "byte-by-byte",
                "coalesce=0.05",
                "response-delay=0.05",
                "duplicate-response",
                "late-response=0.1",
                "unknown-fields",
                "unknown-enums",
                "unknown-message",
            ]
        )
    )
    with logged_in(sim, "tcp") as raw:
        assert final_transaction(raw.charge("10.00"))["status"] == "APPROVED"
