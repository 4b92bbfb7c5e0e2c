"""One lending simulation run: a scenario drives a lending venue, keepers liquidate, sales move the price.

The engine under a lending preset (``maker``: Liquidations 2.0 Dutch auctions; ``aave_v3``:
fixed-bonus liquidation calls; ``compound_v3``: absorb, then the store front; ``euler_v2``:
liquidation at a discount of 1 − health; ``morpho_blue``: liquidation at the LLTV's incentive
factor; ``liquity_v1``: whole troves offset against the stability pool or redistributed) is
driven only by commands, as live. Per step:

1. market makers thin or refill the depth of each collateral's market from its realised
   volatility (:class:`~solvent.sim.agents.MarketMaker`, the :class:`SqrtImpact` thinning), and
   the temporary impact of earlier sales decays;
2. the market price is the scenario's exogenous path times the impact factor; the oracle sees it
   (``feedback``) or the exogenous path alone (the oracle reads deep reference markets while
   keepers sell into their own), ``oracle_lag_steps`` behind if asked (Maker's OSM is one hour);
3. ``AdvanceTime`` (so auctions decay) and ``UpdatePrices`` go to the engine;
4. keepers (:class:`~solvent.sim.agents.Liquidator`), in an order drawn from the run's
   generator, bark unsafe vaults, redo auctions that need a reset, take lots or call Aave
   liquidations when their profit gate passes; absorb underwater Comet accounts and buy the
   seized collateral at the store front; call Euler or Morpho ``Liquidate``; call Liquity's
   ``LiquidateTrove`` for its gas compensation; and sell what they bought into the market: the
   sale moves the market price (the cascade's feedback loop).

Metrics (:class:`~solvent.sim.metrics.RunMetrics`) come from the events:

- ``bad_debt``: the sum of ``BadDebtRecorded`` amounts as the engine reports them (Maker: debt
  an auction that sold its whole lot did not cover; Aave 3.3: the reserve deficit; Compound:
  absorbed debt beyond the collateral's oracle value, taken by reserves; Euler: debt socialized to
  the vault's depositors; Morpho: debt realized against the market's suppliers; Liquity: a trove's
  debt beyond its collateral's value, borne by the stability pool or redistributed), valued at
  the debt asset's price (1);
- ``liquidations`` / ``liquidated_notional``: barks, liquidation calls, accounts absorbed,
  Euler/Morpho liquidations or troves liquidated, and the oracle value of the collateral they
  sent to auction or seized (a trove's whole collateral);
- ``toxic_liquidations``: ``LiquidationCalled`` events flagged ``toxic`` (LTV above 1/LB); Euler
  and Morpho liquidations whose borrower's LTV before was above ``1/(1 + LI)`` (Euler: ``LI =
  d/(1 − d)`` for the discount ``d``; Morpho: ``LIF − 1``), the LTV from the keepers' screen
  (floats). Not counted where a liquidation takes the whole position (Compound, Liquity): no
  remainder can be made worse;
- ``price_overshoot``, ``cascade_depth`` and ``time_to_stability_steps`` as in :mod:`.run`.

:class:`LendingRunResult` adds the auction record: every take's price against the oracle
(:attr:`LendingRunResult.take_price_ratio`; on Compound the store front's sales, at
``auction_id`` −1), the system debt left (Maker: unbacked DAI, the vow's sin the surplus does not
cover, including auctions still running; Aave: reserve deficits; Compound: reserves below zero;
Euler / Morpho: debt written off against lenders; Liquity: LUSD the system's collateral no longer
covers), a few protocol figures (:attr:`LendingRunResult.protocol_state`), and the engine itself
for checks.

Assumptions of the newer protocols, beyond :class:`LendingSimConfig`'s:

- Compound: absorbing pays nothing on-chain (liquidator points only), so keepers absorb every
  liquidatable account they are ready for without a profit gate (its gas assumed repaid through
  the points, reference §2.2), up to 50 accounts per call; they buy collateral only while the
  protocol's reserves are below target and the 2.5% store-front discount (WETH) passes their gate.
- Euler: the liquidator repays the debt it takes over in the same command (an EVC batch), then
  redeems the collateral vault's shares it received and sells the collateral; cool-off 0 (the
  preset's illustrative vault).
- Morpho: one market (WETH-USDC, LLTV 0.86); keepers name the repay, the protocol derives the
  seizure; no oracle other than the scenario's.
- Liquity: the stability pool is one depositor's (``stability_pool_fraction`` of the book's debt,
  from a trove at 4× collateralization); depositors do not sell their collateral gains within the
  run (withdrawals are blocked while any trove is below the MCR); keepers sell the 0.5%
  collateral they receive. No redemptions, no base-rate changes (the fee is the 0.5% floor).

Black Thursday (12–13 Mar 2020) ran under Liquidations 1.2 English ``flip`` auctions that
accepted 0-DAI bids (reference/lending-protocols.md §9.1). The preset is Liquidations 2.0, whose
``cusp``/``tail`` resets (at ≈ 0.495 of the OSM price for ETH-A, §3.7) exist to stop that: with
them an auction no keeper will bid on is reset again and again instead of clearing near zero.
Removing the reset floor (overrides ``ilks.ETH-A.cusp`` near 0 and a ``tail`` past the horizon,
:data:`NO_RESET_FLOOR`) is the nearest 2.0 analogue of 1.2's missing floor; with it and a market
keepers cannot sell into, the Black Thursday failure mode reappears: keepers wait until the price
has decayed far, auctions clear near zero and the shortfall is system debt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import numpy as np

from ..core.errors import InvalidInput
from ..core.memory import cyclic_gc_paused
from ..engine import CommandRejected, Engine
from ..engine import commands as c
from ..engine import lending as L
from ..engine.lending_liquity import LiquityVenue
from ..engine.lending_maker import MakerVenue
from ..policies.lending import compound, euler
from ..presets import load_preset
from .agents import ExitMarket, LendingView, Liquidator, MarketMaker, sample_borrowers
from .market import DEPTH_1PCT_USD, realized_volatility
from .metrics import RunMetrics, cascade_depth, is_toxic, price_overshoot, time_to_stability
from .run import nested_overrides
from .scenarios import Scenario, load_scenario, scenario_paths

VENUE = "lend"
PRICE_QUANTUM = Decimal("0.0001")
VOL_WINDOW = 30  # steps of realised volatility the market makers watch
LIQUIDATION_EVENTS = frozenset({"auction_started", "auction_taken", "auction_reset", "auction_settled",
                                "liquidation_called", "bad_debt_recorded", "absorbed", "collateral_bought",
                                "liquidated", "trove_liquidated"})
PROTOCOLS = ("maker", "aave", "compound", "euler", "morpho", "liquity")

#: Default collateral per preset: scenario asset → venue market (a Maker ilk, an Aave reserve, a
#: Comet collateral asset, an Euler collateral vault, a Morpho market, Liquity's one collateral).
#: Every preset's ETH market, so that the shipped scenarios (all of which carry ETH) apply to all.
DEFAULT_COLLATERAL = {"maker": (("ETH", "ETH-A"),), "aave_v3": (("ETH", "WETH"),),
                      "compound_v3": (("ETH", "WETH"),), "euler_v2": (("ETH", "WETH"),),
                      "morpho_blue": (("ETH", "WETH-USDC"),), "liquity_v1": (("ETH", "ETH"),)}
#: The same by protocol, for presets of the same protocol under another name.
PROTOCOL_COLLATERAL = {"maker": DEFAULT_COLLATERAL["maker"], "aave": DEFAULT_COLLATERAL["aave_v3"],
                       "compound": DEFAULT_COLLATERAL["compound_v3"], "euler": DEFAULT_COLLATERAL["euler_v2"],
                       "morpho": DEFAULT_COLLATERAL["morpho_blue"], "liquity": DEFAULT_COLLATERAL["liquity_v1"]}
#: Default debt asset per protocol (Maker's is the preset's stablecoin; Compound's the Comet's
#: base; Morpho's the market's loan asset; Liquity's its stablecoin).
DEFAULT_DEBT = {"aave": "USDC", "euler": "USDC"}
#: Protocols whose oracle prices the debt asset too (at 1: debt assets are USD stablecoins here).
PRICED_DEBT = frozenset({"aave", "compound", "euler", "morpho"})
#: Liquity: a trove's net debt must reach MIN_NET_DEBT (1,800 LUSD), and its debt adds the 0.5%
#: fee and the 200 LUSD gas reserve, so borrowers owe at least 2,009 LUSD; drawn at least this.
LIQUITY_MIN_DEBT = 2_100.0
#: Liquity: the collateral ratio of the stability-pool depositor's own trove (assumption: a safe
#: trove, liquidatable only below 1.1/4 = 27.5% of the opening price).
DEPOSITOR_RATIO = 4.0
DEPOSITOR = "depositor"

#: Overrides that remove Liquidations 2.0's reset floor on ETH-A for a 17-hour scenario: the
#: price may decay to 0.1% of ``top`` before a reset is needed, and ``tail`` (one day) is past the
#: horizon. The nearest 2.0 analogue of 1.2's flip auctions, which accepted any bid.
NO_RESET_FLOOR: tuple[tuple[str, str], ...] = (("ilks.ETH-A.cusp", "0.001"), ("ilks.ETH-A.tail", "86400"))


@dataclass(frozen=True)
class LendingSimConfig:
    """One lending run. Borrowers: see :func:`~solvent.sim.agents.sample_borrowers` (debt median
    20,000 with log-sd 1.0; collateralization = the protocol minimum × (1 + buffer), buffer median
    0.5, log-sd 0.6). Keepers: ``keepers`` :class:`~solvent.sim.agents.Liquidator` accounts with
    ``keeper_capital`` each (assumption: 5M, enough that capital rarely binds), latency 1 step,
    a 2% margin over cost and no gas by default (assumptions). Depth: ``depth_scale`` × the
    documented 1% depth of each asset (ETH $8M), thinned by market makers down to
    ``mm_min_depth_fraction``.

    The protocol minimum is the most a borrower may draw: Maker's ``mat``, Aave's ``1/LTV``,
    Compound's ``1/borrowCF`` (WETH on cUSDCv3: 1/0.825), Euler's ``1/borrowLTV`` (1/0.85 in the
    preset's illustrative USDC vault), Morpho's ``1/LLTV`` (1/0.86 for WETH-USDC) and Liquity's
    MCR (1.1). Lenders supply the debt asset (1.5 × the book's debt + 1M) where the protocol lends
    deposits; Liquity mints LUSD instead and its borrowers are opened in decreasing
    collateralization after the stability-pool depositor's trove, so that the system's TCR stays
    above the CCR while the book is opened (the protocol refuses a borrow that would enter
    recovery mode); its debts include the 0.5% fee and the 200 LUSD gas reserve."""

    scenario: str = "black_thursday_2020_03_12"
    preset: str = "maker"  # maker, aave_v3, compound_v3, euler_v2, morpho_blue, liquity_v1 (or their protocols')
    borrowers: int = 300  # vaults (Maker) or borrowing accounts (Aave)
    seed: int = 7
    keepers: int = 3
    keeper_capital: str = "5000000"  # per keeper, in the debt asset (DAI / USDC)
    keeper_latency_steps: int = 1
    keeper_min_margin: float = 0.02  # the profit gate: proceeds − gas ≥ cost · (1 + margin)
    keeper_gas: float = 0.0  # per transaction, in the debt asset
    keeper_max_actions: int = 8  # liquidation commands per keeper per step
    depth_scale: float = 1.0  # multiplies the documented 1% depths (market.DEPTH_1PCT_USD)
    mm_min_depth_fraction: float = 0.05  # the most market makers withdraw: depth never below this fraction
    feedback: bool = True  # keepers' sales move the price the oracle sees
    oracle_lag_steps: int = 0
    aftermath_steps: int = 0  # steps after the scenario's end at its last price, so running auctions can finish
    collateral: tuple[tuple[str, str], ...] = ()  # scenario asset → ilk / reserve; empty: DEFAULT_COLLATERAL
    debt_asset: str | None = None  # None: DAI on Maker, USDC on Aave
    median_debt: float = 20_000.0
    debt_sigma: float = 1.0
    median_buffer: float = 0.5  # collateralization = minimum × (1 + buffer), buffer log-normal
    buffer_sigma: float = 0.6
    overrides: tuple[tuple[str, str], ...] = ()  # (dotted preset path, value)
    # Compound: base reserves funded at the start (FundReserves). Assumption: 0, the run does not
    # model the interest that builds real reserves; the store front is then open (reserves below
    # the 5M USDC target) and reserves below 0 at the end are the protocol's loss.
    protocol_reserves: str = "0"
    # Liquity: LUSD in the stability pool at the start, as a fraction of the borrowers' total
    # debt. Assumption: 0.5 (the pool held a large share of the LUSD supply; not sourced here),
    # deposited by one account that borrows it from its own trove at DEPOSITOR_RATIO. 0: no pool,
    # every liquidation is redistributed to the other troves.
    stability_pool_fraction: float = 0.5

    def preset_overrides(self) -> dict:
        return nested_overrides(self.overrides)


@dataclass(frozen=True)
class TakeRecord:
    step: int
    auction_id: int
    buyer: str
    slice: float  # collateral bought
    paid: float  # debt asset paid
    price: float  # auction price
    oracle: float  # oracle price of the collateral at the take
    market: float  # exogenous (scenario) price at the take


@dataclass
class LendingRunResult:
    config: LendingSimConfig
    metrics: RunMetrics
    markets: dict[str, str]  # scenario asset → venue collateral asset
    exogenous: dict[str, np.ndarray]
    simulated: dict[str, np.ndarray]  # the market keepers sell into: exogenous × impact
    oracle: dict[str, np.ndarray]  # what the venue's oracle was sent
    liquidated_per_step: np.ndarray
    takes: list[TakeRecord]
    keepers: list[Liquidator]
    system_debt: float  # Maker: unbacked DAI left (sin − surplus); Aave: reserve deficits
    counts: dict[str, int] = field(default_factory=dict)
    events: list = field(default_factory=list, repr=False)  # the liquidation events, in order (LIQUIDATION_EVENTS)
    engine: Engine | None = field(default=None, repr=False, compare=False)
    # Bad debt recorded so far (USD, running total) after each step: Maker's auction shortfalls,
    # Aave 3.3's reserve deficits. Empty for results built without it.
    bad_debt_per_step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Per scenario asset, each borrower's health-factor-1 price relative to the opening price (the
    # collateral price at which the position becomes liquidatable), from the book at the opening.
    liquidation_levels: dict[str, np.ndarray] = field(default_factory=dict)
    # Protocol figures at the end, as floats: Compound ``reserves``, ``collateral_held.<asset>``
    # (seized, not sold) and ``collateral_held_value`` (at the last oracle prices); Euler
    # ``socialized.<vault>``; Morpho ``bad_debt.<market>``; Liquity ``stability_pool`` (LUSD left),
    # ``tcr`` and ``open_troves``. Empty for Maker and Aave.
    protocol_state: dict[str, float] = field(default_factory=dict)

    @property
    def take_price_ratio(self) -> float | None:
        """What auctions raised over the oracle value of the collateral they sold (None: no take)."""
        value = sum(take.slice * take.oracle for take in self.takes)
        return None if value == 0 else sum(take.paid for take in self.takes) / value

    @property
    def collateral_sold(self) -> float:
        return sum(take.slice for take in self.takes)


def _price_text(value: float) -> str:
    return str(max(Decimal(repr(float(value))).quantize(PRICE_QUANTUM), PRICE_QUANTUM))


def _amount(value: float, places: int, rounding=ROUND_UP) -> str:
    return str(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places), rounding=rounding))


def run_lending(config: LendingSimConfig, scenario: Scenario | None = None,
                progress: Callable[[int, int], None] | None = None) -> LendingRunResult:
    """Run one seeded lending simulation (see the module docstring), the cyclic garbage collector
    paused (:mod:`solvent.core.memory`)."""
    with cyclic_gc_paused():
        return _run_lending(config, scenario, progress)


def _run_lending(config: LendingSimConfig, scenario: Scenario | None,
                 progress: Callable[[int, int], None] | None) -> LendingRunResult:
    scenario = scenario or load_scenario(config.scenario)
    if min(config.oracle_lag_steps, config.keepers, config.aftermath_steps, config.seed) < 0 or config.depth_scale <= 0:
        raise InvalidInput("config", "oracle_lag_steps, keepers, aftermath_steps and seed must not be negative, "
                           "depth_scale must be positive")
    preset = load_preset(config.preset)
    if config.overrides:
        preset = preset.with_overrides(config.preset_overrides(), name=preset.name)
    protocol = str(preset.section("lending").get("protocol", ""))
    if protocol not in PROTOCOLS:
        raise InvalidInput("preset", f"{config.preset}: the lending simulator drives {', '.join(PROTOCOLS)} venues, "
                           f"not {protocol or 'a non-lending preset'}")
    if not config.stability_pool_fraction >= 0 or Decimal(config.protocol_reserves) < 0:
        raise InvalidInput("config", "stability_pool_fraction and protocol_reserves must not be negative")
    collateral = dict(config.collateral or DEFAULT_COLLATERAL.get(config.preset, PROTOCOL_COLLATERAL[protocol]))
    if not collateral:
        raise InvalidInput("collateral", f"name the collateral of {config.preset} for each scenario asset")
    for asset in collateral:
        if asset not in scenario.assets:
            raise InvalidInput("collateral", f"{asset} is not an asset of scenario {scenario.name}")
    engine = Engine()
    engine.apply(c.CreateVenue(VENUE, config.preset, config.preset_overrides()))
    venue = L.lending_venue(engine, VENUE)
    liquidation: dict[str, float] = {}  # market → collateral value / debt at which it is liquidatable
    if protocol == "maker":
        ilks = dict(preset.section("lending").get("ilks", {}))
        debt_asset = config.debt_asset or str(preset.section("lending").get("stablecoin", "DAI"))
        gem_of = {}
        for asset, ilk in collateral.items():
            if ilk not in ilks:
                raise InvalidInput("collateral", f"{ilk} is not an ilk of {config.preset}")
            gem_of[asset] = str(ilks[ilk]["gem"])
        minimum = {ilk: float(preset.section("ilks")[ilk]["mat"]) for ilk in collateral.values()}
        liquidation = dict(minimum)
        min_debt = max(100.0, min(float(preset.section("ilks")[ilk].get("dust", 0))
                                  for ilk in collateral.values()) * 1.02)
    elif protocol == "aave":
        debt_asset = config.debt_asset or DEFAULT_DEBT["aave"]
        reserves = preset.section("reserves")
        gem_of = {}
        for asset, reserve in collateral.items():
            if reserve not in reserves:
                raise InvalidInput("collateral", f"{reserve} is not a reserve of {config.preset}")
            gem_of[asset] = reserve
        minimum = {reserve: 1.0 / float(reserves[reserve]["ltv"]) for reserve in collateral.values()}
        liquidation = {reserve: 1.0 / float(reserves[reserve]["liquidation_threshold"])
                       for reserve in collateral.values()}
        min_debt = 100.0
    else:
        debt_asset, gem_of, minimum, liquidation, min_debt = _layout(config, protocol, venue, collateral)
    seeds = np.random.SeedSequence(config.seed).spawn(3)
    path_rng, book_rng, keeper_rng = (np.random.default_rng(s) for s in seeds)
    exogenous = {asset: np.concatenate((path, np.full(config.aftermath_steps, path[-1])))
                 for asset, path in scenario_paths(scenario, path_rng).items() if asset in collateral}
    steps = len(next(iter(exogenous.values())))

    apply_setup = engine.apply
    market_of = {asset: collateral[asset] for asset in collateral}  # ilk, reserve, vault or market
    book = sample_borrowers(config.borrowers, list(collateral), {a: minimum[m] for a, m in market_of.items()},
                            book_rng, median_debt=config.median_debt, debt_sigma=config.debt_sigma,
                            min_debt=min_debt, median_buffer=config.median_buffer,
                            buffer_sigma=config.buffer_sigma)
    for command in _setup(config, protocol, preset, venue, book, exogenous, gem_of, market_of, debt_asset):
        try:
            apply_setup(command)
        except CommandRejected as error:
            raise InvalidInput("config", f"the book could not be opened on {config.preset}: {error}") from error

    market_makers = MarketMaker(min_depth_fraction=config.mm_min_depth_fraction)
    impact = {asset: market_makers.impact(DEPTH_1PCT_USD.get(asset, 2_500_000.0) * config.depth_scale)
              for asset in exogenous}
    simulated = {asset: np.empty(steps) for asset in exogenous}
    oracle = {asset: np.empty(steps) for asset in exogenous}
    now = {"step": 0}
    markets = {gem_of[asset]: ExitMarket(impact[asset], _mid(exogenous[asset], impact[asset], now))
               for asset in exogenous}
    keepers = [Liquidator(f"keeper{i}", debt_asset, config.keeper_latency_steps, config.keeper_min_margin,
                          config.keeper_gas, config.keeper_max_actions) for i in range(config.keepers)]
    view = LendingView(engine, VENUE)
    asset_of_gem = {gem: asset for asset, gem in gem_of.items()}
    if protocol == "aave":  # every borrower against every collateral of the run
        view.watch([(f"b{index}", gem, None) for index in range(len(book)) for gem in markets], debt_asset)
    elif protocol != "maker":
        watched = [(f"b{index}", gem_of[book.markets[int(book.market[index])]],
                    market_of[book.markets[int(book.market[index])]] if protocol == "morpho" else None)
                   for index in range(len(book))]
        if protocol == "liquity" and config.stability_pool_fraction > 0:
            assert isinstance(venue, LiquityVenue)  # the liquity protocol's venue class
            watched.append((DEPOSITOR, venue.coll, None))
        view.watch(watched, debt_asset)
    incentive_before: dict[str, float | None] = {}  # Euler/Morpho: the borrower's LTV before a Liquidate

    liquidated = np.zeros(steps)
    bad_debt_path = np.zeros(steps)
    counts = {"events": 0, "barks": 0, "takes": 0, "redos": 0, "calls": 0, "settled": 0, "rejected": 0,
              "absorbs": 0, "buys": 0, "liquidates": 0, "troves": 0, "offsets": 0, "capped_offsets": 0,
              "redistributions": 0, "recovery_mode": 0}
    takes: list[TakeRecord] = []
    kept: list = []
    auction_ilk: dict[int, str] = {}
    forced_steps: list[int] = []
    totals = {"bad_debt": 0.0, "notional": 0.0, "toxic": 0}

    def record(events: list, step: int) -> None:
        counts["events"] += len(events)
        for event in events:
            kind = event.kind
            if kind in LIQUIDATION_EVENTS:
                kept.append(event)
            if kind == "auction_started":
                auction_ilk[event.auction_id] = event.ilk
                assert isinstance(view.venue, MakerVenue)  # only Maker venues start auctions
                gem = view.venue.gems[event.ilk]
                notional = float(event.lot) * view.price(gem)
                counts["barks"] += 1
                totals["notional"] += notional
                liquidated[step] += notional
                forced_steps.append(step)
            elif kind == "auction_taken":
                assert isinstance(view.venue, MakerVenue)  # only Maker venues take auctions
                gem = view.venue.gems[auction_ilk[event.auction_id]]
                asset = asset_of_gem[gem]
                counts["takes"] += 1
                takes.append(TakeRecord(step, event.auction_id, event.buyer, float(event.slice), float(event.owe),
                                        float(event.price), view.price(gem), float(exogenous[asset][step])))
            elif kind == "auction_reset":
                counts["redos"] += 1
            elif kind == "auction_settled":
                counts["settled"] += 1
            elif kind == "liquidation_called":
                notional = float(event.collateral_seized) * view.price(event.collateral_asset)
                counts["calls"] += 1
                totals["notional"] += notional
                totals["toxic"] += int(bool(event.toxic))
                liquidated[step] += notional
                forced_steps.append(step)
            elif kind == "absorbed":  # Compound: the whole account, all its collateral to the protocol
                notional = sum(float(amount) * view.price(gem) for gem, amount in event.collateral_seized)
                counts["absorbs"] += 1
                totals["notional"] += notional
                liquidated[step] += notional
                forced_steps.append(step)
            elif kind == "collateral_bought":  # Compound's store front: a sale, recorded as a take
                bought = float(event.collateral_received)
                paid = float(event.base_paid)
                counts["buys"] += 1
                takes.append(TakeRecord(step, -1, event.buyer, bought, paid, paid / bought if bought else 0.0,
                                        view.price(event.asset), float(exogenous[asset_of_gem[event.asset]][step])))
            elif kind == "liquidated":  # Euler, Morpho
                notional = float(event.seized) * view.price(event.collateral_asset)
                counts["liquidates"] += 1
                totals["notional"] += notional
                ltv = incentive_before.pop(event.borrower, None)
                if ltv is not None:
                    factor = float(event.incentive)  # Euler: the discount d; Morpho: the LIF
                    bonus = factor / (1.0 - factor) if protocol == "euler" else factor - 1.0
                    totals["toxic"] += int(is_toxic(ltv, bonus))
                liquidated[step] += notional
                forced_steps.append(step)
            elif kind == "trove_liquidated":  # Liquity: the whole trove
                assert isinstance(view.venue, LiquityVenue)  # only Liquity venues liquidate troves
                notional = float(event.collateral) * view.price(view.venue.coll)
                counts["troves"] += 1
                if event.debt_offset != "0":
                    counts["capped_offsets" if event.rule == "capped_offset" else "offsets"] += 1
                if event.debt_redistributed != "0":
                    counts["redistributions"] += 1
                counts["recovery_mode"] += event.mode == "recovery"
                totals["notional"] += notional
                liquidated[step] += notional
                forced_steps.append(step)
            elif kind == "bad_debt_recorded":
                price = view.price(event.asset) if event.asset in view.venue.prices else 1.0
                totals["bad_debt"] += float(event.amount) * price
        view.observe(events)

    for step in range(steps):
        now["step"] = step
        prices = {}
        for asset, model in impact.items():
            if step:
                window = simulated[asset][max(0, step - VOL_WINDOW):step]
                model.step(realized_volatility(window, scenario.step_seconds) if len(window) > 2 else 0.0)
            simulated[asset][step] = float(exogenous[asset][step]) * model.price_factor
            source = simulated[asset] if config.feedback else exogenous[asset]
            oracle[asset][step] = float(source[max(0, step - config.oracle_lag_steps)])
            prices[gem_of[asset]] = _price_text(oracle[asset][step])
        if protocol in PRICED_DEBT:
            prices[debt_asset] = "1"
        timestamp = step * scenario.step_seconds + 1
        record(engine.apply(c.AdvanceTime(timestamp)), step)
        record(engine.apply(L.UpdatePrices(VENUE, prices, timestamp)), step)

        def apply(command: c.Command, step: int = step) -> list:
            if isinstance(command, L.Liquidate) and view.screen is not None:
                incentive_before[command.borrower] = view.screen.loan_to_value(command.borrower)
            try:
                events = engine.apply(command)
            except Exception:
                counts["rejected"] += 1
                raise
            record(events, step)
            return events

        for index in keeper_rng.permutation(len(keepers)):
            keepers[int(index)].act(view, markets, step, apply)
        bad_debt_path[step] = totals["bad_debt"]
        if progress is not None:
            progress(step + 1, steps)

    conservation = engine.conservation()
    assert conservation.holds, conservation.describe()
    lending = L.lending_conservation(engine, VENUE)
    assert lending.holds, lending.describe()
    system_debt, state = _system_debt(protocol, engine, venue)
    metrics = RunMetrics(
        bad_debt=totals["bad_debt"],
        liquidated_notional=totals["notional"],
        liquidations=counts["barks"] + counts["calls"] + counts["absorbs"] + counts["liquidates"] + counts["troves"],
        price_overshoot={asset: price_overshoot(simulated[asset], exogenous[asset]) for asset in exogenous},
        cascade_depth=cascade_depth(forced_steps),
        time_to_stability_steps=time_to_stability(forced_steps, steps - 1),
        toxic_liquidations=int(totals["toxic"]),  # an int already (counts), typed float by the dict
    )
    levels = {asset: liquidation[market_of[asset]] / np.asarray(book.collateralization, dtype=np.float64)[
        np.asarray(book.market) == index] for index, asset in enumerate(book.markets) if asset in market_of}
    return LendingRunResult(config, metrics, {asset: gem_of[asset] for asset in exogenous}, exogenous, simulated,
                            oracle, liquidated, takes, keepers, system_debt, counts, kept, engine,
                            bad_debt_path, levels, state)


def _system_debt(protocol: str, engine: Engine, venue) -> tuple[float, dict[str, float]]:
    """What the protocol is left owing that nothing backs, in the debt asset (≈ USD), and a few
    protocol figures at the end (see :attr:`LendingRunResult.protocol_state`)."""
    ledger = engine.ledger
    if protocol == "maker":
        return float(L.lending_state(engine, VENUE)["system_debt"]), {}
    if protocol == "aave":
        state = L.lending_state(engine, VENUE)["reserves"]
        return sum(float(reserve["deficit"]) for reserve in state.values()), {}
    if protocol == "compound":
        reserves = float(ledger.amount(venue.base, venue.reserves))
        held = {asset: float(ledger.amount(asset, units))
                for asset, units in venue.collateral_reserves.items() if units}
        worth = sum(units * float(venue.prices[asset]) for asset, units in held.items())
        return max(0.0, -reserves), {"reserves": reserves, **{f"collateral_held.{a}": v for a, v in held.items()},
                                     "collateral_held_value": worth}
    if protocol == "euler":
        lost = {asset: float(ledger.amount(asset, pool.lost)) for asset, pool in venue.pools.items()}
        return sum(lost.values()), {f"socialized.{asset}": value for asset, value in lost.items() if value}
    if protocol == "morpho":
        lost = {market: float(ledger.amount(venue.markets[market].loan, units))
                for market, units in venue.bad_debt.items()}
        return sum(lost.values()), {f"bad_debt.{market}": value for market, value in lost.items() if value}
    # Liquity: LUSD the system's collateral does not cover at the last price (TCR below 100%).
    coll = venue.open_coll + venue.pending_coll
    debt = venue.open_debt + venue.pending_debt
    value = float(ledger.amount(venue.coll, coll)) * float(venue.prices[venue.coll])
    issued = float(ledger.amount(venue.lusd, debt))
    return max(0.0, issued - value), {
        "stability_pool": float(ledger.amount(venue.lusd, sum(venue.deposits.values()))),
        "tcr": value / issued if issued else math.inf,
        "open_troves": float(venue.open_count),
    }


def _layout(config: LendingSimConfig, protocol: str, venue, collateral: dict[str, str]):
    """(debt asset, collateral token per scenario asset, minimum collateralization per market,
    collateralization at which a position becomes liquidatable per market, least debt drawn) of
    a Compound, Euler, Morpho or Liquity venue, read from the venue the preset built (so overrides
    apply). ``collateral`` maps a scenario asset to a Comet collateral asset, an Euler collateral
    vault, a Morpho market or Liquity's collateral."""
    gem_of: dict[str, str] = {}
    minimum: dict[str, float] = {}
    liquidation: dict[str, float] = {}
    min_debt = 100.0
    if protocol == "compound":
        debt_asset = venue.base
        for asset, gem in collateral.items():
            if gem not in venue.comet.assets:
                raise InvalidInput("collateral", f"{gem} is not a collateral asset of {venue.comet.name}")
            spec = venue.comet.assets[gem]
            gem_of[asset] = gem
            minimum[gem] = compound.FACTOR_SCALE / spec.borrow_collateral_factor
            liquidation[gem] = compound.FACTOR_SCALE / spec.liquidate_collateral_factor
        min_debt = max(min_debt, float(venue.ledger.amount(venue.base, venue.comet.base_borrow_min)) * 1.02)
    elif protocol == "euler":
        debt_asset = config.debt_asset or DEFAULT_DEBT["euler"]
        if debt_asset not in venue.vaults or not venue.vaults[debt_asset].borrowable:
            raise InvalidInput("debt_asset", f"{debt_asset} is not a vault of {config.preset} that lends")
        vault = venue.vaults[debt_asset]
        for asset, gem in collateral.items():
            if gem not in vault.liquidation_ltv:
                raise InvalidInput("collateral", f"the {debt_asset} vault does not accept {gem} as collateral")
            gem_of[asset] = gem
            minimum[gem] = euler.CONFIG_SCALE / vault.borrow_ltv[gem]
            liquidation[gem] = euler.CONFIG_SCALE / vault.liquidation_ltv[gem]
    elif protocol == "morpho":
        loans = set()
        for asset, market in collateral.items():
            if market not in venue.markets:
                raise InvalidInput("collateral", f"{market} is not a market of {config.preset}")
            spec = venue.markets[market]
            gem_of[asset] = spec.collateral
            loans.add(spec.loan)
            minimum[market] = liquidation[market] = 1e18 / spec.lltv
        if len(loans) != 1:
            raise InvalidInput("collateral", "the markets simulated together must lend the same asset")
        debt_asset = loans.pop()
        if config.debt_asset not in (None, debt_asset):
            raise InvalidInput("debt_asset", f"the markets lend {debt_asset}")
    else:  # liquity
        debt_asset = venue.lusd
        for asset, gem in collateral.items():
            if gem != venue.coll:
                raise InvalidInput("collateral", f"{config.preset} takes {venue.coll} as collateral, not {gem}")
            gem_of[asset] = gem
            minimum[gem] = liquidation[gem] = venue.rules.mcr / 1e18
        min_debt = LIQUITY_MIN_DEBT
    if protocol != "morpho" and config.debt_asset not in (None, debt_asset):
        raise InvalidInput("debt_asset", f"{config.preset} lends {debt_asset}")
    for asset, gem in gem_of.items():
        if venue.ledger.assets[gem].decimals < 6:
            raise InvalidInput("collateral", f"{gem}: the simulator needs collateral with at least 6 decimals")
    return debt_asset, gem_of, minimum, liquidation, min_debt


def _mid(path: np.ndarray, model, now: dict) -> Callable[[], float]:
    return lambda: float(path[now["step"]]) * model.price_factor


def _setup(config: LendingSimConfig, protocol: str, preset, venue, book, exogenous: dict[str, np.ndarray],
           gem_of: dict[str, str], market_of: dict[str, str], debt_asset: str) -> list[Any]:
    """Commands that price the venue and open its lenders, the borrowers' positions and the
    keepers (the venue itself is created first, by ``run_lending``)."""
    commands: list[Any] = []
    opening = {gem_of[asset]: _price_text(path[0]) for asset, path in exogenous.items()}
    if protocol in PRICED_DEBT:
        opening[debt_asset] = "1"
    commands.append(L.UpdatePrices(VENUE, opening, 0))
    debt_places = min(preset.assets[debt_asset].decimals, 2)
    # Where each command names a market: Maker's ilk, Morpho's market; the others route by asset.
    named = {asset: market_of[asset] if protocol in ("maker", "morpho") else None for asset in market_of}
    if protocol not in ("maker", "liquity"):  # protocols that lend what lenders deposit
        supply = _amount(float(book.debt.sum()) * 1.5 + 1_000_000.0, 0)
        market = next(iter(named.values()))
        commands += [L.OpenLendingAccount("lender", VENUE), c.Deposit("lender", debt_asset, supply),
                     L.Supply(VENUE, "lender", debt_asset, supply, market)]
    if protocol == "compound" and Decimal(config.protocol_reserves) > 0:
        commands += [c.Deposit("lender", debt_asset, config.protocol_reserves),
                     L.FundReserves(VENUE, "lender", config.protocol_reserves)]
    order: Sequence[int] = range(len(book))
    if protocol == "liquity":
        gas, fee = _liquity_charges(venue)
        commands += _stability_pool(config, book, opening[gem_of[book.markets[0]]], gem_of[book.markets[0]],
                                    debt_asset, gas, fee)
        # Decreasing collateralization keeps the TCR above the CCR while the book is opened.
        order = sorted(order, key=lambda i: (-float(book.collateralization[i]), i))
    for index in order:
        asset = book.markets[int(book.market[index])]
        gem = gem_of[asset]
        debt = _amount(float(book.debt[index]), debt_places)
        units = float(Decimal(debt)) * float(book.collateralization[index]) / float(Decimal(opening[gem]))
        ink = _amount(units, min(preset.assets[gem].decimals, 6))
        name = f"b{index}"
        if protocol == "liquity":  # the debt drawn is the total less the gas reserve and the borrowing fee
            debt = _amount((float(Decimal(debt)) - gas) / fee, debt_places, ROUND_DOWN)
        commands += [L.OpenLendingAccount(name, VENUE), c.Deposit(name, gem, ink),
                     L.Supply(VENUE, name, gem, ink, named[asset]),
                     L.Borrow(VENUE, name, debt_asset, debt, named[asset])]
    for index in range(config.keepers):
        name = f"keeper{index}"
        commands.append(L.OpenLendingAccount(name, VENUE))
        if Decimal(config.keeper_capital) > 0 and protocol != "liquity":  # Liquity's caller pays nothing
            commands.append(c.Deposit(name, debt_asset, config.keeper_capital))
    return commands


def _liquity_charges(venue) -> tuple[float, float]:
    """Liquity: (LUSD reserved for gas compensation, 1 + borrowing fee) a trove's debt adds to what
    is drawn (200 LUSD and the 0.5% floor in liquity_v1)."""
    return venue.rules.lusd_gas_compensation / 1e18, 1.0 + venue.fee_floor / 1e18


def _stability_pool(config: LendingSimConfig, book, price: str, coll: str, lusd: str, gas: float,
                    fee: float) -> list[Any]:
    """Liquity: one depositor opens a trove at :data:`DEPOSITOR_RATIO` and puts what it borrows
    into the stability pool (``stability_pool_fraction`` × the book's debt); nothing if 0."""
    amount = _amount(float(book.debt.sum()) * config.stability_pool_fraction, 0, ROUND_DOWN)
    if Decimal(amount) <= 0:
        return []
    debt = (float(amount) * fee + gas) * DEPOSITOR_RATIO
    units = _amount(debt / float(Decimal(price)), 6)
    return [L.OpenLendingAccount(DEPOSITOR, VENUE), c.Deposit(DEPOSITOR, coll, units),
            L.Supply(VENUE, DEPOSITOR, coll, units), L.Borrow(VENUE, DEPOSITOR, lusd, amount),
            L.ProvideToStabilityPool(VENUE, DEPOSITOR, amount)]


__all__ = ["NO_RESET_FLOOR", "LendingRunResult", "LendingSimConfig", "TakeRecord", "run_lending"]
