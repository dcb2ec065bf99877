"""A tiny raw P3 peer for the simulator tests: sockets + framing + codec, no client.

Every received message is parsed to a dict (amounts as Decimal) and also run
through ``decode_message`` so the simulator is checked against the contract.
Every wait has a timeout.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Union

import websocket

from payprotocol.codec import decode_message, dumps
from payprotocol.framing import FrameDecoder, encode_frame

TIMEOUT = 5.0
Raw = Dict[str, Any]


class PeerClosed(Exception):
    """The simulator closed the connection."""


class RawPeer:
    def __init__(self) -> None:
        self.backlog: List[Raw] = []
        self.received: List[Raw] = []

    # transport-specific
    def send_payload(self, text: str) -> None:
        raise NotImplementedError

    def read_payload(self, timeout: float) -> Union[bytes, str]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # messages
    def send(
        self,
        message_type: str,
        data: Optional[Raw] = None,
        *,
        resource: Optional[str] = None,
        tag: Optional[str] = None,
        **envelope: Any,
    ) -> str:
        tag = tag or uuid.uuid4().hex
        message: Raw = {"type": message_type, "tag": tag, **envelope}
        if resource is not None:
            message["resource"] = resource
        if data is not None:
            key = message_type.lower().split("_")
            message[key[0] + "".join(p.capitalize() for p in key[1:])] = data
        self.send_payload(dumps(message))
        return tag

    def read(self, timeout: float = TIMEOUT) -> Raw:
        payload = self.read_payload(timeout)
        decode_message(payload)  # the simulator must speak the contract
        raw: Raw = json.loads(payload, parse_float=Decimal)
        self.received.append(raw)
        return raw

    def expect(self, predicate: Callable[[Raw], bool], timeout: float = TIMEOUT) -> Raw:
        for index, raw in enumerate(self.backlog):
            if predicate(raw):
                return self.backlog.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("expected message did not arrive")
            raw = self.read(remaining)
            if predicate(raw):
                return raw
            self.backlog.append(raw)

    def response(self, tag: str, timeout: float = TIMEOUT) -> Raw:
        return self.expect(
            lambda m: m.get("tag") == tag and m["type"].endswith("_RESPONSE"), timeout
        )

    def request(
        self,
        message_type: str,
        data: Optional[Raw] = None,
        *,
        resource: Optional[str] = None,
        timeout: float = TIMEOUT,
    ) -> Raw:
        return self.response(self.send(message_type, data, resource=resource), timeout)

    def login(self, merchant: str = "m-1", secret: str = "s3cr3t") -> Raw:
        return self.request(
            "LOGIN_MERCHANT_REQUEST",
            {"providerMode": "TEST", "merchantIdentifier": merchant, "merchantSecret": secret},
        )

    def execute(
        self,
        amount: str,
        resource: str = "devices/reader1",
        currency: str = "EUR",
        **parameters: Any,
    ) -> str:
        extra_request = parameters.pop("request", {})
        transaction = {
            "type": "CHARGE",
            "amount": Decimal(amount),
            "currency": currency,
            "autoCapture": True,
            **parameters,
        }
        return self.send(
            "EXECUTE_TRANSACTION_REQUEST",
            {"transactionParameters": transaction, **extra_request},
            resource=resource,
        )

    def follow(
        self,
        tag: str,
        on_action: Optional[Callable[[RawPeer, Raw], None]] = None,
        timeout: float = TIMEOUT,
    ) -> List[Raw]:
        """Every message of the transaction ``tag`` up to its final response."""
        messages = []
        while True:
            raw = self.expect(lambda m: m.get("tag") == tag, timeout)
            messages.append(raw)
            if raw["type"].endswith("_ACTION"):
                (on_action or answer_actions)(self, raw)
            if raw["type"].endswith("_RESPONSE"):
                return messages

    def charge(self, amount: str, **kwargs: Any) -> List[Raw]:
        on_action = kwargs.pop("on_action", None)
        return self.follow(self.execute(amount, **kwargs), on_action)


def answer_actions(peer: RawPeer, action: Raw) -> None:
    """Default answers: sign on receipt, first application, CREDIT, keep currency."""
    kind = action["executeTransactionAction"]["action"]
    resource = action["resource"]
    request_type, data = {
        "SIGNATURE": ("SUBMIT_SIGNATURE_REQUEST", {"signOnReceipt": True}),
        "APPLICATION_SELECTION": (
            "SUBMIT_APPLICATION_SELECTION_REQUEST",
            {"applicationIdentifier": "A0000000031010"},
        ),
        "CREDIT_DEBIT_SELECTION": (
            "SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST",
            {"selection": "CREDIT"},
        ),
        "DCC_SELECTION": ("SUBMIT_DCC_SELECTION_REQUEST", {"useConvertedAmount": False}),
    }[kind]
    response = peer.request(request_type, data, resource=resource)
    assert response["status"] == "OK", response


class TcpPeer(RawPeer):
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.decoder = FrameDecoder()
        self.bodies: List[bytes] = []
        self.chunks: List[bytes] = []  # every recv() result, for the byte-level faults

    def send_payload(self, text: str) -> None:
        self.sock.sendall(encode_frame(text.encode("utf-8")))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_payload(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.bodies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no message") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise PeerClosed()
            self.chunks.append(chunk)
            self.bodies.extend(self.decoder.feed(chunk))
        return self.bodies.pop(0)

    def wait_closed(self, timeout: float = TIMEOUT) -> None:
        """Read until the simulator closes the connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return
            except ConnectionResetError:
                return
            except socket.timeout:
                break
        raise TimeoutError("connection still open")

    def close(self) -> None:
        self.sock.close()


class WsPeer(RawPeer):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.ws = websocket.create_connection(url, timeout=TIMEOUT)

    def send_payload(self, text: str) -> None:
        self.ws.send(text)

    def read_payload(self, timeout: float) -> Union[bytes, str]:
        self.ws.settimeout(timeout)
        try:
            payload = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            raise TimeoutError("no message") from None
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            raise PeerClosed() from None
        if payload == "" and not self.ws.connected:
            raise PeerClosed()
        return payload

    def wait_closed(self, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.read_payload(max(0.01, deadline - time.monotonic()))
            except PeerClosed:
                return
        raise TimeoutError("connection still open")

    def close(self) -> None:
        self.ws.close()


def wait_for(predicate: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


def of_type(messages: List[Raw], message_type: str) -> List[Raw]:
    return [m for m in messages if m["type"] == message_type]


def updates(messages: List[Raw]) -> List[Raw]:
    return [m["executeTransactionUpdate"] for m in of_type(messages, "EXECUTE_TRANSACTION_UPDATE")]


def final_transaction(messages: List[Raw]) -> Raw:
    response = messages[-1]
    assert response["type"] == "EXECUTE_TRANSACTION_RESPONSE", response
    assert response["status"] == "OK", response
    transaction: Raw = response["executeTransactionResponse"]["transaction"]
    return transaction
