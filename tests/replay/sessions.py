"""Client sessions that the replay tests record against the simulator and run
again against a replay: the same code both times, returning what it saw.

``full_session`` covers a signature charge with its action answered, an abort,
a partial refund, a lookup and a charge whose connection the server drops;
``before_drop`` is where the recording run switches the simulator's fault on
(the replay run needs nothing: the cassette holds the drop). The sample
cassettes of ``samples/cassettes/`` come from ``approved_signature_charge``
and ``unknown_then_lookup`` (``python -m tests.replay.make_sample_cassettes``).
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from payprotocol import PayClient, ReconnectPolicy, TransactionOutcomeUnknownError
from payprotocol import models as m

REPO = Path(__file__).resolve().parents[2]
CASSETTES = REPO / "samples" / "cassettes"
APPROVED_SAMPLE = CASSETTES / "approved-signature-charge.jsonl"
UNKNOWN_SAMPLE = CASSETTES / "outcome-unknown-recovered-by-lookup.jsonl"

MERCHANT = "merchant-replay"
SECRET = "Sup3r-s3cret-replay-Qx9"
SIGNATURE_IMAGE = "iVBORw0KGgpTSUdOQVRVUkUtSU1BR0Utc2VjcmV0LWJ5dGVz"  # base64 PNG-ish bytes
CARDHOLDER = "A SHOPPER"  # the simulator's test card


def _summary(transaction: m.Transaction) -> Dict[str, Any]:
    return {
        "status": str(transaction.status),
        "id": transaction.transaction_identifier,
        "amount": transaction.amount,
        "type": str(transaction.type),
        "custom": transaction.custom_identifier,
    }


def full_session(
    url: str,
    *,
    record: Any = None,
    before_drop: Callable[[], None] = lambda: None,
) -> List[Any]:
    """The session the record/replay tests compare; returns what the client saw."""
    seen: List[Any] = []
    with PayClient(url, timeout=5, transaction_timeout=10, record=record) as client:
        login = client.login(MERCHANT, SECRET)
        reader = login.devices[0]
        seen.append(("login", [d.resource for d in login.devices]))

        actions: List[str] = []

        def sign(action: m.ExecuteTransactionAction) -> None:
            actions.append(str(action.action))
            client.submit_signature(action.resource or reader, signature=SIGNATURE_IMAGE)

        lines: List[List[str]] = []
        charge = client.charge(
            reader,
            Decimal("10.00"),
            "EUR",
            custom_identifier="order-1",
            on_action=sign,
            on_update=lambda u: lines.append(list(getattr(u, "information", None) or [])),
        )
        seen.append(("charge", _summary(charge), actions, lines))

        aborted_once = threading.Event()

        def abort_when_abortable(update: Any) -> None:
            if getattr(update, "abortable", False) and not aborted_once.is_set():
                aborted_once.set()
                client.abort_transaction(reader)

        aborted = client.charge(
            reader, Decimal("5.09"), "EUR", on_update=abort_when_abortable
        )  # .09: a slow card, time to abort
        seen.append(("abort", str(aborted.status)))

        assert charge.transaction_identifier is not None
        refund = client.refund(
            charge.transaction_identifier,
            amount=Decimal("4.00"),
            currency="EUR",
            custom_identifier="refund-1",
        )
        seen.append(("refund", _summary(refund)))

        found = client.get_transaction(transaction_identifier=charge.transaction_identifier)
        seen.append(("lookup", _summary(found)))

        before_drop()
        try:
            client.charge(reader, Decimal("5.00"), "EUR", custom_identifier="order-lost")
            seen.append(("dropped", "no drop?"))
        except TransactionOutcomeUnknownError as exc:
            seen.append(("dropped", "outcome unknown", exc.custom_identifier))
    return seen


def approved_signature_charge(url: str, *, record: Any = None) -> m.Transaction:
    """A 10.00 EUR charge whose signature is given on the receipt."""
    with PayClient(url, timeout=5, transaction_timeout=10, record=record) as client:
        reader = client.login(MERCHANT, SECRET).devices[0]
        client.on_action(lambda a: client.submit_signature(a.resource or reader, on_receipt=True))
        return client.charge(
            reader, Decimal("10.00"), "EUR", subject="Table 4", custom_identifier="order-4711"
        )


def unknown_then_lookup(
    url: str,
    *,
    record: Any = None,
    after_drop: Callable[[], None] = lambda: None,
    before_drop: Callable[[], None] = lambda: None,
) -> tuple[Optional[str], m.Transaction]:
    """A charge whose connection drops (outcome unknown), then, once the client
    has reconnected, the lookup that finds its true outcome."""
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.0)
    with PayClient(url, timeout=5, transaction_timeout=10, reconnect=policy, record=record) as c:
        reader = c.login(MERCHANT, SECRET).devices[0]
        before_drop()
        try:
            c.charge(reader, Decimal("5.00"), "EUR", custom_identifier="order-lost-1")
        except TransactionOutcomeUnknownError as exc:
            unknown = exc.custom_identifier
        else:
            raise AssertionError("the connection was not dropped")
        after_drop()
        assert c.wait_connected(10), "no reconnect"
        return unknown, c.get_transaction(custom_identifier=unknown)
