"""The simulator's ``mutate=SEED`` fault over real sockets and from the command
line: what the server writes is exactly what the pure :func:`mutate` makes of
the message (seeded by the plan and the message's index on its connection),
and a charge against a mutating server still completes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Dict, Iterator, Union

import pytest

from payprotocol.codec import dumps, parse_message
from payprotocol.simulator import FaultPlan, Simulator, SimulatorConfig
from payprotocol.simulator.faults import message_random, mutate

from ..support.cli import Simulate, run_cli
from ..support.peer import Peer, connect

MERCHANT, SECRET = "merchant-1", "secret-1"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(step_delay=0.005)) as simulator:
        yield simulator


def login_text(peer: Peer, tag: str) -> str:
    data = {"providerMode": "TEST", "merchantIdentifier": MERCHANT, "merchantSecret": SECRET}
    peer.send_request("LOGIN_MERCHANT_REQUEST", data, tag=tag)
    payload: Union[bytes, str] = peer.recv_payload()
    return payload.decode("utf-8") if isinstance(payload, bytes) else payload


def without_bom(text: str) -> Dict[str, Any]:
    return parse_message(text[1:] if text.startswith("\ufeff") else text)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("seed", [1, 7, 42])
def test_the_server_writes_what_mutate_makes_of_the_message(
    sim: Simulator, transport: str, seed: int
) -> None:
    url = sim.tcp_url if transport == "tcp" else sim.ws_url
    sim.set_faults(None)
    with connect(url) as plain:
        original = parse_message(login_text(plain, "tag-login"))
    sim.set_faults(FaultPlan(mutate=seed))
    try:
        with connect(url) as mutated_peer:
            text = login_text(mutated_peer, "tag-login")  # message 0 of its connection
    finally:
        sim.set_faults(None)
    expected = mutate(original, message_random(seed, 0))
    assert text == ("\ufeff" if expected.bom else "") + dumps(expected.wire)
    assert without_bom(text)["tag"] == "tag-login"  # routing is never mutated


def test_a_mutating_server_mutates_most_messages_and_adds_byte_order_marks(
    sim: Simulator,
) -> None:
    sim.set_faults(FaultPlan(mutate=3))
    texts = []
    try:
        with connect(sim.tcp_url) as peer:
            for index in range(30):
                texts.append(login_text(peer, f"tag-{index}"))
    finally:
        sim.set_faults(None)
    assert any(text.startswith("\ufeff") for text in texts)
    assert (
        len({json.dumps(without_bom(text)["loginMerchantResponse"], default=str) for text in texts})
        > 5
    )
    assert [without_bom(text)["tag"] for text in texts] == [f"tag-{i}" for i in range(30)]


@pytest.mark.timeout(120)
def test_payprotocol_simulate_with_fault_mutate_starts_and_a_charge_completes() -> None:
    with Simulate("--fault", "mutate=7", "--merchant", f"{MERCHANT}:{SECRET}") as simulator:
        assert "mutate=7" in simulator.stdout.text(settle=0.1)
        for url in (simulator.tcp_url, simulator.ws_url):
            done = run_cli(
                "charge",
                "--url",
                url,
                "--merchant",
                MERCHANT,
                "reader1",
                "2.00",
                "EUR",
                "--json",
                env=_env(),
            )
            assert done.returncode == 0, done.stderr
            charged = json.loads(done.stdout, parse_float=Decimal)
            assert charged["status"] == "APPROVED"
            assert charged["amount"] == Decimal("2.00")
    assert simulator.returncode == 0


def _env() -> Dict[str, str]:
    from ..support.cli import cli_env

    return cli_env(PAYPROTOCOL_MERCHANT_SECRET=SECRET)
