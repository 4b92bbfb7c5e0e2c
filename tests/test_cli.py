"""The command line as a user meets it."""

import json
from decimal import Decimal as D

from typer.testing import CliRunner

from solvent.cli.main import app

runner = CliRunner()


def test_help_explains_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("conformance", "presets", "liq-price", "demo", "bench"):
        assert command in result.stdout


def test_liq_price_json_uses_ccxt_names_and_the_preset_brackets():
    result = runner.invoke(app, ["liq-price", "-p", "binance", "-m", "BTCUSDT", "--side", "long", "--size", "109.488",
                                 "--entry-price", "32481.98", "--margin", "1535443.01", "--mark-price", "31967.27",
                                 "--json"])
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert data["liquidationPrice"] == "18778.8"  # 18,778.73 rounded up to the 0.1 tick
    assert data["maintenanceMarginRate"] == "0.025" and data["marginMode"] == "isolated"
    assert D(data["bankruptcyPrice"]) < D(data["liquidationPrice"])


def test_liq_price_unknown_market_is_a_clear_error():
    result = runner.invoke(app, ["liq-price", "-p", "binance", "-m", "NOPE", "--side", "long", "--size", "1",
                                 "--entry-price", "1", "--margin", "1"])
    assert result.exit_code == 2 and "no market 'NOPE'" in result.output


def test_presets_lists_each_preset():
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0
    for name in ("binance", "hyperliquid", "dydx_v4", "drift_v2", "gmx_v2", "bybit", "bitmex"):
        assert name in result.stdout


def test_demo_runs_small_and_conservation_holds():
    result = runner.invoke(app, ["demo", "--accounts", "300", "--top", "3", "--shock", "-0.1"])
    assert result.exit_code == 0, result.output
    assert "below maintenance" in result.stdout and "holds" in result.stdout


def test_bench_screening_json_keys():
    result = runner.invoke(app, ["bench", "screening", "--accounts", "2000", "--positions", "20000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("accounts", "positions", "screen_seconds", "naive_seconds", "memory_pass_seconds"):
        assert key in data
    assert data["accounts"] == 2000 and data["positions"] == 20000
    assert data["naive_seconds"] > 0 and data["screen_seconds"] > 0


def test_bench_engine_reports_both_paths_and_identical_events():
    result = runner.invoke(app, ["bench", "engine", "--accounts", "300", "--updates", "5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["same_events"] is True and data["accounts"] == 300
    assert data["exact_seconds_per_update"] > 0 and data["screened_seconds_per_update"] > 0


def test_bench_engine_on_an_isolated_book_liquidates_alike_on_both_paths():
    result = runner.invoke(app, ["bench", "engine", "--accounts", "400", "--updates", "60", "--isolated", "0.5",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["isolated"] == 0.5 and data["same_events"] is True
    assert data["liquidations"] > 0  # the path reaches the isolated pools' thresholds


def test_version_is_the_packages():
    from solvent import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"solvent {__version__}"


def test_presets_schema_prints_json_schema():
    result = runner.invoke(app, ["presets", "--schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "execution" in schema["properties"] and schema["additionalProperties"] is False


def test_a_misspelt_override_fails_instead_of_running_the_baseline():
    result = runner.invoke(app, ["simulate", "--accounts", "200", "--override", "execution.fe=0.05", "--json"])
    assert result.exit_code != 0
    assert "execution.fe" in result.output and "unknown key" in result.output
