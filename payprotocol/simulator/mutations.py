"""The simulator's ``mutate=SEED`` fault: a "different" PayServer's version of
a message, as pure functions.

Strategy: :func:`mutation_paths` lists where a mutation kind may apply in a
wire dict (never money, identity or addressing; see ``FaultPlan``'s
``mutate=SEED``), :func:`mutate_at` applies one mutation at one path on a
copy, and :func:`mutate` draws one to three of them from a seeded generator
(:func:`message_random`), so a seed and a message's index on its connection
decide the result. Nothing here knows about plans, transports or sockets:
:mod:`payprotocol.simulator.faults` calls :func:`mutate` when a plan has
``mutate`` set, and re-exports these names.
"""

from __future__ import annotations

import copy
import random
import re
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import attrs

from ..naming import data_key

__all__ = [
    "MUTATION_KINDS",
    "Bom",
    "Mutated",
    "Path",
    "message_random",
    "mutate",
    "mutate_at",
    "mutation_paths",
]

#: The mutations ``FaultPlan.mutate`` applies (see :func:`mutate`).
MUTATION_KINDS = ("swap-type", "null", "delete", "wrap-list", "enum-case", "bom")


@attrs.frozen
class Bom:
    """A wire dict written with a UTF-8 byte-order mark in front of it."""

    wire: Dict[str, Any]


#: A place in a wire dict: the keys and list indexes that lead to it.
Path = Tuple[Union[str, int], ...]

# The envelope keys no mutation touches (the data object's own fields are mutated).
_ENVELOPE_KEPT = frozenset({"type", "tag", "resource", "status", "error"})
# Keys whose values are never mutated at any level (money, identity, addressing),
# except by ``enum-case`` where :data:`_CASE_ALLOWED` says so.
_KEPT = frozenset(
    {
        "status",
        "customIdentifier",
        "transactionIdentifier",
        "referencedTransactionIdentifier",
        "identifier",
        "resource",
        "tag",
        "action",
        "exchangeRate",
        "markup",
        "devices",
        "applications",
        "transaction",
        "dccSelection",
        "applicationSelection",
    }
)
# Kept containers whose inside is still mutated (apart from the kept keys in it).
_OPEN = frozenset(
    {"devices", "applications", "transaction", "dccSelection", "applicationSelection"}
)
# Kept keys whose enum values may still change case: read case-insensitively.
_CASE_ALLOWED = frozenset({"status", "action"})
_ENUM_LIKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")


def _is_money_key(key: str) -> bool:
    lowered = key.lower()
    return "amount" in lowered or "currency" in lowered


def _kept(key: Union[str, int], parent: Optional[str], depth: int) -> bool:
    """Whether the value under ``key`` is never replaced, deleted or wrapped."""
    if isinstance(key, int):
        return parent in ("devices", "applications")  # a device or application stays
    if depth == 0 and key in _ENVELOPE_KEPT:
        return True
    if key == "type" and parent in ("transaction", "transactionParameters"):
        return True
    return key in _KEPT or _is_money_key(key)


