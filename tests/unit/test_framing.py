"""Framed TCP (p3-protocol.md 1.1): encode_frame and the incremental FrameDecoder."""

from __future__ import annotations

import struct
import tracemalloc
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payprotocol import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, ProtocolViolationError, encode_frame

pytestmark = pytest.mark.unit

bodies_strategy = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=12)


def _header(length: int) -> bytes:
    return struct.pack(">I", length)


def _feed_all(decoder: FrameDecoder, chunks: List[bytes]) -> List[bytes]:
    out: List[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def _split(stream: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({cut % (len(stream) + 1) for cut in cuts})
    edges = [0, *points, len(stream)]
    return [stream[start:end] for start, end in zip(edges, edges[1:])]


# --- encode ------------------------------------------------------------------


def test_encode_prefixes_big_endian_length() -> None:
    assert encode_frame(b'{"a":1}') == b'\x00\x00\x00\x07{"a":1}'
    assert encode_frame(b"x" * 0x0102)[:4] == b"\x00\x00\x01\x02"


def test_encode_counts_bytes_not_characters() -> None:
    body = '{"n":"Café ☕"}'.encode()
    assert len(body) != len(body.decode())
    assert encode_frame(body)[:4] == _header(len(body))


def test_encode_refuses_empty_body() -> None:
    with pytest.raises(ValueError):
        encode_frame(b"")


# --- decode ------------------------------------------------------------------


def test_decode_single_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b'{"type":"X"}')) == [b'{"type":"X"}']
    assert decoder.buffered == 0


def test_decode_several_frames_in_one_chunk_and_a_half() -> None:
    decoder = FrameDecoder()
    stream = encode_frame(b"one") + encode_frame(b"two") + encode_frame(b"three")
    half = encode_frame(b"four")[:6]
    assert decoder.feed(stream + half) == [b"one", b"two", b"three"]
    assert decoder.buffered == 6
    assert decoder.feed(encode_frame(b"four")[6:]) == [b"four"]
    assert decoder.buffered == 0


def test_decode_header_split_over_calls() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(b"hello")
    assert decoder.feed(frame[:1]) == []
    assert decoder.feed(frame[1:3]) == []
    assert decoder.feed(frame[3:4]) == []
    assert decoder.buffered == 4  # the header is complete, no body byte yet
    assert decoder.feed(frame[4:]) == [b"hello"]


def test_empty_feed_is_harmless() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(encode_frame(b"a")[:2]) == []
    assert decoder.feed(b"") == []
    assert decoder.buffered == 2


def test_accepts_bytearray_and_memoryview() -> None:
    frame = encode_frame(b"body")
    assert FrameDecoder().feed(bytearray(frame)) == [b"body"]
    assert FrameDecoder().feed(memoryview(frame)) == [b"body"]


def test_returned_bodies_are_independent_bytes() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(b"abc")
    first = decoder.feed(frame[:5]) + decoder.feed(frame[5:])
    second = decoder.feed(encode_frame(b"xyz"))
    assert first == [b"abc"] and second == [b"xyz"]
    assert all(type(body) is bytes for body in first + second)


@given(bodies=bodies_strategy, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_of_a_stream_decodes_the_same(bodies: List[bytes], cuts: List[int]) -> None:
    stream = b"".join(encode_frame(body) for body in bodies)
    assert _feed_all(FrameDecoder(), _split(stream, cuts)) == bodies


@given(bodies=bodies_strategy)
def test_byte_by_byte_equals_whole_stream(bodies: List[bytes]) -> None:
    stream = b"".join(encode_frame(body) for body in bodies)
    byte_by_byte = _feed_all(FrameDecoder(), [stream[i : i + 1] for i in range(len(stream))])
    assert byte_by_byte == FrameDecoder().feed(stream) == bodies


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=64), max_size=20), cap=st.integers(1, 1 << 16))
def test_random_bytes_raise_nothing_but_protocol_violation(chunks: List[bytes], cap: int) -> None:
    decoder = FrameDecoder(max_frame_size=cap)
    try:
        for chunk in chunks:
            for body in decoder.feed(chunk):
                assert 1 <= len(body) <= cap
    except ProtocolViolationError:
        pass


