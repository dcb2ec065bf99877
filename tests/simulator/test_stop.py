"""Stopping or restarting the simulator ends every connection, over TCP and
WebSocket alike (older websockets releases left WebSocket connections open
after the server's shutdown: a stopped simulator kept answering logins)."""

from __future__ import annotations

import pytest

from payprotocol import ConnectionLostError, PayClient
from payprotocol.simulator import Simulator, SimulatorConfig

from ..support.waiting import eventually

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("kind", ["tcp", "ws"])
@pytest.mark.parametrize("how", ["stop", "restart"])
def test_stopping_the_simulator_ends_its_connections(kind: str, how: str) -> None:
    with Simulator(SimulatorConfig(step_delay=0.005)) as sim:
        url = sim.tcp_url if kind == "tcp" else sim.ws_url
        with PayClient(url, timeout=5) as client:
            client.login("merchant-1", "secret-1")
            getattr(sim, how)()
            assert eventually(lambda: not client.connected)
            with pytest.raises(ConnectionLostError):
                client.login("merchant-1", "secret-1")
