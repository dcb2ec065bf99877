"""Typed models of every P3 message data object and nested object
(p3-protocol.md sections 3 and 4).

Strategy: declare each shape once as a small attrs class and let the single
cattrs converter in :mod:`payprotocol.wire_converter` derive the wire mapping
(``snake_case`` attribute <-> lowerCamelCase key). Four rules keep us
forward compatible with a real PayServer (section 6):

* every model has ``extra_fields``: wire keys it does not know (and keys that
  arrived as an explicit ``null``) are kept there and written back unchanged;
* enum-typed fields are ``Union[SomeEnum, str]``: a value the enum does not
  know stays a plain ``str`` instead of failing;
* optional fields default to ``None`` and are left off the wire when ``None``;
* a field that does not fit is kept as received in ``extra_fields`` and its
  attribute keeps the default (the tolerant reader of
  :mod:`payprotocol.codec`, section 6.2).

Annotations use ``typing.Optional``/``Union``/``Dict``/``List`` on purpose:
cattrs resolves them at run time and Python 3.9 cannot evaluate ``X | None``.
Fields holding secrets carry ``metadata={"sensitive": True}``; their ``repr`` is
``'***'``; the field helpers live in :mod:`payprotocol.model_fields` and the
redaction of those secrets in :mod:`payprotocol.redaction`
(:data:`SENSITIVE_WIRE_KEYS` and :func:`redact`, re-exported here, by
:mod:`payprotocol.codec` and the package), which masks them in ``repr``, logs,
traces and the journal. The transaction object and what nests in it (section
4) live in :mod:`payprotocol.transaction_objects`. The enums and the
final-status rules live in ``payprotocol._enums``. All are re-exported here,
so ``payprotocol.models`` stays the one place to import every model from.
This module imports nothing of the package but those modules, none of which
imports it (``_enums`` and the redaction import nothing at all); the wire
mapping itself is derived by the one converter in
:mod:`payprotocol.wire_converter`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, List, Optional, Union

import attrs

from ._enums import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    ActionType,
    Comlink,
    CreditDebit,
    DeviceType,
    ErrorType,
    Mode,
    ProcessState,
    ProviderMode,
    Status,
    TransactionStatus,
    TransactionType,
    is_final_status,
)
from .model_fields import context as _context
from .model_fields import extra as _extra
from .model_fields import mask as _mask
from .model_fields import redacted_repr as _redacted_repr
from .model_fields import sensitive as _sensitive
from .model_fields import wire_required as _wire_required
from .redaction import SENSITIVE_WIRE_KEYS as SENSITIVE_WIRE_KEYS  # re-exported
from .redaction import redact as redact  # re-exported
from .transaction_objects import (
    CardDetails,
    PaymentDetails,
    Receipt,
    ReceiptLine,
    StatusDetails,
    Transaction,
)

__all__ = [
    "FAILED_STATUSES",
    "FINAL_STATUSES",
    "is_final_status",
    "AbortTransactionRequest",
    "AbortTransactionResponse",
    "ActionType",
    "AmendParameters",
    "AmendTransactionRequest",
    "AmendTransactionResponse",
    "AmendTransactionUpdate",
    "AmountStep",
    "Application",
    "ApplicationSelection",
    "CardDetails",
    "Comlink",
    "CreditDebit",
    "DccSelection",
    "Device",
    "DeviceType",
    "ErrorDetails",
    "ErrorType",
    "ExecuteTransactionAction",
    "ExecuteTransactionRequest",
    "ExecuteTransactionResponse",
    "ExecuteTransactionUpdate",
    "GetTransactionRequest",
    "GetTransactionResponse",
    "LoginMerchantRequest",
    "LoginMerchantResponse",
    "Message",
    "Mode",
    "PaymentDetails",
    "ProcessParameters",
    "ProcessState",
    "ProcessSteps",
    "ProviderMode",
    "RawMessage",
    "Receipt",
    "ReceiptLine",
    "Status",
    "StatusDetails",
    "SubmitApplicationSelectionRequest",
    "SubmitApplicationSelectionResponse",
    "SubmitCreditDebitSelectionRequest",
    "SubmitCreditDebitSelectionResponse",
    "SubmitDccSelectionRequest",
    "SubmitDccSelectionResponse",
    "SubmitSignatureRequest",
    "SubmitSignatureResponse",
    "Transaction",
    "TransactionParameters",
    "TransactionStatus",
    "TransactionType",
]


# --- login (3.1) -----------------------------------------------------------


@attrs.frozen
class LoginMerchantRequest:
    """Data of ``LOGIN_MERCHANT_REQUEST``."""

    provider_mode: Union[ProviderMode, str]
    merchant_identifier: str
    merchant_secret: str = attrs.field(repr=_mask, metadata={"sensitive": True})
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class Device:
    """A card reader from ``LOGIN_MERCHANT_RESPONSE``; ``resource`` addresses it."""

    resource: str
    name: Optional[str] = None
    identifier: Optional[str] = None
    type: Optional[Union[DeviceType, str]] = None
    comlink: Optional[Union[Comlink, str]] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class LoginMerchantResponse:
    """Data of ``LOGIN_MERCHANT_RESPONSE``: the merchant's readers."""

    devices: List[Device] = attrs.field(factory=list)
    information: Optional[Dict[str, Any]] = None
    extra_fields: Dict[str, Any] = _extra()


