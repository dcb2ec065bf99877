"""The SDK always writes ``autoCapture`` and ``mode`` (p3-protocol.md 3.2): a
reader takes them as ``true`` and ``ONLINE`` when absent, but the vendor's
own text calls ``autoCapture`` required, so nothing is left to a reader."""

from __future__ import annotations

from decimal import Decimal
from typing import List

from payprotocol import PayClient
from payprotocol import models as m

from ..support.messages import reply, transaction
from ..support.peer import Peer, Serve


def test_execute_always_writes_auto_capture_and_mode(serve: Serve) -> None:
    received: List[m.Message] = []

    def handler(peer: Peer) -> None:
        for _ in range(2):
            request = peer.recv()
            received.append(request)
            peer.send(reply(request, m.ExecuteTransactionResponse(transaction=transaction())))

    server = serve(handler)
    with PayClient(server.url, timeout=5, transaction_timeout=5) as client:
        client.charge("devices/r1", Decimal("10.00"), "EUR")
        bare = m.TransactionParameters("CHARGE", Decimal("5.00"), "EUR")  # auto_capture None
        client.execute_transaction("devices/r1", bare)
    for request in received:
        data = request.data
        assert data.transaction_parameters.auto_capture is True
        assert data.mode == m.Mode.ONLINE
