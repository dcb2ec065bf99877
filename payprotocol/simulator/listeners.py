"""Listening sockets of the simulator, and how a peer is named in its logs.

Strategy: one helper binds a listening socket that a restarted simulator can
bind again at once (``SO_REUSEADDR``; on Windows ``SO_EXCLUSIVEADDRUSE``,
whose ``SO_REUSEADDR`` would let another process steal the port). The framed
TCP and the WebSocket listeners of :mod:`payprotocol.simulator.server` both
use it, with or without TLS.
"""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["listen", "peer_name"]


def listen(host: str, port: int) -> socket.socket:
    """A listening socket that a restart can bind again at once."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "nt":
            # Windows' SO_REUSEADDR would let another process steal the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined, unused-ignore]
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_name(address: Any) -> str:
    """``HOST:PORT`` of a peer address (or its ``str`` when it is not a pair)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
