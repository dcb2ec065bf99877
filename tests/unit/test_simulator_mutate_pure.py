"""The simulator's ``mutate=SEED`` fault as pure functions
(payprotocol.simulator.faults): which fields a mutation may touch, what each
kind does, and that money, identity and addressing are never touched. No
sockets, no threads."""

from __future__ import annotations

import copy
import random
from decimal import Decimal
from typing import Any, Dict, List

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payprotocol.codec import dumps, parse_message
from payprotocol.simulator.faults import (
    MUTATION_KINDS,
    Bom,
    FaultPlan,
    message_random,
    mutate,
    mutate_at,
    mutation_paths,
    outgoing,
)

pytestmark = pytest.mark.unit


def execute_response() -> Dict[str, Any]:
    receipt = {
        "data": {"STATUS_TEXT": {"key": "STATUS_TEXT", "label": "Status", "value": "APPROVED"}},
        "merchantDetails": [{"key": "NAME", "label": "Merchant", "value": "Cafe"}],
        "tipLineRequired": False,
    }
    return {
        "type": "EXECUTE_TRANSACTION_RESPONSE",
        "tag": "tag-1",
        "resource": "devices/r1",
        "status": "OK",
        "executeTransactionResponse": {
            "transaction": {
                "transactionIdentifier": "tx-1",
                "type": "CHARGE",
                "status": "APPROVED",
                "statusDetails": {"code": "APPROVED", "description": "ok"},
                "amount": Decimal("10.00"),
                "currency": "EUR",
                "includedTipAmount": Decimal("0.00"),
                "customIdentifier": "order-1",
                "captured": True,
                "created": "2026-11-29T12:00:00Z",
                "cardDetails": {"scheme": "VISA", "expiryMonth": 12},
                "merchantReceipt": receipt,
            }
        },
    }


def login_response() -> Dict[str, Any]:
    device = {"name": "Counter", "identifier": "r1", "resource": "devices/r1", "type": "MOCK"}
    return {
        "type": "LOGIN_MERCHANT_RESPONSE",
        "tag": "tag-0",
        "status": "OK",
        "loginMerchantResponse": {"information": {"location": "Desk"}, "devices": [device]},
    }


def dcc_action() -> Dict[str, Any]:
    selection = {
        "originalAmount": Decimal("10.00"),
        "originalCurrency": "EUR",
        "convertedAmount": Decimal("11.42"),
        "convertedCurrency": "USD",
        "exchangeRate": Decimal("1.142"),
        "markup": Decimal("3.5"),
    }
    return {
        "type": "EXECUTE_TRANSACTION_ACTION",
        "tag": "tag-1",
        "resource": "devices/r1",
        "executeTransactionAction": {"action": "DCC_SELECTION", "dccSelection": selection},
    }


def update() -> Dict[str, Any]:
    return {
        "type": "EXECUTE_TRANSACTION_UPDATE",
        "tag": "tag-1",
        "resource": "devices/r1",
        "executeTransactionUpdate": {
            "state": "WAITING_FOR_PIN",
            "stateDetails": "WAITING_FOR_PIN",
            "information": ["Enter PIN", "10.00 EUR"],
            "abortable": True,
        },
    }


MESSAGES = [execute_response, login_response, dcc_action, update]
STRUCTURAL = ["swap-type", "null", "delete", "wrap-list"]


def paths(kind: str, message: Dict[str, Any]) -> List[str]:
    return [".".join(str(step) for step in path) for path in mutation_paths(message, kind)]


def test_the_money_identity_and_addressing_of_a_response_are_never_paths() -> None:
    message = execute_response()
    for kind in STRUCTURAL:
        found = paths(kind, message)
        tx = "executeTransactionResponse.transaction"
        for kept in (
            "type",
            "tag",
            "resource",
            "status",
            "executeTransactionResponse",
            tx,
            f"{tx}.status",
            f"{tx}.amount",
            f"{tx}.currency",
            f"{tx}.includedTipAmount",
            f"{tx}.customIdentifier",
            f"{tx}.transactionIdentifier",
            f"{tx}.type",
        ):
            assert kept not in found, (kind, kept)
        # Information is fair game, at every depth.
        assert f"{tx}.captured" in found
        assert f"{tx}.merchantReceipt.tipLineRequired" in found
    assert f"{tx}.created" in paths("delete", message)


def test_wrap_list_takes_only_scalars_and_enum_case_only_enum_like_strings() -> None:
    message = execute_response()
    tx = "executeTransactionResponse.transaction"
    wrap = paths("wrap-list", message)
    assert f"{tx}.captured" in wrap and f"{tx}.cardDetails" not in wrap
    case = paths("enum-case", message)
    # The statuses are read case-insensitively: their case may change.
    assert "status" in case and f"{tx}.status" in case
    assert f"{tx}.statusDetails.code" in case
    assert f"{tx}.type" not in case and f"{tx}.currency" not in case and "type" not in case
    assert f"{tx}.created" not in case  # not enum-like


