"""``solvent backtest-margin``: a dynamic margin model run over a price history.

Registered by ``cli/main.py``; the statistics live in :mod:`solvent.policies.dynamic_margin`.
See docs/oracle.md.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.errors import InvalidInput, SolventError
from ..policies import dynamic_margin as dm

console = Console(width=None if sys.stdout.isatty() else 140)
errors = Console(stderr=True)

MAX_ROWS = 5_000_000


def _fail(error: Exception) -> None:
    errors.print(f"[red]error:[/red] {escape(str(error))}")
    raise typer.Exit(2)


def read_closes(path: Path) -> tuple[list[str], list[float]]:
    """A CSV with a header naming ``timestamp`` and ``close`` columns (others are ignored)."""
    try:
        handle = path.open(newline="")
    except OSError as error:
        raise InvalidInput("prices", f"cannot read {path}: {error.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        names = [name.strip().lower() for name in reader.fieldnames or []]
        if "close" not in names or "timestamp" not in names:
            raise InvalidInput("prices", f"{path}: the header must name timestamp and close, got {reader.fieldnames}")
        stamp_key = (reader.fieldnames or [])[names.index("timestamp")]
        close_key = (reader.fieldnames or [])[names.index("close")]
        stamps, closes = [], []
        for line, row in enumerate(reader, start=2):
            if line > MAX_ROWS:
                raise InvalidInput("prices", f"at most {MAX_ROWS} rows")
            text = (row.get(close_key) or "").strip()
            try:
                value = float(text)
            except ValueError:
                raise InvalidInput(f"prices:{line}.close", f"not a number: {text!r}") from None
            if not math.isfinite(value) or value <= 0:
                raise InvalidInput(f"prices:{line}.close", f"must be positive, got {text!r}")
            stamps.append((row.get(stamp_key) or "").strip())
            closes.append(value)
    return stamps, closes


def backtest_margin(
    prices: Path | None = typer.Option(None, "--prices", help="CSV with timestamp and close columns, oldest first."),
    scenario: str | None = typer.Option(None, "--scenario", help=f"A built-in series: {', '.join(dm.SCENARIOS)}."),
    length: int = typer.Option(2000, "--length", help="Prices in a built-in scenario."),
    seed: int = typer.Option(7, "--seed", help="Seed of a built-in scenario."),
    model: str = typer.Option("scaled", "--model", help="scaled (z·σ·√h) or fhs (filtered historical simulation)."),
    estimator: str = typer.Option("ewma", "--estimator", help="Volatility: ewma or realized."),
    lam: float = typer.Option(0.94, "--lambda", help="EWMA decay λ."),
    window: int = typer.Option(30, "--window", help="Realized-volatility window (and the EWMA's seed), in periods."),
    confidence: float = typer.Option(0.99, "--confidence", help="Confidence of the margin (per side)."),
    mpor: int = typer.Option(1, "--mpor", help="Margin period of risk, in periods."),
    lookback: int = typer.Option(500, "--lookback", help="FHS: standardized returns kept."),
    apc: str = typer.Option("none", "--apc", help="EMIR Art. 28 option: none, buffer, stressed or floor."),
    buffer: float = typer.Option(dm.EMIR_BUFFER, "--buffer", help="Art. 28(1)(a) buffer (at least 0.25)."),
    stressed_weight: float = typer.Option(dm.EMIR_STRESSED_WEIGHT, "--stressed-weight",
                                          help="Art. 28(1)(b) weight on stressed volatility (at least 0.25)."),
    periods_per_year: int = typer.Option(365, "--periods-per-year", help="For the 10-year floor (365 for daily)."),
    n_days: int = typer.Option(5, "--n-days", help="Window of the largest margin increase, in periods."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    series: Path | None = typer.Option(None, "--series", help="Also write the margin path as CSV here."),
) -> None:
    """Backtest a dynamic margin model: breaches, Kupiec and Christoffersen tests, procyclicality."""
    try:
        if (prices is None) == (scenario is None):
            raise InvalidInput("prices", "give exactly one of --prices or --scenario")
        if prices is not None:
            stamps, closes = read_closes(prices)
        else:
            closes = list(dm.scenario(str(scenario), length=length, seed=seed))
            stamps = [str(i) for i in range(len(closes))]
        spec = dm.MarginSpec(model=model, estimator=estimator, lam=lam, window=window, confidence=confidence,
                             mpor=mpor, lookback=lookback, apc=apc, buffer=buffer, stressed_weight=stressed_weight,
                             periods_per_year=periods_per_year)
        report = dm.backtest(closes, spec, timestamps=stamps, n_periods=n_days)
    except SolventError as error:
        _fail(error)
        return
    if series is not None:
        with series.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["timestamp", "close", "sigma", "long_rate", "short_rate"])
            writer.writeheader()
            writer.writerows(report.series)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    console.print(f"{report.prices} prices; model {spec.model} ({spec.estimator}), confidence {spec.confidence}, "
                  f"MPOR {spec.mpor}, APC {spec.apc}")
    table = Table("side", "obs", "breaches", "rate", "expected", "3σ band", "Kupiec LR", "p", "Christoffersen LR", "p")
    for side in report.sides:
        low, high = side.expected_band
        table.add_row(side.side, str(side.observations), str(side.breaches), f"{side.breach_rate:.4f}",
                      f"{side.expected_rate:.4f}", f"{max(low, 0):.1f}–{high:.1f}", _num(side.kupiec_lr),
                      _num(side.kupiec_p), _num(side.christoffersen_lr), _num(side.christoffersen_p))
    console.print(table)
    console.print(f"margin rate: mean {report.mean_rate:.4f}, peak {report.peak_rate:.4f}, trough "
                  f"{report.trough_rate:.4f}, peak-to-trough {_num(report.peak_to_trough)}; largest "
                  f"{report.n_periods}-period increase {_num(report.largest_n_period_increase)} "
                  f"(at {report.largest_increase_at})")


def _num(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "n/a"
