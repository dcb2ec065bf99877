"""TLS for the simulator: a throwaway certificate authority, made when asked.

Strategy: ``trustme`` (the ``simulator`` extra) makes a certificate authority
and a server certificate for ``127.0.0.1``, ``::1`` and ``localhost`` in
memory, once per :class:`SimulatorTls` (so a restarted simulator keeps the
certificate its clients already trust). The authority's certificate, and only
that (no private key), is written to a PEM file that a client trusts:
``payprotocol charge --cafile PATH`` or ``ssl.create_default_context(cafile=PATH)``.
A file we made in a temporary folder is removed with the object (or at
interpreter exit); a path the caller chose is left in place.

This module only makes contexts and files; the listeners in
:mod:`payprotocol.simulator.server` wrap their sockets with the context.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import weakref
from pathlib import Path
from typing import Union

__all__ = ["SimulatorTls"]

#: The names the server certificate is valid for (the simulator is loopback only).
CERTIFICATE_NAMES = ("127.0.0.1", "::1", "localhost")


class SimulatorTls:
    """A certificate authority and a server certificate for the simulator.

    ``ca_path`` is where the authority's certificate is written (a temporary
    file, removed with this object, when ``None``). Needs ``trustme``:
    ``pip install 'payprotocol[simulator]'``.
    """

    def __init__(self, ca_path: Union[str, Path, None] = None) -> None:
        try:
            import trustme
        except ImportError as exc:
            raise RuntimeError(
                "the TLS simulator needs the 'trustme' package: "
                "pip install 'payprotocol[simulator]'"
            ) from exc
        authority = trustme.CA(organization_name="PayProtocol simulator")
        self.ca_pem: bytes = authority.cert_pem.bytes()
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.minimum_version = ssl.TLSVersion.TLSv1_2
        authority.issue_cert(*CERTIFICATE_NAMES).configure_cert(self.server_context)
        if ca_path is None:
            folder = tempfile.mkdtemp(prefix="payprotocol-simulator-")
            weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
            self.ca_path = Path(folder) / "simulator-ca.pem"
        else:
            self.ca_path = Path(ca_path)
        self.write_ca()

    def write_ca(self) -> None:
        """(Re)write the authority's certificate to :attr:`ca_path`."""
        self.ca_path.parent.mkdir(parents=True, exist_ok=True)
        self.ca_path.write_bytes(self.ca_pem)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this authority (and checks host names)."""
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=self.ca_pem.decode("ascii"))
        return context
