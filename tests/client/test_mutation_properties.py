"""Properties over mutated server messages (issue 9, p3-protocol.md 6.2 to 6.5).

Real transactions are recorded once from the simulator (the server messages of
each: updates, actions, the final response). Each example mutates them and
plays them through the client's real reading path (a reader thread, the codec,
the inbound routing, the request table, the dispatcher and its callbacks, the
settlement) over an in-memory transport, so hundreds of examples stay fast:

* (a) mutations of the fields that do not decide money (the simulator's own
  ``mutate`` fault, :func:`payprotocol.simulator.faults.mutate`): the
  connection never ends, the final status comes back as it is, and
  ``on_update`` / ``on_action`` receive typed models only;
* (b) mutations of the money fields (the transaction's status, currency and
  custom identifier, the envelope's status): the call never returns a
  ``Transaction`` whose status is not the true one; else the outcome is
  unknown (or, for a payment that failed, a refusal).

A smaller property runs the same over real sockets against the simulator
with ``FaultPlan(mutate=SEED)``, over TCP and WebSocket.
"""

from __future__ import annotations

import random
import threading
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payprotocol import (
    ConnectionLostError,
    PayClient,
    ServerError,
    TransactionOutcomeUnknownError,
)
from payprotocol import models as m
from payprotocol._connection import Connection
from payprotocol._dispatch import Dispatcher, Subscribers
from payprotocol._inbound import Inbound
from payprotocol._recorder import NullRecorder
from payprotocol._requests import RequestTable
from payprotocol._settle import settle
from payprotocol.codec import dumps, parse_message
from payprotocol.simulator import FaultPlan, Simulator, SimulatorConfig
from payprotocol.simulator.faults import mutate

from ..support.peer import connect
from ..support.waiting import eventually, finished

pytestmark = pytest.mark.timeout(300)

Raw = Dict[str, Any]
MERCHANT, SECRET = "merchant-1", "secret-1"
#: Amounts whose test-card paths differ: plain, signature, application
#: selection, credit/debit, DCC, online PIN, declined.
AMOUNTS = ["2.00", "10.00", "5.01", "5.02", "5.03", "40.00", "100.00"]


class Recorded(NamedTuple):
    """The server messages of one transaction, as the simulator wrote them."""

    tag: str
    custom_identifier: str
    messages: List[Raw]

    @property
    def truth(self) -> str:
        return str(self.messages[-1]["executeTransactionResponse"]["transaction"]["status"])


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    config = SimulatorConfig(step_delay=0.002, slow_presentation=1.0, action_timeout=10.0)
    with Simulator(config) as sim:
        yield sim


@pytest.fixture(scope="module")
def recorded(simulator: Simulator) -> List[Recorded]:
    scripts = []
    with connect(simulator.tcp_url) as peer:
        assert peer.login(MERCHANT, SECRET)["status"] == "OK"
        for index, amount in enumerate(AMOUNTS):
            custom = f"recorded-{index}"
            tag = peer.execute(amount, customIdentifier=custom)
            messages = peer.follow(tag)
            scripts.append(Recorded(tag, custom, messages))
    assert {script.truth for script in scripts} == {"APPROVED", "DECLINED"}
    return scripts


# --- the reading path over an in-memory transport ------------------------------------------


class ScriptedTransport:
    """Hands the reader the given payloads, then blocks until closed."""

    description = "scripted"

    def __init__(self, payloads: List[bytes]) -> None:
        self._payloads = list(payloads)
        self._closed = threading.Event()

    def send(self, message: bytes) -> None:
        raise AssertionError("nothing is sent in these examples")

    def receive(self) -> bytes:
        if self._payloads:
            return self._payloads.pop(0)
        self._closed.wait(30)
        raise ConnectionLostError("the connection is closed")

    def mid_message(self) -> bool:
        return False

    def close(self) -> None:
        self._closed.set()


class Played(NamedTuple):
    outcome: Any  # a returned Transaction, or the exception raised
    updates: List[Any]
    actions: List[Any]
    ended: List[BaseException]  # the connection's end, if it came before close()


