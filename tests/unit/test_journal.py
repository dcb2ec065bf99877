"""Tests of payprotocol.journal: the durable record of transactions in flight."""

from __future__ import annotations

import datetime
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

import pytest

from payprotocol import models as m
from payprotocol.errors import PayProtocolError
from payprotocol.journal import SCHEMA_VERSION, Journal, JournalError, PendingOutcome
from payprotocol.wire_converter import converter

pytestmark = pytest.mark.unit

EXECUTE = "EXECUTE_TRANSACTION_REQUEST"
AMEND = "AMEND_TRANSACTION_REQUEST"
SECRET = "s3cr3t-XYZZY-do-not-store"


def execute_parameters(
    amount: str = "10.00", custom_identifier: str = "order4711"
) -> Dict[str, Any]:
    request = m.ExecuteTransactionRequest(
        transaction_parameters=m.TransactionParameters(
            type=m.TransactionType.CHARGE,
            amount=Decimal(amount),
            currency="EUR",
            auto_capture=True,
            subject="Table 4",
            custom_identifier=custom_identifier,
            application_fee=Decimal("0.10"),
        ),
        mode=m.Mode.ONLINE,
    )
    wire: Dict[str, Any] = converter.unstructure(request)
    return wire


def approved(amount: str = "10.00", identifier: str = "9a1e4c0b") -> m.Transaction:
    return m.Transaction(
        transaction_identifier=identifier,
        type=m.TransactionType.CHARGE,
        status=m.TransactionStatus.APPROVED,
        amount=Decimal(amount),
        currency="EUR",
        included_tip_amount=Decimal("0.00"),
        custom_identifier="order4711",
        created=datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.timezone.utc),
        metadata={"clerk": "anna", "rate": Decimal("1.142")},
        extra_fields={"futureField": {"kept": True}},
    )


def send(journal: Journal, tag: str, **overrides: Any) -> None:
    arguments: Dict[str, Any] = {
        "tag": tag,
        "message_type": EXECUTE,
        "resource": "devices/counter1",
        # One identifier per request: reusing one is refused (see test_journal_reuse.py).
        "custom_identifier": "order4711" if tag == "t-1" else f"order4711-{tag}",
        "parameters": execute_parameters(),
    }
    arguments.update(overrides)
    journal.record_sent(**arguments)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "pos-journal.sqlite"


@pytest.fixture
def journal(journal_path: Path) -> Any:
    with Journal(journal_path) as opened:
        yield opened


# --- record and resolve ----------------------------------------------------------


def test_sent_request_is_pending_until_its_outcome_is_recorded(journal: Journal) -> None:
    before = datetime.datetime.now(datetime.timezone.utc)
    send(journal, "t-1")

    [pending] = journal.pending()
    assert isinstance(pending, PendingOutcome)
    assert pending.tag == "t-1"
    assert pending.message_type == EXECUTE
    assert pending.resource == "devices/counter1"
    assert pending.custom_identifier == "order4711"
    assert pending.parameters == execute_parameters()
    assert pending.reason is None
    assert pending.status is None
    assert pending.sent_at.tzinfo is not None
    assert before <= pending.sent_at <= datetime.datetime.now(datetime.timezone.utc)

    entry = journal.get("t-1")
    assert entry is not None
    assert entry.pending and entry.status is None and entry.transaction is None

    journal.record_outcome("t-1", approved(), status=m.TransactionStatus.APPROVED)

    assert journal.pending() == []
    entry = journal.get("t-1")
    assert entry is not None
    assert not entry.pending
    assert entry.status == "APPROVED"
    assert entry.error is None
    assert entry.transaction == approved()
    assert entry.outcome_at is not None and entry.outcome_at >= entry.sent_at


