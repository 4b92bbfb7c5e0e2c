"""Operations of the service: /metrics against the log, /v1/ready, JSON logs, local API docs,
settings from the environment."""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter

import pytest

pytest.importorskip("prometheus_client")
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from solvent.service import create_app
from solvent.service import logging as service_logging

ADMIN = "sk_admin_ops"
BIG = "100000000"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def crash() -> list[dict]:
    """A book on one venue, then the price falls through alice's and bob's liquidation prices."""
    commands = [
        {"kind": "create_venue", "venue": "bn", "preset": "binance", "overrides": {}},
        {"kind": "fund_insurance", "asset": "USDT", "amount": "100000", "venue": "bn"},
        {"kind": "deposit", "account": "bn/book", "asset": "USDT", "amount": BIG},
        {"kind": "deposit", "account": "bn/liquidator", "asset": "USDT", "amount": BIG},
        {"kind": "open_account", "account": "mm", "venue": "bn"},
        {"kind": "deposit", "account": "mm", "asset": "USDT", "amount": BIG},
        {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60000"}, "timestamp": 1},
    ]
    for name, collateral in (("alice", "1000"), ("bob", "2000")):
        commands += [{"kind": "open_account", "account": name, "venue": "bn"},
                     {"kind": "deposit", "account": name, "asset": "USDT", "amount": collateral},
                     {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": name, "seller": "mm",
                      "size": "0.5", "price": "60000"}]
    for step, price in enumerate(("59000", "58000", "57000", "56000", "55000", "54000")):
        commands.append({"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": price}, "timestamp": 2 + step})
    return commands


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def ops_client(tmp_path):
    app = create_app(f"sqlite:///{tmp_path}/ops.db", admin_key=ADMIN, access_log=True)
    with TestClient(app) as client:
        yield client, app, tmp_path / "ops.db"


def test_metrics_parse_and_the_counters_match_the_log(ops_client):
    client, app, _ = ops_client
    # Counters count what this process commits through its writer; the admin key registered at
    # start (a logged register_key entry, before the writer runs) is the log's and not counted.
    started = app.state.service.log.last().seq if app.state.service.log.last() else 0
    for command in crash():
        assert client.post("/v1/commands", json=command, headers=auth(ADMIN)).status_code == 200
    # an engine refusal (recorded), a replay under an idempotency key, a refusal before writing
    too_much = {"kind": "withdraw", "account": "mm", "asset": "USDT", "amount": "999999999999"}
    assert client.post("/v1/commands", json=too_much, headers=auth(ADMIN)).status_code == 422
    again = {"kind": "deposit", "account": "mm", "asset": "USDT", "amount": "1"}
    for _ in range(2):
        assert client.post("/v1/commands", json=again, headers={**auth(ADMIN), "Idempotency-Key": "k1"}).status_code == 200
    late = {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "54000"}, "timestamp": 1}
    assert client.post("/v1/commands", json=late, headers=auth(ADMIN)).status_code == 409  # time backwards

    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=auth(ADMIN))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    log = app.state.service.log
    entries = list(log.entries(1))
    expected = Counter((entry.kind, "rejected" if entry.rejection else "applied") for entry in entries
                       if entry.seq > started)
    counted = {(dict(labels)["kind"], dict(labels)["outcome"]): value for (name, labels), value in found.items()
               if name == "solvent_commands_total" and dict(labels)["outcome"] in ("applied", "rejected")}
    assert counted == {key: float(value) for key, value in expected.items()}
    assert ("withdraw", "rejected") in counted
    assert found[("solvent_commands_total", (("kind", "deposit"), ("outcome", "replayed")))] == 1
    assert found[("solvent_commands_total", (("kind", "update_oracle"), ("outcome", "refused")))] == 1
    assert found[("solvent_log_seq", ())] == entries[-1].seq == len(entries)
    liquidations = Counter(event["kind"] for entry in entries for event in entry.events
                           if event["kind"] in ("liquidation_started", "position_liquidated"))
    assert liquidations["position_liquidated"] >= 2  # both accounts were liquidated
    for kind, count in liquidations.items():
        assert found[("solvent_liquidation_events_total", (("kind", kind),))] == count
    # the commit histogram saw one observation per group commit (at most one per entry here)
    commits = found[("solvent_commit_seconds_count", ())]
    assert 1 <= commits <= len(entries)
    view = client.get("/v1/venues/bn", headers=auth(ADMIN)).json()
    assert found[("solvent_insurance_fund_balance", (("asset", "USDT"), ("venue", "bn")))] == \
        float(view["insuranceFund"]["USDT"])
    assert found[("solvent_queue_depth", ())] == 0


def test_ready_checks_the_database_and_fails_when_it_is_gone(ops_client):
    client, _, path = ops_client
    response = client.get("/v1/ready")
    assert response.status_code == 200 and response.json()["checks"] == {"database": "ok", "writer": "ok"}
    os.rename(path, f"{path}.moved")
    try:
        response = client.get("/v1/ready")
        assert response.status_code == 503
        assert "gone" in response.json()["checks"]["database"]
        assert client.get("/v1/health").status_code == 200  # liveness is not readiness
    finally:
        os.rename(f"{path}.moved", path)
    assert client.get("/v1/ready").status_code == 200


def test_json_logs_have_one_line_per_request_and_per_command(ops_client):
    client, _, _ = ops_client
    stream = io.StringIO()
    service_logging.configure("info", stream)
    try:
        command = {"kind": "create_venue", "venue": "bn", "preset": "binance", "overrides": {}}
        assert client.post("/v1/commands", json=command, headers=auth(ADMIN)).status_code == 200
        assert client.get("/v1/health").status_code == 200
    finally:
        service_logging.stop()
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers if not getattr(h, "_solvent", False)]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    commands = [line for line in lines if line.get("event") == "command"]
    requests = [line for line in lines if line.get("event") == "request"]
    assert [(c["kind"], c["outcome"]) for c in commands] == [("create_venue", "applied")]  # after the admin key
    assert commands[0]["seq"] >= 1
    assert commands[0]["key_id"] and len(commands[0]["key_id"]) == 16 and commands[0]["ms"] >= 0
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [("POST", "/v1/commands", 200),
                                                                         ("GET", "/v1/health", 200)]
    assert requests[0]["key_id"] == commands[0]["key_id"] and requests[1]["key_id"] is None


def test_the_docs_are_served_from_local_assets_with_an_authorize_button(ops_client):
    client, _, _ = ops_client
    page = client.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    redoc = client.get("/redoc").text
    assert "/docs/assets/redoc.standalone.js" in redoc and "cdn" not in redoc.lower() and "googleapis" not in redoc
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {"bearer": []} in schema["security"]


def test_every_serve_option_has_an_environment_variable():
    from typer.main import get_command

    from solvent.cli.main import app

    serve = get_command(app).commands["serve"]
    missing = [param.name for param in serve.params
               if param.name != "create_admin_key" and not getattr(param, "envvar", None)]
    assert missing == []
