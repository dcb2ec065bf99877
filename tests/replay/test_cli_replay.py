"""From the command line: ``charge ... --record x.jsonl``, then
``simulate --replay x.jsonl`` and the same ``charge`` reproduce the outcome
(issue 13, "done when"); every real subprocess, bounded."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..support.cli import ANSWERS, MERCHANT, SECRET, Simulate, run_cli
from .sessions import APPROVED_SAMPLE

CHARGE = ("charge", "--merchant", MERCHANT, "reader1", "10.00", "EUR")


def _outcome(stdout: str) -> str:
    found = re.search(r"^(APPROVED|DECLINED|ABORTED).*$", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(0)


def test_a_cli_recorded_charge_replays_from_the_cli(tmp_path: Path) -> None:
    cassette = tmp_path / "x.jsonl"
    with Simulate() as sim:
        recorded = run_cli(*CHARGE, "--url", sim.tcp_url, "--record", str(cassette), *ANSWERS)
    assert recorded.returncode == 0, recorded.stderr
    assert SECRET.encode() not in cassette.read_bytes()
    header = json.loads(cassette.read_text(encoding="utf-8").splitlines()[0])
    assert header["cassette"] == "payprotocol-p3" and header["transport"] == "tcp"

    with Simulate("--replay", str(cassette), "--strict") as replay:
        assert replay.stdout.wait_for("replay server ready")
        again = run_cli(*CHARGE, "--url", replay.ws_url, *ANSWERS)
    assert again.returncode == 0, again.stderr
    assert _outcome(again.stdout) == _outcome(recorded.stdout)
    txid = re.search(r"transaction id:\s+(\w+)", recorded.stdout)
    assert txid and txid.group(0) in again.stdout  # the recorded server's identifier
    assert replay.returncode == 0  # strict: every recorded request came


def test_strict_replay_exits_1_when_requests_never_came() -> None:
    with Simulate("--replay", str(APPROVED_SAMPLE), "--strict") as replay:
        run_cli("devices", "--url", replay.tcp_url, "--merchant", MERCHANT)
    assert replay.returncode == 1
    assert "2 recorded request(s) never came" in replay.stderr.text(settle=0.2)


def test_a_mismatch_is_refused_and_logged_by_the_replay_server() -> None:
    with Simulate("--replay", str(APPROVED_SAMPLE)) as replay:
        done = run_cli("lookup", "--url", replay.tcp_url, "--merchant", MERCHANT, "abc")
        assert done.returncode == 3
        assert "INVALID_REQUEST: replay: the cassette expected EXECUTE_TRANSACTION_REQUEST" in (
            done.stderr
        )
        replay.stderr.wait_for(r"WARNING .*the cassette expected EXECUTE_TRANSACTION_REQUEST")
    assert replay.returncode == 0  # not strict


def test_replay_usage_errors(tmp_path: Path) -> None:
    missing = run_cli("simulate", "--replay", str(tmp_path / "none.jsonl"), "--tcp-port", "0")
    assert missing.returncode == 2 and "cannot replay" in missing.stderr
    not_a_cassette = tmp_path / "bad.jsonl"
    not_a_cassette.write_text('{"hello": 1}\n', encoding="utf-8")
    bad = run_cli("simulate", "--replay", str(not_a_cassette), "--tcp-port", "0")
    assert bad.returncode == 2 and "not a payprotocol-p3 cassette header" in bad.stderr
    faults = run_cli("simulate", "--replay", str(APPROVED_SAMPLE), "--fault", "drop-after=1")
    assert faults.returncode == 2
    speed = run_cli("simulate", "--speed", "2")
    assert speed.returncode == 2 and "--replay" in speed.stderr
