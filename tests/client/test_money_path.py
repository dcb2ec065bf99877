"""The money path's order and its inputs, against scripted servers over real
sockets: the journal row is committed before the request leaves, a request
whose journal write fails is never sent, what the caller asked for reaches
the wire, and a lost amend response is an unknown outcome (issue 11's
surviving mutations)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, List

import pytest

from payprotocol import (
    Journal,
    JournalError,
    PayClient,
    TransactionOutcomeUnknownError,
)
from payprotocol import models as m

from ..support.messages import execute_final, reply
from ..support.peer import Peer, ScriptedServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["tcp", "ws"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_journal_row_is_committed_before_the_request_leaves(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "pos-journal.sqlite"
    seen_on_arrival: List[Any] = []

    def check_journal_then_answer(peer: Peer) -> None:
        request = peer.recv()
        with Journal(path) as other_process_view:  # a second connection, as another process
            seen_on_arrival.extend(p.tag for p in other_process_view.pending())
        seen_on_arrival.append(request.tag)
        peer.send(execute_final(request, "APPROVED"))

    server = ScriptedServer(kind, check_journal_then_answer)
    try:
        with PayClient(server.url, timeout=5, journal=path) as client:
            tx = client.charge("devices/r1", Decimal("10.00"), "EUR")
        assert tx.status == "APPROVED"
        assert len(seen_on_arrival) == 2 and seen_on_arrival[0] == seen_on_arrival[1]
    finally:
        server.close()


class RefusingJournal:
    """A journal whose write before the send fails (a full disk)."""

    def register_owner(self) -> str:
        return "owner-1"

    def release_owner(self, owner: str) -> None:
        pass

    def record_sent(self, **kwargs: Any) -> None:
        raise JournalError("disk full")

    def close(self) -> None:
        pass


def test_a_request_whose_journal_write_fails_is_never_sent(kind: str) -> None:
    received: List[str] = []

    def answer_lookups(peer: Peer) -> None:
        while True:
            request = peer.recv(timeout=10)
            received.append(request.type)
            found = m.GetTransactionResponse(m.Transaction("tx-1", "CHARGE", "APPROVED"))
            peer.send(reply(request, found))

    server = ScriptedServer(kind, answer_lookups)
    try:
        with PayClient(server.url, timeout=5, journal=RefusingJournal()) as client:  # type: ignore[arg-type]
            with pytest.raises(JournalError, match="disk full"):
                client.charge("devices/r1", Decimal("10.00"), "EUR")
            # Same connection, in order: had the charge been sent, it would come first.
            client.get_transaction(transaction_identifier="tx-1")
        assert received == ["GET_TRANSACTION_REQUEST"]
    finally:
        server.close()


def test_process_parameters_and_every_charge_field_reach_the_wire(kind: str) -> None:
    requests: List[m.Message] = []

    def answer(peer: Peer) -> None:
        request = peer.recv()
        requests.append(request)
        peer.send(execute_final(request, "APPROVED"))

    server = ScriptedServer(kind, answer)
    steps = m.ProcessParameters(m.ProcessSteps(ask_for_tip=m.AmountStep()))
    try:
        with PayClient(server.url, timeout=5) as client:
            client.charge(
                "devices/r1",
                Decimal("10.00"),
                "EUR",
                subject="Table 4",
                custom_identifier="order-1",
                auto_capture=False,
                process_parameters=steps,
                session_identifier="session-9",
            )
        data = requests[0].data
        assert data.process_parameters == steps
        assert data.session_identifier == "session-9"
        parameters = data.transaction_parameters
        assert (parameters.amount, parameters.currency, parameters.auto_capture) == (
            Decimal("10.00"),
            "EUR",
            False,
        )
        assert (parameters.subject, parameters.custom_identifier) == ("Table 4", "order-1")
    finally:
        server.close()


def test_a_refund_whose_response_is_lost_has_an_unknown_outcome(kind: str) -> None:
    def hang_up_after_the_request(peer: Peer) -> None:
        peer.recv()
        peer.close()

    server = ScriptedServer(kind, hang_up_after_the_request)
    try:
        with PayClient(server.url, timeout=5) as client:  # noqa: SIM117 - Python 3.9 syntax
            with pytest.raises(TransactionOutcomeUnknownError) as caught:
                client.refund("tx-1", amount=Decimal("5"), currency="EUR", custom_identifier="r-1")
        assert caught.value.custom_identifier == "r-1"
    finally:
        server.close()
