"""The operator's journal commands: ``payprotocol journal list`` and
``payprotocol recover`` (and ``--journal FILE`` for the commands that charge
or amend).

Strategy: the parsers are added here (``cli.py`` calls :func:`add_commands`
and :func:`add_journal_option`); ``journal list`` only reads the file, so it
needs no PayServer; ``recover`` logs in through the shared session of
``_cli_commands`` (:func:`~payprotocol._cli_commands.run_remote`, which also
maps the SDK's errors to exit codes) and prints one line per pending entry.
Both commands refuse a journal file that is missing or empty
(``Journal(path, create=False)``): a vanished journal must never look like
"nothing pending".

Exit codes of both: 0 nothing is left open; 4 entries remain pending or in
conflict (``journal list``: some exist; ``recover``: some could not be
settled: in flight, still pending, conflict, mismatch or a failed lookup);
2 usage error (no such journal, an unusable file); 3 connection or server
error (``recover``'s login).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Dict, List

from ._cli_commands import run_remote
from ._cli_common import EXIT_OK, EXIT_OUTCOME_UNKNOWN, EXIT_USAGE, err, out
from .client import PayClient, RecoveredOutcome
from .codec import dumps, to_wire

if TYPE_CHECKING:
    from .journal import Journal, JournalEntry

__all__ = ["add_commands", "add_journal_option", "cmd_journal_list", "cmd_recover"]

EXIT_CODES = (
    "exit codes: 0 nothing left pending, 4 entries still pending or in conflict (recover "
    "them; never charge them again), 2 usage error (no such journal), 3 connection or "
    "server error"
)


def add_journal_option(parser: argparse.ArgumentParser) -> None:
    """``--journal FILE`` on a command that charges or amends."""
    parser.add_argument(
        "--journal",
        metavar="FILE",
        help="journal every request before it is sent (SQLite file; created if missing); "
        "recover with 'payprotocol recover --journal FILE'",
    )


def add_commands(commands: Any, remote: argparse.ArgumentParser) -> None:
    """Add ``journal list`` and ``recover`` to the sub-command parsers."""
    journal = commands.add_parser(
        "journal",
        help="inspect a journal file",
        description="Inspect a payprotocol journal (no PayServer needed).",
        epilog=EXIT_CODES,
    )
    actions = journal.add_subparsers(dest="journal_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser(
        "list",
        help="show pending, conflicting and settled rows",
        description="Show every row of the journal, oldest first: pending (outcome unknown), "
        "conflict (two final outcomes disagree) and settled.",
        epilog=EXIT_CODES,
    )
    listing.add_argument("--journal", metavar="FILE", required=True, help="the journal file")
    listing.add_argument("--json", action="store_true", help="print the rows as JSON")
    listing.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    listing.set_defaults(handler=cmd_journal_list)

    recover = commands.add_parser(
        "recover",
        parents=[remote],
        help="look up every pending journal entry and record its outcome",
        description="Log in, look up every pending or conflicting entry of the journal by "
        "its custom identifier (GET_TRANSACTION_REQUEST) and record what the PayServer "
        "says; one line per entry. Entries of a client that is still running are left "
        "alone.",
        epilog=EXIT_CODES,
    )
    recover.add_argument("--journal", metavar="FILE", required=True, help="the journal file")
    recover.set_defaults(handler=cmd_recover)


def _open(path: str) -> Journal:
    from .journal import Journal  # sqlite3 loads only for the journal commands

    return Journal(path, create=False)


def _state(entry: JournalEntry) -> str:
    return "conflict" if entry.conflict else "pending" if entry.pending else "settled"


def _row(entry: JournalEntry) -> Dict[str, Any]:
    asked = entry.parameters.get("transactionParameters")
    asked = asked if isinstance(asked, dict) else {}
    return {
        "state": _state(entry),
        "tag": entry.tag,
        "customIdentifier": entry.custom_identifier,
        "messageType": entry.message_type,
        "resource": entry.resource,
        "type": asked.get("type"),
        "amount": asked.get("amount"),
        "currency": asked.get("currency"),
        "sentAt": entry.sent_at.isoformat(),
        "status": entry.status,
        "conflictStatus": entry.conflict_status,
        "transactionIdentifier": (
            entry.transaction.transaction_identifier if entry.transaction else None
        ),
        "reason": entry.reason,
        "error": entry.error,
    }


def cmd_journal_list(args: argparse.Namespace) -> int:
    """``payprotocol journal list``: every row of a journal file."""
    from .journal import JournalError

    try:
        with _open(args.journal) as journal:
            entries = journal.entries()
    except JournalError as exc:
        err(f"payprotocol journal list: error: {exc}")
        return EXIT_USAGE
    rows = [_row(entry) for entry in entries]
    if args.json:
        out(dumps(rows))
    else:
        for row in rows:
            money = f"{row['amount']} {row['currency']}" if row["amount"] is not None else "-"
            status = row["status"] or "-"
            if row["conflictStatus"]:
                status = f"{status} vs {row['conflictStatus']}"
            reason = row["reason"] if row["state"] != "settled" else None
            out(
                f"{row['state']:<8} {row['customIdentifier'] or '-'} {row['type'] or '-'} "
                f"{money} status={status} sent={row['sentAt']} tag={row['tag']}"
                + (f" reason={reason}" if reason else "")
            )
        open_rows = sum(row["state"] != "settled" for row in rows)
        out(f"{len(rows)} rows, {open_rows} pending or in conflict")
    return EXIT_OUTCOME_UNKNOWN if any(row["state"] != "settled" for row in rows) else EXIT_OK


def _result(found: RecoveredOutcome) -> Dict[str, Any]:
    transaction = found.transaction
    return {
        "result": found.result,
        "resolved": found.resolved,
        "tag": found.pending.tag,
        "customIdentifier": found.pending.custom_identifier,
        "status": transaction.status if transaction else None,
        "transactionIdentifier": transaction.transaction_identifier if transaction else None,
        "transaction": to_wire(transaction) if transaction else None,
        "detail": found.detail,
    }


def cmd_recover(args: argparse.Namespace) -> int:
    """``payprotocol recover``: settle the journal's pending entries (P3
    ``GET_TRANSACTION_REQUEST`` per entry)."""
    from .journal import JournalError

    try:
        journal = _open(args.journal)
    except JournalError as exc:
        err(f"payprotocol recover: error: {exc}")
        return EXIT_USAGE
    args.journal = journal  # the session's PayClient uses this open journal
    results: List[Dict[str, Any]] = []

    def body(client: PayClient, login: Any) -> int:
        results.extend(_result(found) for found in client.recover(timeout=args.timeout))
        return EXIT_OK

    try:
        code = run_remote(args, body)
    finally:
        journal.close()
    if code != EXIT_OK:
        return code
    if args.json:
        out(dumps(results))
    else:
        for result in results:
            status = result["status"] or "-"
            line = f"{result['result']:<13} {result['customIdentifier'] or '-'} status={status}"
            if result["transactionIdentifier"]:
                line += f" transaction={result['transactionIdentifier']}"
            if result["detail"] and result["result"] not in ("found",):
                line += f" ({result['detail']})"
            out(line + f" tag={result['tag']}")
        settled = sum(result["resolved"] for result in results)
        out(f"{len(results)} entries, {settled} settled, {len(results) - settled} still open")
    return EXIT_OK if all(result["resolved"] for result in results) else EXIT_OUTCOME_UNKNOWN
