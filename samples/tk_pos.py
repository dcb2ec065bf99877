"""A small Tkinter till: an amount, a Charge button, the reader's two-line
display, dialogs for the reader's questions, the result and the receipt.

    payprotocol simulate --tcp-port 4245 --ws-port 8080
    PAYPROTOCOL_MERCHANT_SECRET=secret python samples/tk_pos.py

The pattern for any GUI toolkit (the README's "From a GUI program"):

* Widgets are touched only on the GUI thread, and the GUI thread never waits
  for the network: every SDK call (connecting, the login, the charge, the
  answers to the reader, an abort, a lookup, closing) runs on a worker thread.
* The SDK's callbacks (``on_update``, ``on_action``, on its callback thread)
  and the workers' results never touch a widget: they put a function on a
  queue, which the GUI thread drains every few milliseconds with ``after``.

Keys: Return charges (or takes a dialog's default answer), Escape aborts
while the reader allows it, Ctrl+Q quits. Each change of the display and of
the result line is also printed on standard output, as a log.
"""

from __future__ import annotations

import argparse
import decimal
import functools
import getpass
import os
import queue
import sys
import threading
import tkinter as tk
import uuid
from decimal import Decimal
from typing import Any, Callable, List, Optional, TypeVar

from payprotocol import (
    ActionType,
    CreditDebit,
    Device,
    ExecuteTransactionAction,
    PayClient,
    ProviderMode,
    Transaction,
    TransactionOutcomeUnknownError,
    format_receipt,
)

POLL_MS = 20  # how often the GUI thread drains the queue of work for it
FONT = ("DejaVu Sans", 11)
DISPLAY_FONT = ("DejaVu Sans Mono", 14, "bold")
F = TypeVar("F", bound=Callable[..., Any])


