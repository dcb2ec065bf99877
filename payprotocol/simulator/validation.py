"""Field checks of incoming P3 requests, before the codec turns them into models.

The codec would also refuse most broken requests, but with a cattrs message;
these checks run on the parsed JSON object first so that the
``INVALID_REQUEST`` error's message names the field by its wire path (for
example ``executeTransactionRequest.transactionParameters.amount``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable, Dict, Mapping, Optional

from ..models import CreditDebit, Mode, ProviderMode
from ..naming import data_key
from .cards import currency_decimals

__all__ = ["InvalidRequest", "validate_request"]

_CURRENCY = re.compile(r"[A-Z]{3}")


class InvalidRequest(Exception):
    """A request is malformed; the message names the field (``INVALID_REQUEST``)."""


def _is_number(value: Any) -> bool:
    # parse_float=Decimal gives Decimal; NaN/Infinity arrive as float and are refused.
    return isinstance(value, (Decimal, int)) and not isinstance(value, bool)


class _Object:
    """A JSON object being checked, with its path for error messages."""

    def __init__(self, value: Any, path: str, *, required: bool = True) -> None:
        if value is None and not required:
            value = {}
        if not isinstance(value, dict):
            what = "is required" if value is None else "must be a JSON object"
            raise InvalidRequest(f"{path} {what}")
        self.value: Dict[str, Any] = value
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}"

    def get(self, key: str) -> Any:
        return self.value.get(key)

    def string(self, key: str, *, required: bool = False, non_empty: bool = False) -> Optional[str]:
        value = self.value.get(key)
        if value is None:
            if required:
                raise InvalidRequest(f"{self._where(key)} is required")
            return None
        if not isinstance(value, str):
            raise InvalidRequest(f"{self._where(key)} must be a string")
        if non_empty and not value:
            raise InvalidRequest(f"{self._where(key)} must not be empty")
        return value

    def boolean(self, key: str, *, required: bool = False) -> Optional[bool]:
        value = self.value.get(key)
        if value is None:
            if required:
                raise InvalidRequest(f"{self._where(key)} is required (true or false)")
            return None
        if not isinstance(value, bool):
            raise InvalidRequest(f"{self._where(key)} must be true or false")
        return value

    def choice(self, key: str, allowed: Any, *, required: bool = False) -> Optional[str]:
        value = self.string(key, required=required)
        names = [str(member.value) for member in allowed]
        if value is not None and value not in names:
            raise InvalidRequest(f"{self._where(key)} must be one of {', '.join(names)}")
        return value

    def amount(
        self, key: str, currency: Optional[str], *, required: bool = False, positive: bool = True
    ) -> Optional[Decimal]:
        value = self.value.get(key)
        if value is None:
            if required:
                raise InvalidRequest(f"{self._where(key)} is required")
            return None
        if not _is_number(value):
            raise InvalidRequest(f"{self._where(key)} must be a JSON number")
        amount = Decimal(value)
        if amount < 0 or (positive and amount == 0):
            sign = "greater than 0" if positive else "0 or more"
            raise InvalidRequest(f"{self._where(key)} must be {sign}")
        if currency is not None:
            decimals = currency_decimals(currency)
            if amount != amount.quantize(Decimal(1).scaleb(-decimals), rounding="ROUND_DOWN"):
                raise InvalidRequest(
                    f"{self._where(key)} has more than {decimals} decimals for {currency}"
                )
        return amount

    def currency(self, key: str, *, required: bool = False) -> Optional[str]:
        value = self.string(key, required=required)
        if value is not None and not _CURRENCY.fullmatch(value):
            raise InvalidRequest(f"{self._where(key)} must be an ISO 4217 code like EUR")
        return value

    def object(self, key: str, *, required: bool = False) -> Optional[_Object]:
        value = self.value.get(key)
        if value is None and not required:
            return None
        return _Object(value, self._where(key))


def _login(data: _Object) -> None:
    data.choice("providerMode", ProviderMode, required=True)
    data.string("merchantIdentifier", required=True, non_empty=True)
    data.string("merchantSecret", required=True)


def _execute(data: _Object) -> None:
    data.choice("mode", Mode)
    data.string("sessionIdentifier")
    parameters = data.object("transactionParameters", required=True)
    assert parameters is not None
    kind = parameters.string("type", required=True)
    if kind != "CHARGE":
        raise InvalidRequest(
            f"{parameters.path}.type must be CHARGE (refunds and captures use "
            f"AMEND_TRANSACTION_REQUEST), got {kind!r}"
        )
    currency = parameters.currency("currency", required=True)
    amount = parameters.amount("amount", currency, required=True)
    parameters.boolean("autoCapture")  # absent reads as true (3.2: the vendor's examples)
    for key in ("subject", "customIdentifier", "statementDescriptor"):
        parameters.string(key)
    fee = parameters.amount("applicationFee", currency, positive=False)
    if fee is not None and amount is not None and fee > amount:
        raise InvalidRequest(f"{parameters.path}.applicationFee exceeds the amount")
    tip = parameters.amount("includedTipAmount", currency, positive=False)
    if tip is not None and amount is not None and tip > amount:
        raise InvalidRequest(f"{parameters.path}.includedTipAmount exceeds the amount")
    parameters.object("metadata")
    parameters.boolean("tipAdjustable")
    process = data.object("processParameters")
    steps = None if process is None else process.object("steps")
    if steps is not None:
        tip_step, total_step = steps.object("askForTip"), steps.object("askForTotalAmount")
        if tip_step is not None and total_step is not None:
            raise InvalidRequest(f"{steps.path} holds askForTip or askForTotalAmount, not both")
        for step in (tip_step, total_step):
            if step is not None:
                step.amount("suggestedAmount", currency, positive=False)
                step.amount("maxTipAmount", currency, positive=False)
                step.boolean("showAddTipConfirmationScreen")
                step.boolean("showTotalAmountConfirmationScreen")


def _signature(data: _Object) -> None:
    signature = data.string("signature")
    on_receipt = data.boolean("signOnReceipt")
    if not signature and not on_receipt:
        raise InvalidRequest(f"{data.path} needs signature (a base64 PNG) or signOnReceipt true")


def _application(data: _Object) -> None:
    data.string("applicationIdentifier", required=True, non_empty=True)


def _credit_debit(data: _Object) -> None:
    data.choice("selection", CreditDebit, required=True)


def _dcc(data: _Object) -> None:
    data.boolean("useConvertedAmount", required=True)


def _abort(data: _Object) -> None:
    """ABORT_TRANSACTION_REQUEST carries ``{}``; anything else is ignored."""


def _amend(data: _Object) -> None:
    data.choice("mode", Mode)
    parameters = data.object("transactionParameters", required=True)
    assert parameters is not None
    kind = parameters.string("type", required=True)
    if kind not in ("REFUND", "CAPTURE", "TIP_ADJUST"):
        raise InvalidRequest(f"{parameters.path}.type must be REFUND, CAPTURE or TIP_ADJUST")
    parameters.string("referencedTransactionIdentifier", required=True, non_empty=True)
    currency = parameters.currency("currency")
    parameters.amount("amount", currency)
    parameters.amount("includedTipAmount", currency, positive=False)
    parameters.string("subject")
    parameters.string("customIdentifier")
    parameters.object("metadata")


def _get_transaction(data: _Object) -> None:
    identifier = data.string("transactionIdentifier", non_empty=True)
    custom = data.string("customIdentifier", non_empty=True)
    if (identifier is None) == (custom is None):
        raise InvalidRequest(
            f"{data.path} needs exactly one of transactionIdentifier or customIdentifier"
        )


_CHECKS: Mapping[str, tuple[bool, Callable[[_Object], None]]] = {
    # type: (data object required, check); the data key follows the codec's rule
    "LOGIN_MERCHANT_REQUEST": (True, _login),
    "EXECUTE_TRANSACTION_REQUEST": (True, _execute),
    "SUBMIT_SIGNATURE_REQUEST": (True, _signature),
    "SUBMIT_APPLICATION_SELECTION_REQUEST": (True, _application),
    "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST": (True, _credit_debit),
    "SUBMIT_DCC_SELECTION_REQUEST": (True, _dcc),
    "ABORT_TRANSACTION_REQUEST": (False, _abort),
    "AMEND_TRANSACTION_REQUEST": (True, _amend),
    "GET_TRANSACTION_REQUEST": (True, _get_transaction),
}

#: The request types the simulator serves.
REQUEST_TYPES = frozenset(_CHECKS)


def validate_request(raw: Mapping[str, Any]) -> None:
    """Check the data object of a known request type; raise :class:`InvalidRequest`."""
    required, check = _CHECKS[raw["type"]]
    key = data_key(raw["type"])
    check(_Object(raw.get(key), key, required=required))
