"""``payprotocol simulate --tls`` run for real, charged through by the real CLI
with ``--url tls://...`` / ``wss://...`` and ``--cafile`` the CA file it
printed; without ``--cafile`` the certificate is refused."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest

from ..support.cli import ANSWERS, MERCHANT, SECRET, Simulate, run_cli

pytestmark = pytest.mark.timeout(90)


class SimulateTls(Simulate):
    """``payprotocol simulate --tls`` on free ports, with the URLs and CA it prints."""

    def __init__(self, *extra: str) -> None:
        super().__init__("--tls", "--merchant", f"{MERCHANT}:{SECRET}", *extra)

    def read_addresses(self) -> None:
        self.tls_url = self.stdout.wait_for(r"tls://127\.0\.0\.1:\d+").group(0)
        self.wss_url = self.stdout.wait_for(r"wss://127\.0\.0\.1:\d+/\S*").group(0)
        self.cafile = Path(self.stdout.wait_for(r"TLS CA: +(.+?) \(trust it").group(1))


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulateTls]:
    with SimulateTls() as simulator:
        yield simulator
    assert simulator.returncode == 0


def charge(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "charge", "--url", url, "--merchant", MERCHANT, "reader1", "40.00", "EUR", "--json",
        *ANSWERS, *extra,
    )


def test_the_ca_file_is_a_certificate_and_no_key(sim: SimulateTls) -> None:
    pem = sim.cafile.read_text("ascii")
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" not in pem


@pytest.mark.parametrize("scheme", ["tls", "wss"])
def test_charge_over_tls_with_the_printed_cafile(sim: SimulateTls, scheme: str) -> None:
    url = sim.tls_url if scheme == "tls" else sim.wss_url
    done = charge(url, "--cafile", str(sim.cafile))
    assert done.returncode == 0, (done.stdout, done.stderr)
    result = json.loads(done.stdout, parse_float=Decimal)
    assert result["status"] == "APPROVED"
    assert result["amount"] == Decimal("40.00")


@pytest.mark.parametrize("scheme", ["tls", "wss"])
def test_without_the_cafile_the_certificate_is_refused(sim: SimulateTls, scheme: str) -> None:
    url = sim.tls_url if scheme == "tls" else sim.wss_url
    done = charge(url)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "certificate" in done.stderr.lower()


def test_the_plain_scheme_on_a_tls_port_gets_no_answer(sim: SimulateTls) -> None:
    """``tcp://`` to the TLS port is not served in plain text (the server
    drops the connection when the handshake fails)."""
    done = run_cli(
        "devices", "--url", sim.tls_url.replace("tls://", "tcp://"), "--merchant", MERCHANT,
        "--timeout", "5",
    )  # fmt: skip
    assert done.returncode == 3, (done.stdout, done.stderr)


def test_write_ca_puts_the_certificate_where_asked_and_leaves_it(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "ca.pem"
    with SimulateTls("--write-ca", str(target)) as simulator:
        assert simulator.cafile == target
        done = charge(simulator.tls_url, "--cafile", str(target))
        assert done.returncode == 0, (done.stdout, done.stderr)
    assert simulator.returncode == 0
    assert target.read_text("ascii").startswith("-----BEGIN CERTIFICATE-----")


def test_the_temporary_ca_file_is_removed_at_exit() -> None:
    with SimulateTls() as simulator:
        cafile = simulator.cafile
        assert cafile.exists()
    assert simulator.returncode == 0
    assert not cafile.exists()


def test_write_ca_without_tls_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("simulate", "--tcp-port", "0", "--write-ca", str(tmp_path / "ca.pem"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--tls" in done.stderr
    assert not (tmp_path / "ca.pem").exists()
