"""A plain blocking charge: log in, charge the first reader, print the outcome.

Start a PayServer simulator first (any merchant id and secret may log in)::

    payprotocol simulate --tcp-port 4245 --ws-port 8080
    PAYPROTOCOL_MERCHANT_SECRET=secret python samples/plain_charge.py --amount 5.00

The merchant secret comes from ``PAYPROTOCOL_MERCHANT_SECRET`` or a prompt,
never from the command line. The simulator's test card asks questions by the
amount: ``10.00`` a signature, ``5.01`` the application, ``5.02`` credit or
debit, ``5.03`` currency conversion (``10.01`` a signature and the application).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from decimal import Decimal

from payprotocol import (
    ActionType,
    CreditDebit,
    Device,
    ExecuteTransactionAction,
    PayClient,
    ProviderMode,
    TransactionStatus,
)


def answer(client: PayClient, reader: Device, action: ExecuteTransactionAction) -> None:
    """Answer the reader's question (on the SDK's callback thread).

    Every kind of action needs its own answer: a signature answer to an
    application menu is refused, and the reader would wait for the right one.
    """
    if action.action == ActionType.SIGNATURE:
        print("Signature: the shopper signs the paper receipt")
        client.submit_signature(reader, on_receipt=True)
    elif action.action == ActionType.APPLICATION_SELECTION and action.application_selection:
        first = action.application_selection.applications[0]
        print(f"Application: {first.name or first.identifier}")
        client.submit_application_selection(reader, first.identifier)
    elif action.action == ActionType.CREDIT_DEBIT_SELECTION:
        print("Credit or debit: DEBIT")
        client.submit_credit_debit_selection(reader, CreditDebit.DEBIT)
    elif action.action == ActionType.DCC_SELECTION:
        print("Currency conversion offered: paying in the original currency")
        client.submit_dcc_selection(reader, use_converted_amount=False)
    else:  # a kind this program does not know: never guess an answer
        print(f"Unknown action {action.action}: aborting")
        client.abort_transaction(reader)


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
            on_action=lambda action: answer(client, reader, action),
        )

    print(f"Status:         {transaction.status}")
    print(f"Amount:         {transaction.amount} {transaction.currency}")
    print(f"Transaction id: {transaction.transaction_identifier}")
    approved = transaction.status in (TransactionStatus.APPROVED, TransactionStatus.ACCEPTED)
    return 0 if approved else 1


if __name__ == "__main__":
    sys.exit(main())