@pytest.fixture(scope="module")
def dispatcher() -> Iterator[Dispatcher]:
    """One callback thread for every example (stopped with the module)."""
    shared = Dispatcher()
    shared.start()
    yield shared
    shared.stop(5)


def play(
    dispatcher: Dispatcher,
    script: Recorded,
    payloads: List[bytes],
    *,
    handle_actions: bool = True,
) -> Played:
    """``payloads`` (the script's messages, mutated) read by the client's real
    reading path for a waiting execute request with the script's tag."""
    table = RequestTable()
    updates: List[Any] = []
    actions: List[Any] = []
    aborted: List[str] = []
    ended: List[BaseException] = []
    inbound = Inbound(
        table,
        dispatcher,
        NullRecorder(),
        Subscribers(),
        Subscribers(),
        Subscribers(),
        abort=aborted.append,
    )
    parameters = m.TransactionParameters(
        "CHARGE", Decimal("1"), "EUR", True, custom_identifier=script.custom_identifier
    )
    request = table.new_request(
        script.tag,
        "EXECUTE_TRANSACTION_REQUEST",
        resource="devices/reader1",
        custom_identifier=script.custom_identifier,
        on_update=updates.append,
        on_action=actions.append if handle_actions else None,
        data=m.ExecuteTransactionRequest(parameters),
    )
    table.register(request)
    request.sent = True
    transport = ScriptedTransport(payloads)
    connection = Connection(transport, inbound, lambda _, failure: ended.append(failure))
    connection.start()
    outcome: Any
    try:
        outcome = settle(request, table.await_outcome(request, 10.0, table.clock() + 10.0))
        outcome = outcome.data.transaction
    except (TransactionOutcomeUnknownError, ServerError) as exc:
        outcome = exc
    finally:
        if request.callbacks_done is not None:
            request.callbacks_done.wait(5)
        ended_before_close = list(ended)
        connection.close()
        connection.join(5)
    if not handle_actions:
        actions = [("aborted", resource) for resource in aborted]
    return Played(outcome, updates, actions, ended_before_close)


def encoded(wire: Raw, bom: bool = False) -> bytes:
    return (("\ufeff" if bom else "") + dumps(wire)).encode("utf-8")


# --- (a) non-money mutations ------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), handle_actions=st.booleans())
def test_non_money_mutations_never_cost_the_connection_the_status_or_typed_callbacks(
    recorded: List[Recorded],
    dispatcher: Dispatcher,
    data: st.DataObject,
    seed: int,
    handle_actions: bool,
) -> None:
    script = data.draw(st.sampled_from(recorded))
    rng = random.Random(seed)
    payloads = []
    for message in script.messages:
        mutated = mutate(message, rng)
        payloads.append(encoded(mutated.wire, mutated.bom))
    played = play(dispatcher, script, payloads, handle_actions=handle_actions)
    assert played.ended == []  # the connection never ended
    assert isinstance(played.outcome, m.Transaction), played.outcome
    assert played.outcome.status == script.truth
    assert isinstance(played.outcome.status, m.TransactionStatus)
    sent_updates = sum(1 for x in script.messages if x["type"] == "EXECUTE_TRANSACTION_UPDATE")
    sent_actions = sum(1 for x in script.messages if x["type"] == "EXECUTE_TRANSACTION_ACTION")
    assert all(isinstance(update, m.ExecuteTransactionUpdate) for update in played.updates)
    assert all(isinstance(update.information, list) for update in played.updates)
    assert len(played.updates) == sent_updates  # few messages: nothing coalesces
    if handle_actions:
        assert all(isinstance(action, m.ExecuteTransactionAction) for action in played.actions)
    assert len(played.actions) == sent_actions  # answered, or aborted automatically


# --- (b) money mutations --------------------------------------------------------------------

NOT_FINAL = ["PENDING", "INITIALIZED", "INCONCLUSIVE", "APPROVED_PENDING_REVIEW", "", " APPROVED"]


