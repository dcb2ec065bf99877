"""Benchmark: ``PayClient`` round trips against a raw-socket baseline, over TCP and WebSocket.

Run with ``python benchmarks/bench_client.py [--quick] [--json PATH]``.

A tiny P3 server runs in a separate process (so it does not share the GIL with
the client) and serves framed TCP and WebSocket on free ports of 127.0.0.1. It
answers every ``GET_TRANSACTION_REQUEST`` at once with a
``GET_TRANSACTION_RESPONSE`` made from one pre-encoded template with the tag
substituted, so the server's cost is small and the same for every client.

Measured, in interleaved rounds so that a noisy machine hurts every side alike:

* latency (one caller, sequential requests): ``PayClient.get_transaction`` over
  ``tcp://`` and ``ws://`` against a baseline that does the same framing and JSON
  by hand (plain socket + struct + json for TCP; websocket-client's
  ``create_connection`` + send/recv for WebSocket). Reported: p50, p99 and the
  ratio SDK p50 / raw p50 (target over TCP: at most 1.5);
* throughput (requests/s) with 1, 8 and 64 caller threads sharing one
  ``PayClient`` (target: 64 threads not below 8 threads), and the raw baseline
  with one thread (it is not thread safe);
* per latency side, the client process's CPU time (user + system, all its
  threads) and its voluntary context switches per call, from
  ``resource.getrusage`` deltas around each round (the server is another
  process, so neither counts its work). Targets over TCP: the SDK's CPU per
  call and p50 each at most 1.3 times the "raw + reader thread" baseline's;
* a thread hand-off probe, before every round: two threads pass a token back
  and forth, each waking the other by releasing a held bare ``threading.Lock``
  (the latch ``PayClient``'s request slot uses). Its round trip is what two
  thread hand-offs cost on this machine at that moment, the floor under the
  reader-thread sides.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import multiprocessing
import resource
import socket
import statistics
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import websocket
from _payloads import TRANSACTION_ID, transaction

HOST = "127.0.0.1"  # never anything else
TARGET_LATENCY_RATIO = 1.5
TARGET_THREAD_RATIO = 1.3  # SDK over raw + reader thread, CPU per call and p50
_HEADER = struct.Struct(">I")
_TAG_PLACEHOLDER = "@@TAG@@"

Call = Callable[[], Any]


# --- the server (runs in its own process) ---------------------------------------


def _response_template() -> Tuple[str, str]:
    """The GET_TRANSACTION_RESPONSE text, split around its tag's JSON string."""
    message = {
        "type": "GET_TRANSACTION_RESPONSE",
        "tag": _TAG_PLACEHOLDER,
        "resource": None,
        "status": "OK",
        "getTransactionResponse": {"transaction": transaction(with_receipts=False)},
    }
    # Amounts as exact JSON numbers, as a PayServer writes them. Built once at
    # start-up; answering a request never runs SDK code.
    from payprotocol.codec import dumps

    prefix, suffix = dumps(message).split(dumps(_TAG_PLACEHOLDER))
    return prefix, suffix


_PREFIX, _SUFFIX = _response_template()


def _answer(request: str | bytes) -> str:
    """The response text to one request: the template with the request's tag."""
    message = json.loads(request)
    tag = message.get("tag")
    if message.get("type") != "GET_TRANSACTION_REQUEST":
        return json.dumps(
            {
                "type": str(message.get("type", "")).replace("_REQUEST", "_RESPONSE"),
                "tag": tag,
                "status": "ERROR",
                "error": {"type": "UNKNOWN_MESSAGE_TYPE", "message": "benchmark server"},
            }
        )
    return _PREFIX + json.dumps(tag) + _SUFFIX


