"""The live service: roles, validation at the edge, reads with ccxt names, the event stream, and
crash safety against a real server process killed with SIGKILL."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
import httpx
from fastapi.testclient import TestClient

from solvent.bench.serve import free_port, start_server
from solvent.engine import Engine
from solvent.engine.commands import command_from_dict
from solvent.service import create_app
from solvent.store import CommandLog, state_digest

ADMIN = "sk_admin_test_0123456789abcdefghijklmnop"
BIG = "100000000"

SETUP = [
    {"kind": "create_venue", "venue": "bn", "preset": "binance", "overrides": {}},
    {"kind": "fund_insurance", "asset": "USDT", "amount": "100000", "venue": "bn"},
    {"kind": "deposit", "account": "bn/book", "asset": "USDT", "amount": BIG},
    {"kind": "deposit", "account": "bn/liquidator", "asset": "USDT", "amount": BIG},
    {"kind": "open_account", "account": "alice", "venue": "bn"},
    {"kind": "deposit", "account": "alice", "asset": "USDT", "amount": "1000"},
    {"kind": "open_account", "account": "mm", "venue": "bn"},
    {"kind": "deposit", "account": "mm", "asset": "USDT", "amount": BIG},
    {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60000"}, "timestamp": 1},
    {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": "alice", "seller": "mm", "size": "0.5",
     "price": "60000"},
]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def service(tmp_path):
    url = f"sqlite:///{tmp_path}/service.db"
    app = create_app(url, admin_key=ADMIN)
    with TestClient(app) as client:
        for command in SETUP:
            response = client.post("/v1/commands", json=command, headers=auth(ADMIN))
            assert response.status_code == 200, response.text
        operator = client.post("/v1/keys", json={"role": "operator"}, headers=auth(ADMIN)).json()["key"]
        alice = client.post("/v1/keys", json={"role": "account", "account": "alice"}, headers=auth(ADMIN)).json()["key"]
        yield client, app.state.service.log, {"admin": ADMIN, "operator": operator, "alice": alice}


# ============================================================================================
# Roles: 401/403 and nothing written
# ============================================================================================

WITHDRAW_MM = {"kind": "withdraw", "account": "mm", "asset": "USDT", "amount": "1"}
PRICE = {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60100"}, "timestamp": 2}
VENUE = {"kind": "create_venue", "venue": "hl", "preset": "hyperliquid", "overrides": {}}


@pytest.mark.parametrize("who, command, status", [
    (None, PRICE, 401),
    ("sk_wrong", PRICE, 401),
    ("alice", PRICE, 403),  # an account key cannot push prices
    ("alice", WITHDRAW_MM, 403),  # nor move another account's money
    ("operator", VENUE, 403),  # an operator does not configure venues
    ("operator", WITHDRAW_MM, 403),
    # A deposit creates money in the engine: an account key cannot credit itself.
    ("alice", {"kind": "deposit", "account": "alice", "asset": "USDT", "amount": "1000000"}, 403),
    # Nor may an operator open funded accounts in bulk; liquidators' takeovers come from the operator.
    ("operator", {"kind": "open_positions", "venue": "bn", "market": "BTCUSDT", "counterparty": "mm",
                  "accounts": ["x"], "deposits": ["1000000"], "sizes": ["1"], "prices": ["60000"]}, 403),
    ("alice", {"kind": "take_over", "venue": "bn", "liquidator": "alice", "account": "mm", "market": "BTCUSDT",
               "size": "1"}, 403),
])
def test_a_request_without_the_right_key_is_refused_and_writes_nothing(service, who, command, status):
    client, log, keys = service
    before = log.count()
    headers = {} if who is None else auth(keys.get(who, who))
    response = client.post("/v1/commands", json=command, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert log.count() == before


def test_each_role_may_do_its_own_job(service):
    client, log, keys = service
    assert client.post("/v1/commands", json=PRICE, headers=auth(keys["operator"])).status_code == 200
    withdraw = {"kind": "withdraw", "account": "alice", "asset": "USDT", "amount": "1"}
    assert client.post("/v1/commands", json=withdraw, headers=auth(keys["alice"])).status_code == 200
    assert client.post("/v1/venues", json={"venue": "hl", "preset": "hyperliquid"},
                       headers=auth(keys["admin"])).status_code == 200
    # An account key reads its own account only.
    assert client.get("/v1/accounts/alice", headers=auth(keys["alice"])).status_code == 200
    assert client.get("/v1/accounts/mm", headers=auth(keys["alice"])).status_code == 403
    assert client.get("/v1/accounts/mm").status_code == 401
    assert client.post("/v1/keys", json={"role": "admin"}, headers=auth(keys["operator"])).status_code == 403


def test_keys_are_stored_hashed(service):
    client, log, keys = service
    import sqlalchemy as sa

    with log.db.connect() as connection:
        stored = {row.key_hash for row in connection.execute(sa.text("SELECT key_hash FROM api_keys"))}
    assert not any(key in stored for key in keys.values())
    assert len(stored) == 3


# ============================================================================================
# Bad input: a clear 4xx naming the field, nothing written
# ============================================================================================

FILL = SETUP[-1]
BULK = {"kind": "open_positions", "venue": "bn", "market": "BTCUSDT", "counterparty": "mm", "accounts": ["b1", "b2"],
        "deposits": ["100", "200"], "sizes": ["0.01", "-0.02"], "prices": ["60000", "60000"]}


@pytest.mark.parametrize("body, status, field", [
    ('{"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": "alice", "seller": "mm", '
     '"size": NaN, "price": "60000"}', 422, "size"),
    ({**FILL, "size": "NaN"}, 422, "size"),
    ({**FILL, "price": "Infinity"}, 422, "price"),
    ({**FILL, "size": "-1"}, 422, "size"),
    ({**FILL, "size": "1e30"}, 422, "size"),
    ('{"kind": "deposit", "account": "alice", "asset": "USDT", "amount": 1.5}', 422, "amount"),
    ({**FILL, "venue": "nowhere"}, 404, "venue"),
    ({**FILL, "market": "DOGEUSDT"}, 404, "market"),
    ({**FILL, "buyer": "nobody"}, 404, "buyer"),
    ({**PRICE, "prices": {"BTCUSDT": "0"}}, 422, "prices.BTCUSDT"),
    ({**PRICE, "timestamp": 0}, 409, "timestamp"),  # out of order: time goes backwards
    ({**FILL, "colour": "red"}, 422, "colour"),
    ({"kind": "explode"}, 422, "kind"),
    ({"kind": "deposit", "account": "alice", "asset": "USDT"}, 422, "amount"),
    ({**FILL, "size": 1}, 422, "size"),
    ({"kind": "open_account", "account": "alice", "venue": "bn"}, 409, "account"),  # a duplicate
    ('{"kind": "deposit", ', 400, None),
    ("[1, 2]", 422, "[0]"),  # a batch whose first command is not an object
    ("7", 422, None),
    ("[]", 422, None),  # an empty batch
    ({**BULK, "deposits": ["100", "NaN"]}, 422, "deposits[1]"),
    ({**BULK, "prices": ["60000", "-1"]}, 422, "prices[1]"),
    ({**BULK, "sizes": ["0.1", 0.2]}, 422, "sizes[1]"),
])
def test_bad_input_is_refused_at_the_edge_naming_the_field(service, body, status, field):
    client, log, keys = service
    before = log.count()
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post("/v1/commands", content=content,
                           headers={**auth(keys["admin"]), "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert log.count() == before


def test_an_oversized_payload_is_refused(service):
    client, log, keys = service
    before = log.count()
    body = json.dumps({**VENUE, "overrides": {"padding": "x" * 70_000}})
    response = client.post("/v1/commands", content=body, headers=auth(keys["admin"]))
    assert response.status_code == 413
    assert log.count() == before


def test_an_engine_refusal_is_recorded_with_its_reason(service):
    client, log, keys = service
    before = log.count()
    response = client.post("/v1/commands", json={"kind": "withdraw", "account": "alice", "asset": "USDT",
                                                 "amount": "999999"}, headers=auth(keys["alice"]))
    assert response.status_code == 422
    body = response.json()
    assert body["recorded"] and body["seq"] == before + 1 and body["error"]
    assert log.count() == before + 1


def test_a_duplicate_idempotency_key_returns_the_original_result(service):
    client, log, keys = service
    headers = {**auth(keys["operator"]), "Idempotency-Key": "price-2"}
    first = client.post("/v1/commands", json=PRICE, headers=headers)
    count = log.count()
    again = client.post("/v1/commands", json=PRICE, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["seq"] == first.json()["seq"] and again.json()["events"] == first.json()["events"]
    assert again.json()["replayed"] is True
    other = client.post("/v1/commands", json={**PRICE, "timestamp": 3}, headers=headers)
    assert other.status_code == 409 and other.json()["field"] == "Idempotency-Key"
    assert log.count() == count


# ============================================================================================
# Reads and the stream
# ============================================================================================


def test_an_account_reads_with_ccxt_names_and_a_liquidation_price(service):
    client, _, keys = service
    body = client.get("/v1/accounts/alice", headers=auth(keys["alice"])).json()
    [position] = body["positions"]
    assert position["side"] == "long" and float(position["contracts"]) == 0.5 and position["marginMode"] == "cross"
    for name in ("entryPrice", "markPrice", "notional", "collateral", "initialMargin", "maintenanceMargin",
                 "unrealizedPnl"):
        assert isinstance(position[name], str)
    assert float(position["liquidationPrice"]) < 60000 and float(position["liquidationPrice"]) > 55000
    assert body["pools"][0]["collateral"] and body["pools"][0]["maintenanceMargin"]
    venue = client.get("/v1/venues/bn", headers=auth(keys["operator"])).json()
    assert float(venue["insuranceFund"]["USDT"]) == 100000 and float(venue["markets"]["BTCUSDT"]["markPrice"]) == 60000
    assert client.get("/v1/venues/nowhere", headers=auth(keys["operator"])).status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_the_stream_resumes_from_a_seq_and_filters_an_account_key(service):
    client, log, keys = service
    crash = {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "57000"}, "timestamp": 2}
    liquidation = client.post("/v1/commands", json=crash, headers=auth(keys["operator"])).json()
    kinds = {event["kind"] for event in liquidation["events"]}
    assert "position_liquidated" in kinds or "liquidation_started" in kinds
    with client.websocket_connect(f"/v1/stream?from_seq={liquidation['seq']}&key={keys['alice']}") as ws:
        first = ws.receive_json()
        assert first["seq"] == liquidation["seq"]
        assert "alice" in json.dumps(first["event"])
    with client.websocket_connect(f"/v1/stream?from_seq=1&key={keys['admin']}") as ws:
        assert ws.receive_json()["seq"] == 1  # venue_created
        seen = [ws.receive_json()["seq"] for _ in range(3)]
        assert seen == sorted(seen)
        live = client.post("/v1/commands", json={"kind": "advance_time", "timestamp": 5},
                           headers=auth(keys["operator"])).json()
        while True:
            message = ws.receive_json()
            if message["seq"] == live["seq"]:
                break
    with pytest.raises(Exception), client.websocket_connect("/v1/stream?from_seq=1&key=sk_wrong") as ws:
        ws.receive_json()


# ============================================================================================
# Crash safety: SIGKILL a real server at random points
# ============================================================================================


def start(url: str, port: int) -> subprocess.Popen:
    """``solvent serve`` on 127.0.0.1 with the tests' admin key, once it answers /v1/health."""
    return start_server(url, ADMIN, port)


