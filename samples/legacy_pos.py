"""A legacy-style POS: one object that registers callbacks and blocks on each sale.

Many POS programs are built this way: a class holds the connection, the
reader's display lines go to a customer display (here: the console) from an
``on_update`` callback, and the reader's questions are answered from an
``on_action`` callback. Callbacks run on the SDK's own callback thread, never
on the thread reading the network, so they may block and may answer actions.

    payprotocol simulate --tcp-port 4245 --ws-port 8080
    PAYPROTOCOL_MERCHANT_SECRET=secret python samples/legacy_pos.py
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from decimal import Decimal
from typing import Optional

from payprotocol import (
    ActionType,
    CreditDebit,
    ExecuteTransactionAction,
    PayClient,
    ProviderMode,
    Transaction,
)


class LegacyPos:
    """A till with one card reader."""

    def __init__(self, url: str, merchant: str, secret: str) -> None:
        self.client = PayClient(url, timeout=30)
        self.client.connect()
        self.client.on_update(self.on_reader_update)
        self.client.on_action(self.on_reader_action)
        login = self.client.login(merchant, secret, ProviderMode.TEST)
        self.reader = login.devices[0]
        self._shown: Optional[list[str]] = None

    def close(self) -> None:
        self.client.close()

    # --- callbacks (on the SDK's callback thread) ----------------------------

    def on_reader_update(self, update: object) -> None:
        information = getattr(update, "information", None)
        if information and information != self._shown:
            self._shown = list(information)
            print(f"  [display] {information[0]:<22} {information[1]}")

    def on_reader_action(self, action: ExecuteTransactionAction) -> None:
        if action.action == ActionType.SIGNATURE:
            print("  [pos] signature requested: the shopper signs the paper receipt")
            self.client.submit_signature(self.reader, on_receipt=True)
        elif action.action == ActionType.APPLICATION_SELECTION:
            assert action.application_selection is not None
            first = action.application_selection.applications[0]
            print(f"  [pos] application menu: choosing {first.name}")
            self.client.submit_application_selection(self.reader, first.identifier)
        elif action.action == ActionType.CREDIT_DEBIT_SELECTION:
            print("  [pos] credit or debit: choosing DEBIT")
            self.client.submit_credit_debit_selection(self.reader, CreditDebit.DEBIT)
        elif action.action == ActionType.DCC_SELECTION:
            print("  [pos] currency conversion offered: the shopper declines it")
            self.client.submit_dcc_selection(self.reader, use_converted_amount=False)
        else:
            print(f"  [pos] unknown action {action.action}: aborting")
            self.client.abort_transaction(self.reader)

    # --- the till ----------------------------------------------------------------

    def sell(self, amount: str, subject: str) -> Transaction:
        print(f"Sale: {subject}, {amount} EUR")
        self._shown = None
        # Blocks until the payment is over; by then every display update that
        # came before the result has gone through on_reader_update.
        transaction = self.client.charge(self.reader, Decimal(amount), "EUR", subject=subject)
        print(f"  => {transaction.status} ({transaction.transaction_identifier})")
        return transaction


def main() -> int:
    parser = argparse.ArgumentParser(description="A legacy-style POS with callbacks.")
    parser.add_argument("--url", default="tcp://127.0.0.1:4245")
    parser.add_argument("--merchant", default=os.environ.get("PAYPROTOCOL_MERCHANT_ID", "m-123"))
    parser.add_argument(
        "--amount", action="append", help="sell this amount instead of the four sales (repeatable)"
    )
    args = parser.parse_args()
    secret = os.environ.get("PAYPROTOCOL_MERCHANT_SECRET") or getpass.getpass("Merchant secret: ")

    pos = LegacyPos(args.url, args.merchant, secret)
    try:
        # The simulator's test card: 10.00 signature; 40.01 PIN and an
        # application menu; 5.02 credit/debit; 5.03 currency conversion.
        sales = [("10.00", "Coffee"), ("40.01", "Groceries"), ("5.02", "Bread"), ("5.03", "Map")]
        if args.amount:
            sales = [(amount, f"Sale {n}") for n, amount in enumerate(args.amount, 1)]
        results = [pos.sell(amount, subject) for amount, subject in sales]
    finally:
        pos.close()
    approved = sum(1 for t in results if t.status == "APPROVED")
    print(f"{approved} of {len(results)} sales approved")
    return 0 if approved == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
