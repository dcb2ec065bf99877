"""Money arguments are exact: Decimal, int or decimal text; nothing else."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from payprotocol._money import exact, optional_exact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value", [True, False, 10.0, 0.1, None, [1], b"10"])
def test_anything_but_decimal_int_or_text_is_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="amount must be a Decimal"):
        exact(value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", Decimal("-Infinity")])
def test_a_non_finite_amount_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="finite"):
        exact(value)


def test_exact_amounts_pass_unchanged_and_none_means_absent() -> None:
    assert exact("10.00") == Decimal("10.00") and str(exact("10.00")) == "10.00"
    assert exact(7) == Decimal(7)
    assert optional_exact(None) is None
    with pytest.raises(TypeError, match="tip_amount"):
        exact(1.5, "tip_amount")