def crash_commands() -> list[dict]:
    commands = list(SETUP[:-1])
    rng = random.Random(11)
    for index in range(40):
        buyer, seller = ("alice", "mm") if index % 2 == 0 else ("mm", "alice")
        commands.append({"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": buyer, "seller": seller,
                         "size": "0.01", "price": str(60000 + rng.randint(-50, 50))})
        if index % 5 == 4:
            commands.append({"kind": "update_oracle", "venue": "bn",
                             "prices": {"BTCUSDT": str(60000 + rng.randint(-300, 300))}, "timestamp": 2 + index})
    return commands


def send_while_killing(url: str, requests: list[tuple], kill_count: int, seed: int) -> tuple[dict, int, dict]:
    """Send each ``(body, headers)`` to a real server, SIGKILLing it within 20 ms of ``kill_count``
    random requests (before, during or after them); a request the kill interrupts is sent again,
    to a restarted server, under the same idempotency keys. Returns the acknowledged answers by
    request index, the number of kills and the server's final state."""
    port = free_port()
    rng = random.Random(seed)
    kill_at = set(rng.sample(range(len(requests)), kill_count))
    process = start(url, port)
    kills, acknowledged = 0, {}
    started = time.monotonic()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth(ADMIN), timeout=10) as client:
            for index, (body, headers) in enumerate(requests):
                timer, victim = None, process
                if index in kill_at:
                    timer = threading.Timer(rng.uniform(0, 0.02), process.send_signal, (signal.SIGKILL,))
                    timer.start()
                while index not in acknowledged:
                    assert time.monotonic() - started < 50, "the crash loop took too long"
                    try:
                        response = client.post("/v1/commands", json=body, headers=headers)
                    except httpx.TransportError:  # killed: restart and send it again under the same keys
                        process.wait(timeout=10)
                        kills += 1
                        process = start(url, port)
                        continue
                    assert response.status_code == 200, response.text
                    acknowledged[index] = response.json()
                if timer is not None:
                    timer.join()
                    if process is victim:  # the kill landed after the answer: restart
                        process.wait(timeout=10)
                        kills += 1
                        process = start(url, port)
            state = client.get("/v1/state").json()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    return acknowledged, kills, state