# --- execute transaction (3.2) ---------------------------------------------


@attrs.frozen
class TransactionParameters:
    """``transactionParameters`` of ``EXECUTE_TRANSACTION_REQUEST``.

    ``auto_capture`` ``None`` means absent on the wire, which reads as ``true``
    (3.2: the vendor's own examples leave it out); :class:`~payprotocol.PayClient`
    always writes it."""

    type: Union[TransactionType, str]
    amount: Decimal
    currency: str
    auto_capture: Optional[bool] = None
    subject: Optional[str] = None
    custom_identifier: Optional[str] = None
    statement_descriptor: Optional[str] = None
    application_fee: Optional[Decimal] = None
    included_tip_amount: Optional[Decimal] = None
    metadata: Optional[Dict[str, Any]] = None
    tip_adjustable: Optional[bool] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class AmountStep:
    """``askForTip`` or ``askForTotalAmount``: the shopper enters a tip or a total."""

    suggested_amount: Optional[Decimal] = None
    max_tip_amount: Optional[Decimal] = None
    show_add_tip_confirmation_screen: Optional[bool] = None
    show_total_amount_confirmation_screen: Optional[bool] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class ProcessSteps:
    """Holds either ``ask_for_tip`` or ``ask_for_total_amount``, not both."""

    ask_for_tip: Optional[AmountStep] = None
    ask_for_total_amount: Optional[AmountStep] = None
    extra_fields: Dict[str, Any] = _extra()

    def __attrs_post_init__(self) -> None:
        if self.ask_for_tip is not None and self.ask_for_total_amount is not None:
            raise ValueError("process steps hold askForTip or askForTotalAmount, not both")


@attrs.frozen
class ProcessParameters:
    """``processParameters`` of ``EXECUTE_TRANSACTION_REQUEST``: optional
    :class:`ProcessSteps` that change how the reader runs the transaction."""

    steps: Optional[ProcessSteps] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class ExecuteTransactionRequest:
    """Data of ``EXECUTE_TRANSACTION_REQUEST``. ``mode`` ``None`` means absent,
    which reads as ``ONLINE`` (3.2); :class:`~payprotocol.PayClient` always
    writes it."""

    transaction_parameters: TransactionParameters
    mode: Optional[Union[Mode, str]] = None
    session_identifier: Optional[str] = None
    process_parameters: Optional[ProcessParameters] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class ExecuteTransactionUpdate:
    """Data of ``EXECUTE_TRANSACTION_UPDATE``; ``information`` is the reader's two
    lines to show as they are. ``tag``/``resource`` come from the envelope."""

    information: List[str] = attrs.field(factory=list)
    state: Optional[Union[ProcessState, str]] = None
    state_details: Optional[str] = None
    abortable: Optional[bool] = None
    transaction: Optional[Transaction] = None
    extra_fields: Dict[str, Any] = _extra()
    tag: Optional[str] = _context()
    resource: Optional[str] = _context()


@attrs.frozen
class Application:
    """An application on the card (``identifier``, ``name``), offered in an
    ``APPLICATION_SELECTION`` action."""

    identifier: str
    name: Optional[str] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class ApplicationSelection:
    """``applicationSelection`` of an ``EXECUTE_TRANSACTION_ACTION``: the
    applications to choose from (answer with ``SUBMIT_APPLICATION_SELECTION_REQUEST``)."""

    applications: List[Application] = attrs.field(factory=list)
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class DccSelection:
    """``dccSelection`` of an ``EXECUTE_TRANSACTION_ACTION``: the shopper's
    amount converted to the card's currency, rate and markup (answer with
    ``SUBMIT_DCC_SELECTION_REQUEST``)."""

    original_amount: Optional[Decimal] = None
    original_currency: Optional[str] = None
    converted_amount: Optional[Decimal] = None
    converted_currency: Optional[str] = None
    exchange_rate: Optional[Decimal] = None
    markup: Optional[Decimal] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class ExecuteTransactionAction:
    """Data of ``EXECUTE_TRANSACTION_ACTION``: the transaction stops until the
    matching ``SUBMIT_*_REQUEST`` answers it (or it is aborted). ``action`` is
    ``None`` when the server left it out or sent something unreadable (6.2): the
    action still reaches ``on_action``, or the automatic abort."""

    action: Optional[Union[ActionType, str]] = _wire_required()
    application_selection: Optional[ApplicationSelection] = None
    dcc_selection: Optional[DccSelection] = None
    extra_fields: Dict[str, Any] = _extra()
    tag: Optional[str] = _context()
    resource: Optional[str] = _context()


@attrs.frozen
class ExecuteTransactionResponse:
    """Data of ``EXECUTE_TRANSACTION_RESPONSE``."""

    transaction: Optional[Transaction] = None
    extra_fields: Dict[str, Any] = _extra()


# --- action answers (3.3) --------------------------------------------------


