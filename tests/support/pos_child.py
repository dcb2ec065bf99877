"""A POS process for the multi-process journal tests (run as a script).

    python pos_child.py URL JOURNAL READER AMOUNT CUSTOM_IDENTIFIER

Connects, logs in as merchant-1, charges with ``journal=JOURNAL`` and prints
what happens, one line each, flushed: ``STATE <reader state>`` for every
update, then ``RESULT <status>`` or ``UNKNOWN``. It then stays alive (its
journal owner with it) until its standard input closes, so the parent decides
when it ends: by closing stdin, or by killing it mid-charge.
"""

from __future__ import annotations

import sys
from decimal import Decimal

from payprotocol import PayClient, TransactionOutcomeUnknownError


def main() -> int:
    url, journal, reader, amount, custom_identifier = sys.argv[1:6]
    with PayClient(url, timeout=10, journal=journal) as client:
        client.login("merchant-1", "secret-1")

        def on_update(update: object) -> None:
            print("STATE", getattr(update, "state", None), flush=True)

        try:
            transaction = client.charge(
                reader,
                Decimal(amount),
                "EUR",
                custom_identifier=custom_identifier,
                on_update=on_update,
            )
            print("RESULT", transaction.status, flush=True)
        except TransactionOutcomeUnknownError:
            print("UNKNOWN", flush=True)
        sys.stdin.readline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
