"""WebSocket frames from the server (RFC 6455 section 5), sans-IO.

Strategy, as :mod:`payprotocol.framing` for P3 framed TCP: ``feed(chunk)``
returns what the chunk completed, and the cap is checked as soon as a frame
header is in, before a single payload byte is buffered: a frame announcing
256 MiB is refused on its header, and a fragmented message is refused as soon
as the next fragment's header would take the running total over the cap.
Fragments are kept as a list and joined once, so the work is linear in the
bytes fed however the message is split (no repeated concatenation).

Only what a P3 client needs: text and binary messages (fragmented or not)
and the control frames close, ping and pong, which may come between two
fragments. A server must not mask its frames and no extension is negotiated
(so the RSV bits must be clear); anything else is a protocol violation and
the stream cannot be resynchronised. Frames going out are built by
websocket-client's ``ABNF`` (they must be masked).
"""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

from .errors import ProtocolViolationError

__all__ = ["BINARY", "CLOSE", "PING", "PONG", "TEXT", "WsFrameDecoder"]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")

#: What ``feed`` returns: (opcode, payload) of a whole message (TEXT/BINARY) or a control frame.
Event = Tuple[int, bytes]


class WsFrameDecoder:
    """Incremental decoder of the server's side of a WebSocket stream."""

    def __init__(self, max_message_size: int) -> None:
        if max_message_size < 1:
            raise ValueError("max_message_size must be at least 1")
        self.max_message_size = max_message_size
        self._pending = bytearray()  # bytes of frames not yet complete
        self._fragments: List[bytes] = []  # the message being reassembled
        self._fragmented = 0  # its size so far
        self._opcode: Optional[int] = None  # its opcode while one is open
        self._broken: Optional[ProtocolViolationError] = None

    @property
    def broken(self) -> Optional[ProtocolViolationError]:
        return self._broken

    @property
    def buffered(self) -> int:
        """Bytes received that are not yet part of a complete message."""
        return len(self._pending) + self._fragmented

    def feed(self, data: bytes) -> List[Event]:
        """Consume ``data``; return every message and control frame it completed.

        Events before a violation in the same chunk are returned first; the
        next ``feed`` raises (see :attr:`broken`)."""
        if self._broken is not None:
            raise ProtocolViolationError(
                f"WebSocket stream already broken: {self._broken}", broken_stream=True
            )
        events: List[Event] = []
        buffer = self._pending if self._pending else data
        if buffer is self._pending:
            self._pending += data
        view = memoryview(buffer)
        try:
            position = self._parse(view, events)
        except ProtocolViolationError:
            if events:
                return events
            raise
        finally:
            view.release()
        if buffer is self._pending:
            del self._pending[:position]
        elif position < len(data):
            self._pending = bytearray(data[position:])
        return events

    def _parse(self, view: memoryview, events: List[Event]) -> int:
        position, end = 0, len(view)
        while end - position >= 2:
            first, second = view[position], view[position + 1]
            if second & 0x80:
                self._fail("the server masked a frame (RFC 6455 5.1 forbids it)")
            if first & 0x70:
                self._fail("a frame with RSV bits set (no extension was negotiated)")
            fin, opcode, length = first & 0x80, first & 0x0F, second & 0x7F
            header = 2
            if length == 126:
                if end - position < 4:
                    break
                length, header = _U16.unpack_from(view, position + 2)[0], 4
            elif length == 127:
                if end - position < 10:
                    break
                length, header = _U64.unpack_from(view, position + 2)[0], 10
            self._check(fin, opcode, length)
            if end - position - header < length:
                break
            start = position + header
            payload = bytes(view[start : start + length])
            position = start + length
            if opcode in _CONTROL or (opcode != CONTINUATION and fin):
                events.append((opcode, payload))  # a control frame or a whole message
            else:
                if opcode != CONTINUATION:
                    self._opcode = opcode
                self._fragments.append(payload)
                self._fragmented += length
                if fin:
                    assert self._opcode is not None
                    events.append((self._opcode, b"".join(self._fragments)))
                    self._fragments, self._fragmented, self._opcode = [], 0, None
        return position

    def _check(self, fin: int, opcode: int, length: int) -> None:
        """Judge a frame on its header alone, before its payload is read."""
        if opcode in _CONTROL:
            if not fin or length > 125:
                self._fail("a control frame that is fragmented or longer than 125 bytes")
            return
        if opcode == CONTINUATION:
            if self._opcode is None:
                self._fail("a continuation frame with no message to continue")
        elif opcode in _DATA:
            if self._opcode is not None:
                self._fail("a new message before the fragmented one was finished")
        else:
            self._fail(f"a frame with the unknown opcode {opcode:#x}")
        total = self._fragmented + length
        if total > self.max_message_size:
            self._fail(
                f"message of {total} bytes or more exceeds the limit of"
                f" {self.max_message_size} bytes"
            )

    def _fail(self, reason: str) -> None:
        self._broken = ProtocolViolationError(
            f"WebSocket protocol error: {reason}", broken_stream=True
        )
        raise self._broken
