"""Every script in ``samples/`` runs as documented against ``payprotocol simulate``."""

from __future__ import annotations

import re
import sys
from typing import Iterator

import pytest

from ..support.cli import MERCHANT, REPO, SECRET, Simulate, run_python

SAMPLES = REPO / "samples"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulate]:
    with Simulate() as simulator:
        yield simulator


def run_sample(name: str, url: str, *args: str) -> tuple[int, str, str]:
    done = run_python(
        [sys.executable, str(SAMPLES / name), "--url", url, "--merchant", MERCHANT, *args]
    )
    assert SECRET not in done.stdout + done.stderr
    return done.returncode, done.stdout, done.stderr


def test_every_sample_is_tested() -> None:
    tested = {"plain_charge.py", "legacy_pos.py", "refund_and_lookup.py", "outcome_unknown.py"}
    tested.add("tk_pos.py")  # under Xvfb, in test_tk_pos.py
    assert {path.name for path in SAMPLES.glob("*.py")} == tested


# The simulator's test card (p3-protocol.md section 7): the tens digit 1 asks for
# a signature, the cents .01 for the application, .02 credit or debit, .03 DCC.
ACTION_AMOUNTS = {
    "10.00": ["signature"],
    "10.01": ["signature", "application"],
    "5.02": ["credit or debit"],
    "5.03": ["currency conversion"],
}
# How each sample says it approved the sale, by its amount.
APPROVED = {
    "plain_charge.py": "Status:         APPROVED",
    "legacy_pos.py": "1 of 1 sales approved",
    "refund_and_lookup.py": "Charge:  APPROVED {amount} EUR",
    "outcome_unknown.py": "The response arrived normally: APPROVED",
}


@pytest.mark.parametrize("amount", sorted(ACTION_AMOUNTS))
@pytest.mark.parametrize("name", sorted(APPROVED))
def test_every_sample_answers_every_action_kind(sim: Simulate, name: str, amount: str) -> None:
    code, out, err = run_sample(name, sim.tcp_url, "--amount", amount)
    assert code == 0, out + err
    assert APPROVED[name].format(amount=amount) in out
    for kind in ACTION_AMOUNTS[amount]:
        assert re.search(kind, out, re.I), f"{name} did not answer the {kind} step: {out}"
    assert "Traceback" not in err and "refused" not in err.lower()


def test_plain_charge(sim: Simulate) -> None:
    code, out, err = run_sample("plain_charge.py", sim.tcp_url)
    assert code == 0, err
    assert "Status:         APPROVED" in out
    assert "Amount:         5.00 EUR" in out


def test_plain_charge_with_a_signature_over_websocket(sim: Simulate) -> None:
    code, out, err = run_sample("plain_charge.py", sim.ws_url, "--amount", "10.00")
    assert code == 0, err
    assert "Amount:         10.00 EUR" in out


def test_legacy_pos_answers_every_action_from_callbacks(sim: Simulate) -> None:
    code, out, err = run_sample("legacy_pos.py", sim.tcp_url)
    assert code == 0, err
    assert "signature requested" in out
    assert "application menu: choosing VISA CREDIT" in out
    assert "credit or debit: choosing DEBIT" in out
    assert "currency conversion offered" in out
    assert "[display] Present card" in out
    assert "4 of 4 sales approved" in out


def test_refund_and_lookup(sim: Simulate) -> None:
    code, out, err = run_sample("refund_and_lookup.py", sim.tcp_url)
    assert code == 0, err
    assert "Charge:  APPROVED 20.00 EUR" in out
    assert "Refund:  APPROVED 10.00 EUR" in out
    assert "Lookup by id:          CHARGE APPROVED 20.00 EUR" in out
    assert "REFUND APPROVED 10.00" in out


def test_outcome_unknown_looks_the_payment_up_instead_of_charging_again() -> None:
    with Simulate("--fault", "drop-after=3", "-v") as simulator:  # -v: logs every message
        code, out, err = run_sample("outcome_unknown.py", simulator.tcp_url)
        charges = simulator.stderr.text(settle=0.3).count("EXECUTE_TRANSACTION_REQUEST")
    assert code == 0, err
    assert "Outcome unknown" in out
    assert "Not charging again" in out
    assert "Found it: APPROVED 7.00 EUR" in out
    assert charges == 1  # the simulator saw exactly one charge


def test_outcome_unknown_without_a_fault_takes_the_normal_path(sim: Simulate) -> None:
    code, out, err = run_sample("outcome_unknown.py", sim.tcp_url)
    assert code == 0, err
    assert "The response arrived normally: APPROVED" in out
