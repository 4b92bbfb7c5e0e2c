"""A schema-driven fuzz of the live service from its own OpenAPI document (schemathesis): every
operation, generated path/query/body values (positive and negative), against the in-process ASGI
app over a temporary SQLite log seeded with a venue and accounts, with an admin key; no response
may be a server error (5xx). Bounded examples per operation so that it runs in well under 60 s."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from solvent.service import create_app
from test_service import SETUP

ADMIN = "sk_admin_fuzz_0123456789abcdefghijklmnop"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}

_directory = tempfile.TemporaryDirectory(prefix="solvent-fuzz-")
app = create_app(f"sqlite:///{Path(_directory.name) / 'fuzz.db'}", admin_key=ADMIN)
_seed = TestClient(app)
for _command in SETUP:
    assert _seed.post("/v1/commands", json=_command, headers=HEADERS).status_code == 200

schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_operation_answers_a_server_error(case):
    response = case.call(headers=HEADERS)
    if case.path == "/v1/ready" and response.status_code == 503:
        # Readiness answers 503 by design once the service is stopping (schemathesis runs the
        # app's lifespan, whose end closes it): that is a verdict, not a server error.
        assert response.json()["status"] == "not ready"
        return
    case.validate_response(response, checks=[not_a_server_error])


def test_the_openapi_document_lists_every_route():
    paths = set(app.openapi()["paths"])
    for path in ("/v1/commands", "/v1/fills", "/v1/prices", "/v1/accounts/{account}", "/v1/venues/{venue}",
                 "/v1/state", "/v1/commands/{seq}", "/v1/keys", "/v1/health"):
        assert path in paths
