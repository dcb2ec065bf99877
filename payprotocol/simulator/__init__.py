"""An embedded PayServer that speaks P3 over framed TCP and WebSocket.

For tests, demos and development without a card reader::

    from payprotocol.simulator import Simulator, SimulatorConfig, FaultPlan

    with Simulator(SimulatorConfig(step_delay=0.02)) as sim:
        print(sim.tcp_url, sim.ws_url)
        sim.set_faults(FaultPlan.parse(["drop-after=3"]))

The amount decides the outcome, like the payworks test card (see
:mod:`payprotocol.simulator.cards`): 10.00 asks for a signature and is approved,
40.00 asks for a PIN and is approved, 100.00 is declined. The WebSocket side
needs the ``websockets`` package, TLS (``Simulator(tls=True)``) the ``trustme``
package: both come with the ``simulator`` extra. :class:`Replay` plays a
cassette recorded with ``PayClient(record=...)`` instead.
"""

from __future__ import annotations

from .cards import CardScript, card_script
from .config import SimulatedDevice, SimulatorConfig
from .faults import MALFORMED_KINDS, FaultPlan
from .replay import Replay, ReplayError
from .server import Simulator
from .store import TransactionStore
from .tls import SimulatorTls

__all__ = [
    "MALFORMED_KINDS",
    "CardScript",
    "FaultPlan",
    "Replay",
    "ReplayError",
    "SimulatedDevice",
    "Simulator",
    "SimulatorConfig",
    "SimulatorTls",
    "TransactionStore",
    "card_script",
]
