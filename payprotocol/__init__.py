"""payprotocol: a synchronous Python SDK for the PayProtocol (P3)."""

from .client import (
    CallbackDeadlockError,
    ConnectionState,
    PayClient,
    ReconnectPolicy,
    RecoveredOutcome,
)
from .codec import decode_message, encode_message, redact, redacted_text
from .errors import (
    ConnectionLostError,
    PayProtocolError,
    ProtocolViolationError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_frame
from .journal import Journal, JournalEntry, JournalError, PendingOutcome
from .models import *  # noqa: F403 - the models' __all__ is public API
from .models import __all__ as _model_names
from .receipts import format_receipt

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "CallbackDeadlockError",
    "ConnectionState",
    "ConnectionLostError",
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
