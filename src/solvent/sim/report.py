"""The stress-test report: an HTML page with charts of one or many simulated runs, and the PNGs.

:func:`write_report` writes into a directory (created if missing) a plain, self-contained
``index.html`` (inline CSS, no JavaScript, nothing fetched from the network) and one PNG per
figure, which the page embeds by relative ``<img src>``. File names are fixed, so a report
written twice into the same directory overwrites itself and never leaves stale figures:

=============================  ==========================================================
``price_paths.png``            first run: per asset, the exogenous path (no cascade) and the
                               simulated path (with the cascade); below, the gap between
                               them in % (the price impact of forced sales)
``liquidations.png``           first run: notional liquidated per step (USD) and its running
                               total
``insurance_fund.png``         first run: the insurance fund's value per step (cash and the PnL
                               of what it took over), and the backstop vault's below it when the
                               vault moved
``loss_distribution.png``      all runs: histograms of bad debt and of liquidated notional,
                               with VaR / LaR (their p95) marked; for a single run, the
                               distribution within it: notional liquidated per step
``liquidation_heatmap.png``    the book's liquidation map (see below), or a note that no book
                               was given
=============================  ==========================================================

The page also holds the metrics table (:func:`~solvent.sim.metrics.summarize`: mean, p95 and
p99 of every metric over the runs, and Gauntlet's headline figures, **VaR**, value at risk, the
p95 of bad debt, and **LaR**, liquidations at risk, the p95 of liquidated notional) and the run
configuration (fields that differ between runs, such as the seed, are listed per run).

Liquidation heatmap. ``book_liquidation_prices`` gives, per asset, the liquidation price of
every position of the book *relative to the opening price* (0.8: the position is liquidated
20% under the open; longs sit below 1, shorts above). For each asset the figure is a 2-D
histogram with the liquidation level on the rows and **time** (the steps of the first run) on
the columns: a cell counts (colour on a square-root scale) the positions whose liquidation
level lies in that row's band and that the first run's simulated price has *not reached yet*
at that step (a level under 1 is reached once the running low of the simulated price touches
it, a level over 1 once the running high does). The simulated price relative to the open is
drawn over it. So one sees where the book's liquidation levels are dense, and the price walking
into them and consuming them: the cascade. Reaching a level is a first-order proxy for being
liquidated (it ignores funding, partial liquidation and changes of margin); the engine's events
are the exact record.
An array may also have shape ``(n, 2)``: liquidation level and notional in USD, in which case
cells hold notional instead of counts. Non-finite or non-positive levels (positions that cannot
be liquidated) are left out, as are levels outside the plotted band; the panel title says how
many. An asset of the book that the first run did not simulate is drawn without consumption.

matplotlib is imported inside :func:`write_report` (``import solvent.sim.report`` stays light)
and used through its Agg canvas directly, without ``pyplot`` and without changing the process's
backend.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import InvalidInput, SolventError
from .metrics import summarize
from .run import RunResult

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import TypeIs

    from .lending_run import LendingRunResult

HTML_NAME = "index.html"
PRICE_PATHS = "price_paths.png"
LIQUIDATIONS = "liquidations.png"
INSURANCE_FUND = "insurance_fund.png"
LOSS_DISTRIBUTION = "loss_distribution.png"
LIQUIDATION_HEATMAP = "liquidation_heatmap.png"
BAD_DEBT = "bad_debt.png"
FIGURES = (PRICE_PATHS, LIQUIDATIONS, INSURANCE_FUND, LOSS_DISTRIBUTION, LIQUIDATION_HEATMAP)
# A lending venue has no insurance fund: its report shows bad debt (reserve deficits) instead.
LENDING_FIGURES = (PRICE_PATHS, LIQUIDATIONS, BAD_DEBT, LOSS_DISTRIBUTION, LIQUIDATION_HEATMAP)

DPI = 110
HEATMAP_ROWS = 60
COLUMNS = ("mean", "p95", "p99")

# Label and unit of each metric in the table (names not listed are shown as they are).
METRIC_LABELS = {
    "bad_debt": ("bad debt", "USD"),
    "insurance_drawdown": ("insurance fund drawdown", "USD"),
    "backstop_drawdown": ("backstop drawdown", "USD"),
    "liquidated_notional": ("liquidated notional", "USD"),
    "liquidations": ("liquidations", "count"),
    "adl_events": ("ADL events", "count"),
    "adl_notional": ("ADL notional", "USD"),
    "adl_excess_over_pro_rata": ("ADL excess over pro-rata", "USD"),
    "cascade_depth": ("cascade depth", "steps"),
    "time_to_stability_steps": ("time to stability", "steps"),
    "toxic_liquidations": ("toxic liquidations", "count"),
    "VaR": ("VaR: value at risk (bad debt)", "USD"),
    "LaR": ("LaR: liquidations at risk (liquidated notional)", "USD"),
}

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.lead { color: #555; margin-top: 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.headline td { font-weight: bold; background: #fbf7e9; }
"""


