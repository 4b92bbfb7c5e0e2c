"""An incident replay as text (comparison tables) or JSON, for the command line and the bench."""

from __future__ import annotations

import json
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from .facts import Fact
from .registry import IncidentRun, run_incident


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("usd", "dai"):
        sign = "$" if unit == "usd" else ""
        if abs(value) >= 1e9:
            return f"{sign}{value / 1e9:,.2f}B"
        if abs(value) >= 1e6:
            return f"{sign}{value / 1e6:,.2f}M"
        return f"{sign}{value:,.0f}"
    if unit in ("percent",):
        return f"{value:.1f}%"
    if unit == "seconds":
        return f"{value:.0f} s"
    if unit == "ratio":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def facts_table(title: str, facts: Iterable[Fact]) -> Table:
    """Published against simulated: the ratio and whether the band holds."""
    table = Table(title=title)
    for column, justify in (("fact", "left"), ("published", "right"), ("simulated", "right"), ("ratio", "right"),
                            ("band", "right"), ("inside?", "center")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for fact in facts:
        ratio = fact.ratio
        table.add_row(fact.label, _number(fact.published, fact.unit), _number(fact.simulated, fact.unit),
                      "-" if ratio is None else f"{ratio:.2f}", fact.band, "yes" if fact.inside else "NO")
    return table


def side_by_side(run: IncidentRun) -> Table:
    """The replay and each counterfactual, metric by metric."""
    variants = [run.replay] + run.counterfactuals
    table = Table(title=f"{run.name}: counterfactuals side by side (seed {run.seed})")
    table.add_column("metric")
    for variant in variants:
        table.add_column(variant.label, justify="right")
    units = {fact.name: fact.unit for fact in run.replay.facts}
    names = list(run.replay.metrics)
    for name in names:
        unit = units.get(name, "usd" if any(word in name for word in ("notional", "debt", "drawdown", "excess",
                                                                         "deficit")) else "count")
        table.add_row(name, *(_number(variant.metrics.get(name), unit) for variant in variants))
    table.add_row("facts inside their band", *(f"{sum(f.inside for f in v.facts)}/{len(v.facts)}" for v in variants))
    return table


def show(name: str, seed: int, as_json: bool, console: Console, scale: float = 1.0) -> IncidentRun:
    run = run_incident(name, seed=seed, scale=scale)
    if as_json:
        print(json.dumps(run.to_json(), indent=2, default=str))
        return run
    console.print(facts_table(f"{run.title} (seed {seed}, {run.seconds:.1f} s)", run.facts))
    if run.counterfactuals:
        console.print(side_by_side(run))
    for note in run.notes:
        console.print(f"note: {note}")
    return run
