"""``samples/tk_pos.py`` for real: the Tk till runs under Xvfb against the
simulator and is driven with real X input events (xdotool): an amount typed
into its entry, Return for the Charge button, Return in each of the reader's
dialogs; its result label (mirrored on standard output) says APPROVED.

Without Xvfb or xdotool the test skips, saying so; ``.ci/run`` installs them
and sets ``P3_REQUIRE_GUI_TESTS=1``, which turns that skip into a failure."""

from __future__ import annotations

import os
import queue
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from decimal import Decimal
from typing import IO, Dict, Iterator, List, Optional

import pytest

from payprotocol.simulator import Simulator, SimulatorConfig

from ..support.cli import REPO, SECRET, LineReader, cli_env, stop

pytestmark = pytest.mark.timeout(120)

STEP = 15.0  # the bound on every single wait of the drive


def gui_tools_or_skip() -> None:
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    try:
        import tkinter  # noqa: F401
    except ImportError:
        missing.append("the tkinter module")
    if missing:
        reason = f"needs {', '.join(missing)} (Debian: apt-get install xvfb xdotool python3-tk)"
        if os.environ.get("P3_REQUIRE_GUI_TESTS") == "1":
            pytest.fail(f"P3_REQUIRE_GUI_TESTS=1 but the GUI test {reason}")
        pytest.skip(reason)


@pytest.fixture
def display() -> Iterator[str]:
    """A private Xvfb server (it picks a free display number itself)."""
    gui_tools_or_skip()
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "900x640x24", "-nolisten", "tcp"],
        pass_fds=[write_end],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        number = b""
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_end], [], [], STEP)
            chunk = os.read(read_end, 16) if ready else b""
            assert chunk, "Xvfb did not report its display"
            number += chunk
        yield f":{number.decode().strip()}"
    finally:
        os.close(read_end)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


