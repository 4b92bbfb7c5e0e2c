"""Isolated insurance funds against one backstop shared across venues.

``run_shared(base, presets, shared)`` runs ONE engine holding one venue per preset (``v0``, ``v1``,
...), all driven by the same scenario path (one path, drawn from ``base.seed``) step by step. Each
venue has its own book, maker, liquidator vault (``base.backstop_capital``) and its own population of
traders (``base.accounts`` each, seeded per venue index through ``SeedSequence.spawn``).

Choices (documented here because they decide the answer):

* Capital. Isolated: each venue's insurance fund gets ``base.insurance_fund``. Shared: the same
  total, ``n × insurance_fund``, goes to one backstop (``CreateBackstop("shared", ...)``) over all
  venues; each venue's cap is ``cap_fraction × total`` (default 1: any venue may drain it all) and
  the venues' own funds stay empty.
* Waterfall layers (``waterfall.layers`` overridden through ``CreateVenue``): the cash layer where
  the venue keeps its fund is "insurance" in isolated mode and "backstop" in shared mode, so the
  same money sits at the same place in both. Isolated: "backstop" → "insurance" (Hyperliquid's
  ``["backstop", "adl"]`` becomes ``["insurance", "adl"]``: with no backstop created it would pay
  nothing). Shared: "insurance" → "backstop" (dYdX ``["backstop", "adl"]``, Drift
  ``["backstop", "socialize"]``, Binance ``["backstop", "adl"]``). Duplicates are dropped. Other
  layers ("adl", "socialize", "pool") are kept; GMX (``["pool"]``) has no fund layer, so it is a
  member of the backstop that never draws on it.
* Feedback. By default each venue's forced sales move only that venue's price (its own book depth:
  ``SqrtImpact`` per venue and asset), so venues interact only through the backstop. With
  ``shared_impact=True`` all venues' forced sales go into one impact per asset (one market).
* The liquidator vault's payments (Hyperliquid's takeover, ``BackstopDrawn`` named after
  ``v<i>/liquidator``) and GMX's pool are reported apart (``vault_drawn``, ``pool_drawn``).
* Liquidator agents, as in :func:`~solvent.sim.run.run`: on a venue whose liquidators take
  positions over (Drift), ``base.liquidators`` agents (``v<i>-liquidator<k>``, each with
  ``base.liquidator_capital``) take over what pays and unwind it into that venue's market; their
  unwinds move its price like any forced sale, and what their profit gate passes over is counted
  (``declined_by_liquidators``). ``liquidators=0``: the venue's own liquidator account takes over.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from ..core.errors import InvalidInput
from ..core.memory import cyclic_gc_paused
from ..engine import Engine
from ..engine import commands as c
from ..engine import events as ev
from ..presets import load_preset
from ..presets.loader import merge_tables
from . import perp_agents
from .market import DEPTH_1PCT_USD, SqrtImpact, realized_volatility
from .run import SimConfig, _market_for, _price_text, _settle, usd_to_settle, venue_population
from .scenarios import load_scenario, scenario_paths

BACKSTOP = "shared"
DEFAULT_SHARED_PRESETS = ("hyperliquid", "dydx_v4", "drift_v2", "gmx_v2")


def _layers(layers: Sequence[str], shared: bool) -> list[str]:
    old, new = ("insurance", "backstop") if shared else ("backstop", "insurance")
    out: list[str] = []
    for layer in layers:
        layer = new if layer == old else layer
        if layer not in out:
            out.append(layer)
    return out


def run_shared(base: SimConfig, presets: Sequence[str], shared: bool, *, cap_fraction: float = 1.0,
               median_leverage: Sequence[float] | None = None, depth_scales: Sequence[float] | None = None,
               shared_impact: bool = False) -> dict:
    """One engine, one venue per preset, one scenario path; isolated funds or one shared backstop.

    ``median_leverage`` / ``depth_scales``: per venue (same order as ``presets``), to make one venue
    crash harder than another. Returns ``{"mode", "venues": {v<i>: {...}}, "totals": {...},
    "backstop": {...} | None}`` (amounts in USD as floats). The cyclic garbage collector is paused
    for the run (:mod:`solvent.core.memory`).
    """
    with cyclic_gc_paused():
        return _run_shared(base, presets, shared, cap_fraction, median_leverage, depth_scales, shared_impact)


def _run_shared(base: SimConfig, presets: Sequence[str], shared: bool, cap_fraction: float,
                median_leverage: Sequence[float] | None, depth_scales: Sequence[float] | None,
                shared_impact: bool) -> dict:
    presets = list(presets)
    n = len(presets)
    if n < 1:
        raise InvalidInput("presets", "give at least one preset")
    if not 0 < cap_fraction <= 1:
        raise InvalidInput("cap_fraction", "must be in (0, 1]")
    for name, values in (("median_leverage", median_leverage), ("depth_scales", depth_scales)):
        if values is not None and len(values) != n:
            raise InvalidInput(name, f"give one value per preset ({n})")
    scenario = load_scenario(base.scenario)
    loaded = []
    for name in presets:
        preset = load_preset(name)
        if base.overrides:
            preset = preset.with_overrides(base.preset_overrides(), name=preset.name)
        loaded.append(preset)
    venues = [f"v{i}" for i in range(n)]
    markets = [{a: s for a in scenario.assets if (s := _market_for(p, a))} for p in loaded]
    for preset, market in zip(loaded, markets):
        if not market:
            raise InvalidInput("scenario", f"none of {sorted(scenario.assets)} is a linear market of {preset.name}")
    settles = [_settle(p) for p in loaded]
    if shared and len(set(settles)) != 1:
        listing = ", ".join(f"{p.name}: {s}" for p, s in zip(loaded, settles))
        raise InvalidInput("presets", f"a shared backstop needs one settle asset for all venues ({listing}); "
                                      f"try {','.join(DEFAULT_SHARED_PRESETS)}")
    assets = sorted({a for m in markets for a in m})

    path_seq, time_seq, population_seq = np.random.SeedSequence(base.seed).spawn(3)
    exogenous = {a: p for a, p in scenario_paths(scenario, np.random.default_rng(path_seq)).items() if a in assets}
    time_rng = np.random.default_rng(time_seq)
    venue_rngs = [np.random.default_rng(s) for s in population_seq.spawn(n)]
    steps = len(next(iter(exogenous.values())))

    engine = Engine()
    fund = Decimal(base.insurance_fund)
    total = fund * n
    configured = [base.with_agents(preset) for preset in loaded]  # opened to liquidator agents where they apply
    for i, (venue, preset) in enumerate(zip(venues, loaded)):
        layers = _layers(preset.data["waterfall"]["layers"], shared)
        overrides = merge_tables(configured[i].preset_overrides(), {"waterfall": {"layers": layers}})
        engine.apply(c.CreateVenue(venue, presets[i], overrides))
    if shared:
        caps = {v: str(total * Decimal(repr(cap_fraction))) for v in venues} if total > 0 else {}
        engine.apply(c.CreateBackstop(BACKSTOP, settles[0], tuple(venues), caps))
        if total > 0:
            engine.apply(c.FundInsurance(settles[0], str(total), backstop=BACKSTOP))
    for i, venue in enumerate(venues):
        if not shared and fund > 0:
            engine.apply(c.FundInsurance(settles[i], str(fund), venue=venue))
        leverage = 5.0 if median_leverage is None else float(median_leverage[i])
        for command in venue_population(base, venue, loaded[i], markets[i], settles[i], exogenous, venue_rngs[i],
                                        prefix=f"{venue}-", median_leverage=leverage):
            engine.apply(command)
    agents: dict[str, list[perp_agents.PerpLiquidator]] = {}
    for i, venue in enumerate(venues):
        if configured[i] is base:
            continue
        capital = usd_to_settle(base.liquidator_capital, loaded[i], markets[i], settles[i], exogenous)
        agents[venue] = [perp_agents.PerpLiquidator(f"{venue}-liquidator{k}", latency_steps=base.liquidator_latency_steps)
                         for k in range(base.liquidators)]
        for agent in agents[venue]:
            engine.apply(c.OpenAccount(agent.name, venue))
            engine.apply(c.Deposit(agent.name, settles[i], capital))

    scale = [base.depth_scale if depth_scales is None else float(depth_scales[i]) for i in range(n)]
    impact_keys = {(venue, a): ("*" if shared_impact else venue, a) for i, venue in enumerate(venues)
                   for a in markets[i]}
    impact = {key: SqrtImpact(DEPTH_1PCT_USD.get(key[1], 2_500_000.0)
                              * (scale[0] if shared_impact else scale[venues.index(key[0])]))
              for key in set(impact_keys.values())}
    simulated = {key: np.empty(steps) for key in impact}
    per_venue: dict[str, dict[str, Any]]  # a row of the report per venue: its preset, then its figures
    per_venue = {v: {"preset": p, "bad_debt": 0.0, "insurance_drawn": 0.0, "backstop_drawn": 0.0,
                     "vault_drawn": 0.0, "pool_drawn": 0.0, "liquidations": 0, "adl_notional": 0.0,
                     "socialized_loss": 0.0, "taken_over_by_agents": 0, "declined_by_liquidators": 0}
                 for v, p in zip(venues, presets)}
    exact = {v: {k: Decimal(0) for k in ("bad_debt", "insurance_drawn", "backstop_drawn", "vault_drawn",
                                          "pool_drawn", "adl_notional", "socialized_loss")} for v in venues}
    by_symbol = [{s: a for a, s in m.items()} for m in markets]

    for step in range(steps):
        for key in impact:
            if base.feedback and step:
                window = simulated[key][max(0, step - 30):step]
                impact[key].step(realized_volatility(window, scenario.step_seconds) if len(window) > 2 else 0.0)
            factor = impact[key].price_factor if base.feedback else 1.0
            simulated[key][step] = float(exogenous[key[1]][step]) * factor
        timestamp = step * scenario.step_seconds + 1
        events = engine.apply(c.AdvanceTime(timestamp, seed=int(time_rng.integers(0, 2**31))))
        flow = {key: 0.0 for key in impact}
        for i, venue in enumerate(venues):
            prices = {symbol: _price_text(simulated[impact_keys[(venue, a)]][max(0, step - base.oracle_lag_steps)])
                      for a, symbol in markets[i].items()}
            events += engine.apply(c.UpdateOracle(venue, prices, timestamp))
        for i, venue in enumerate(venues):
            if venue not in agents:
                continue
            keys = {a: impact_keys[(venue, a)] for a in markets[i]}
            acted = perp_agents.act(engine, venue, f"{venue}-maker", agents[venue], step, markets[i],
                                    {a: impact[key] for a, key in keys.items()},
                                    {a: float(simulated[key][step]) for a, key in keys.items()})
            events += acted.events
            per_venue[venue]["declined_by_liquidators"] += acted.declined
            for asset, signed in acted.flow.items():
                flow[keys[asset]] += signed
        for event in events:
            owner = getattr(event, "venue", None)
            if owner not in exact:
                continue
            tally = exact[owner]
            if isinstance(event, ev.PositionLiquidated):
                per_venue[owner]["liquidations"] += 1
                if event.counterparty.startswith(f"{owner}-liquidator"):
                    per_venue[owner]["taken_over_by_agents"] += 1
                j = venues.index(owner)
                market_asset = by_symbol[j].get(event.market)
                if market_asset is not None and event.method in ("book", "keeper"):
                    notional = float(Decimal(event.size) * Decimal(event.price))
                    flow[impact_keys[(owner, market_asset)]] += -notional if event.side == "long" else notional
            elif isinstance(event, ev.PositionAutoDeleveraged):
                tally["adl_notional"] += Decimal(event.size) * Decimal(event.price)
            elif isinstance(event, ev.BadDebt):
                tally["bad_debt"] += Decimal(event.amount)
            elif isinstance(event, ev.InsuranceFundDrawn):
                tally["insurance_drawn"] += Decimal(event.amount)
            elif isinstance(event, ev.BackstopDrawn):
                which = ("backstop_drawn" if event.backstop == BACKSTOP else
                         "pool_drawn" if event.backstop == f"{owner}/book" else "vault_drawn")
                tally[which] += Decimal(event.amount)
            elif isinstance(event, ev.LossSocialized):
                tally["socialized_loss"] += Decimal(event.amount)
        if base.feedback:
            for key, signed in flow.items():
                if signed:
                    impact[key].trade(signed)

    conservation = engine.conservation()
    assert conservation.holds, conservation.describe()
    for venue in venues:
        for name, value in exact[venue].items():
            per_venue[venue][name] = float(value)
        row = per_venue[venue]
        row["fund_drawn"] = row["insurance_drawn"] + row["backstop_drawn"]
    total_keys = ("bad_debt", "fund_drawn", "insurance_drawn", "backstop_drawn", "vault_drawn", "pool_drawn",
                  "liquidations", "adl_notional", "socialized_loss", "taken_over_by_agents", "declined_by_liquidators")
    totals = {k: sum(per_venue[v][k] for v in venues) for k in total_keys}
    backstop = None
    if shared:
        state = engine.backstops[BACKSTOP]
        settle = settles[0]
        balance = engine.ledger.accounts[state.account].balance(settle)
        backstop = {
            "capital": float(total),
            "cap_per_venue": float(total * Decimal(repr(cap_fraction))),
            "balance": float(engine.ledger.amount(settle, balance)),
            "drawdown": float(total - engine.ledger.amount(settle, balance)),
            "drawn_by_venue": {v: float(engine.ledger.amount(settle, state.drawn.get(v, 0))) for v in venues},
        }
    return {"mode": "shared" if shared else "isolated", "presets": presets, "venues": per_venue,
            "totals": totals, "backstop": backstop, "conservation": True}


def compare_shared(base: SimConfig, presets: Sequence[str], **options) -> dict:
    """Both modes on the same path and books: ``{"isolated": ..., "shared": ...}``."""
    return {"isolated": run_shared(base, presets, False, **options),
            "shared": run_shared(base, presets, True, **options)}