@attrs.frozen
class SubmitSignatureRequest:
    """Data of ``SUBMIT_SIGNATURE_REQUEST``: a base64 PNG or sign-on-receipt."""

    signature: Optional[str] = _sensitive()
    sign_on_receipt: Optional[bool] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class SubmitApplicationSelectionRequest:
    """Data of ``SUBMIT_APPLICATION_SELECTION_REQUEST``."""

    application_identifier: str
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class SubmitCreditDebitSelectionRequest:
    """Data of ``SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST``."""

    selection: Union[CreditDebit, str]
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class SubmitDccSelectionRequest:
    """Data of ``SUBMIT_DCC_SELECTION_REQUEST``."""

    use_converted_amount: bool
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class _Empty:
    """A data object that is ``{}`` by contract (unknown fields still kept)."""

    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class SubmitSignatureResponse(_Empty):
    """Data of ``SUBMIT_SIGNATURE_RESPONSE``."""


@attrs.frozen
class SubmitApplicationSelectionResponse(_Empty):
    """Data of ``SUBMIT_APPLICATION_SELECTION_RESPONSE``."""


@attrs.frozen
class SubmitCreditDebitSelectionResponse(_Empty):
    """Data of ``SUBMIT_CREDIT_DEBIT_SELECTION_RESPONSE``."""


@attrs.frozen
class SubmitDccSelectionResponse(_Empty):
    """Data of ``SUBMIT_DCC_SELECTION_RESPONSE``."""


@attrs.frozen
class AbortTransactionRequest(_Empty):
    """Data of ``ABORT_TRANSACTION_REQUEST`` (3.4)."""


@attrs.frozen
class AbortTransactionResponse(_Empty):
    """Data of ``ABORT_TRANSACTION_RESPONSE``: the abort was accepted."""


# --- amend (3.5) and lookup (3.6) ------------------------------------------


@attrs.frozen
class AmendParameters:
    """``transactionParameters`` of ``AMEND_TRANSACTION_REQUEST`` (REFUND, CAPTURE,
    TIP_ADJUST). ``amount``/``currency`` only for partial refunds or captures."""

    type: Union[TransactionType, str]
    referenced_transaction_identifier: str
    amount: Optional[Decimal] = None
    currency: Optional[str] = None
    subject: Optional[str] = None
    custom_identifier: Optional[str] = None
    included_tip_amount: Optional[Decimal] = None
    metadata: Optional[Dict[str, Any]] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class AmendTransactionRequest:
    """Data of ``AMEND_TRANSACTION_REQUEST``."""

    transaction_parameters: AmendParameters
    mode: Optional[Union[Mode, str]] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class AmendTransactionUpdate:
    """Data of ``AMEND_TRANSACTION_UPDATE``."""

    information: List[str] = attrs.field(factory=list)
    state: Optional[Union[ProcessState, str]] = None
    state_details: Optional[str] = None
    abortable: Optional[bool] = None
    extra_fields: Dict[str, Any] = _extra()
    tag: Optional[str] = _context()
    resource: Optional[str] = _context()


@attrs.frozen
class AmendTransactionResponse:
    """Data of ``AMEND_TRANSACTION_RESPONSE``: the new refund/capture/tip-adjust."""

    transaction: Optional[Transaction] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class GetTransactionRequest:
    """Data of ``GET_TRANSACTION_REQUEST``: give exactly one identifier."""

    transaction_identifier: Optional[str] = None
    custom_identifier: Optional[str] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class GetTransactionResponse:
    """Data of ``GET_TRANSACTION_RESPONSE``."""

    transaction: Optional[Transaction] = None
    extra_fields: Dict[str, Any] = _extra()


# --- envelope (2) ----------------------------------------------------------


@attrs.frozen
class ErrorDetails:
    """The error object of a response with ``status: "ERROR"``. ``type`` is
    ``None`` when the server left it out (6.2: still an error, of unknown type)."""

    type: Optional[Union[ErrorType, str]] = _wire_required()
    message: Optional[str] = None
    developer_message: Optional[str] = None
    extra_fields: Dict[str, Any] = _extra()


@attrs.frozen
class Message:
    """One P3 message: the envelope plus its typed data object.

    ``data`` is the model registered for ``type`` in :mod:`payprotocol.codec`
    (for example :class:`ExecuteTransactionUpdate`); ``extra_fields`` keeps
    envelope keys this version does not know.
    """

    type: str
    tag: Optional[str] = None
    resource: Optional[str] = None
    data: Any = attrs.field(default=None, repr=_redacted_repr)
    status: Optional[Union[Status, str]] = None
    error: Optional[ErrorDetails] = None
    version: Optional[str] = None
    extra_fields: Dict[str, Any] = _extra()

    @property
    def is_error(self) -> bool:
        """Whether this is an ``ERROR`` response (an error object or ``status`` ``ERROR``)."""
        # A str comparison matches Status.ERROR too, without the enum lookup.
        return self.error is not None or self.status == "ERROR"


@attrs.frozen
class RawMessage(Message):
    """A message of a type this version does not know. ``data`` is the raw data
    object (a ``dict``, or ``None`` when absent); nothing is dropped."""
