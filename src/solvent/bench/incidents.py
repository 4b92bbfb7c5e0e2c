"""Incident replays at full size over several seeds: published against simulated, per fact.

``python -m solvent.bench.incidents [--seeds 5] [--scale 1] [NAME ...]`` runs each incident
(:mod:`solvent.sim.incidents`) once per seed and prints, per fact, the published number, the
simulated mean and range over the seeds, the mean ratio, and in how many seeds the band held;
then the counterfactuals side by side (mean over the seeds). ``--json`` prints the runs instead.
The bands are the facts files'; a fact whose band held in fewer than all seeds is not "reproduced".
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from ..sim.incidents import IncidentRun, list_incidents, run_incident
from ..sim.incidents.render import _number


@dataclass
class IncidentBench:
    name: str
    runs: list[IncidentRun]
    seconds: float

    def fact_rows(self) -> list[tuple[str, str, str, str, str, str, str]]:
        """(fact, published, mean, range, mean ratio, band, inside k/n) per fact."""
        rows = []
        first = self.runs[0].facts
        for index, fact in enumerate(first):
            values = [run.facts[index].simulated for run in self.runs]
            known = [v for v in values if v is not None]
            inside = sum(run.facts[index].inside for run in self.runs)
            mean = statistics.fmean(known) if known else None
            ratio = mean / fact.published if mean is not None and fact.published else None
            span = f"{_number(min(known), fact.unit)} – {_number(max(known), fact.unit)}" if known else "-"
            rows.append((fact.label, _number(fact.published, fact.unit), _number(mean, fact.unit), span,
                         "-" if ratio is None else f"{ratio:.2f}", fact.band, f"{inside}/{len(self.runs)}"))
        return rows

    def counterfactual_rows(self) -> tuple[list[str], list[list[str]]]:
        labels = [self.runs[0].replay.label] + [v.label for v in self.runs[0].counterfactuals]
        units = {fact.name: fact.unit for fact in self.runs[0].facts}
        rows = []
        for name in self.runs[0].replay.metrics:
            unit = units.get(name, "usd" if any(w in name for w in ("notional", "debt", "drawdown", "excess", "usd"))
                             else "count")
            cells = [name]
            for position in range(len(labels)):
                values = []
                for run in self.runs:
                    variant = run.replay if position == 0 else run.counterfactuals[position - 1]
                    if variant.metrics.get(name) is not None:
                        values.append(float(variant.metrics[name]))  # type: ignore[arg-type]
                cells.append(_number(statistics.fmean(values), unit) if values else "-")
            rows.append(cells)
        return labels, rows


def bench_incident(name: str, seeds: int, scale: float = 1.0, counterfactuals: bool = True) -> IncidentBench:
    began = time.perf_counter()
    runs = [run_incident(name, seed=seed, scale=scale, counterfactuals=counterfactuals) for seed in range(seeds)]
    return IncidentBench(name, runs, time.perf_counter() - began)


def print_bench(bench: IncidentBench, console: Console) -> None:
    run = bench.runs[0]
    table = Table(title=f"{run.title}: {len(bench.runs)} seeds, scale {run.scale:g} ({bench.seconds:.0f} s)")
    for column in ("fact", "published", "simulated (mean)", "range over seeds", "ratio", "band", "inside"):
        table.add_column(column, justify="left" if column == "fact" else "right")
    for row in bench.fact_rows():
        table.add_row(*row)
    console.print(table)
    if run.counterfactuals:
        labels, rows = bench.counterfactual_rows()
        side = Table(title=f"{bench.name}: counterfactuals side by side (mean over {len(bench.runs)} seeds)")
        side.add_column("metric")
        for label in labels:
            side.add_column(label, justify="right")
        for side_row in rows:
            side.add_row(*side_row)
        console.print(side)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - a console entry
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list_incidents())
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--no-counterfactuals", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    console = Console(width=170)
    for name in args.names:
        bench = bench_incident(name, args.seeds, args.scale, not args.no_counterfactuals)
        if args.json:
            print(json.dumps([run.to_json() for run in bench.runs], indent=2, default=str))
        else:
            print_bench(bench, console)


if __name__ == "__main__":  # pragma: no cover
    main()
