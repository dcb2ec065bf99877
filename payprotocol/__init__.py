"""payprotocol: a synchronous Python SDK for the PayProtocol (P3).

Import strategy: ``import payprotocol`` loads the protocol core only (errors,
framing, models, codec, receipts), none of which imports ``socket``, ``ssl``,
``sqlite3``, ``websocket`` or ``threading`` (attrs itself imports
``threading``; tests/unit/test_import_graph.py pins the rest). The client and the journal are
lazy attributes (PEP 562 ``__getattr__``): ``payprotocol.PayClient`` or
``from payprotocol import Journal`` imports their module on first use, so TLS,
WebSocket and SQLite load only when a program needs them. The
``TYPE_CHECKING`` imports let type checkers see every name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

from .codec import decode_message, encode_message, redact, redacted_text
from .errors import (
    ConnectionLostError,
    CustomIdentifierInUseError,
    PayProtocolError,
    ProtocolViolationError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_frame
from .models import *  # noqa: F403 - the models' __all__ is public API
from .models import __all__ as _model_names
from .receipts import format_receipt

if TYPE_CHECKING:
    from .client import (
        CallbackDeadlockError,
        ConnectionState,
        PayClient,
        ReconnectPolicy,
        RecoveredOutcome,
    )
    from .journal import Journal, JournalEntry, JournalError, PendingOutcome

__version__ = "0.1.0"

# Public name -> the submodule that defines it, imported on first access.
_LAZY: Dict[str, str] = {
    "CallbackDeadlockError": "client",
    "ConnectionState": "client",
    "PayClient": "client",
    "ReconnectPolicy": "client",
    "RecoveredOutcome": "client",
    "Journal": "journal",
    "JournalEntry": "journal",
    "JournalError": "journal",
    "PendingOutcome": "journal",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "CallbackDeadlockError",
    "ConnectionState",
    "ConnectionLostError",
    "CustomIdentifierInUseError",
    "FrameDecoder",
    "Journal",
    "JournalEntry",
    "JournalError",
    "PendingOutcome",
    "PayClient",
    "ReconnectPolicy",
    "RecoveredOutcome",
    "PayProtocolError",
    "ProtocolViolationError",
    "RequestTimeoutError",
    "ServerError",
    "TransactionOutcomeUnknownError",
    "__version__",
    "decode_message",
    "encode_frame",
    "encode_message",
    "format_receipt",
    "redact",
    "redacted_text",
    *_model_names,
]
