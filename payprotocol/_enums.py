"""The enums of P3 (p3-protocol.md sections 3 and 4), used by :mod:`payprotocol.models` (private).

Strategy: every enum is ``str``-based (:class:`WireEnum`), so a member compares
equal to its wire string and ``str()`` gives that string. Model fields typed
``Union[SomeEnum, str]`` keep a value this version does not know as a plain
``str`` (the tolerant reader rule of section 6, applied by the converter in
:mod:`payprotocol.wire_converter`), so code here must never assume a status is
a member: :func:`is_final_status` and the status sets compare strings. This
module imports nothing of the package; the names are public through
:mod:`payprotocol.models` and the package, not through this module.
"""

from __future__ import annotations

import enum
from typing import Union

__all__ = [
    "FAILED_STATUSES",
    "FINAL_STATUSES",
    "ActionType",
    "Comlink",
    "CreditDebit",
    "DeviceType",
    "ErrorType",
    "Mode",
    "ProcessState",
    "ProviderMode",
    "Status",
    "TransactionStatus",
    "TransactionType",
    "WireEnum",
    "is_final_status",
]


class WireEnum(str, enum.Enum):
    """A P3 enum: a ``str`` whose ``str()`` is its wire value."""

    def __str__(self) -> str:
        return str(self.value)


class ProviderMode(WireEnum):
    """``providerMode`` of ``LOGIN_MERCHANT_REQUEST``: which payment provider
    environment the PayServer uses (``TEST`` for test cards, ``LIVE`` for real
    money; ``MOCK`` and ``JUNGLE`` for development, ``*_FIXED`` variants pinned).
    """

    MOCK = "MOCK"
    JUNGLE = "JUNGLE"
    TEST = "TEST"
    TEST_FIXED = "TEST_FIXED"
    LIVE = "LIVE"
    LIVE_FIXED = "LIVE_FIXED"


class DeviceType(WireEnum):
    """``type`` of a card reader (a ``Device`` of ``LOGIN_MERCHANT_RESPONSE``)."""

    MOCK = "MOCK"
    MIURA = "MIURA"
    VERIFONE = "VERIFONE"


class Comlink(WireEnum):
    """``comlink`` of a card reader: how the PayServer reaches it."""

    MOCK = "MOCK"
    WIFI = "WIFI"
    USB = "USB"
    BLUETOOTH = "BLUETOOTH"


class Mode(WireEnum):
    """``mode`` of ``EXECUTE_TRANSACTION_REQUEST`` and ``AMEND_TRANSACTION_REQUEST``:
    ``ONLINE`` (authorised now) or ``OFFLINE`` (accepted now, authorised later;
    final status ``ACCEPTED``)."""

    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"


class TransactionType(WireEnum):
    """``type`` of a transaction: a charge, or an amend of one (refund, capture,
    tip adjust)."""

    CHARGE = "CHARGE"
    REFUND = "REFUND"
    CAPTURE = "CAPTURE"
    TIP_ADJUST = "TIP_ADJUST"


class TransactionStatus(WireEnum):
    """``status`` of a transaction. Final: ``APPROVED``, ``ACCEPTED`` (offline),
    ``DECLINED``, ``ABORTED``, ``ERROR``. Not final: ``INCONCLUSIVE`` (outcome
    unknown: look it up again later), ``PENDING``, ``INITIALIZED``. A status
    this version does not know arrives as a plain ``str`` (treat it as not final).
    """

    APPROVED = "APPROVED"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    ABORTED = "ABORTED"
    ERROR = "ERROR"
    INCONCLUSIVE = "INCONCLUSIVE"
    PENDING = "PENDING"
    INITIALIZED = "INITIALIZED"

    @property
    def is_final(self) -> bool:
        """Whether a transaction with this status will never change."""
        return is_final_status(self)


#: Statuses after which a transaction never changes: its outcome is known.
#: Anything else (``INCONCLUSIVE``, ``PENDING``, a status this version does not
#: know) means: look it up again later.
FINAL_STATUSES = frozenset({"APPROVED", "ACCEPTED", "DECLINED", "ABORTED", "ERROR"})
#: Final statuses in which no money moved.
FAILED_STATUSES = frozenset({"DECLINED", "ABORTED", "ERROR"})


def is_final_status(status: Union[TransactionStatus, str, None]) -> bool:
    """Whether a transaction with this status will never change."""
    return status is not None and str(status) in FINAL_STATUSES


class ProcessState(WireEnum):
    """``state`` of the reader in an ``EXECUTE_TRANSACTION_UPDATE`` (what the
    reader is doing now; the two display lines are in ``information``)."""

    CREATED = "CREATED"
    CONNECTING_TO_ACCESSORY = "CONNECTING_TO_ACCESSORY"
    PREPARING = "PREPARING"
    INITIALIZING_TRANSACTION = "INITIALIZING_TRANSACTION"
    WAITING_FOR_CARD_PRESENTATION = "WAITING_FOR_CARD_PRESENTATION"
    WAITING_FOR_CARD_REMOVAL = "WAITING_FOR_CARD_REMOVAL"
    WAITING_FOR_PIN = "WAITING_FOR_PIN"
    PROCESSING = "PROCESSING"
    ACTION_REQUIRED = "ACTION_REQUIRED"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    ABORTED = "ABORTED"
    FAILED = "FAILED"


class ActionType(WireEnum):
    """``type`` of an ``EXECUTE_TRANSACTION_ACTION``: the question the reader asks
    the POS, answered with ``SUBMIT_SIGNATURE_REQUEST``,
    ``SUBMIT_APPLICATION_SELECTION_REQUEST``, ``SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST``
    or ``SUBMIT_DCC_SELECTION_REQUEST``."""

    SIGNATURE = "SIGNATURE"
    APPLICATION_SELECTION = "APPLICATION_SELECTION"
    CREDIT_DEBIT_SELECTION = "CREDIT_DEBIT_SELECTION"
    DCC_SELECTION = "DCC_SELECTION"


class CreditDebit(WireEnum):
    """The answer to a ``CREDIT_DEBIT_SELECTION`` action
    (``SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST``)."""

    CREDIT = "CREDIT"
    DEBIT = "DEBIT"


class Status(WireEnum):
    """``status`` of a message envelope: ``OK``, or ``ERROR`` with an error object."""

    OK = "OK"
    ERROR = "ERROR"


class ErrorType(WireEnum):
    """``error.type`` of an ``ERROR`` response (p3-protocol.md 3.7): why the
    PayServer refused a request (:class:`~payprotocol.ServerError`
    ``.error_type``)."""

    INVALID_REQUEST = "INVALID_REQUEST"
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    NOT_LOGGED_IN = "NOT_LOGGED_IN"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    UNKNOWN_RESOURCE = "UNKNOWN_RESOURCE"
    DEVICE_BUSY = "DEVICE_BUSY"
    DEVICE_NOT_CONNECTED = "DEVICE_NOT_CONNECTED"
    TRANSACTION_NOT_FOUND = "TRANSACTION_NOT_FOUND"
    TRANSACTION_NOT_ABORTABLE = "TRANSACTION_NOT_ABORTABLE"
    NO_PENDING_ACTION = "NO_PENDING_ACTION"
    INTERNAL_ERROR = "INTERNAL_ERROR"