class Log:
    """The till's standard output, read in order: each wait takes the lines
    up to the first one that matches, so a match is never an older line."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: List[str] = []
        self._queue: queue.SimpleQueue[Optional[str]] = queue.SimpleQueue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next(self, pattern: str, timeout: float = STEP) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"no line matched {pattern!r}; got {self.lines}") from None
            if line is None:
                self._queue.put(None)
                raise AssertionError(f"the till ended before {pattern!r}; got {self.lines}")
            self.lines.append(line)
            if regex.search(line):
                return line


class Till:
    """The running sample and the X input driving it."""

    def __init__(self, env: Dict[str, str], url: str) -> None:
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "samples" / "tk_pos.py"), "--url", url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=str(REPO),
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.out = Log(self.process.stdout)
        self.err = LineReader(self.process.stderr)

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=STEP
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def window(self, title: str) -> str:
        """The window with exactly this title, once it is mapped."""
        return self.xdotool("search", "--sync", "--onlyvisible", "--name", f"^{title}$")

    def keys(self, title: str, *keys: str) -> None:
        """Focus the window titled ``title`` and press ``keys`` there."""
        window = self.window(title)
        self.xdotool("windowfocus", "--sync", window)
        self.xdotool("key", "--clearmodifiers", *keys)

    def type(self, title: str, text: str) -> None:
        window = self.window(title)
        self.xdotool("windowfocus", "--sync", window)
        self.xdotool("type", "--delay", "20", text)

    def result(self, pattern: str) -> str:
        """The next line the result label shows that matches ``pattern``."""
        return self.out.next(rf"^result: {pattern}")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(step_delay=0.01)) as simulator:
        yield simulator


def charge_through_the_widgets(till: Till, amount: str, dialogs: List[str]) -> str:
    # Replace the amount in the entry (it has the focus), press Return: Charge.
    till.keys("payprotocol till", "End", *["BackSpace"] * 12)
    till.type("payprotocol till", amount)
    till.keys("payprotocol till", "Return")
    till.result(rf"Charging {amount} EUR")
    for title in dialogs:  # the reader's questions, each its own dialog
        till.out.next(rf"^dialog: {title}$")
        till.keys(title, "Return")  # the default answer
    shown = till.result(r"(APPROVED|DECLINED|ABORTED|Not|Outcome).*")
    till.out.next(r"^dialog: Result$")
    return shown


def test_the_tk_till_takes_payments_through_its_widgets(display: str, sim: Simulator) -> None:
    env = cli_env(DISPLAY=display)
    env.pop("XAUTHORITY", None)
    till = Till(env, sim.tcp_url)
    try:
        till.result(r"Ready: Reader 1")
        shown = []
        for amount, dialogs in [
            ("10.01", ["Application", "Signature"]),
            ("5.02", ["Credit or debit"]),
            ("5.03", ["Currency conversion"]),
        ]:
            if shown:
                till.keys("Result", "Escape")  # close the last result
            shown.append(charge_through_the_widgets(till, amount, dialogs))
        assert shown == [
            "result: APPROVED 10.01 EUR",
            "result: APPROVED 5.02 EUR",
            "result: APPROVED 5.03 EUR",
        ]
        assert "display: Approved | 5.03 EUR" in till.out.lines  # the live display
        till.keys("Result", "Return")  # its default button: the receipt
        till.out.next(r"^dialog: Receipt$")
        till.keys("Receipt", "Escape")
        till.keys("payprotocol till", "ctrl+q")
        till.result(r"Closing")
        assert till.process.wait(STEP) == 0
    finally:
        stop(till.process)
    errors = till.err.text()
    assert "Traceback" not in errors and "Exception" not in errors, errors
    assert SECRET not in "\n".join(till.out.lines) + errors
    charges = [t for t in sim.store.transactions() if t.type == "CHARGE"]
    assert sorted((t.status, t.amount) for t in charges) == sorted(
        ("APPROVED", Decimal(a)) for a in ("10.01", "5.02", "5.03")
    )


def test_the_tk_till_aborts_and_closes_a_question_the_reader_stopped_asking(
    display: str,
) -> None:
    config = SimulatorConfig(step_delay=0.01, slow_presentation=30.0, action_timeout=0.5)
    with Simulator(config) as simulator:
        env = cli_env(DISPLAY=display)
        till = Till(env, simulator.tcp_url)
        try:
            till.result(r"Ready: Reader 1")
            # A slow card: Escape asks the reader to abort while it says it can.
            till.keys("payprotocol till", "End", *["BackSpace"] * 12)
            till.type("payprotocol till", "5.09")
            till.keys("payprotocol till", "Return")
            till.out.next(r"^display: Present card")
            till.keys("payprotocol till", "Escape")
            assert till.result(r"\S+ 5\.09 EUR") == "result: ABORTED 5.09 EUR"
            till.out.next(r"^dialog: Result$")
            till.keys("Result", "Escape")
            # A question nobody answers: the reader gives up, the till closes it.
            till.keys("payprotocol till", "End", *["BackSpace"] * 12)
            till.type("payprotocol till", "5.02")
            till.keys("payprotocol till", "Return")
            till.out.next(r"^dialog: Credit or debit$")
            till.window("Credit or debit")
            assert till.result(r"\S+ 5\.02 EUR") == "result: ABORTED 5.02 EUR"
            till.out.next(r"^dialog: Result$")
            till.window("Result")
            unanswered = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "^Credit or debit$"],
                env=env,
                capture_output=True,
                text=True,
                timeout=STEP,
            )
            assert unanswered.stdout.strip() == ""  # closed with the payment
            till.keys("Result", "Escape")
            till.keys("payprotocol till", "ctrl+q")
            assert till.process.wait(STEP) == 0
        finally:
            stop(till.process)
        errors = till.err.text()
        assert "Traceback" not in errors, errors
        statuses = sorted((t.amount, t.status) for t in simulator.store.transactions())
        assert statuses == [(Decimal("5.02"), "ABORTED"), (Decimal("5.09"), "ABORTED")]