def test_server_error_outcome_without_transaction(journal: Journal) -> None:
    send(journal, "t-1", message_type=AMEND, resource=None)
    journal.record_outcome("t-1", None, status="ERROR", error="DEVICE_BUSY: reader busy")
    entry = journal.get("t-1")
    assert entry is not None
    assert (entry.status, entry.error, entry.transaction, entry.pending) == (
        "ERROR",
        "DEVICE_BUSY: reader busy",
        None,
        False,
    )
    assert entry.resource is None and entry.message_type == AMEND


@pytest.mark.parametrize("status", ["INCONCLUSIVE", "PENDING", "PENDING_REVIEW", "UNKNOWN"])
def test_a_status_that_is_not_known_final_stays_pending(journal: Journal, status: str) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", None, status=status)
    [pending] = journal.pending()
    assert pending.status == status


@pytest.mark.parametrize(
    "status", ["APPROVED", "ACCEPTED", "DECLINED", "ABORTED", "ERROR", "NOT_SENT", "NOT_FOUND"]
)
def test_final_and_client_known_statuses_settle_the_row(journal: Journal, status: str) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", None, status=status)
    assert journal.pending() == []


def test_mark_unknown_keeps_the_row_pending_with_its_reason(journal: Journal) -> None:
    send(journal, "t-1")
    assert journal.mark_unknown("t-1", "connection lost") is True
    [pending] = journal.pending()
    assert pending.reason == "connection lost"

    # The late response (or a lookup after restart) resolves it; the reason stays as history.
    journal.record_outcome("t-1", approved(), status="APPROVED")
    assert journal.pending() == []
    entry = journal.get("t-1")
    assert entry is not None and entry.reason == "connection lost"


def test_mark_unknown_after_the_outcome_changes_nothing(journal: Journal) -> None:
    send(journal, "t-1")
    journal.record_outcome("t-1", approved(), status="APPROVED")
    assert journal.mark_unknown("t-1", "timed out") is False
    entry = journal.get("t-1")
    assert entry is not None and not entry.pending and entry.reason is None


def test_inconclusive_outcome_stays_pending(journal: Journal) -> None:
    send(journal, "t-1")
    inconclusive = attrs_evolve(approved(), status=m.TransactionStatus.INCONCLUSIVE)
    journal.record_outcome("t-1", inconclusive, status=m.TransactionStatus.INCONCLUSIVE)
    [pending] = journal.pending()
    assert pending.status == "INCONCLUSIVE"
    assert pending.reason is not None and "INCONCLUSIVE" in pending.reason

    journal.record_outcome("t-1", approved(), status="APPROVED")
    assert journal.pending() == []


def test_unknown_tag_and_duplicate_tag_are_errors(journal: Journal) -> None:
    with pytest.raises(JournalError, match="not in the journal"):
        journal.record_outcome("nope", None, status="APPROVED")
    with pytest.raises(JournalError, match="not in the journal"):
        journal.mark_unknown("nope", "timeout")
    assert journal.get("nope") is None

    send(journal, "t-1")
    with pytest.raises(JournalError, match="already in the journal"):
        send(journal, "t-1", custom_identifier="another-order")
    assert len(journal.pending()) == 1


def test_pending_is_oldest_first_and_skips_resolved(journal: Journal) -> None:
    tags = [f"t-{index}" for index in range(10)]
    for tag in tags:
        send(journal, tag, custom_identifier=f"order-{tag}")
    for tag in tags[::3]:
        journal.record_outcome(tag, None, status="DECLINED")
    journal.mark_unknown("t-8", "timeout")

    pending = journal.pending()
    assert [p.tag for p in pending] == [t for i, t in enumerate(tags) if i % 3]
    assert [p.sent_at for p in pending] == sorted(p.sent_at for p in pending)
    assert [p.custom_identifier for p in pending][:2] == ["order-t-1", "order-t-2"]


def test_find_by_custom_identifier(journal: Journal) -> None:
    send(journal, "t-1", custom_identifier="order-1")
    send(journal, "t-2", custom_identifier="order-2")
    journal.record_outcome("t-1", approved(), status="APPROVED")
    send(
        journal, "t-3", custom_identifier="order-1", message_type=AMEND, allow_identifier_reuse=True
    )
    assert [e.tag for e in journal.find("order-1")] == ["t-1", "t-3"]
    assert journal.find("order-9") == []


