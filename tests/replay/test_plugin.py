"""The pytest plugin ``payprotocol.testing`` (issue 13, item 3), run in pytest's
own ``pytester`` sandboxes: the worked example of ``docs/guides/replay.rst``
as printed, a failing strict replay, and the plugin loaded through its
installed ``pytest11`` entry point in a separate process."""

from __future__ import annotations

import re
import shutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from .sessions import APPROVED_SAMPLE, REPO

pytest_plugins = ["pytester"]

GUIDE = REPO / "docs" / "guides" / "replay.rst"


def _worked_example() -> str:
    """The code block of the guide that starts with ``# test_field_bug.py``."""
    text = GUIDE.read_text(encoding="utf-8")
    found = re.search(
        r"\.\. code-block:: python\n\n((?:   .*\n|\n)+?)(?=\S)",
        text[text.index("# test_field_bug.py") - 200 :],
    )
    assert found, "no worked example in the guide"
    return "\n".join(line[3:] for line in found.group(1).splitlines()) + "\n"


def _sandbox(pytester: pytest.Pytester, source: str, name: str = "test_field_bug.py") -> None:
    shutil.copy(APPROVED_SAMPLE, pytester.path / APPROVED_SAMPLE.name)
    (pytester.path / name).write_text(source, encoding="utf-8")


def test_the_plugin_is_registered_through_its_entry_point() -> None:
    if sys.version_info >= (3, 10):
        found = entry_points(group="pytest11")
    else:  # pragma: no cover - 3.9's entry_points() returns a dict
        found = entry_points().get("pytest11", [])
    assert any(ep.name == "payprotocol" and ep.value == "payprotocol.testing" for ep in found)


def test_the_worked_example_of_the_guide_passes(pytester: pytest.Pytester) -> None:
    example = _worked_example()
    assert "def test_field_bug(p3_replay)" in example
    _sandbox(pytester, example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


def test_a_strict_replay_whose_requests_never_came_fails_the_test(
    pytester: pytest.Pytester,
) -> None:
    _sandbox(
        pytester,
        """
import pytest
from payprotocol import PayClient

@pytest.mark.p3_cassette("approved-signature-charge.jsonl")
def test_only_logs_in(p3_replay):
    with PayClient(p3_replay.tcp_url, timeout=5) as client:
        client.login("m", "s")

@pytest.mark.p3_cassette("approved-signature-charge.jsonl", strict=False)
def test_not_strict(p3_replay):
    with PayClient(p3_replay.ws_url, timeout=5) as client:
        client.login("m", "s")
    assert p3_replay.played == 1

def test_no_marker(p3_replay):
    pass
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.re_match_lines(
        [r".*ReplayError: replay of .*2 recorded request\(s\) never came.*"]
    )
    result.stdout.re_match_lines([r".*p3_replay needs @pytest.mark.p3_cassette.*"])


def test_a_cli_recorded_cassette_replays_under_the_plugin(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    from ..support.cli import ANSWERS, MERCHANT, Simulate, run_cli

    cassette = pytester.path / "from-the-cli.jsonl"
    with Simulate() as sim:
        done = run_cli(
            "charge", "--url", sim.tcp_url, "--merchant", MERCHANT, "reader1", "10.00", "EUR",
            "--custom-identifier", "order-cli-1", "--record", str(cassette), *ANSWERS,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (pytester.path / "test_cli_cassette.py").write_text(
        """
from decimal import Decimal
import pytest
from payprotocol import PayClient

@pytest.mark.p3_cassette("from-the-cli.jsonl")
def test_replayed(p3_replay):
    with PayClient(p3_replay.ws_url, timeout=5) as client:
        reader = client.login("whoever", "whatever").devices[0]
        client.on_action(lambda a: client.submit_signature(reader, on_receipt=True))
        tx = client.charge(reader, Decimal("10.00"), "EUR", custom_identifier="order-cli-1")
    assert tx.status == "APPROVED"
""",
        encoding="utf-8",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
