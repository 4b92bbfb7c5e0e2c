"""The stress-test report: an HTML page with every chart, the same charts as PNG, and the metrics."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")  # a guard only: matplotlib is a dependency of the report

from solvent.core.errors import InvalidInput
from solvent.sim.metrics import RunMetrics
from solvent.sim.report import FIGURES, HTML_NAME, liquidation_map, write_report
from solvent.sim.run import RunResult, SimConfig, run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRIC_NAMES = ("bad_debt", "insurance_drawdown", "liquidated_notional", "liquidations", "adl_notional",
                "cascade_depth", "time_to_stability_steps", "VaR", "LaR")


@pytest.fixture(scope="module")
def runs():
    return [run(SimConfig(accounts=150, seed=seed)) for seed in (1, 2)]


@pytest.fixture(scope="module")
def book():
    rng = np.random.default_rng(5)
    leverage = np.exp(rng.normal(np.log(5.0), 0.7, 300)).clip(1.0, 100.0)
    side = np.where(rng.random(300) < 0.6, 1.0, -1.0)
    relative = 1.0 - side / leverage * 0.95  # longs under the open, shorts over it
    notional = rng.lognormal(7.6, 1.3, 300)
    return {"BTC": relative, "ETH": np.column_stack([relative, notional]), "SOL": np.append(relative, np.inf)}


def synthetic(seed: int = 1, scenario: str = "not_a_shipped_scenario", bad_debt: float = 0.0) -> RunResult:
    rng = np.random.default_rng(seed)
    steps = 60
    exogenous = {"BTC": 100_000.0 * np.exp(np.cumsum(rng.normal(-0.002, 0.004, steps)))}
    simulated = {"BTC": exogenous["BTC"] * (1.0 - np.linspace(0.0, 0.01, steps))}
    liquidated = np.where(rng.random(steps) < 0.3, rng.lognormal(10.0, 1.0, steps), 0.0)
    fund = 2_000_000.0 - np.cumsum(rng.random(steps) * 1_000.0)
    metrics = RunMetrics(bad_debt=bad_debt, insurance_drawdown=float(2_000_000.0 - fund.min()),
                         liquidated_notional=float(liquidated.sum()), liquidations=int((liquidated > 0).sum()),
                         price_overshoot={"BTC": 0.01}, cascade_depth=3, time_to_stability_steps=20)
    return RunResult(SimConfig(scenario=scenario, accounts=10, seed=seed), metrics, {"BTC": "BTC"},
                     exogenous, simulated, liquidated, fund)


def check_report(path, directory) -> str:
    assert path == directory / HTML_NAME and path.is_file()
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(FIGURES)  # every figure, each once, by relative name
    for name in FIGURES:
        data = (directory / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 5_000, name
    table = page.split('<table class="metrics">', 1)[1].split("</table>", 1)[0]
    for column in ("mean", "p95", "p99"):
        assert f"<th>{column}</th>" in table
    for name in METRIC_NAMES:
        assert f"<code>{name}</code>" in table, name
    assert "value at risk" in table and "liquidations at risk" in table
    return page


def test_report_of_simulated_runs_with_a_book(runs, book, tmp_path):
    directory = tmp_path / "report" / "nested"  # created if missing
    path = write_report(directory, runs, "Oct 10 <stress>", book)
    page = check_report(path, directory)
    assert "Oct 10 &lt;stress&gt;" in page  # the title is escaped
    assert "2 Monte Carlo runs" in page
    for overshoot in ("price_overshoot.BTC", "price_overshoot.ETH", "price_overshoot.SOL"):
        assert overshoot in page
    assert "per run: 1, 2" in page  # the seeds differ between runs
    assert "not given" not in page
    assert "Rows: liquidation price relative to the opening price" in page


def test_report_without_a_book_says_so(runs, tmp_path):
    path = write_report(tmp_path, runs, "no book")
    page = check_report(path, tmp_path)
    assert "liquidation prices were not given" in page


def test_heatmap_figure_differs_with_and_without_a_book(runs, book, tmp_path):
    write_report(tmp_path / "with", runs[:1], "with", book)
    write_report(tmp_path / "without", runs[:1], "without", None)
    name = "liquidation_heatmap.png"
    assert (tmp_path / "with" / name).read_bytes() != (tmp_path / "without" / name).read_bytes()


def test_single_run_and_synthetic_results(tmp_path):
    path = write_report(tmp_path, [synthetic()], "one synthetic run", {"BTC": np.array([0.9, 0.95, 1.1])})
    page = check_report(path, tmp_path)
    assert "A single run: the histogram counts the" in page and "1 Monte Carlo run," in page


def test_many_synthetic_runs_and_a_rewrite_is_identical(tmp_path):
    results = [synthetic(seed, "oct_10_2025", bad_debt=1_000.0 * seed) for seed in range(1, 13)]
    first = write_report(tmp_path, results, "twelve runs").read_text(encoding="utf-8")
    again = write_report(tmp_path, results, "twelve runs").read_text(encoding="utf-8")
    assert first == again
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted((HTML_NAME, *FIGURES))
    assert "12 Monte Carlo runs" in first and "A single run" not in first


def test_liquidation_map_consumes_levels_the_price_reaches():
    path = np.array([1.0, 0.95, 0.85, 0.9, 1.15])
    levels = np.array([0.9, 0.9, 0.8, 1.1, 1.3, np.nan, -0.2])
    matrix, edges, dropped = liquidation_map(levels, None, path, len(path), rows=40)
    assert dropped == 2  # NaN and a non-positive level cannot be liquidated
    assert matrix.shape == (40, 5) and len(edges) == 41
    alive = matrix.sum(axis=0)
    # Step 0: all 5; step 2 reaches the 0.9 longs (low 0.85); step 4 the 1.1 short (high 1.15).
    assert alive.tolist() == [5, 5, 3, 3, 2]
    weighted, _, _ = liquidation_map(levels, np.arange(1.0, 8.0), path, len(path), rows=40)
    assert weighted.sum(axis=0)[-1] == pytest.approx(3.0 + 5.0)  # the 0.8 long and the 1.3 short remain
    unchanged, _, _ = liquidation_map(levels, None, None, 5, rows=40)
    assert unchanged.sum(axis=0).tolist() == [5] * 5


def test_bad_input_names_the_field(runs, tmp_path):
    with pytest.raises(InvalidInput) as error:
        write_report(tmp_path, [], "empty")
    assert error.value.field == "runs"
    with pytest.raises(InvalidInput) as error:
        write_report(tmp_path, [object()], "not a run")
    assert error.value.field == "runs[0]"
    a_file = tmp_path / "report.html"
    a_file.write_text("x")
    with pytest.raises(InvalidInput) as error:
        write_report(a_file, runs, "file")
    assert error.value.field == "directory"
    with pytest.raises(InvalidInput) as error:
        write_report(a_file / "below", runs, "under a file")
    assert error.value.field == "directory"
    with pytest.raises(InvalidInput) as error:  # a parent that cannot hold a folder (procfs)
        write_report("/proc/solvent-report", runs, "nowhere")
    assert error.value.field == "directory"
    with pytest.raises(InvalidInput) as error:
        write_report(tmp_path / "r", runs, "bad book", {"BTC": np.zeros((3, 3))})
    assert error.value.field == "book_liquidation_prices[BTC]"


def test_importing_the_report_does_not_import_matplotlib():
    code = "import sys, solvent.sim.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_vault_is_drawn_below_the_fund_when_it_moved(tmp_path):
    from dataclasses import replace

    base = synthetic()
    steps = len(base.fund_per_step)
    still = replace(base, backstop_per_step=np.full(steps, 50_000_000.0))
    moved = replace(base, backstop_per_step=50_000_000.0 - np.linspace(0.0, 1_800_000.0, steps))
    pages = {}
    for name, result in (("still", still), ("moved", moved)):
        pages[name] = check_report(write_report(tmp_path / name, [result], name), tmp_path / name)
    assert "The backstop vault did not move in this run" in pages["still"]
    assert "Below it, the backstop vault" in pages["moved"] and "did not move" not in pages["moved"]
    figure = "insurance_fund.png"
    assert (tmp_path / "still" / figure).read_bytes() != (tmp_path / "moved" / figure).read_bytes()