def _walk(
    value: Any, path: Path, parent: Optional[str], data_key_name: str
) -> Iterable[Tuple[Path, Any, bool, Optional[str]]]:
    """Every (path, value, kept, key) below ``value`` (depth first)."""
    items: Iterable[Tuple[Union[str, int], Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        depth = len(path)
        is_data = depth == 0 and key == data_key_name
        kept = is_data or _kept(key, parent, depth)
        name = key if isinstance(key, str) else parent
        here: Path = (*path, key)
        yield here, item, kept, name
        # Inside a kept container (the data object, a transaction, a device)
        # everything but its own kept keys is mutated.
        if not kept or is_data or isinstance(key, int) or key in _OPEN:
            yield from _walk(item, here, name, data_key_name)


def mutation_paths(wire: Dict[str, Any], kind: str) -> List[Path]:
    """Where a mutation of ``kind`` (one of :data:`MUTATION_KINDS` but ``bom``)
    may apply in ``wire``: never a kept field (see ``FaultPlan``'s
    ``mutate=SEED``); ``wrap-list`` only scalars; ``enum-case`` only
    enum-like strings (outside the kept fields, or a ``status`` or ``action``)."""
    if kind not in MUTATION_KINDS or kind == "bom":
        raise ValueError(f"no paths for mutation kind {kind!r}")
    key = data_key(str(wire.get("type", "")))
    paths: List[Path] = []
    for path, value, kept, name in _walk(wire, (), None, key):
        if kind == "enum-case":
            if (
                isinstance(value, str)
                and _ENUM_LIKE.fullmatch(value)
                and (not kept or name in _CASE_ALLOWED)
                and not (len(path) == 1 and path[0] in ("type", "tag", "resource"))
                and not (name is not None and _is_money_key(name))
            ):
                paths.append(path)
        elif kept:
            continue
        elif kind == "wrap-list":
            if not isinstance(value, (dict, list)):
                paths.append(path)
        else:
            paths.append(path)
    return paths


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _as_text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return str(len(value))
    return str(value)


def _other_type(value: Any, rng: random.Random) -> Any:
    """``value`` as a value of another JSON type (never a float)."""
    number: Any = len(value) if isinstance(value, (str, list, dict)) else 1
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    candidates = {
        "string": _as_text(value),
        "number": number,
        "boolean": bool(value),
        "object": {"value": value} if not isinstance(value, dict) else {},
        "array": list(value.values()) if isinstance(value, dict) else [],
    }
    candidates.pop(_json_kind(value), None)
    return candidates[rng.choice(sorted(candidates))]


def _other_case(text: str, rng: random.Random) -> str:
    choice = rng.randrange(3)
    if choice == 0:
        return text.lower()
    if choice == 1:
        return "_".join(part.capitalize() for part in text.split("_"))
    return text[0].lower() + text[1:] if len(text) > 1 else text.lower()


def mutate_at(wire: Dict[str, Any], path: Path, kind: str, rng: random.Random) -> Dict[str, Any]:
    """A copy of ``wire`` with one mutation of ``kind`` at ``path`` (one of
    :func:`mutation_paths`; ``bom`` has no path and no effect on the dict)."""
    out = copy.deepcopy(wire)
    if kind == "bom":
        return out
    container: Any = out
    for step in path[:-1]:
        container = container[step]
    last = path[-1]
    value = container[last]
    if kind == "delete":
        del container[last]
    elif kind == "null":
        container[last] = None
    elif kind == "wrap-list":
        container[last] = [value]
    elif kind == "enum-case":
        container[last] = _other_case(value, rng)
    elif kind == "swap-type":
        container[last] = _other_type(value, rng)
    else:
        raise ValueError(f"unknown mutation kind {kind!r}")
    return out


@attrs.frozen
class Mutated:
    """What :func:`mutate` made of a message: the new wire dict, whether a
    byte-order mark goes in front of it, and what was done (``kind path``)."""

    wire: Dict[str, Any]
    bom: bool = False
    applied: Tuple[str, ...] = ()


def message_random(seed: int, index: int) -> random.Random:
    """The random generator of the ``index``-th message of a connection under
    ``mutate=SEED``: the same seed and index always mutate alike."""
    return random.Random(f"p3-mutate:{seed}:{index}")


def mutate(
    wire: Dict[str, Any], rng: random.Random, kinds: Tuple[str, ...] = MUTATION_KINDS
) -> Mutated:
    """One to three random mutations of ``kinds`` (see ``FaultPlan``'s
    ``mutate=SEED``) of the fields of ``wire`` that do not decide money.
    ``wire`` is not changed. A kind with no place to apply is skipped."""
    out = wire
    bom = False
    applied: List[str] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(kinds)
        if kind == "bom":
            bom = True
            applied.append("bom")
            continue
        paths = mutation_paths(out, kind)
        if not paths:
            continue
        path = rng.choice(paths)
        out = mutate_at(out, path, kind, rng)
        applied.append(f"{kind} {'.'.join(str(step) for step in path)}")
    return Mutated(out if out is not wire else copy.deepcopy(wire), bom, tuple(applied))
