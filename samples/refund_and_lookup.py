"""Charge, refund part of it, then look both transactions up.

A refund needs no card: it references the charge by its transaction
identifier (``AMEND_TRANSACTION_REQUEST``). A lookup finds a transaction by
its identifier or by your own custom identifier (``GET_TRANSACTION_REQUEST``).

    payprotocol simulate --tcp-port 4245 --ws-port 8080
    PAYPROTOCOL_MERCHANT_SECRET=secret python samples/refund_and_lookup.py
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import uuid
from decimal import Decimal

# Every kind of question gets its own answer: plain_charge.py, beside this file.
from plain_charge import answer

from payprotocol import PayClient, ProviderMode


def main() -> int:
    parser = argparse.ArgumentParser(description="Charge, partly refund, look up.")
    parser.add_argument("--url", default="tcp://127.0.0.1:4245")
    parser.add_argument("--merchant", default=os.environ.get("PAYPROTOCOL_MERCHANT_ID", "m-123"))
    parser.add_argument("--amount", type=Decimal, default=Decimal("20.00"), help="the charge")
    args = parser.parse_args()
    half = (args.amount / 2).quantize(Decimal("0.01"))  # the part to refund
    secret = os.environ.get("PAYPROTOCOL_MERCHANT_SECRET") or getpass.getpass("Merchant secret: ")

    order = f"order-{uuid.uuid4().hex[:8]}"  # our own reference for this sale
    with PayClient(args.url, timeout=30) as client:
        reader = client.login(args.merchant, secret, ProviderMode.TEST).devices[0]

        charge = client.charge(
            reader,
            args.amount,
            "EUR",
            custom_identifier=order,
            on_action=lambda action: answer(client, reader, action),
        )
        print(f"Charge:  {charge.status} {charge.amount} {charge.currency}")
        charge_id = charge.transaction_identifier
        assert charge_id is not None

        refund = client.refund(
            charge_id,
            amount=half,  # leave out amount and currency to refund it all
            currency="EUR",
            subject="Returned a mug",
            custom_identifier=f"{order}-refund-1",
        )
        print(f"Refund:  {refund.status} {refund.amount} {refund.currency}")
        print(f"         references {refund.referenced_transaction_identifier}")

        by_id = client.get_transaction(transaction_identifier=charge_id)
        by_reference = client.get_transaction(custom_identifier=f"{order}-refund-1")
    print(f"Lookup by id:          {by_id.type} {by_id.status} {by_id.amount} {by_id.currency}")
    print(
        f"Lookup by {order}-refund-1: "
        f"{by_reference.type} {by_reference.status} {by_reference.amount}"
    )
    return 0 if refund.status == "APPROVED" and by_id.transaction_identifier == charge_id else 1


if __name__ == "__main__":
    sys.exit(main())
