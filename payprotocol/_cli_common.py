"""What every ``payprotocol`` command shares: exit codes, settings, output (private).

Strategy: the command line is split by responsibility (:mod:`payprotocol.cli`
parses arguments and maps errors; ``_cli_commands`` talks to a PayServer;
``_cli_simulate`` runs the simulator; ``_cli_demo`` gives the tour). The few
things all of them need live here, at the bottom of that graph, so that none
of them imports another's internals and the imports stay acyclic. The exit
codes are documented in :mod:`payprotocol.cli` and re-exported from there.
"""

from __future__ import annotations

import argparse
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
    "add_record_options",
    "add_replay_options",
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


def add_record_options(parser: argparse.ArgumentParser) -> None:
    """``--record FILE`` for every command that talks to a PayServer."""
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="write every message of the session to a cassette (JSON Lines, secrets and the "
        "cardholder name masked) to replay with 'payprotocol simulate --replay FILE'",
    )
    parser.add_argument(
        "--record-cardholder-name",
        action="store_true",
        help="keep the cardholder name in the cassette (masked by default)",
    )


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid speed {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"speed must be above 0, got {text!r}")
    return value


def add_replay_options(parser: argparse.ArgumentParser) -> None:
    """``simulate --replay CASSETTE [--speed X] [--strict]``."""
    parser.add_argument(
        "--replay",
        metavar="CASSETTE",
        help="play a recorded session's server side instead of the test-card rules",
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        help="with --replay: the recorded pace times X (default: as fast as the order allows)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="with --replay: exit 1 at the end when recorded requests never came or a "
        "request matched nothing",
    )
