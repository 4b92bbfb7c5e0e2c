"""``solvent serve --publish``: every committed event on NATS JetStream exactly once, by seq, across
a SIGKILL between commit and publish and a restart. Needs NATS with JetStream at
127.0.0.1:4222 (``nats-server -js``; up in CI): the test fails rather than skips without it
(deselect with ``-m "not nats"``)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from solvent.bench.serve import free_port
from solvent.store import CommandLog

NATS = "nats://127.0.0.1:4222"
ADMIN = "sk_admin_bus" + "_0123456789abcdef0123456789"  # at least 32 characters
BIG = "100000000"

pytestmark = pytest.mark.nats


def nats_up() -> None:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=2).close()
    except OSError:
        pytest.fail("NATS is not running at 127.0.0.1:4222 (start `nats-server -js`, or deselect -m 'not nats')")


def serve(db: str, port: int, log_path, *extra: str) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from solvent.cli.main import app; app()", "serve", "--init", "--port", str(port), *extra],
            env={**os.environ, "SOLVENT_ADMIN_KEY": ADMIN, "SOLVENT_DB": db, "SOLVENT_ACCESS_LOG": "0"},
            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, Path(log_path).read_text()[-2000:]
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/v1/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not start")


def commands(count: int, start: int) -> list[dict]:
    """Prices moving down and up, with fills: entries with events; and a withdrawal refused by the
    engine now and then (an entry without events, not published)."""
    out = []
    for step in range(start, start + count):
        if step % 7 == 3:
            out.append({"kind": "withdraw", "account": "alice", "asset": "USDT", "amount": "999999999"})
        elif step % 2:
            out.append({"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": "alice", "seller": "mm",
                        "size": "0.001", "price": str(60000 + step % 50)})
        else:
            out.append({"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": str(60000 - step % 300)},
                        "timestamp": 10 + step})
    return out


SETUP = [
    {"kind": "create_venue", "venue": "bn", "preset": "binance", "overrides": {}},
    {"kind": "fund_insurance", "asset": "USDT", "amount": "100000", "venue": "bn"},
    {"kind": "deposit", "account": "bn/book", "asset": "USDT", "amount": BIG},
    {"kind": "open_account", "account": "alice", "venue": "bn"},
    {"kind": "deposit", "account": "alice", "asset": "USDT", "amount": "100000"},
    {"kind": "open_account", "account": "mm", "venue": "bn"},
    {"kind": "deposit", "account": "mm", "asset": "USDT", "amount": BIG},
    {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60000"}, "timestamp": 1},
]


def post_all(port: int, batch: list[dict], stop_after: float | None = None) -> None:
    """Send commands one by one (a connection error ends it: the server was killed)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN}"},
                      timeout=10) as client:
        for command in batch:
            try:
                response = client.post("/v1/commands", json=command)
            except httpx.HTTPError:
                return
            assert response.status_code in (200, 422), response.text


async def stream_messages(stream: str, subject: str) -> list[tuple[str, dict]]:
    import nats
    from nats.js.errors import NotFoundError

    client = await nats.connect(NATS)
    try:
        js = client.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(stream, seq)
            assert message.subject == subject
            found.append((message.headers["Nats-Msg-Id"], json.loads(message.data)))
        return found
    finally:
        await client.close()


async def create_stream(stream: str, subject: str) -> None:
    """The stream with a 100 ms duplicate window (the least NATS takes): JetStream's deduplication cannot hide a publisher
    that republishes what is already there (it must resume after the stream's last seq)."""
    import nats

    client = await nats.connect(NATS)
    try:
        await client.jetstream().add_stream(name=stream, subjects=[subject], duplicate_window=0.1)
    finally:
        await client.close()


async def delete_stream(stream: str) -> None:
    import nats

    client = await nats.connect(NATS)
    try:
        await client.jetstream().delete_stream(stream)
    except Exception:
        pass
    finally:
        await client.close()


def wait_published(stream: str, subject: str, last_seq: int, timeout: float = 30) -> list[tuple[str, dict]]:
    deadline = time.monotonic() + timeout
    while True:
        found = asyncio.run(stream_messages(stream, subject))
        if (found and int(found[-1][0]) >= last_seq) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_every_committed_event_is_on_the_stream_exactly_once_across_a_kill_and_a_restart(tmp_path):
    nats_up()
    name = uuid.uuid4().hex[:12]
    stream, subject = f"SOLVENT_TEST_{name}", f"solvent.test.{name}"
    db = f"sqlite:///{tmp_path}/bus.db"
    log_path = tmp_path / "server.log"
    publish = ("--publish", NATS, "--publish-stream", stream, "--publish-subject", subject)
    asyncio.run(create_stream(stream, subject))
    try:
        # 1. published while it runs
        port = free_port()
        server = serve(db, port, log_path, *publish)
        post_all(port, SETUP + commands(30, 0))
        # 2. SIGKILL while commands are committed and published
        sender = __import__("threading").Thread(target=post_all, args=(port, commands(400, 30)))
        sender.start()
        time.sleep(0.4)
        server.send_signal(signal.SIGKILL)
        server.wait()
        sender.join()
        # 3. committed with no publisher at all: the extreme of a kill between commit and publish
        port = free_port()
        server = serve(db, port, log_path)
        post_all(port, commands(40, 1000))
        server.send_signal(signal.SIGKILL)
        server.wait()
        with CommandLog(db) as log:
            entries = list(log.entries(1))
        before_restart = asyncio.run(stream_messages(stream, subject))
        assert before_restart and int(before_restart[-1][0]) < entries[-1].seq  # something left to publish
        # 4. restart with the publisher: it resumes after the stream's last seq
        port = free_port()
        server = serve(db, port, log_path, *publish)
        with_events = [entry for entry in entries if entry.events]
        found = wait_published(stream, subject, with_events[-1].seq)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    finally:
        asyncio.run(delete_stream(stream))
    ids = [ident for ident, _ in found]
    assert len(ids) == len(set(ids))  # exactly once
    assert ids == [str(entry.seq) for entry in with_events]  # every committed event, in seq order, no refusal
    by_seq = {str(entry.seq): entry for entry in with_events}
    for ident, body in found:
        assert body["seq"] == int(ident)
        assert [event["kind"] for event in body["events"]] == [event["kind"] for event in by_seq[ident].events]
    assert len(with_events) > 60 and len(with_events) < len(entries)
