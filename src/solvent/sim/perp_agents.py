"""Liquidators on perpetual venues open to them: capital, latency and a profit gate.

On a venue whose ``[execution]`` has ``method = "liquidator"`` and ``takeover = "open"`` (Drift's
permissionless liquidators), an account in liquidation waits until someone sends ``TakeOver``;
the venue's own account only takes bankrupt ones. A :class:`PerpLiquidator` is such a someone:

- **capital**: a real account on the venue with a deposit; the engine refuses a takeover its
  margin cannot carry (it then tries half the size, up to ``SIZE_HALVINGS`` times);
- **latency**: it acts on an account ``latency_steps`` steps after it first saw it in
  liquidation (an account that leaves liquidation and comes back is new again);
- **profit gate**: it takes a position over only if unwinding it into the market at once pays:
  the takeover discount (the venue's fee, ramping) must cover the slippage of selling (buying
  back) that size into the market model, plus gas, plus ``min_profit`` of the notional. In a
  crash, thin depth makes the slippage exceed the discount and liquidators step back; the
  account then drifts toward bankruptcy, where the venue takes it and its fund pays.

After a takeover it unwinds at once against the simulation's market maker at the price the market
model quotes; that flow moves the price with the step's other forced flow (the cascade's feedback). Everything it does goes through
engine commands; it reads only public state (the accounts in liquidation, the marks, its own
balance). Liquidators act in a rotating order, one step's first is the next step's last.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal

from ..engine import CommandRejected, Engine
from ..engine import commands as c
from ..engine.pipeline import takeover_price
from .market import SqrtImpact

SIZE_HALVINGS = 6
PRICE_QUANTUM = Decimal("0.0001")


def quote(model: SqrtImpact, signed_notional: float) -> float:
    """Average price factor of trading ``signed_notional`` USD (negative: a sell) into the market
    now, without changing it."""
    return copy.copy(model).trade(signed_notional).average_price_factor if signed_notional else 1.0


@dataclass
class PerpLiquidator:
    name: str
    latency_steps: int = 1
    min_profit: float = 0.0  # fraction of the notional taken, after slippage and gas
    gas_usd: float = 0.05  # assumption: a Solana transaction with a priority fee in a busy market
    first_seen: dict[str, int] = field(default_factory=dict)


@dataclass
class StepResult:
    events: list = field(default_factory=list)
    flow: dict[str, float] = field(default_factory=dict)  # asset → signed USD notional traded
    declined: int = 0  # opportunities seen and passed over by the profit gate


def act(engine: Engine, venue: str, maker: str, liquidators: list[PerpLiquidator], step: int,
        markets: dict[str, str], impact: dict[str, SqrtImpact], mids: dict[str, float]) -> StepResult:
    """One step of every liquidator: take over what pays, unwind it at once.

    ``markets``: scenario asset → venue symbol; ``mids``: asset → the market's USD price now.
    """
    state = engine.venues[venue]
    result = StepResult(flow={asset: 0.0 for asset in markets})
    by_key = {state.markets[symbol]: asset for asset, symbol in markets.items()}
    in_liquidation = {account for account, _ in engine.liquidating if engine.home_venue.get(account) == venue}
    waiting = sorted(in_liquidation)
    for liquidator in liquidators:  # forget accounts no longer in liquidation
        liquidator.first_seen = {a: s for a, s in liquidator.first_seen.items() if a in in_liquidation}
    order = liquidators[step % len(liquidators):] + liquidators[:step % len(liquidators)] if liquidators else []
    for liquidator in order:
        for account in waiting:
            seen = liquidator.first_seen.setdefault(account, step)
            if step - seen < liquidator.latency_steps:
                continue
            for position in engine.ledger.accounts[account].open_positions():
                asset = by_key.get(position.market)
                if asset is None or (account, engine.ledger.markets[position.market].settle) not in engine.liquidating:
                    continue
                result.declined += _take(engine, state, maker, liquidator, account, position, asset, impact[asset],
                                         mids[asset], result)
    return result


def _take(engine, state, maker, liquidator, account, position, asset, model, mid, result) -> int:
    """Try one position; returns 1 if the profit gate declined it."""
    market = engine.ledger.markets[position.market]
    if market.kind.value != "linear":
        return 0  # an inverse position's unwind is not modelled here
    symbol = position.market.split("/", 1)[1]
    mark = engine.marks[position.market]
    long = position.lots > 0
    price = takeover_price(engine, state, (account, market.settle), position.side, mark)
    size = market.size_of(abs(position.lots))
    lot = Decimal(1).scaleb(-market.size_decimals)
    for _ in range(SIZE_HALVINGS + 1):
        notional = float(size * market.contract_size) * mid
        # Taking a long over means selling it after; a short, buying it back.
        factor = quote(model, -notional if long else notional)
        unit = mid * factor
        profit = (unit - float(price) if long else float(price) - unit) * float(size * market.contract_size)
        if profit - liquidator.gas_usd < liquidator.min_profit * notional:
            return 1
        try:
            events = engine.apply(c.TakeOver(state.name, liquidator.name, account, symbol, str(size)))
        except CommandRejected:
            size = (size / 2).quantize(lot)
            if size <= 0:
                return 0
            continue
        result.events += events
        taken = sum((Decimal(event.size) for event in events
                     if event.kind == "position_liquidated" and event.counterparty == liquidator.name), Decimal(0))
        if taken > 0:
            _unwind(engine, state, maker, liquidator, symbol, long, taken, market, model, mid, result, asset)
        return 0
    return 0


def _unwind(engine, state, maker, liquidator, symbol, long, size, market, model, mid, result, asset):
    notional = float(size * market.contract_size) * mid
    # The price the market model gives now; the run trades the step's flow into it afterwards.
    price = Decimal(repr(mid * quote(model, -notional if long else notional))).quantize(PRICE_QUANTUM)
    buyer, seller = (maker, liquidator.name) if long else (liquidator.name, maker)
    try:
        result.events += engine.apply(c.ApplyFill(state.name, symbol, buyer, seller, str(size), str(price)))
    except CommandRejected:  # pragma: no cover - a fill between two funded accounts
        return
    result.flow[asset] += -notional if long else notional


def unwind_backstop(engine: Engine, venue: str, maker: str, fraction: float, markets: dict[str, str],
                    impact: dict[str, SqrtImpact], mids: dict[str, float]) -> StepResult:
    """The backstop vault's operator unwinds ``fraction`` of each position the vault took over,
    each step, into the market at the price the market model quotes (Hyperliquid's HLP is a
    market-making vault: it sells what its liquidator strategy inherits rather than holding it;
    reference perp-venues.md §4). The sale is a fill against the simulation's market maker, and its
    flow moves the price with the step's other forced flow."""
    state = engine.venues[venue]
    result = StepResult(flow={asset: 0.0 for asset in markets})
    if fraction <= 0:
        return result
    vault = state.liquidator
    by_key = {state.markets[symbol]: asset for asset, symbol in markets.items()}
    for position in list(engine.ledger.accounts[vault].open_positions()):
        asset = by_key.get(position.market)
        market = engine.ledger.markets[position.market]
        if asset is None or market.kind.value != "linear":
            continue
        lot = Decimal(1).scaleb(-market.size_decimals)
        size = (market.size_of(abs(position.lots)) * Decimal(repr(fraction))).quantize(lot)
        if size <= 0:
            size = market.size_of(abs(position.lots))  # the last lots go at once
        long = position.lots > 0
        symbol = position.market.split("/", 1)[1]
        notional = float(size * market.contract_size) * mids[asset]
        price = Decimal(repr(mids[asset] * quote(impact[asset], -notional if long else notional)))
        buyer, seller = (maker, vault) if long else (vault, maker)
        try:
            result.events += engine.apply(c.ApplyFill(venue, symbol, buyer, seller, str(size),
                                                      str(price.quantize(PRICE_QUANTUM))))
        except CommandRejected:  # pragma: no cover - a fill the engine refuses changes nothing
            continue
        result.flow[asset] += -notional if long else notional
    return result