def test_sigkill_at_random_points_loses_no_acknowledged_command_and_applies_none_twice(tmp_path):
    url = f"sqlite:///{tmp_path}/crash.db"
    commands = crash_commands()
    answers, kills, state = send_while_killing(
        url, [(command, {"Idempotency-Key": f"c{index}"}) for index, command in enumerate(commands)], 5, 2025)
    fresh = admin_registered()
    for command in commands:
        fresh.apply(command_from_dict(command))
    assert kills == 5, kills
    # once each (entry 1 registered the admin key: keys are logged)
    assert sorted(answer["seq"] for answer in answers.values()) == list(range(2, len(commands) + 2))
    assert state["entries"] == len(commands) + 1
    assert state["digest"] == state_digest(fresh)
    with CommandLog(url) as log:
        assert log.count() == len(commands) + 1


def admin_registered() -> Engine:
    """An engine after entry 1 of a service's log: the bootstrap admin key's registration."""
    from solvent.engine.commands import RegisterKey
    from solvent.service.keys import hash_key

    engine = Engine()
    engine.apply(RegisterKey(hash_key(ADMIN), "admin", label="bootstrap"))
    return engine


# ============================================================================================
# Group commit: concurrent requests, one writer
# ============================================================================================


def test_concurrent_commands_are_group_committed_in_seq_order_and_keys_deduplicate(service):
    from concurrent.futures import ThreadPoolExecutor

    from solvent.service.keys import Principal
    from solvent.store import verify_log

    client, log, keys = service
    svc = client.app.state.service
    admin = Principal("admin")
    before = log.count()

    def fill(index):
        buyer, seller = ("alice", "mm") if index % 2 == 0 else ("mm", "alice")
        return {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": buyer, "seller": seller,
                "size": "0.001", "price": "60000"}

    def send(index):
        key = f"same-{index % 20}"  # every key sent by several threads at once: applied once
        response = svc.submit(admin, fill(index % 20), key)
        return key, json.loads(response.body)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(200)))
    seqs = {}
    for key, body in answers:
        seqs.setdefault(key, set()).add(body["seq"])
    assert all(len(found) == 1 for found in seqs.values())
    assert sorted(seq for found in seqs.values() for seq in found) == list(range(before + 1, before + 21))
    assert sum(not body["replayed"] for _, body in answers) == 20
    assert log.count() == before + 20 and verify_log(log).entries == before + 20
    # Edge validation still refuses before anything is written, under concurrency too.
    with pytest.raises(Exception) as refused:
        svc.submit(admin, {**fill(0), "buyer": "nobody"}, None)
    assert getattr(refused.value, "status", None) == 404 and log.count() == before + 20
    state = client.get("/v1/state", headers=auth(keys["admin"])).json()
    assert state["seq"] == state["entries"] == before + 20


