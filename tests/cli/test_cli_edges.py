"""The command line's rough edges of issue 12, each run for real in a subprocess:
amounts and currencies, answers up front, menus, Ctrl-C during a question,
wrong schemes, port clashes, the simulator extra, help texts, logging levels,
receipts and the demo's width."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from payprotocol.cli import main
from payprotocol.errors import ServerError

from ..support.cli import (
    MERCHANT,
    SECRET,
    InTerminal,
    LineReader,
    Simulate,
    cli_env,
    closed_port,
    remote,
    run_cli,
    run_python,
    stop,
    without_simulator_extra,
)
from ..support.waiting import eventually

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")


# --- amounts and currencies (issue 12) ------------------------------------------------------


def test_amounts_are_echoed_and_sent_in_the_currencys_minor_units(sim: Simulate) -> None:
    done = run_cli(*remote(sim, "charge", "reader1", "7", "EUR", "--json"))
    assert done.returncode == 0, done.stderr
    assert "Charging 7.00 EUR" in done.stderr
    assert '"amount":7.00' in done.stdout
    yen = run_cli(*remote(sim, "charge", "reader1", "500.00", "JPY", "--json"))
    assert yen.returncode == 0, yen.stderr
    assert "Charging 500 JPY" in yen.stderr and '"amount":500,' in yen.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["charge", "reader1", "10,00", "EUR"], "decimal point, not a comma"),
        (["charge", "reader1", "-5", "EUR"], "must not carry a sign"),
        (["charge", "reader1", "ten", "EUR"], "must be a decimal number"),
        (["charge", "reader1", "10.001", "EUR"], "at most 2 decimal(s) for EUR"),
        (["charge", "reader1", "5.5", "JPY"], "at most 0 decimal(s) for JPY"),
        (["charge", "reader1", "5.00", "XYZ"], "ISO 4217 code like 'EUR'"),
        (["refund", "tx", "--amount", "1.234", "--currency", "EUR"], "at most 2 decimal"),
        (["tip-adjust", "tx", "0.5", "JPY"], "at most 0 decimal"),
    ],
)
def test_an_amount_breaking_a_rule_is_a_usage_error_saying_which(
    args: list[str], says: str
) -> None:
    url = f"tcp://127.0.0.1:{closed_port()}"  # nothing listens: the check comes first
    done = run_cli(args[0], "--url", url, "--merchant", MERCHANT, *args[1:])
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stderr
    assert "Traceback" not in done.stderr and "connection" not in done.stderr


# --- command line rough edges (issue 12) ----------------------------------------------------


def test_only_an_approved_pre_authorisation_says_to_capture_it(sim: Simulate) -> None:
    approved = run_cli(*remote(sim, "charge", "reader1", "6.00", "EUR", "--no-auto-capture"))
    assert approved.returncode == 0, approved.stderr
    assert "captured:          no (a pre-authorisation: capture it later)" in approved.stdout
    declined = run_cli(
        *remote(sim, "charge", "reader1", "100.00", "EUR", "--no-auto-capture", "--json")
    )
    assert declined.returncode == 1, declined.stderr
    identifier = json.loads(declined.stdout)["transactionIdentifier"]
    assert json.loads(declined.stdout)["captured"] is False
    shown = run_cli(*remote(sim, "lookup", identifier))
    assert shown.returncode == 0 and shown.stdout.startswith("DECLINED")
    assert "captured" not in shown.stdout


@pytest.mark.parametrize(
    "args", [["demo", "--ws", "--fast"], ["simulate", "--tcp-port", "0", "--ws-port", "0"]]
)
def test_without_the_simulator_extra_one_line_says_what_to_install(args: list[str]) -> None:
    done = run_python(without_simulator_extra(*args))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "pip install 'payprotocol[simulator]'" in done.stderr


def test_plain_demo_needs_no_extra() -> None:
    done = run_python(without_simulator_extra("demo", "--fast"), timeout=45)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Every step ended as expected" in done.stdout


@posix_only
def test_simulate_serves_framed_tcp_alone_without_the_extra() -> None:
    argv = without_simulator_extra("simulate", "--tcp-port", "0", "--ws-port", "none")
    process = subprocess.Popen(
        [*argv, "--merchant", f"{MERCHANT}:{SECRET}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert process.stdout is not None
        out = LineReader(process.stdout)
        url = out.wait_for(r"tcp://127\.0\.0\.1:\d+").group(0)
        out.wait_for("Ctrl-C to stop")
        done = run_cli("devices", "--url", url, "--merchant", MERCHANT)
        assert done.returncode == 0, done.stderr
        assert "devices/reader1" in done.stdout
        assert "WebSocket" not in out.text()
    finally:
        assert stop(process) == 0


def test_without_a_terminal_a_charge_needs_its_answers_up_front(sim: Simulate) -> None:
    args = remote(sim, "charge", "reader1", "10.00", "EUR", "--custom-identifier", "no-tty-1",
                  answers=False)  # fmt: skip
    for given in ([], ["--signature", "receipt"]):
        done = run_cli(*args, *given, timeout=10)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert "no terminal" in done.stderr
        assert "--application N" in done.stderr and "--dcc yes|no" in done.stderr
        assert ("--signature receipt|refuse" in done.stderr) == (not given)
        assert "Charging" not in done.stderr  # nothing was sent
    lookup = run_cli(*remote(sim, "lookup", "--custom-identifier", "no-tty-1"))
    assert lookup.returncode == 3 and "TRANSACTION_NOT_FOUND" in lookup.stderr


@posix_only
def test_after_ctrl_c_during_a_question_the_question_is_shown_again(sim: Simulate) -> None:
    with InTerminal(*remote(sim, "charge", "reader2", "10.00", "EUR", answers=False)) as term:
        assert term.process is not None
        term.err.wait_for(r"signed the paper receipt\? \[y/n\]")
        term.process.send_signal(signal.SIGINT)
        term.err.wait_for(r"cannot abort at this step")
        question = "signed the paper receipt? [y/n]"
        err = eventually(
            lambda: term.err.text(settle=0.05).count(question) >= 2 and term.err.text()
        )
        after = err[err.index("cannot abort at this step") :]
        assert question in after  # asked again after the Ctrl-C message
        term.type("y\n")
        assert term.wait() == 0, term.err.text()
    assert term.out.text().startswith("APPROVED")


def test_a_timeout_of_0_is_a_usage_error() -> None:
    url = f"tcp://127.0.0.1:{closed_port()}"
    done = run_cli("devices", "--url", url, "--merchant", MERCHANT, "--timeout", "0")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--timeout: seconds must be above 0, got '0'" in done.stderr
    assert "Errno" not in done.stderr


def _port_of(url: str) -> str:
    return re.findall(r":(\d+)", url)[-1]


def test_tcp_to_the_websocket_port_names_ws_quickly(sim: Simulate) -> None:
    port = _port_of(sim.ws_url)
    started = time.monotonic()
    done = run_cli("devices", "--url", f"tcp://127.0.0.1:{port}", "--merchant", MERCHANT)
    elapsed = time.monotonic() - started
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"port {port} answers HTTP: it is a WebSocket server, use ws://127.0.0.1:{port}/" in (
        done.stderr
    )
    assert elapsed < 8  # the WebSocket server's own handshake timeout is 10 s


def test_ws_to_the_framed_tcp_port_names_tcp(sim: Simulate) -> None:
    port = _port_of(sim.tcp_url)
    done = run_cli("devices", "--url", f"ws://127.0.0.1:{port}/", "--merchant", MERCHANT)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"if it is the framed TCP port, use tcp://127.0.0.1:{port}" in done.stderr


def test_the_scheme_check_stays_quiet_when_the_scheme_is_right(sim: Simulate) -> None:
    done = run_cli(*remote(sim, "devices", url=sim.ws_url))
    assert done.returncode == 0, done.stderr
    refused = run_cli(
        "devices", "--url", f"ws://127.0.0.1:{closed_port()}/", "--merchant", MERCHANT
    )
    assert refused.returncode == 3 and "framed TCP" not in refused.stderr


@pytest.mark.parametrize("which", ["tcp", "ws"])
def test_a_port_clash_says_which_port(which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        ports = ["--tcp-port", port, "--ws-port", "0"]
        if which == "ws":
            ports = ["--tcp-port", "0", "--ws-port", port]
        done = run_cli("simulate", *ports)
    assert done.returncode == 3, (done.stdout, done.stderr)
    name = "framed TCP" if which == "tcp" else "WebSocket"
    assert f"cannot listen: 127.0.0.1:{port} ({name}): Address already in use" in done.stderr
    assert ("--tcp-port" if which == "tcp" else "--ws-port") in done.stderr


# --- help, logging, faults, receipts, widths ----------------------------------------------


COMMANDS = ("demo", "simulate", "devices", "charge", "refund", "capture", "tip-adjust", "lookup")


def test_every_argument_has_help_text() -> None:
    import argparse

    from payprotocol.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, sub_name)
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(build_parser(), "payprotocol")
    assert missing == []


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_defaults_and_only_the_exit_codes_that_apply(name: str) -> None:
    done = run_cli(name, "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # argparse wraps lines
    payment_codes = "4 outcome unknown (look it up, never retry), 130 interrupted"
    assert (payment_codes in text) == (name not in ("demo", "simulate")), text
    assert "exit codes:" in text
    if name == "simulate":
        for default in ("(default: 0.4)", "(default: 3.0)", "(default: 60.0)", "(default: 4245)"):
            assert default in text
        assert "0 stopped by Ctrl-C or SIGTERM" in text
    if name == "demo":
        assert "0 every step ended as expected, 1 a step did not" in text
    if name not in ("demo", "simulate"):
        assert "(default: 30.0)" in text and "(default: TEST)" in text


def test_a_bad_fault_lists_the_kinds() -> None:
    done = run_cli("simulate", "--tcp-port", "0", "--ws-port", "0", "--fault", "bogus")
    assert done.returncode == 2
    assert "FaultPlan" not in done.stderr
    for kind in ("byte-by-byte", "drop-after=K", "malformed=huge-length", "unknown-message"):
        assert kind in done.stderr


def test_the_listed_fault_kinds_are_the_ones_the_simulator_parses() -> None:
    from payprotocol._cli_simulate import FAULT_KINDS
    from payprotocol.simulator import FaultPlan

    for kind in FAULT_KINDS:
        spec = kind.replace("=SEED", "=7").replace("[=S]", "").replace("=S", "=1")
        spec = spec.replace("=K", "=2").split("|")[0]
        assert FaultPlan.parse([spec]).active, spec


@posix_only
@pytest.mark.parametrize(
    ("flags", "connections", "messages", "library"),
    [([], True, False, False), (["-v"], True, True, False), (["-vv"], True, True, True)],
)
def test_simulate_verbosity_does_what_its_help_says(
    flags: list[str], connections: bool, messages: bool, library: bool
) -> None:
    with Simulate("--merchant", f"{MERCHANT}:{SECRET}", *flags) as simulator:
        done = run_cli(*remote(simulator, "devices", url=simulator.ws_url))
        assert done.returncode == 0, done.stderr
    err = simulator.stderr.text(settle=0.2)
    assert ("logged in as merchant" in err) == connections
    assert ("LOGIN_MERCHANT_REQUEST" in err) == messages
    assert ("DEBUG payprotocol.simulator.websockets" in err) == library
    assert SECRET not in err


def test_receipts_are_separated(sim: Simulate) -> None:
    done = run_cli(*remote(sim, "charge", "reader1", "10.00", "EUR", "--receipts"))
    assert done.returncode == 0, done.stderr
    cut = "- " * 19 + "-"
    lines = done.stdout.splitlines()
    cuts = [n for n, line in enumerate(lines) if line == cut]
    assert len(cuts) == 4, done.stdout
    merchant = "\n".join(lines[cuts[0] : cuts[1]])
    customer = "\n".join(lines[cuts[2] : cuts[3]])
    assert "Merchant Receipt" in merchant and "Customer Receipt" not in merchant
    assert "Customer Receipt" in customer


@pytest.mark.parametrize("transport", ["--tcp", "--ws"])
def test_every_demo_line_fits_80_columns(transport: str) -> None:
    done = run_cli("demo", "--fast", transport, timeout=45)
    assert done.returncode == 0, done.stdout + done.stderr
    too_wide = [line for line in done.stdout.splitlines() if len(line) > 80]
    assert too_wide == []
    assert "Summary" in done.stdout


def test_a_failed_demo_fits_80_columns_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from payprotocol import _cli_demo

    def failing_lookup(self: object, step: object, charge: object) -> None:
        raise ServerError("INTERNAL_ERROR", "a long explanation " * 8)

    monkeypatch.setattr(_cli_demo._Tour, "lookup", failing_lookup)
    assert main(["demo", "--fast"]) == 1
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if len(line) > 80] == []
    assert "a long explanation" in out and "FAIL" in out


def test_the_readme_command_line_section_covers_every_option_and_exit_code() -> None:
    import argparse

    from payprotocol.cli import build_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Command line") : readme.index("## The simulator")]
    missing = []
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        assert f"payprotocol {name}" in section
        for action in parser._actions:
            options = [o for o in action.option_strings if o not in ("-h", "--help")]
            if options and not any(f"`{o}" in section or f"[{o}" in section or f" {o} " in section
                                   for o in options):  # fmt: skip
                missing.append(f"{name} {options[-1]}")
    assert missing == []
    for code in ("`0`", "`1`", "`2`", "`3`", "`4`", "`130`"):
        assert code in section
