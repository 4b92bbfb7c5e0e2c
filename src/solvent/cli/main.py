"""``solvent``: the command line of the margin and liquidation engine."""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.domain import ContractKind, MarginMode, Side
from ..core.errors import InvalidInput, SolventError
from ..core.numbers import to_decimal
from . import io_options as io

app = typer.Typer(
    help="solvent: margin, liquidation and loss absorption for leveraged crypto venues.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that report ratios against baselines measured in the same run.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"solvent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print solvent's version (the one snapshots are tied to) and exit.")) -> None:
    """solvent: margin, liquidation and loss absorption for leveraged crypto venues."""


# Piped output (CI logs, files) gets room for the tables instead of rich's 80-column fallback.
console = Console(width=None if sys.stdout.isatty() else 140)
errors = Console(stderr=True)


def _fail(error: Exception) -> NoReturn:
    # The message is text, not markup: field names such as preset[binance].markets[0] keep their brackets.
    errors.print(f"[red]error:[/red] {escape(str(error))}")
    raise typer.Exit(2)


def _fmt(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{places}f}"


def _plain(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


# ------------------------------------------------------------------------------ conformance


@app.command()
def conformance(
    paths: list[Path] = typer.Argument(..., help="Vector files (.json) or folders searched recursively."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON object."),
) -> None:
    """Check solvent against the venues' own published numbers.

    Prints one FAIL line per failing case, then 'N passed, M failed'. Exits 0 only when every
    case passes; an unknown check counts as a failure.
    """
    from ..conformance.runner import run_paths

    try:
        results = run_paths(paths)
    except SolventError as error:
        _fail(error)
    passed = sum(result.passed for result in results)
    failed = len(results) - passed
    if not results:  # said apart from the results, which keep their contract (a last line, exit 0)
        errors.print(f"no vectors found in {', '.join(escape(str(path)) for path in paths)}", soft_wrap=True)
    if as_json:
        print(json.dumps({"passed": passed, "failed": failed,
                          "cases": [result.as_json() for result in results]}, indent=2))
    else:
        for result in results:
            if not result.passed:
                print(f"FAIL {result.id}: {result.message}")
        print(f"{passed} passed, {failed} failed")
    raise typer.Exit(0 if failed == 0 else 1)


# ------------------------------------------------------------------------------ presets


@app.command()
def presets(
    schema: bool = typer.Option(False, "--schema", help="Print the preset schema (JSON Schema) instead: every "
                                "table and key a preset or an override may hold."),
) -> None:
    """List the venue presets shipped with solvent, one line each."""
    from ..presets import list_presets, load_preset

    if schema:
        from ..presets.schema import preset_json_schema

        print(json.dumps(preset_json_schema(), indent=2))
        return

    table = Table(show_header=True, header_style="bold")
    table.add_column("preset")
    table.add_column("venue")
    table.add_column("mechanism")
    for name in list_presets():
        preset = load_preset(name)
        table.add_row(name, preset.title, preset.summary)
    console.print(table)


# ------------------------------------------------------------------------------ liq-price


@app.command("liq-price")
def liq_price(
    preset: str = typer.Option(..., "--preset", "-p", help="Preset name (see `solvent presets`) or a .toml path."),
    market: str = typer.Option(..., "--market", "-m", help="Market symbol of the preset, e.g. BTCUSDT."),
    side: str = typer.Option(..., "--side", help="long or short."),
    size: str = typer.Option(..., "--size", help="Position size in contracts (base units for linear markets)."),
    entry_price: str = typer.Option(..., "--entry-price", help="Average entry price."),
    margin_mode: str = typer.Option("isolated", "--margin-mode", help="isolated or cross."),
    margin: str | None = typer.Option(None, "--margin", help="Isolated margin, or the cross wallet balance."),
    leverage: str | None = typer.Option(None, "--leverage", help="Leverage (venues whose isolated margin is IM)."),
    extra_margin: str = typer.Option("0", "--extra-margin", help="Margin added to an isolated position."),
    mark_price: str | None = typer.Option(None, "--mark-price", help="Current mark (picks the starting bracket)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (ccxt-style field names)."),
) -> None:
    """Liquidation and bankruptcy price of one position under a venue's preset.

    Uses the preset's margin tiers for the market (iterating when the bracket at the liquidation
    price differs), its liquidation-price conventions and, where it has one, its price tick
    (rounded toward earlier liquidation).
    """
    from ..policies.liquidation_price import position_liquidation_price, round_price_against_account
    from ..presets import load_preset

    try:
        venue = load_preset(preset)
        spec = venue.markets.get(market)
        if spec is None:
            raise SolventError(f"preset {venue.name} has no market {market!r} (has: {', '.join(venue.markets)})")
        model = venue.margin_model(market)
        position_side = Side.parse(side)
        mode = MarginMode.parse(margin_mode, "margin_mode")
        amount = None if margin is None else to_decimal(margin, "margin")
        common = dict(
            kind=spec.kind, margin_mode=mode, side=position_side, size=to_decimal(size, "size"),
            entry_price=to_decimal(entry_price, "entry_price"), margin_model=model,
            rule=venue.liquidation_price_rule, contract_size=spec.contract_size,
            wallet_balance=amount, isolated_margin=amount if mode is MarginMode.ISOLATED else None,
            leverage=None if leverage is None else to_decimal(leverage, "leverage"),
            extra_margin=to_decimal(extra_margin, "extra_margin"), fee_rate=venue.fee_rate("taker"),
            mark_price=None if mark_price is None else to_decimal(mark_price, "mark_price"),
        )
        liquidation = position_liquidation_price(**common)
        bankruptcy = position_liquidation_price(**common, bankruptcy=True)
    except SolventError as error:
        _fail(error)
    tick = venue.price_tick(market)
    if tick is not None:
        liquidation = None if liquidation is None else round_price_against_account(liquidation, tick, position_side)
        bankruptcy = None if bankruptcy is None else round_price_against_account(bankruptcy, tick, position_side)
    quantize = (lambda v: v) if tick is not None else (lambda v: v if v is None else v.quantize(Decimal("1e-8")))
    entry = to_decimal(entry_price, "entry_price")
    quantity = to_decimal(size, "size") * spec.contract_size
    notional = quantity * entry if spec.kind is ContractKind.LINEAR else quantity / entry
    rate, deduction = model.maintenance_line(notional, to_decimal(size, "size"))
    record = {
        "preset": venue.name, "symbol": market, "side": str(position_side), "marginMode": str(mode),
        "contracts": size, "entryPrice": entry_price, "notional": notional,
        "maintenanceMarginRate": rate, "maintenanceDeduction": deduction,
        "liquidationPrice": quantize(liquidation), "bankruptcyPrice": quantize(bankruptcy),
    }
    if as_json:
        print(json.dumps({key: _plain(value) for key, value in record.items()}, indent=2))
        return
    table = Table(title=f"{venue.title} · {market}", show_header=False)
    for key, value in record.items():
        table.add_row(key, "-" if value is None else str(_plain(value)))
    console.print(table)


# ------------------------------------------------------------------------------ demo


@app.command()
def demo(
    preset: str = typer.Option("binance", "--preset", "-p", help="Preset the book is margined under."),
    accounts: int = typer.Option(20_000, "--accounts", min=1, help="Number of traders in the synthetic book."),
    shock: str = typer.Option("-0.08", "--shock", help="Price move applied to every market (-0.08 = -8%)."),
    seed: int = typer.Option(1, "--seed", min=0, help="Seed of the synthetic book."),
    top: int = typer.Option(15, "--top", min=0, help="How many accounts at risk to show."),
) -> None:
    """Screen a synthetic book after a price shock; show the accounts at risk and their liquidation prices."""
    import time

    from ..demo import run_demo
    from ..presets import load_preset

    try:
        venue = load_preset(preset)
        move = to_decimal(shock, "shock")
        if move <= -1:
            raise SolventError("shock: must be above -1 (a price cannot fall by 100% or more)")
        began = time.perf_counter()
        with console.status(f"building {accounts:,} accounts under {venue.title} and screening them"):
            result = run_demo(venue, accounts=accounts, shock=move, seed=seed)
        elapsed = time.perf_counter() - began
    except SolventError as error:
        _fail(error)
    console.print(f"[bold]{venue.title}[/bold]: {result.accounts:,} traders, {result.positions:,} positions "
                  f"(incl. market makers), prices moved {float(move):+.1%} ({elapsed:.1f} s)")
    console.print(f"below maintenance: [red]{len(result.below_maintenance):,}[/red]   "
                  f"at risk (margin ratio >= 80%): [yellow]{len(result.at_risk):,}[/yellow]   "
                  f"decided by the exact re-check: {result.rechecked}")
    # Least healthy first: equity as a multiple of the maintenance margin (negative when bankrupt).
    ranked = sorted(result.at_risk, key=lambda pool: pool.equity / pool.maintenance_margin)
    table = Table(title=f"the {min(top, len(ranked))} least healthy accounts after the shock")
    for column in ("account", "equity", "maint. margin", "margin ratio", "market", "side", "size", "entry",
                   "mark", "liq. price"):
        table.add_column(column, justify="left" if column in ("account", "market", "side") else "right",
                         no_wrap=column == "account")
    for pool in ranked[:top]:
        ratio = pool.margin_ratio
        for index, position in enumerate(pool.positions):
            first = index == 0
            table.add_row(
                pool.account if first else "",
                f"{_fmt(pool.equity)} {pool.settle}" if first else "",
                _fmt(pool.maintenance_margin) if first else "",
                ("bankrupt" if ratio is None else f"{ratio:.1%}") if first else "",
                position.market, str(position.side), f"{position.size}", _fmt(position.entry_price),
                _fmt(position.mark_price), _fmt(position.liquidation_price),
                end_section=index == len(pool.positions) - 1,
            )
    console.print(table)
    verdict = "[green]holds[/green]" if result.conservation.holds else "[red]BROKEN[/red]"
    console.print(f"conservation of value across the ledger: {verdict}")
    if not result.conservation.holds:
        console.print(result.conservation.describe())
        raise typer.Exit(1)


# ------------------------------------------------------------------------------ simulate


@app.command()
def simulate(
    scenario: str = typer.Option("oct_10_2025", "--scenario", "-s",
                                 help="Scenario name (see --list-scenarios) or a scenario .toml path."),
    preset: str = typer.Option("hyperliquid", "--preset", "-p", help="Venue preset the book is liquidated under."),
    accounts: int = typer.Option(20_000, "--accounts", min=1,
                                 help="Leveraged traders in the synthetic book (borrowers on a lending preset: "
                                      "maker, aave_v3, compound_v3, euler_v2, morpho_blue, liquity_v1)."),
    seed: int = typer.Option(7, "--seed", min=0, help="Seed of the price path and the book."),
    insurance_fund: str = typer.Option("2000000", "--insurance-fund", help="Insurance fund at the start (USD)."),
    depth_scale: float = typer.Option(1.0, "--depth-scale", min=1e-12, help="Multiplies the documented 1% depths."),
    no_feedback: bool = typer.Option(False, "--no-feedback", help="Prices follow the scenario alone (no cascade)."),
    liquidators: int = typer.Option(3, "--liquidators", min=0,
                                    help="Liquidator agents on a venue whose liquidators take positions over (Drift); "
                                         "0: the venue's own liquidator account does it."),
    override: list[str] = typer.Option([], "--override", help="PATH=VALUE into the preset, e.g. execution.fee=0.01 "
                                       "or ilks.ETH-A.cusp=0.001. Repeat."),
    list_scenarios: bool = typer.Option(False, "--list-scenarios", help="List the shipped scenarios and exit."),
    report: Path | None = typer.Option(None, "--report", help="Write an HTML report with charts (and PNGs) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    book: Path | None = io.BOOK, synthetic_share: float = io.SYNTHETIC_SHARE, prices: list[str] = io.PRICES,
    step: int | None = io.STEP, params: Path | None = io.PARAMS, out: Path | None = io.OUT,
    out_format: str = io.FORMAT,
    incident: str | None = typer.Option(None, "--incident", help="Replay a real incident against its published "
                                           "facts, with counterfactuals (see docs/incidents.md); uses --seed, --json."),
) -> None:
    """Run a crash scenario against a synthetic book (or yours: --book) under a venue's liquidation design.

    Scenarios: a shipped name, a scenario file, your candles (--prices), or a generated path:
    gbm:BTC=60000,sigma=0.8,jump_intensity=50,jump_mean=-0.05,jump_std=0.02,steps=1440 or
    shock:BTC=60000,shock=-0.3,at_step=10,steps=120.

    Forced sales move the price (square-root impact on a depth that thins as volatility rises),
    which triggers further liquidations: the cascade. Prints bad debt, insurance-fund drawdown,
    liquidated notional, ADL, price overshoot and cascade depth.
    """
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..sim.run import SimConfig, run
    from ..sim.scenarios import list_scenarios as shipped
    from ..sim.scenarios import load_scenario

    if list_scenarios:
        for name in shipped():
            item = load_scenario(name)
            console.print(f"[bold]{name}[/bold]: {item.title}")
        return
    if incident is not None:
        from ..sim.incidents.render import show

        try:
            show(incident, seed, as_json, console)
        except SolventError as error:
            _fail(error)
        return
    from ..presets import load_preset

    try:
        lending = load_preset(preset).data.get("kind") == "lending"
        world = io.read_world(book, prices, step, params, synthetic_share)
        io.check_format(out_format)
        if lending and (book or prices or params or out):
            raise SolventError("--book, --prices, --params and --out are for perpetual presets so far")
    except SolventError as error:
        _fail(error)
    if lending:
        _simulate_lending(scenario, preset, accounts, seed, depth_scale, not no_feedback, report, as_json,
                          _overrides(override))
        return
    config = SimConfig(scenario=scenario, preset=preset, accounts=accounts, seed=seed,
                       insurance_fund=insurance_fund, depth_scale=depth_scale, feedback=not no_feedback,
                       overrides=_overrides(override), liquidators=liquidators)
    written: list = []
    try:
        config = world.apply(config)
        keep = out is not None
        if world.book is not None:
            accounts = len(world.book.accounts)
        began = time.perf_counter()
        if as_json:
            result = run(config, with_book=report is not None, keep_events=keep)
        else:
            with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total} steps"), TimeRemainingColumn(),
                          console=errors, transient=True) as bar:
                task = bar.add_task(f"{scenario} · {preset} · {accounts:,} accounts", total=None)
                result = run(config, progress=lambda step, steps: bar.update(task, completed=step, total=steps),
                             with_book=report is not None, keep_events=keep)
        elapsed = time.perf_counter() - began
        if out is not None:
            from ..sim.export import write_run

            written = write_run(result, out, out_format)
        page = None
        if report is not None:
            from ..sim.report import write_report

            page = write_report(report, [result], f"{scenario} under {preset}, {accounts:,} accounts",
                                result.book_liquidation_prices)
    except SolventError as error:
        _fail(error)
    metrics = result.metrics
    if as_json:
        print(json.dumps({"config": config.__dict__, "metrics": metrics.__dict__, "seconds": elapsed,
                          "report": None if page is None else str(page),
                          "out": [str(path) for path in written] or None}, indent=2, default=str))
        return
    scenario = str(config.prices or config.scenario)
    table = Table(title=f"{scenario} under {preset}: {accounts:,} accounts, seed {seed} ({elapsed:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("liquidations", f"{metrics.liquidations:,}")
    table.add_row("liquidated notional", f"${metrics.liquidated_notional:,.0f}")
    table.add_row("bad debt", f"${metrics.bad_debt:,.2f}")
    table.add_row("insurance fund drawdown", f"${metrics.insurance_drawdown:,.2f}")
    table.add_row("backstop / vault drawdown", f"${metrics.backstop_drawdown:,.2f}")
    table.add_row("ADL events / notional", f"{metrics.adl_events:,} / ${metrics.adl_notional:,.0f}")
    for asset, overshoot in metrics.price_overshoot.items():
        table.add_row(f"price overshoot {asset} (simulated low vs path low)", f"{overshoot:+.2%}")
    table.add_row("cascade depth (consecutive steps)", str(metrics.cascade_depth))
    table.add_row("time to stability (steps)", str(metrics.time_to_stability_steps))
    console.print(table)
    if page is not None:
        console.print(f"report: {page}")
    if written:
        console.print(f"written: {', '.join(str(path) for path in written)}")


@contextmanager
def _runs_bar(description: str, quiet: bool = False):
    """A progress bar on stderr for runs spread over an executor; yields the executor's callback."""
    if quiet:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("runs"), TimeElapsedColumn(), TimeRemainingColumn(), console=errors,
                  transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _overrides(specs: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for spec in specs:
        path, separator, value = spec.partition("=")
        if not separator or "." not in path or not value:
            _fail(SolventError(f"override: expected PATH=VALUE with a dotted preset path, got {spec!r}"))
        pairs.append((path.strip(), value.strip()))
    return tuple(pairs)


def _simulate_lending(scenario, preset, accounts, seed, depth_scale, feedback, report, as_json, overrides) -> None:
    """A lending venue under a scenario: borrowers, and keepers with capital, latency and a profit gate."""
    import time

    from ..sim.lending_run import VENUE, LendingSimConfig, run_lending

    config = LendingSimConfig(scenario=scenario, preset=preset, borrowers=accounts, seed=seed,
                              depth_scale=depth_scale, feedback=feedback, overrides=overrides)
    try:
        began = time.perf_counter()
        with console.status(f"{scenario} · {preset} · {accounts:,} borrowers"):
            result = run_lending(config)
        elapsed = time.perf_counter() - began
        page = None
        if report is not None:
            from ..sim.report import write_report

            page = write_report(report, [result], f"{scenario} under {preset}, {accounts:,} borrowers")
    except SolventError as error:
        _fail(error)
    metrics = result.metrics
    if as_json:
        print(json.dumps({"config": config.__dict__, "metrics": metrics.__dict__, "seconds": elapsed,
                          "take_price_ratio": result.take_price_ratio, "system_debt": result.system_debt,
                          "protocol_state": result.protocol_state,
                          "counts": {name: count for name, count in result.counts.items() if count},
                          "report": None if page is None else str(page)}, indent=2, default=str))
        return
    protocol = result.engine.lending[VENUE].protocol if result.engine is not None else ""
    table = Table(title=f"{scenario} under {preset}: {accounts:,} borrowers, seed {seed} ({elapsed:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("liquidations", f"{metrics.liquidations:,}")
    table.add_row("liquidated collateral (oracle value)", f"${metrics.liquidated_notional:,.0f}")
    ratio = result.take_price_ratio
    if protocol in ("maker", "compound"):
        sold = "auctions raised" if protocol == "maker" else "store front raised"
        table.add_row(f"{sold} / oracle value sold", "-" if ratio is None else f"{ratio:.1%}")
    table.add_row("bad debt", f"${metrics.bad_debt:,.2f}")
    table.add_row(LENDING_SYSTEM_DEBT.get(protocol, "system debt left"), f"${result.system_debt:,.2f}")
    if protocol in ("aave", "euler", "morpho"):
        table.add_row("toxic liquidations", f"{metrics.toxic_liquidations:,}")
    counts = result.counts
    if protocol == "compound":
        table.add_row("accounts absorbed / store-front purchases", f"{counts['absorbs']:,} / {counts['buys']:,}")
    if protocol == "liquity":
        table.add_row("troves offset / redistributed / in recovery mode",
                      f"{counts['offsets'] + counts['capped_offsets']:,} / {counts['redistributions']:,} / "
                      f"{counts['recovery_mode']:,}")
    for name, value in result.protocol_state.items():
        text = f"{value:,.4f}" if name == "tcr" else f"{value:,.0f}" if name == "open_troves" else f"{value:,.2f}"
        table.add_row(name.replace("_", " "), text)
    console.print(table)
    if page is not None:
        console.print(f"report: {page}")


#: What ``system_debt`` means on each lending protocol (see sim.lending_run._system_debt).
LENDING_SYSTEM_DEBT = {"maker": "system debt left", "aave": "reserve deficit left",
                       "compound": "reserves below zero", "euler": "debt socialized to vault depositors",
                       "morpho": "bad debt realized by suppliers", "liquity": "LUSD not backed by collateral"}


SUMMARY_METRICS = (("liquidations", "liquidations", "{:,.0f}"), ("liquidated_notional", "liquidated $", "{:,.0f}"),
                   ("bad_debt", "bad debt $", "{:,.2f}"), ("insurance_drawdown", "fund drawdown $", "{:,.2f}"),
                   ("backstop_drawdown", "vault drawdown $", "{:,.2f}"), ("adl_notional", "ADL $", "{:,.0f}"),
                   ("cascade_depth", "cascade depth", "{:,.1f}"))


def _summary_table(title: str, rows: list[tuple[str, dict]]) -> Table:
    table = Table(title=title)
    table.add_column("", overflow="fold")  # long grid labels wrap rather than being cut
    for _, label, _ in SUMMARY_METRICS:
        table.add_column(f"{label}\nmean / p95", justify="right")
    table.add_column("VaR p95 $\n95% CI", justify="right")
    for name, summary in rows:
        var = summary["VaR"]
        interval = "-" if var.get("p95_low") is None else f"{var['p95_low']:,.0f}–{var['p95_high']:,.0f}"
        table.add_row(name, *(f"{fmt.format(summary[key]['mean'])} / {fmt.format(summary[key]['p95'])}"
                              for key, _, fmt in SUMMARY_METRICS), interval)
    return table


def _tail_warning(paths: int) -> None:
    """Say when the paths are too few for the percentiles the table shows."""
    from ..sim.metrics import tail_warnings

    for warning in tail_warnings(paths)[:1]:  # p95's warning implies p99's
        errors.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)


def _what(config, scenario: str, accounts: int) -> str:
    """A run's prices and book, for a table's title."""
    prices = str(config.prices or scenario)
    if config.book is None:
        return f"{prices}: {accounts:,} accounts"
    share = f" + {config.synthetic_share:.0%} synthetic" if config.synthetic_share else ""
    return f"{prices}: {config.book}{share}"


def _sim_base(scenario, preset, accounts, seed, insurance_fund, depth_scale):
    from ..sim.run import SimConfig

    return SimConfig(scenario=scenario, preset=preset, accounts=accounts, seed=seed,
                     insurance_fund=insurance_fund, depth_scale=depth_scale)


@app.command()
def sweep(
    param: list[str] = typer.Option([], "--param", help="NAME=V1,V2,... a run setting (insurance_fund, depth_scale, "
                                    "accounts, oracle_lag_steps, backstop_capital, liquidators, liquidator_capital, "
                                    "liquidator_latency_steps) or a preset path "
                                    "(execution.fee, execution.partial_fraction, waterfall.adl_rule, ...). Repeat."),
    scenario: str = typer.Option("oct_10_2025", "--scenario", "-s", help="Scenario name or file."),
    preset: str = typer.Option("hyperliquid", "--preset", "-p", help="Venue preset."),
    accounts: int = typer.Option(5_000, "--accounts", min=1, help="Traders in the synthetic book."),
    paths: int = typer.Option(8, "--paths", min=1, help="Monte Carlo paths per grid point."),
    seed: int = typer.Option(7, "--seed", min=0, help="Base seed; each path's seed is spawned from it."),
    insurance_fund: str = typer.Option("2000000", "--insurance-fund", help="Insurance fund at the start (USD)."),
    depth_scale: float = typer.Option(1.0, "--depth-scale", min=0.0001, help="Multiplies the documented depths."),
    executor: str = typer.Option("local", "--executor", help="local (process pool), inline, or ray."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Process-pool workers (default: cores)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    as_json: bool = typer.Option(False, "--json", help="Print every grid point's summary as JSON."),
    book: Path | None = io.BOOK, synthetic_share: float = io.SYNTHETIC_SHARE, prices: list[str] = io.PRICES,
    step: int | None = io.STEP, params: Path | None = io.PARAMS, out: Path | None = io.OUT,
    out_format: str = io.FORMAT,
) -> None:
    """Monte Carlo over a grid of parameters: mean and p95 of each metric per grid point.

    Every grid point runs the same seeds, so differences come from the parameters; results are
    identical whichever executor or number of workers runs them.
    """
    from ..sim.sweep import executor_for, parse_grid, path_seeds
    from ..sim.sweep import sweep as run_sweep

    try:
        world = io.read_world(book, prices, step, params, synthetic_share)
        io.check_format(out_format)
        base = world.apply(_sim_base(scenario, preset, accounts, seed, insurance_fund, depth_scale))
        grid = {**world.grid, **parse_grid(param)}
        if not grid:
            raise SolventError("param: give --param NAME=V1,V2 or a [sweep] table in --params")
        from ..sim.sweep import unused_settings

        for warning in unused_settings(base, grid, [preset]):
            errors.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
        with _runs_bar(f"{paths} paths × {math.prod(len(values) for values in grid.values())} grid points on "
                       f"{executor}", as_json) as progress:
            points = run_sweep(base, grid, paths, executor_for(executor, workers, address), progress)
        if out is not None:
            from ..sim.export import write_paths

            write_paths(points, path_seeds(base.seed, paths), [{"parameters": dict(point.parameters),
                                                                "summary": point.summary} for point in points],
                        out, out_format)
    except SolventError as error:
        _fail(error)
    if as_json:
        print(json.dumps([{"parameters": dict(point.parameters), "summary": point.summary} for point in points],
                         indent=2))
        return
    rows = [(", ".join(f"{name}={value}" for name, value in point.parameters), point.summary) for point in points]
    console.print(_summary_table(f"{_what(base, scenario, accounts)} under {preset}, {paths} paths per point", rows))
    _tail_warning(paths)


@app.command()
def compare(
    presets: str = typer.Option("binance,hyperliquid,dydx_v4,drift_v2,gmx_v2", "--presets",
                                help="Comma-separated presets to run the same scenario and book under."),
    scenario: str = typer.Option("oct_10_2025", "--scenario", "-s", help="Scenario name or file."),
    accounts: int = typer.Option(5_000, "--accounts", min=1, help="Traders in the synthetic book."),
    paths: int = typer.Option(4, "--paths", min=1, help="Monte Carlo paths per preset."),
    seed: int = typer.Option(7, "--seed", min=0, help="Base seed (the same paths for every preset)."),
    insurance_fund: str = typer.Option("2000000", "--insurance-fund", help="Insurance fund at the start (USD)."),
    depth_scale: float = typer.Option(1.0, "--depth-scale", min=0.0001, help="Multiplies the documented depths."),
    executor: str = typer.Option("local", "--executor", help="local (process pool), inline, or ray."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Process-pool workers (default: cores)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    as_json: bool = typer.Option(False, "--json", help="Print each preset's summary as JSON."),
    book: Path | None = io.BOOK, synthetic_share: float = io.SYNTHETIC_SHARE, prices: list[str] = io.PRICES,
    step: int | None = io.STEP, params: Path | None = io.PARAMS, out: Path | None = io.OUT,
    out_format: str = io.FORMAT,
    shared_backstop: bool = typer.Option(False, "--shared-backstop",
                                         help="One engine, one venue per preset, one path: isolated funds vs one "
                                              "backstop shared across venues (default presets: "
                                              "hyperliquid,dydx_v4,drift_v2,gmx_v2; --accounts per venue)."),
) -> None:
    """The same crash and the same book under several venues' designs, side by side."""
    from ..sim.sweep import compare as run_compare
    from ..sim.sweep import executor_for

    names = [name.strip() for name in presets.split(",") if name.strip()]
    if shared_backstop:
        from ..sim.shared import DEFAULT_SHARED_PRESETS, compare_shared

        if presets == "binance,hyperliquid,dydx_v4,drift_v2,gmx_v2":  # the option's default: not one settle asset
            names = list(DEFAULT_SHARED_PRESETS)
        try:
            base = _sim_base(scenario, names[0] if names else "hyperliquid", accounts, seed, insurance_fund,
                             depth_scale)
            with console.status(f"{len(names)} venues, isolated and shared"):
                both = compare_shared(base, names)
        except SolventError as error:
            _fail(error)
        if as_json:
            print(json.dumps(both, indent=2))
            return
        iso, sh = both["isolated"], both["shared"]
        table = Table(title=f"{scenario}: {len(names)} venues × {accounts:,} accounts, seed {seed}: isolated funds "
                            f"of {insurance_fund} each vs one backstop of {sh['backstop']['capital']:,.0f}")
        for column in ("venue", "bad debt\nisolated", "bad debt\nshared", "fund draws\nisolated",
                       "fund draws\nshared", "ADL $\nisolated", "ADL $\nshared", "backstop\ndrawn"):
            table.add_column(column, justify="left" if column == "venue" else "right")
        drawn = sh["backstop"]["drawn_by_venue"]
        rows = [(f"{v} {row['preset']}", row, sh["venues"][v], drawn.get(v, 0.0)) for v, row in iso["venues"].items()]
        rows.append(("total", iso["totals"], sh["totals"], sum(drawn.values())))
        for label, a, b, pulled in rows:
            table.add_row(label, f"{a['bad_debt']:,.2f}", f"{b['bad_debt']:,.2f}", f"{a['fund_drawn']:,.2f}",
                          f"{b['fund_drawn']:,.2f}", f"{a['adl_notional']:,.0f}", f"{b['adl_notional']:,.0f}",
                          f"{pulled:,.2f}", end_section=label.startswith("v") and label == rows[-2][0])
        console.print(table)
        console.print(f"backstop left: {sh['backstop']['balance']:,.2f}")
        return
    try:
        world = io.read_world(book, prices, step, params, synthetic_share)
        io.check_format(out_format)
        base = world.apply(_sim_base(scenario, names[0] if names else "hyperliquid", accounts, seed, insurance_fund,
                                     depth_scale))
        with _runs_bar(f"{len(names)} presets × {paths} paths on {executor}", as_json) as progress:
            compared = run_compare(base, names, paths, executor_for(executor, workers, address), progress)
        if out is not None:
            from ..sim.export import write_paths
            from ..sim.sweep import path_seeds

            write_paths(list(compared.values()), path_seeds(base.seed, paths),
                        {name: point.summary for name, point in compared.items()}, out, out_format)
    except SolventError as error:
        _fail(error)
    if as_json:
        print(json.dumps({name: point.summary for name, point in compared.items()}, indent=2))
        return
    console.print(_summary_table(f"{_what(base, scenario, accounts)}, {paths} paths per preset",
                                 [(name, point.summary) for name, point in compared.items()]))
    _tail_warning(paths)


# ------------------------------------------------------------------------------ replay / verify


MIN_ADMIN_KEY = 32  # characters of SOLVENT_ADMIN_KEY (a generated key has 46)
LOG_HELP = "The command log: sqlite:///file.db, postgresql://..., or an SQLite file path."


def _open_log(log: str):
    from ..store import CommandLog

    try:
        return CommandLog(log, create=False)
    except SolventError as error:
        _fail(error)


def _print_replay(report) -> None:
    print(f"entries: {report.entries}" + (f" (seq {report.first_seq}-{report.last_seq})" if report.entries else "")
          + f", {report.accepted} applied, {report.rejected} rejected, {report.pending} pending; "
          f"{report.events} events")
    print(f"outcomes: {report.entries - report.pending} recorded outcomes recomputed identically"
          + (f" ({report.pending} pending: applied, no outcome recorded yet)" if report.pending else ""))
    print(f"liquidations: {report.liquidations} ({report.perp_liquidations} on perpetual venues, "
          f"{report.lending_liquidations} on lending venues)")
    seqs = ", ".join(str(seq) for seq in report.snapshots_checked)
    print(f"snapshot digests: {len(report.snapshots_checked)} checked" + (f" (seq {seqs})" if seqs else ""))
    if report.snapshots_of_other_versions:
        others = ", ".join(str(seq) for seq in report.snapshots_of_other_versions)
        print(f"snapshot digests not compared: {len(report.snapshots_of_other_versions)} taken by another version "
              f"of solvent (seq {others})")


@app.command()
def replay(
    log: str = typer.Argument(..., help=LOG_HELP),
) -> None:
    """Rebuild the engine's state from the command log and check it against the snapshots.

    Every recorded outcome (events, or the refusal) must be what the commands give again, and the
    state digest after each snapshotted entry must be the snapshot's. Exits 1 on the first
    mismatch, naming its seq; 2 if the log cannot be opened.
    """
    from ..store import LogMismatch, replay_log
    from ..store.schema import redacted

    store = _open_log(log)
    print(f"replaying {redacted(store.url)}")
    try:
        _, report = replay_log(store)
    except LogMismatch as mismatch:
        print(f"FAIL seq {mismatch.seq}: {mismatch.message}")
        raise typer.Exit(1) from None
    finally:
        store.close()
    _print_replay(report)
    print(f"state digest: {report.final_digest}")
    print("OK: replay matches the log")


@app.command()
def verify(
    log: str = typer.Argument(..., help=LOG_HELP),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Signed checkpoints of the head (a file "
                                              "of lines from `solvent checkpoint`): detects truncation and "
                                              "rewrites with every later hash recomputed."),
    public_key: Path | None = typer.Option(None, "--public-key", help="The Ed25519 public key (PEM) the "
                                              "checkpoints must be signed with (required with --checkpoint)."),
) -> None:
    """Check the log's hash chain, then replay it and re-justify every liquidation in it.

    For each liquidation: the account was liquidatable (valued afresh under the venue's trigger,
    or the lending protocol's own rule) and every fill, fee, fund draw, ADL, socialized loss and
    bad-debt amount is recomputed identically from the recorded commands; value is conserved.
    Prints what was checked. Exits 1 on the first mismatch, naming its seq; 2 if the log cannot
    be opened.
    """
    from ..store import LogMismatch, verify_log
    from ..store.audit import LIQUIDATION_KINDS
    from ..store.checkpoints import CheckpointError, check_checkpoints, load_public_key, read_checkpoints
    from ..store.schema import redacted

    signed: list = []
    key = None
    if checkpoint is not None:
        if public_key is None:
            _fail(SolventError("--checkpoint needs --public-key: a checkpoint is only as good as the key it is "
                               "checked against"))
        try:
            signed, key = read_checkpoints(checkpoint), load_public_key(public_key)
        except CheckpointError as error:
            _fail(error)
    store = _open_log(log)
    print(f"verifying {redacted(store.url)}")
    try:
        report = verify_log(store)
        highest = None
        if signed:
            assert key is not None  # read with the checkpoints (--checkpoint needs --public-key)
            highest = check_checkpoints(store, signed, key)
    except LogMismatch as mismatch:
        print(f"FAIL seq {mismatch.seq}: {mismatch.message}" if mismatch.seq else f"FAIL {mismatch.message}")
        raise typer.Exit(1) from None
    except CheckpointError as error:
        print(f"FAIL checkpoint: {error}")
        raise typer.Exit(1) from None
    finally:
        store.close()
    if highest is not None:
        print(f"checkpoints: {len(signed)} signed heads match the log (the latest at seq {highest})")
    head = f", head {report.chain_head}" if report.chain_head else ""
    print(f"hash chain: {report.entries} entries linked{head}")
    _print_replay(report)
    print(f"liquidatable when started: {report.perp_triggers_checked} perpetual liquidations (equity vs "
          f"maintenance margin under the venue's trigger), {report.lending_triggers_checked} lending accounts "
          "(the protocol's rule)")
    print(f"conservation: held after each of the {report.conservation_checked} entries with liquidation events")
    if report.key_rows_checked:
        print(f"api keys: the {report.key_rows_checked} rows of api_keys were all registered by the log")
    counted = [(kind, report.liquidation_events[kind]) for kind in LIQUIDATION_KINDS if report.liquidation_events[kind]]
    print("liquidation events recomputed identically:" + ("" if counted else " none"))
    for kind, count in counted:
        print(f"  {kind:<28} {count}")
    if report.liquidation_events["liquidation_failed"]:
        print(f"warning: {report.liquidation_events['liquidation_failed']} liquidation_failed events (engine defects "
              "recorded in the log, reproduced identically)")
    print("OK: the log verifies")


@app.command("checkpoint-key")
def checkpoint_key(
    private: Path = typer.Argument(..., help="Where to write the private signing key (PEM, mode 600)."),
    public: Path = typer.Argument(..., help="Where to write the public key (PEM), for `verify --public-key`."),
) -> None:
    """Create an Ed25519 key pair for signing checkpoints. Keep the private key off the database's
    machine if you can; give the public key to whoever verifies."""
    from ..store.checkpoints import generate_key

    if private.exists() or public.exists():
        _fail(SolventError(f"{private if private.exists() else public} exists: not overwritten"))
    print(f"key {generate_key(private, public)}: private {private}, public {public}")


@app.command()
def checkpoint(
    log: str = typer.Argument(..., help=LOG_HELP),
    key: Path = typer.Option(..., "--key", help="The private signing key (from `solvent checkpoint-key`)."),
    out: Path | None = typer.Option(None, "--out", help="Append the checkpoint to this file (default: print "
                                       "it on stdout, e.g. for an external notary)."),
) -> None:
    """Sign the head of the log (after checking its chain): one line of JSON that `verify --checkpoint`
    later checks the log against. Keep it where the database's owner cannot change it."""
    from ..store import LogMismatch
    from ..store.checkpoints import CheckpointError, checkpoint_log, load_private_key

    try:
        signing = load_private_key(key)
    except CheckpointError as error:
        _fail(error)
    store = _open_log(log)
    try:
        signed = checkpoint_log(store, signing)
    except LogMismatch as mismatch:
        print(f"FAIL seq {mismatch.seq}: {mismatch.message} (nothing signed)")
        raise typer.Exit(1) from None
    except CheckpointError as error:
        _fail(error)
    finally:
        store.close()
    if out is None:
        print(signed.to_line())
    else:
        with out.open("a") as handle:
            handle.write(signed.to_line() + "\n")
        errors.print(f"checkpoint of seq {signed.seq} appended to {out}")


@app.command()
def recover(
    log: str = typer.Argument(..., help=LOG_HELP),
    keep_through: int = typer.Option(..., "--keep-through", min=0, help="Keep entries 1..N (the last good "
                                     "entry, e.g. the seq before the one `verify` names); remove the rest."),
    export: Path = typer.Option(..., "--export", help="Write the removed entries here first (JSON lines)."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: the removed entries leave the log."),
) -> None:
    """The operator's way out of a log that does not verify: export the entries after N to a file,
    remove them (and snapshots after N) from the log, and check the chain of what is left. The
    server refuses to start on a broken chain until this (or a restore from a backup) is done."""
    from ..store import LogMismatch
    from ..store.audit import check_chain
    from ..store.log import truncate_after

    store = _open_log(log)
    try:
        if not yes:
            last = store.last()
            print(f"would remove entries {keep_through + 1}..{0 if last is None else last.seq}; add --yes to do it")
            raise typer.Exit(1)
        removed = truncate_after(store, keep_through, export)
        try:
            report = check_chain(store)
        except LogMismatch as mismatch:
            print(f"removed {removed} entries (in {export}); the chain still breaks at seq {mismatch.seq}: "
                  f"{mismatch.message}")
            raise typer.Exit(1) from None
        print(f"removed {removed} entries (in {export}); the chain of entries 1..{keep_through} verifies "
              f"(head {report.chain_head})")
    finally:
        store.close()


# ------------------------------------------------------------------------------ serve


@app.command()
def serve(
    db: str | None = typer.Option(None, "--db", envvar="SOLVENT_DB", help="The command log: sqlite:///file.db "
                                     "(default sqlite:///solvent.db, in the working directory) or postgresql://..."),
    host: str = typer.Option("127.0.0.1", "--host", envvar="SOLVENT_HOST", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", envvar="SOLVENT_PORT", help="Port to listen on."),
    snapshot_every: int | None = typer.Option(None, "--snapshot-every", min=1, envvar="SOLVENT_SNAPSHOT_EVERY",
                                                 help="Snapshot the engine every N entries (default 10,000: a "
                                                 "restart replays at most that many)."),
    create_admin_key: bool = typer.Option(False, "--create-admin-key",
                                          help="Create an admin API key, print it once, and exit."),
    init: bool = typer.Option(False, "--init", envvar="SOLVENT_INIT", help="Create the SQLite file if it does not "
                              "exist (without it, a missing file is an error: a typo in --db must not start an "
                              "empty log)."),
    # ---- operations (issue 19): see docs/operations.md
    publish: str | None = typer.Option(None, "--publish", envvar="SOLVENT_PUBLISH",
                                          help="Publish every committed event to NATS JetStream at this URL "
                                          "(nats://127.0.0.1:4222)."),
    publish_stream: str = typer.Option("SOLVENT", "--publish-stream", envvar="SOLVENT_PUBLISH_STREAM",
                                       help="The JetStream stream (created if missing)."),
    publish_subject: str = typer.Option("solvent.events", "--publish-subject", envvar="SOLVENT_PUBLISH_SUBJECT",
                                        help="The subject events are published on."),
    log_level: str = typer.Option("info", "--log-level", envvar="SOLVENT_LOG_LEVEL",
                                  help="debug, info, warning or error (JSON lines on stdout)."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", envvar="SOLVENT_ACCESS_LOG",
                                    help="One JSON line per HTTP request."),
) -> None:
    """Run the live service: REST, WebSocket stream, OpenAPI at /docs, /metrics, /v1/ready. Env
    SOLVENT_ADMIN_KEY registers that admin key at start (stored hashed); every option has its
    SOLVENT_* environment variable."""
    import os

    from ..store import DEFAULT_URL
    from ..store.schema import database_url, sqlite_file

    url = db or DEFAULT_URL
    path = sqlite_file(database_url(url))
    if path is not None and not path.exists() and not (init or create_admin_key):
        _fail(SolventError(f"no log at {path}: pass --init to create a new one"))
    admin_key = os.environ.get("SOLVENT_ADMIN_KEY")
    if admin_key is not None and len(admin_key) < MIN_ADMIN_KEY:
        _fail(SolventError(f"SOLVENT_ADMIN_KEY is {len(admin_key)} characters: at least {MIN_ADMIN_KEY} are required "
                           "(e.g. the output of `solvent serve --create-admin-key`)"))
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        _fail(InvalidInput("--log-level", "one of debug, info, warning, error"))
    try:
        if create_admin_key:
            from ..service.keys import KeyStore
            from ..store import DurableEngine

            durable = DurableEngine(url)  # the key is registered by a logged command (see service/keys.py)
            try:
                store = KeyStore(durable.log.db, log_command=durable.submit,
                                 registered=lambda digest: digest in durable.engine.api_keys)
                print(store.add("admin", label="created by solvent serve --create-admin-key"))
            finally:
                durable.close()
            return
        import uvicorn

        from ..service.app import DEFAULT_SNAPSHOT_EVERY, create_app
        from ..service.logging import configure as configure_logs

        configure_logs(log_level)
        service_app = create_app(url, admin_key=admin_key, publish=publish, publish_stream=publish_stream,
                                 publish_subject=publish_subject, access_log=access_log,
                                 snapshot_every=DEFAULT_SNAPSHOT_EVERY if snapshot_every is None else snapshot_every)
    except SolventError as error:
        _fail(error)
    import sys

    # Two threads share the interpreter: the event loop (HTTP) and the writer (engine and log). A
    # 1 ms switch interval (default 5) lets requests in and answers out while a batch is applied.
    sys.setswitchinterval(0.001)
    uvicorn.run(service_app, host=host, port=port, log_level=log_level.lower(),
                log_config=None)  # uvloop and httptools when installed; our JSON logging


# ------------------------------------------------------------------------------ bench


@bench_app.command("screening")
def bench_screening(
    accounts: int = typer.Option(1_000_000, "--accounts", min=1, help="Accounts (margin pools) in the book."),
    positions: int = typer.Option(10_000_000, "--positions", min=1, help="Positions in total, spread over accounts."),
    markets: int = typer.Option(20, "--markets", min=1, help="Markets the positions are spread over."),
    seed: int = typer.Option(7, "--seed", min=0, help="Seed of the synthetic book."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Time the vectorized screen of one price update against a naive loop and a memory pass."""
    from ..bench.screening import run_screening_benchmark

    try:
        say = (lambda message: errors.print(f"[dim]{message}[/dim]")) if not as_json else None
        result = run_screening_benchmark(accounts, positions, markets=markets, seed=seed, progress=say)
    except SolventError as error:
        _fail(error)
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    table = Table(title=f"screening {accounts:,} accounts / {positions:,} positions / {result.markets} markets")
    table.add_column("measure")
    table.add_column("seconds per price update", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row("vectorized screen (all markets move)", f"{result.screen_seconds:.4f}",
                  f"{result.screen_vs_memory_pass:.2f}× memory pass")
    table.add_row("vectorized screen (one market moves)", f"{result.incremental_one_market_seconds:.4f}", "")
    naive_note = f" (extrapolated from {result.naive_sample_accounts:,} accounts)" if result.naive_extrapolated else ""
    table.add_row(f"naive per-account loop{naive_note}", f"{result.naive_seconds:.3f}",
                  f"{result.naive_vs_screen:.0f}× the screen")
    table.add_row("memory pass (copy of the columns read)", f"{result.memory_pass_seconds:.4f}", "1.00")
    console.print(table)
    console.print(f"below maintenance: {result.below_maintenance:,}; at risk: {result.at_risk:,}; "
                  f"decided exactly: {result.rechecked_exactly}; book {result.book_megabytes:.0f} MiB, "
                  f"built in {result.build_seconds:.1f} s")


@bench_app.command("serve")
def bench_serve(
    url: str | None = typer.Option(None, "--url", help="A running server (loopback only), e.g. "
                                      "http://127.0.0.1:8000; default: start one."),
    db: str | None = typer.Option(None, "--db", help="The log of the server it starts: sqlite:///file.db or "
                                     "postgresql://... (default: a temporary SQLite file)."),
    seconds: float = typer.Option(10.0, "--seconds", min=0.1, max=3600, help="How long the clients run."),
    clients: int = typer.Option(8, "--clients", min=1, max=256, help="Concurrent clients."),
    batch: int = typer.Option(8, "--batch", min=1, max=1000, help="Fills per request (one POST of a JSON "
                              "array); 1 sends each command alone."),
    admin_key: str | None = typer.Option(None, "--admin-key", help="Admin key for --url (default: env "
                                            "SOLVENT_ADMIN_KEY)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Load a live server with concurrent fills (in batches) and price updates; report commands and requests
    per second, request latency and the latency from a liquidating price update's acknowledgement to its
    stream event."""
    from ..bench.serve import run_serve_benchmark

    say = (lambda message: errors.print(f"[dim]{message}[/dim]")) if not as_json else None
    try:
        result = run_serve_benchmark(url=url, db=db, seconds=seconds, clients=clients, batch=batch,
                                     admin_key=admin_key, progress=say)
    except SolventError as error:
        _fail(error)
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    ms = lambda value: "-" if value is None else f"{value:.2f} ms"
    table = Table(title=f"serve: {result.database}, {result.clients} clients, {result.batch} per batch, "
                        f"{result.seconds:.1f} s")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("commands sent / acknowledged / refused / errors", f"{result.commands_sent:,} / "
                  f"{result.commands_acknowledged:,} / {result.commands_refused:,} / {result.errors:,}")
    table.add_row("sustained commands per second", f"{result.commands_per_second:,.0f}")
    table.add_row("requests sent / per second", f"{result.requests_sent:,} / {result.requests_per_second:,.0f}")
    table.add_row("request latency p50 / p99", f"{ms(result.latency_p50_ms)} / {ms(result.latency_p99_ms)}")
    table.add_row("liquidating price updates (seen on the stream)",
                  f"{result.liquidating_updates} ({result.liquidations_seen_on_stream})")
    table.add_row("ack → liquidation event on the stream p50 / p99",
                  f"{ms(result.liquidation_stream_p50_ms)} / {ms(result.liquidation_stream_p99_ms)}")
    table.add_row(f"target met (≥ {result.target_commands_per_second:,} cmd/s, p99 < {result.target_p99_ms:g} ms)",
                  result.target_met)
    console.print(table)


@bench_app.command("simulate")
def bench_simulate(
    accounts: int = typer.Option(20_000, "--accounts", min=1, help="Traders in the default scenario's book."),
    day_accounts: int = typer.Option(100_000, "--day-accounts", min=1, help="Traders in the day-long run's book."),
    paths: int = typer.Option(16, "--paths", min=1, help="Monte Carlo paths timed (1,000 is projected from them)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Workers for the pooled sweep (default: cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Time the default simulation, a day-long run of a big book, the per-step cost against book
    size, and a sweep on one worker vs all."""
    from ..bench.simulate import TARGET_1000_PATHS_SECONDS, TARGET_DAY_SECONDS, run_simulate_benchmark

    say = (lambda message: errors.print(f"[dim]{message}[/dim]")) if not as_json else None
    result = run_simulate_benchmark(accounts, paths, workers, day_accounts, progress=say)
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    table = Table(title="simulate")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(f"default run: {accounts:,} accounts × {result.steps} steps",
                  f"{result.run_seconds:.2f} s ({result.liquidations:,} liquidations)")
    table.add_row("account-steps per second", f"{result.account_steps_per_second:,.0f}")
    table.add_row(f"day-long run: {result.day_accounts:,} accounts × {result.day_steps:,} steps",
                  f"{result.day_seconds:.2f} s ({result.day_liquidations:,} liquidations)")
    table.add_row("  of which building the book", f"{result.day_book_seconds:.2f} s")
    if result.day_liquidations:
        table.add_row("  the steps, per liquidation", f"{(result.day_seconds - result.day_book_seconds) / result.day_liquidations * 1e6:,.0f} µs")
    table.add_row("the same day without the crash (calm)",
                  f"{result.calm_day_seconds:.2f} s ({result.calm_day_liquidations:,} liquidations)")
    smallest = result.scaling[0]
    for point in result.scaling:
        table.add_row(f"calm path, {point.accounts:,} accounts: ms per price update (screened)",
                      f"{point.screened_ms_per_step:.2f}")
    if smallest.exact_ms_per_step is not None:
        table.add_row(f"calm path, {smallest.accounts:,} accounts: every holder valued (baseline)",
                      f"{smallest.exact_ms_per_step:.1f} ({smallest.exact_ms_per_step / smallest.screened_ms_per_step:.0f}× "
                      "the screen)")
    table.add_row(f"{paths} paths, 1 worker (baseline)", f"{result.sweep_seconds_one_worker:.2f} s")
    table.add_row(f"{paths} paths, {result.workers} workers", f"{result.sweep_seconds_all_workers:.2f} s "
                  f"({result.speedup:.2f}× the baseline)")
    table.add_row("1,000 paths, projected from the above", f"{result.projected_1000_paths_seconds / 60:.1f} min")
    console.print(table)
    # The targets are for the default sizes: say nothing of them for other sizes.
    for what, met, target, default in (
            ("day-long run, crash day", result.day_target_met, f"{TARGET_DAY_SECONDS:g} s", day_accounts == 100_000),
            ("day-long run, calm day", result.calm_day_target_met, f"{TARGET_DAY_SECONDS:g} s", day_accounts == 100_000),
            ("1,000 paths", result.sweep_target_met, f"{TARGET_1000_PATHS_SECONDS / 60:g} min", accounts == 20_000)):
        if default:
            console.print(f"{what}: target under {target}: " + ("[green]met[/green]" if met else "[red]not met[/red]"))


@bench_app.command("engine")
def bench_engine(
    accounts: int = typer.Option(20_000, "--accounts", min=1, help="Accounts holding a position."),
    updates: int = typer.Option(20, "--updates", min=2, help="Price updates timed."),
    seed: int = typer.Option(3, "--seed", min=0, help="Seed of the book and the price path."),
    isolated: float = typer.Option(0.0, "--isolated", min=0.0, max=1.0,
                                   help="Share of the accounts holding their position in isolated margin."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Time the engine's price updates with the screen against valuing every holder exactly."""
    from ..bench.engine import run_engine_benchmark

    say = (lambda message: errors.print(f"[dim]{message}[/dim]")) if not as_json else None
    result = run_engine_benchmark(accounts, updates, seed, progress=say, isolated=isolated)
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    share = f", {isolated:.0%} isolated" if isolated else ""
    table = Table(title=f"engine: {accounts:,} accounts{share}, {updates} price updates")
    table.add_column("path")
    table.add_column("seconds per update", justify="right")
    table.add_row("every holder valued exactly (baseline)", f"{result.exact_seconds_per_update:.4f}")
    table.add_row("screened, then exact on the candidates", f"{result.screened_seconds_per_update:.4f}")
    console.print(table)
    console.print(f"speed-up {result.speedup:.0f}×; first screened update (builds the columns) "
                  f"{result.first_screened_update_seconds:.2f} s; liquidations {result.liquidations}; "
                  f"identical events: {'yes' if result.same_events else '[red]NO[/red]'}")
    if not result.same_events:
        raise typer.Exit(1)


# The options family's commands live in cli/margin.py.
from .margin import bench_options as _bench_options
from .margin import margin as _margin_command

app.command("margin")(_margin_command)

from .backtest import backtest_margin as _backtest_margin

app.command("backtest-margin")(_backtest_margin)
bench_app.command("options")(_bench_options)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
