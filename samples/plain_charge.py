"""A plain blocking charge: log in, charge the first reader, print the outcome.

Start a PayServer simulator first (any merchant id and secret may log in)::

    payprotocol simulate --tcp-port 4245 --ws-port 8080
    PAYPROTOCOL_MERCHANT_SECRET=secret python samples/plain_charge.py --amount 5.00

The merchant secret comes from ``PAYPROTOCOL_MERCHANT_SECRET`` or a prompt,
never from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from decimal import Decimal

from payprotocol import PayClient, ProviderMode, TransactionStatus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="tcp://127.0.0.1:4245")
    parser.add_argument("--merchant", default=os.environ.get("PAYPROTOCOL_MERCHANT_ID", "m-123"))
    parser.add_argument("--amount", type=Decimal, default=Decimal("5.00"))
    parser.add_argument("--currency", default="EUR")
    args = parser.parse_args()
    secret = os.environ.get("PAYPROTOCOL_MERCHANT_SECRET") or getpass.getpass("Merchant secret: ")

    with PayClient(args.url, timeout=30) as client:
        login = client.login(args.merchant, secret, ProviderMode.TEST)
        reader = login.devices[0]
        print(f"Charging {args.amount} {args.currency} on {reader.name} ...")

        # charge() blocks until the payment is over. A declined or aborted
        # payment is a normal result: look at transaction.status.
        transaction = client.charge(
            reader,
            args.amount,  # a Decimal: money never goes through a float
            args.currency,
            subject="Sample purchase",
            # Amounts like 10.00 ask for a signature: accept it on the paper receipt.
            on_action=lambda action: client.submit_signature(reader, on_receipt=True),
        )

    print(f"Status:         {transaction.status}")
    print(f"Amount:         {transaction.amount} {transaction.currency}")
    print(f"Transaction id: {transaction.transaction_identifier}")
    approved = transaction.status in (TransactionStatus.APPROVED, TransactionStatus.ACCEPTED)
    return 0 if approved else 1


if __name__ == "__main__":
    sys.exit(main())
