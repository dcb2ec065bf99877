"""Run the real ``payprotocol`` command line in subprocesses, always bounded.

``run_cli`` runs one command to completion (with a timeout); ``Simulate`` starts
``payprotocol simulate`` on free ports, reads the URLs it prints and stops it
(Ctrl-C first, then kill) however the test ends. ``LineReader`` follows a
stream of a running process without ever blocking the test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Zq7-never-print-me"
MERCHANT = "merchant-cli"
RUN_TIMEOUT = 30.0


def cli_env(**extra: str) -> Dict[str, str]:
    """The environment for a CLI subprocess: the test secret, no inherited P3 settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PAYPROTOCOL_") and k != "COLUMNS"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["PAYPROTOCOL_MERCHANT_SECRET"] = SECRET
    env.update(extra)
    return env


def command(*args: str) -> List[str]:
    return [sys.executable, "-m", "payprotocol", *args]


_NO_EXTRA = (
    "import sys; sys.modules['websockets'] = None  # as if the simulator extra were missing\n"
    "from payprotocol.cli import main; sys.exit(main(sys.argv[1:]))"
)


def without_simulator_extra(*args: str) -> List[str]:
    """``payprotocol ARGS`` in an interpreter where ``import websockets`` fails."""
    return [sys.executable, "-c", _NO_EXTRA, *args]


def run_cli(
    *args: str,
    input: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m payprotocol ARGS`` to completion (killed after ``timeout``)."""
    return run_python(command(*args), input=input, env=env, timeout=timeout)


def run_python(
    argv: Sequence[str],
    *,
    input: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env if env is not None else cli_env(),
        cwd=str(REPO),
        timeout=timeout,
        check=False,
        # No controlling terminal: getpass then reads standard input instead of
        # prompting on the developer's terminal (and hanging the test).
        start_new_session=sys.platform != "win32",
    )


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LineReader:
    """Lines of a subprocess stream, collected by a daemon thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: List[str] = []
        self._queue: queue.SimpleQueue[Optional[str]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first match of ``pattern`` in the lines so far or to come."""
        regex = re.compile(pattern)
        for line in self.lines:
            found = regex.search(line)
            if found:
                return found
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matched {pattern!r}; got {self.text()!r}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"stream ended before {pattern!r}; got {self.text()!r}")
            self.lines.append(line)
            found = regex.search(line)
            if found:
                return found

    def text(self, settle: float = 0.0) -> str:
        """Everything read so far (after waiting ``settle`` s for more)."""
        deadline = time.monotonic() + settle
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    break
                continue
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        return "".join(self.lines)


def stop(process: subprocess.Popen[str], timeout: float = 10.0) -> Optional[int]:
    """Ctrl-C (where there is one), then kill; returns the exit code."""
    if process.poll() is None and sys.platform != "win32":
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.kill()
    return process.wait(timeout)


class Simulate:
    """``payprotocol simulate`` on free ports, as a context manager."""

    def __init__(self, *extra: str, step_delay: float = 0.01) -> None:
        self.argv = command(
            "simulate",
            "--tcp-port",
            "0",
            "--ws-port",
            "0",
            "--step-delay",
            str(step_delay),
            *extra,
        )
        self.process: Optional[subprocess.Popen[str]] = None
        self.tcp_url = ""
        self.ws_url = ""
        self.returncode: Optional[int] = None

    def __enter__(self) -> Simulate:
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=cli_env(),
            cwd=str(REPO),
        )
        try:
            assert self.process.stdout is not None and self.process.stderr is not None
            self.stdout = LineReader(self.process.stdout)
            self.stderr = LineReader(self.process.stderr)
            self.read_addresses()
            self.stdout.wait_for(r"Ctrl-C to stop")
        except BaseException:
            stop(self.process)
            raise
        return self

    def read_addresses(self) -> None:
        """Take what the simulator prints it serves (a subclass reads more)."""
        self.tcp_url = self.stdout.wait_for(r"tcp://127\.0\.0\.1:\d+").group(0)
        self.ws_url = self.stdout.wait_for(r"ws://127\.0\.0\.1:\d+/\S*").group(0)

    def __exit__(self, *exc_info: object) -> None:
        assert self.process is not None
        self.returncode = stop(self.process)


#: The four answers a charge without a terminal gives up front.
ANSWERS = ("--signature", "receipt", "--application", "1", "--credit-debit", "credit",
           "--dcc", "no")  # fmt: skip


class InTerminal:
    """``payprotocol ARGS`` with a pseudo-terminal as standard input (POSIX only),
    so the CLI asks its questions; ``type`` writes to that terminal. Standard
    output and standard error stay pipes (plain lines), read by ``LineReader``s."""

    def __init__(self, *args: str, env: Optional[Dict[str, str]] = None) -> None:
        self.argv = command(*args)
        self.env = env if env is not None else cli_env()
        self.process: Optional[subprocess.Popen[str]] = None
        self.returncode: Optional[int] = None

    def __enter__(self) -> InTerminal:
        import pty

        self._master, slave = pty.openpty()
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=slave,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                env=self.env,
                cwd=str(REPO),
            )
        finally:
            os.close(slave)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.out = LineReader(self.process.stdout)
        self.err = LineReader(self.process.stderr)
        threading.Thread(target=self._drain_echo, daemon=True).start()
        return self

    def _drain_echo(self) -> None:
        # The terminal echoes what is typed; read it so the echo can never fill up.
        while True:
            try:
                if not os.read(self._master, 1024):
                    return
            except OSError:
                return

    def type(self, text: str) -> None:
        os.write(self._master, text.encode())

    def wait(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        self.returncode = self.process.wait(timeout)
        return self.returncode

    def __exit__(self, *exc_info: object) -> None:
        assert self.process is not None
        self.returncode = stop(self.process)
        with contextlib.suppress(OSError):
            os.close(self._master)


def remote(sim: Simulate, *args: str, url: str = "", answers: bool = True) -> List[str]:
    """A command against ``sim``; a charge gets its answers up front (no terminal)
    unless ``answers`` is False (it then asks on the terminal of ``InTerminal``)."""
    given = list(ANSWERS) if args[0] == "charge" and answers else []
    return [args[0], "--url", url or sim.tcp_url, "--merchant", MERCHANT, *args[1:], *given]
