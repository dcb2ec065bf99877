"""What to do when a payment's outcome is unknown: look it up, never charge again.

If the connection drops after a charge was sent, nobody knows whether the card
was charged. The SDK raises ``TransactionOutcomeUnknownError`` (never a plain
"failed") carrying the charge's custom identifier. Charging again could take
the money twice; the safe move is to reconnect and look the charge up.

See it happen against a simulator that drops the connection mid-payment::

    payprotocol simulate --tcp-port 4245 --ws-port 8080 --fault drop-after=3
    PAYPROTOCOL_MERCHANT_SECRET=secret python samples/outcome_unknown.py
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
import uuid
from decimal import Decimal

# Every kind of question gets its own answer: plain_charge.py, beside this file.
from plain_charge import answer

from payprotocol import (
    PayClient,
    ProviderMode,
    ServerError,
    Transaction,
    TransactionOutcomeUnknownError,
    TransactionStatus,
)

FINAL = {"APPROVED", "ACCEPTED", "DECLINED", "ABORTED", "ERROR"}


def look_up(url: str, merchant: str, secret: str, custom_identifier: str) -> Transaction:
    """Reconnect and find the payment by its custom identifier, until it is final."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with PayClient(url, timeout=10) as client:  # a new connection
                client.login(merchant, secret, ProviderMode.TEST)
                transaction = client.get_transaction(custom_identifier=custom_identifier)
        except ServerError as exc:
            if exc.error_type != "TRANSACTION_NOT_FOUND" or time.monotonic() > deadline:
                raise
            print("  not found (yet); asking again")
        else:
            if str(transaction.status) in FINAL or time.monotonic() > deadline:
                return transaction  # INCONCLUSIVE/PENDING after the deadline: ask a human
            print(f"  still {transaction.status}; asking again")
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description="Handle an unknown payment outcome.")
    parser.add_argument("--url", default="tcp://127.0.0.1:4245")
    parser.add_argument("--merchant", default=os.environ.get("PAYPROTOCOL_MERCHANT_ID", "m-123"))
    parser.add_argument("--amount", type=Decimal, default=Decimal("7.00"))
    args = parser.parse_args()
    secret = os.environ.get("PAYPROTOCOL_MERCHANT_SECRET") or getpass.getpass("Merchant secret: ")

    # Choose the custom identifier yourself and store it with the order
    # *before* charging: it is how you find the payment again.
    order = f"order-{uuid.uuid4().hex[:8]}"
    try:
        with PayClient(args.url, timeout=10) as client:
            reader = client.login(args.merchant, secret, ProviderMode.TEST).devices[0]
            print(f"Charging {args.amount} EUR for {order} ...")
            transaction = client.charge(
                reader,
                args.amount,
                "EUR",
                custom_identifier=order,
                on_action=lambda action: answer(client, reader, action),
            )
    except TransactionOutcomeUnknownError as exc:
        print(f"Outcome unknown: {exc}")
        print(f"Not charging again. Looking up custom identifier {exc.custom_identifier} ...")
        assert exc.custom_identifier is not None
        transaction = look_up(args.url, args.merchant, secret, exc.custom_identifier)
        print(f"Found it: {transaction.status} {transaction.amount} {transaction.currency}")
    else:
        print(f"The response arrived normally: {transaction.status}")
    return 0 if transaction.status == TransactionStatus.APPROVED else 1


if __name__ == "__main__":
    sys.exit(main())
