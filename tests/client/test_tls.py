"""TLS (tls:// and wss://): a PayServer's own certificate is accepted when the
user trusts it through ssl_context, and refused by default."""

from __future__ import annotations

import ssl
from typing import Iterator

import pytest
import trustme

from payprotocol import ConnectionLostError, PayClient
from payprotocol import models as m

from ..support.messages import reply, transaction
from ..support.peer import Peer, ScriptedServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(params=["tcp", "ws"])
def tls_server(request: pytest.FixtureRequest, authority: trustme.CA) -> Iterator[ScriptedServer]:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)

    def handler(peer: Peer) -> None:
        request = peer.recv()
        peer.send(
            reply(request, m.GetTransactionResponse(transaction(transaction_identifier="tls-1")))
        )

    server = ScriptedServer(request.param, handler, ssl_context=server_context)
    yield server
    server.close()


def test_trusted_certificate_is_accepted(tls_server: ScriptedServer, authority: trustme.CA) -> None:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    assert tls_server.url.startswith(("tls://", "wss://"))
    with PayClient(tls_server.url, timeout=5, ssl_context=context) as client:
        assert (
            client.get_transaction(transaction_identifier="tls-1").transaction_identifier == "tls-1"
        )
    # A lost request shows as the server's error, not only as the client's timeout.
    assert tls_server.errors.empty(), tls_server.errors.get()


def test_untrusted_certificate_is_refused(tls_server: ScriptedServer) -> None:
    client = PayClient(tls_server.url, timeout=5)  # default context: system trust only
    with pytest.raises(ConnectionLostError) as caught:
        client.connect()
    assert "certificate" in str(caught.value).lower()
    client.close()


def test_wrong_host_name_is_refused(authority: trustme.CA) -> None:
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
