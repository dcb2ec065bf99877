"""pytest plugin: a simulated or replayed PayServer for your own tests.

Installed with the ``testing`` extra (``pip install 'payprotocol[testing]'``),
pytest loads it through the ``pytest11`` entry point; nothing to configure.

Fixtures:

* ``p3_simulator``: a fresh :class:`~payprotocol.simulator.Simulator` per test,
  started on free ports of 127.0.0.1 (``.tcp_url``, ``.ws_url``), stopped after
  the test. Its configuration is the ``p3_simulator_config`` fixture (fast
  steps); override that fixture to change it.
* ``p3_replay``: a :class:`~payprotocol.simulator.Replay` of the cassette named
  by the test's marker ``@pytest.mark.p3_cassette(PATH, speed=None,
  strict=True)``; a relative ``PATH`` is taken from the test file's directory.
  Strict by default: the test fails when a recorded request never came or a
  request matched nothing.

::

    import pytest
    from payprotocol import PayClient

    @pytest.mark.p3_cassette("cassettes/field-bug.jsonl")
    def test_field_bug(p3_replay):
        with PayClient(p3_replay.tcp_url) as client:
            ...

Strategy: the fixtures only build, start and stop the objects of
:mod:`payprotocol.simulator`, imported when a fixture first runs, so loading
the plugin costs nothing in suites that do not use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    from .simulator import Replay, Simulator, SimulatorConfig

__all__ = ["p3_replay", "p3_simulator", "p3_simulator_config"]

MARKER = "p3_cassette"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path, speed=None, strict=True): the cassette the p3_replay fixture plays "
        "(payprotocol.testing)",
    )


@pytest.fixture
def p3_simulator_config() -> SimulatorConfig:
    """The configuration of ``p3_simulator``: free ports, fast reader steps."""
    from .simulator import SimulatorConfig

    return SimulatorConfig(step_delay=0.005, slow_presentation=1.5, action_timeout=10.0)


@pytest.fixture
def p3_simulator(p3_simulator_config: SimulatorConfig) -> Iterator[Simulator]:
    """A fresh, started PayServer simulator for this test only."""
    from .simulator import Simulator

    with Simulator(p3_simulator_config) as simulator:
        yield simulator


@pytest.fixture
def p3_replay(request: pytest.FixtureRequest) -> Iterator[Replay]:
    """The cassette of ``@pytest.mark.p3_cassette(PATH)``, replayed for this test."""
    from .simulator import Replay

    marker = request.node.get_closest_marker(MARKER)
    if marker is None or not marker.args:
        raise pytest.UsageError(
            f"{request.node.nodeid}: p3_replay needs @pytest.mark.{MARKER}('cassette.jsonl')"
        )
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(str(request.node.fspath)).parent / path
    options: dict[str, Any] = dict(marker.kwargs)
    replay = Replay(path, speed=options.get("speed"), strict=options.get("strict", True))
    with replay:
        yield replay
