"""Fault injection for the simulator: how the PayServer misbehaves on purpose.

A :class:`FaultPlan` is immutable; ``Simulator.set_faults`` swaps it at run
time and every message sent after the call follows the new plan. The plan is
read by the connection layer (:mod:`payprotocol.simulator.server`), which is the
only place that knows bytes and sockets.
"""

from __future__ import annotations

from typing import Iterable, List, Optional

import attrs

__all__ = ["MALFORMED_KINDS", "FaultPlan"]

#: The malformed payloads ``FaultPlan.malformed`` can inject.
MALFORMED_KINDS = ("huge-length", "invalid-utf8", "not-object")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


def _drop_after(_: object, __: object, value: Optional[int]) -> None:
    if value is not None and value < 1:
        raise ValueError(f"drop_after counts messages from 1, got {value}")


def _malformed(_: object, __: object, value: Optional[str]) -> None:
    if value is not None and value not in MALFORMED_KINDS:
        raise ValueError(f"malformed must be one of {', '.join(MALFORMED_KINDS)}, got {value!r}")


@attrs.frozen
class FaultPlan:
    """Which faults the simulated PayServer injects. The default injects none.

    Command-line spelling (``payprotocol simulate --fault SPEC``, parsed by
    :meth:`parse`; several specs may also be joined with commas):

    ``byte-by-byte``
        TCP: every frame is written one byte per ``send()`` call (``TCP_NODELAY``
        set), so the client sees a message split over many reads.
        WebSocket: every message is sent as a fragmented text message, one
        character per frame (WebSocket reassembles it; P3 is unaffected).
    ``coalesce`` or ``coalesce=SECONDS``
        TCP: messages are held for a short window (default 0.05 s) and then
        written together in one ``send()``, so one read holds several messages.
        WebSocket: same burst timing, but each message stays its own WebSocket
        message (one P3 message per WebSocket message is the contract).
    ``response-delay=SECONDS``
        Every response except a transaction's final response
        (``EXECUTE_TRANSACTION_RESPONSE``/``AMEND_TRANSACTION_RESPONSE``) is
        sent this much later; other messages keep flowing meanwhile.
    ``drop-after=K``
        The connection is closed right after the K-th message the server sends
        for a transaction (its updates, actions and final response, counted per
        execute or amend request from 1; injected extra messages not counted).
        The transaction carries on and is stored, so it can be looked up.
    ``duplicate-response``
        A transaction's final response is sent twice.
    ``late-response=SECONDS``
        A transaction's final response is sent this much later than the
        transaction ends (the store already holds the outcome).
    ``malformed=huge-length|invalid-utf8|not-object``
        Right after a transaction's first message, one broken message:
        TCP: a frame header declaring 0xFFFFFFFF bytes (and nothing after it),
        a frame whose body is not UTF-8, or a frame holding the JSON array
        ``[1, 2, 3]``. WebSocket: a text message one byte larger than 1 MiB
        (the default size cap), a *binary* message holding the invalid UTF-8
        (a text frame cannot carry it, RFC 6455), or the text ``[1, 2, 3]``.
    ``unknown-fields``
        Every message gets an unknown envelope key and an unknown key in its
        data object (and in a transaction object) that a client must keep.
    ``unknown-enums``
        Right after a transaction's first message, an extra update whose
        ``state`` is the unknown value ``WAITING_FOR_BIOMETRICS`` (its
        ``abortable`` copies the latest real update's); login responses list
        devices with ``comlink`` ``"NFC_BRIDGE"``.
    ``unknown-message``
        Right after a transaction's first message, a message of the unknown type
        ``EXECUTE_TRANSACTION_NOTICE`` (or ``AMEND_TRANSACTION_NOTICE``) with
        the transaction's tag and resource.
    ``none``
        No fault (the same as giving nothing).
    """

    byte_by_byte: bool = False
    coalesce: bool = False
    coalesce_window: float = attrs.field(default=0.05, validator=_non_negative)
    response_delay: float = attrs.field(default=0.0, validator=_non_negative)
    drop_after: Optional[int] = attrs.field(default=None, validator=_drop_after)
    duplicate_response: bool = False
    late_response: float = attrs.field(default=0.0, validator=_non_negative)
    malformed: Optional[str] = attrs.field(default=None, validator=_malformed)
    unknown_fields: bool = False
    unknown_enums: bool = False
    unknown_message_type: bool = False

    @classmethod
    def parse(cls, specs: Iterable[str]) -> FaultPlan:
        """Build a plan from command-line style specs such as
        ``["byte-by-byte", "drop-after=3", "late-response=2.0"]``.

        Raises ``ValueError`` naming the spec that is not understood.
        """
        specs = list(specs)
        values: dict[str, object] = {}
        for group in specs:
            for spec in filter(None, (part.strip() for part in group.split(","))):
                name, has_value, value = spec.partition("=")
                name = name.strip().lower().replace("_", "-")
                value = value.strip()
                try:
                    cls._parse_one(values, name, value if has_value else None)
                except ValueError as exc:
                    raise ValueError(f"fault {spec!r}: {exc}") from None
        try:
            return cls(**values)  # type: ignore[arg-type]  # types checked per key above
        except ValueError as exc:
            raise ValueError(f"fault {', '.join(specs)!r}: {exc}") from None

    @staticmethod
    def _parse_one(values: dict[str, object], name: str, value: Optional[str]) -> None:
        flags = {
            "byte-by-byte": "byte_by_byte",
            "duplicate-response": "duplicate_response",
            "unknown-fields": "unknown_fields",
            "unknown-enums": "unknown_enums",
            "unknown-message": "unknown_message_type",
        }
        seconds = {
            "response-delay": "response_delay",
            "late-response": "late_response",
        }
        if name == "none":
            _no_value(name, value)
        elif name in flags:
            _no_value(name, value)
            values[flags[name]] = True
        elif name == "coalesce":
            values["coalesce"] = True
            if value is not None:
                values["coalesce_window"] = _seconds(value)
        elif name in seconds:
            values[seconds[name]] = _seconds(_needs_value(name, value, "SECONDS"))
        elif name == "drop-after":
            text = _needs_value(name, value, "K")
            try:
                values["drop_after"] = int(text)
            except ValueError:
                raise ValueError(f"K must be a whole number, got {text!r}") from None
        elif name == "malformed":
            values["malformed"] = _needs_value(name, value, "|".join(MALFORMED_KINDS))
        else:
            raise ValueError("unknown fault; see payprotocol.simulator.FaultPlan for the list")

    def to_specs(self) -> List[str]:
        """The command-line specs that :meth:`parse` turns back into this plan."""
        specs: List[str] = []
        if self.byte_by_byte:
            specs.append("byte-by-byte")
        if self.coalesce:
            specs.append(f"coalesce={self.coalesce_window:g}")
        if self.response_delay:
            specs.append(f"response-delay={self.response_delay:g}")
        if self.drop_after is not None:
            specs.append(f"drop-after={self.drop_after}")
        if self.duplicate_response:
            specs.append("duplicate-response")
        if self.late_response:
            specs.append(f"late-response={self.late_response:g}")
        if self.malformed is not None:
            specs.append(f"malformed={self.malformed}")
        if self.unknown_fields:
            specs.append("unknown-fields")
        if self.unknown_enums:
            specs.append("unknown-enums")
        if self.unknown_message_type:
            specs.append("unknown-message")
        return specs

    @property
    def active(self) -> bool:
        """True when the plan injects anything at all."""
        return self != FaultPlan(coalesce_window=self.coalesce_window)


def _no_value(name: str, value: Optional[str]) -> None:
    if value is not None:
        raise ValueError(f"{name} takes no value")


def _needs_value(name: str, value: Optional[str], what: str) -> str:
    if not value:
        raise ValueError(f"write it as {name}={what}")
    return value


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"expected seconds, got {text!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"seconds must be a finite number >= 0, got {text!r}")
    return seconds