def test_account_reads_use_the_venues_liquidation_price_conventions():
    """Bybit values maintenance at the entry price: its doc's 1 BTC long at 20,000 with 400 USDT
    liquidates at 19,700 (the default convention would give 19,698.49)."""
    from decimal import Decimal

    from solvent.engine import Engine
    from solvent.engine import commands as c
    from solvent.service.views import account_view

    engine = Engine()
    engine.apply(c.CreateVenue("by", "bybit"))
    for account, amount in (("t", "400"), ("mm", "1000000")):
        engine.apply(c.OpenAccount(account, "by"))
        engine.apply(c.Deposit(account, "USDT", amount))
    engine.apply(c.UpdateOracle("by", {"BTCUSDT": "20000"}, 1))
    engine.apply(c.ApplyFill("by", "BTCUSDT", "t", "mm", "1", "20000"))
    assert Decimal(account_view(engine, "t")["positions"][0]["liquidationPrice"]) == Decimal(19700)


def test_an_admin_revokes_a_key_by_its_id_and_it_stops_working_at_once(service):
    client, log, keys = service
    created = client.post("/v1/keys", json={"role": "operator"}, headers=auth(keys["admin"])).json()
    operator, key_id = created["key"], created["id"]
    assert key_id not in operator and len(key_id) == 16  # the id names the key without revealing it
    price = {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60100"}, "timestamp": 5}
    assert client.post("/v1/commands", json=price, headers=auth(operator)).status_code == 200  # now cached
    assert client.delete(f"/v1/keys/{key_id}", headers=auth(keys["operator"])).status_code == 403
    assert client.delete(f"/v1/keys/{key_id}", headers=auth(keys["admin"])).status_code == 204
    before = log.count()
    assert client.post("/v1/commands", json=dict(price, timestamp=6), headers=auth(operator)).status_code == 401
    assert log.count() == before
    assert client.delete(f"/v1/keys/{key_id}", headers=auth(keys["admin"])).status_code == 404
    assert client.delete("/v1/keys/not-an-id", headers=auth(keys["admin"])).status_code == 422


# ============================================================================================
# Batches: POST /v1/commands with a JSON array
# ============================================================================================


def fill(buyer="alice", seller="mm", size="0.001", **extra):
    return {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": buyer, "seller": seller, "size": size,
            "price": "60000", **extra}


def test_a_batch_is_applied_in_order_with_consecutive_seqs_and_one_outcome_per_command(service):
    client, log, keys = service
    before = log.count()
    batch = [fill(), {"kind": "withdraw", "account": "alice", "asset": "USDT", "amount": "999999"},
             {"kind": "open_account", "account": "carol", "venue": "bn"},
             {"kind": "deposit", "account": "carol", "asset": "USDT", "amount": "500"},  # opened just before
             fill("carol", "mm")]
    response = client.post("/v1/commands", json=batch, headers=auth(keys["admin"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [result["status"] for result in body["results"]] == [200, 422, 200, 200, 200]
    assert [result["seq"] for result in body["results"]] == list(range(before + 1, before + 6))
    assert body["committed"] == 5 and log.count() == before + 5
    assert body["results"][0]["events"][0]["kind"] == "fill_applied"
    refused = body["results"][1]
    assert refused["recorded"] and refused["error"] and refused["kind"] == "withdraw"
    # The same outcomes as the one-command form, and the same log.
    assert body["results"][0]["events"] == json.loads(log.entry(before + 1).outcome)["events"]
    assert client.get("/v1/accounts/carol", headers=auth(keys["admin"])).json()["positions"]


@pytest.mark.parametrize("batch, status, field, index", [
    ([fill(), fill(size="NaN"), fill()], 422, "[1].size", 1),
    ([fill(), {"kind": "explode"}], 422, "[1].kind", 1),
    ([fill(), 7], 422, "[1]", 1),
    ([fill(), fill(colour="red")], 422, "[1].colour", 1),
    ([fill(idempotency_key="")], 422, "[0].idempotency_key", 0),
    ([fill(idempotency_key="x" * 201)], 422, "[0].idempotency_key", 0),
    ([fill(idempotency_key=5)], 422, "[0].idempotency_key", 0),
    ([fill()] * 1001, 413, None, None),
])
def test_an_invalid_command_refuses_the_whole_batch_naming_it_and_writes_nothing(service, batch, status, field, index):
    client, log, keys = service
    before = log.count()
    response = client.post("/v1/commands", json=batch, headers=auth(keys["admin"]))
    assert response.status_code == status, response.text
    assert response.json()["field"] == field and response.json().get("index") == index
    assert log.count() == before


def test_a_batch_takes_idempotency_keys_per_command_not_the_header(service):
    client, log, keys = service
    before = log.count()
    response = client.post("/v1/commands", json=[fill()], headers={**auth(keys["admin"]), "Idempotency-Key": "k"})
    assert response.status_code == 422 and response.json()["field"] == "Idempotency-Key"
    assert log.count() == before


@pytest.mark.parametrize("who, batch, field", [
    ("operator", [fill(), VENUE], "[1].kind"),  # an operator does not configure venues
    ("alice", [{"kind": "withdraw", "account": "alice", "asset": "USDT", "amount": "1"}, WITHDRAW_MM], "[1].account"),
    ("alice", [PRICE], "[0].kind"),
])
def test_the_role_is_checked_for_every_command_of_a_batch(service, who, batch, field):
    client, log, keys = service
    before = log.count()
    response = client.post("/v1/commands", json=batch, headers=auth(keys[who]))
    assert response.status_code == 403 and response.json()["field"] == field
    assert log.count() == before


def test_a_batch_stops_at_a_command_refused_against_the_state(service):
    client, log, keys = service
    before = log.count()
    response = client.post("/v1/commands", json=[fill(), fill(buyer="nobody"), fill()], headers=auth(keys["operator"]))
    assert response.status_code == 404
    applied, refused, skipped = response.json()["results"]
    assert applied["status"] == 200 and applied["seq"] == before + 1
    assert refused == {"kind": "apply_fill", "status": 404, "error": "unknown account 'nobody'", "field": "buyer",
                       "recorded": False}
    assert skipped["status"] == 424 and not skipped["recorded"] and "seq" not in skipped
    assert response.json()["committed"] == 1 and log.count() == before + 1


def test_batch_commands_are_idempotent_one_by_one(service):
    client, log, keys = service
    before = log.count()
    batch = [fill(idempotency_key="b1"), fill("mm", "alice", idempotency_key="b2"), fill(idempotency_key="b1")]
    first = client.post("/v1/commands", json=batch, headers=auth(keys["operator"])).json()["results"]
    assert [r["seq"] for r in first] == [before + 1, before + 2, before + 1]  # b1 twice in one batch: once
    assert [r["replayed"] for r in first] == [False, False, True]
    again = client.post("/v1/commands", json=batch[:2] + [fill(idempotency_key="b3")],
                        headers=auth(keys["operator"])).json()["results"]
    assert [r["seq"] for r in again] == [before + 1, before + 2, before + 3] and again[0]["replayed"]
    # The single-command form answers a key recorded by a batch, and the reverse.
    single = client.post("/v1/commands", json=fill(), headers={**auth(keys["operator"]), "Idempotency-Key": "b2"})
    assert single.status_code == 409  # b2 names another command (mm buys)
    single = client.post("/v1/commands", json=fill("mm", "alice"),
                         headers={**auth(keys["operator"]), "Idempotency-Key": "b2"})
    assert single.json()["replayed"] and single.json()["seq"] == before + 2
    conflict = client.post("/v1/commands", json=[fill(idempotency_key="b4"), fill("mm", "alice", idempotency_key="b1"),
                                                 fill(idempotency_key="b5")], headers=auth(keys["operator"]))
    assert conflict.status_code == 409
    assert [r["status"] for r in conflict.json()["results"]] == [200, 409, 424]
    assert log.count() == before + 4


def test_a_batch_on_the_shortcut_routes_is_refused(service):
    client, log, keys = service
    before = log.count()
    response = client.post("/v1/fills", json=[fill()], headers=auth(keys["operator"]))
    assert response.status_code == 422 and log.count() == before


def test_batches_against_a_real_server_killed_at_random_points_lose_nothing_and_apply_nothing_twice(tmp_path):
    url = f"sqlite:///{tmp_path}/batch-crash.db"
    commands = crash_commands()
    batches = [commands[start:start + 5] for start in range(0, len(commands), 5)]
    requests = [([{**command, "idempotency_key": f"b{number}-{index}"} for index, command in enumerate(batch)], {})
                for number, batch in enumerate(batches)]
    answers, kills, state = send_while_killing(url, requests, 3, 7)
    fresh = admin_registered()
    for command in commands:
        fresh.apply(command_from_dict(command))
    assert kills == 3, kills
    seqs = [result["seq"] for number in range(len(batches)) for result in answers[number]["results"]]
    # once each, in order, a batch's seqs consecutive (entry 1 registered the admin key: keys are logged)
    assert seqs == list(range(2, len(commands) + 2))
    assert state["entries"] == len(commands) + 1 and state["digest"] == state_digest(fresh)


def test_plain_decimal_strings_get_the_same_verdict_as_the_decimal_path():
    """The fast path for plain decimal strings refuses exactly what Decimal's checks refuse."""
    from decimal import Decimal

    from solvent.service import validation

    def by_decimal(value, sign):
        number = Decimal(value)
        return (number.is_finite() and abs(number) <= validation.ABSURD
                and len(number.as_tuple().digits) <= validation.MAX_DIGITS
                and not (sign == "positive" and number <= 0))

    rng = random.Random(5)
    values = ["0", "0.0", "00", "0.000", "000.0001", "1", "0.001", "60000", "9" * 20, "1" + "0" * 19,
              "0." + "0" * 18, "0." + "0" * 17 + "1"]
    for _ in range(2000):
        whole = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 18)))
        values.append(whole + ("." + fraction if fraction else ""))
    for value in values:
        assert validation.PLAIN_DECIMAL.fullmatch(value)
        for sign in ("positive", "non_negative", "any"):
            try:
                validation._decimal(value, "size", sign=sign)
                accepted = True
            except validation.EdgeError:
                accepted = False
            assert accepted == by_decimal(value, sign), (value, sign)


def test_an_account_key_moves_its_own_isolated_margin_in_and_out(service):
    client, _, keys = service
    fill = {"kind": "apply_fill", "venue": "bn", "market": "ZECUSDT", "buyer": "alice", "seller": "mm",
            "size": "1", "price": "300", "buyer_margin_mode": "isolated", "buyer_leverage": "10"}
    prices = {"kind": "update_oracle", "venue": "bn", "prices": {"ZECUSDT": "300"}, "timestamp": 2}
    for command in (prices, fill):
        response = client.post("/v1/commands", json=command, headers=auth(keys["operator"]))
        assert response.status_code == 200, response.text
    move = {"kind": "adjust_isolated_margin", "venue": "bn", "account": "alice", "market": "ZECUSDT"}
    added = client.post("/v1/commands", json={**move, "amount": "20"}, headers=auth(keys["alice"]))
    assert added.status_code == 200, added.text
    taken = client.post("/v1/commands", json={**move, "amount": "-5"}, headers=auth(keys["alice"]))  # signed here
    assert taken.status_code == 200, taken.text
    # Alice's key cannot move mm's margin; a zero-size leverage and an unknown market are refused at the edge.
    assert client.post("/v1/commands", json={**move, "account": "mm", "amount": "1"},
                       headers=auth(keys["alice"])).status_code == 403
    bad = client.post("/v1/commands", json={**fill, "buyer_leverage": "-2"}, headers=auth(keys["operator"]))
    assert bad.status_code == 422 and "buyer_leverage" in bad.text
    unknown = client.post("/v1/commands", json={**move, "market": "DOGEUSDT", "amount": "1"}, headers=auth(keys["alice"]))
    assert unknown.status_code == 404 and "market" in unknown.text
    # Her key changes the position's leverage too: the margin follows (1x: 300 on the entry value).
    lever = {"kind": "set_isolated_leverage", "venue": "bn", "account": "alice", "market": "ZECUSDT"}
    changed = client.post("/v1/commands", json={**lever, "leverage": "1"}, headers=auth(keys["alice"]))
    assert changed.status_code == 200, changed.text
    assert [event for event in changed.json()["events"] if event["kind"] == "isolated_leverage_changed"][0][
        "isolated_margin"] == "300.00000000"
    refused = client.post("/v1/commands", json={**lever, "leverage": "-1"}, headers=auth(keys["alice"]))
    assert refused.status_code == 422 and "leverage" in refused.text
