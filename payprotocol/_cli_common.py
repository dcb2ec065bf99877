"""What every ``payprotocol`` command shares: exit codes, settings, output (private).

Strategy: the command line is split by responsibility (:mod:`payprotocol.cli`
parses arguments and maps errors; ``_cli_commands`` talks to a PayServer;
``_cli_simulate`` runs the simulator; ``_cli_demo`` gives the tour). The few
things all of them need live here, at the bottom of that graph, so that none
of them imports another's internals and the imports stay acyclic. The exit
codes are documented in :mod:`payprotocol.cli` and re-exported from there.
"""

from __future__ import annotations

import sys
from typing import Optional

__all__ = [
    "DEFAULT_URL",
    "EXIT_CONNECTION",
    "EXIT_DECLINED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_USAGE",
    "MERCHANT_ENV",
    "SECRET_ENV",
    "URL_ENV",
    "UsageError",
    "err",
    "missing_simulator_extra",
    "out",
]

EXIT_OK = 0
EXIT_DECLINED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_OUTCOME_UNKNOWN = 4
EXIT_INTERRUPTED = 130

SECRET_ENV = "PAYPROTOCOL_MERCHANT_SECRET"
MERCHANT_ENV = "PAYPROTOCOL_MERCHANT_ID"
URL_ENV = "PAYPROTOCOL_URL"
DEFAULT_URL = "tcp://127.0.0.1:4245"


class UsageError(Exception):
    """Bad input found after argument parsing (exit code 2)."""


def missing_simulator_extra(what: str) -> Optional[str]:
    """``None`` when the ``simulator`` extra (the ``websockets`` package) is
    installed, else the one line that says what to install for ``what``."""
    try:
        import websockets  # noqa: F401
    except ImportError:
        return f"{what} needs the simulator extra: pip install 'payprotocol[simulator]'"
    return None


def err(text: str) -> None:
    """One line on standard error, flushed (progress, warnings, errors)."""
    print(text, file=sys.stderr, flush=True)


def out(text: str = "") -> None:
    """One line on standard output, flushed (results)."""
    print(text, flush=True)