def money_mutation(rng: random.Random, final: Raw) -> Tuple[str, Raw]:
    """One mutation of a money field of ``final`` (a new dict): never a
    replacement of the status by another final status (the server's word)."""
    out = parse_message(dumps(final))
    tx = out["executeTransactionResponse"]["transaction"]
    field = rng.choice(["status", "currency", "customIdentifier", "envelope-status"])
    holder, key = (out, "status") if field == "envelope-status" else (tx, field)
    value = holder.get(key)
    kind = rng.choice(["delete", "null", "number", "list", "object", "case", "other"])
    if kind == "delete":
        holder.pop(key, None)
    elif kind == "null":
        holder[key] = None
    elif kind == "number":
        holder[key] = rng.choice([0, 1, 7])
    elif kind == "list":
        holder[key] = [value]
    elif kind == "object":
        holder[key] = {"value": value}
    elif kind == "case" and isinstance(value, str):
        holder[key] = rng.choice([value.lower(), value.capitalize(), value.swapcase()])
    elif field == "status":
        holder[key] = rng.choice(NOT_FINAL)
    elif field == "currency":
        holder[key] = rng.choice(["USD", "GBP", "EURO", "E U R"])
    elif field == "customIdentifier":
        holder[key] = rng.choice(["someone-else", value + "-2", value.upper() + "X"])
    else:
        holder[key] = rng.choice(["ERROR", "error", "FAILED", "MAYBE"])
    return f"{kind} {field}", out


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_money_mutations_never_return_a_wrong_or_missing_status(
    recorded: List[Recorded], dispatcher: Dispatcher, data: st.DataObject, seed: int
) -> None:
    script = data.draw(st.sampled_from(recorded))
    rng = random.Random(seed)
    what, final = money_mutation(rng, script.messages[-1])
    payloads = [encoded(message) for message in script.messages[:-1]] + [encoded(final)]
    played = play(dispatcher, script, payloads)
    assert played.ended == []
    outcome = played.outcome
    if isinstance(outcome, m.Transaction):
        assert outcome.status == script.truth, what
        assert isinstance(outcome.status, m.TransactionStatus), what
        # ... and it is this request's outcome, as far as the response says.
        assert outcome.custom_identifier in (None, script.custom_identifier), what
        assert outcome.currency is None or outcome.currency.upper() == "EUR", what
    elif isinstance(outcome, ServerError):
        # Only a payment that definitely failed can be a refusal.
        assert script.truth in m.FAILED_STATUSES, what
    else:
        assert isinstance(outcome, TransactionOutcomeUnknownError), what
        assert outcome.received == final, what  # kept as received


# --- over real sockets: the simulator's mutate fault -----------------------------------------


def answer(client: PayClient) -> Callable[[m.ExecuteTransactionAction], None]:
    def on_action(action: m.ExecuteTransactionAction) -> None:
        kind = str(action.action)
        resource = action.resource or "devices/reader1"
        if kind == "SIGNATURE":
            client.submit_signature(resource, on_receipt=True)
        elif kind == "APPLICATION_SELECTION":
            client.submit_application_selection(resource, "A0000000031010")
        elif kind == "CREDIT_DEBIT_SELECTION":
            client.submit_credit_debit_selection(resource, "CREDIT")
        elif kind == "DCC_SELECTION":
            client.submit_dcc_selection(resource, False)

    return on_action


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), amount=st.sampled_from(AMOUNTS))
def test_against_a_mutating_simulator_a_charge_settles_as_the_server_says(
    simulator: Simulator, transport: str, seed: int, amount: str
) -> None:
    simulator.set_faults(FaultPlan(mutate=seed))
    url = simulator.tcp_url if transport == "tcp" else simulator.ws_url
    updates: List[Any] = []
    custom = f"mutated-{transport}-{seed}-{amount}"
    try:
        with PayClient(url, timeout=5, transaction_timeout=10) as client:
            client.login(MERCHANT, SECRET)
            tx: Optional[m.Transaction] = client.charge(
                "devices/reader1",
                Decimal(amount),
                "EUR",
                custom_identifier=custom,
                on_update=updates.append,
                on_action=answer(client),
            )
            assert client.connected  # never closed, never reconnected
    finally:
        simulator.set_faults(None)
    truth = eventually(lambda: finished(simulator, custom))
    assert tx is not None and tx.status == truth.status
    assert all(isinstance(update, m.ExecuteTransactionUpdate) for update in updates)