def _serve_tcp_connection(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    with conn:
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            out: List[bytes] = []
            # Answer every complete frame in what has arrived, in one write.
            while len(buffer) >= 4:
                (length,) = _HEADER.unpack_from(buffer)
                if len(buffer) < 4 + length:
                    break
                body = bytes(buffer[4 : 4 + length])
                del buffer[: 4 + length]
                reply = _answer(body).encode("utf-8")
                out.append(_HEADER.pack(len(reply)) + reply)
            if out:
                try:
                    conn.sendall(b"".join(out))
                except OSError:
                    return


def _accept_loop(listener: socket.socket, handler: Callable[[socket.socket], None]) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, unfragmented server frame."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, size))
    elif size < 1 << 16:
        header = bytes((0x80 | opcode, 126)) + struct.pack(">H", size)
    else:
        header = bytes((0x80 | opcode, 127)) + struct.pack(">Q", size)
    return header + payload


def _serve_ws_minimal(conn: socket.socket) -> None:
    """Just enough RFC 6455 for this benchmark (one thread per connection, like TCP):
    the handshake, masked client frames (text, continuation, ping, close), unmasked
    replies. It costs about what the TCP server costs, so a WebSocket comparison
    measures the clients, not a heavyweight server."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        key = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        buffer = bytearray(rest)
        fragments: List[bytes] = []
        while True:
            out: List[bytes] = []
            while len(buffer) >= 2:
                opcode, size, position = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
                if size == 126:
                    if len(buffer) < 4:
                        break
                    (size,) = struct.unpack_from(">H", buffer, 2)
                    position = 4
                elif size == 127:
                    if len(buffer) < 10:
                        break
                    (size,) = struct.unpack_from(">Q", buffer, 2)
                    position = 10
                masked = buffer[1] & 0x80
                end = position + (4 if masked else 0) + size
                if len(buffer) < end:
                    break
                payload = bytes(buffer[end - size : end])
                if masked:
                    mask = bytes(buffer[position : position + 4]) * (size // 4 + 1)
                    payload = (
                        int.from_bytes(payload, "big") ^ int.from_bytes(mask[:size], "big")
                    ).to_bytes(size, "big")
                final = buffer[0] & 0x80
                del buffer[:end]
                if opcode in (0x0, 0x1):
                    fragments.append(payload)
                    if final:
                        text = b"".join(fragments).decode("utf-8")
                        fragments.clear()
                        out.append(_ws_frame(0x1, _answer(text).encode("utf-8")))
                elif opcode == 0x9:  # ping
                    out.append(_ws_frame(0xA, payload))
                elif opcode == 0x8:  # close: answer it and end
                    with contextlib.suppress(OSError):
                        conn.sendall(b"".join(out) + _ws_frame(0x8, payload[:2]))
                    return
            try:
                if out:
                    conn.sendall(b"".join(out))
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk


def _serve_ws_websockets(connection: Any) -> None:
    for message in connection:  # ends when the client closes
        connection.send(_answer(message))


def server_main(ports: Any, stop: Any, ws_server_kind: str) -> None:
    """Entry point of the server process: report (tcp_port, ws_port), serve until stopped."""
    tcp_listener = socket.create_server((HOST, 0), backlog=128)
    threading.Thread(
        target=_accept_loop, args=(tcp_listener, _serve_tcp_connection), daemon=True
    ).start()
    closers: List[Callable[[], None]] = [tcp_listener.close]
    if ws_server_kind == "websockets":
        from websockets.sync.server import serve

        # serve() runs each connection in its own thread (plus a reading thread).
        ws_server = serve(_serve_ws_websockets, HOST, 0, compression=None, max_size=1 << 20)
        threading.Thread(target=ws_server.serve_forever, daemon=True).start()
        ws_port = ws_server.socket.getsockname()[1]
        closers.append(ws_server.shutdown)
    else:
        ws_listener = socket.create_server((HOST, 0), backlog=128)
        threading.Thread(
            target=_accept_loop, args=(ws_listener, _serve_ws_minimal), daemon=True
        ).start()
        ws_port = ws_listener.getsockname()[1]
        closers.append(ws_listener.close)
    ports.put((tcp_listener.getsockname()[1], ws_port))
    stop.wait()
    for close in closers:
        close()


class ServerProcess:
    """The benchmark server in a child process (spawned: no fork, no shared GIL)."""

    def __init__(self, ws_server_kind: str = "minimal") -> None:
        context = multiprocessing.get_context("spawn")
        self._ports: Any = context.Queue()
        self._stop = context.Event()
        self._process = context.Process(
            target=server_main, args=(self._ports, self._stop, ws_server_kind), daemon=True
        )
        self.tcp_port = 0
        self.ws_port = 0

    def __enter__(self) -> ServerProcess:
        self._process.start()
        self.tcp_port, self.ws_port = self._ports.get(timeout=30)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


# --- the raw baselines ------------------------------------------------------------


def _request_text(tag: str) -> str:
    return json.dumps(
        {
            "type": "GET_TRANSACTION_REQUEST",
            "tag": tag,
            "resource": None,
            "getTransactionRequest": {"transactionIdentifier": TRANSACTION_ID},
        },
        separators=(",", ":"),
    )


def _transaction_of(reply: str | bytes, tag: str) -> Dict[str, Any]:
    message = json.loads(reply, parse_float=Decimal)
    if message.get("tag") != tag or message.get("status") != "OK":
        raise RuntimeError(f"unexpected reply: {message!r}")
    transaction: Dict[str, Any] = message["getTransactionResponse"]["transaction"]
    return transaction


class RawTcpClient:
    """The baseline over framed TCP: one thread, socket + struct + json, no SDK."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection((HOST, port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()

    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def get_transaction(self) -> Dict[str, Any]:
        tag = str(uuid.uuid4())
        body = _request_text(tag).encode("utf-8")
        self._sock.sendall(_HEADER.pack(len(body)) + body)
        (length,) = _HEADER.unpack(self._read(4))
        return _transaction_of(self._read(length), tag)

    def close(self) -> None:
        self._sock.close()


class ThreadedRawTcpClient:
    """A diagnostic reference: the raw TCP baseline plus the SDK's thread shape.

    A reader thread receives and parses every response and wakes the caller that
    waits for its tag (a dict of latches), as ``PayClient`` does, but with none
    of the SDK's typed layer. Its distance to :class:`RawTcpClient` is the price
    of the reader thread alone (one more thread hand-off per request); the
    SDK's distance to it is the price of the SDK's own code. Thread safe, so it
    also gives a reference throughput with many callers.
    """

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection((HOST, port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.settimeout(None)
        self._send_lock = threading.Lock()
        self._waiting: Dict[str, List[Any]] = {}  # tag -> [latch, reply]
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        buffer = bytearray()
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 4:
                (length,) = _HEADER.unpack_from(buffer)
                if len(buffer) < 4 + length:
                    break
                message = json.loads(bytes(buffer[4 : 4 + length]), parse_float=Decimal)
                del buffer[: 4 + length]
                waiter = self._waiting.pop(message.get("tag"), None)
                if waiter is not None:
                    waiter[1] = message
                    waiter[0].release()

    def get_transaction(self) -> Dict[str, Any]:
        tag = str(uuid.uuid4())
        body = _request_text(tag).encode("utf-8")
        latch = threading.Lock()
        latch.acquire()
        waiter: List[Any] = [latch, None]
        self._waiting[tag] = waiter
        with self._send_lock:
            self._sock.sendall(_HEADER.pack(len(body)) + body)
        if not latch.acquire(timeout=30):
            raise TimeoutError("no response within 30 s")
        message: Dict[str, Any] = waiter[1]
        if message.get("status") != "OK":
            raise RuntimeError(f"unexpected reply: {message!r}")
        transaction: Dict[str, Any] = message["getTransactionResponse"]["transaction"]
        return transaction

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(5)


class RawWsClient:
    """The baseline over WebSocket: websocket-client's create_connection, send, recv."""

    def __init__(self, port: int) -> None:
        self._ws = websocket.create_connection(f"ws://{HOST}:{port}/", timeout=30)

    def get_transaction(self) -> Dict[str, Any]:
        tag = str(uuid.uuid4())
        self._ws.send(_request_text(tag))
        return _transaction_of(self._ws.recv(), tag)

    def close(self) -> None:
        self._ws.close()


# --- measurement -----------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def _time_calls(call: Call, count: int, into: List[float]) -> None:
    clock = time.perf_counter
    for _ in range(count):
        started = clock()
        call()
        into.append(clock() - started)


@dataclass
class Usage:
    """What one stretch of calls cost the client process (all its threads)."""

    calls: int
    cpu: float  # seconds of user + system time
    voluntary: int  # context switches: a thread blocked (lock, recv) and gave the core up
    involuntary: int  # context switches: the scheduler took the core away (noise)


def _usage_of(before: resource.struct_rusage, after: resource.struct_rusage, calls: int) -> Usage:
    return Usage(
        calls,
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        after.ru_nvcsw - before.ru_nvcsw,
        after.ru_nivcsw - before.ru_nivcsw,
    )


def _measured_calls(call: Call, count: int, into: List[float]) -> Usage:
    """:func:`_time_calls`, plus the process's CPU time and context switches for them."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    _time_calls(call, count, into)
    return _usage_of(before, resource.getrusage(resource.RUSAGE_SELF), count)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


def hand_off_probe(round_trips: int) -> Tuple[float, Usage]:
    """Seconds per round trip of a token between two threads, and its usage.

    Each side waits on a held bare ``threading.Lock`` that the other releases,
    the way a caller waits on its request slot and the reader thread wakes it
    (the waiting side uses a timeout, as the slot does). One round trip is two
    hand-offs: each a futex wake-up, a context switch and the GIL passing over.
    """
    ping, pong = _held_lock(), _held_lock()

    def partner() -> None:
        for _ in range(round_trips):
            ping.acquire()
            pong.release()

    thread = threading.Thread(target=partner, daemon=True)
    thread.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for _ in range(round_trips):
        ping.release()
        if not pong.acquire(timeout=30):
            raise RuntimeError("the probe's partner thread stopped answering")
    elapsed = time.perf_counter() - started
    usage = _usage_of(before, resource.getrusage(resource.RUSAGE_SELF), round_trips)
    thread.join(30)
    return elapsed / round_trips, usage


def _throughput(call: Call, threads: int, duration: float) -> float:
    """Requests per second completed by ``threads`` callers looping for ``duration``."""
    stop = threading.Event()
    counts = [0] * threads
    errors: List[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        barrier.wait()
        done = 0
        try:
            while not stop.is_set():
                call()
                done += 1
        except BaseException as exc:
            errors.append(exc)
        counts[index] = done

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for worker_thread in workers:
        worker_thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(duration)
    stop.set()
    for worker_thread in workers:
        worker_thread.join(60)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} caller(s) failed") from errors[0]
    return sum(counts) / elapsed


@dataclass
class Settings:
    rounds: int
    requests: int  # sequential requests per side in total (split over the rounds)
    warmup: int
    duration: float  # seconds per throughput measurement
    probe_round_trips: int = 2000  # thread hand-off probe, before every latency round
    ws_server: str = "minimal"  # or "websockets" (the websockets package's sync server)
    thread_counts: Tuple[int, ...] = (1, 8, 64)


@dataclass
class Side:
    """One thing to measure: a call and how many threads make it."""

    name: str
    call: Call
    threads: int = 1


@dataclass
class Results:
    settings: Settings
    python: str
    latency: Dict[str, List[float]] = field(default_factory=dict)  # seconds, all rounds
    round_p50: Dict[str, List[float]] = field(default_factory=dict)  # seconds, per round
    throughput: Dict[str, List[float]] = field(default_factory=dict)  # req/s, per round
    usage: Dict[str, List[Usage]] = field(default_factory=dict)  # per latency side, per round
    probe: List[float] = field(default_factory=list)  # seconds per round trip, per round
    probe_usage: List[Usage] = field(default_factory=list)


def _rotated(items: List[Side], shift: int) -> List[Side]:
    """Each round starts with another side, so none always runs first."""
    shift %= len(items)
    return items[shift:] + items[:shift]


def _check(name: str, result: Any) -> None:
    """Every path must really return the transaction, or its timings mean nothing."""
    identifier = (
        result["transactionIdentifier"]
        if isinstance(result, dict)
        else result.transaction_identifier
    )
    if identifier != TRANSACTION_ID:
        raise RuntimeError(f"{name}: wrong transaction {identifier!r}")


def run(settings: Settings) -> Results:
    from payprotocol import PayClient  # here: the server process never needs the client

    results = Results(settings, sys.version.split()[0])
    with ServerProcess(settings.ws_server) as server:
        sdk = {
            "tcp": PayClient(f"tcp://{HOST}:{server.tcp_port}", timeout=30),
            "ws": PayClient(f"ws://{HOST}:{server.ws_port}/", timeout=30),
        }
        for client in sdk.values():
            client.connect()
        raw_tcp = RawTcpClient(server.tcp_port)
        raw_ws = RawWsClient(server.ws_port)
        threaded_tcp = ThreadedRawTcpClient(server.tcp_port)
        raw: Dict[str, Call] = {"tcp": raw_tcp.get_transaction, "ws": raw_ws.get_transaction}
        latency_sides: List[Side] = []
        throughput_sides: List[Side] = []
        for transport, client in sdk.items():

            def sdk_call(client: PayClient = client) -> Any:
                return client.get_transaction(transaction_identifier=TRANSACTION_ID)

            latency_sides.append(Side(f"{transport} raw", raw[transport]))
            throughput_sides.append(Side(f"{transport} raw x1", raw[transport]))
            if transport == "tcp":
                latency_sides.append(Side("tcp raw+thread", threaded_tcp.get_transaction))
                for threads in settings.thread_counts:
                    throughput_sides.append(
                        Side(f"tcp raw+thread x{threads}", threaded_tcp.get_transaction, threads)
                    )
            latency_sides.append(Side(f"{transport} sdk", sdk_call))
            for threads in settings.thread_counts:
                throughput_sides.append(Side(f"{transport} sdk x{threads}", sdk_call, threads))
        try:
            for side in latency_sides:
                _check(side.name, side.call())
                _time_calls(side.call, settings.warmup, [])
                results.latency[side.name] = []
                results.round_p50[side.name] = []
                results.usage[side.name] = []
            hand_off_probe(min(200, settings.probe_round_trips))  # warm-up
            per_round = max(1, settings.requests // settings.rounds)
            for round_index in range(settings.rounds):
                probe, probe_usage = hand_off_probe(settings.probe_round_trips)
                results.probe.append(probe)
                results.probe_usage.append(probe_usage)
                for side in _rotated(latency_sides, round_index):
                    samples: List[float] = []
                    results.usage[side.name].append(_measured_calls(side.call, per_round, samples))
                    results.latency[side.name].extend(samples)
                    results.round_p50[side.name].append(statistics.median(samples))
            for side in throughput_sides:
                results.throughput[side.name] = []
            for round_index in range(settings.rounds):
                for side in _rotated(throughput_sides, round_index):
                    results.throughput[side.name].append(
                        _throughput(side.call, side.threads, settings.duration)
                    )
        finally:
            for client in sdk.values():
                client.close()
            raw_tcp.close()
            raw_ws.close()
            threaded_tcp.close()
    return results


# --- report ----------------------------------------------------------------------


def summarize(results: Results) -> Dict[str, Any]:
    latency: Dict[str, Dict[str, float]] = {}
    for name, samples in results.latency.items():
        ordered = sorted(samples)
        latency[name] = {
            "n": len(ordered),
            "p50_us": _percentile(ordered, 0.50) * 1e6,
            "p99_us": _percentile(ordered, 0.99) * 1e6,
        }

    def ratio(name: str, base: str) -> Dict[str, float]:
        return {
            "p50_ratio": latency[name]["p50_us"] / latency[base]["p50_us"],
            "p99_ratio": latency[name]["p99_us"] / latency[base]["p99_us"],
            # Robust to drift: each round's p50 over the same round's baseline p50.
            "median_of_round_ratios": statistics.median(
                a / b for a, b in zip(results.round_p50[name], results.round_p50[base])
            ),
        }

    ratios: Dict[str, Dict[str, float]] = {}
    for name in latency:
        transport, _, label = name.partition(" ")
        if label != "raw":
            ratios[f"{name} / raw"] = ratio(name, f"{transport} raw")
    # The SDK's own code, apart from the cost of having a reader thread at all.
    for name in latency:
        if name.startswith("tcp sdk") and "tcp raw+thread" in latency:
            ratios[f"{name} / raw+thread"] = ratio(name, "tcp raw+thread")
    # CPU and context switches per call: totals over all rounds, and (robust to
    # drift) the median over rounds of each round's CPU ratio to a baseline.
    per_call: Dict[str, Dict[str, float]] = {}
    for name, usages in results.usage.items():
        calls = sum(usage.calls for usage in usages)
        per_call[name] = {
            "cpu_us": sum(usage.cpu for usage in usages) / calls * 1e6,
            "voluntary_switches": sum(usage.voluntary for usage in usages) / calls,
            "involuntary_switches": sum(usage.involuntary for usage in usages) / calls,
        }

    def cpu_ratio(name: str, base: str) -> Dict[str, float]:
        return {
            "cpu_ratio": per_call[name]["cpu_us"] / per_call[base]["cpu_us"],
            "median_of_round_ratios": statistics.median(
                a.cpu / a.calls / (b.cpu / b.calls)
                for a, b in zip(results.usage[name], results.usage[base])
                if b.cpu > 0
            ),
        }

    cpu_ratios: Dict[str, Dict[str, float]] = {}
    for name in per_call:
        transport, _, label = name.partition(" ")
        if label != "raw":
            cpu_ratios[f"{name} / raw"] = cpu_ratio(name, f"{transport} raw")
    for name in per_call:
        if name.startswith("tcp sdk") and "tcp raw+thread" in per_call:
            cpu_ratios[f"{name} / raw+thread"] = cpu_ratio(name, "tcp raw+thread")
    probe_calls = sum(usage.calls for usage in results.probe_usage)
    probe_cpu = sum(usage.cpu for usage in results.probe_usage)
    probe_switches = sum(usage.voluntary for usage in results.probe_usage)
    probe = {
        "round_trip_us": statistics.median(results.probe) * 1e6,
        "hand_off_us": statistics.median(results.probe) / 2 * 1e6,
        "min_us": min(results.probe) * 1e6,
        "max_us": max(results.probe) * 1e6,
        "rounds_us": [value * 1e6 for value in results.probe],
        "cpu_us_per_round_trip": probe_cpu / probe_calls * 1e6,
        "voluntary_switches_per_round_trip": probe_switches / probe_calls,
    }
    throughput: Dict[str, Dict[str, Any]] = {
        name: {"median_rps": statistics.median(values), "rounds": values}
        for name, values in results.throughput.items()
    }

    def rps(name: str) -> float:
        return float(throughput[name]["median_rps"])

    targets = {
        "tcp sdk p50 / raw p50 <= 1.5": ratios["tcp sdk / raw"]["p50_ratio"]
        <= TARGET_LATENCY_RATIO,
        "tcp sdk x64 >= x8": rps("tcp sdk x64") >= rps("tcp sdk x8"),
        "ws sdk x64 >= x8": rps("ws sdk x64") >= rps("ws sdk x8"),
        "tcp sdk cpu / raw+thread <= 1.3": cpu_ratios["tcp sdk / raw+thread"]["cpu_ratio"]
        <= TARGET_THREAD_RATIO,
        "tcp sdk p50 / raw+thread <= 1.3": ratios["tcp sdk / raw+thread"]["p50_ratio"]
        <= TARGET_THREAD_RATIO,
    }
    return {
        "python": results.python,
        "settings": vars(results.settings),
        "latency": latency,
        "ratios": ratios,
        "throughput": throughput,
        "probe": probe,
        "per_call": per_call,
        "cpu_ratios": cpu_ratios,
        "targets": targets,
    }


def print_table(summary: Dict[str, Any]) -> None:
    settings = summary["settings"]
    print(
        f"python {summary['python']}, {settings['rounds']} interleaved rounds, "
        f"{settings['requests']} sequential requests per side (+{settings['warmup']} warm-up), "
        f"{settings['duration']:g} s per throughput run, {settings['ws_server']} WebSocket server"
    )
    print()
    print(f"{'latency, 1 caller, sequential':<34}{'p50 us':>10}{'p99 us':>10}{'n':>8}")
    for name, row in summary["latency"].items():
        print(f"  {name:<32}{row['p50_us']:10.1f}{row['p99_us']:10.1f}{row['n']:8d}")
    print()
    print(f"{'ratio to the raw baseline':<34}{'p50':>10}{'p99':>10}{'rounds':>8}")
    for name, row in summary["ratios"].items():
        print(
            f"  {name:<32}{row['p50_ratio']:10.2f}{row['p99_ratio']:10.2f}"
            f"{row['median_of_round_ratios']:8.2f}"
        )
    print("  (rounds: median over rounds of that round's p50 ratio)")
    print()
    probe = summary["probe"]
    print(
        f"thread hand-off probe (bare Lock latch, {settings['probe_round_trips']} round trips "
        f"before each round):\n  {probe['round_trip_us']:.1f} us per round trip, "
        f"{probe['hand_off_us']:.1f} us per hand-off\n  (median; rounds "
        f"{probe['min_us']:.1f}..{probe['max_us']:.1f} us per round trip), "
        f"{probe['cpu_us_per_round_trip']:.1f} us CPU and "
        f"{probe['voluntary_switches_per_round_trip']:.2f} voluntary switches per round trip"
    )
    print()
    print(f"{'client process, per call':<34}{'CPU us':>10}{'vol cs':>10}{'invol cs':>10}")
    for name, row in summary["per_call"].items():
        print(
            f"  {name:<32}{row['cpu_us']:10.1f}{row['voluntary_switches']:10.2f}"
            f"{row['involuntary_switches']:10.2f}"
        )
    print("  (CPU: user + system of all client threads; cs: context switches)")
    print()
    print(f"{'CPU ratio to the baseline':<34}{'CPU':>10}{'rounds':>10}")
    for name, row in summary["cpu_ratios"].items():
        print(f"  {name:<32}{row['cpu_ratio']:10.2f}{row['median_of_round_ratios']:10.2f}")
    print()
    print(f"{'throughput':<34}{'req/s':>10}   min..max over rounds")
    for name, row in summary["throughput"].items():
        values = row["rounds"]
        print(f"  {name:<32}{row['median_rps']:10.0f}   {min(values):.0f}..{max(values):.0f}")
    print()
    for target, met in summary["targets"].items():
        print(f"  {target:<32}{'met' if met else 'MISSED':>10}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON ('-': stdout only)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds")
    parser.add_argument("--requests", type=int, help="sequential requests per side")
    parser.add_argument("--duration", type=float, help="seconds per throughput run")
    parser.add_argument(
        "--probe-round-trips", type=int, help="hand-off probe round trips per round"
    )
    parser.add_argument(
        "--ws-server",
        choices=("minimal", "websockets"),
        default="minimal",
        help="WebSocket server: a minimal RFC 6455 one (default) or the websockets package's",
    )
    args = parser.parse_args(argv)
    if args.quick:
        settings = Settings(rounds=3, requests=300, warmup=100, duration=0.3)
    else:
        settings = Settings(rounds=10, requests=5000, warmup=500, duration=1.0)
    if args.rounds:
        settings.rounds = args.rounds
    if args.requests:
        settings.requests = args.requests
    if args.duration:
        settings.duration = args.duration
    if args.probe_round_trips:
        settings.probe_round_trips = args.probe_round_trips
    settings.ws_server = args.ws_server
    summary = summarize(run(settings))
    if args.json != "-":
        print_table(summary)
    if args.json:
        text = json.dumps(summary, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as out:
                out.write(text + "\n")
    return 0 if all(summary["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
