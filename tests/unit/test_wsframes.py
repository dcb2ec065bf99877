"""The server side of a WebSocket stream (RFC 6455 5), sans-IO: WsFrameDecoder
judges the size cap on each frame header and on the running total of a
fragmented message, reassembles fragments around control frames, and is
indifferent to how the stream is split. Also the transports' Stream: no two
threads inside the socket (the SSL object) at once."""

from __future__ import annotations

import threading
from typing import List, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payprotocol import ProtocolViolationError
from payprotocol._wsframes import BINARY, CLOSE, PING, PONG, TEXT, WsFrameDecoder

from ..support.messages import ws_frame as frame

pytestmark = pytest.mark.unit


def feed_all(decoder: WsFrameDecoder, chunks: List[bytes]) -> List[Tuple[int, bytes]]:
    events: List[Tuple[int, bytes]] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


def test_whole_messages_of_every_length_encoding() -> None:
    decoder = WsFrameDecoder(1 << 20)
    stream = frame(b"a" * 5) + frame(b"b" * 300, BINARY) + frame(b"c" * 70000)
    assert decoder.feed(stream) == [(TEXT, b"a" * 5), (BINARY, b"b" * 300), (TEXT, b"c" * 70000)]
    assert decoder.buffered == 0


def test_a_header_announcing_256_mib_is_refused_before_any_payload() -> None:
    decoder = WsFrameDecoder(1 << 20)
    with pytest.raises(ProtocolViolationError, match="exceeds the limit of 1048576"):
        decoder.feed(frame(b"", length=256 << 20))  # the 10 header bytes only
    with pytest.raises(ProtocolViolationError, match="already broken"):
        decoder.feed(b"x")


def test_a_fragmented_message_is_refused_when_its_running_total_passes_the_cap() -> None:
    decoder = WsFrameDecoder(1000)
    assert decoder.feed(frame(b"x" * 400, fin=False)) == []
    assert decoder.feed(frame(b"x" * 400, 0x0, fin=False)) == []
    assert decoder.buffered == 800
    with pytest.raises(ProtocolViolationError, match="exceeds the limit of 1000"):
        decoder.feed(frame(b"", 0x0, fin=False, length=400))  # judged on its header


def test_fragments_around_control_frames_are_reassembled() -> None:
    decoder = WsFrameDecoder(1 << 20)
    stream = (
        frame(b"ab", fin=False)
        + frame(b"", PING)
        + frame(b"cd", 0x0, fin=False)
        + frame(b"p", PONG)
        + frame(b"ef", 0x0)
        + frame(b"\x03\xe8", CLOSE)
    )
    expected = [(PING, b""), (PONG, b"p"), (TEXT, b"abcdef"), (CLOSE, b"\x03\xe8")]
    assert decoder.feed(stream) == expected


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (bytes([0x81, 0x81]) + b"mask" + b"x", "masked"),
        (bytes([0xC1, 0x01]) + b"x", "RSV"),
        (frame(b"x", 0x0), "no message to continue"),
        (frame(b"a", fin=False) + frame(b"b"), "before the fragmented one was finished"),
        (frame(b"", 0x3), "unknown opcode"),
        (frame(b"x" * 126, PING), "control frame"),
        (frame(b"", PING, fin=False), "control frame"),
    ],
)
def test_violations(stream: bytes, reason: str) -> None:
    with pytest.raises(ProtocolViolationError, match=reason):
        WsFrameDecoder(1 << 20).feed(stream)


def test_messages_before_a_violation_come_first() -> None:
    decoder = WsFrameDecoder(100)
    assert decoder.feed(frame(b"ok") + frame(b"", length=1000)) == [(TEXT, b"ok")]
    assert decoder.broken is not None
    with pytest.raises(ProtocolViolationError):
        decoder.feed(b"")


@given(
    st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=8),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=40),
)
def test_any_split_gives_the_same_messages(payloads: List[bytes], cuts: List[int]) -> None:
    stream = b""
    for index, payload in enumerate(payloads):  # every other message in two fragments
        if index % 2 and payload:
            half = len(payload) // 2
            stream += frame(payload[:half], BINARY, fin=False) + frame(payload[half:], 0x0)
        else:
            stream += frame(payload, BINARY)
    chunks, position = [], 0
    for cut in cuts * (len(stream) // sum(cuts) + 1):
        if position >= len(stream):
            break
        chunks.append(stream[position : position + cut])
        position += cut
    decoder = WsFrameDecoder(1 << 20)
    assert feed_all(decoder, chunks) == [(BINARY, payload) for payload in payloads]
    assert decoder.buffered == 0


def test_the_stream_lets_one_thread_at_a_time_into_the_socket() -> None:
    """A writer waits while the reader is inside the socket's recv (for TLS:
    SSL_read), and goes in once it has returned."""
    from payprotocol._sockets import Stream

    inside_recv = threading.Event()
    leave_recv = threading.Event()
    send_entered = threading.Event()
    overlaps: List[str] = []

    class FakeSocket:
        reading = False

        def setblocking(self, flag: bool) -> None:
            pass

        def recv(self, size: int) -> bytes:
            self.reading = True
            inside_recv.set()
            assert leave_recv.wait(5)
            self.reading = False
            return b"data"

        def send(self, data: memoryview) -> int:
            if self.reading:
                overlaps.append("send while inside recv")
            send_entered.set()
            return len(data)

    stream = Stream(FakeSocket(), 5.0, tls=False)  # type: ignore[arg-type]
    reader = threading.Thread(target=stream.recv_within, args=(None,))
    reader.start()
    assert inside_recv.wait(5)
    writer = threading.Thread(target=stream.sendall, args=(b"hello",))
    writer.start()
    # The writer must not get in while the reader is inside: it waits on the lock.
    assert not send_entered.wait(0.3)
    leave_recv.set()
    assert send_entered.wait(5)
    reader.join(5)
    writer.join(5)
    assert overlaps == []
