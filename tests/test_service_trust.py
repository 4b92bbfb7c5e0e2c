"""Issue 14 through the service: nothing a client sends can stop, freeze or silently rewrite it.

The poison request, the cross-venue clock, revocation closing a stream, a rate-limited key, a
deleted database file, edge inputs that used to give 500, keys listed and scoped, and a restart
from the default snapshots."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from solvent.service import create_app
from solvent.service.limits import Limit
from solvent.store import CommandLog, DurableEngine, verify_log
from test_service import ADMIN, SETUP, auth


def start(url: str, **options) -> TestClient:
    return TestClient(create_app(url, admin_key=ADMIN, **options))


@pytest.fixture
def served(tmp_path):
    url = f"sqlite:///{tmp_path}/service.db"
    with start(url) as client:
        for command in SETUP + [{"kind": "create_venue", "venue": "hl", "preset": "hyperliquid", "overrides": {}}]:
            assert client.post("/v1/commands", json=command, headers=auth(ADMIN)).status_code == 200
        keys = {"admin": ADMIN}
        for name, body in {"alice": {"role": "account", "account": "alice"},
                           "bn_feeder": {"role": "operator", "venue": "bn"},
                           "hl_feeder": {"role": "operator", "venue": "hl"}}.items():
            response = client.post("/v1/keys", json=body, headers=auth(ADMIN))
            assert response.status_code == 201, response.text
            keys[name] = response.json()["key"]
        yield client, url, keys


def test_the_poison_request_is_refused_and_everything_goes_on(served):
    client, url, keys = served
    opened = {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": "ivy", "seller": "mm",
              "size": "0.001", "price": "60000", "buyer_margin_mode": "isolated", "buyer_leverage": "10"}
    for body in ({"kind": "open_account", "account": "ivy", "venue": "bn"},
                 {"kind": "deposit", "account": "ivy", "asset": "USDT", "amount": "1000"}, opened):
        assert client.post("/v1/commands", json=body, headers=auth(ADMIN)).status_code == 200
    keys["ivy"] = client.post("/v1/keys", json={"role": "account", "account": "ivy"}, headers=auth(ADMIN)).json()["key"]
    for body, key, field in [
        ({"kind": "set_isolated_leverage", "venue": "bn", "account": "ivy", "market": "BTCUSDT",
          "leverage": "1E-999999999"}, "ivy", "leverage"),
        ({**opened, "buyer_leverage": "1E-999999999"}, "admin", "buyer_leverage"),
        ({"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "1E-400"}, "timestamp": 5}, "bn_feeder",
         "prices.BTCUSDT"),
        ({"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "1E+24"}, "timestamp": 5}, "bn_feeder",
         "prices.BTCUSDT"),
    ]:
        response = client.post("/v1/commands", json=body, headers=auth(keys[key]))
        assert response.status_code == 422 and response.json()["field"] == field, response.text
    # Every venue goes on, and a restart starts and verifies.
    price = {"kind": "update_oracle", "venue": "hl", "prices": {"BTC": "60000"}, "timestamp": 6}
    assert client.post("/v1/commands", json=price, headers=auth(keys["hl_feeder"])).status_code == 200
    client.__exit__(None, None, None)
    with start(url) as again:
        assert again.post("/v1/commands", json={**price, "timestamp": 7}, headers=auth(ADMIN)).status_code == 200
    with CommandLog(url) as log:
        assert verify_log(log).rejected >= 4


def test_one_venues_feeder_cannot_freeze_another_venues_prices(served):
    client, _, keys = served
    jump = {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60000"}, "timestamp": 2 ** 53}
    assert client.post("/v1/commands", json=jump, headers=auth(keys["bn_feeder"])).status_code == 422  # past 9999
    jump["timestamp"] = 253402300799
    assert client.post("/v1/commands", json=jump, headers=auth(keys["bn_feeder"])).status_code == 200
    for timestamp in (10, 11):  # venue hl's own time goes on
        price = {"kind": "update_oracle", "venue": "hl", "prices": {"BTC": "60000"}, "timestamp": timestamp}
        assert client.post("/v1/commands", json=price, headers=auth(keys["hl_feeder"])).status_code == 200
    step = {"kind": "advance_time", "timestamp": 12, "venue": "hl"}
    assert client.post("/v1/commands", json=step, headers=auth(keys["hl_feeder"])).status_code == 200
    assert client.post("/v1/commands", json={**step, "venue": "bn"}, headers=auth(keys["hl_feeder"])).status_code == 403


def test_revoking_a_key_closes_its_open_stream(served):
    client, _, keys = served
    key_id = next(row["id"] for row in client.get("/v1/keys", headers=auth(ADMIN)).json() if row["venue"] == "bn")
    with client.websocket_connect(f"/v1/stream?from_seq=1&key={keys['bn_feeder']}") as ws:
        assert ws.receive_json()["seq"] >= 1  # streaming
        assert client.delete(f"/v1/keys/{key_id}", headers=auth(ADMIN)).status_code == 204
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
        assert closed.value.code == 4401
    price = {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60000"}, "timestamp": 3}
    assert client.post("/v1/commands", json=price, headers=auth(keys["bn_feeder"])).status_code == 401


def test_a_key_over_its_rate_is_refused_429_and_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/service.db"
    with start(url, rate_limits={"account": Limit(1.0, 5), "operator": None, "admin": None}) as client:
        for command in SETUP:
            assert client.post("/v1/commands", json=command, headers=auth(ADMIN)).status_code == 200
        alice = client.post("/v1/keys", json={"role": "account", "account": "alice"}, headers=auth(ADMIN)).json()["key"]
        log = client.app.state.service.log
        before = log.count()
        too_much = {"kind": "withdraw", "account": "alice", "asset": "USDT", "amount": "1000000"}  # the engine refuses
        statuses = [client.post("/v1/commands", json=too_much, headers=auth(alice)).status_code for _ in range(8)]
        assert statuses[:5] == [422] * 5 and set(statuses[5:]) == {429}  # refused commands count against the key
        assert log.count() == before + 5
        response = client.post("/v1/commands", json=too_much, headers=auth(alice))
        assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
        # Another key, and the admin, are not slowed down.
        assert client.post("/v1/commands", json=SETUP[-1], headers=auth(ADMIN)).status_code == 200


def test_a_deleted_database_file_stops_acknowledgement(tmp_path):
    path = tmp_path / "service.db"
    with start(f"sqlite:///{path}") as client:
        for command in SETUP[:3]:
            assert client.post("/v1/commands", json=command, headers=auth(ADMIN)).status_code == 200
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"service.db{suffix}").unlink(missing_ok=True)
        deposit = {"kind": "deposit", "account": "bn/book", "asset": "USDT", "amount": "1"}
        for _ in range(2):  # the first one is not acknowledged, nor anything after it
            response = client.post("/v1/commands", json=deposit, headers=auth(ADMIN))
            assert response.status_code == 503 and "was removed while in use" in response.json()["error"], response.text


def test_the_cli_refuses_a_missing_database_file_without_init(tmp_path):
    from typer.testing import CliRunner

    from solvent.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--db", f"sqlite:///{tmp_path}/typo.db"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "pass --init" in said and not (tmp_path / "typo.db").exists()
    result = runner.invoke(app, ["serve", "--db", f"sqlite:///{tmp_path}/x.db", "--init"],
                           env={"SOLVENT_ADMIN_KEY": "a"})
    assert result.exit_code == 2 and "at least 32" in " ".join(result.output.split())


def test_edge_inputs_that_gave_500_give_4xx(served):
    client, _, keys = served
    headers = {**auth(ADMIN), "Content-Type": "application/json"}
    deep = "[" * 10_000 + "]" * 10_000
    assert client.post("/v1/commands", content=deep, headers=headers).status_code == 400
    digits = '{"kind": "advance_time", "timestamp": ' + "9" * 5000 + "}"
    assert client.post("/v1/commands", content=digits, headers=headers).status_code == 400
    assert client.get("/v1/commands/99999999999999999999", headers=auth(ADMIN)).status_code in (404, 422)
    assert client.get("/v1/commands/0", headers=auth(ADMIN)).status_code == 404
    assert "seq" not in client.get("/v1/health").json()
    assert "seq" in client.get("/v1/health", headers=auth(ADMIN)).json()
    # Ids: a documented character set; protocol accounts (with "/") can be read back.
    bad = {"kind": "open_account", "account": "eve\x00", "venue": "bn"}
    response = client.post("/v1/commands", json=bad, headers=auth(ADMIN))
    assert response.status_code == 422 and response.json()["field"] == "account"
    assert client.get("/v1/accounts/bn/insurance", headers=auth(ADMIN)).status_code == 200


def test_keys_are_listed_and_operator_keys_need_an_existing_venue(served):
    client, _, _ = served
    listed = client.get("/v1/keys", headers=auth(ADMIN)).json()
    assert {row["role"] for row in listed} == {"admin", "account", "operator"}
    assert all("key" not in row and len(row["id"]) == 16 for row in listed)
    response = client.post("/v1/keys", json={"role": "operator", "venue": "nowhere"}, headers=auth(ADMIN))
    assert response.status_code == 404 and response.json()["field"] == "venue"


def test_a_restart_loads_the_latest_snapshot_and_replays_only_what_follows(tmp_path):
    url = f"sqlite:///{tmp_path}/service.db"
    with start(url, snapshot_every=50) as client:
        for command in SETUP:
            assert client.post("/v1/commands", json=command, headers=auth(ADMIN)).status_code == 200
        deposits = [{"kind": "deposit", "account": "bn/book", "asset": "USDT", "amount": "1"}] * 120
        assert client.post("/v1/commands", json=deposits, headers=auth(ADMIN)).status_code == 200
    began = time.perf_counter()
    durable = DurableEngine(url)
    took = time.perf_counter() - began
    assert durable.restored_from == 100 and durable.seq == 131, (durable.restored_from, took)  # 1: the admin key
    durable.close()


def test_a_key_row_inserted_by_hand_is_no_key_and_verify_reports_it(served):
    import sqlalchemy as sa

    from solvent.service.keys import api_keys, hash_key

    client, url, keys = served
    assert client.get("/v1/state", headers=auth(ADMIN)).status_code == 200
    forged = "sk_forged_" + "x" * 40
    service = client.app.state.service
    with service.log.db.begin() as connection:
        connection.execute(api_keys.insert().values(key_hash=hash_key(forged), role="admin", created_at="2026-01-01"))
    assert client.get("/v1/state", headers=auth(forged)).status_code == 401  # not in the log: not a key
    report_error = None
    try:
        verify_log(service.log)
    except Exception as error:
        report_error = error
    assert report_error is not None and "inserted by hand" in str(report_error)
    with service.log.db.begin() as connection:
        connection.execute(sa.delete(api_keys).where(api_keys.c.key_hash == hash_key(forged)))
    assert verify_log(service.log).key_rows_checked == 4  # the bootstrap admin, alice and two feeders


def test_an_edit_before_the_snapshot_is_found_while_serving_and_stops_acknowledgement(tmp_path):
    """A restart checks the chain from the snapshot on (its cost does not grow with the log); the
    entries before it are checked in the background, and a break stops acknowledgement."""
    url = f"sqlite:///{tmp_path}/service.db"
    with start(url, snapshot_every=5) as client:
        for command in SETUP:
            assert client.post("/v1/commands", json=command, headers=auth(ADMIN)).status_code == 200
    from solvent.store.schema import commands as commands_table

    with CommandLog(url) as log, log.db.begin() as connection:
        connection.execute(commands_table.update().where(commands_table.c.seq == 3).values(
            payload=log.entry(3).payload.replace("100000", "900000")))
    with start(url, snapshot_every=5) as client:
        service = client.app.state.service
        assert service.durable.restored_from == 10 and service.prefix_checked.wait(30)
        deposit = {"kind": "deposit", "account": "bn/book", "asset": "USDT", "amount": "1"}
        response = client.post("/v1/commands", json=deposit, headers=auth(ADMIN))
        assert response.status_code == 503 and "does not verify" in response.json()["error"], response.text
