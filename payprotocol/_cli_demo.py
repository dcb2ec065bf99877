"""``payprotocol demo``: a guided tour of the SDK against an in-process simulator (private).

Strategy: the demo is written the way a POS program would use the SDK (one
blocking :class:`PayClient`, ``on_update``/``on_action`` callbacks), so reading
this file is also a tutorial. Every step records what it expected and what it
got; the demo exits 0 only when every step ended as expected, which makes it a
smoke test too (``demo --fast`` runs in a couple of seconds).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from decimal import Decimal
from typing import Callable, List, Optional

import attrs

from . import models as m
from ._cli_console import StatusLine, money
from .client import PayClient
from .errors import PayProtocolError, ServerError

__all__ = ["run_demo"]

_MERCHANT = "demo-merchant"
_SECRET = "demo-secret"  # only ever known to this process and its own simulator
_CURRENCY = "EUR"


@attrs.define
class _Step:
    """One line of the summary table."""

    title: str
    expected: str
    got: str = "not run"
    amount: str = ""
    transaction: str = ""
    ok: bool = False
    note: str = ""


@attrs.define
class _Pace:
    """How fast the tour goes: human-paced by default, ``--fast`` for tests."""

    step_delay: float  # the simulator's delay between reader steps
    slow_presentation: float  # how long the ``.09`` card takes to appear
    pause: float  # between the tour's steps
    abort_after: float  # how long the "cashier" waits before pressing abort


_HUMAN = _Pace(step_delay=0.35, slow_presentation=8.0, pause=0.6, abort_after=1.2)
_FAST = _Pace(step_delay=0.02, slow_presentation=3.0, pause=0.0, abort_after=0.0)


class _Tour:
    def __init__(self, client: PayClient, pace: _Pace, out: StatusLine) -> None:
        self.client = client
        self.pace = pace
        self.out = out
        self.steps: List[_Step] = []
        self.reader: Optional[m.Device] = None
        self.signature_requests = 0
        # The POS answers actions from a callback, as legacy POS code does.
        client.on_update(self._show)
        client.on_action(self._answer)

    # --- callbacks (run on the client's dispatcher thread) ---------------------------

    def _show(self, update: object) -> None:
        if isinstance(update, (m.ExecuteTransactionUpdate, m.AmendTransactionUpdate)):
            self.out.show(update.information)

    def _answer(self, action: m.ExecuteTransactionAction) -> None:
        if action.action == m.ActionType.SIGNATURE:
            self.signature_requests += 1
            self.out.print('      the reader asks for a signature: answering "sign on receipt"')
            self.client.submit_signature(action.resource or "", on_receipt=True)
        else:  # the tour's amounts never ask anything else
            self.out.print(f"      unexpected action {action.action}: aborting")
            self.client.abort_transaction(action.resource or "")

    # --- the tour ----------------------------------------------------------------------

    def step(self, title: str, expected: str, run: Callable[[_Step], None]) -> None:
        number = len(self.steps) + 1
        step = _Step(title, expected)
        self.steps.append(step)
        self.out.print(f"[{number}] {title}")
        try:
            run(step)
        except PayProtocolError as exc:
            step.got, step.ok, step.note = type(exc).__name__, False, str(exc)
        finally:
            self.out.finish()
        mark = "ok" if step.ok else "UNEXPECTED"
        detail = f" ({step.note})" if step.note else ""
        self.out.print(f"    -> {step.got} [{mark}]{detail}")
        self.out.print()
        time.sleep(self.pace.pause)

    def login(self, step: _Step) -> None:
        login = self.client.login(_MERCHANT, _SECRET, m.ProviderMode.TEST)
        location = (login.information or {}).get("location", "")
        readers = ", ".join(f"{d.resource} ({d.name})" for d in login.devices)
        self.out.print(f"    location {location!r}; readers: {readers or 'none'}")
        step.got = f"{len(login.devices)} reader(s)"
        step.ok = bool(login.devices)
        if login.devices:
            self.reader = login.devices[0]

    def charge(self, step: _Step, amount: str, subject: str) -> Optional[m.Transaction]:
        if self.reader is None:
            step.got, step.note = "skipped", "no reader"
            return None
        step.amount = money(Decimal(amount), _CURRENCY)
        transaction = self.client.charge(
            self.reader,
            Decimal(amount),
            _CURRENCY,
            subject=subject,
            custom_identifier=f"demo-{uuid.uuid4().hex[:12]}",
        )
        self._record(step, transaction)
        return transaction

    def aborted_charge(self, step: _Step) -> None:
        reader = self.reader
        if reader is None:
            step.got, step.note = "skipped", "no reader"
            return
        amount = Decimal("20.09")  # .09: the simulated card takes its time to appear
        step.amount = money(amount, _CURRENCY)
        pressed = threading.Event()
        outcome: List[str] = []
        timers: List[threading.Timer] = []

        def press_abort() -> None:
            try:
                self.client.abort_transaction(reader)
                outcome.append("accepted")
            except ServerError as exc:
                outcome.append(f"refused: {exc.error_type}")
            except PayProtocolError as exc:
                outcome.append(f"failed: {exc}")
            self.out.print(f"      the cashier presses abort: {outcome[-1]}")

        def on_update(update: object) -> None:
            # Abort only while the latest update says the reader allows it.
            abortable = isinstance(update, m.ExecuteTransactionUpdate) and update.abortable
            if abortable and not pressed.is_set():
                pressed.set()
                timer = threading.Timer(self.pace.abort_after, press_abort)
                timer.daemon = True
                timers.append(timer)
                timer.start()

        transaction = self.client.charge(
            reader, amount, _CURRENCY, subject="Changed my mind", on_update=on_update
        )
        for timer in timers:  # the abort's own answer may come after the payment's
            timer.join(10)
        self._record(step, transaction)
        if not outcome:
            step.ok, step.note = False, "the reader never said the payment could be aborted"

    def refund(self, step: _Step, charge: Optional[m.Transaction]) -> Optional[m.Transaction]:
        if charge is None or charge.transaction_identifier is None:
            step.got, step.note = "skipped", "no charge to refund"
            return None
        amount = Decimal("5.00")
        step.amount = money(amount, _CURRENCY)
        refund = self.client.refund(
            charge.transaction_identifier, amount=amount, currency=_CURRENCY, subject="Returned mug"
        )
        self._record(step, refund)
        if refund.amount != amount or refund.type != m.TransactionType.REFUND:
            step.ok = False
            step.note = f"got a {refund.type} of {money(refund.amount, refund.currency)}"
        return refund

    def lookup(self, step: _Step, charge: Optional[m.Transaction]) -> None:
        if charge is None or charge.custom_identifier is None:
            step.got, step.note = "skipped", "no charge to look up"
            return
        self.out.print(f"    custom identifier {charge.custom_identifier}")
        found = self.client.get_transaction(custom_identifier=charge.custom_identifier)
        step.amount = money(found.amount, found.currency)
        step.transaction = _short(found.transaction_identifier)
        same = found.transaction_identifier == charge.transaction_identifier
        step.got = f"found {found.status}" if same else "another transaction"
        step.ok = same

    def _record(self, step: _Step, transaction: m.Transaction) -> None:
        step.got = str(transaction.status)
        step.transaction = _short(transaction.transaction_identifier)
        step.ok = step.got == step.expected
        details = transaction.status_details
        if details is not None and details.code and details.code != step.got:
            step.note = details.code

    def receipts(self, transaction: Optional[m.Transaction], *, merchant: bool) -> None:
        """Print one receipt as a 40-column printer would (the merchant's copy
        carries the signature line)."""
        if transaction is None:
            return
        from .receipts import format_receipt

        receipt = transaction.merchant_receipt if merchant else transaction.customer_receipt
        if receipt is not None:
            owner = transaction if merchant else None  # the transaction's flags: merchant copy
            self.out.print(_framed(format_receipt(receipt, width=40, transaction=owner)))
            self.out.print()


def _short(identifier: Optional[str]) -> str:
    return (identifier or "-")[:12]


def _framed(text: str) -> str:
    """A receipt between two cut lines, as it would leave a 40-column printer."""
    cut = "- " * 20
    return "\n".join([cut.rstrip(), text.rstrip("\n"), cut.rstrip()])


def _table(steps: List[_Step]) -> str:
    header = ("#", "step", "expected", "got", "amount", "transaction", "result")
    rows = [header] + [
        (
            str(n),
            s.title,
            s.expected,
            s.got,
            s.amount,
            s.transaction,
            "ok" if s.ok else "UNEXPECTED",
        )
        for n, s in enumerate(steps, 1)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)


def run_demo(*, transport: str = "tcp", fast: bool = False) -> int:
    """Run the tour on a fresh in-process simulator; 0 when every step went as expected."""
    from .simulator import Simulator, SimulatorConfig

    pace = _FAST if fast else _HUMAN
    config = SimulatorConfig(
        host="127.0.0.1",
        tcp_port=0 if transport == "tcp" else None,
        ws_port=0 if transport == "ws" else None,
        merchants={_MERCHANT: _SECRET},
        step_delay=pace.step_delay,
        slow_presentation=pace.slow_presentation,
    )
    out = StatusLine(sys.stdout)
    started = time.monotonic()
    with Simulator(config) as simulator:
        url = simulator.tcp_url if transport == "tcp" else simulator.ws_url
        out.print("PayProtocol demo")
        out.print(f"A simulated PayServer listens on {url}; the POS connects to it.")
        out.print("The reader's two display lines are shown as they change.")
        out.print()
        with PayClient(url, timeout=10, transaction_timeout=30) as client:
            tour = _Tour(client, pace, out)
            charges: List[Optional[m.Transaction]] = []

            tour.step(f"Log in as merchant {_MERCHANT}", "1+ reader(s)", tour.login)

            def signature_charge(step: _Step) -> None:
                before = tour.signature_requests
                charges.append(tour.charge(step, "10.00", "Coffee and cake"))
                if step.ok and tour.signature_requests == before:
                    step.ok, step.note = False, "no signature was asked for"

            tour.step("Charge 10.00 (signature)", "APPROVED", signature_charge)
            tour.receipts(charges[-1] if charges else None, merchant=True)
            tour.step(
                "Charge 40.00 (PIN)",
                "APPROVED",
                lambda step: charges.append(tour.charge(step, "40.00", "Lunch for two")),
            )
            tour.receipts(charges[-1] if len(charges) > 1 else None, merchant=False)
            tour.step(
                "Charge 100.00 (declined)",
                "DECLINED",
                lambda step: charges.append(tour.charge(step, "100.00", "A big order")),
            )
            tour.step("Charge 20.09, aborted", "ABORTED", tour.aborted_charge)
            first = charges[0] if charges else None
            refunds: List[m.Transaction] = []

            def partial_refund(step: _Step) -> None:
                refund = tour.refund(step, first)
                if refund is not None:
                    refunds.append(refund)

            tour.step("Refund 5.00 of the 10.00 charge", "APPROVED", partial_refund)
            tour.receipts(refunds[0] if refunds else None, merchant=False)
            tour.step(
                "Look the 10.00 charge up by custom identifier",
                "found APPROVED",
                lambda step: tour.lookup(step, first),
            )
    out.print("Summary")
    out.print(_table(tour.steps))
    out.print()
    failed = [f"{n} ({s.title})" for n, s in enumerate(tour.steps, 1) if not s.ok]
    elapsed = time.monotonic() - started
    if failed:
        out.print(f"demo FAILED: step {', '.join(failed)} did not end as expected")
        return 1
    out.print(f"Every step ended as expected ({elapsed:.1f} s).")
    return 0
