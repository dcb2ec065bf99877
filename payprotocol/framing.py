"""P3 framed TCP (p3-protocol.md 1.1): a 4-byte unsigned big-endian length,
then exactly that many bytes of UTF-8 JSON.

Sans-IO, in the manner of h11: :func:`encode_frame` makes bytes to write and
:class:`FrameDecoder` turns whatever chunks the socket returns into complete
message bodies. The decoder is a two-state machine (reading a header, reading a
body) that copies every byte it is fed at most once, so the work is linear in
the bytes fed however the stream is split. The declared length is checked
against the cap as soon as the 4 header bytes are in, before a single body byte
is buffered: a hostile ``0xFFFFFFFF`` costs nothing.
"""

from __future__ import annotations

import struct
from typing import Optional

from .errors import ProtocolViolationError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "FrameDecoder", "encode_frame"]

DEFAULT_MAX_FRAME_SIZE = 1 << 20
_HEADER = struct.Struct(">I")
_HEADER_SIZE = _HEADER.size


def encode_frame(body: bytes) -> bytes:
    """Prefix one message body with its 4-byte big-endian length."""
    if not body:
        raise ValueError("a P3 frame body must not be empty")
    if len(body) > 0xFFFFFFFF:
        raise ValueError(f"a P3 frame body cannot exceed 4 GiB, got {len(body)} bytes")
    return _HEADER.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder of a P3 framed byte stream.

    ``feed(chunk)`` returns the bodies completed by that chunk, in order. After a
    :class:`ProtocolViolationError` the stream cannot be resynchronised, so the
    decoder stays broken and every later ``feed`` raises again. Complete bodies
    that precede a bad header in the same chunk are still returned first; the
    violation is then raised by the next ``feed`` (see :attr:`broken`).
    """

    __slots__ = ("_body", "_broken", "_expected", "_header", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 1:
            raise ValueError("max_frame_size must be at least 1")
        self.max_frame_size = max_frame_size
        self._header = bytearray()
        self._body = bytearray()
        self._expected = -1  # body length once the header is complete
        self._broken: ProtocolViolationError | None = None

    @property
    def broken(self) -> Optional[ProtocolViolationError]:
        """The violation that broke the stream, or None while it is healthy."""
        return self._broken

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a complete frame (header included)."""
        header = _HEADER_SIZE if self._expected >= 0 else len(self._header)
        return header + len(self._body)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return every body completed by it."""
        if self._broken is not None:
            raise ProtocolViolationError(
                f"frame stream already broken: {self._broken}", broken_stream=True
            )
        if self._expected < 0 and not self._header and len(data) > _HEADER_SIZE:
            # Fast path: a chunk that is exactly one whole frame, nothing buffered
            # (the common case: one request, one response).
            length = _HEADER.unpack_from(data)[0]
            if length == len(data) - _HEADER_SIZE and 0 < length <= self.max_frame_size:
                return [bytes(data[_HEADER_SIZE:])]
        bodies: list[bytes] = []
        view = memoryview(data)
        position, end = 0, len(view)
        while position < end:
            if self._expected < 0:
                take = min(_HEADER_SIZE - len(self._header), end - position)
                self._header += view[position : position + take]
                position += take
                if len(self._header) < _HEADER_SIZE:
                    break
                try:
                    self._expected = self._check_length(_HEADER.unpack(self._header)[0])
                except ProtocolViolationError:
                    if bodies:
                        # Hand over the good messages first (one may be a payment's
                        # final response); the next feed raises.
                        return bodies
                    raise
                self._header.clear()
            take = min(self._expected - len(self._body), end - position)
            if take == self._expected:
                # Whole body inside this chunk: one copy, no intermediate buffer.
                bodies.append(bytes(view[position : position + take]))
            else:
                self._body += view[position : position + take]
                if len(self._body) < self._expected:
                    position += take
                    break
                bodies.append(bytes(self._body))
                self._body.clear()
            position += take
            self._expected = -1
        return bodies

    def _check_length(self, length: int) -> int:
        if length == 0:
            self._broken = ProtocolViolationError(
                "frame with length 0 (an empty message)", broken_stream=True
            )
        elif length > self.max_frame_size:
            self._broken = ProtocolViolationError(
                f"frame length {length} exceeds the limit of {self.max_frame_size} bytes",
                broken_stream=True,
            )
        else:
            return length
        raise self._broken
