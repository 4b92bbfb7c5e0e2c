"""The conformance runner: format, comparison rules, and the venues' own vectors."""

import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.conformance.runner import matches, run_case, run_paths

# The venues' published vectors live beside the project (../shared/conformance).
SHARED_CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance"


# The checks the risk core is answerable for, and GMX's liquidation condition (its margin model).
RISK_CORE = ("binance.", "hyperliquid.", "bybit.", "bitmex.risk_limit", "dydx.initial_margin", "drift.size_premium",
             "gmx.is_liquidatable")


@pytest.mark.skipif(not SHARED_CONFORMANCE.is_dir(), reason="shared/conformance is not beside the project")
def test_every_risk_core_vector_passes():
    results = [r for r in run_paths([SHARED_CONFORMANCE]) if r.check.startswith(RISK_CORE)]
    assert len(results) >= 27
    failures = [f"{r.id}: {r.message}" for r in results if not r.passed]
    assert not failures, "\n".join(failures)


def test_default_tolerance_is_half_a_unit_of_the_last_place():
    assert matches("1114.78", D("1114.784"), None)
    assert not matches("1114.78", D("1114.786"), None)
    assert matches("2776", 2776, None) and not matches("2776", 2777, None)
    assert matches("2776", D("2776.4"), None)  # a Decimal output gets half a unit
    assert matches([{"account": "B", "size": "8"}], [{"account": "B", "size": D("8.0000001")}], D("0.000001"))
    assert not matches([{"account": "B", "size": "8"}], [{"account": "C", "size": D(8)}], D("0.000001"))
    assert matches(True, True, None) and not matches(True, False, None)


def _write(tmp_path, cases):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": cases}))
    return path


CASE = {"id": "mm", "check": "hyperliquid.maintenance_margin",
        "input": {"tiers": [{"floor": "0", "max_leverage": "40"}], "notional": "1000"},
        "expect": {"maintenance_margin": "12.50"}}


def test_cli_contract(tmp_path):
    wrong = dict(CASE, id="wrong", expect={"maintenance_margin": "14"})
    unknown = {"id": "future", "check": "venue.not_yet", "input": {}, "expect": {"x": "1"}}
    path = _write(tmp_path, [CASE, wrong, unknown])
    result = CliRunner().invoke(app, ["conformance", str(path)])
    lines = result.stdout.strip().splitlines()
    assert result.exit_code == 1
    assert lines == ["FAIL wrong: expected maintenance_margin=14, got 12.5",
                     "FAIL future: unsupported check venue.not_yet", "1 passed, 2 failed"]
    ok = CliRunner().invoke(app, ["conformance", str(_write(tmp_path, [CASE]))])
    assert ok.exit_code == 0 and ok.stdout.strip().splitlines()[-1] == "1 passed, 0 failed"


def test_cli_json_and_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text(json.dumps({"cases": [CASE]}))
    result = CliRunner().invoke(app, ["conformance", str(tmp_path), "--json"])
    data = json.loads(result.stdout)
    assert data["passed"] == 1 and data["failed"] == 0 and data["cases"][0]["id"] == "mm"


def test_a_case_with_bad_input_fails_with_the_reason():
    result = run_case({"id": "x", "check": "binance.maintenance_margin",
                       "input": {"brackets": [{"floor": "0", "mmr": "nan"}], "notional": "1"},
                       "expect": {"maintenance_margin": "1"}})
    assert not result.passed and "tiers[0].mmr: must be finite" in result.message


def test_missing_output_field_fails():
    result = run_case(dict(CASE, expect={"price": "1"}))
    assert not result.passed and "does not produce price" in result.message
