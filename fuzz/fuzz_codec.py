"""atheris target: arbitrary bytes through the frame decoder and the codec.

The only exception either may raise is ProtocolViolationError; anything else
(a crash, an IndexError, a RecursionError escaping) is a bug. Run:

    python -m pip install atheris
    python fuzz/fuzz_codec.py -runs=200000            # or -max_total_time=600
    mkdir -p /tmp/p3-corpus
    python fuzz/fuzz_codec.py /tmp/p3-corpus fuzz/seeds -max_total_time=60

libFuzzer writes new inputs into the first directory only; fuzz/seeds (valid
framed messages and what earlier runs found) stays as committed.

CI runs a short bounded session (see .ci/run).
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from payprotocol import codec
    from payprotocol.errors import ProtocolViolationError
    from payprotocol.framing import FrameDecoder


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    cap = provider.ConsumeIntInRange(1, 1 << 16)
    split = provider.ConsumeIntInRange(1, 64)
    stream = provider.ConsumeBytes(provider.remaining_bytes())
    decoder = FrameDecoder(max_frame_size=cap)
    try:
        for start in range(0, len(stream), split):
            for body in decoder.feed(stream[start : start + split]):
                try:
                    message = codec.decode_message(body)
                except ProtocolViolationError:
                    continue
                # Whatever decodes must encode again and decode to the same wire JSON.
                again = codec.decode_message(codec.encode_message(message))
                assert codec.message_to_wire(again) == codec.message_to_wire(message)
    except ProtocolViolationError:
        pass
    # The codec alone, on the raw input, as text and as bytes.
    for payload in (stream, stream.decode("utf-8", errors="replace")):
        with contextlib.suppress(ProtocolViolationError):
            codec.decode_message(payload)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
