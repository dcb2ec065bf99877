"""The journal's rules (issue 10) on a real file: a custom identifier in use is
refused before anything is sent, a disagreeing final outcome is a conflict
(never an overwrite), a non-final status never re-opens a settled row, an
unknown outcome keeps what was received, lookups are written in one
transaction, outcomes are committed without a sync of their own, an old file
is migrated, owners are alive exactly as long as their lock, and a vanished
journal (or its lost -wal) is noticed."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from payprotocol import CustomIdentifierInUseError, Journal, JournalError, PayProtocolError
from payprotocol import models as m
from payprotocol._journal_rows import MIGRATIONS, SCHEMA_VERSION

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

EXECUTE = "EXECUTE_TRANSACTION_REQUEST"


def tx(status: str = "APPROVED", identifier: str = "tx-1") -> m.Transaction:
    return m.Transaction(identifier, "CHARGE", status, amount=10, currency="EUR")


def send(journal: Journal, tag: str, custom: str = "order-4711", **options: Any) -> None:
    journal.record_sent(
        tag=tag,
        message_type=EXECUTE,
        resource="devices/r1",
        custom_identifier=custom,
        parameters={"transactionParameters": {"type": "CHARGE", "amount": 10}},
        **options,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "pos-journal.sqlite"


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    with Journal(path) as opened:
        yield opened


# --- item 1: a custom identifier in use ----------------------------------------


def test_an_unresolved_identifier_is_refused_before_anything_is_written(journal: Journal) -> None:
    send(journal, "t-1")
    journal.mark_unknown("t-1", "link dropped")
    with pytest.raises(CustomIdentifierInUseError, match=r"order-4711.*recover it first") as info:
        send(journal, "t-2", allow_identifier_reuse=True)  # no opt-in for an unresolved one
    assert isinstance(info.value, PayProtocolError)
    assert info.value.custom_identifier == "order-4711" and info.value.state == "unresolved"
    assert journal.get("t-2") is None
    assert [p.tag for p in journal.pending()] == ["t-1"]


def test_a_settled_identifier_is_reused_only_when_asked(journal: Journal) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", tx("DECLINED"), status="DECLINED")
    with pytest.raises(CustomIdentifierInUseError, match="allow_identifier_reuse") as info:
        send(journal, "t-2")
    assert info.value.state == "settled"
    send(journal, "t-2", allow_identifier_reuse=True)
    assert [e.tag for e in journal.find("order-4711")] == ["t-1", "t-2"]


def test_a_conflicting_identifier_is_refused(journal: Journal) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", tx("DECLINED"), status="DECLINED")
    journal.record_outcome("t-1", tx("APPROVED"), status="APPROVED")
    with pytest.raises(CustomIdentifierInUseError) as info:
        send(journal, "t-2", allow_identifier_reuse=True)
    assert info.value.state == "conflict"


@pytest.mark.parametrize("status", ["NOT_SENT", "NOT_FOUND", "ERROR"])
def test_an_identifier_with_no_transaction_behind_it_is_free(journal: Journal, status: str) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", None, status=status, error="DEVICE_BUSY: busy")
    send(journal, "t-2")  # nothing exists under it on the server: a retry is safe
    assert [p.tag for p in journal.pending()] == ["t-2"]


def test_two_processes_cannot_both_pass_the_check(path: Path) -> None:
    with Journal(path) as first, Journal(path) as second:
        send(first, "t-1")
        with pytest.raises(CustomIdentifierInUseError):
            send(second, "t-2")


# --- item 3: conflicts surface, never overwrite --------------------------------


def test_a_disagreeing_final_outcome_is_a_conflict_with_both_kept(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    send(journal, "t-1")
    assert journal.record_outcome("t-1", tx("DECLINED"), status="DECLINED") == "settled"
    with caplog.at_level(logging.ERROR, logger="payprotocol.journal"):
        assert journal.record_outcome("t-1", tx("APPROVED"), status="APPROVED") == "conflict"
    assert "CONFLICT" in caplog.text and "t-1" in caplog.text
    entry = journal.get("t-1")
    assert entry is not None and entry.pending and entry.conflict
    assert entry.status == "DECLINED" and entry.transaction == tx("DECLINED")
    assert entry.conflict_status == "APPROVED" and entry.conflict_transaction == tx("APPROVED")
    [pending] = journal.pending()
    assert (pending.tag, pending.conflict, pending.status, pending.conflict_status) == (
        "t-1",
        True,
        "DECLINED",
        "APPROVED",
    )


def test_what_the_caller_was_told_stays_first_when_a_late_answer_won_the_race(
    journal: Journal,
) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", tx("APPROVED"), status="APPROVED")  # the late one, first
    assert journal.record_outcome("t-1", tx("DECLINED"), status="DECLINED", delivered=True) == (
        "conflict"
    )
    [pending] = journal.pending()
    assert (pending.status, pending.conflict_status) == ("DECLINED", "APPROVED")
    entry = journal.get("t-1")
    assert entry is not None and entry.conflict_transaction == tx("APPROVED")


def test_another_transaction_with_the_same_status_is_a_conflict(journal: Journal) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", tx(identifier="tx-1"), status="APPROVED")
    assert journal.record_outcome("t-1", tx(identifier="tx-2"), status="APPROVED") == "conflict"


def test_the_same_final_outcome_twice_changes_nothing(journal: Journal) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", tx(), status="APPROVED")
    assert journal.record_outcome("t-1", tx(), status="APPROVED") == "unchanged"
    assert journal.pending() == []


@pytest.mark.parametrize("status", ["PENDING", "INCONCLUSIVE", "SOMETHING_NEW"])
def test_a_non_final_status_never_reopens_a_settled_row(journal: Journal, status: str) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", tx(), status="APPROVED")
    assert journal.record_outcome("t-1", tx(status), status=status) == "unchanged"
    entry = journal.get("t-1")
    assert entry is not None and not entry.pending
    assert entry.status == "APPROVED" and entry.transaction == tx()


def test_only_a_final_lookup_settles_a_conflict(journal: Journal) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", tx("DECLINED"), status="DECLINED")
    journal.record_outcome("t-1", tx("APPROVED"), status="APPROVED")
    assert journal.record_lookups([("t-1", None, "NOT_FOUND")]) == ["conflict"]
    assert journal.record_lookups([("t-1", tx("PENDING"), "PENDING")]) == ["conflict"]
    assert journal.pending()[0].conflict_status == "APPROVED"  # nothing overwritten
    assert journal.record_lookups([("t-1", tx("APPROVED"), "APPROVED")]) == ["settled"]
    entry = journal.get("t-1")
    assert entry is not None and not entry.pending and not entry.conflict
    assert entry.status == "APPROVED" and entry.conflict_status == "APPROVED"  # history kept


# --- what was received, and the cost of the writes ------------------------------


def test_an_unknown_outcome_keeps_the_response_as_received_redacted(
    journal: Journal, path: Path
) -> None:
    send(journal, "t-1")
    received = {"type": "EXECUTE_TRANSACTION_RESPONSE", "tag": "t-1", "merchantSecret": "s3cr3t"}
    assert journal.mark_unknown("t-1", "untrusted answer", received)
    [pending] = journal.pending()
    assert pending.received == {**received, "merchantSecret": "***"}
    raw = sqlite3.connect(str(path))
    try:
        text = raw.execute("SELECT received FROM transactions").fetchone()[0]
    finally:
        raw.close()
    assert isinstance(text, str) and "s3cr3t" not in text


def statements(journal: Journal) -> List[str]:
    seen: List[str] = []
    with journal._guard() as db:
        db.set_trace_callback(seen.append)
    return seen


def test_the_request_row_is_synced_and_the_outcome_is_not(journal: Journal) -> None:
    seen = statements(journal)
    send(journal, "t-1")
    sent = list(seen)
    seen.clear()
    journal.record_outcome("t-1", tx(), status="APPROVED")
    assert not any("synchronous" in s for s in sent)  # FULL, as the journal runs
    assert "PRAGMA synchronous=NORMAL" in seen and seen[-1] == "PRAGMA synchronous=FULL"
    with journal._guard() as db:
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again


def test_a_thousand_lookups_are_written_in_one_transaction(journal: Journal) -> None:
    for index in range(1000):
        send(journal, f"t-{index}", custom=f"order-{index}")
    seen = statements(journal)
    written = journal.record_lookups([(f"t-{index}", None, "NOT_FOUND") for index in range(1000)])
    assert written == ["settled"] * 1000
    assert sum(s.startswith("BEGIN") for s in seen) == 1
    assert sum(s == "COMMIT" for s in seen) == 1
    assert journal.pending() == []


# --- migration -------------------------------------------------------------------


def test_a_version_1_journal_is_migrated_with_its_rows(path: Path) -> None:
    raw = sqlite3.connect(str(path))
    raw.execute(f"PRAGMA application_id={int.from_bytes(b'P3JL', 'big')}")
    for statement in MIGRATIONS[1]:
        raw.execute(statement)
    raw.execute(
        "INSERT INTO transactions (tag, message_type, custom_identifier, parameters, sent_at)"
        " VALUES ('old-1', ?, 'order-1', '{}', '2026-01-01T00:00:00.000000+00:00')",
        (EXECUTE,),
    )
    raw.execute("PRAGMA user_version=1")
    raw.commit()
    raw.close()
    with Journal(path) as journal:
        [pending] = journal.pending()
        assert (pending.tag, pending.owner, pending.conflict) == ("old-1", None, False)
        assert not journal.owner_alive(pending.owner)  # nobody owns a row of version 1
        journal.record_outcome("old-1", tx(), status="APPROVED")
    raw = sqlite3.connect(str(path))
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


# --- item 2: owners --------------------------------------------------------------


def test_an_owner_is_alive_until_released(journal: Journal) -> None:
    owner = journal.register_owner()
    send(journal, "t-1", owner=owner)
    assert journal.pending()[0].owner == owner
    assert journal.owner_alive(owner)
    with Journal(journal.path) as other:  # another connection, same process
        assert other.owner_alive(owner)
    journal.release_owner(owner)
    assert not journal.owner_alive(owner)


_HOLD_OWNER = textwrap.dedent(
    """
    import sys
    from payprotocol.journal import Journal
    journal = Journal(sys.argv[1])
    print(journal.register_owner(), flush=True)
    sys.stdin.readline()  # held until the parent kills us
    """
)


def test_an_owner_in_another_process_is_alive_until_that_process_dies(journal: Journal) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_OWNER, journal.path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        owner = child.stdout.readline().strip()
        assert owner and journal.owner_alive(owner)
    finally:
        child.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
        child.communicate(timeout=30)
    assert not journal.owner_alive(owner)  # the OS released its lock


def test_an_owner_of_another_machine_counts_as_alive(journal: Journal) -> None:
    with journal._guard() as db:
        db.execute(
            "INSERT INTO owners (owner, host, pid, kind, started_at)"
            " VALUES ('ab12', 'another-machine', 1, 'client', 'x')"
        )
    assert journal.owner_alive("ab12")  # its lock cannot be checked from here
    assert journal.owner_host("ab12") == "another-machine"


# --- item 6: a vanished journal ---------------------------------------------------


def test_a_missing_or_empty_journal_that_must_exist_is_an_error(path: Path) -> None:
    with pytest.raises(JournalError, match="missing or empty"):
        Journal(path, create=False)
    assert not path.exists()
    path.write_bytes(b"")
    with pytest.raises(JournalError, match="missing or empty"):
        Journal(path, create=False)


def test_creating_a_journal_logs_a_warning_with_its_path(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="payprotocol.journal"):
        Journal(path).close()
    assert f"created a new, empty journal file {path.resolve()}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="payprotocol.journal"):
        Journal(path, create=False).close()  # it exists now: no warning
    assert caplog.text == ""


_WRITE_AND_DIE = textwrap.dedent(
    """
    import os, sys
    from payprotocol.journal import Journal
    journal = Journal(sys.argv[1])
    journal.record_sent(tag="lost-1", message_type="EXECUTE_TRANSACTION_REQUEST",
                        resource="devices/r1", custom_identifier="order-1", parameters={})
    os._exit(0)  # an unclean stop, on every platform: no close, no checkpoint
    """
)


def test_a_journal_that_lost_its_wal_after_an_unclean_stop_is_refused(
    path: Path, tmp_path: Path
) -> None:
    subprocess.run([sys.executable, "-c", _WRITE_AND_DIE, str(path)], check=True, timeout=60)
    assert Path(str(path) + "-wal").exists()
    copy = tmp_path / "copied.sqlite"
    shutil.copyfile(path, copy)  # the main file alone, as a careless backup does
    with pytest.raises(JournalError, match="-wal file is missing"):
        Journal(copy)
    with Journal(copy, accept_missing_wal=True) as accepted:
        assert accepted.pending() == []  # the row lived in the lost WAL
    Journal(copy).close()  # accepted once: a clean file from now on
    with Journal(path) as intact:  # the original, with its WAL: nothing lost
        assert [p.tag for p in intact.pending()] == ["lost-1"]
    Journal(path).close()  # closed cleanly: its WAL is gone and that is fine
    assert not Path(str(path) + "-wal").exists()


def test_a_backup_through_the_backup_api_keeps_every_row(journal: Journal, tmp_path: Path) -> None:
    send(journal, "t-1")
    target = tmp_path / "backup.sqlite"
    journal.backup(target)
    with Journal(target, create=False) as restored:
        assert [p.tag for p in restored.pending()] == ["t-1"]
