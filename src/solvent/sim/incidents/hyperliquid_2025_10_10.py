"""Hyperliquid, 10 Oct 2025: the liquidations and the first cross-margin ADL in two years.

Why ADL happened, as the replay models it (docs/incidents.md): accounts gapped through their
maintenance margin faster than the book could take them, so the liquidator vault took them over
(below 2/3 of maintenance margin, at the mark); the vault has finite capital and, like any
account, is deleveraged once its own equity falls below its maintenance margin
(``execution.backstop_deleveraged_below`` in the preset's overrides here): its inherited positions
are closed against the most profitable opposite positions at the previous mark. Liquidation
orders that went to the book filled on books thinned to a tenth of their depth, and a fill
beyond the bankruptcy price that nothing could pay was deleveraged too.

Nothing here names the venue to the engine: the run is the shipped ``hyperliquid`` preset with
the calibration of the facts file as overrides and configuration.
"""

from __future__ import annotations

import math

import numpy as np

from ..run import SimConfig, run
from .facts import IncidentFile

NOTIONAL_SIGMA = 1.3  # the population's log-sd of notional (sim.population default)
MIN_ACCOUNTS = 300


def _config(spec: IncidentFile, seed: int, scale: float, *, vault_factor: float = 1.0,
            extra: tuple[tuple[str, str], ...] = ()) -> SimConfig:
    # ``scale`` shrinks the whole venue in proportion: accounts, open interest, the vault's capital
    # and the depth of the books (a quick run keeps the mechanism, not the dollar figures).
    full = int(spec.number("accounts"))
    accounts = max(MIN_ACCOUNTS, round(full * scale))
    # Traders hold both sides of the open interest: gross notional 2 x OI, spread over the accounts;
    # the median of a log-normal is its mean / exp(sigma^2 / 2).
    mean = 2 * spec.number("open_interest_usd") * scale / accounts
    median = mean / math.exp(NOTIONAL_SIGMA ** 2 / 2)
    weights = spec.calibration["market_weights"]
    markets = [asset for asset in ("BTC", "ETH", "SOL") if asset in weights]
    depth = spec.number("crash_depth_1pct_usd") * scale
    overrides = (("execution.backstop_deleveraged_below", str(spec.number("vault_deleveraged_below"))),
                 ("execution.book_depth", str(int(depth * 100)))) + extra
    return SimConfig(
        scenario=spec.name, preset="hyperliquid", accounts=accounts, seed=seed, insurance_fund="0",
        backstop_capital=str(int(spec.number("vault_usd") * vault_factor * scale)), overrides=overrides,
        liquidators=0, depth_scale=scale, backstop_unwind_per_step=spec.number("vault_unwind_per_step"),
        population=(("median_notional", median), ("notional_sigma", NOTIONAL_SIGMA),
                    ("long_share", spec.number("long_share")),
                    ("market_weights", tuple(float(weights[asset]) for asset in markets))))


def _metrics(result, step_seconds: int, represented: float) -> dict[str, float | None]:
    m = result.metrics
    liquidated_steps = np.flatnonzero(result.liquidated_per_step > 0)
    adl_steps = np.flatnonzero(result.adl_per_step > 0) if result.adl_per_step is not None else np.array([])
    delay = None
    if len(liquidated_steps) and len(adl_steps):
        delay = float((adl_steps[0] - liquidated_steps[0]) * step_seconds)
    adl_total = m.adl_notional
    return {
        "liquidated_notional": m.liquidated_notional,
        "liquidations": float(m.liquidations),
        "liquidations_scaled": m.liquidations * represented / result.config.accounts,
        "adl_notional": adl_total,
        "adl_events": float(m.adl_events),
        "adl_events_scaled": m.adl_events * represented / result.config.accounts,
        "adl_share_of_liquidations": 100 * adl_total / m.liquidated_notional if m.liquidated_notional else None,
        "first_adl_delay_seconds": delay,
        "adl_btc_share": 100 * result.adl_by_asset.get("BTC", 0.0) / adl_total if adl_total else None,
        "vault_share_of_adl": 100 * result.counts.get("adl_against_backstop", 0) / m.adl_events if m.adl_events else None,
        "bad_debt": m.bad_debt,
        "backstop_drawdown": m.backstop_drawdown,
        "adl_excess_over_pro_rata": m.adl_excess_over_pro_rata,
        "adl_excess_over_leverage_draining": result.adl_excess_over_leverage_draining,
    }


def replay(spec: IncidentFile, seed: int, scale: float, counterfactuals: bool):
    assert spec.scenario is not None
    step = spec.scenario.step_seconds
    represented = spec.number("represented_accounts") * scale
    base = _metrics(run(_config(spec, seed, scale), scenario=spec.scenario), step, represented)
    others = []
    if counterfactuals:
        others.append(("vault x4", _metrics(run(_config(spec, seed, scale, vault_factor=4.0),
                                                scenario=spec.scenario), step, represented)))
        others.append(("ADL by leverage draining", _metrics(run(_config(
            spec, seed, scale, extra=(("waterfall.adl_rule", "leverage_draining"),)), scenario=spec.scenario),
            step, represented)))
    notes = ["BTC, ETH and SOL only: the altcoin open interest is carried by SOL (see the facts file)."]
    return base, others, notes
