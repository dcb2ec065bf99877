"""Configuration of the embedded PayServer: where it listens, its readers,
which merchants may log in, and how fast it plays a transaction."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import attrs

from .faults import FaultPlan

__all__ = ["SimulatedDevice", "SimulatorConfig", "default_devices"]


@attrs.frozen
class SimulatedDevice:
    """A card reader the simulator offers in ``LOGIN_MERCHANT_RESPONSE``.

    ``resource`` is ``devices/<identifier>``. A reader with ``connected=False``
    is listed but refuses transactions with ``DEVICE_NOT_CONNECTED``.
    """

    identifier: str
    name: str
    type: str = "MOCK"
    comlink: str = "MOCK"
    connected: bool = True

    @property
    def resource(self) -> str:
        """``devices/<identifier>``: how P3 messages address this reader."""
        return f"devices/{self.identifier}"


def default_devices() -> Tuple[SimulatedDevice, ...]:
    """Two MOCK readers: ``devices/reader1`` and ``devices/reader2``."""
    return (SimulatedDevice("reader1", "Reader 1"), SimulatedDevice("reader2", "Reader 2"))


def _positive_or_zero(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


def _port(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be 0..65535 or None, got {value}")


@attrs.frozen
class SimulatorConfig:
    """How the :class:`~payprotocol.simulator.Simulator` runs.

    * ``tcp_port`` / ``ws_port``: 0 picks a free port, ``None`` disables that
      transport (framed TCP, WebSocket at ``ws_path``).
    * ``merchants``: merchant identifier -> secret. Empty means any merchant id
      with a non-empty secret may log in; otherwise every other pair gets
      ``AUTHENTICATION_FAILED``.
    * ``step_delay``: seconds between the steps of a transaction (0.02 suits
      tests, about 0.4 a human watching a demo).
    * ``slow_presentation``: seconds the card takes to appear for ``.09``
      amounts, long enough to abort.
    * ``action_timeout``: seconds a reader waits for an action answer before
      the transaction ends ``ABORTED`` (code ``ACTION_TIMEOUT``).
    * ``faults``: the initial :class:`FaultPlan` (``Simulator.set_faults``
      changes it at run time).
    """

    host: str = "127.0.0.1"
    tcp_port: Optional[int] = attrs.field(default=0, validator=_port)
    ws_port: Optional[int] = attrs.field(default=0, validator=_port)
    ws_path: str = "/"
    devices: Tuple[SimulatedDevice, ...] = attrs.field(factory=default_devices, converter=tuple)
    merchants: Dict[str, str] = attrs.field(factory=dict)
    step_delay: float = attrs.field(default=0.02, validator=_positive_or_zero)
    slow_presentation: float = attrs.field(default=3.0, validator=_positive_or_zero)
    action_timeout: float = attrs.field(default=60.0, validator=_positive_or_zero)
    location: str = "PayProtocol simulator"
    merchant_name: str = "Cafe Central"
    faults: FaultPlan = attrs.field(factory=FaultPlan)
    max_frame_size: int = 1 << 20

    def __attrs_post_init__(self) -> None:
        resources = [device.resource for device in self.devices]
        if len(set(resources)) != len(resources):
            raise ValueError("device identifiers must be unique")
