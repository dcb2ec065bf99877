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
import signal
import threading
import time

from ._cli_common import EXIT_CONNECTION, EXIT_DECLINED, EXIT_OK, UsageError, err, out

__all__ = ["cmd_simulate"]


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
        raise UsageError(str(exc)) from None
    if args.tcp_port is None and args.ws_port is None:
        raise UsageError("nothing to listen on")
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
    simulator = Simulator(config)
    try:
        simulator.start()
    except OSError as exc:
        err(f"payprotocol simulate: cannot listen: {exc}")
        return EXIT_CONNECTION
    try:
        out("PayProtocol simulator ready")
        out(f"  TCP:       {simulator.tcp_url}")
        out(f"  WebSocket: {simulator.ws_url}")
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
    # The simulator logs every message it sends or receives (secrets redacted) at
    # DEBUG, connections and outcomes at INFO; the websockets library only at -v.
    logging.getLogger("payprotocol.simulator").setLevel(logging.DEBUG)
    logging.getLogger("payprotocol.simulator.websockets").setLevel(
        logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING
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