def test_devices_applications_and_dcc_amounts_stay() -> None:
    login = paths("delete", login_response())
    assert "loginMerchantResponse.devices" not in login
    assert "loginMerchantResponse.devices.0" not in login
    assert "loginMerchantResponse.devices.0.resource" not in login
    assert "loginMerchantResponse.devices.0.identifier" not in login
    assert "loginMerchantResponse.devices.0.name" in login
    assert "loginMerchantResponse.information.location" in login
    dcc = paths("swap-type", dcc_action())
    assert dcc == []  # every field of a DCC selection is money, the action its name
    assert paths("enum-case", dcc_action()) == ["executeTransactionAction.action"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("delete", {"state": "WAITING_FOR_PIN", "stateDetails": "WAITING_FOR_PIN"}),
        ("null", None),
        ("wrap-list", None),
    ],
)
def test_each_kind_changes_one_place_and_never_its_input(kind: str, expected: Any) -> None:
    message = update()
    before = copy.deepcopy(message)
    path = ("executeTransactionUpdate", "abortable")
    out = mutate_at(message, path, kind, random.Random(1))
    assert message == before
    data = out["executeTransactionUpdate"]
    if kind == "delete":
        assert "abortable" not in data
    elif kind == "null":
        assert data["abortable"] is None
    else:
        assert data["abortable"] == [True]
    assert data["information"] == ["Enter PIN", "10.00 EUR"]


@given(seed=st.integers(0, 10_000))
def test_swap_type_always_changes_the_json_type_and_never_writes_a_float(seed: int) -> None:
    rng = random.Random(seed)
    for value in ("text", "12", True, False, 7, Decimal("1.5"), None, [1, 2], {"a": 1}):
        message = {"type": "X_UPDATE", "xUpdate": {"field": value}}
        out = mutate_at(message, ("xUpdate", "field"), "swap-type", rng)["xUpdate"]["field"]
        assert type(out) is not type(value) or (value is None) != (out is None)
        assert not isinstance(out, float)
        dumps(out)  # still JSON


@pytest.mark.parametrize("text", ["WAITING_FOR_PIN", "APPROVED", "OK"])
def test_enum_case_changes_only_the_letter_case(text: str) -> None:
    for seed in range(10):
        out = mutate_at({"status": text}, ("status",), "enum-case", random.Random(seed))
        assert out["status"] != text and out["status"].upper() == text


def test_the_same_seed_and_index_mutate_alike_other_indexes_differ() -> None:
    message = execute_response()
    first = mutate(message, message_random(7, 3))
    assert mutate(message, message_random(7, 3)) == first
    others = {mutate(message, message_random(7, index)).applied for index in range(20)}
    assert len(others) > 5
    assert message == execute_response()  # never changed


def money_view(message: Dict[str, Any]) -> Dict[str, Any]:
    """What a mutation must never change (statuses compared without case)."""
    view: Dict[str, Any] = {k: message.get(k) for k in ("type", "tag", "resource", "error")}
    view["status"] = str(message.get("status")).upper()
    data = message.get(next(k for k in message if k[0].islower() and k not in view), {})
    tx = data.get("transaction") if isinstance(data, dict) else None
    if isinstance(tx, dict):
        for key in (
            "transactionIdentifier",
            "amount",
            "currency",
            "includedTipAmount",
            "customIdentifier",
            "type",
        ):
            view[key] = tx.get(key)
        view["tx-status"] = str(tx.get("status")).upper()
    if isinstance(data, dict) and "dccSelection" in data:
        view["dcc"] = data["dccSelection"]
        view["action"] = str(data.get("action")).upper()
    if isinstance(data, dict) and "devices" in data:
        view["devices"] = [(d["resource"], d["identifier"]) for d in data["devices"]]
    return view


@given(seed=st.integers(0, 2**32), index=st.integers(0, 1000), which=st.sampled_from(MESSAGES))
def test_mutate_never_touches_money_identity_or_addressing(
    seed: int, index: int, which: Any
) -> None:
    message = which()
    mutated = mutate(message, message_random(seed, index))
    assert money_view(mutated.wire) == money_view(message)
    assert 1 <= len(mutated.applied) <= 3 or mutated.applied == ()
    assert mutated.bom == ("bom" in mutated.applied)
    parse_message(dumps(mutated.wire))  # still one JSON object


def test_every_kind_is_named_in_the_fault_plans_documentation() -> None:
    doc = FaultPlan.__doc__ or ""
    for kind in MUTATION_KINDS:
        assert f"``{kind}``" in doc


def test_mutate_parses_and_prints_as_a_spec() -> None:
    plan = FaultPlan.parse(["mutate=7"])
    assert plan == FaultPlan(mutate=7) and plan.active
    assert plan.to_specs() == ["mutate=7"]
    assert FaultPlan.parse(plan.to_specs()) == plan
    for bad in ("mutate", "mutate=x", "mutate=-1", "mutate=1.5"):
        with pytest.raises(ValueError, match="mutate"):
            FaultPlan.parse([bad])


def test_outgoing_under_mutate_is_deterministic_and_may_add_a_bom() -> None:
    plan = FaultPlan(mutate=11)
    outs = [outgoing(plan, update(), index=index).payloads[0] for index in range(40)]
    assert outs == [outgoing(plan, update(), index=index).payloads[0] for index in range(40)]
    assert any(isinstance(out, Bom) for out in outs)
    assert any(isinstance(out, dict) and out != update() for out in outs)
    assert outgoing(FaultPlan(), update()).payloads == (update(),)
