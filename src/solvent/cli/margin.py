"""``solvent margin`` and ``solvent bench options``: the options family on the command line.

Registered by ``cli/main.py``; kept apart so the options commands do not grow the main module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.errors import SolventError

console = Console(width=None if sys.stdout.isatty() else 140)
errors = Console(stderr=True)


def _fail(error: Exception) -> None:
    errors.print(f"[red]error:[/red] {escape(str(error))}")
    raise typer.Exit(2)


def _money(value: float) -> str:
    return f"{value:,.4f}"


def margin(
    preset: str = typer.Option("derive", "--preset", "-p", help="Options preset name or .toml path (scenario grid)."),
    portfolio: Path = typer.Option(..., "--portfolio", help="Portfolio JSON: spot, feeds, options, perp, "
                                   "collaterals, cash, optional params (docs/options.md)."),
    scenarios: bool = typer.Option(False, "--scenarios", help="Also print every scenario's PnL."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (the API's field names)."),
) -> None:
    """Portfolio margin of an options account: IM, MM, MtM, the worst scenario of each group,
    contingencies and Greeks, under an options preset's scenario grid."""
    from ..policies.options import margin_report_from_json

    try:
        try:
            data = json.loads(portfolio.read_text(encoding="utf-8"))
        except OSError as error:
            raise SolventError(f"--portfolio: cannot read {portfolio}: {error}") from None
        except json.JSONDecodeError as error:
            raise SolventError(f"--portfolio: {portfolio} is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise SolventError("--portfolio: expected a JSON object")
        report = margin_report_from_json(data, preset)
    except SolventError as error:
        _fail(error)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return

    summary = Table(title=f"margin under {escape(preset)}", show_header=True, header_style="bold")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    rows = [("initial margin surplus (IM)", report.im), ("maintenance margin surplus (MM)", report.mm),
            ("mark-to-market (incl. cash)", report.mtm), ("  options", report.option_mtm),
            ("  perp (unrealised PnL + funding)", report.perp_mtm), ("  collateral", report.collateral_mtm),
            ("  cash", report.cash), ("initial margin requirement", report.initial_margin_requirement),
            ("maintenance margin requirement", report.maintenance_margin_requirement),
            ("worst loss (min SPAN)", report.min_span)]
    for label, value in rows:
        summary.add_row(label, _money(value))
    console.print(summary)
    state = "[red]liquidatable (MM < 0)[/red]" if report.mm < 0 else (
        "[yellow]below initial margin: risk-adding trades refused[/yellow]" if report.im < 0 else "[green]healthy[/green]")
    console.print(f"status: {state}; IM factor {report.im_factor:g}, MM factor {report.mm_factor:g}")

    worst = Table(title="worst scenario of each group", header_style="bold")
    for column in ("group", "#", "spot shock", "vol shock", "dampening", "PnL"):
        worst.add_column(column, justify="right" if column in ("#", "PnL", "dampening", "spot shock") else "left")
    for group, entry in report.worst_by_group.items():
        worst.add_row(group, str(entry.index), f"{entry.scenario.spot_shock:g}", entry.scenario.vol_shock.value,
                      f"{entry.scenario.dampening:g}", _money(entry.pnl))
    worst.add_row("basis", "-", "±", "none", "-", _money(report.basis_contingency))
    console.print(worst)
    which = ("the basis contingency" if report.worst_scenario is None
             else f"scenario #{report.worst_scenario} ({report.scenarios[report.worst_scenario].label})")
    console.print(f"the margin is set by {escape(which)}")

    contingencies = Table(title="contingencies (subtracted)", header_style="bold")
    contingencies.add_column("part")
    contingencies.add_column("amount", justify="right")
    for name, value in report.contingencies.items():
        contingencies.add_row(name.replace("_", " "), _money(value))
    contingencies.add_row("MM total (from IM and MM)", _money(report.mm_contingency))
    contingencies.add_row("IM total (from IM only)", _money(report.im_contingency))
    console.print(contingencies)

    greeks = Table(title="portfolio Greeks (per unit of spot; vega per 1.00 vol; theta per year)",
                   header_style="bold")
    for column in ("delta", "gamma", "vega", "theta"):
        greeks.add_column(column, justify="right")
    g = report.greeks
    greeks.add_row(f"{g.delta:,.6f}", f"{g.gamma:,.8f}", f"{g.vega:,.4f}", f"{g.theta:,.4f}")
    console.print(greeks)

    if scenarios:
        table = Table(title="every scenario", header_style="bold")
        for column in ("#", "group", "spot shock", "vol shock", "dampening", "PnL"):
            table.add_column(column)
        for index, (scenario, pnl) in enumerate(zip(report.scenarios, report.scenario_pnls)):
            table.add_row(str(index), scenario.group, f"{scenario.spot_shock:g}", scenario.vol_shock.value,
                          f"{scenario.dampening:g}", _money(pnl))
        console.print(table)


def bench_options(
    accounts: int = typer.Option(100_000, "--accounts", min=1, help="Option accounts in the synthetic book."),
    seed: int = typer.Option(15, "--seed", min=0, help="Seed of the synthetic book."),
    preset: str = typer.Option("derive", "--preset", "-p", help="Options preset whose grid is used."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    engine_accounts: int = typer.Option(0, "--engine-accounts", min=0,
                                        help="Also time an engine price-and-vol update on this many option accounts, "
                                             "screened against valuing every account (events compared)."),
) -> None:
    """Time the options grid on a whole book against the per-account exact loop and a memory pass."""
    from ..bench.options import run_options_benchmark

    figures = None
    if engine_accounts:
        from ..bench.options_engine import run_engine_update_benchmark

        try:
            figures = run_engine_update_benchmark(engine_accounts, preset=preset).as_dict()
        except SolventError as error:
            _fail(error)

    try:
        say = (lambda message: errors.print(f"[dim]{message}[/dim]")) if not as_json else None
        result = run_options_benchmark(accounts, seed=seed, preset=preset, progress=say)
    except SolventError as error:
        _fail(error)
    if as_json:
        print(json.dumps({**result.as_dict(), **({"engine_update": figures} if figures else {})}, indent=2))
        return
    if figures:
        console.print(f"engine update (spot −8%, vol ×1.6) on {figures['accounts']:,} option accounts: screened "
                      f"{figures['screened_seconds']:.3f} s ({figures['screened_candidates']:,} valued exactly) "
                      f"against {figures['every_account_seconds']:.3f} s valuing every account "
                      f"({figures['speedup']:.1f}×); {figures['events']:,} events, identical: "
                      f"{figures['events_identical']}; {figures['liquidations_started']:,} liquidations started")
    table = Table(title=f"options grid: {accounts:,} accounts / {result.options:,} options / "
                        f"{result.expiry_slots:,} expiries / {result.scenarios} scenarios, after a spot and vol move")
    table.add_column("measure")
    table.add_column("CPU seconds", justify="right")
    table.add_column("wall", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row("vectorized grid (every account)", f"{result.grid_seconds:.3f}", f"{result.grid_wall_seconds:.3f}",
                  f"{result.grid_vs_memory_pass:.1f}× memory pass")
    note = f" (extrapolated from {result.naive_sample_accounts:,} accounts)" if result.naive_extrapolated else ""
    table.add_row(f"per-account exact loop{note}", f"{result.naive_seconds:.2f}", f"{result.naive_wall_seconds:.2f}",
                  f"{result.naive_vs_grid:.0f}× the grid")
    table.add_row("memory pass (options x columns written once)", f"{result.memory_pass_seconds:.4f}", "", "1.00")
    console.print(table)
    console.print(f"one account's exact margin: {result.single_account_ms:.3f} ms ({result.single_account_options} "
                  f"options; {result.single_account_array_ms:.3f} ms through the array kernel), largest account "
                  f"{result.large_account_ms:.3f} ms; below MM {result.below_maintenance:,}, "
                  f"below IM {result.below_initial:,}; book {result.book_megabytes:.0f} MiB built in "
                  f"{result.build_seconds:.2f} s; load average {result.load_average:.1f}")
