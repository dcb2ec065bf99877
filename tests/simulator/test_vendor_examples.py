"""The simulator accepts the vendor's own request examples (p3-protocol.md 3.2)
and runs them: a missing ``autoCapture`` is ``true``, a missing ``mode`` is
``ONLINE``; the transaction carries ``tipLineRequired`` and
``signatureLineRequired`` (section 4). Over TCP and WebSocket."""

from __future__ import annotations

import copy
from typing import Iterator

import pytest

from payprotocol.simulator import Simulator, SimulatorConfig
from payprotocol.simulator.config import SimulatedDevice

from ..support.messages import final_transaction
from ..support.peer import Peer, connect
from ..unit.test_contract_examples import vendor_request_examples

FAST = dict(step_delay=0.005, slow_presentation=1.0)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(devices=(SimulatedDevice("usbReader", "USB reader"),), **FAST)  # type: ignore[arg-type]
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture(params=["tcp", "ws"])
def peer(request: pytest.FixtureRequest, sim: Simulator) -> Iterator[Peer]:
    with connect(sim.tcp_url if request.param == "tcp" else sim.ws_url) as raw:
        assert raw.login()["status"] == "OK"
        yield raw
    assert sim.wait_idle(), "a transaction is still running"


def test_the_offline_example_is_accepted_and_captured(peer: Peer) -> None:
    example = copy.deepcopy(vendor_request_examples()[0])
    assert "autoCapture" not in example["executeTransactionRequest"]["transactionParameters"]
    peer.send(example)
    messages = peer.follow(example["tag"])
    final = messages[-1]
    assert final["type"] == "EXECUTE_TRANSACTION_RESPONSE" and final["status"] == "OK", final
    transaction = final_transaction(messages)
    assert transaction["status"] == "ACCEPTED"  # offline: accepted now, authorised later
    assert transaction["mode"] == "OFFLINE"
    assert transaction["captured"] is True  # autoCapture absent reads as true
    assert transaction["customIdentifier"] == "my-custom-identifier"


def test_the_tip_adjustable_example_runs_online_with_the_flags_on_the_transaction(
    peer: Peer,
) -> None:
    example = copy.deepcopy(vendor_request_examples()[1])
    assert "mode" not in example["executeTransactionRequest"]
    peer.send(example)
    messages = peer.follow(example["tag"])  # 10.00: a signature, answered on the receipt
    transaction = final_transaction(messages)
    assert transaction["status"] == "APPROVED" and transaction["mode"] == "ONLINE"
    assert transaction["captured"] is True
    assert (transaction["amount"], transaction["currency"]) == (10, "USD")
    # Section 4: the flags on the transaction, and still inside each receipt.
    assert transaction["tipLineRequired"] is True
    assert transaction["signatureLineRequired"] is True
    assert transaction["merchantReceipt"]["tipLineRequired"] is True
    assert transaction["merchantReceipt"]["signatureLineRequired"] is True