def gui_only(method: F) -> F:
    """Marks a method that touches widgets: it fails loudly off the GUI thread."""

    @functools.wraps(method)
    def checked(self: Till, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() != self.gui_thread:
            raise RuntimeError(f"{method.__name__} touches widgets: call it on the GUI thread")
        return method(self, *args, **kwargs)

    return checked  # type: ignore[return-value]


class Till:
    """The till's window and its one PayClient."""

    def __init__(self, root: tk.Tk, url: str, merchant: str, secret: str, currency: str) -> None:
        self.root = root
        self.gui_thread = threading.get_ident()
        self.inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.client = PayClient(url, timeout=30)
        self.currency = currency
        self.reader: Optional[Device] = None
        self.busy = False
        self.abortable = False
        self.last: Optional[Transaction] = None
        self.questions: List[tk.Toplevel] = []  # the reader's open questions
        self._build()
        # On the SDK's callback thread: hand the display lines to the GUI thread.
        self.client.on_update(
            lambda update: self.post(
                self.show_update,
                list(getattr(update, "information", None) or []),
                bool(getattr(update, "abortable", False)),
            )
        )
        self._drain()
        self.set_result("Connecting ...")
        self.in_background(
            lambda: self._connect(merchant, secret), done=self.ready, failed=self.not_ready
        )

    # --- the two ways between the threads -----------------------------------------

    def post(self, function: Callable[..., None], *args: Any) -> None:
        """From any thread: run ``function(*args)`` on the GUI thread, soon."""
        self.inbox.put(functools.partial(function, *args))

    def _drain(self) -> None:
        self.root.after(POLL_MS, self._drain)  # first: a failing piece of work stops nothing
        while True:
            try:
                work = self.inbox.get_nowait()
            except queue.Empty:
                return
            work()

    def in_background(
        self,
        work: Callable[[], Any],
        *,
        done: Optional[Callable[[Any], None]] = None,
        failed: Optional[Callable[[BaseException], None]] = None,
    ) -> None:
        """Run ``work`` on a worker thread; its result or exception goes to
        ``done`` or ``failed`` on the GUI thread."""

        def run() -> None:
            try:
                result = work()
            except Exception as exc:
                self.post(failed or self.show_error, exc)
            else:
                if done is not None:
                    self.post(done, result)

        threading.Thread(target=run, name="till-worker", daemon=True).start()

    # --- the window ---------------------------------------------------------------

    def _build(self) -> None:
        root = self.root
        root.title("payprotocol till")
        root.configure(padx=14, pady=12)
        root.option_add("*Font", FONT)
        top = tk.Frame(root)
        top.pack(fill="x")
        tk.Label(top, text="Amount").pack(side="left")
        self.amount = tk.Entry(top, width=10, justify="right")
        self.amount.pack(side="left", padx=6)
        self.amount.insert(0, "10.00")
        tk.Label(top, text=self.currency).pack(side="left")
        self.charge_button = tk.Button(
            top, text="Charge", width=8, state="disabled", command=self.charge
        )
        self.charge_button.pack(side="left", padx=(12, 0))
        screen = tk.Frame(root, bg="#10281a", padx=10, pady=8, bd=3, relief="sunken")
        screen.pack(fill="x", pady=10)
        self.lines = [
            tk.Label(
                screen, text="", width=24, anchor="w", bg="#10281a", fg="#9cff9c", font=DISPLAY_FONT
            )
            for _ in range(2)
        ]
        for line in self.lines:
            line.pack(fill="x")
        bottom = tk.Frame(root)
        bottom.pack(fill="x")
        self.result = tk.Label(bottom, text="", anchor="w", font=(FONT[0], FONT[1], "bold"))
        self.result.pack(side="left", fill="x", expand=True)
        self.abort_button = tk.Button(bottom, text="Abort", state="disabled", command=self.abort)
        self.abort_button.pack(side="right")
        self.amount.bind("<Return>", lambda event: self.charge())
        root.bind("<Escape>", lambda event: self.abort())
        root.bind("<Control-q>", lambda event: self.quit())
        root.protocol("WM_DELETE_WINDOW", self.quit)
        self.amount.focus_set()
        self._select_amount()

    @gui_only
    def _select_amount(self) -> None:
        """Select the amount, so the next one typed replaces it."""
        self.amount.select_range(0, "end")
        self.amount.icursor("end")

    @gui_only
    def set_result(self, text: str) -> None:
        self.result.configure(text=text)
        print(f"result: {text}", flush=True)

    @gui_only
    def show_update(self, information: List[str], abortable: bool) -> None:
        lines = [*information, "", ""][:2]
        for label, text in zip(self.lines, lines):
            label.configure(text=text)
        print(f"display: {lines[0]} | {lines[1]}", flush=True)
        self.abortable = abortable and self.busy
        self.abort_button.configure(state="normal" if self.abortable else "disabled")

    @gui_only
    def show_error(self, exc: BaseException) -> None:
        self.set_result(f"Error: {exc}")

    # --- connecting (the first worker) --------------------------------------------

    def _connect(self, merchant: str, secret: str) -> Device:
        self.client.connect()
        login = self.client.login(merchant, secret, ProviderMode.TEST)
        return login.devices[0]

    @gui_only
    def ready(self, reader: Device) -> None:
        self.reader = reader
        self.charge_button.configure(state="normal")
        self.set_result(f"Ready: {reader.name or reader.resource}")

    @gui_only
    def not_ready(self, exc: BaseException) -> None:
        self.set_result(f"Cannot connect: {exc}")

    # --- a charge -----------------------------------------------------------------

    @gui_only
    def charge(self) -> None:
        if self.busy or self.reader is None:
            return
        text = self.amount.get().strip()
        try:
            amount = Decimal(text)  # never a float
        except decimal.InvalidOperation:
            self.set_result(f"Not an amount: {text!r}")
            return
        if not amount.is_finite() or amount <= 0:
            self.set_result(f"Not an amount to charge: {text!r}")
            return
        self.busy = True
        self.charge_button.configure(state="disabled")
        self.set_result(f"Charging {amount} {self.currency} ...")
        reader = self.reader
        # Chosen before sending: how the payment is found if its outcome is unknown.
        order = f"till-{uuid.uuid4().hex[:12]}"
        self.in_background(
            lambda: self.client.charge(
                reader,
                amount,
                self.currency,
                subject="Till sale",
                custom_identifier=order,
                on_action=lambda action: self.post(self.ask, action),
            ),
            done=self.finished,
            failed=self.charge_failed,
        )

    @gui_only
    def charge_failed(self, exc: BaseException) -> None:
        if isinstance(exc, TransactionOutcomeUnknownError) and exc.custom_identifier:
            # The card may have been charged: look it up (the client waits for a
            # reconnect within its timeout), never charge again.
            self.set_result("Outcome unknown: looking the payment up ...")
            identifier = exc.custom_identifier
            self.in_background(
                lambda: self.client.get_transaction(custom_identifier=identifier),
                done=self.finished,
                failed=self.lookup_failed,
            )
            return
        self._idle()
        self.set_result(f"Not charged: {exc}")  # refused or never sent

    @gui_only
    def lookup_failed(self, exc: BaseException) -> None:
        self._idle()
        self.set_result("Outcome unknown: do not charge again, look it up later")
        self.dialog("Result", f"The payment's outcome is unknown.\n{exc}", [("Close", None)])

    @gui_only
    def finished(self, transaction: Transaction) -> None:
        self._idle()
        self.last = transaction
        self.set_result(f"{transaction.status} {transaction.amount} {transaction.currency}")
        buttons: List[Any] = [("Close", None)]
        if transaction.customer_receipt or transaction.merchant_receipt:
            buttons.insert(0, ("Receipt", self.show_receipt))
        self.dialog(
            "Result",
            f"{transaction.status}\n{transaction.amount} {transaction.currency}\n"
            f"{transaction.transaction_identifier}",
            buttons,
        )

    @gui_only
    def _idle(self) -> None:
        self.busy = self.abortable = False
        for window in self.questions:  # a question the reader no longer asks
            if window.winfo_exists():
                window.destroy()
        self.questions.clear()
        self.abort_button.configure(state="disabled")
        self.charge_button.configure(state="normal")
        self._select_amount()

    @gui_only
    def abort(self) -> None:
        if self.busy and self.abortable and self.reader is not None:
            reader = self.reader
            self.in_background(lambda: self.client.abort_transaction(reader))

    # --- the reader's questions -------------------------------------------------------

    @gui_only
    def ask(self, action: ExecuteTransactionAction) -> None:
        reader = self.reader
        assert reader is not None
        client = self.client

        def send(answer: Callable[[], None]) -> Callable[[], None]:
            return lambda: self.in_background(answer)

        def abort() -> None:
            self.in_background(lambda: client.abort_transaction(reader))

        dialog = functools.partial(self.dialog, question=True)
        kind = action.action
        if kind == ActionType.SIGNATURE:  # P3: a signature step cannot be aborted
            dialog(
                "Signature",
                "Ask the shopper to sign the paper receipt.",
                [("Signed", send(lambda: client.submit_signature(reader, on_receipt=True)))],
            )
        elif kind == ActionType.APPLICATION_SELECTION and action.application_selection:
            applications = action.application_selection.applications
            dialog(
                "Application",
                "The card holds several applications: which one?",
                [("Abort", abort)],
                choices=[a.name or a.identifier for a in applications],
                choose=lambda index: self.in_background(
                    lambda: client.submit_application_selection(
                        reader, applications[index].identifier
                    )
                ),
            )
        elif kind == ActionType.CREDIT_DEBIT_SELECTION:
            dialog(
                "Credit or debit",
                "Does the shopper pay by credit or by debit?",
                [
                    (
                        "Debit",
                        send(
                            lambda: client.submit_credit_debit_selection(reader, CreditDebit.DEBIT)
                        ),
                    ),
                    (
                        "Credit",
                        send(
                            lambda: client.submit_credit_debit_selection(reader, CreditDebit.CREDIT)
                        ),
                    ),
                    ("Abort", abort),
                ],
            )
        elif kind == ActionType.DCC_SELECTION and action.dcc_selection:
            quote = action.dcc_selection
            dialog(
                "Currency conversion",
                f"Pay {quote.converted_amount} {quote.converted_currency} instead of "
                f"{quote.original_amount} {quote.original_currency}?\n"
                f"Rate {quote.exchange_rate}, markup {quote.markup} %",
                [
                    (
                        f"Pay {quote.original_currency}",
                        send(
                            lambda: client.submit_dcc_selection(reader, use_converted_amount=False)
                        ),
                    ),
                    (
                        f"Pay {quote.converted_currency}",
                        send(
                            lambda: client.submit_dcc_selection(reader, use_converted_amount=True)
                        ),
                    ),
                ],
            )
        else:  # a question this till cannot answer: never guess
            self.set_result(f"The reader asks for {kind}: aborting")
            abort()

    @gui_only
    def dialog(
        self,
        title: str,
        text: str,
        buttons: List[Any],
        *,
        choices: Optional[List[str]] = None,
        choose: Optional[Callable[[int], None]] = None,
        question: bool = False,
    ) -> tk.Toplevel:
        """A small non-modal dialog; Return takes the first button (or the
        chosen item), Escape the last one."""
        window = tk.Toplevel(self.root)
        if question:
            self.questions.append(window)
        window.title(title)
        window.configure(padx=12, pady=10)
        window.transient(self.root)
        tk.Label(window, text=text, justify="left").pack(anchor="w")
        row = tk.Frame(window)
        actions: List[Callable[[], None]] = []

        def closing(command: Optional[Callable[[], None]]) -> Callable[[], None]:
            def run() -> None:
                if command is not None:
                    command()
                window.destroy()

            return run

        if choices is not None and choose is not None:
            listing = tk.Listbox(window, height=len(choices), exportselection=False)
            for choice in choices:
                listing.insert("end", choice)
            listing.selection_set(0)
            listing.pack(fill="x", pady=6)
            actions.append(closing(lambda: choose(int(listing.index("active")))))
            tk.Button(row, text="Choose", command=actions[-1]).pack(side="left", padx=3)
        for label, command in buttons:
            actions.append(closing(command))
            tk.Button(row, text=label, command=actions[-1]).pack(side="left", padx=3)
        row.pack(pady=(8, 0))
        self._place(window)
        window.bind("<Return>", lambda event: actions[0]())
        window.bind("<Escape>", lambda event: actions[-1]())
        window.protocol("WM_DELETE_WINDOW", actions[-1])
        window.focus_set()
        print(f"dialog: {title}", flush=True)
        return window

    @gui_only
    def _place(self, window: tk.Toplevel) -> None:
        """Beside the till, where it hides neither the display nor the result."""
        self.root.update_idletasks()
        x = self.root.winfo_rootx() + self.root.winfo_width() + 16
        window.geometry(f"+{x}+{self.root.winfo_rooty()}")

    @gui_only
    def show_receipt(self) -> None:
        transaction = self.last
        if transaction is None:
            return
        receipts = [r for r in (transaction.customer_receipt, transaction.merchant_receipt) if r]
        text = f"\n\n{'-' * 40}\n\n".join(format_receipt(r, width=40) for r in receipts)
        window = tk.Toplevel(self.root)
        window.title("Receipt")
        window.transient(self.root)
        body = tk.Text(
            window, width=42, height=min(34, text.count("\n") + 2), font=("DejaVu Sans Mono", 10)
        )
        body.insert("1.0", text)
        body.configure(state="disabled")
        body.pack(padx=8, pady=8)
        tk.Button(window, text="Close", command=window.destroy).pack(pady=(0, 8))
        self._place(window)
        window.bind("<Return>", lambda event: window.destroy())
        window.bind("<Escape>", lambda event: window.destroy())
        window.focus_set()
        print("dialog: Receipt", flush=True)

    # --- closing ----------------------------------------------------------------------

    @gui_only
    def quit(self) -> None:
        if self.busy:  # money first: never walk away from a running payment
            self.set_result("A payment is running: finish or abort it first")
            return
        self.charge_button.configure(state="disabled")
        self.set_result("Closing ...")
        self.in_background(self.client.close, done=lambda _: self.root.destroy())


def main() -> int:
    parser = argparse.ArgumentParser(description="A small Tkinter till.")
    parser.add_argument("--url", default="tcp://127.0.0.1:4245")
    parser.add_argument("--merchant", default=os.environ.get("PAYPROTOCOL_MERCHANT_ID", "m-123"))
    parser.add_argument("--currency", default="EUR")
    args = parser.parse_args()
    secret = os.environ.get("PAYPROTOCOL_MERCHANT_SECRET") or getpass.getpass("Merchant secret: ")
    root = tk.Tk()
    Till(root, args.url, args.merchant, secret, args.currency)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
