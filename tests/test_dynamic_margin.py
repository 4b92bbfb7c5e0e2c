"""Dynamic margin (policies/dynamic_margin.py) and ``solvent backtest-margin``."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.core.errors import InvalidInput
from solvent.policies import dynamic_margin as dm


@pytest.mark.parametrize("model, estimator, window, confidence", [
    ("scaled", "realized", 250, 0.95),
    ("scaled", "realized", 250, 0.99),
    ("fhs", "ewma", 30, 0.95),
])
def test_breaches_on_a_known_volatility_series_match_the_expected_rate(model, estimator, window, confidence):
    closes = dm.scenario("gbm", length=4000, seed=11)  # constant 3% daily volatility
    report = dm.backtest(closes, dm.MarginSpec(model=model, estimator=estimator, window=window, confidence=confidence,
                                               lookback=250))
    for side in report.sides:
        expected = side.observations * (1 - confidence)
        assert side.expected_rate == pytest.approx(1 - confidence)
        # within three binomial standard deviations of n·(1 − c)
        assert abs(side.breaches - expected) <= 3 * math.sqrt(expected * confidence), (side.side, side.breaches)
        assert side.kupiec_p > 0.001


def test_a_model_that_lags_a_volatility_jump_fails_kupiec():
    closes = dm.scenario("regime", length=3000, seed=3)  # 3% then 9% daily: a 500-day window lags for a year
    report = dm.backtest(closes, dm.MarginSpec(estimator="realized", window=500, confidence=0.99))
    long, short = report.sides
    assert long.breaches + short.breaches > 2 * long.expected_band[1]
    assert min(long.kupiec_p, short.kupiec_p) < 1e-6


def test_kupiec_and_christoffersen_statistics_by_their_formulas():
    lr, p = dm.kupiec_pof(5, 100, 0.01)
    by_hand = -2 * (95 * math.log(0.99) + 5 * math.log(0.01) - 95 * math.log(0.95) - 5 * math.log(0.05))
    assert lr == pytest.approx(by_hand) and p == pytest.approx(math.erfc(math.sqrt(by_hand / 2)))  # chi-square(1)
    assert dm.kupiec_pof(1, 100, 0.01)[0] == pytest.approx(0.0)
    clustered = np.zeros(400, dtype=bool)
    clustered[100:104] = clustered[300:304] = True  # breaches come in runs
    spread = np.zeros(400, dtype=bool)
    spread[::50] = True  # the same count, apart
    assert dm.christoffersen_independence(clustered)[1] < 0.001 < dm.christoffersen_independence(spread)[1]


def test_emir_options_damp_procyclicality_or_raise_the_floor():
    closes = dm.scenario("regime", length=2000, seed=5)
    base = dm.backtest(closes, dm.MarginSpec())
    buffered = dm.backtest(closes, dm.MarginSpec(apc="buffer"))
    stressed = dm.backtest(closes, dm.MarginSpec(apc="stressed"))
    assert buffered.peak_to_trough < base.peak_to_trough
    assert stressed.peak_to_trough < base.peak_to_trough
    returns = dm.log_returns(closes)
    _, plain_long, _ = dm.margin_rates(returns, dm.MarginSpec())
    _, floor_long, _ = dm.margin_rates(returns, dm.MarginSpec(apc="floor"))
    known = np.isfinite(plain_long)
    assert np.all(floor_long[known] >= plain_long[known]) and np.any(floor_long[known] > plain_long[known])
    with pytest.raises(InvalidInput, match="buffer"):
        dm.MarginSpec(apc="buffer", buffer=0.1).checked()


def test_cli_reads_a_csv_and_reports_json(tmp_path):
    closes = dm.scenario("crash", length=400, seed=2)
    path = tmp_path / "prices.csv"
    path.write_text("timestamp,close\n" + "".join(f"{i},{float(c)!r}\n" for i, c in enumerate(closes)))
    runner = CliRunner()
    result = runner.invoke(app, ["backtest-margin", "--prices", str(path), "--json", "--series", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["prices"] == 400 and [side["side"] for side in report["sides"]] == ["long", "short"]
    assert report["peak_to_trough"] >= 1 and (tmp_path / "s.csv").read_text().startswith("timestamp,close,sigma")
    path.write_text("timestamp,close\n1,100\n2,abc\n")
    bad = runner.invoke(app, ["backtest-margin", "--prices", str(path)])
    assert bad.exit_code == 2 and "prices:3.close" in bad.output


@pytest.mark.parametrize("mpor", [1, 3])
def test_fhs_vectorized_windows_equal_the_scalar_path(monkeypatch, mpor):
    returns = dm.log_returns(dm.scenario("crash", length=800, seed=4))
    spec = dm.MarginSpec(model="fhs", lookback=120, mpor=mpor)
    fast = dm.margin_rates(returns, spec)
    monkeypatch.setattr(dm, "_fhs_full_windows", lambda *args: None)  # every t through the loop
    slow = dm.margin_rates(returns, spec)
    for a, b in zip(fast, slow, strict=True):
        assert np.allclose(a, b, equal_nan=True)
    assert np.isfinite(fast[1]).sum() > 600
