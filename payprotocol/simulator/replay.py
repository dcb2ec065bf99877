"""Replaying a cassette: the server side of a recorded session, played again.

Strategy: :class:`Replay` is a :class:`~.server.Simulator` whose engine plays a
cassette (:mod:`payprotocol.cassette`) instead of the test-card rules, so the
sockets, the writer queue and the scheduling are the simulator's own. The
matching rule: each incoming request is compared with the *next* recorded
request, by message type and resource only (a request's data holds values
that change from run to run; a login's secret is masked in the cassette and
never compared). A match sends the server's messages that followed the
recorded request, up to the next recorded request, exactly as recorded except
for the client-chosen identifiers: the envelope's ``tag`` and every
``customIdentifier`` are rewritten from the recorded values to the live ones
(so an action's answer gets its response under its own new tag, and the SDK's
cross-checks hold). A server-side close in the recording closes the live
connection at the same point. A request that does not match is refused with
an ``ERROR`` of type ``INVALID_REQUEST`` saying what the cassette expected
next, logged, and not consumed. ``speed`` keeps the recorded pace (``1.0``),
or a multiple of it; ``None`` sends as fast as the order allows.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Mapping, Optional, Union

import attrs

from ..cassette import Cassette, CassetteEvent, CassetteSource, load_cassette, rewrite_identifiers
from ..codec import parse_message
from ..naming import data_key
from .config import SimulatorConfig
from .engine import PayServerEngine, Session
from .outbox import Outbox, error_message
from .server import Simulator
from .store import TransactionStore

__all__ = ["Replay", "ReplayError", "RecordedRequest"]

log = logging.getLogger("payprotocol.simulator.replay")


class ReplayError(AssertionError):
    """A strict replay ended with recorded requests left unplayed, or a live
    request that matched nothing (raised by :meth:`Replay.check`)."""


@attrs.frozen
class RecordedRequest:
    """One request of the cassette and what the server sent after it."""

    number: int  # from 1
    type: str
    resource: Optional[str]
    tag: Optional[str]
    custom_identifier: Optional[str]
    t: float
    line: int
    followers: List[CassetteEvent]  # recv and server-side close events

    def describe(self) -> str:
        where = self.resource or "no resource"
        return f"{self.type} on {where} (request {self.number}, line {self.line})"


def custom_identifier_of(message: Mapping[str, Any]) -> Optional[str]:
    """The ``customIdentifier`` of a request's data object or of its
    ``transactionParameters`` (execute, amend, lookup), if any."""
    message_type = message.get("type")
    data = message.get(data_key(message_type)) if isinstance(message_type, str) else None
    if not isinstance(data, dict):
        return None
    for holder in (data, data.get("transactionParameters")):
        if isinstance(holder, dict) and isinstance(holder.get("customIdentifier"), str):
            return str(holder["customIdentifier"])
    return None


def recorded_requests(cassette: Cassette) -> List[RecordedRequest]:
    """The cassette's requests in order, each with the server events after it
    (events before the first request go with the first)."""
    requests: List[RecordedRequest] = []
    pending: List[CassetteEvent] = []
    for event in cassette.events:
        if event.dir == "send":
            message = event.message or {}
            resource = message.get("resource")
            requests.append(
                RecordedRequest(
                    number=len(requests) + 1,
                    type=str(message.get("type")),
                    resource=resource if isinstance(resource, str) else None,
                    tag=message.get("tag") if isinstance(message.get("tag"), str) else None,
                    custom_identifier=custom_identifier_of(message),
                    t=event.t,
                    line=event.line,
                    followers=pending if not requests else [],
                )
            )
            pending = requests[-1].followers
        elif event.dir == "recv" or (event.dir == "close" and event.by == "server"):
            pending.append(event)
    return requests


class _Player:
    """The cassette's cursor, shared by every connection (one lock)."""

    def __init__(self, cassette: Cassette, speed: Optional[float]) -> None:
        self.cassette = cassette
        self.speed = speed
        self.requests = recorded_requests(cassette)
        self.cursor = 0
        self.tags: Dict[str, str] = {}
        self.custom_identifiers: Dict[str, str] = {}
        self.mismatches: List[str] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        if not self.requests:
            self.done.set()

    def play(self, raw: Dict[str, Any], outbox: Outbox, peer: str) -> None:
        message_type = raw.get("type")
        resource = raw.get("resource") if isinstance(raw.get("resource"), str) else None
        tag = raw.get("tag") if isinstance(raw.get("tag"), str) else None
        with self.lock:
            expected = self.requests[self.cursor] if self.cursor < len(self.requests) else None
            if expected is None or (message_type, resource) != (expected.type, expected.resource):
                self._refuse(raw, expected, outbox, peer)
                return
            self.cursor += 1
            if expected.tag is not None and tag is not None:
                self.tags[expected.tag] = tag
            live_identifier = custom_identifier_of(raw)
            if expected.custom_identifier is not None and live_identifier is not None:
                self.custom_identifiers[expected.custom_identifier] = live_identifier
            log.info("%s: %s matches %s", peer, message_type, expected.describe())
            for event in expected.followers:
                delay = 0.0 if self.speed is None else max(0.0, event.t - expected.t) / self.speed
                if event.dir == "close":
                    log.info("%s: the recorded server closed the connection here", peer)
                    outbox.drop_after_queued(delay=delay)
                    continue
                outbox.send_raw(self._rewritten(event), delay=delay)
            if self.cursor == len(self.requests):
                self.done.set()

    def _rewritten(self, event: CassetteEvent) -> Union[str, bytes]:
        if event.text is None:
            assert event.payload is not None
            return event.payload
        return rewrite_identifiers(event.text, self.tags, self.custom_identifiers)

    def _refuse(
        self,
        raw: Dict[str, Any],
        expected: Optional[RecordedRequest],
        outbox: Outbox,
        peer: str,
    ) -> None:
        message_type = str(raw.get("type"))
        resource = raw.get("resource") if isinstance(raw.get("resource"), str) else None
        got = f"{message_type} on {resource or 'no resource'}"
        if expected is None:
            text = f"replay: the cassette has no more requests, got {got}"
        else:
            text = f"replay: the cassette expected {expected.describe()} next, got {got}"
        self.mismatches.append(text)
        log.warning("%s: %s", peer, text)
        tag = raw.get("tag") if isinstance(raw.get("tag"), str) else None
        outbox.send(error_message(message_type, tag, resource, "INVALID_REQUEST", text))

    def problems(self) -> List[str]:
        with self.lock:
            left = [request.describe() for request in self.requests[self.cursor :]]
            found = list(self.mismatches)
        if left:
            found.append(f"{len(left)} recorded request(s) never came: " + "; ".join(left))
        return found


