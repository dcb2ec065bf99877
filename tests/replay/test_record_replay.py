"""Record a session against the simulator, replay it over the other transport:
the same client code sees the same results (issue 13, items 1, 2 and 4)."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from payprotocol import PayClient, PayProtocolError, ServerError
from payprotocol.cassette import load_cassette
from payprotocol.simulator import FaultPlan, Replay, ReplayError, Simulator, SimulatorConfig

from .sessions import (
    APPROVED_SAMPLE,
    CARDHOLDER,
    MERCHANT,
    SECRET,
    SIGNATURE_IMAGE,
    UNKNOWN_SAMPLE,
    approved_signature_charge,
    full_session,
    unknown_then_lookup,
)

FAST = SimulatorConfig(step_delay=0.005, slow_presentation=1.5, action_timeout=10.0)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(FAST) as sim:
        yield sim


def _url(server: Simulator, transport: str) -> str:
    return server.tcp_url if transport == "tcp" else server.ws_url


@pytest.mark.parametrize(("recorded_over", "replayed_over"), [("tcp", "ws"), ("ws", "tcp")])
def test_a_recorded_session_replays_with_the_same_results(
    simulator: Simulator, tmp_path: Path, recorded_over: str, replayed_over: str
) -> None:
    cassette = tmp_path / "session.jsonl"
    recorded = full_session(
        _url(simulator, recorded_over),
        record=cassette,
        before_drop=lambda: simulator.set_faults(FaultPlan(drop_after=3)),
    )
    assert recorded[1][1]["status"] == "APPROVED" and recorded[1][2] == ["SIGNATURE"]
    assert recorded[2] == ("abort", "ABORTED")
    assert recorded[3][1]["status"] == "APPROVED" and recorded[3][1]["type"] == "REFUND"
    assert recorded[-1] == ("dropped", "outcome unknown", "order-lost")
    header = load_cassette(cassette).header
    assert header["transport"] == recorded_over and header["version"] == 1

    with Replay(cassette, strict=True) as replay:
        replayed = full_session(_url(replay, replayed_over))
    assert replayed == recorded
    assert replay.played == len(replay.requests) == 8  # login, charge, sign, charge, abort, ...
    assert replay.mismatches == []


def test_the_recorded_pace_is_kept_with_speed(simulator: Simulator, tmp_path: Path) -> None:
    cassette = tmp_path / "paced.jsonl"
    approved_signature_charge(simulator.tcp_url, record=cassette)
    events = load_cassette(cassette).events
    first = next(e for e in events if e.dir == "send" and "EXECUTE" in (e.text or ""))
    last = [e for e in events if e.dir == "recv"][-1]
    recorded_span = last.t - first.t
    assert recorded_span > 0.03  # the simulator's steps
    with Replay(cassette, speed=0.5) as replay, PayClient(replay.tcp_url, timeout=5) as client:
        reader = client.login(MERCHANT, "x").devices[0]
        client.on_action(lambda a: client.submit_signature(reader, on_receipt=True))
        started = time.monotonic()
        tx = client.charge(reader, Decimal("10.00"), "EUR", custom_identifier="order-4711")
        took = time.monotonic() - started
    assert str(tx.status) == "APPROVED"
    assert took >= recorded_span / 0.5 * 0.9  # half speed: at least about twice as long


def test_the_sample_cassettes_replay(tmp_path: Path) -> None:
    with Replay(APPROVED_SAMPLE, strict=True) as replay:
        tx = approved_signature_charge(replay.ws_url)
    assert str(tx.status) == "APPROVED" and tx.custom_identifier == "order-4711"
    with Replay(UNKNOWN_SAMPLE, strict=True) as replay:
        unknown, found = unknown_then_lookup(replay.ws_url)
    assert unknown == "order-lost-1"
    assert str(found.status) == "APPROVED" and found.custom_identifier == "order-lost-1"


def test_tags_and_custom_identifiers_are_the_live_ones(tmp_path: Path) -> None:
    """The client picks new tags and (by default) a new custom identifier each
    run; the replayed answers carry the live ones, or the SDK's cross-check
    would make the outcome unknown."""
    replay = Replay(APPROVED_SAMPLE, strict=True)
    with replay, PayClient(replay.tcp_url, timeout=5) as client:
        reader = client.login(MERCHANT, "another secret").devices[0]
        client.on_action(lambda a: client.submit_signature(reader, on_receipt=True))
        tx = client.charge(reader, Decimal("10.00"), "EUR", custom_identifier="live-id-9")
    assert str(tx.status) == "APPROVED" and tx.custom_identifier == "live-id-9"


def test_a_mismatched_request_gets_invalid_request_saying_what_was_expected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="payprotocol.simulator.replay")
    replay = Replay(APPROVED_SAMPLE)
    with replay, PayClient(replay.tcp_url, timeout=5) as client:
        client.login(MERCHANT, SECRET)
        with pytest.raises(ServerError) as refused:
            client.get_transaction(custom_identifier="order-4711")
        # Not consumed: the expected request still plays afterwards.
        client.on_action(lambda a: client.submit_signature(a.resource or "", on_receipt=True))
        tx = client.charge("devices/reader1", Decimal("10.00"), "EUR")
    assert refused.value.error_type == "INVALID_REQUEST"
    expected = (
        "replay: the cassette expected EXECUTE_TRANSACTION_REQUEST on devices/reader1 "
        "(request 2, line 5) next, got GET_TRANSACTION_REQUEST on no resource"
    )
    assert refused.value.message == expected
    assert str(tx.status) == "APPROVED"
    assert replay.mismatches == [expected]
    assert expected in caplog.text
    with pytest.raises(ReplayError, match="expected EXECUTE_TRANSACTION_REQUEST"):
        replay.check()


def test_strict_fails_at_close_when_recorded_requests_never_came() -> None:
    strict = Replay(APPROVED_SAMPLE, strict=True)
    never_came = r"2 recorded request\(s\) never came"
    with pytest.raises(ReplayError, match=never_came), strict, PayClient(strict.tcp_url) as client:
        client.login(MERCHANT, SECRET)
    # Not strict: the same session ends quietly, the problem still reported.
    with Replay(APPROVED_SAMPLE) as replay, PayClient(replay.tcp_url, timeout=5) as client:
        client.login(MERCHANT, SECRET)
    assert "never came" in replay.problems()[0]


def test_a_request_after_the_cassette_ends_is_refused() -> None:
    with Replay(APPROVED_SAMPLE) as replay, PayClient(replay.tcp_url, timeout=5) as client:
        client.login(MERCHANT, SECRET)
        client.on_action(lambda a: client.submit_signature(a.resource or "", on_receipt=True))
        client.charge("devices/reader1", Decimal("10.00"), "EUR")
        with pytest.raises(ServerError, match="the cassette has no more requests"):
            client.get_transaction(custom_identifier="x")


# --- what a cassette never holds ---------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_secrets_and_the_cardholder_name_never_reach_the_cassette(
    simulator: Simulator, tmp_path: Path, transport: str
) -> None:
    cassette = tmp_path / "secrets.jsonl"
    url = _url(simulator, transport)
    if transport == "ws":
        url = url.replace("ws://", "ws://pos-user:Url-Pa55word-Zz@")
    full_session(url, record=cassette, before_drop=lambda: None)
    data = cassette.read_bytes()
    for secret in (SECRET, SIGNATURE_IMAGE, CARDHOLDER, "Url-Pa55word-Zz", "pos-user"):
        assert secret.encode() not in data, secret
    assert b'\\"merchantSecret\\":\\"***\\"' in data and b'\\"cardholderName\\":\\"***\\"' in data


def test_the_cardholder_name_is_kept_only_when_asked(simulator: Simulator) -> None:
    kept = io.StringIO()
    with PayClient(simulator.tcp_url, record=kept, record_cardholder_name=True) as client:
        client.login(MERCHANT, SECRET)
        client.charge("devices/reader1", Decimal("5.00"), "EUR")
    assert CARDHOLDER in kept.getvalue()
    assert SECRET not in kept.getvalue()


def test_a_name_repeated_elsewhere_is_masked_too() -> None:
    from payprotocol.cassette import mask_text

    learned: set[str] = set()
    first = mask_text('{"cardDetails":{"cardholderName":"JANE DOE"}}', {"cardholderName"}, learned)
    later = mask_text('{"lines":[{"value":"Card of JANE DOE"}]}', {"cardholderName"}, learned)
    assert "JANE" not in first + later
    assert later == '{"lines":[{"value":"***"}]}'
    # A name masked already (a cassette recorded from a replay) is not learned:
    # "***" would otherwise mask every string with asterisks, a card number too.
    fresh: set[str] = set()
    mask_text('{"cardholderName":"***"}', {"cardholderName"}, fresh)
    card = '{"maskedCardNumber":"************0119"}'
    assert mask_text(card, {"cardholderName"}, fresh) == card


# --- recording never breaks the payment -------------------------------------------------


class _BrokenFile(io.TextIOBase):
    def __init__(self) -> None:
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise OSError(28, "No space left on device")


def test_a_failing_cassette_write_is_logged_once_and_the_payment_goes_on(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="payprotocol")
    broken = _BrokenFile()
    tx = approved_signature_charge(simulator.tcp_url, record=broken)
    assert str(tx.status) == "APPROVED"
    stopped = [r for r in caplog.records if "recording to" in r.getMessage()]
    assert len(stopped) == 1, [r.getMessage() for r in caplog.records]
    assert "No space left on device" in stopped[0].getMessage()
    assert broken.writes == 1  # recording stopped after the first failure


def test_an_unopenable_cassette_path_is_logged_and_the_payment_goes_on(
    simulator: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="payprotocol")
    tx = approved_signature_charge(simulator.tcp_url, record=tmp_path / "no" / "such" / "dir.jsonl")
    assert str(tx.status) == "APPROVED"
    assert sum("recording to" in r.getMessage() for r in caplog.records) == 1


def test_a_blocked_cassette_write_does_not_slow_the_payment(simulator: Simulator) -> None:
    """The writer thread is stuck in ``write`` for the whole charge: the charge
    still completes, and the lines are written once the file is released."""

    class _StuckFile(io.StringIO):
        release = threading.Event()
        entered = threading.Event()

        def write(self, text: str) -> int:
            self.entered.set()
            assert self.release.wait(30)
            return super().write(text)

    stuck = _StuckFile()
    client = PayClient(simulator.tcp_url, timeout=5, record=stuck)
    try:
        client.connect()
        client.login(MERCHANT, SECRET)
        assert stuck.entered.wait(10)
        client.on_action(lambda a: client.submit_signature(a.resource or "", on_receipt=True))
        tx = client.charge("devices/reader1", Decimal("10.00"), "EUR")
        assert str(tx.status) == "APPROVED"
        assert stuck.getvalue() == ""  # nothing written yet: the writer is still stuck
    finally:
        stuck.release.set()
        client.close()
    lines: List[Any] = stuck.getvalue().splitlines()
    assert len(lines) >= 15 and '"EXECUTE_TRANSACTION_RESPONSE' in stuck.getvalue().replace(
        "\\", ""
    )


def test_a_cassette_written_to_a_binary_file(simulator: Simulator) -> None:
    target = io.BytesIO()
    with PayClient(simulator.tcp_url, record=target) as client:
        client.login(MERCHANT, SECRET)
    target.seek(0)
    cassette = load_cassette(io.StringIO(target.getvalue().decode("utf-8")))
    assert [e.dir for e in cassette.events] == ["open", "send", "recv", "close"]
    assert cassette.events[-1].by == "client"


def _charge_outcome(url: str, record: Path) -> str:
    with PayClient(url, timeout=5, transaction_timeout=5, record=record) as client:
        client.login(MERCHANT, SECRET)
        try:
            tx = client.charge("devices/reader1", Decimal("5.00"), "EUR", custom_identifier="c-9")
            return str(tx.status)
        except PayProtocolError as exc:
            return type(exc).__name__


def _received(cassette: Path) -> List[bytes]:
    events = load_cassette(cassette).events
    prefix = json.loads(next(e.text for e in events if e.dir == "send" and e.text))["tag"]
    prefix = prefix.rsplit("-", 1)[0]
    return [(e.payload or b"").replace(prefix.encode(), b"TAG") for e in events if e.dir == "recv"]


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize(
    "faults", [["unknown-fields", "unknown-enums", "unknown-message"], ["malformed=invalid-utf8"]]
)
def test_the_server_messages_are_replayed_byte_for_byte(
    simulator: Simulator, tmp_path: Path, transport: str, faults: List[str]
) -> None:
    """What the server really sent, odd fields and broken bytes included, is
    what the client receives again from the replay (recorded a second time
    to compare: the same bytes but for the tags)."""
    simulator.set_faults(FaultPlan.parse(faults))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    recorded = _charge_outcome(_url(simulator, transport), first)
    with Replay(first, strict=True) as replay:
        replayed = _charge_outcome(_url(replay, transport), second)
    assert replayed == recorded
    assert _received(second) == _received(first)
    if "malformed=invalid-utf8" in faults:
        assert '"base64"' in first.read_text(encoding="utf-8")
    else:
        assert "WAITING_FOR_BIOMETRICS" in first.read_text(encoding="utf-8")


def _mutated_session(url: str, record: Path) -> List[str]:
    """Login, a signature charge, a lookup; each step's result or error name."""
    seen: List[str] = []
    with PayClient(url, timeout=3, transaction_timeout=3, record=record) as client:
        for step in ("login", "charge", "lookup"):
            try:
                if step == "login":
                    seen.append(str(len(client.login(MERCHANT, SECRET).devices)))
                elif step == "charge":
                    client.on_action(
                        lambda a: client.submit_signature(a.resource or "", on_receipt=True)
                    )
                    tx = client.charge(
                        "devices/reader1", Decimal("10.00"), "EUR", custom_identifier="c-m"
                    )
                    seen.append(f"{tx.status} {tx.transaction_identifier}")
                else:
                    seen.append(str(client.get_transaction(custom_identifier="c-m").status))
            except PayProtocolError as exc:
                seen.append(type(exc).__name__)
    return seen


@pytest.mark.parametrize("seed", [3, 7, 11])
def test_a_mutate_session_replays_with_the_same_results(
    simulator: Simulator, tmp_path: Path, seed: int
) -> None:
    """The simulator's ``mutate=SEED`` fault (issue 9) sends fields that do not
    fit; the cassette keeps them as sent, so the replay reproduces them and
    the client's results over the other transport."""
    simulator.set_faults(FaultPlan.parse([f"mutate={seed}"]))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    recorded = _mutated_session(simulator.tcp_url, first)
    simulator.set_faults(None)
    with Replay(first) as replay:
        replayed = _mutated_session(replay.ws_url, second)
    assert recorded[1].startswith("APPROVED ")  # the tolerant reader reads past the misfits
    assert replayed == recorded
    # The same bytes in the same order. A mutation can end the charge early
    # (outcome unknown), and then the server's late messages after the last
    # response race the client's close: the replay may stop receiving sooner.
    again, before = _received(second), _received(first)
    assert len(again) >= 3 and again == before[: len(again)]