def test_prune_deletes_only_old_resolved_rows(journal: Journal) -> None:
    send(journal, "done")
    send(journal, "open")
    journal.record_outcome("done", None, status="DECLINED")
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert journal.prune(future) == 1
    assert journal.get("done") is None
    assert [p.tag for p in journal.pending()] == ["open"]
    with pytest.raises(ValueError):
        journal.prune(datetime.datetime(2020, 1, 1))  # naive: ambiguous


# --- secrets and exact amounts -------------------------------------------------


def test_secrets_never_reach_the_file(journal_path: Path) -> None:
    signature = "iVBORw0KGgo-SIGNATURE-" + SECRET
    parameters = execute_parameters()
    # A secret smuggled in unknown fields of the request and of the transaction.
    parameters["merchantSecret"] = SECRET
    parameters["transactionParameters"]["metadata"] = {"signature": signature}
    transaction = attrs_evolve(
        approved(), extra_fields={"merchantSecret": SECRET, "nested": [{"signature": signature}]}
    )
    with Journal(journal_path) as journal:
        send(journal, "t-1", parameters=parameters)
        send(journal, "t-2", parameters=m.SubmitSignatureRequest(signature=signature))
        journal.record_outcome("t-1", transaction, status="APPROVED")
        entry = journal.get("t-1")
        assert entry is not None
        assert entry.parameters["merchantSecret"] == "***"
        assert entry.parameters["transactionParameters"]["metadata"] == {"signature": "***"}
        assert entry.transaction is not None
        assert entry.transaction.extra_fields["merchantSecret"] == "***"
        # Checked while open too: the data sits in the WAL file before a checkpoint.
        for path in journal_path.parent.rglob("*"):
            assert path.is_dir() or SECRET.encode() not in path.read_bytes(), path.name
    for path in journal_path.parent.rglob("*"):
        assert path.is_dir() or SECRET.encode() not in path.read_bytes(), path.name
    assert b"SIGNATURE" not in journal_path.read_bytes()


def test_decimals_are_exact_through_the_journal(journal_path: Path) -> None:
    amounts = ["10.00", "0.10", "1234567890.12", "0.01", "100", "1E+2", "9999999999999999.99"]
    with Journal(journal_path) as journal:
        for amount in amounts:
            send(journal, amount, parameters=execute_parameters(amount))
            journal.record_outcome(amount, approved(amount), status="APPROVED")
    with Journal(journal_path) as journal:
        for amount in amounts:
            entry = journal.get(amount)
            assert entry is not None and entry.transaction is not None
            stored = entry.parameters["transactionParameters"]["amount"]
            assert isinstance(stored, (Decimal, int))
            assert str(stored) == amount  # same digits, same exponent
            assert str(entry.transaction.amount) == amount
            assert entry.parameters["transactionParameters"]["applicationFee"] == Decimal("0.10")
            assert str(entry.transaction.included_tip_amount) == "0.00"
            assert entry.transaction.metadata == {"clerk": "anna", "rate": Decimal("1.142")}
            assert entry.transaction.extra_fields == {"futureField": {"kept": True}}
    raw = sqlite3.connect(str(journal_path)).execute(
        "SELECT parameters FROM transactions WHERE tag = '0.10'"
    )
    assert '"amount":0.10' in raw.fetchone()[0]  # written as the exact JSON number


# --- reopening, crashes, other processes ----------------------------------------


def test_reopen_after_close(journal_path: Path) -> None:
    journal = Journal(journal_path)
    send(journal, "t-1")
    send(journal, "t-2")
    journal.record_outcome("t-2", approved(), status="APPROVED")
    journal.mark_unknown("t-1", "timeout")
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        journal.pending()

    with Journal(journal_path) as reopened:
        assert [(p.tag, p.reason) for p in reopened.pending()] == [("t-1", "timeout")]
        entry = reopened.get("t-2")
        assert entry is not None and entry.transaction == approved()
    raw = sqlite3.connect(str(journal_path))
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