# --- the length rules ----------------------------------------------------------


def test_zero_length_is_a_violation_before_any_body_byte() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolViolationError, match="length 0"):
        decoder.feed(_header(0) + b"trailing bytes")
    assert decoder.buffered <= 4  # at most the header; nothing after it was kept


def test_length_above_cap_is_refused_before_any_body_byte() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    with pytest.raises(ProtocolViolationError, match="exceeds the limit of 100"):
        decoder.feed(_header(101) + b"x" * 101)
    assert decoder.buffered <= 4


def test_length_equal_to_cap_is_accepted() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    assert decoder.feed(encode_frame(b"x" * 100)) == [b"x" * 100]


def test_header_alone_above_cap_is_refused_at_once() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    assert decoder.feed(_header(11)[:3]) == []
    with pytest.raises(ProtocolViolationError):
        decoder.feed(_header(11)[3:])


def test_default_cap_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_FRAME_SIZE == 1 << 20
    decoder = FrameDecoder()
    assert decoder.max_frame_size == DEFAULT_MAX_FRAME_SIZE
    with pytest.raises(ProtocolViolationError):
        decoder.feed(_header(DEFAULT_MAX_FRAME_SIZE + 1))


def test_cap_is_configurable() -> None:
    big = b"y" * (2 << 20)
    assert FrameDecoder(max_frame_size=4 << 20).feed(encode_frame(big)) == [big]
    with pytest.raises(ProtocolViolationError):
        FrameDecoder(max_frame_size=16).feed(encode_frame(b"z" * 17))


@pytest.mark.parametrize("cap", [0, -1])
def test_cap_must_be_positive(cap: int) -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_size=cap)


def test_hostile_length_is_refused_without_allocating() -> None:
    decoder = FrameDecoder()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(ProtocolViolationError):
            decoder.feed(b"\xff\xff\xff\xff" + b"x" * 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024  # a 4 GiB declaration costs (next to) nothing
    assert decoder.buffered <= 4


def test_decoder_stays_broken_after_a_violation() -> None:
    decoder = FrameDecoder(max_frame_size=8)
    with pytest.raises(ProtocolViolationError):
        decoder.feed(_header(9))
    for _ in range(2):
        with pytest.raises(ProtocolViolationError, match="already broken"):
            decoder.feed(encode_frame(b"fine"))
    with pytest.raises(ProtocolViolationError):
        decoder.feed(b"")


def test_violation_after_good_frames_in_the_same_chunk() -> None:
    # The good frames before a bad header are delivered (one may be a payment's
    # final response); the violation surfaces on the next feed and via .broken.
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"ok") + _header(0) + b"junk") == [b"ok"]
    assert decoder.broken is not None
    with pytest.raises(ProtocolViolationError):
        decoder.feed(b"")
    with pytest.raises(ProtocolViolationError):
        decoder.feed(encode_frame(b"more"))


@pytest.mark.timeout(60)
def test_big_frame_byte_by_byte_is_linear() -> None:
    # Linear work: each byte is copied once into the body buffer. A quadratic
    # decoder (re-joining the buffer per byte) would take minutes on 1 MiB.
    body = bytes(range(256)) * 4096  # exactly 1 MiB
    frame = encode_frame(body)
    decoder = FrameDecoder()
    feed = decoder.feed
    results: List[bytes] = []
    for i in range(len(frame)):
        produced = feed(frame[i : i + 1])
        if produced:
            results.extend(produced)
        elif i % 65536 == 0:
            assert decoder.buffered == i + 1
    assert results == [body]
    assert decoder.buffered == 0