class _ReplaySession(Session):
    def __init__(self, engine: _ReplayEngine, outbox: Outbox, peer: str) -> None:
        super().__init__(engine, outbox, peer)
        self._player = engine.player

    def handle(self, payload: Union[bytes, str]) -> None:
        """Match one request with the cassette; raises ``ProtocolViolationError``
        when it is not a UTF-8 JSON object (the connection is then closed)."""
        self._player.play(parse_message(payload), self.outbox, self.peer)

    def close(self) -> None:
        pass


class _ReplayEngine(PayServerEngine):
    def __init__(self, config: SimulatorConfig, store: TransactionStore, player: _Player) -> None:
        super().__init__(config, store)
        self.player = player

    def open_session(self, outbox: Outbox, peer: str) -> Session:
        return _ReplaySession(self, outbox, peer)


class Replay(Simulator):
    """A PayServer that plays a cassette's server side, over framed TCP and WebSocket.

    ::

        with Replay("samples/cassettes/approved-signature-charge.jsonl") as replay:
            with PayClient(replay.tcp_url) as client:     # or replay.ws_url
                ...                                       # the recorded session again

    ``speed``: ``None`` (default) sends each answer as soon as its request
    arrives; ``1.0`` keeps the recorded pace, ``2.0`` twice as fast. ``strict``:
    leaving the ``with`` block (without an exception) calls :meth:`check`,
    which raises :class:`ReplayError` when recorded requests were never made
    or a request matched nothing. See the module doc for the matching rule.
    """

    def __init__(
        self,
        cassette: Union[CassetteSource, Cassette],
        *,
        speed: Optional[float] = None,
        strict: bool = False,
        host: str = "127.0.0.1",
        tcp_port: Optional[int] = 0,
        ws_port: Optional[int] = 0,
        ws_path: str = "/",
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be above 0, got {speed}")
        loaded = cassette if isinstance(cassette, Cassette) else load_cassette(cassette)
        self.cassette = loaded
        self.strict = strict
        self._player = _Player(loaded, speed)
        super().__init__(
            SimulatorConfig(host=host, tcp_port=tcp_port, ws_port=ws_port, ws_path=ws_path)
        )

    def _create_engine(self) -> PayServerEngine:
        return _ReplayEngine(self.config, self.store, self._player)

    def __enter__(self) -> Replay:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self.strict and exc_info[0] is None:
            self.check()

    @property
    def requests(self) -> List[RecordedRequest]:
        """The cassette's requests, in order."""
        return list(self._player.requests)

    @property
    def played(self) -> int:
        """How many recorded requests have been matched so far."""
        return self._player.cursor

    @property
    def mismatches(self) -> List[str]:
        """What each refused request was told (also logged)."""
        with self._player.lock:
            return list(self._player.mismatches)

    def wait_played(self, timeout: float) -> bool:
        """Wait until every recorded request has been matched; False on timeout."""
        return self._player.done.wait(timeout)

    def problems(self) -> List[str]:
        """Refused requests and recorded requests not (yet) made; empty when none."""
        return self._player.problems()

    def check(self) -> None:
        """Raise :class:`ReplayError` listing :meth:`problems`, if any."""
        found = self.problems()
        if found:
            raise ReplayError(f"replay of {self.cassette.name}: " + " | ".join(found))


def describe(cassette: Cassette) -> str:
    """A one-line summary of a cassette for the command line."""
    header = cassette.header
    count = len(recorded_requests(cassette))
    return (
        f"{cassette.name}: {count} request(s) recorded over {header.get('transport')} "
        f"by payprotocol {header.get('sdk')} at {header.get('started')}"
    )
