"""The ``payprotocol`` command line, run for real in subprocesses.

Every command runs as ``python -m payprotocol ...`` against a ``payprotocol
simulate`` subprocess (or nothing, for refused connections), with a timeout,
and is checked for its output and its documented exit code.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import trustme

from payprotocol.cli import main

from ..support.cli import (
    ANSWERS,
    MERCHANT,
    SECRET,
    InTerminal,
    LineReader,
    Simulate,
    cli_env,
    closed_port,
    command,
    remote,
    run_cli,
    stop,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")


def charge_json(sim: Simulate, amount: str, *extra: str, input: str = "") -> dict[str, object]:
    done = run_cli(*remote(sim, "charge", "reader1", amount, "EUR", "--json", *extra), input=input)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, object] = json.loads(done.stdout, parse_float=Decimal)
    return parsed


# --- demo ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["--tcp", "--ws"])
def test_demo_runs_every_step(transport: str) -> None:
    done = run_cli("demo", "--fast", transport, timeout=45)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Every step ended as expected" in out
    assert "UNEXPECTED" not in out
    for expected in ("APPROVED", "DECLINED", "ABORTED", "found APPROVED"):
        assert expected in out
    # The reader's lines, shown as plain lines on a pipe.
    assert "Present card | 10.00 EUR" in out
    assert 'answering "sign on receipt"' in out
    # Receipts for a 40-column printer, between cut lines.
    assert out.count("- " * 19 + "-") == 6  # merchant receipt, two customer receipts
    receipt_lines = _receipt_lines(out)
    assert receipt_lines and max(len(line) for line in receipt_lines) <= 40
    assert "Merchant Receipt" in out and "Customer Receipt" in out
    assert "Cardholder signature" in out  # the 10.00 charge was signed on paper
    assert "5.00" in out and "Summary" in out


def _receipt_lines(out: str) -> list[str]:
    lines, inside = [], False
    for line in out.splitlines():
        if line == "- " * 19 + "-":
            inside = not inside
        elif inside:
            lines.append(line)
    return lines


def test_demo_is_fast_enough_and_secret_free() -> None:
    done = run_cli("demo", "--fast", timeout=45)
    assert done.returncode == 0
    assert "demo-secret" not in done.stdout + done.stderr


# --- simulate -----------------------------------------------------------------------


@posix_only
def test_simulate_prints_real_ports_and_stops_cleanly_on_ctrl_c() -> None:
    with Simulate("--merchant", f"{MERCHANT}:{SECRET}", "-v") as simulator:
        assert not simulator.tcp_url.endswith(":0")
        assert not simulator.ws_url.startswith("ws://127.0.0.1:0/")
        done = run_cli(*remote(simulator, "devices"))
        assert done.returncode == 0, done.stderr
        assert "devices/reader1" in done.stdout
    assert simulator.returncode == 0
    out = simulator.stdout.text(settle=0.2)
    err = simulator.stderr.text(settle=0.2)
    assert "Stopping the simulator" in out
    assert "LOGIN_MERCHANT_REQUEST" in err  # every message is logged (-v) ...
    assert SECRET not in out + err  # ... with the secret redacted


def test_simulate_rejects_a_bad_fault_spec() -> None:
    done = run_cli("simulate", "--tcp-port", "0", "--ws-port", "0", "--fault", "explode")
    assert done.returncode == 2
    assert "explode" in done.stderr


# --- charge ---------------------------------------------------------------------------


@posix_only
def test_charge_signature_answered_on_the_terminal(sim: Simulate) -> None:
    with InTerminal(*remote(sim, "charge", "reader1", "10.00", "EUR", answers=False)) as term:
        term.err.wait_for(r"Has the shopper signed the paper receipt\? \[y/n\]")
        term.type("y\n")
        assert term.wait() == 0, term.err.text()
    err = term.err.text(settle=0.2)
    assert "asks for the shopper's signature" in err
    assert "Present card | 10.00 EUR" in err  # the live status, on stderr
    assert term.out.text().startswith("APPROVED: CHARGE of 10.00 EUR")


@posix_only
def test_a_menu_says_why_it_asks_again_over_websocket(sim: Simulate) -> None:
    args = remote(sim, "charge", "reader1", "5.01", "EUR", "--json", url=sim.ws_url, answers=False)
    with InTerminal(*args) as term:
        term.err.wait_for(r"Which one\? \[1-2\]")
        term.type("7\n")
        term.err.wait_for(r"There is no application '7': type a number from 1 to 2")
        term.type("2\n")
        assert term.wait() == 0, term.err.text()
    err = term.err.text(settle=0.2)
    assert "VISA ELECTRON" in err
    assert err.count("Which one? [1-2]") == 2  # asked again after saying why
    transaction = json.loads(term.out.text(), parse_float=Decimal)
    assert transaction["status"] == "APPROVED"
    assert transaction["amount"] == Decimal("5.01")


@posix_only
@pytest.mark.parametrize(
    ("amount", "question", "wrong", "why", "right"),
    [
        ("10.00", r"signed the paper receipt", "maybe", "Please answer y (signed) or n", "y"),
        ("6.02", r"Credit or debit", "x", "Please answer c (credit) or d (debit), not 'x'", "d"),
        ("6.03", r"converted currency", "", "Please answer y (convert) or n", "n"),
    ],
)
def test_every_question_says_why_it_asks_again(
    sim: Simulate, amount: str, question: str, wrong: str, why: str, right: str
) -> None:
    with InTerminal(*remote(sim, "charge", "reader1", amount, "EUR", answers=False)) as term:
        term.err.wait_for(question)
        term.type(wrong + "\n")
        term.err.wait_for(re.escape(why))
        term.type(right + "\n")
        assert term.wait() == 0, term.err.text()


def test_credit_debit_and_dcc_answered_up_front(sim: Simulate) -> None:
    answers = ["--signature", "refuse", "--application", "2", "--credit-debit", "debit"]
    debit = run_cli(
        *remote(sim, "charge", "reader1", "6.02", "EUR", answers=False), *answers, "--dcc", "yes"
    )
    assert debit.returncode == 0, debit.stderr
    assert "Answering DEBIT (--credit-debit debit)" in debit.stderr
    done = run_cli(*remote(sim, "charge", "reader1", "6.02", "EUR"))
    assert done.returncode == 0, done.stderr
    assert "Answering CREDIT (--credit-debit credit)" in done.stderr
    dcc = run_cli(*remote(sim, "charge", "reader1", "6.03", "EUR"))
    assert dcc.returncode == 0, dcc.stderr
    assert "USD" in dcc.stderr and "Answering no (--dcc no)" in dcc.stderr
    application = run_cli(*remote(sim, "charge", "reader1", "5.01", "EUR"))
    assert application.returncode == 0, application.stderr
    assert "Choosing VISA CREDIT (--application 1)" in application.stderr
    signed = run_cli(*remote(sim, "charge", "reader1", "10.00", "EUR"))
    assert signed.returncode == 0, signed.stderr
    assert "Answering from --signature receipt" in signed.stderr


def test_charge_json_keeps_amounts_exact(sim: Simulate) -> None:
    done = run_cli(
        *remote(sim, "charge", "reader1", "40.00", "EUR", "--json", "--custom-identifier", "cli-1")
    )
    assert done.returncode == 0, done.stderr
    assert '"amount":40.00' in done.stdout  # written as typed, not 40.0
    transaction = json.loads(done.stdout, parse_float=Decimal)
    assert transaction["amount"] == Decimal("40.00")
    assert str(transaction["amount"]) == "40.00"
    assert transaction["customIdentifier"] == "cli-1"
    assert transaction["status"] == "APPROVED"


def test_declined_charge_exits_1(sim: Simulate) -> None:
    done = run_cli(*remote(sim, "charge", "reader1", "100.00", "EUR"))
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("DECLINED")


@posix_only
def test_ctrl_c_aborts_while_abortable_and_waits_for_the_result(sim: Simulate) -> None:
    process = subprocess.Popen(
        command(*remote(sim, "charge", "reader2", "20.09", "EUR")),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        out, err = LineReader(process.stdout), LineReader(process.stderr)
        err.wait_for(r"Present card .*Ctrl-C to abort")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    finally:
        stop(process)
    assert process.returncode == 1
    assert out.text(settle=0.2).startswith("ABORTED")
    assert "Abort accepted" in err.text(settle=0.2)


@posix_only
def test_ctrl_c_aborts_even_when_started_with_sigint_ignored(sim: Simulate) -> None:
    # A background job started from a script inherits SIGINT as ignored.
    process = subprocess.Popen(
        command(*remote(sim, "charge", "reader2", "10.09", "EUR")),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        out, err = LineReader(process.stdout), LineReader(process.stderr)
        err.wait_for(r"Present card .*Ctrl-C to abort")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    finally:
        stop(process)
    assert process.returncode == 1, err.text(settle=0.2)
    assert out.text(settle=0.2).startswith("ABORTED")
    assert "Abort accepted" in err.text(settle=0.2)


def test_main_puts_the_sigint_handler_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not expected to run")

    monkeypatch.setenv("PAYPROTOCOL_MERCHANT_SECRET", SECRET)
    before = signal.signal(signal.SIGINT, mine)
    try:  # a usage error from inside the command's handler (an unsupported URL)
        assert main(["devices", "--url", "http://127.0.0.1:1", "--merchant", MERCHANT]) == 2
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, before)


# --- refund, capture, tip-adjust, lookup ----------------------------------------------


def test_refund_capture_tip_adjust_and_lookup(sim: Simulate) -> None:
    charge = charge_json(sim, "5.00")
    identifier = str(charge["transactionIdentifier"])

    refund = run_cli(
        *remote(sim, "refund", identifier, "--amount", "2.50", "--currency", "EUR", "--json")
    )
    assert refund.returncode == 0, refund.stderr
    refunded = json.loads(refund.stdout, parse_float=Decimal)
    assert (refunded["type"], refunded["amount"]) == ("REFUND", Decimal("2.50"))
    assert refunded["referencedTransactionIdentifier"] == identifier

    tipped = str(charge_json(sim, "8.00")["transactionIdentifier"])
    tip = run_cli(*remote(sim, "tip-adjust", tipped, "1.00", "EUR"))
    assert tip.returncode == 0, tip.stderr
    assert "TIP_ADJUST" in tip.stdout

    pre_auth = charge_json(sim, "6.00", "--no-auto-capture")
    assert pre_auth["captured"] is False
    capture = run_cli(*remote(sim, "capture", str(pre_auth["transactionIdentifier"])))
    assert capture.returncode == 0, capture.stderr
    assert capture.stdout.startswith("APPROVED: CAPTURE of 6.00 EUR")

    by_id = run_cli(*remote(sim, "lookup", identifier))
    assert by_id.returncode == 0 and identifier in by_id.stdout
    by_custom = run_cli(
        *remote(sim, "lookup", "--custom-identifier", str(charge["customIdentifier"]), "--json")
    )
    assert by_custom.returncode == 0
    assert json.loads(by_custom.stdout)["transactionIdentifier"] == identifier


def test_lookup_of_an_unknown_transaction_is_a_server_error(sim: Simulate) -> None:
    done = run_cli(*remote(sim, "lookup", "0" * 32))
    assert done.returncode == 3
    assert "TRANSACTION_NOT_FOUND" in done.stderr


def test_refund_of_a_declined_charge_is_refused(sim: Simulate) -> None:
    declined = run_cli(*remote(sim, "charge", "reader1", "100.00", "EUR", "--json"))
    identifier = json.loads(declined.stdout)["transactionIdentifier"]
    done = run_cli(*remote(sim, "refund", identifier))
    assert done.returncode == 3
    assert "INVALID_REQUEST" in done.stderr


# --- exit codes: usage, connection, server, outcome unknown ------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["charge"],
        ["charge", "reader1", "10,00", "EUR"],
        ["charge", "reader1", "ten", "EUR"],
        ["charge", "reader1", "-5", "EUR"],
        ["charge", "reader1", "0.00", "EUR"],
        ["charge", "reader1", "1e3", "EUR"],
        ["charge", "reader1", "10.00", "EURO"],
        ["refund", "abc", "--amount", "5.00"],
        ["lookup"],
        ["lookup", "abc", "--custom-identifier", "x"],
        ["frobnicate"],
        ["charge", "reader1", "10.00", "EUR", "--provider-mode", "SOMETIMES"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    url = f"tcp://127.0.0.1:{closed_port()}"
    extra = ["--url", url, "--merchant", MERCHANT] if len(args) > 1 else []
    done = run_cli(*args[:1], *extra, *args[1:])
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip()


def test_usage_errors_in_process() -> None:
    assert main(["charge", "reader1", "12.3.4", "EUR", "--merchant", "m"]) == 2
    assert main(["--help"]) == 0


def test_no_merchant_or_unknown_device_or_bad_url_exit_2(sim: Simulate) -> None:
    no_merchant = run_cli("devices", "--url", sim.tcp_url)
    assert no_merchant.returncode == 2 and "--merchant" in no_merchant.stderr
    unknown = run_cli(*remote(sim, "charge", "reader9", "10.00", "EUR"))
    assert unknown.returncode == 2 and "devices/reader1" in unknown.stderr
    bad_url = run_cli("devices", "--url", "http://127.0.0.1:1", "--merchant", MERCHANT)
    assert bad_url.returncode == 2


def test_a_bad_url_error_masks_its_password() -> None:
    for url in ("http://user:hunter2@127.0.0.1:1", "tcp://user:hunter2@127.0.0.1:1"):
        done = run_cli("devices", "--url", url, "--merchant", MERCHANT)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "user:***@127.0.0.1:1" in done.stderr
        assert "hunter2" not in done.stdout + done.stderr


def test_cafile_with_a_plain_text_url_is_a_usage_error(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(cafile))
    url = f"tcp://127.0.0.1:{closed_port()}"
    done = run_cli("devices", "--url", url, "--merchant", MERCHANT, "--cafile", str(cafile))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "tls://" in done.stderr


@posix_only  # getpass reads the Windows console, not standard input
def test_no_secret_anywhere_is_a_usage_error(sim: Simulate) -> None:
    env = cli_env()
    del env["PAYPROTOCOL_MERCHANT_SECRET"]
    done = run_cli(*remote(sim, "devices"), env=env)
    assert done.returncode == 2
    assert "PAYPROTOCOL_MERCHANT_SECRET" in done.stderr
    # No terminal: no GetPassWarning and no "input may be echoed" lines before it.
    assert "Warning" not in done.stderr and done.stderr.count("\n") == 1, done.stderr


@posix_only
def test_secret_from_the_hidden_prompt(sim: Simulate) -> None:
    env = cli_env()
    del env["PAYPROTOCOL_MERCHANT_SECRET"]
    done = run_cli(*remote(sim, "devices"), input=SECRET + "\n", env=env)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize("scheme", ["tcp", "ws"])
def test_connection_refused_exits_3(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{closed_port()}" + ("/" if scheme == "ws" else "")
    done = run_cli(
        "charge", "--url", url, "--merchant", MERCHANT, "reader1", "10.00", "EUR", *ANSWERS
    )
    assert done.returncode == 3
    assert "connection error" in done.stderr


def test_wrong_secret_exits_3_and_is_never_shown(sim: Simulate) -> None:
    env = cli_env(PAYPROTOCOL_MERCHANT_SECRET="wrong-" + SECRET)
    done = run_cli(*remote(sim, "devices"), env=env)
    assert done.returncode == 3
    assert "AUTHENTICATION_FAILED" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_secret_never_appears_even_with_debug_logging(sim: Simulate) -> None:
    done = run_cli(*remote(sim, "charge", "reader1", "10.00", "EUR", "-vv"))
    assert done.returncode == 0, done.stderr
    assert "LOGIN_MERCHANT_REQUEST" in done.stderr or "login" in done.stderr.lower()
    assert SECRET not in done.stdout + done.stderr
    assert SECRET not in sim.stdout.text() + sim.stderr.text(settle=0.2)


def test_outcome_unknown_exits_4_and_says_to_look_it_up() -> None:
    with Simulate("--fault", "drop-after=3") as simulator:
        done = run_cli(
            *remote(simulator, "charge", "reader1", "7.00", "EUR", "--custom-identifier", "lost-1")
        )
        assert done.returncode == 4, done.stderr
        assert "OUTCOME UNKNOWN" in done.stderr
        assert "--custom-identifier lost-1" in done.stderr
        assert "Do NOT charge again" in done.stderr
        # The advice works: the lookup finds the payment (a lookup is not a transaction,
        # so the fault does not drop it). The simulator finishes the payment meanwhile.
        found = None
        for _ in range(20):
            found = run_cli(*remote(simulator, "lookup", "--custom-identifier", "lost-1", "--json"))
            if found.returncode == 0 and json.loads(found.stdout)["status"] != "PENDING":
                break
        assert found is not None and found.returncode == 0, found and found.stderr
        assert json.loads(found.stdout)["status"] == "APPROVED"


def test_help_lists_the_commands_and_exit_codes() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for name in ("demo", "simulate", "devices", "charge", "refund", "capture", "tip-adjust"):
        assert name in done.stdout
    assert re.search(r"4 outcome\s+unknown", done.stdout)


@posix_only
def test_ctrl_c_while_not_abortable_waits_and_only_a_third_press_gives_up(sim: Simulate) -> None:
    args = remote(sim, "charge", "reader2", "10.00", "EUR", "--custom-identifier", "sig-1",
                  answers=False)  # fmt: skip
    with InTerminal(*args) as term:  # never answers the signature question
        process = term.process
        assert process is not None
        out, err = term.out, term.err
        err.wait_for(r"signed the paper receipt\? \[y/n\]")
        process.send_signal(signal.SIGINT)
        err.wait_for(r"cannot abort at this step.*2 more")
        assert process.poll() is None  # still waiting for the result
        process.send_signal(signal.SIGINT)
        err.wait_for(r"1 more")
        process.send_signal(signal.SIGINT)
        assert term.wait() == 4
    text = err.text(settle=0.2)
    assert "OUTCOME UNKNOWN" in text and "--custom-identifier sig-1" in text
    assert out.text() == ""


def test_demo_names_the_step_that_went_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from payprotocol import _cli_demo

    def wrong_lookup(self: object, step: object, charge: object) -> None:
        step.got = "another transaction"  # type: ignore[attr-defined]

    monkeypatch.setattr(_cli_demo._Tour, "lookup", wrong_lookup)
    assert main(["demo", "--fast"]) == 1
    out = capsys.readouterr().out
    assert "demo FAILED: step 7 (Look up the 10.00 charge)" in out
