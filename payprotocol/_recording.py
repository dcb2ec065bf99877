"""The recording side of cassettes: ``PayClient(record=...)``.

Strategy: recording must never slow or break a payment, so the connection's
hooks (beside the wire trace in :mod:`._connection`) only put the raw payload
and a time stamp on a bounded queue; a writer thread (``payprotocol-cassette``,
started with the first event) masks, serialises and writes each line and
flushes after every batch (a POS that crashes still leaves a cassette). A
write that fails, or a writer that falls so far behind that the queue fills
up, is logged once and ends the recording; the payment goes on. The send hook
runs before the bytes leave, so a request is always on the cassette before
anything the server sent because of it. Without ``record=`` every hook is a
no-op (:data:`NULL_TAP`). The format is :mod:`payprotocol.cassette`'s.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import logging
import os
import queue
import threading
import time
from typing import IO, Any, Dict, List, Optional, Tuple, Union

from .cassette import FORMAT_NAME, FORMAT_VERSION, mask_text, url_without_credentials
from .models import SENSITIVE_WIRE_KEYS

__all__ = [
    "NULL_CONNECTION_TAP",
    "NULL_TAP",
    "CassetteRecorder",
    "ConnectionTap",
    "RecordTarget",
    "open_cassette",
]

logger = logging.getLogger("payprotocol")

RecordTarget = Union[str, "os.PathLike[str]", IO[str], IO[bytes]]

CARDHOLDER_NAME_KEY = "cardholderName"
_QUEUE_LIMIT = 10_000  # messages waiting for the writer before recording gives up
_JOIN_TIMEOUT = 2.0
_Event = Tuple[float, int, str, Any]


class ConnectionTap:
    """The hooks of one connection. This base class records nothing."""

    def sent(self, payload: Union[bytes, str]) -> None:
        """A message is about to be sent (called before the bytes leave)."""

    def received(self, payload: Union[bytes, str]) -> None:
        """A message arrived, before it is decoded."""

    def ended(self, by: str, reason: str) -> None:
        """The connection ended (``by`` ``"client"`` or ``"server"``)."""


class NullTap:
    """No recording: every connection gets a tap that does nothing."""

    def open_connection(self, peer: str) -> ConnectionTap:
        return NULL_CONNECTION_TAP

    def close(self) -> None:
        pass


NULL_CONNECTION_TAP = ConnectionTap()
NULL_TAP = NullTap()


class _RecordingConnectionTap(ConnectionTap):
    def __init__(self, recorder: CassetteRecorder, number: int) -> None:
        self._recorder = recorder
        self._number = number

    def sent(self, payload: Union[bytes, str]) -> None:
        self._recorder.put(self._number, "send", payload)

    def received(self, payload: Union[bytes, str]) -> None:
        self._recorder.put(self._number, "recv", payload)

    def ended(self, by: str, reason: str) -> None:
        self._recorder.put(self._number, "close", (by, reason))


class CassetteRecorder:
    """Writes one client's traffic to a cassette (see :mod:`payprotocol.cassette`).

    ``target`` is a path (created or truncated; closed by :meth:`close`) or an
    open text or binary file (flushed, never closed). The secrets of
    :data:`~payprotocol.models.SENSITIVE_WIRE_KEYS` are always masked, the
    cardholder name unless ``keep_cardholder_name``.
    """

    def __init__(
        self,
        target: RecordTarget,
        *,
        url: str,
        keep_cardholder_name: bool = False,
        clock: Any = time.monotonic,
    ) -> None:
        from . import __version__

        self._clock = clock
        self._start = clock()
        self._keys = frozenset(SENSITIVE_WIRE_KEYS) | (
            frozenset() if keep_cardholder_name else frozenset({CARDHOLDER_NAME_KEY})
        )
        self._learned: set[str] = set()
        self._queue: queue.Queue[Optional[_Event]] = queue.Queue(_QUEUE_LIMIT)
        self._lock = threading.Lock()
        self._connections = 0
        self._writer: Optional[threading.Thread] = None
        self._stopped = False  # no more events are taken
        self._stop_reason: Optional[str] = None  # for the "stopped" line, once
        self._write_failed = False  # the file is not written any more
        self._closed = False
        self._file: Optional[IO[Any]] = None
        self._owned = False
        self.name = str(getattr(target, "name", "<file>"))
        if isinstance(target, (str, os.PathLike)):
            self.name = os.fspath(target)
            try:
                self._file = open(self.name, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed by close()
                self._owned = True
            except OSError as exc:
                self._give_up(f"cannot open it: {exc}")
        else:
            self._file = target
        self._binary = isinstance(self._file, (io.RawIOBase, io.BufferedIOBase)) or (
            not isinstance(self._file, io.TextIOBase) and "b" in str(getattr(target, "mode", ""))
        )
        header = {
            "cassette": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "sdk": __version__,
            "transport": url.split(":", 1)[0].lower(),
            "url": url_without_credentials(url),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "masked": sorted(self._keys),
        }
        self._header: Optional[Dict[str, Any]] = header

    # --- the hooks' side (any thread; never blocks, never raises) ------------------

    def open_connection(self, peer: str) -> ConnectionTap:
        """A new connection: its number and an ``open`` event."""
        with self._lock:
            self._connections += 1
            number = self._connections
        self.put(number, "open", peer)
        return _RecordingConnectionTap(self, number)

    def put(self, connection: int, direction: str, item: Any) -> None:
        if self._stopped:
            return
        try:
            self._queue.put_nowait((self._clock() - self._start, connection, direction, item))
        except queue.Full:
            self._give_up(f"the writer fell {_QUEUE_LIMIT} messages behind")
            return
        if self._writer is None:
            self._start_writer()

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is not None or self._closed:
                return
            self._writer = threading.Thread(
                target=self._write_loop, name="payprotocol-cassette", daemon=True
            )
            self._writer.start()

    def _give_up(self, why: str) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._stop_reason = why
        logger.error("recording to %s stopped: %s (the payments go on)", self.name, why)

    # --- the writer thread ---------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not None:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            self._write_batch([event for event in batch if event is not None])
            if batch[-1] is None:
                return

    def _write_batch(self, batch: List[_Event]) -> None:
        if self._file is None or self._write_failed:
            return
        lines = [] if self._header is None else [self._header]
        self._header = None
        lines += [self._line(event) for event in batch]
        if self._stopped and self._stop_reason is not None:
            # The events queued before the stop are on the cassette; say why it ends.
            lines.append(
                {
                    "t": round(self._clock() - self._start, 6),
                    "dir": "stopped",
                    "reason": self._stop_reason,
                }
            )
            self._stop_reason = None
        try:
            text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            self._file.write(text.encode("utf-8") if self._binary else text)
            self._file.flush()
        except Exception as exc:  # a full disk, a closed file, a broken file object
            self._write_failed = True
            self._give_up(f"{type(exc).__name__}: {exc}")

    def _line(self, event: _Event) -> Dict[str, Any]:
        t, connection, direction, item = event
        line: Dict[str, Any] = {"t": round(t, 6), "conn": connection, "dir": direction}
        if direction == "open":
            line["peer"] = url_without_credentials(str(item))
        elif direction == "close":
            line["by"], line["reason"] = item
        else:
            line.update(self._message(item))
        return line

    def _message(self, payload: Union[bytes, str]) -> Dict[str, str]:
        if isinstance(payload, str):
            return {"text": mask_text(payload, self._keys, self._learned)}
        try:
            return {"text": mask_text(payload.decode("utf-8"), self._keys, self._learned)}
        except UnicodeDecodeError:
            # Not UTF-8: mask what can be read, keep the bytes themselves.
            text = mask_text(payload.decode("utf-8", "surrogateescape"), self._keys, self._learned)
            raw = text.encode("utf-8", "surrogateescape")
            return {"base64": base64.b64encode(raw).decode("ascii")}

    # --- closing --------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued (bounded), stop the writer, close an owned file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
        if writer is not None:
            try:
                self._queue.put(None, timeout=_JOIN_TIMEOUT)
            except queue.Full:
                self._give_up("the writer did not catch up before close")
            if writer is not threading.current_thread():
                writer.join(_JOIN_TIMEOUT)
        else:
            self._write_batch([])  # a client that never sent anything: just the header
        self._stopped = True
        if self._owned and self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                logger.error("closing the cassette %s failed: %s", self.name, exc)


def open_cassette(
    record: Optional[RecordTarget], *, url: str, keep_cardholder_name: bool = False
) -> Union[CassetteRecorder, NullTap]:
    """The recorder for ``PayClient(record=...)``, or :data:`NULL_TAP` without one."""
    if record is None:
        return NULL_TAP
    return CassetteRecorder(record, url=url, keep_cardholder_name=keep_cardholder_name)