_CHILD = textwrap.dedent(
    """
    import sys, time
    from payprotocol.journal import Journal
    journal = Journal(sys.argv[1])
    wire = {{"transactionParameters": {{"type": "CHARGE", "amount": 1}}}}
    journal.record_sent(tag="child-done", message_type="{execute}", resource="devices/x",
                        custom_identifier="c-1", parameters=wire)
    journal.record_outcome("child-done", None, status="DECLINED")
    journal.record_sent(tag="child-pending", message_type="{execute}", resource="devices/x",
                        custom_identifier="c-2", parameters=wire)
    print("written", flush=True)
    time.sleep(60)  # killed long before this ends; close() is never called
    """
).format(execute=EXECUTE)


def start_child_and_kill_it(journal_path: Path, while_alive: Any = None) -> None:
    """Run _CHILD, wait until it has written, run ``while_alive``, then SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(journal_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.strip() == "written", child.stderr.read() if child.stderr else ""
        if while_alive is not None:
            while_alive()
    finally:
        child.kill()  # SIGKILL on POSIX (TerminateProcess on Windows): no close, no atexit
        child.communicate(timeout=30)
    assert child.returncode != 0


def test_row_survives_sigkill_of_the_writing_process(journal_path: Path) -> None:
    child_wire = {"transactionParameters": {"type": "CHARGE", "amount": 1}}
    with Journal(journal_path) as parent:
        send(parent, "parent-1")

        def parent_sees_the_child_rows() -> None:
            # Another process's commits are visible to an already open journal.
            assert [p.tag for p in parent.pending()] == ["parent-1", "child-pending"]

        start_child_and_kill_it(journal_path, parent_sees_the_child_rows)

    with Journal(journal_path) as after:
        pending = after.pending()
        assert [p.tag for p in pending] == ["parent-1", "child-pending"]
        assert pending[1].parameters == child_wire
        assert pending[1].resource == "devices/x"
        assert pending[1].custom_identifier == "c-2"
        done = after.get("child-done")
        assert done is not None and done.status == "DECLINED" and not done.pending


def test_row_survives_sigkill_with_nobody_else_holding_the_file(journal_path: Path) -> None:
    start_child_and_kill_it(journal_path)
    wal = journal_path.with_name(journal_path.name + "-wal")
    # No clean close ran, so the rows are only in the WAL: opening must recover it.
    assert wal.exists() and wal.stat().st_size > 0
    with Journal(journal_path) as after:
        assert [p.tag for p in after.pending()] == ["child-pending"]
        after.check()


# --- threads -------------------------------------------------------------------


def test_concurrent_threads_on_one_and_on_two_journals(journal_path: Path) -> None:
    first = Journal(journal_path)
    second = Journal(journal_path)  # a second connection: contends for the file lock
    errors: List[BaseException] = []
    per_thread = 25

    def work(journal: Journal, name: str) -> None:
        try:
            for index in range(per_thread):
                tag = f"{name}-{index}"
                send(journal, tag, custom_identifier=f"{name}/{index}")
                if index % 2:
                    journal.record_outcome(tag, approved(), status="APPROVED")
                else:
                    journal.mark_unknown(tag, "timeout")
                assert journal.get(tag) is not None
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(first if n % 2 else second, f"w{n}")) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    try:
        pending = first.pending()
        assert len(pending) == 8 * ((per_thread + 1) // 2)
        assert all(p.reason == "timeout" for p in pending)
        for n in range(8):
            thread_tags = [p.tag for p in pending if p.tag.startswith(f"w{n}-")]
            # Each thread's rows appear in the order it wrote them.
            assert thread_tags == [f"w{n}-{i}" for i in range(0, per_thread, 2)]
        assert len([e for e in second.entries() if e.tag.startswith("w3-")]) == per_thread
    finally:
        first.close()
        second.close()


# --- bad files -----------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_refused(journal_path: Path) -> None:
    journal_path.write_bytes(b"this is a receipt printer log, not a database\n" * 200)
    with pytest.raises(JournalError, match="not a usable payprotocol journal") as caught:
        Journal(journal_path)
    assert isinstance(caught.value, PayProtocolError)
    assert journal_path.read_bytes().startswith(b"this is a receipt")  # untouched


def test_a_foreign_sqlite_database_is_refused_and_untouched(journal_path: Path) -> None:
    other = sqlite3.connect(str(journal_path))
    other.execute("CREATE TABLE orders (id INTEGER)")
    other.commit()
    other.close()
    with pytest.raises(JournalError, match="not a payprotocol journal"):
        Journal(journal_path)
    check = sqlite3.connect(str(journal_path))
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    check.close()


def test_a_newer_schema_is_refused(journal_path: Path) -> None:
    Journal(journal_path).close()
    raw = sqlite3.connect(str(journal_path))
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(JournalError, match="newer payprotocol"):
        Journal(journal_path)


def test_a_corrupted_journal_is_reported(journal_path: Path) -> None:
    with Journal(journal_path) as journal:
        for index in range(200):
            send(journal, f"t-{index}", parameters={"padding": "x" * 500, "n": index})
    data = bytearray(journal_path.read_bytes())
    assert len(data) > 8 * 4096
    data[0:16] = b"garbage-header!!"
    journal_path.write_bytes(bytes(data))
    with pytest.raises(JournalError):
        Journal(journal_path)


def test_check_finds_damaged_pages(journal_path: Path) -> None:
    with Journal(journal_path) as journal:
        for index in range(200):
            send(journal, f"t-{index}", parameters={"padding": "x" * 500, "n": index})
        journal.check()  # healthy
    data = bytearray(journal_path.read_bytes())
    page_size = 4096
    for offset in range(3 * page_size, len(data) - page_size, 2 * page_size):
        data[offset : offset + 64] = b"\xff" * 64  # smash b-tree page headers
    journal_path.write_bytes(bytes(data))
    with pytest.raises(JournalError), Journal(journal_path) as journal:
        journal.check()
        journal.pending()


def test_unopenable_path_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal(tmp_path / "no-such-directory" / "journal.sqlite")


def test_stored_json_is_plain_and_inspectable(journal: Journal, journal_path: Path) -> None:
    send(journal, "t-1")
    raw = sqlite3.connect(str(journal_path))
    text = raw.execute("SELECT parameters FROM transactions").fetchone()[0]
    assert json.loads(text, parse_float=Decimal) == execute_parameters()
    raw.close()


def attrs_evolve(transaction: m.Transaction, **changes: Any) -> m.Transaction:
    import attrs

    return attrs.evolve(transaction, **changes)


def test_the_journal_syncs_fully_in_wal_mode(journal: Journal) -> None:
    # Durability of the row written before a request leaves rests on these two.
    # (Reads the journal's own connection: PRAGMA synchronous is per connection.)
    with journal._guard() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_transaction_with_a_misfit_kept_reads_back(journal: Journal) -> None:
    # Issue 9: the tolerant reader keeps a field that did not fit as received;
    # the journal writes it as it is and must read it back the same.
    from payprotocol import decode_message
    from payprotocol.codec import dumps, to_wire

    misfit = {**to_wire(approved()), "captured": "yes"}
    wire = {"type": "GET_TRANSACTION_RESPONSE", "tag": "t-9", "status": "OK"}
    wire["getTransactionResponse"] = {"transaction": misfit}
    transaction = decode_message(dumps(wire)).data.transaction
    assert transaction.extra_fields["captured"] == "yes"
    send(journal, "t-1")
    journal.record_outcome("t-1", transaction, status=m.TransactionStatus.APPROVED)
    entry = journal.get("t-1")
    assert entry is not None and entry.transaction == transaction
