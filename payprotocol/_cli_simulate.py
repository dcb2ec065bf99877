"""``payprotocol simulate``: run the embedded PayServer simulator until Ctrl-C (private).

Strategy: the command only turns arguments into a
:class:`~payprotocol.simulator.SimulatorConfig` (faults parsed by
:class:`~payprotocol.simulator.FaultPlan`, a bad spec is a usage error), prints
where it listens, and sleeps on the main thread, where Ctrl-C and SIGTERM
arrive as a ``KeyboardInterrupt`` and stop the servers cleanly. The simulator
package is imported only when this command runs, so the other commands never
load it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
from typing import Any

from ._cli_common import (
    EXIT_CONNECTION,
    EXIT_DECLINED,
    EXIT_OK,
    UsageError,
    err,
    missing_simulator_extra,
    out,
)

__all__ = ["FAULT_KINDS", "cmd_simulate"]

#: What ``--fault`` accepts, as :meth:`FaultPlan.parse` reads it (S: seconds).
FAULT_KINDS = (
    "byte-by-byte",
    "coalesce[=S]",
    "response-delay=S",
    "drop-after=K",
    "duplicate-response",
    "late-response=S",
    "malformed=huge-length|invalid-utf8|not-object",
    "unknown-fields",
    "unknown-enums",
    "unknown-message",
    "mutate=SEED",
)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run the simulator the arguments describe until Ctrl-C or SIGTERM."""
    from .simulator import FaultPlan, Simulator, SimulatorConfig

    if args.replay is not None:
        return _replay(args)
    if args.speed is not None or args.strict:
        raise UsageError("--speed and --strict go with --replay CASSETTE")
    try:
        faults = FaultPlan.parse(args.faults)
    except ValueError as exc:
        message = str(exc).replace(
            "see payprotocol.simulator.FaultPlan for the list",
            "the kinds: " + ", ".join(FAULT_KINDS),
        )
        raise UsageError(message) from None
    if args.tcp_port is None and args.ws_port is None:
        raise UsageError("nothing to listen on")
    if args.ws_port is not None:
        missing = missing_simulator_extra("the WebSocket server")
        if missing:
            raise UsageError(f"{missing} (or serve framed TCP alone with --ws-port none)")
    config = SimulatorConfig(
        host=args.host,
        tcp_port=args.tcp_port,
        ws_port=args.ws_port,
        merchants=dict(args.merchants),
        step_delay=args.step_delay,
        slow_presentation=args.slow_presentation,
        action_timeout=args.action_timeout,
        faults=faults,
    )
    _configure_simulator_logging(args.verbose)
    _stop_on_signals()
    if args.write_ca and not args.tls:
        raise UsageError("--write-ca goes with --tls")
    try:
        simulator = Simulator(config, tls=args.tls, ca_path=args.write_ca)
    except RuntimeError as exc:  # --tls without trustme
        raise UsageError(str(exc)) from None
    except OSError as exc:  # --write-ca to a path we cannot write
        raise UsageError(f"cannot write the CA certificate: {exc}") from None
    try:
        simulator.start()
    except OSError as exc:
        err(f"payprotocol simulate: cannot listen: {_which_port(config, exc)}")
        return EXIT_CONNECTION
    try:
        out("PayProtocol simulator ready")
        if config.tcp_port is not None:
            out(f"  TCP:       {simulator.tcp_url}")
        if config.ws_port is not None:
            out(f"  WebSocket: {simulator.ws_url}")
        if simulator.tls is not None:
            out(f"  TLS CA:    {simulator.ca_path} (trust it: --cafile {simulator.ca_path})")
        merchants = ", ".join(sorted(config.merchants)) or "any identifier with a secret"
        out(f"  merchants: {merchants}")
        readers = ", ".join(f"{d.resource} ({d.name})" for d in config.devices)
        out(f"  readers:   {readers}")
        if faults.active:
            out(f"  faults:    {', '.join(faults.to_specs())}")
        out("Press Ctrl-C to stop.")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        out("Stopping the simulator.")
    finally:
        simulator.stop()
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    """``simulate --replay CASSETTE``: a recorded session's server side, until Ctrl-C."""
    from .simulator import Replay

    if args.faults or args.merchants:
        raise UsageError("--replay plays the cassette as recorded: no --fault or --merchant")
    if args.tcp_port is None and args.ws_port is None:
        raise UsageError("nothing to listen on")
    try:
        replay = Replay(
            args.replay,
            speed=args.speed,
            strict=args.strict,
            host=args.host,
            tcp_port=args.tcp_port,
            ws_port=args.ws_port,
        )
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot replay {args.replay}: {exc}") from None
    _configure_simulator_logging(args.verbose)
    _stop_on_signals()
    try:
        replay.start()
    except OSError as exc:
        err(f"payprotocol simulate: cannot listen: {exc}")
        return EXIT_CONNECTION
    try:
        out("PayProtocol replay server ready")
        out(f"  TCP:       {replay.tcp_url}")
        out(f"  WebSocket: {replay.ws_url}")
        out(f"  cassette:  {args.replay}: {len(replay.requests)} recorded request(s)")
        out("Press Ctrl-C to stop.")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        out("Stopping the replay server.")
    finally:
        replay.stop()
    problems = replay.problems()
    for problem in problems:
        err(f"payprotocol simulate: replay: {problem}")
    out(f"Replayed {replay.played} of {len(replay.requests)} recorded request(s).")
    return EXIT_DECLINED if args.strict and problems else EXIT_OK


def _configure_simulator_logging(verbosity: int) -> None:
    # The simulator logs connections, logins and outcomes at INFO (always shown),
    # every message it sends or receives (secrets redacted) at DEBUG (-v); the
    # websockets library's own debug log only at -vv.
    logging.getLogger("payprotocol.simulator").setLevel(
        logging.DEBUG if verbosity >= 1 else logging.INFO
    )
    logging.getLogger("payprotocol.simulator.websockets").setLevel(
        logging.DEBUG if verbosity >= 2 else logging.WARNING
    )


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end ``simulate`` cleanly (as a KeyboardInterrupt).

    A shell starts background jobs with SIGINT ignored; a server someone runs
    from a script should still stop on Ctrl-C or ``kill -INT``.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, interrupt)


def _which_port(config: Any, exc: OSError) -> str:
    """The error, naming the port that could not be had (the simulator binds
    both and its error does not say which one failed)."""
    for name, option, port in (
        ("framed TCP", "--tcp-port", config.tcp_port),
        ("WebSocket", "--ws-port", config.ws_port),
    ):
        if not port:  # 0 (any free port) or None (not served) cannot clash
            continue
        try:
            with socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET) as probe:
                if os.name != "nt":
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((config.host, port))
        except OSError as clash:
            reason = clash.strerror or str(clash)
            return (
                f"{config.host}:{port} ({name}): {reason}; is another server running there? "
                f"Choose another port with {option} (0: any free port)"
            )
    return str(exc)
