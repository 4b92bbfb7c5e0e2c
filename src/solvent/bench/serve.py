"""Load on the live service: ``solvent bench serve``.

Drives a running server over loopback (127.0.0.1 only) with concurrent clients for a bounded
time and a bounded number of commands, and reports what it sustained:

- commands sent and acknowledged (HTTP 200; engine refusals, recorded and answered 422, are
  counted apart), sustained commands per second and requests per second, request latency
  p50/p99 (a batch's latency is its request's: sent until every command of it is committed);
- for every price update whose acknowledgement carried a liquidation, the latency from that
  acknowledgement arriving at the client to the first liquidation event of the same ``seq``
  arriving on the WebSocket stream (p50/p99);
- the database used, and whether the target (5,000 commands per second, p99 < 20 ms) is met.

Without ``url`` it starts its own server process (``solvent serve``) on a free loopback port over
``db`` (default: an SQLite file in a temporary directory), bootstraps an admin key through
``SOLVENT_ADMIN_KEY``, and stops the server at the end. Against a given ``url`` it needs an
admin key (``admin_key`` or ``SOLVENT_ADMIN_KEY``) and works in a venue of its own (a fresh id).

Workload: a ``binance``-preset venue with a market maker pair trading BTCUSDT back and forth (the
fills, sent ``batch`` at a time in one ``POST /v1/commands`` as a matching engine would; ``batch``
1 sends each alone) and, on client 0, a liquidation cycle sent one command per request, as a
price feeder would: open a fresh victim with 1,000 USDT, raise the oracle to 60,000, fill the
victim long 0.5 BTC at 60,000, drop the oracle to 57,000 (which liquidates it), then one batch of
fills. Every command carries an idempotency key.

The clients are threads over plain keep-alive sockets (HTTP/1.1 written and read by hand, no
http.client): the client shares the machine's cores with the server, so it is kept cheap.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import SolventError

TARGET_COMMANDS_PER_SECOND = 5_000
TARGET_P99_MS = 20.0
DEFAULT_BATCH = 8  # fills per request
MAX_COMMANDS = 2_000_000  # a hard bound on what one run sends, whatever the duration
BIG = "100000000"
LIQUIDATION_KINDS = ("liquidation_started", "position_liquidated", "liquidated", "liquidation_called", "absorbed",
                     "auction_started", "trove_liquidated", "position_auto_deleveraged")
HIGH, LOW = "60000", "57000"


class BenchError(SolventError):
    """The benchmark could not run (server did not start, setup refused, ...)."""


@dataclass
class ServeBenchResult:
    database: str
    url: str
    seconds: float
    clients: int
    batch: int
    commands_sent: int
    commands_acknowledged: int
    commands_refused: int
    errors: int
    commands_per_second: float
    requests_sent: int
    requests_per_second: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    liquidating_updates: int
    liquidations_seen_on_stream: int
    liquidation_stream_p50_ms: float | None
    liquidation_stream_p99_ms: float | None
    target_commands_per_second: int = TARGET_COMMANDS_PER_SECOND
    target_p99_ms: float = TARGET_P99_MS
    target_met: str = "no"
    statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_name(db: str) -> str:
    if db.startswith("sqlite"):
        return "sqlite"
    if db.startswith("postgres"):
        return "postgresql"
    return db.split(":", 1)[0]


# ----------------------------------------------------------------------------- server


def start_server(db: str, admin_key: str, port: int, *, timeout: float = 30.0) -> subprocess.Popen:
    """``solvent serve`` on 127.0.0.1:``port`` over ``db``; returns once /v1/health answers."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from solvent.cli.main import app; app()", "serve", "--db", db, "--port", str(port),
         "--host", "127.0.0.1", "--init"],
        env={**os.environ, "SOLVENT_ADMIN_KEY": admin_key}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
            raise BenchError(f"the server exited with {process.returncode}: {error}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/v1/health")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            time.sleep(0.05)
    stop_server(process)
    raise BenchError("the server did not start within 30 s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


# ----------------------------------------------------------------------------- client


class Client:
    """One keep-alive HTTP/1.1 connection to the server (loopback only), written and read by hand:
    http.client parses every response's headers with the email package, which costs the client
    more CPU than the server spends on some requests."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {key}\r\n".encode("latin-1")
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        return sock

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n").encode("latin-1")
        if key is not None:
            head += f"Idempotency-Key: {key}\r\n".encode("latin-1")
        request = head + self.auth + b"\r\n" + payload
        for attempt in range(2):
            try:
                if self.sock is None:
                    self.sock = self._connect()
                self.sock.sendall(request)
                status, data = self._read_response()
                return status, (json.loads(data) if data else None)
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "transfer-encoding":
                raise http.client.HTTPException("chunked responses are not expected from the service")
        self.buffer = rest
        while len(self.buffer) < length:
            self._fill()
        data, self.buffer = self.buffer[:length], self.buffer[length:]
        if close:
            self.close()
        return status, data

    def _fill(self) -> None:
        assert self.sock is not None  # called only while reading the answer to a request just sent
        chunk = self.sock.recv(262144)
        if not chunk:
            raise http.client.RemoteDisconnected("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Timeline:
    """The oracle timestamp: one writer (client 0), starting after the engine's current time."""

    def __init__(self, start: int) -> None:
        self.now = start

    def next(self) -> int:
        self.now += 1
        return self.now


def _command(client: Client, body: dict, key: str, timeline: Timeline | None = None) -> tuple[int, Any]:
    """Submit ``body``; an oracle update refused for time going backwards is retried after the engine's time."""
    status, answer = client.call("POST", "/v1/commands", body, key)
    if status == 409 and timeline is not None and isinstance(answer, dict) and answer.get("field") == "timestamp":
        found = re.search(r"engine's time (\d+)", answer.get("error", ""))
        if found:
            timeline.now = int(found.group(1))
            body["timestamp"] = timeline.next()
            status, answer = client.call("POST", "/v1/commands", body, key + "r")
    return status, answer


def setup_venue(client: Client, venue: str, run: str, timeline: Timeline) -> None:
    """The venue, its insurance fund and liquidator, and the market maker pair."""
    commands: list[dict[str, Any]] = [
        {"kind": "create_venue", "venue": venue, "preset": "binance", "overrides": {}},
        {"kind": "fund_insurance", "asset": "USDT", "amount": "100000", "venue": venue},
        {"kind": "deposit", "account": f"{venue}/book", "asset": "USDT", "amount": BIG},
        {"kind": "deposit", "account": f"{venue}/liquidator", "asset": "USDT", "amount": BIG},
    ]
    for name in ("mm", "mm2"):
        commands += [{"kind": "open_account", "account": f"{venue}.{name}", "venue": venue},
                     {"kind": "deposit", "account": f"{venue}.{name}", "asset": "USDT", "amount": BIG}]
    commands.append({"kind": "update_oracle", "venue": venue, "prices": {"BTCUSDT": HIGH}, "timestamp": timeline.next()})
    for index, command in enumerate(commands):
        status, answer = _command(client, command, f"{run}-setup-{index}", timeline)
        if status != 200:
            raise BenchError(f"setup command {command['kind']} refused ({status}): {answer}")


# ----------------------------------------------------------------------------- stream


def _stream_listener(host: str, port: int, key: str, from_seq: int, arrivals: dict[int, float],
                     ready: threading.Event, stop: threading.Event, errors: list[str]) -> None:
    """Record when the first liquidation event of each seq arrives on the stream."""
    from websockets.sync.client import connect

    kinds = ",".join(LIQUIDATION_KINDS)
    try:
        with connect(f"ws://{host}:{port}/v1/stream?from_seq={from_seq}&kinds={kinds}&key={key}",
                     open_timeout=10, max_size=None) as websocket:
            ready.set()
            while not stop.is_set():
                try:
                    message = websocket.recv(timeout=0.2)
                except TimeoutError:
                    continue
                now = time.perf_counter()
                seq = json.loads(message)["seq"]
                arrivals.setdefault(seq, now)
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
    finally:
        ready.set()


# ----------------------------------------------------------------------------- run


@dataclass
class _Tally:
    sent: int = 0
    acknowledged: int = 0
    refused: int = 0
    errors: int = 0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    liquidating: dict[int, float] = field(default_factory=dict)  # seq -> acknowledgement time

    def count(self, status: int, answer: Any) -> None:
        """One command's outcome: acknowledged (200), refused by the engine and recorded, or an error."""
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if status == 200:
            self.acknowledged += 1
        elif status == 422 and isinstance(answer, dict) and answer.get("recorded"):
            self.refused += 1
        else:
            self.errors += 1


def _worker(number: int, host: str, port: int, key: str, venue: str, run: str, deadline: float, budget: list[int],
            lock: threading.Lock, tally: _Tally, timeline: Timeline, start_gate: threading.Barrier,
            batch: int) -> None:
    client = Client(host, port, key)
    mm, mm2 = f"{venue}.mm", f"{venue}.mm2"
    sequence = 0
    victims = 0
    fills = 0

    def take(wanted: int) -> int:
        with lock:
            granted = max(0, min(wanted, budget[0]))
            budget[0] -= granted
        return granted

    def send(body: dict, oracle: bool = False) -> tuple[int, Any] | None:
        """One command alone in its request."""
        nonlocal sequence
        if not take(1):
            return None
        sequence += 1
        began = time.perf_counter()
        tally.sent += 1
        tally.requests += 1
        try:
            status, answer = _command(client, body, f"{run}-{number}-{sequence}", timeline if oracle else None)
        except (http.client.HTTPException, OSError):
            tally.errors += 1
            return 0, None
        acked = time.perf_counter()
        tally.latencies.append(acked - began)
        tally.count(status, answer)
        if status == 200 and oracle and any(event.get("kind") in LIQUIDATION_KINDS for event in answer.get("events", ())):
            tally.liquidating[answer["seq"]] = acked
        return status, answer

    def fill() -> dict:
        nonlocal fills
        fills += 1
        buyer, seller = (mm, mm2) if fills % 2 == 0 else (mm2, mm)
        return {"kind": "apply_fill", "venue": venue, "market": "BTCUSDT", "buyer": buyer, "seller": seller,
                "size": "0.001", "price": HIGH}

    def send_fills() -> bool:
        """``batch`` fills in one request (or one alone when batch is 1); False when the budget is spent."""
        nonlocal sequence
        if batch == 1:
            return send(fill()) is not None
        granted = take(batch)
        if not granted:
            return False
        commands = []
        for _ in range(granted):
            sequence += 1
            commands.append({**fill(), "idempotency_key": f"{run}-{number}-{sequence}"})
        began = time.perf_counter()
        tally.sent += granted
        tally.requests += 1
        try:
            status, answer = client.call("POST", "/v1/commands", commands)
        except (http.client.HTTPException, OSError):
            tally.errors += granted
            return True
        tally.latencies.append(time.perf_counter() - began)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != granted:
            tally.errors += granted
            tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + granted
            return True
        for result in results:
            tally.count(result.get("status", 0), result)
        return True

    start_gate.wait()
    try:
        while time.perf_counter() < deadline:
            if number == 0:  # the liquidation cycle, one command per request, then a batch of fills
                victim = f"{venue}.v{victims}"
                victims += 1
                steps: list[tuple[dict[str, Any], bool]] = [
                    ({"kind": "open_account", "account": victim, "venue": venue}, False),
                    ({"kind": "deposit", "account": victim, "asset": "USDT", "amount": "1000"}, False),
                    ({"kind": "update_oracle", "venue": venue, "prices": {"BTCUSDT": HIGH}}, True),
                    ({"kind": "apply_fill", "venue": venue, "market": "BTCUSDT", "buyer": victim, "seller": mm,
                      "size": "0.5", "price": HIGH}, False),
                    ({"kind": "update_oracle", "venue": venue, "prices": {"BTCUSDT": LOW}}, True),
                ]
                for body, oracle in steps:
                    if oracle:
                        body["timestamp"] = timeline.next()
                    if send(body, oracle) is None or time.perf_counter() >= deadline:
                        return
            if not send_fills():
                return
    finally:
        client.close()


def run_serve_benchmark(*, url: str | None = None, db: str | None = None, seconds: float = 10.0, clients: int = 8,
                        batch: int = DEFAULT_BATCH, admin_key: str | None = None, max_commands: int = MAX_COMMANDS,
                        progress: Callable[[str], None] | None = None) -> ServeBenchResult:
    """Run the load described in the module docstring and return its figures."""
    say = progress or (lambda _message: None)
    if seconds <= 0 or seconds > 3600:
        raise BenchError("seconds must be in (0, 3600]")
    if clients < 1 or clients > 256:
        raise BenchError("clients must be in 1..256")
    if batch < 1 or batch > 1000:
        raise BenchError("batch must be in 1..1000")
    process: subprocess.Popen | None = None
    temporary: tempfile.TemporaryDirectory | None = None
    try:
        if url is None:
            admin_key = "sk_bench_" + secrets.token_urlsafe(32)
            if db is None:
                temporary = tempfile.TemporaryDirectory(prefix="solvent-bench-")
                db = f"sqlite:///{temporary.name}/bench.db"
            port = free_port()
            say(f"starting a server on 127.0.0.1:{port} over {_database_name(db)}")
            process = start_server(db, admin_key, port)
            host = "127.0.0.1"
            url = f"http://127.0.0.1:{port}"
        else:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port or 80
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise BenchError("bench serve drives a server over loopback only (127.0.0.1)")
            host = "127.0.0.1" if host == "localhost" else host
            admin_key = admin_key or os.environ.get("SOLVENT_ADMIN_KEY")
            if not admin_key:
                raise BenchError("against --url an admin key is needed (--admin-key or SOLVENT_ADMIN_KEY)")
        run = secrets.token_hex(4)
        venue = f"bench{run}"
        admin = Client(host, port, admin_key)
        status, state = admin.call("GET", "/v1/state")
        if status != 200:
            raise BenchError(f"GET /v1/state answered {status}: {state}")
        timeline = Timeline(0)
        say(f"setting up venue {venue}")
        setup_venue(admin, venue, run, timeline)
        status, created = admin.call("POST", "/v1/keys", {"role": "operator", "label": "bench serve"})
        if status != 201:
            raise BenchError(f"could not create an operator key ({status}): {created}")
        _, state = admin.call("GET", "/v1/state")
        admin.close()
        database = db if db is not None else "(the server's)"

        arrivals: dict[int, float] = {}
        stop, ready = threading.Event(), threading.Event()
        stream_errors: list[str] = []
        listener = threading.Thread(target=_stream_listener, daemon=True,
                                    args=(host, port, admin_key, state["seq"] + 1, arrivals, ready, stop, stream_errors))
        listener.start()
        ready.wait(10)

        # Client 0 needs admin rights (it opens victim accounts); the others use the operator key.
        tallies, lock, budget = [_Tally() for _ in range(clients)], threading.Lock(), [max_commands]
        gate = threading.Barrier(clients + 1)
        say(f"running {clients} clients for {seconds:g} s, {batch} fill{'s' if batch > 1 else ''} per request")
        threads = []
        deadline = time.perf_counter() + seconds
        for number in range(clients):
            key = admin_key if number == 0 else created["key"]
            threads.append(threading.Thread(target=_worker, daemon=True, args=(
                number, host, port, key, venue, run, deadline, budget, lock, tallies[number], timeline, gate, batch)))
            threads[-1].start()
        gate.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join(seconds + 60)
        elapsed = time.perf_counter() - began
        time.sleep(0.3)  # let the stream deliver the last liquidations
        stop.set()
        listener.join(5)
        if stream_errors:
            say(f"stream: {stream_errors[0]}")

        tally = _Tally()
        for part in tallies:  # one tally per worker thread: no shared counters
            tally.sent += part.sent
            tally.acknowledged += part.acknowledged
            tally.refused += part.refused
            tally.errors += part.errors
            tally.requests += part.requests
            tally.latencies += part.latencies
            tally.liquidating.update(part.liquidating)
            for status_text, count in part.statuses.items():
                tally.statuses[status_text] = tally.statuses.get(status_text, 0) + count
        stream_latencies = [arrivals[seq] - acked for seq, acked in tally.liquidating.items() if seq in arrivals]
        latencies_ms = [value * 1000 for value in tally.latencies]
        stream_ms = [max(0.0, value) * 1000 for value in stream_latencies]
        rate = tally.acknowledged / elapsed if elapsed > 0 else 0.0
        p99 = percentile(latencies_ms, 99)
        met = rate >= TARGET_COMMANDS_PER_SECOND and p99 is not None and p99 < TARGET_P99_MS
        return ServeBenchResult(
            database=_database_name(database) if db is not None else database, url=url, seconds=round(elapsed, 3),
            clients=clients, batch=batch, commands_sent=tally.sent, commands_acknowledged=tally.acknowledged,
            commands_refused=tally.refused, errors=tally.errors, commands_per_second=round(rate, 1),
            requests_sent=tally.requests, requests_per_second=round(tally.requests / elapsed, 1) if elapsed > 0 else 0.0,
            latency_p50_ms=_round(percentile(latencies_ms, 50)), latency_p99_ms=_round(p99),
            liquidating_updates=len(tally.liquidating), liquidations_seen_on_stream=len(stream_latencies),
            liquidation_stream_p50_ms=_round(percentile(stream_ms, 50)),
            liquidation_stream_p99_ms=_round(percentile(stream_ms, 99)),
            target_met="yes" if met else "no", statuses=tally.statuses)
    finally:
        if process is not None:
            say("stopping the server")
            stop_server(process)
        if temporary is not None:
            temporary.cleanup()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
