"""The cassette format's text edits and reader (no sockets): masking and the
identifier rewrite change only the values they must, every other character
of the message stays as it was received."""

from __future__ import annotations

import io
import json

import pytest

from payprotocol.cassette import (
    FORMAT_VERSION,
    load_cassette,
    mask_text,
    rewrite_identifiers,
    url_without_credentials,
)
from payprotocol.models import SENSITIVE_WIRE_KEYS
from payprotocol.simulator.replay import custom_identifier_of, recorded_requests

pytestmark = pytest.mark.unit

KEYS = set(SENSITIVE_WIRE_KEYS) | {"cardholderName"}


def test_masking_keeps_every_other_character() -> None:
    text = (
        '{ "type" : "LOGIN_MERCHANT_REQUEST",\n  "tag":"t-1", "loginMerchantRequest": {'
        '"merchantSecret" :  "s3cr3t\\"x", "amount": 10.00, "odd": 1E+1 } }'
    )
    masked = mask_text(text, KEYS)
    assert masked == text.replace('"s3cr3t\\"x"', '"***"')
    assert "s3cr3t" not in masked


def test_masking_follows_the_redaction_rules() -> None:
    # null stays null (as payprotocol.redact); nested and escaped keys are found;
    # an object value is masked whole; a key inside a string value is not a key.
    text = json.dumps(
        {
            "a": {"merchantSecret": None},
            "b": [{"signature": {"png": "AAAA"}}],
            "note": 'text with "merchantSecret": "no" inside',
        }
    )
    text = text.replace('"signature"', '"sign\\u0061ture"')
    masked = mask_text(text, KEYS)
    decoded = json.loads(masked)
    assert decoded["a"] == {"merchantSecret": None}
    assert decoded["b"] == [{"signature": "***"}]
    assert decoded["note"] == 'text with "merchantSecret": "no" inside'


def test_a_truncated_secret_masks_the_rest_of_the_text() -> None:
    assert mask_text('{"merchantSecret": "abc', KEYS) == '{"merchantSecret": "***"'
    assert mask_text('{"merchantSecret": [1, "abc"', KEYS) == '{"merchantSecret": "***"'


def test_rewrite_changes_only_the_envelope_tag_and_custom_identifiers() -> None:
    text = (
        '{"type":"EXECUTE_TRANSACTION_RESPONSE", "tag" : "old-2","resource":"devices/r1",'
        '"executeTransactionResponse":{"transaction":{"tag":"old-2","customIdentifier":"c-1",'
        '"amount":10.00}}}'
    )
    new = rewrite_identifiers(text, {"old-2": "live-7"}, {"c-1": "live-c"})
    assert new == text.replace('"tag" : "old-2"', '"tag" : "live-7"').replace(
        '"customIdentifier":"c-1"', '"customIdentifier":"live-c"'
    )
    assert '"transaction":{"tag":"old-2"' in new  # only the envelope's tag
    assert rewrite_identifiers(text, {}, {}) is text


def test_url_without_credentials() -> None:
    assert url_without_credentials("ws://u:p@host:80/x") == "ws://host:80/x"
    assert url_without_credentials("tcp://127.0.0.1:4245") == "tcp://127.0.0.1:4245"


def _cassette(*lines: object) -> io.StringIO:
    return io.StringIO("".join(json.dumps(line) + "\n" for line in lines))


HEADER = {"cassette": "payprotocol-p3", "version": 1, "transport": "tcp"}


def test_the_reader_refuses_a_newer_version_and_names_bad_lines() -> None:
    with pytest.raises(ValueError, match="format version 2"):
        load_cassette(_cassette({**HEADER, "version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        load_cassette(io.StringIO(json.dumps(HEADER) + "\n{nope\n"))
    with pytest.raises(ValueError, match="needs 'text' or 'base64'"):
        load_cassette(_cassette(HEADER, {"t": 0, "dir": "recv"}))


def test_the_reader_keeps_bytes_and_ignores_unknown_keys() -> None:
    cassette = load_cassette(
        _cassette(
            HEADER,
            {
                "t": 0.1,
                "conn": 1,
                "dir": "send",
                "text": '{"type":"X_REQUEST","tag":"a"}',
                "new": 1,
            },
            {"t": 0.2, "conn": 1, "dir": "recv", "base64": "/w=="},
            {"t": 0.3, "conn": 1, "dir": "close", "by": "server", "reason": "gone"},
            {"t": 0.4, "conn": 2, "dir": "something-new"},
        )
    )
    assert [e.dir for e in cassette.events] == ["send", "recv", "close", "something-new"]
    assert cassette.events[1].payload == b"\xff" and cassette.events[1].text is None
    (request,) = recorded_requests(cassette)
    assert request.type == "X_REQUEST" and request.tag == "a"
    assert [e.dir for e in request.followers] == ["recv", "close"]


def test_the_custom_identifier_of_a_request() -> None:
    execute = {
        "type": "EXECUTE_TRANSACTION_REQUEST",
        "executeTransactionRequest": {"transactionParameters": {"customIdentifier": "c"}},
    }
    lookup = {"type": "GET_TRANSACTION_REQUEST", "getTransactionRequest": {"customIdentifier": "d"}}
    assert custom_identifier_of(execute) == "c"
    assert custom_identifier_of(lookup) == "d"
    assert custom_identifier_of({"type": "LOGIN_MERCHANT_REQUEST"}) is None
