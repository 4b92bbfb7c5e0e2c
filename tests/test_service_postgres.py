"""The live service end to end on PostgreSQL: a real server process (``solvent serve``) over a
PostgreSQL log (127.0.0.1:5432, database ``test``, a fresh schema per test, dropped afterwards;
skipped only if PostgreSQL is unreachable), real HTTP (httpx) and WebSocket (websockets) clients:
setup, fills, a liquidating price update, ccxt-named reads, the stream resumed from a seq, then
SIGKILL and restart with the state digest unchanged and nothing lost or applied twice."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytest.importorskip("websockets")
from websockets.sync.client import connect

from conftest import postgres_schema
from solvent.bench.serve import free_port, start_server
from solvent.engine import Engine
from solvent.store import CommandLog, state_digest

ADMIN = "sk_admin_pg_test_0123456789abcdefghijklmnop"
BIG = "100000000"

SETUP = [
    {"kind": "create_venue", "venue": "bn", "preset": "binance", "overrides": {}},
    {"kind": "fund_insurance", "asset": "USDT", "amount": "100000", "venue": "bn"},
    {"kind": "deposit", "account": "bn/book", "asset": "USDT", "amount": BIG},
    {"kind": "deposit", "account": "bn/liquidator", "asset": "USDT", "amount": BIG},
    {"kind": "open_account", "account": "alice", "venue": "bn"},
    {"kind": "deposit", "account": "alice", "asset": "USDT", "amount": "1000"},
    {"kind": "open_account", "account": "bob", "venue": "bn"},
    {"kind": "deposit", "account": "bob", "asset": "USDT", "amount": "5000"},
    {"kind": "open_account", "account": "mm", "venue": "bn"},
    {"kind": "deposit", "account": "mm", "asset": "USDT", "amount": BIG},
    {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60000"}, "timestamp": 1},
]
FILLS = [
    {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": "alice", "seller": "mm", "size": "0.5",
     "price": "60000"},
    {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": "bob", "seller": "mm", "size": "0.2",
     "price": "60010"},
    {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": "mm", "seller": "bob", "size": "0.1",
     "price": "60020"},
]
CRASH = {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "57000"}, "timestamp": 2}
AFTER = [
    {"kind": "advance_time", "timestamp": 3},
    {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": "bob", "seller": "mm", "size": "0.05",
     "price": "57000"},
]
LIQUIDATION = {"liquidation_started", "position_liquidated"}


@pytest.fixture
def pg_url():
    with postgres_schema("service") as url:
        yield url


def start(url: str, port: int) -> subprocess.Popen:
    """``solvent serve`` on 127.0.0.1 with the tests' admin key, once it answers /v1/health."""
    return start_server(url, ADMIN, port)


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def receive(websocket, timeout: float = 10.0) -> dict:
    return json.loads(websocket.recv(timeout=timeout))


def test_the_service_end_to_end_on_postgresql_survives_sigkill(pg_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start(pg_url, port)
    commands = SETUP + FILLS + [CRASH] + AFTER
    try:
        with httpx.Client(base_url=base, headers=auth(ADMIN), timeout=10) as client:
            seqs: dict[int, int] = {}
            for index, command in enumerate(SETUP + FILLS):
                response = client.post("/v1/commands", json=command, headers={"Idempotency-Key": f"c{index}"})
                assert response.status_code == 200, response.text
                seqs[index] = response.json()["seq"]
            operator = client.post("/v1/keys", json={"role": "operator"}).json()["key"]
            alice = client.post("/v1/keys", json={"role": "account", "account": "alice"}).json()["key"]

            # ccxt names on a read, before the crash
            body = client.get("/v1/accounts/alice", headers=auth(alice)).json()
            [position] = body["positions"]
            assert position["side"] == "long" and float(position["contracts"]) == 0.5
            assert 55000 < float(position["liquidationPrice"]) < 60000
            for name in ("entryPrice", "markPrice", "notional", "initialMargin", "maintenanceMargin", "unrealizedPnl"):
                assert isinstance(position[name], str)

            # a live stream (admin) opened before the liquidating price update (after the key
            # registrations, which are logged entries too)
            head = client.get("/v1/health").json()["seq"]
            with connect(f"ws://127.0.0.1:{port}/v1/stream?from_seq={head + 1}&key={ADMIN}") as live:
                crash = client.post("/v1/commands", json=CRASH,
                                    headers={**auth(operator), "Idempotency-Key": f"c{len(seqs)}"})
                assert crash.status_code == 200, crash.text
                liquidation = crash.json()
                seqs[len(seqs)] = liquidation["seq"]
                assert LIQUIDATION & {event["kind"] for event in liquidation["events"]}
                message = receive(live)
                assert message["seq"] == liquidation["seq"] and message["index"] == 0
            for command in AFTER:
                response = client.post("/v1/commands", json=command, headers={"Idempotency-Key": f"c{len(seqs)}"})
                assert response.status_code == 200, response.text
                seqs[len(seqs)] = response.json()["seq"]
            in_order = [seqs[index] for index in sorted(seqs)]  # once each, in order (key entries between)
            assert in_order == sorted(set(in_order)) and len(in_order) == len(commands)
            after_liquidation = client.get("/v1/accounts/alice", headers=auth(alice)).json()
            assert not [p for p in after_liquidation["positions"] if float(p["contracts"]) > 0]

            # resume from the liquidation's seq with alice's key: her events only, in order
            with connect(f"ws://127.0.0.1:{port}/v1/stream?from_seq={liquidation['seq']}&key={alice}") as ws:
                first = receive(ws)
                assert first["seq"] == liquidation["seq"] and "alice" in json.dumps(first["event"])
            before = client.get("/v1/state").json()
            assert before["entries"] == len(commands) + 3  # and the three keys' register_key entries

        kill(process)  # SIGKILL, no shutdown
        process = start(pg_url, port)
        with httpx.Client(base_url=base, headers=auth(ADMIN), timeout=10) as client:
            after = client.get("/v1/state").json()
            assert after == before  # same seq, digest and entry count: nothing lost
            # retries of every command under its key are answered from the log, none applied twice
            for index, command in enumerate(commands):
                response = client.post("/v1/commands", json=command, headers={"Idempotency-Key": f"c{index}"})
                assert response.status_code == 200, response.text
                assert response.json()["replayed"] is True and response.json()["seq"] == seqs[index]
            assert client.get("/v1/state").json() == before
            assert client.get("/v1/accounts/alice", headers=auth(alice)).json() == after_liquidation
            with connect(f"ws://127.0.0.1:{port}/v1/stream?from_seq=1&key={ADMIN}") as ws:
                assert receive(ws)["seq"] == 1
    finally:
        kill(process)

    fresh = Engine()
    with CommandLog(pg_url) as log:
        for entry in log.entries():  # the commands and the keys' registrations, as logged
            fresh.apply(entry.command())
        assert log.count() == len(commands) + 3
    assert before["digest"] == state_digest(fresh)