def write_report(directory: str | Path, runs: Sequence[RunResult | LendingRunResult], title: str,
                 book_liquidation_prices: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write ``index.html`` and its PNG figures into ``directory``; return the HTML path.

    ``runs`` are Monte Carlo runs of one setting (the first one is drawn in the per-run
    figures, all of them in the loss distribution and the metrics table).
    ``book_liquidation_prices``: per asset, liquidation prices relative to the opening price
    (optionally with a notional column), for the liquidation heatmap; ``None`` when the book
    is not known, which the figure then says. Raises :class:`InvalidInput` naming ``runs``,
    ``directory`` or ``book_liquidation_prices[<asset>]`` when one is unusable.
    """
    runs = _check_runs(runs)
    lending = _is_lending(runs[0])
    if lending and book_liquidation_prices is None:
        first = runs[0]
        assert _is_lending(first)  # lending is _is_lending(runs[0])
        book_liquidation_prices = first.liquidation_levels or None
    book = _check_book(book_liquidation_prices)
    out = _prepare_directory(directory)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("the stress-test report needs matplotlib (pip install matplotlib)") from error

    def new_figure(width: float, height: float) -> Any:
        figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        return figure

    def save(figure: Any, name: str) -> None:
        figure.savefig(out / name, dpi=DPI, format="png", metadata={"Software": None})

    first = runs[0]
    axis = _TimeAxis(first)
    captions = {
        PRICE_PATHS: _draw_price_paths(new_figure, first, axis),
        LIQUIDATIONS: _draw_liquidations(new_figure, first, axis),
        LOSS_DISTRIBUTION: _draw_losses(new_figure, runs),
        LIQUIDATION_HEATMAP: _draw_heatmap(new_figure, first, axis, book, lending),
    }
    if _is_lending(first):  # lending is _is_lending(first)
        captions[BAD_DEBT] = _draw_bad_debt(new_figure, first, axis)
    else:
        captions[INSURANCE_FUND] = _draw_fund(new_figure, first, axis)
    for name, (figure, _) in captions.items():
        save(figure, name)
    for name in set(FIGURES + LENDING_FIGURES) - set(captions):  # a report of the other kind written here before
        (out / name).unlink(missing_ok=True)
    page = _html(title, runs, {name: caption for name, (_, caption) in captions.items()})
    path = out / HTML_NAME
    path.write_text(page, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- inputs


def _is_lending(run: object) -> TypeIs[LendingRunResult]:
    from .lending_run import LendingRunResult

    return isinstance(run, LendingRunResult)


def _check_runs(runs: Sequence[RunResult | LendingRunResult]) -> list[RunResult | LendingRunResult]:
    from .lending_run import LendingRunResult

    if runs is None or isinstance(runs, (str, bytes)):
        raise InvalidInput("runs", "need a list of RunResult")
    runs = list(runs)
    if not runs:
        raise InvalidInput("runs", "need at least one run")
    for index, run in enumerate(runs):
        if not isinstance(run, (RunResult, LendingRunResult)):
            raise InvalidInput(f"runs[{index}]", f"expected a RunResult or LendingRunResult, got {type(run).__name__}")
    if len({_is_lending(run) for run in runs}) != 1:
        raise InvalidInput("runs", "perpetual and lending runs cannot share one report")
    return runs


def _check_book(book: Mapping[str, np.ndarray] | None) -> dict[str, tuple[np.ndarray, np.ndarray | None]] | None:
    if book is None:
        return None
    if not isinstance(book, Mapping):
        raise InvalidInput("book_liquidation_prices", "expected {asset: array of relative liquidation prices}")
    checked: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for asset, values in book.items():
        field = f"book_liquidation_prices[{asset}]"
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidInput(field, f"not an array of numbers ({error})") from None
        if array.ndim == 1:
            checked[str(asset)] = (array, None)
        elif array.ndim == 2 and array.shape[1] == 2:
            weights = array[:, 1]
            if not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise InvalidInput(field, "the notional column must be finite and non-negative")
            checked[str(asset)] = (array[:, 0], weights)
        else:
            raise InvalidInput(field, f"expected shape (n,) or (n, 2), got {array.shape}")
    return checked


def _prepare_directory(directory: str | Path) -> Path:
    if directory is None or str(directory) == "":
        raise InvalidInput("directory", "need a directory to write the report into")
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InvalidInput("directory", f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # exists as a file, a parent is missing or unwritable, ...
        raise InvalidInput("directory", f"cannot create {out}: {error}") from None
    return out


# --------------------------------------------------------------------------- time axis


class _TimeAxis:
    """Steps of a run as minutes or hours since the scenario start, or bare steps when unknown."""

    def __init__(self, run: RunResult | LendingRunResult):
        from .scenarios import load_scenario

        self.scale = 1.0
        self.label = "step"
        self.scenario_title = str(run.config.scenario)
        try:
            scenario = load_scenario(run.config.scenario)
        except (SolventError, OSError, ValueError):
            return
        self.scenario_title = scenario.title
        steps = max(len(run.liquidated_per_step), 1)
        seconds = float(scenario.step_seconds)
        unit, per = ("hours", 3600.0) if steps * seconds > 6 * 3600 else ("minutes", 60.0)
        self.scale = seconds / per
        since = f"{scenario.start:%Y-%m-%d %H:%M} UTC" if scenario.start is not None else "the start"
        self.label = f"{unit} since {since}"

    def of(self, count: int) -> np.ndarray:
        return np.arange(count, dtype=np.float64) * self.scale


def _note(axes: Any, text: str) -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", wrap=True,
              fontsize=11, color="#555")
    axes.set_xticks([])
    axes.set_yticks([])


def _usd(axes: Any, which: str = "y") -> None:
    """Dollar tick labels with thousands separators and as many decimals as the tick step needs."""
    from matplotlib.ticker import Formatter

    class Dollars(Formatter):
        decimals = 2

        def format_ticks(self, values):
            ticks = np.asarray(values, dtype=np.float64)
            exact = (d for d in range(7) if np.allclose(ticks, np.round(ticks, d), rtol=0, atol=1e-9))
            self.decimals = next(exact, 6)
            return [self(value, pos) for pos, value in enumerate(values)]

        def __call__(self, value: float, pos: int | None = None) -> str:
            text = f"{abs(value):,.{self.decimals}f}"
            return "$0" if float(text.replace(",", "")) == 0 else f"{'−' if value < 0 else ''}${text}"

    (axes.yaxis if which == "y" else axes.xaxis).set_major_formatter(Dollars())


def _compact_usd(value: float) -> str:
    sign, magnitude = ("−" if value < 0 else ""), abs(float(value))
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{sign}${magnitude / limit:,.3g}{suffix}"
    return f"{sign}${magnitude:.3g}" if magnitude else "$0"


# --------------------------------------------------------------------------- figures


def _draw_price_paths(new_figure, run: RunResult | LendingRunResult, axis: _TimeAxis):
    assets = list(run.simulated)
    figure = new_figure(max(4.2 * len(assets), 6.0), 5.6)
    if not assets:
        _note(figure.add_subplot(), "the run has no price paths")
        return figure, "The run has no price paths."
    grid = figure.subplots(2, len(assets), squeeze=False, sharex="col",
                           gridspec_kw={"height_ratios": (3, 1.3)})
    for column, asset in enumerate(assets):
        simulated = np.asarray(run.simulated[asset], dtype=np.float64)
        exogenous = np.asarray(run.exogenous.get(asset, simulated), dtype=np.float64)
        count = min(len(simulated), len(exogenous))
        x = axis.of(count)
        top, bottom = grid[0][column], grid[1][column]
        top.plot(x, exogenous[:count], color="#888", lw=1.2, label="without the cascade (exogenous)")
        top.plot(x, simulated[:count], color="#c0392b", lw=1.0, label="with the cascade (simulated)")
        top.set_title(f"{asset} ({run.markets.get(asset, asset)})")
        top.set_ylabel("price")
        top.grid(alpha=0.3)
        if column == 0:
            top.legend(fontsize=8, loc="best")
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.where(exogenous[:count] > 0, simulated[:count] / exogenous[:count] - 1.0, 0.0) * 100.0
        bottom.plot(x, gap, color="#c0392b", lw=0.9)
        bottom.axhline(0.0, color="#888", lw=0.8)
        bottom.set_ylabel("impact %")
        bottom.set_xlabel(axis.label)
        bottom.grid(alpha=0.3)
    figure.suptitle(f"Price path with and without the cascade: {axis.scenario_title}, seed {run.config.seed}")
    caption = ("First run. Grey: the scenario's exogenous path (no forced sales); red: the price the venue "
               "saw, moved by the impact of forced sales. Lower panels: the gap in % (negative when "
               "liquidations pushed the price down).")
    return figure, caption


def _draw_liquidations(new_figure, run: RunResult | LendingRunResult, axis: _TimeAxis):
    figure = new_figure(9.0, 4.0)
    axes = figure.add_subplot()
    values = np.asarray(run.liquidated_per_step, dtype=np.float64)
    x = axis.of(len(values))
    width = axis.scale if len(values) else 1.0
    axes.bar(x, values, width=width, align="edge", color="#c0392b", label="liquidated per step")
    axes.set_ylabel("USD per step")
    axes.set_xlabel(axis.label)
    _usd(axes)
    axes.grid(alpha=0.3)
    total = axes.twinx()
    total.plot(x + width, np.cumsum(values), color="#2c3e50", lw=1.2, label="running total")
    total.set_ylabel("USD, running total")
    _usd(total)
    total.set_ylim(bottom=0)
    handles = axes.get_legend_handles_labels()[0] + total.get_legend_handles_labels()[0]
    axes.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper left")
    axes.set_title(f"Liquidations over time: {values.sum():,.0f} USD in total, "
                   f"{run.metrics.liquidations:,} liquidations")
    caption = ("First run. Bars: notional closed by liquidation in each step (USD); line: the running total. "
               f"Cascade depth {run.metrics.cascade_depth} consecutive steps.")
    return figure, caption


def _draw_fund(new_figure, run: RunResult, axis: _TimeAxis):
    fund = np.asarray(run.fund_per_step, dtype=np.float64)
    panels = [("insurance fund", fund, _initial_fund(run, fund), run.metrics.insurance_drawdown, "#2471a3")]
    vault = None if run.backstop_per_step is None else np.asarray(run.backstop_per_step, dtype=np.float64)
    if vault is not None and len(vault) and np.ptp(vault) > 0:  # a vault that never moved has nothing to show
        panels.append(("backstop vault", vault, float(vault[0]), run.metrics.backstop_drawdown, "#b9770e"))
    figure = new_figure(9.0, 3.6 if len(panels) == 1 else 6.4)
    for row, (name, balance, start, drawdown, colour) in enumerate(panels, start=1):
        axes = figure.add_subplot(len(panels), 1, row)
        x = axis.of(len(balance))
        axes.plot(x, balance, color=colour, lw=1.3, label=name)
        if start is not None:
            axes.axhline(start, color="#888", lw=0.8, ls="--", label="at the start")
            axes.fill_between(x, balance, start, where=balance < start, color=colour, alpha=0.15, interpolate=True)
        axes.set_ylabel("USD")
        _usd(axes)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="best")
        axes.set_title(f"{name[0].upper()}{name[1:]} over time: drawdown {drawdown:,.0f} USD", fontsize=10)
    axes.set_xlabel(axis.label)
    caption = ("First run. Value of the venue's insurance fund after each step (its cash, and the unrealized "
               "PnL of positions it took over); the shaded area is how far it stood below its starting value "
               "(fees from liquidations can raise it). "
               + ("Below it, the backstop vault, valued the same way (the venue's liquidator account: "
                  "Hyperliquid's vault takes accounts over with their margin, pays what they owe beyond it, "
                  "and holds their positions)." if len(panels) > 1
                  else "The backstop vault did not move in this run, so it is not drawn."))
    return figure, caption


def _draw_bad_debt(new_figure, run, axis: _TimeAxis):
    figure = new_figure(9.0, 3.6)
    axes = figure.add_subplot()
    path = np.asarray(run.bad_debt_per_step, dtype=np.float64)
    if not len(path):
        path = np.zeros(len(run.liquidated_per_step))
    x = axis.of(len(path))
    axes.plot(x, path, color="#8e44ad", lw=1.3, label="bad debt recorded, running total")
    axes.fill_between(x, path, 0.0, color="#8e44ad", alpha=0.15)
    axes.set_ylabel("USD")
    axes.set_xlabel(axis.label)
    _usd(axes)
    axes.set_ylim(bottom=0, top=max(float(path.max()) * 1.1 if len(path) else 0.0, 1.0))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    axes.set_title(f"Bad debt over time: {run.metrics.bad_debt:,.2f} USD; system debt / reserve deficit left "
                   f"{run.system_debt:,.2f} USD")
    caption = ("First run. Running total of the bad debt the venue recorded (Maker: what auctions that sold "
               "their whole lot did not cover; Aave 3.3: reserve deficits written off; Compound: absorbed debt "
               "beyond the collateral's value, taken by reserves; Euler and Morpho: debt left without collateral, "
               "written off against the vault's depositors or the market's suppliers; Liquity: troves "
               "liquidated below 100% collateralization, the loss borne by the stability pool or the troves "
               "the rest was redistributed to). The title adds what is left at the end: Maker's system debt "
               "(the vow's unbacked debt net of the surplus, auctions still running included), Aave's reserve "
               "deficits, Compound's reserves below zero (collateral not yet sold not counted), the debt Euler "
               "socialized or Morpho realized, or the LUSD Liquity's collateral no longer covers. A lending "
               "venue has no insurance fund, so this chart replaces the perpetual report's insurance-fund chart.")
    return figure, caption


def _initial_fund(run: RunResult, fund: np.ndarray) -> float | None:
    try:
        return float(run.config.insurance_fund)
    except (TypeError, ValueError):
        return float(fund[0]) if len(fund) else None


def _draw_losses(new_figure, runs: list[RunResult | LendingRunResult]):
    from matplotlib.ticker import MaxNLocator

    if len(runs) == 1:
        return _draw_one_run_losses(new_figure, runs[0])
    figure = new_figure(10.0, 4.0)
    panels = figure.subplots(1, 2, squeeze=False)[0]
    series = (("bad_debt", "bad debt", "VaR", "#8e44ad"),
              ("liquidated_notional", "liquidated notional", "LaR", "#c0392b"))
    count = len(runs)
    for axes, (name, label, headline, color) in zip(panels, series):
        values = np.array([getattr(run.metrics, name) for run in runs], dtype=np.float64)
        if count == 1:
            _note(axes, f"a single run: no distribution to show\n{label} = {values[0]:,.2f} USD")
            axes.set_title(label)
            continue
        low, high = float(values.min()), float(values.max())
        bins = min(30, max(5, count // 2))
        pad = max(abs(low) * 0.05, 1.0)
        span = (low - pad, high + pad) if high == low else (low, high)
        axes.hist(values, bins=bins, range=span, color=color, alpha=0.8)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.xaxis.set_major_locator(MaxNLocator(nbins=5))
        p95 = float(np.percentile(values, 95.0))
        axes.axvline(p95, color="#222", ls="--", lw=1.0, label=f"{headline} (p95) {_compact_usd(p95)}")
        axes.axvline(float(values.mean()), color="#888", ls=":", lw=1.0, label=f"mean {_compact_usd(values.mean())}")
        axes.set_xlabel(f"{label} per run (USD)")
        axes.set_ylabel("runs")
        _usd(axes, "x")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="best")
        axes.set_title(label)
    figure.suptitle(f"Distribution of losses across {count} Monte Carlo run{'s' if count != 1 else ''}")
    if count == 1:
        caption = "Only one run was given, so there is no distribution: run several seeds to see one."
    else:
        caption = (f"Histograms over the {count} runs of bad debt (left) and of liquidated notional (right); "
                   "dashed: VaR and LaR, the 95th percentiles; dotted: the mean.")
    return figure, caption


def _draw_one_run_losses(new_figure, run: RunResult | LendingRunResult):
    """One run has no distribution across runs: show the one inside it, the notional liquidated in each
    step that liquidated, and its total and bad debt."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(10.0, 4.0)
    axes = figure.add_subplot()
    per_step = np.asarray(run.liquidated_per_step, dtype=np.float64)
    active = per_step[per_step > 0]
    metrics = run.metrics
    totals = (f"total liquidated {_compact_usd(metrics.liquidated_notional)}, bad debt "
              f"{_compact_usd(metrics.bad_debt)}")
    if not len(active):
        _note(axes, f"nothing was liquidated in this run\n{totals}")
    else:
        bins = min(30, max(5, len(active) // 2))
        low, high = float(active.min()), float(active.max())
        span = (low * 0.95, high * 1.05 + 1.0) if high == low else (low, high)
        axes.hist(active, bins=bins, range=span, color="#c0392b", alpha=0.8)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.xaxis.set_major_locator(MaxNLocator(nbins=6))
        median = float(np.median(active))
        axes.axvline(median, color="#222", ls="--", lw=1.0, label=f"median {_compact_usd(median)}")
        axes.set_xlabel("notional liquidated in one step (USD)")
        axes.set_ylabel("steps")
        _usd(axes, "x")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="best")
    axes.set_title(f"Notional liquidated per step, over the {len(active):,} steps that liquidated "
                   f"({totals.replace('$', chr(92) + '$')})", fontsize=9)  # a literal $, not mathtext
    figure.suptitle("Distribution of liquidations within the run (one run: no distribution across runs)")
    caption = (f"A single run: the histogram counts the {len(active):,} steps with a liquidation by the notional "
               "they liquidated (dashed: the median). Run several seeds (sweep, or --paths) for the distribution "
               "of bad debt and liquidated notional across runs, VaR and LaR.")
    return figure, caption


def _draw_heatmap(new_figure, run: RunResult | LendingRunResult, axis: _TimeAxis, book, lending: bool = False):
    if book is None or not book:
        figure = new_figure(9.0, 3.0)
        axes = figure.add_subplot()
        _note(axes, "the book was not given: no liquidation-price heatmap"
              if book is None else "the book has no positions: no liquidation-price heatmap")
        axes.set_title("Liquidation-price heatmap of the book")
        caption = ("The book's liquidation prices were not given to the report, so there is no heatmap."
                   if book is None else "The book given to the report has no positions.")
        return figure, caption
    from matplotlib.colors import PowerNorm

    assets = list(book)
    figure = new_figure(max(4.6 * len(assets), 6.0), 4.8)
    panels = figure.subplots(1, len(assets), squeeze=False)[0]
    weighted = any(weights is not None for _, weights in book.values())
    for axes, asset in zip(panels, assets):
        levels, weights = book[asset]
        path = run.simulated.get(asset)
        if path is not None and len(path) and float(path[0]) > 0:
            relative = np.asarray(path, dtype=np.float64) / float(path[0])
        else:
            relative = None
        steps = len(relative) if relative is not None else max(len(run.liquidated_per_step), 1)
        matrix, edges, dropped = liquidation_map(levels, weights, relative, steps)
        x = axis.of(steps + 1)
        norm = PowerNorm(0.5, vmin=0.0, vmax=max(float(matrix.max()), 1.0))  # square root: thin bands show
        image = axes.pcolormesh(x, edges, matrix, cmap="magma", shading="flat", norm=norm)
        bar = figure.colorbar(image, ax=axes, label="notional not yet reached (USD)" if weights is not None
                              else "positions not yet reached")
        if weights is not None:
            _usd(bar.ax)
        if relative is not None:
            axes.plot(axis.of(steps) + axis.scale / 2, relative, color="#3fd0ff", lw=1.1,
                      label="simulated price / open")
            axes.legend(fontsize=8, loc="lower left")
        axes.axhline(1.0, color="white", lw=0.6, ls=":")
        axes.set_ylim(edges[0], edges[-1])
        axes.set_xlabel(axis.label)
        axes.set_ylabel("health-factor-1 price / opening price" if lending else "liquidation price / opening price")
        notes = [f"{dropped:,} outside the band or not liquidable"] if dropped else []
        if relative is None:
            notes.append("no simulated path")
        axes.set_title(f"{asset}: {len(levels):,} positions" + ("\n" + "; ".join(notes) if notes else ""),
                       fontsize=10)
    figure.suptitle("Liquidation-price heatmap of the book over time")
    what = "number of positions (notional in USD for assets given with a notional column)" if weighted \
        else "number of positions"
    if lending:
        return figure, (
            "Rows: each borrower's health-factor-1 price (the collateral price at which it becomes "
            "liquidatable: Maker's liquidation ratio, Aave's liquidation threshold) relative to the opening "
            "price, from the book as drawn (before rounding to token decimals and interest accrual); columns: "
            f"time in the first run; colour (square-root scale): {what} whose level lies in the row's band and "
            "that the running low of the market price had not reached yet. Blue line: the market price keepers "
            "sell into, over the open. Reaching a level is a proxy for being liquidatable; the engine's events "
            "are exact.")
    caption = ("Rows: liquidation price relative to the opening price (longs below 1, shorts above); "
               f"columns: time in the first run; colour (square-root scale): {what} whose liquidation level "
               "lies in the row's band "
               "and that the simulated price had not reached yet (a level under 1 is reached when the running "
               "low touches it, over 1 when the running high does). Blue line: the simulated price over the "
               "open. Reaching a level is a proxy for being liquidated; the engine's events are exact.")
    return figure, caption


def liquidation_map(levels: np.ndarray, weights: np.ndarray | None, relative_path: np.ndarray | None,
                    steps: int, rows: int = HEATMAP_ROWS) -> tuple[np.ndarray, np.ndarray, int]:
    """The heatmap's 2-D histogram: ``(rows, steps)`` counts (or notional), row edges, and left-out count.

    Cell ``[r, t]`` sums the positions whose relative liquidation level lies in row ``r`` and
    that ``relative_path`` (price over the opening price, one value per step) has not reached by
    step ``t`` included: a level ``< 1`` is reached once ``min(path[:t+1]) <= level``, a level
    ``>= 1`` once ``max(path[:t+1]) >= level``. Without a path nothing is reached. Levels that
    are not finite, not positive, or outside the band are left out and counted.
    """
    levels = np.asarray(levels, dtype=np.float64)
    weights = np.ones_like(levels) if weights is None else np.asarray(weights, dtype=np.float64)
    usable = np.isfinite(levels) & (levels > 0)
    edges = _band(levels[usable], relative_path, rows)
    inside = usable & (levels >= edges[0]) & (levels <= edges[-1])
    dropped = int(levels.size - inside.sum())
    levels, weights = levels[inside], weights[inside]
    row = np.clip(np.searchsorted(edges, levels, side="right") - 1, 0, rows - 1)
    reached = np.full(levels.shape, steps, dtype=np.int64)  # step at which the level is reached
    if relative_path is not None and len(relative_path):
        path = np.asarray(relative_path, dtype=np.float64)[:steps]
        low, high = np.minimum.accumulate(path), np.maximum.accumulate(path)
        below = levels < 1.0
        # The running low falls, the running high rises: first step at which each touches a level.
        reached[below] = np.searchsorted(-low, -levels[below], side="left")
        reached[~below] = np.searchsorted(high, levels[~below], side="left")
        reached = np.minimum(reached, steps)
    # Add each position at its reaching step, then alive[t] = sum over reaching steps > t.
    events = np.zeros((rows, steps + 1), dtype=np.float64)
    np.add.at(events, (row, reached), weights)
    alive = np.cumsum(events[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return alive, edges, dropped


def _band(levels: np.ndarray, path: np.ndarray | None, rows: int) -> np.ndarray:
    """Row edges covering the bulk of the book (1st–99th percentile) and the whole path."""
    points = [1.0]
    if levels.size:
        points += list(np.percentile(levels, (1.0, 99.0)))
    if path is not None and len(path):
        finite = np.asarray(path, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            points += [float(finite.min()), float(finite.max())]
    low, high = min(points), max(points)
    pad = max((high - low) * 0.05, 0.01)
    return np.linspace(max(low - pad, 0.0), high + pad, rows + 1)


# --------------------------------------------------------------------------- HTML


def _html(title: str, runs: list[RunResult | LendingRunResult], captions: dict[str, str]) -> str:
    first = runs[0]
    lending = _is_lending(first)
    summary = summarize([run.metrics for run in runs])
    esc = html.escape
    count = len(runs)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="lead">Scenario <b>{esc(str(first.config.scenario))}</b> under preset '
        f"<b>{esc(str(first.config.preset))}</b>, {count} Monte Carlo run{'s' if count != 1 else ''}, "
        + (f"{first.config.borrowers:,} borrowers each (a lending venue). " if _is_lending(first) else
           f"{first.config.accounts:,} accounts each. ")
        + f"Per-run figures show the first run (seed {esc(str(first.config.seed))}).</p>",
        "<h2>Metrics</h2>",
        _metrics_table(summary, count),
        "<p>VaR (value at risk) is the 95th percentile of bad debt and LaR (liquidations at risk) the 95th "
        "percentile of liquidated notional over the runs, as Gauntlet quotes them; p99 is given for the deeper "
        "tail. Percentiles interpolate linearly between runs (numpy's default).</p>",
    ]
    headings = {
        PRICE_PATHS: "Price path with and without the cascade",
        LIQUIDATIONS: "Liquidations over time",
        INSURANCE_FUND: "Insurance fund and backstop vault over time",
        LOSS_DISTRIBUTION: "Distribution of losses across runs",
        LIQUIDATION_HEATMAP: "Liquidation-price heatmap of the book",
        BAD_DEBT: "Bad debt and reserve deficit over time",
    }
    if lending:
        headings[LIQUIDATION_HEATMAP] = "Health-factor-1 price heatmap of the book"
    for name in LENDING_FIGURES if lending else FIGURES:
        parts += [
            f"<h2>{esc(headings[name])}</h2>",
            "<figure>",
            f'<img src="{esc(name)}" alt="{esc(headings[name])}">',
            f"<figcaption>{esc(captions[name])}</figcaption>",
            "</figure>",
        ]
    if lending:
        parts += [
            "<h2>Charts left out for a lending venue</h2>",
            "<p><b>Insurance fund over time</b>: a lending venue has no insurance fund (losses land as bad "
            "debt, reserve deficits, Maker's system debt, Compound's reserves, Euler's and Morpho's lenders "
            "or Liquity's stability pool and troves), so the chart above of bad debt takes its place. "
            "For the same reason the insurance-fund, backstop and ADL rows of the metrics table are 0 by "
            "construction.</p>",
        ]
    parts += ["<h2>Run configuration</h2>", _config_table(runs), "</body>", "</html>", ""]
    return "\n".join(parts)


def _metrics_table(summary: dict[str, dict[str, float | None]], count: int) -> str:
    rows = [
        '<table class="metrics">',
        "<thead><tr><th>metric</th><th>unit</th>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr></thead>",
        "<tbody>",
    ]
    names = [name for name in summary if name not in ("VaR", "LaR")] + ["VaR", "LaR"]
    for name in names:
        stats = summary[name]
        if name.startswith("price_overshoot."):
            label, unit = f"price overshoot {name.split('.', 1)[1]}", "fraction"
        else:
            label, unit = METRIC_LABELS.get(name, (name, ""))
        cells = "".join(f'<td class="num">{_number(value) if (value := stats.get(c)) is not None else "–"}</td>'
                        for c in COLUMNS)
        css = ' class="headline"' if name in ("VaR", "LaR") else ""
        rows.append(f'<tr{css}><td title="{html.escape(name)}">{html.escape(label)} '
                    f"<code>{html.escape(name)}</code></td><td>{unit}</td>{cells}</tr>")
    rows += ["</tbody>", "</table>", f"<p>Over {count} run{'s' if count != 1 else ''}.</p>"]
    return "\n".join(rows)


def _number(value: float) -> str:
    if not math.isfinite(value):
        return html.escape(str(value))
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def _config_table(runs: list[RunResult | LendingRunResult]) -> str:
    rows = ["<table class=\"config\">", "<thead><tr><th>setting</th><th>value</th></tr></thead>", "<tbody>"]
    for spec in fields(runs[0].config):
        values = [getattr(run.config, spec.name, None) for run in runs]
        if all(value == values[0] for value in values):
            shown = str(values[0])
        else:
            listed = ", ".join(str(value) for value in values[:20])
            shown = f"per run: {listed}" + (f", … ({len(values)} runs)" if len(values) > 20 else "")
        rows.append(f"<tr><td>{html.escape(spec.name)}</td><td>{html.escape(shown)}</td></tr>")
    first = runs[0]
    markets = ", ".join(f"{asset} → {market}" for asset, market in first.markets.items())
    steps = len(first.liquidated_per_step)
    rows += [f"<tr><td>markets</td><td>{html.escape(markets)}</td></tr>",
             f"<tr><td>steps</td><td>{steps:,}</td></tr>",
             "</tbody>", "</table>"]
    return "\n".join(rows)
