"""The operator's journal workflow on the real command line (the README's
worked example): a charge whose link drops (the simulator's drop-after
fault), ``journal list``, ``recover``; ``--json`` on both; the exit codes; a
retry of the unknown charge refused before anything is sent; a missing
journal refused."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..support.cli import MERCHANT, SECRET, Simulate, remote, run_cli
from ..support.waiting import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def dropping() -> Iterator[Simulate]:
    # The link drops after the second message of every transaction.
    with Simulate("--merchant", f"{MERCHANT}:{SECRET}", "--fault", "drop-after=2") as simulator:
        yield simulator


def as_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def test_a_dropped_charge_listed_then_recovered(dropping: Simulate, tmp_path: Path) -> None:
    journal = str(tmp_path / "pos-journal.sqlite")
    charge = remote(
        dropping, "charge", "reader1", "5.00", "EUR", "--custom-identifier", "order-4711"
    )
    done = run_cli(*charge, "--journal", journal)
    assert done.returncode == 4, done.stderr  # outcome unknown
    assert "OUTCOME UNKNOWN" in done.stderr

    listed = run_cli("journal", "list", "--journal", journal)
    assert listed.returncode == 4, listed.stderr  # something is pending
    [row, summary] = listed.stdout.splitlines()
    assert row.startswith("pending  order-4711 CHARGE 5.00 EUR status=-")
    assert summary == "1 rows, 1 pending or in conflict"

    retry = run_cli(*charge, "--journal", journal)
    assert retry.returncode == 2, retry.stderr  # refused before anything was sent
    assert "order-4711" in retry.stderr and "recover it first" in retry.stderr

    def recovered() -> Any:
        # The reader may still be finishing the charge the first time we ask.
        done = run_cli(*remote(dropping, "recover", "--journal", journal))
        return done if done.returncode == 0 else None

    done = eventually(recovered, 60)
    [line, summary] = done.stdout.splitlines()
    assert line.startswith("found         order-4711 status=APPROVED transaction=")
    assert summary == "1 entries, 1 settled, 0 still open"

    listed = run_cli("journal", "list", "--journal", journal, "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = as_json(listed.stdout)
    assert (entry["state"], entry["customIdentifier"], entry["status"]) == (
        "settled",
        "order-4711",
        "APPROVED",
    )
    assert entry["amount"] == Decimal("5.00")

    again = run_cli(*remote(dropping, "recover", "--journal", journal, "--json"))
    assert again.returncode == 0, again.stderr
    assert as_json(again.stdout) == []  # nothing left to recover


def test_recover_json_reports_each_entry(dropping: Simulate, tmp_path: Path) -> None:
    journal = str(tmp_path / "pos-journal.sqlite")
    charge = remote(dropping, "charge", "reader1", "5.00", "EUR", "--custom-identifier", "o-77")
    assert run_cli(*charge, "--journal", journal).returncode == 4

    def recovered() -> Any:
        done = run_cli(*remote(dropping, "recover", "--journal", journal, "--json"))
        return done if done.returncode == 0 else None

    [result] = as_json(eventually(recovered, 60).stdout)
    assert (result["result"], result["resolved"], result["customIdentifier"]) == (
        "found",
        True,
        "o-77",
    )
    assert result["transaction"]["amount"] == Decimal("5.00")


def test_the_journal_commands_refuse_a_missing_journal(dropping: Simulate, tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.sqlite")
    listed = run_cli("journal", "list", "--journal", missing)
    assert listed.returncode == 2 and "missing or empty" in listed.stderr
    recovered = run_cli(*remote(dropping, "recover", "--journal", missing))
    assert recovered.returncode == 2 and "missing or empty" in recovered.stderr
    assert not Path(missing).exists()


def test_help_documents_the_exit_codes() -> None:
    for args in (["journal", "list", "--help"], ["recover", "--help"]):
        done = run_cli(*args)
        assert done.returncode == 0
        assert "4 entries still pending or in conflict" in " ".join(done.stdout.split())
