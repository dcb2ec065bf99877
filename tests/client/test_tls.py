"""TLS (tls:// and wss://): a PayServer's own certificate is accepted when the
user trusts it through ssl_context, and refused by default. The server is the
simulator over TLS (``Simulator(tls=True)``); a scripted server with a
certificate for another name checks the host-name rule."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest
import trustme

from payprotocol import ConnectionLostError, PayClient, TransactionStatus
from payprotocol.simulator import Simulator, SimulatorTls

from ..support.peer import ScriptedServer
from ..support.waiting import eventually
from .conftest import FAST

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def tls_simulator() -> Iterator[Simulator]:
    with Simulator(FAST, tls=True) as sim:
        yield sim


@pytest.fixture(params=["tls", "wss"])
def tls_url(request: pytest.FixtureRequest, tls_simulator: Simulator) -> str:
    return tls_simulator.tls_url if request.param == "tls" else tls_simulator.wss_url


def test_trusted_certificate_is_accepted(tls_simulator: Simulator, tls_url: str) -> None:
    context = ssl.create_default_context(cafile=str(tls_simulator.ca_path))
    with PayClient(tls_url, timeout=5, ssl_context=context) as client:
        login = client.login("merchant-1", "secret-1")
        tx = client.charge(login.devices[0], Decimal("40.00"), "EUR")
        assert tx.status == TransactionStatus.APPROVED
        found = client.get_transaction(transaction_identifier=tx.transaction_identifier)
        assert found.amount == Decimal("40.00")


def test_untrusted_certificate_is_refused(tls_url: str) -> None:
    client = PayClient(tls_url, timeout=5)  # default context: system trust only
    with pytest.raises(ConnectionLostError) as caught:
        client.connect()
    assert "certificate" in str(caught.value).lower()
    client.close()


def test_another_authority_is_refused(tls_url: str) -> None:
    context = ssl.create_default_context()
    trustme.CA().configure_trust(context)  # trusted, but not the simulator's
    with pytest.raises(ConnectionLostError) as caught:
        PayClient(tls_url, timeout=5, ssl_context=context).connect()
    assert "certificate" in str(caught.value).lower()


def test_urls_and_the_ca_file(tls_simulator: Simulator) -> None:
    assert tls_simulator.tls_url == f"tls://127.0.0.1:{tls_simulator.tcp_port}"
    assert tls_simulator.wss_url == f"wss://127.0.0.1:{tls_simulator.ws_port}/"
    # The plain names give the scheme the listeners speak: a copied tcp_url works.
    assert tls_simulator.tcp_url == tls_simulator.tls_url
    assert tls_simulator.ws_url == tls_simulator.wss_url
    pem = tls_simulator.ca_path.read_text("ascii")
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" not in pem


def test_localhost_is_a_valid_name(tls_simulator: Simulator) -> None:
    url = f"tls://localhost:{tls_simulator.tcp_port}"
    with PayClient(url, timeout=5, ssl_context=tls_simulator.client_ssl_context()) as client:
        assert client.login("merchant-1", "secret-1").devices


def test_a_failed_handshake_ends_that_connection_only(tls_simulator: Simulator) -> None:
    with socket.create_connection(("127.0.0.1", tls_simulator.tcp_port), timeout=5) as plain:
        plain.sendall(b"\x00\x00\x00\x02{}")  # a P3 frame where a ClientHello belongs
        received = b""
        while True:  # the server answers with a TLS alert (or nothing), then closes
            chunk = plain.recv(4096)
            if not chunk:
                break
            received += chunk
        assert not received or received[0] == 0x15  # 0x15: a TLS alert record
    with PayClient(
        tls_simulator.tls_url, timeout=5, ssl_context=tls_simulator.client_ssl_context()
    ) as client:
        assert client.login("merchant-1", "secret-1").devices


def test_a_restart_keeps_the_certificate_and_the_ca_file() -> None:
    with Simulator(FAST, tls=True) as sim:
        path, pem = sim.ca_path, sim.ca_path.read_bytes()
        context = ssl.create_default_context(cafile=str(path))
        sim.restart()
        assert sim.ca_path == path and path.read_bytes() == pem
        with PayClient(sim.tls_url, timeout=5, ssl_context=context) as client:
            assert client.login("merchant-1", "secret-1").devices


def test_stop_is_prompt_with_a_silent_peer_in_the_handshake(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="payprotocol.simulator")
    sim = Simulator(FAST, tls=True).start()
    silent = socket.create_connection(("127.0.0.1", sim.tcp_port), timeout=5)
    try:
        name = "tls {}:{}: connected".format(*silent.getsockname()[:2])
        eventually(lambda: name in caplog.text)  # its thread is in the handshake now
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 3.0  # far below the 10 s handshake bound
    finally:
        silent.close()


def test_the_chosen_ca_path_is_written_and_left(tmp_path: Path) -> None:
    target = tmp_path / "ca" / "simulator.pem"
    sim = Simulator(FAST, tls=True, ca_path=target)
    assert sim.tls is not None
    assert sim.ca_path == target and target.read_bytes() == sim.tls.ca_pem
    del sim
    assert target.exists()


def test_the_temporary_ca_file_goes_with_its_owner() -> None:
    tls = SimulatorTls()
    path = tls.ca_path
    assert path.exists()
    del tls
    assert not path.exists()


def test_tls_names_on_a_plain_simulator_say_so() -> None:
    sim = Simulator(FAST)
    for name in ("tls_url", "wss_url", "ca_path"):
        with pytest.raises(RuntimeError, match="no TLS"):
            getattr(sim, name)
    with pytest.raises(ValueError, match="tls=True"):
        Simulator(FAST, ca_path="ca.pem")


def test_wrong_host_name_is_refused() -> None:
    authority = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("payserver.invalid").configure_cert(server_context)
    context = ssl.create_default_context()
    authority.configure_trust(context)  # the authority is trusted, the name is wrong
    with (
        ScriptedServer("tcp", lambda peer: None, ssl_context=server_context) as server,
        pytest.raises(ConnectionLostError) as caught,
    ):
        PayClient(server.url, timeout=5, ssl_context=context).connect()
    assert "hostname" in str(caught.value).lower() or "ip address" in str(caught.value).lower()
