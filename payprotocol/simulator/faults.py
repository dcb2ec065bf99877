"""Fault injection for the simulator: how the PayServer misbehaves on purpose.

A :class:`FaultPlan` is immutable; ``Simulator.set_faults`` swaps it at run
time and every message sent after the call follows the new plan.

Strategy: every decision a plan makes is a pure function here, from a wire
dict (the JSON object of one message, before serialisation) and the plan to
what should be written: :func:`outgoing` says which payloads follow one
message, after what delay, and whether the connection closes after them;
:func:`malformed_frame` and :func:`malformed_ws_message` give the broken
payloads; :func:`outgoing` applies ``mutate=SEED`` through
:mod:`payprotocol.simulator.mutations` (a "different" PayServer's version of
a message, from a seeded random generator), whose names are re-exported here.
The connection layer (:mod:`payprotocol.simulator.server`) only serialises,
schedules and moves the bytes, so these rules are unit-tested without
sockets.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import attrs

from ..framing import encode_frame
from ..naming import data_key
from .mutations import (
    MUTATION_KINDS,
    Bom,
    Mutated,
    message_random,
    mutate,
    mutate_at,
    mutation_paths,
)
from .outbox import TransactionContext

__all__ = [
    "MALFORMED_KINDS",
    "MUTATION_KINDS",
    "Bom",
    "FaultPlan",
    "Malformed",
    "Mutated",
    "Outgoing",
    "Payload",
    "injections",
    "malformed_frame",
    "malformed_ws_message",
    "message_random",
    "mutate",
    "mutate_at",
    "mutation_paths",
    "outgoing",
    "send_delay",
    "with_faults",
    "with_unknown_enums",
    "with_unknown_fields",
]

#: The malformed payloads ``FaultPlan.malformed`` can inject.
MALFORMED_KINDS = ("huge-length", "invalid-utf8", "not-object")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


def _drop_after(_: object, __: object, value: Optional[int]) -> None:
    if value is not None and value < 1:
        raise ValueError(f"drop_after counts messages from 1, got {value}")


def _seed(_: object, __: object, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"mutate takes a whole number >= 0 as its seed, got {value!r}")


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
    ``mutate=SEED``
        A "different" PayServer: every message the server sends (responses,
        updates, actions) gets one to three random mutations of fields that
        do not decide money, on the fly (:func:`mutate`; SEED, a whole number,
        and the message's index on its connection decide which). The kinds:

        * ``swap-type``: a value becomes one of another JSON type (a string,
          a number, a boolean, an object or an array; strings as the value's
          text, such as ``"true"`` or ``"12"``);
        * ``null``: a value becomes ``null``;
        * ``delete``: a key (or a list item) is removed;
        * ``wrap-list``: a scalar becomes a one-item list;
        * ``enum-case``: an enum-like value (``WAITING_FOR_PIN``) changes its
          letter case (``waiting_for_pin``, ``Waiting_For_Pin``); this one
          also reaches the envelope's and the transaction's ``status`` and an
          action's ``action``, which the contract reads case-insensitively;
        * ``bom``: a UTF-8 byte-order mark goes in front of the message.

        Never touched: the envelope's ``type``, ``tag``, ``resource``,
        ``status`` and ``error`` and the data object itself (its fields are
        mutated); the money fields (a transaction's ``status``, any amount or
        currency, ``exchangeRate``, ``markup``); what identifies or addresses
        something (``customIdentifier``, ``transactionIdentifier``,
        ``referencedTransactionIdentifier``, ``identifier``, ``resource``, a
        transaction's ``type``, an action's ``action``, the ``devices`` and
        ``applications`` lists, and the ``transaction``, ``dccSelection`` and
        ``applicationSelection`` objects as a whole).
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
    mutate: Optional[int] = attrs.field(default=None, validator=_seed)

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
        elif name == "mutate":
            text = _needs_value(name, value, "SEED")
            try:
                values["mutate"] = int(text)
            except ValueError:
                raise ValueError(f"SEED must be a whole number, got {text!r}") from None
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
        if self.mutate is not None:
            specs.append(f"mutate={self.mutate}")
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


# --- pure mutations: (wire dict or message, plan) -> what to send ----------------


@attrs.frozen
class Malformed:
    """One broken message of kind ``kind`` (one of :data:`MALFORMED_KINDS`);
    the transport decides its bytes (:func:`malformed_frame`,
    :func:`malformed_ws_message`)."""

    kind: str


#: One thing to write: a wire dict to serialise (with a byte-order mark, or
#: not), or a malformed message.
Payload = Union[Dict[str, Any], Bom, Malformed]


@attrs.frozen
class Outgoing:
    """What the connection writes for one message the engine sent: the
    ``payloads`` in order, each ``delay`` seconds from now, and whether the
    connection is closed right after them (nothing after them is written)."""

    payloads: Tuple[Payload, ...]
    delay: float = 0.0
    close: bool = False


def with_unknown_fields(wire: Dict[str, Any]) -> Dict[str, Any]:
    """The unknown-fields fault: keys a client must keep, at every level (the
    envelope, the data object, a transaction object). Returns a new dict;
    ``wire`` is not changed."""
    out = dict(wire)
    out["simulatorTrace"] = {"unknownEnvelopeField": True}
    key = data_key(str(out["type"]))
    data = out.get(key)
    if isinstance(data, dict):
        data = dict(data)
        data["futureDataField"] = "kept by tolerant clients"
        transaction = data.get("transaction")
        if isinstance(transaction, dict):
            transaction = dict(transaction)
            transaction["futureTransactionField"] = {"nested": [1, 2]}
            data["transaction"] = transaction
        out[key] = data
    return out


def with_unknown_enums(wire: Dict[str, Any]) -> Dict[str, Any]:
    """The unknown-enums fault on a ``LOGIN_MERCHANT_RESPONSE``: every device's
    ``comlink`` becomes the unknown value ``"NFC_BRIDGE"``. Any other message
    is returned as it is. Returns a new dict; ``wire`` is not changed."""
    message_type = str(wire.get("type"))
    key = data_key(message_type)
    data = wire.get(key)
    if message_type != "LOGIN_MERCHANT_RESPONSE" or not isinstance(data, dict):
        return wire
    devices = [{**device, "comlink": "NFC_BRIDGE"} for device in data.get("devices", [])]
    return {**wire, key: {**data, "devices": devices}}


def with_faults(plan: FaultPlan, wire: Dict[str, Any]) -> Dict[str, Any]:
    """``wire`` as the plan sends it (unknown fields, unknown enum values)."""
    if plan.unknown_fields:
        wire = with_unknown_fields(wire)
    if plan.unknown_enums:
        wire = with_unknown_enums(wire)
    return wire


def send_delay(plan: FaultPlan, message_type: str, *, final: bool) -> float:
    """How much later a message goes out: ``late-response`` for a
    transaction's final response, ``response-delay`` for any other response,
    no delay for updates and actions."""
    if final:
        return plan.late_response
    if message_type.endswith("_RESPONSE"):
        return plan.response_delay
    return 0.0


def _envelope(
    message_type: str, context: TransactionContext, data: Dict[str, Any]
) -> Dict[str, Any]:
    wire: Dict[str, Any] = {"type": message_type, "tag": context.tag}
    if context.resource is not None:
        wire["resource"] = context.resource
    wire["status"] = "OK"
    wire[data_key(message_type)] = data
    return wire


def injections(plan: FaultPlan, context: TransactionContext) -> List[Payload]:
    """The extra messages that follow a transaction's first message: the
    malformed one, the update with an unknown ``state`` (its ``abortable``
    copies the latest real update's), the message of an unknown type."""
    items: List[Payload] = []
    prefix = f"{context.kind}_TRANSACTION"
    if plan.malformed is not None:
        items.append(Malformed(plan.malformed))
    if plan.unknown_enums:
        update = {
            "state": "WAITING_FOR_BIOMETRICS",
            "stateDetails": "WAITING_FOR_BIOMETRICS",
            "information": ["Checking", "biometrics"],
            "abortable": context.latest_abortable,
        }
        items.append(_envelope(f"{prefix}_UPDATE", context, update))
    if plan.unknown_message_type:
        notice = {"notice": "a message type this client does not know"}
        items.append(_envelope(f"{prefix}_NOTICE", context, notice))
    return items


def outgoing(
    plan: FaultPlan,
    wire: Dict[str, Any],
    *,
    final: bool = False,
    transaction: Optional[TransactionContext] = None,
    index: int = 0,
) -> Outgoing:
    """Everything the plan makes of one message the engine sent.

    ``wire`` is the message's JSON object; ``final`` marks a transaction's
    final response; ``transaction`` is the context of the execute or amend the
    message belongs to, with ``sent`` already counting this message (it is
    only read); ``index`` counts the messages of the connection from 0 (it
    seeds ``mutate``). In order: the message (as :func:`with_faults` makes it,
    then :func:`mutate`), its
    duplicate (``duplicate-response``, final responses only), the
    :func:`injections` after a transaction's first message; ``close`` once a
    transaction's ``sent`` reaches ``drop-after``.
    """
    wire = with_faults(plan, wire)
    message: Payload = wire
    if plan.mutate is not None:
        mutated = mutate(wire, message_random(plan.mutate, index))
        message = Bom(mutated.wire) if mutated.bom else mutated.wire
    payloads: List[Payload] = [message]
    if final and plan.duplicate_response:
        payloads.append(message)
    close = False
    if transaction is not None:
        if transaction.sent == 1:
            payloads += injections(plan, transaction)
        close = plan.drop_after is not None and transaction.sent >= plan.drop_after
    delay = send_delay(plan, str(wire.get("type", "")), final=final)
    return Outgoing(tuple(payloads), delay, close)


_TCP_MALFORMED = {
    "huge-length": b"\xff\xff\xff\xff",
    "invalid-utf8": encode_frame(b'{"type": "\xff\xfe\xfd"}'),
    "not-object": encode_frame(b"[1, 2, 3]"),
}


def malformed_frame(kind: str) -> bytes:
    """The framed-TCP bytes of a :class:`Malformed` message: a frame header
    declaring 0xFFFFFFFF bytes (and nothing after it), a frame whose body is not
    UTF-8, or a frame holding the JSON array ``[1, 2, 3]``."""
    return _TCP_MALFORMED[kind]


def malformed_ws_message(kind: str, max_frame_size: int) -> Union[str, bytes]:
    """The WebSocket message of a :class:`Malformed` message: a text message one
    byte larger than ``max_frame_size``, a *binary* message holding invalid
    UTF-8 (a text frame cannot carry it, RFC 6455), or the text ``[1, 2, 3]``."""
    if kind == "huge-length":
        size = max_frame_size + 1
        head = '{"type":"EXECUTE_TRANSACTION_NOTICE","padding":"'
        return head + "x" * (size - len(head) - 2) + '"}'
    if kind == "invalid-utf8":
        return b'{"type": "\xff\xfe\xfd"}'
    return "[1, 2, 3]"
