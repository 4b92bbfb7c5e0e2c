"""One simulation run: a scenario drives the engine, forced sales feed back into the price.

The simulator only generates commands; the engine is the same one that runs live. Per step:

1. the exogenous price of each asset comes from the scenario path;
2. the price the venue sees is that path moved by the impact of the forced sales so far (which
   decays with the market model's half-life, and grows as depth thins with volatility);
3. an ``UpdateOracle`` command goes to the engine; its events say what was liquidated, by whom,
   at what price, what the fund paid, what was deleveraged, what was left as bad debt;
4. the notional sold (or bought) by liquidations becomes the next impact: that loop is the
   cascade.

Metrics (:class:`~solvent.sim.metrics.RunMetrics`) are read from the events and the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import InvalidInput
from ..core.memory import cyclic_gc_paused
from ..core.numbers import non_negative
from ..engine import Engine
from ..engine import commands as c
from ..engine import events as ev
from ..engine.pipeline import cross_pool
from ..presets import load_preset
from . import perp_agents
from .books import apply_setup
from .market import DEPTH_1PCT_USD, SqrtImpact, realized_volatility
from .metrics import (
    RunMetrics,
    adl_excess_over_leverage_draining,
    adl_excess_over_pro_rata,
    cascade_depth,
    price_overshoot,
    time_to_stability,
)
from .population import sample_population
from .prices import exogenous_paths, resolve_scenario
from .scenarios import Scenario

if TYPE_CHECKING:
    from .books import PerpBook
    from .prices import PriceHistory

VENUE = "v"
PRICE_QUANTUM = Decimal("0.0001")


def nested_overrides(pairs: tuple[tuple[str, str], ...]) -> dict:
    """(dotted preset path, value) pairs as the nested tables ``CreateVenue`` takes."""
    tables: dict = {}
    for path, value in pairs:
        parts = path.split(".")
        node = tables
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tables


@dataclass(frozen=True)
class SimConfig:
    scenario: str = "oct_10_2025"
    preset: str = "hyperliquid"
    accounts: int = 20_000
    seed: int = 7
    insurance_fund: str = "2000000"  # USD in the fund (the vault / HLP capital where the preset uses one)
    backstop_capital: str = "50000000"
    depth_scale: float = 1.0  # multiplies the documented 1% depths
    feedback: bool = True  # forced sales move the price (False: the exogenous path alone)
    oracle_lag_steps: int = 0  # the venue sees the price of this many steps ago
    overrides: tuple[tuple[str, str], ...] = ()  # (dotted preset path, value), e.g. ("execution.fee", "0.01")
    # Liquidator agents, on venues whose liquidators take positions over (Drift): the venue is
    # opened to them (execution.takeover = "open") unless the overrides say otherwise; 0: none,
    # the venue's own liquidator account takes over.
    liquidators: int = 3
    liquidator_capital: str = "2000000"  # USD each
    liquidator_latency_steps: int = 1
    # The user's world (docs/your-data.md): a book of positions in place of the synthetic one (with
    # synthetic traders beside it making up synthetic_share of the accounts).
    book: PerpBook | None = None
    synthetic_share: float = 0.0
    prices: PriceHistory | None = None  # candles in place of the scenario (docs/your-data.md)
    # Keyword arguments of sample_population for the book (an incident's calibration), e.g.
    # (("median_notional", 250000.0), ("long_share", 0.6)).
    population: tuple[tuple[str, object], ...] = ()
    # Each step the backstop vault's operator sells this fraction of what the vault took over
    # into the market (perp_agents.unwind_backstop); 0: the vault holds it.
    backstop_unwind_per_step: float = 0.0

    def preset_overrides(self) -> dict:
        return nested_overrides(self.overrides)

    def with_agents(self, preset) -> SimConfig:
        """This configuration with the venue opened to liquidator agents, where they apply."""
        if (self.liquidators <= 0 or preset.section("execution").get("method") != "liquidator"
                or any(path == "execution.takeover" for path, _ in self.overrides)):
            return self
        return replace(self, overrides=self.overrides + (("execution.takeover", "open"),))


@dataclass
class RunResult:
    config: SimConfig
    metrics: RunMetrics
    markets: dict[str, str]  # scenario asset → venue market
    exogenous: dict[str, np.ndarray]
    simulated: dict[str, np.ndarray]
    liquidated_per_step: np.ndarray  # notional liquidated (USD) per step
    fund_per_step: np.ndarray  # the insurance fund's value per step (USD; see _protection_value)
    events: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    # Per asset, the liquidation price of each trader at the opening, relative to the opening price
    # (only when asked for: it solves one liquidation price per account).
    book_liquidation_prices: dict[str, np.ndarray] | None = None
    backstop_per_step: np.ndarray | None = None  # the backstop vault's value per step (USD)
    # With keep_events: (step, engine timestamp, events) per step; the setup's events come first, at step −1.
    event_log: list | None = None
    step_seconds: int = 60
    start: object = None  # the UTC datetime of step 0 when the scenario or the candles give one
    adl_per_step: np.ndarray | None = None  # notional auto-deleveraged (USD) per step
    adl_by_asset: dict[str, float] = field(default_factory=dict)  # notional auto-deleveraged (USD) per asset
    liquidated_by_asset: dict[str, float] = field(default_factory=dict)  # notional liquidated (USD) per asset
    adl_excess_over_leverage_draining: float = 0.0  # USD, see metrics.adl_excess_over_leverage_draining


# Scenario assets carry the market-data name of the coin; a venue may list it under another one.
ASSET_ALIASES = {"BTC": ("BTC", "XBT")}


def _kind_simulated(preset) -> str:
    """The contract kind the simulator trades on ``preset``: linear markets when it lists any,
    otherwise inverse ones (BitMEX's XBTUSD, margined and settled in XBT)."""
    kinds = {market.kind.value for market in preset.markets.values()}
    return "linear" if "linear" in kinds or "inverse" not in kinds else "inverse"


def _market_for(preset, asset: str) -> str | None:
    kind = _kind_simulated(preset)
    names = ASSET_ALIASES.get(asset, (asset,))
    for symbol, market in preset.markets.items():
        if market.base in names and market.kind.value == kind:
            return symbol
    return None


def _settle(preset) -> str:
    kind = _kind_simulated(preset)
    settles = {market.settle for market in preset.markets.values() if market.kind.value == kind}
    if len(settles) != 1:
        raise InvalidInput("preset", f"{preset.name}: the simulator needs one settle asset for {kind} markets")
    return settles.pop()


def _settle_asset(preset, markets: dict[str, str], settle: str) -> str | None:
    """The scenario asset whose price values the settle asset (the coin of an inverse market), or
    None when the settle asset is a dollar stablecoin, worth one USD."""
    for asset, symbol in markets.items():
        if preset.markets[symbol].kind.value == "inverse" and preset.markets[symbol].settle == settle:
            return asset
    return None


def _quote_notional(market, size: Decimal, price: Decimal) -> Decimal:
    """A fill's notional in the quote currency (USD): size·cs·price (linear), size·cs (inverse,
    whose contracts are worth ``contract_size`` USD each)."""
    return size * market.contract_size * (price if market.kind.value == "linear" else 1)


@dataclass(frozen=True)
class TraderRows:
    """One market's traders as the strings ``OpenPositions`` takes."""

    sizes: list[str]  # signed contracts
    deposits: list[str]  # settle asset
    prices: list[str]  # entry prices


def trader_rows(market, model, opening: Decimal, notional_usd: np.ndarray, leverage: np.ndarray,
                direction: np.ndarray, entry_return: np.ndarray | None = None) -> TraderRows:
    """Positions and deposits for traders of one market (vectorized; the simulator's own choices,
    so floats are fine here: the engine takes the strings exactly).

    Size: contracts for about ``notional_usd`` (at least one lot): USD per contract is
    ``contract_size·price`` for a linear market, ``contract_size`` for an inverse one. Leverage:
    capped at the model's maximum for the position's notional (else 50×). Entry price:
    ``opening·exp(−entry_return)``, to the 1e-4. Deposit, in the settle asset (USD for a linear
    market, the coin for an inverse one, to the cent or the satoshi, rounded up): the margin that
    gives the leverage at the opening, less the PnL since entry, and at least 1% of that margin.
    """
    linear = market.kind.value == "linear"
    price, size_unit = float(opening), float(market.contract_size)
    lot = 10.0 ** -market.size_decimals
    per_contract = size_unit * (price if linear else 1.0)
    lots = np.maximum(np.rint(notional_usd / per_contract / lot), 1).astype(np.int64)
    size = lots * lot
    model_notional = size * size_unit * (price if linear else 1.0 / price)  # the model's unit
    floors = [row[0] for row in model.maintenance_table()]  # the maximum leverage steps at these
    ceilings = np.array([float(model.max_leverage(floor) or 50) for floor in floors])
    tier = np.maximum(np.searchsorted(np.array([float(f) for f in floors]), model_notional, side="right") - 1, 0)
    margin = model_notional / np.minimum(leverage, ceilings[tier])
    entry = np.round(price * np.exp(-(entry_return if entry_return is not None else np.zeros(len(lots)))), 4)
    quantity = direction * size * size_unit
    pnl = quantity * (price - entry) if linear else quantity * (1.0 / entry - 1.0 / price)
    decimals = 2 if linear else 8
    scale = 10.0 ** decimals
    deposit = np.maximum(np.ceil((margin - pnl) * scale), np.maximum(np.ceil(margin / 100 * scale), 1)) / scale
    signed = direction * lots
    return TraderRows(
        sizes=[str(Decimal(int(units)).scaleb(-market.size_decimals)) for units in signed.tolist()],
        deposits=[f"{value:.{decimals}f}" for value in deposit.tolist()],
        prices=[f"{value:.4f}" for value in entry.tolist()],
    )


def usd_to_settle(amount_usd: str, preset, markets: dict[str, str], settle: str, exogenous) -> str:
    """A USD amount of the configuration (fund, backstop capital) in the settle asset, at the
    opening price when the settle asset is a coin."""
    asset = _settle_asset(preset, markets, settle)
    if asset is None:
        return amount_usd
    return str((Decimal(amount_usd) / Decimal(_price_text(exogenous[asset][0]))).quantize(Decimal("1e-8")))


def _price_text(value: float) -> str:
    return str(Decimal(repr(float(value))).quantize(PRICE_QUANTUM))


def run(config: SimConfig, progress: Callable[[int, int], None] | None = None,
        scenario: Scenario | None = None, with_book: bool = False, keep_events: bool = False) -> RunResult:
    """Run one seeded simulation; ``progress(step, steps)`` is called as it goes.

    ``with_book``: also solve every trader's liquidation price at the opening (for the report's
    heatmap). ``keep_events``: keep every event with its step (``RunResult.event_log``, for
    :mod:`solvent.sim.export`). The cyclic garbage collector is paused for the run
    (:mod:`solvent.core.memory`).
    """
    with cyclic_gc_paused():
        return _run(config, progress, scenario, with_book, keep_events)


def _run(config: SimConfig, progress: Callable[[int, int], None] | None, scenario: Scenario | None,
         with_book: bool, keep_events: bool = False) -> RunResult:
    scenario = resolve_scenario(config, scenario)  # a scenario, the user's candles, or a gbm:/shock: path
    if config.oracle_lag_steps < 0:
        raise InvalidInput("oracle_lag_steps", "must not be negative")
    if config.seed < 0:
        raise InvalidInput("seed", "must not be negative")
    for name in ("insurance_fund", "backstop_capital", "liquidator_capital"):
        non_negative(getattr(config, name), name)
    preset = load_preset(config.preset)
    configured = config.with_agents(preset)  # the configuration the venue is built with
    if configured.overrides:
        preset = preset.with_overrides(configured.preset_overrides(), name=preset.name)
    markets = {asset: symbol for asset in scenario.assets if (symbol := _market_for(preset, asset))}
    if not markets:
        raise InvalidInput("scenario", f"none of {sorted(scenario.assets)} is a linear market of {preset.name}")
    settle = _settle(preset)
    seeds = np.random.SeedSequence(config.seed).spawn(2)
    path_rng, population_rng = (np.random.default_rng(s) for s in seeds)
    exogenous = {asset: path for asset, path in exogenous_paths(scenario, path_rng).items() if asset in markets}
    wicks = scenario.intrabar() if hasattr(scenario, "intrabar") else None  # candles' extremes within a step
    steps = len(next(iter(exogenous.values())))

    engine = Engine()
    commands = _setup(configured, preset, markets, settle, exogenous, population_rng)
    agents = []
    if preset.section("execution").get("takeover") == "open":
        capital = usd_to_settle(config.liquidator_capital, preset, markets, settle, exogenous)
        for index in range(config.liquidators):
            agents.append(perp_agents.PerpLiquidator(f"liquidator{index}", latency_steps=config.liquidator_latency_steps))
            commands += [c.OpenAccount(agents[-1].name, VENUE), c.Deposit(agents[-1].name, settle, capital)]
    log: list | None = [] if keep_events else None
    apply_setup(engine, commands, config.book, log)
    book = _book_liquidation_prices(engine, markets) if with_book else None
    fund_account = f"{VENUE}/insurance"
    initial_fund = _protection_value(engine, fund_account, settle)
    vault = f"{VENUE}/liquidator"
    initial_vault = _protection_value(engine, vault, settle)

    impact = {asset: SqrtImpact(DEPTH_1PCT_USD.get(asset, 2_500_000.0) * config.depth_scale) for asset in markets}
    simulated = {asset: np.empty(steps) for asset in markets}
    liquidated = np.zeros(steps)
    fund = np.zeros(steps)
    backstop = np.zeros(steps)
    counts = {"liquidations": 0, "adl_events": 0, "events": 0, "declined_by_liquidators": 0,
              "adl_against_backstop": 0}
    bad_debt = Decimal(0)
    adl_notional = Decimal(0)
    liquidated_total = Decimal(0)
    forced_steps: list[int] = []
    by_symbol = {symbol: asset for asset, symbol in markets.items()}
    drawdown = backstop_drawdown = Decimal(0)

    adl_excess = Decimal(0)  # USD, see RunMetrics.adl_excess_over_pro_rata
    adl_excess_draining = Decimal(0)
    adl_steps = np.zeros(steps)
    adl_by_asset = {asset: 0.0 for asset in markets}
    liquidated_by_asset = {asset: 0.0 for asset in markets}
    specs = preset.markets
    coin = _settle_asset(preset, markets, settle)
    for step in range(steps):
        prices = {}
        for asset, symbol in markets.items():
            if config.feedback and step:
                window = simulated[asset][max(0, step - 30):step]
                impact[asset].step(realized_volatility(window, scenario.step_seconds) if len(window) > 2 else 0.0)
            factor = impact[asset].price_factor if config.feedback else 1.0
            simulated[asset][step] = float(exogenous[asset][step]) * factor
            seen = simulated[asset][max(0, step - config.oracle_lag_steps)]  # a lagging oracle
            prices[symbol] = _price_text(seen)
        # USD per unit of the settle asset this step: 1 for a dollar stablecoin, the simulated
        # price of the coin an inverse market settles in. Coin amounts are valued at it.
        usd = Decimal(1) if coin is None else Decimal(_price_text(simulated[coin][step]))
        timestamp = step * scenario.step_seconds + 1
        events = engine.apply(c.AdvanceTime(timestamp, seed=int(population_rng.integers(0, 2**31))))
        if wicks is not None and step:  # the candle's extremes, in order, before its close
            for extreme in wicks:
                events += engine.apply(c.UpdateOracle(VENUE, {symbol: _price_text(
                    extreme[asset][step] * (impact[asset].price_factor if config.feedback else 1.0))
                    for asset, symbol in markets.items()}, timestamp))
        events += engine.apply(c.UpdateOracle(VENUE, prices, timestamp))
        if log is not None:
            log.append((step, timestamp, events))
        flow = {asset: 0.0 for asset in markets}  # signed notional (USD) the liquidations traded
        if agents:
            acted = perp_agents.act(engine, VENUE, "maker", agents, step, markets, impact,
                                    {asset: float(simulated[asset][step]) for asset in markets})
            events += acted.events
            counts["declined_by_liquidators"] += acted.declined
            for asset, signed in acted.flow.items():
                flow[asset] += signed
        if config.backstop_unwind_per_step > 0:
            unwound = perp_agents.unwind_backstop(engine, VENUE, "maker", config.backstop_unwind_per_step, markets,
                                                  impact, {asset: float(simulated[asset][step]) for asset in markets})
            events += unwound.events
            for asset, signed in unwound.flow.items():
                flow[asset] += signed
        counts["events"] += len(events)
        step_notional = Decimal(0)
        for event in events:
            if isinstance(event, ev.PositionLiquidated):
                notional = _quote_notional(specs[event.market], Decimal(event.size), Decimal(event.price))
                step_notional += notional
                counts["liquidations"] += 1
                asset = by_symbol.get(event.market)
                if asset is not None:
                    liquidated_by_asset[asset] += float(notional)
                if asset is not None and event.method in ("book", "keeper"):
                    # Closing a long sells into the market, closing a short buys.
                    flow[asset] += -float(notional) if event.side == "long" else float(notional)
            elif isinstance(event, ev.PositionAutoDeleveraged):
                counts["adl_events"] += 1
                if event.against == vault:  # the bankrupt side was the venue's liquidator vault
                    counts["adl_against_backstop"] += 1
                closed = _quote_notional(specs[event.market], Decimal(event.size), Decimal(event.price))
                adl_notional += closed
                adl_steps[step] += float(closed)
                if event.market in by_symbol:
                    adl_by_asset[by_symbol[event.market]] += float(closed)
            elif isinstance(event, ev.BadDebt):
                bad_debt += Decimal(event.amount) * usd
        adl_excess += adl_excess_over_pro_rata(events) * usd
        adl_excess_draining += adl_excess_over_leverage_draining(events) * usd
        if step_notional > 0:
            forced_steps.append(step)
        liquidated[step] = float(step_notional)
        liquidated_total += step_notional
        fund_value = _protection_value(engine, fund_account, settle)
        vault_value = _protection_value(engine, vault, settle)
        # The fund's (the vault's) draw: how far below its starting value it stands (in its asset),
        # valued at this step's price; a coin fund that only lost USD value has not drawn.
        drawdown = max(drawdown, (initial_fund - fund_value) * usd)
        backstop_drawdown = max(backstop_drawdown, (initial_vault - vault_value) * usd)
        fund[step] = float(fund_value * usd)
        backstop[step] = float(vault_value * usd)
        if config.feedback:
            for asset, signed in flow.items():
                if signed:
                    impact[asset].trade(signed)
        if progress is not None:
            progress(step + 1, steps)

    assert engine.conservation().holds, engine.conservation().describe()
    metrics = RunMetrics(
        bad_debt=float(bad_debt),
        insurance_drawdown=float(drawdown),
        backstop_drawdown=float(backstop_drawdown),
        liquidated_notional=float(liquidated_total),
        liquidations=counts["liquidations"],
        adl_events=counts["adl_events"],
        adl_notional=float(adl_notional),
        adl_excess_over_pro_rata=float(adl_excess),
        price_overshoot={asset: price_overshoot(simulated[asset], exogenous[asset]) for asset in markets},
        cascade_depth=cascade_depth(forced_steps),
        time_to_stability_steps=time_to_stability(forced_steps, steps - 1),
        toxic_liquidations=0,  # a lending measure; perpetual venues have none
    )
    return RunResult(config, metrics, markets, exogenous, simulated, liquidated, fund, counts["events"], counts, book,
                     backstop, log, scenario.step_seconds, getattr(scenario, "start", None), adl_steps,
                     adl_by_asset, liquidated_by_asset, float(adl_excess_draining))


def _protection_value(engine: Engine, account: str, settle: str) -> Decimal:
    """What an insurance fund or a backstop vault is worth, in the settle asset: its cash and the
    unrealized PnL at the marks of the positions it took over (Binance's fund, Hyperliquid's vault
    hold what they took until they sell it)."""
    pool = cross_pool(engine, account, settle)
    return pool.equity if pool is not None else Decimal(0)


def _book_liquidation_prices(engine: Engine, markets: dict[str, str]) -> dict[str, np.ndarray]:
    """Each trader's liquidation price relative to the opening mark, per asset (exact solver)."""
    from ..policies.account import account_margin

    by_market = {f"{VENUE}/{symbol}": asset for asset, symbol in markets.items()}
    found: dict[str, list[float]] = {asset: [] for asset in markets}
    for account in sorted(engine.venues[VENUE].accounts):
        if account == "maker":
            continue
        for pool in account_margin(engine.ledger, account, models=engine.model, marks=engine.marks):
            for position in pool.positions:
                asset = by_market.get(position.market)
                if asset is not None and position.liquidation_price is not None:
                    found[asset].append(float(position.liquidation_price / position.mark_price))
    return {asset: np.asarray(values) for asset, values in found.items()}


def _setup(config: SimConfig, preset, markets: dict[str, str], settle: str, exogenous, rng) -> list[c.Command]:
    """Commands that create the venue, its fund, its liquidity, and the population of traders."""
    commands: list[c.Command] = [c.CreateVenue(VENUE, config.preset, config.preset_overrides())]
    if Decimal(config.insurance_fund) > 0:  # an empty fund is a design to test, not an error
        commands.append(c.FundInsurance(settle, usd_to_settle(config.insurance_fund, preset, markets, settle, exogenous),
                                        venue=VENUE))
    return commands + venue_population(config, VENUE, preset, markets, settle, exogenous, rng)


def venue_population(config: SimConfig, venue: str, preset, markets: dict[str, str], settle: str, exogenous, rng,
                     *, prefix: str = "", median_leverage: float = 5.0) -> list[c.Command]:
    """A venue's liquidator vault, book, market maker and population of leveraged traders
    (account names start with ``prefix``), each trader's position taken from the maker at its
    entry price, with the deposit that gives it its drawn leverage at the opening."""
    commands: list[c.Command] = []
    if Decimal(config.backstop_capital) > 0:
        commands.append(c.Deposit(f"{venue}/liquidator", settle,
                                  usd_to_settle(config.backstop_capital, preset, markets, settle, exogenous)))
    maker = f"{prefix}maker"
    commands += [
        c.Deposit(f"{venue}/book", settle, "10000000000"),
        c.OpenAccount(maker, venue),
        c.Deposit(maker, settle, "10000000000"),
    ]
    opening = {symbol: _price_text(exogenous[asset][0]) for asset, symbol in markets.items()}
    commands.append(c.UpdateOracle(venue, opening, 0))
    assets = list(markets)
    accounts = config.accounts
    if config.book is not None:  # the user's book, and a synthetic crowd beside it at synthetic_share
        from .books import SYNTHETIC_PREFIX, book_commands, synthetic_accounts

        commands += book_commands(config.book, preset, markets, venue, maker, ASSET_ALIASES)
        accounts = synthetic_accounts(len(config.book.accounts), config.synthetic_share)
        prefix += SYNTHETIC_PREFIX
        if accounts == 0:
            return commands
    options: dict[str, Any] = {"median_leverage": median_leverage, **dict(config.population)}
    population = sample_population(accounts, assets, rng, **options)
    specs = preset.markets
    for market_index, symbol in enumerate(markets.values()):  # each market's traders in one command
        chosen = np.flatnonzero(population.market == market_index)
        if not len(chosen):
            continue
        rows = trader_rows(specs[symbol], preset.margin_model(symbol), Decimal(opening[symbol]),
                           population.notional_usd[chosen], population.leverage[chosen],
                           population.side[chosen].astype(np.int64), population.entry_return[chosen])
        commands.append(c.OpenPositions(venue, symbol, maker, tuple(f"{prefix}t{index}" for index in chosen.tolist()),
                                        tuple(rows.deposits), tuple(rows.sizes), tuple(rows.prices)))
    return commands
