"""Reconnect: the policy (when to try again) and the loop that tries.

Strategy: the policy is a small frozen value with a pure ``delay(attempt)``;
the loop runs on its own thread (``payprotocol-reconnect``) and talks to the
link only through :class:`ReconnectHost`, so neither knows the other's insides.
Each attempt opens a transport, installs it, logs in again with the last
credentials, and only then reports ``CONNECTED``: a request made meanwhile
fails fast. A login the server refuses ends reconnecting (the credentials are
wrong, trying again would not help); a connection that fails during the
login is the next attempt's job. A transaction is never re-sent.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Optional, Protocol

import attrs

from .errors import ConnectionLostError, PayProtocolError, ServerError

__all__ = ["DEFAULT_RECONNECT", "ClientClosed", "ReconnectHost", "ReconnectPolicy", "run_reconnect"]

logger = logging.getLogger("payprotocol")


@attrs.frozen
class ReconnectPolicy:
    """Automatic reconnect (on by default): exponential backoff with jitter, capped.

    The n-th wait is ``min(max_delay, initial_delay * multiplier**n)``, scaled by
    a random factor in ``[1 - jitter, 1 + jitter]`` so that many POS terminals
    do not hammer a restarted PayServer in step. After reconnecting, the client
    logs in again with the last credentials. It applies to connections lost
    after :meth:`PayClient.connect` succeeded; a failing first ``connect``
    raises, so the caller knows at once; ``close()`` stops it. A lookup
    (``get_transaction``, ``recover``) made while reconnecting waits for it
    within its own timeout; every other request fails fast with
    :class:`ConnectionLostError` (use ``wait_connected``); a transaction is
    never re-sent. ``PayClient(url, reconnect=None)`` turns it off.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: Optional[int] = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (0 first): the
        exponential backoff, capped, with jitter."""
        base = min(self.max_delay, self.initial_delay * self.multiplier**attempt)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


#: The policy a :class:`PayClient` uses unless told otherwise.
DEFAULT_RECONNECT = ReconnectPolicy()


class ReconnectHost(Protocol):
    """What the reconnect loop needs from the link."""

    def reconnecting(self) -> None:
        """Report ``RECONNECTING``."""

    def gave_up(self) -> None:
        """Report ``DISCONNECTED``: no more attempts."""

    def open_and_install(self) -> object:
        """Open a transport and make it the connection; returns a handle for
        :meth:`relogin` and :meth:`confirm`. Raises :class:`ConnectionLostError`
        when the attempt failed, :class:`ClientClosed` when the client closed."""

    def relogin(self, handle: object) -> None:
        """Log in again on the new connection (raises what the login raises)."""

    def drop(self, handle: object) -> None:
        """Close the new connection (its reader ends and reports it)."""

    def confirm(self, handle: object) -> bool:
        """Report ``CONNECTED`` if ``handle`` is still the healthy connection."""


class ClientClosed(Exception):
    """The client was closed while a reconnect attempt was under way."""


def run_reconnect(policy: ReconnectPolicy, stopping: threading.Event, host: ReconnectHost) -> None:
    """Try until connected and logged in, out of attempts, or stopping."""
    attempt = 0
    while not stopping.is_set():
        host.reconnecting()
        if policy.max_attempts is not None and attempt >= policy.max_attempts:
            logger.error("giving up reconnecting after %d attempts", attempt)
            host.gave_up()
            return
        if stopping.wait(policy.delay(attempt)):
            return
        attempt += 1
        try:
            handle = host.open_and_install()
        except ConnectionLostError as exc:
            logger.info("reconnect attempt %d failed: %s", attempt, exc)
            continue
        except ClientClosed:
            return
        try:
            host.relogin(handle)
        except ServerError as exc:
            logger.error("logging in again after a reconnect failed: %s", exc)
            host.drop(handle)
            host.gave_up()
            return
        except PayProtocolError as exc:
            logger.info("reconnect attempt %d failed while logging in: %s", attempt, exc)
            host.drop(handle)  # its reader ends; the next attempt starts afresh
            continue
        if host.confirm(handle):
            return
