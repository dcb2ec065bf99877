"""Shared fixtures: a real simulator on 127.0.0.1 (TCP and WebSocket), and
scripted servers (tests/support/peer.py) for tests that must control every
byte the server sends."""

from __future__ import annotations

from typing import Iterator, List

import pytest

from payprotocol import PayClient
from payprotocol.simulator import Simulator, SimulatorConfig

from ..support.peer import Handler, ScriptedServer, Serve

FAST = SimulatorConfig(step_delay=0.005, slow_presentation=1.5, action_timeout=10.0)


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    with Simulator(FAST) as sim:
        yield sim


@pytest.fixture(params=["tcp", "ws"])
def url(request: pytest.FixtureRequest, simulator: Simulator) -> str:
    simulator.set_faults(None)
    return simulator.tcp_url if request.param == "tcp" else simulator.ws_url


@pytest.fixture
def client(url: str) -> Iterator[PayClient]:
    with PayClient(url, timeout=5, transaction_timeout=10) as client:
        client.login("merchant-1", "secret-1")
        yield client


@pytest.fixture(params=["tcp", "ws"])
def serve(request: pytest.FixtureRequest) -> Iterator[Serve]:
    """Scripted servers over TCP and over WebSocket; each must end without errors."""
    servers: List[ScriptedServer] = []

    def start(handler: Handler) -> ScriptedServer:
        server = ScriptedServer(request.param, handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
        assert server.errors.empty(), server.errors.get()
