"""Cassettes: P3 traffic recorded by ``PayClient(record=...)``, replayed by
:class:`payprotocol.simulator.Replay`.

Strategy: a cassette keeps every message *as text*, exactly as it went over
the wire, so a replay reproduces what a real PayServer really sent (odd
spacing, unknown fields, values the tolerant reader had to fall back on),
not what this SDK made of it. The only edits are done on the text itself, by
a small scanner that finds JSON string tokens and object keys without
re-serialising anything: masking (secret values become ``"***"``) when
recording, and the client-chosen identifiers (the envelope's ``tag``, every
``customIdentifier``) when replaying. Everything else stays byte for byte.

Format, version 1 (:data:`FORMAT_VERSION`): JSON Lines in UTF-8, one object
per line.

* Line 1, the header: ``{"cassette": "payprotocol-p3", "version": 1,
  "sdk": "0.1.0", "transport": "tcp", "url": "tcp://127.0.0.1:4245",
  "started": "2026-12-02T17:20:00.123456+00:00", "masked": [...]}``. ``url``
  never holds credentials; ``masked`` lists the wire keys whose values were
  replaced by ``"***"``.
* Then one event per line, in the order they happened, each with ``t`` (seconds
  since the recording started), ``conn`` (the connection's number, from 1: a
  reconnect opens the next one) and ``dir``:

  - ``"open"``: a connection was opened (``peer``: the URL, no credentials);
  - ``"send"``: a message the client sent, ``"recv"``: one it received, with
    ``text`` (the message's text) or, for a payload that is not UTF-8,
    ``base64`` (its bytes);
  - ``"close"``: the connection ended, ``by`` ``"client"`` (it closed it) or
    ``"server"`` (the peer hung up or broke the stream), and ``reason``;
  - ``"stopped"``: the recording stopped early (``reason``); the lines before
    it are complete.

A reader ignores keys it does not know and refuses a newer ``version``.
This module does no I/O beyond reading a cassette file.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import IO, Any, Callable, Collection, Dict, List, Mapping, Optional, Union
from urllib.parse import urlsplit

import attrs

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MASK",
    "Cassette",
    "CassetteEvent",
    "CassetteSource",
    "load_cassette",
    "mask_text",
    "rewrite_identifiers",
    "url_without_credentials",
]

#: The header's ``cassette`` value.
FORMAT_NAME = "payprotocol-p3"
#: The version this SDK writes, and the newest it reads.
FORMAT_VERSION = 1
#: What a masked value becomes.
MASK = "***"

CassetteSource = Union[str, "os.PathLike[str]", IO[str]]

_STRUCTURE = re.compile(r'["{}\[\]]')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SPACE = re.compile(r"[ \t\r\n]*")
_DECODER = json.JSONDecoder()
_MASKED = json.dumps(MASK)


def url_without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` part removed (for the header)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def _string_value(token: str) -> Optional[str]:
    if "\\" not in token:
        return token[1:-1]
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


# wants(key, depth) says whether the value after ``key`` (an object key at
# nesting ``depth``, 1 = the envelope) is of interest; replace(key, value)
# returns its new JSON text or None to keep it. A value that cannot be decoded
# is passed as ``_UNREADABLE``.
_UNREADABLE = object()
_Wants = Callable[[str, int], bool]
_Replace = Callable[[str, Any], Optional[str]]


def _edit(
    text: str,
    wants: _Wants,
    replace: _Replace,
    replace_string: Optional[Callable[[str], Optional[str]]] = None,
) -> str:
    """``text`` with the chosen values replaced, every other character kept."""
    pieces: List[str] = []
    last = pos = depth = 0
    end_of_text = len(text)
    while True:
        found = _STRUCTURE.search(text, pos)
        if found is None:
            break
        start = found.start()
        char = text[start]
        if char != '"':
            depth += 1 if char in "{[" else -1
            pos = start + 1
            continue
        string = _STRING.match(text, start)
        if string is None:  # an unterminated string: nothing after it can be read
            break
        end = string.end()
        after = _SPACE.match(text, end).end()  # type: ignore[union-attr]
        token = text[start:end]
        if after < end_of_text and text[after] == ":":
            key = _string_value(token)
            if key is not None and wants(key, depth):
                value_start = _SPACE.match(text, after + 1).end()  # type: ignore[union-attr]
                try:
                    value, value_end = _DECODER.raw_decode(text, value_start)
                except ValueError:
                    value, value_end = _UNREADABLE, end_of_text
                new = replace(key, value)
                if new is not None:
                    pieces += [text[last:value_start], new]
                    last = value_end
                pos = value_end if new is not None or value is _UNREADABLE else after + 1
                continue
            pos = after + 1
            continue
        if replace_string is not None:
            new = replace_string(token)
            if new is not None:
                pieces += [text[last:start], new]
                last = end
        pos = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def mask_text(text: str, keys: Collection[str], learned: Optional[set[str]] = None) -> str:
    """``text`` with the value of every key in ``keys`` (at any depth) replaced by
    ``"***"`` (``null`` stays ``null``, as in :func:`payprotocol.redact`), and,
    when ``learned`` is given, every string that contains a value masked so far
    (collected into ``learned``: a cardholder name repeated on a receipt line).
    A value that cannot be read (a truncated message) masks the rest of the text.
    """
    seen = learned if learned is not None else set()

    def replace(key: str, value: Any) -> Optional[str]:
        if value is None:
            return None
        if isinstance(value, str) and len(value.strip("* ")) >= 3:  # never "***" itself
            seen.add(value)
        return _MASKED

    def replace_string(token: str) -> Optional[str]:
        if any(secret in token for secret in seen):
            return _MASKED
        return None

    fast = "\\" not in text and not any(key in text for key in keys)
    if fast and not any(secret in text for secret in seen):
        return text
    return _edit(text, lambda key, depth: key in keys, replace, replace_string if seen else None)


def rewrite_identifiers(
    text: str, tags: Mapping[str, str], custom_identifiers: Mapping[str, str]
) -> str:
    """``text`` with the envelope's ``tag`` and every ``customIdentifier`` value
    mapped (recorded value -> live value); anything not in a map is kept."""
    if not tags and not custom_identifiers:
        return text

    def wants(key: str, depth: int) -> bool:
        return (key == "tag" and depth == 1) or key == "customIdentifier"

    def replace(key: str, value: Any) -> Optional[str]:
        mapping = tags if key == "tag" else custom_identifiers
        if isinstance(value, str) and value in mapping:
            return json.dumps(mapping[value])
        return None

    return _edit(text, wants, replace)


# --- reading ------------------------------------------------------------------------


@attrs.frozen
class CassetteEvent:
    """One line after the header (see the module doc for ``dir``)."""

    t: float
    conn: int
    dir: str
    payload: Optional[bytes] = None  # send/recv: the message as it went over the wire
    text: Optional[str] = None  # send/recv: the message's text (None when not UTF-8)
    by: Optional[str] = None  # close: "client" or "server"
    reason: Optional[str] = None
    line: int = 0

    @property
    def message(self) -> Optional[Dict[str, Any]]:
        """The JSON object of a send/recv text, or None when it is not one."""
        if self.text is None:
            return None
        try:
            value = json.loads(self.text.lstrip("\ufeff"))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


@attrs.frozen
class Cassette:
    """A cassette read by :func:`load_cassette`: its header and its events."""

    header: Dict[str, Any]
    events: List[CassetteEvent]
    name: str = "<cassette>"


def load_cassette(source: CassetteSource) -> Cassette:
    """Read a cassette (a path or a text file); raises ``ValueError`` naming the
    line when it is not a cassette this version can read."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open(name, encoding="utf-8") as file:
            lines = file.read().splitlines()
    else:
        name = getattr(source, "name", "<cassette>")
        lines = source.read().splitlines()
    if not lines:
        raise ValueError(f"{name}: empty file, not a cassette")
    header = _json_line(name, 1, lines[0])
    if header.get("cassette") != FORMAT_NAME:
        raise ValueError(f"{name}: line 1 is not a {FORMAT_NAME} cassette header")
    version = header.get("version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{name}: cassette format version {version!r}; this SDK reads 1 to {FORMAT_VERSION}"
        )
    events = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        events.append(_event(name, number, _json_line(name, number, line)))
    return Cassette(header, events, name)


def _json_line(name: str, number: int, line: str) -> Dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{name}: line {number} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name}: line {number} is not a JSON object")
    return value


def _event(name: str, number: int, record: Dict[str, Any]) -> CassetteEvent:
    direction = record.get("dir")
    if not isinstance(direction, str):
        raise ValueError(f"{name}: line {number} has no 'dir'")
    t = record.get("t", 0.0)
    conn = record.get("conn", 1)
    payload = text = None
    if direction in ("send", "recv"):
        if isinstance(record.get("text"), str):
            text = record["text"]
            payload = text.encode("utf-8")
        elif isinstance(record.get("base64"), str):
            payload = base64.b64decode(record["base64"])
        else:
            raise ValueError(f"{name}: line {number}: a message needs 'text' or 'base64'")
    return CassetteEvent(
        t=float(t) if isinstance(t, (int, float)) else 0.0,
        conn=conn if isinstance(conn, int) else 1,
        dir=direction,
        payload=payload,
        text=text,
        by=record.get("by") if isinstance(record.get("by"), str) else None,
        reason=record.get("reason") if isinstance(record.get("reason"), str) else None,
        line=number,
    )
