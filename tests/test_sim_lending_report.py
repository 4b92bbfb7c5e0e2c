"""solvent simulate --report for lending venues: the page renders with every chart it promises."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.sim.lending_run import LendingSimConfig, run_lending
from solvent.sim.report import FIGURES, HTML_NAME, INSURANCE_FUND, LENDING_FIGURES, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check(directory, page: str) -> None:
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(LENDING_FIGURES)  # every promised chart, each once
    for name in LENDING_FIGURES:
        data = (directory / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000, name
    assert not (directory / INSURANCE_FUND).exists()
    # The chart left out is named, with the reason.
    assert "Charts left out for a lending venue" in page and "has no insurance fund" in page
    assert "borrowers each (a lending venue)" in page
    for heading in ("Price path with and without the cascade", "Liquidations over time",
                    "Bad debt and reserve deficit over time", "Distribution of losses across runs",
                    "Health-factor-1 price heatmap of the book"):
        assert f"<h2>{heading}</h2>" in page, heading
    assert "<code>bad_debt</code>" in page and "<code>toxic_liquidations</code>" in page


@pytest.mark.parametrize("preset", ["aave_v3", "maker"])
def test_lending_report_from_runs(preset, tmp_path):
    runs = [run_lending(LendingSimConfig(preset=preset, borrowers=120, seed=seed)) for seed in (1, 2)]
    first = runs[0]
    assert len(first.bad_debt_per_step) == len(first.liquidated_per_step)
    assert np.all(np.diff(first.bad_debt_per_step) >= 0)  # a running total
    assert first.bad_debt_per_step[-1] == pytest.approx(first.metrics.bad_debt)
    levels = first.liquidation_levels["ETH"]
    assert levels.shape == (120,) and np.all((levels > 0) & (levels < 1))  # every borrower above HF 1 at the open
    # The heatmap's levels are what a liquidation needs: the price path fell below some of them and
    # the run liquidated; never a liquidation without a level reached.
    low = first.simulated["ETH"].min() / first.simulated["ETH"][0]
    assert (levels > low).any() == (first.metrics.liquidations > 0)
    directory = tmp_path / preset
    (directory).mkdir()
    (directory / INSURANCE_FUND).write_bytes(b"stale")  # a perpetual report written here before
    path = write_report(directory, runs, f"Black Thursday under {preset}")
    assert path == directory / HTML_NAME
    check(directory, path.read_text(encoding="utf-8"))
    assert "2 Monte Carlo runs" in path.read_text(encoding="utf-8")


def test_cli_simulate_lending_report(tmp_path):
    out = CliRunner().invoke(app, ["simulate", "--preset", "aave_v3", "--accounts", "80", "--report",
                                   str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    assert str(tmp_path / HTML_NAME) in out.output
    check(tmp_path, (tmp_path / HTML_NAME).read_text(encoding="utf-8"))
    assert set(FIGURES) - set(LENDING_FIGURES) == {INSURANCE_FUND}
