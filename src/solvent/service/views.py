"""Read models on the wire: an account and a venue, with ccxt's unified field names.

Decimals travel as strings (never floats); a missing value is ``null``.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Any

from ..core.domain import Side
from ..engine import Engine
from ..engine.lending import lending_account, lending_state
from ..engine.lending import registry as lending_registry
from ..policies.account import account_margin
from ..policies.liquidation_price import LiquidationPriceRule

EVENT_ACCOUNT_FIELDS = ("account", "buyer", "seller", "against", "borrower", "owner", "liquidator", "payer")


def text(value: Any) -> Any:
    """JSON-ready: Decimals as plain strings, enums by value, containers recursively."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Side):
        return value.name.lower()  # ccxt: "long" / "short"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(key): text(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [text(item) for item in value]
    return value


def _balances(engine: Engine, account: str) -> dict[str, str]:
    ledger = engine.ledger
    return {asset: text(ledger.amount(asset, units))
            for asset, units in sorted(ledger.account(account).balances.items()) if units}


def account_view(engine: Engine, account: str) -> dict[str, Any]:
    """Balances, margin pools and positions (with liquidation prices) of an existing account."""
    # Liquidation prices follow the conventions of the venue whose rules liquidate the account
    # (Bybit values maintenance at entry and reserves the fee to close, ...).
    home = engine.venues.get(engine.home_venue.get(account, ""))
    rule = home.preset.liquidation_price_rule if home is not None else LiquidationPriceRule()
    pools = account_margin(engine.ledger, account, models=engine.model, marks=engine.marks, rule=rule,
                           with_liquidation_prices=True)
    positions, pool_views = [], []
    for pool in pools:
        mode = "cross" if pool.isolated_market is None else "isolated"
        pool_views.append({
            "settle": pool.settle, "marginMode": mode,
            "symbol": None if pool.isolated_market is None else pool.isolated_market.split("/", 1)[1],
            "collateral": text(pool.collateral), "equity": text(pool.equity),
            "unrealizedPnl": text(pool.unrealized_pnl), "initialMargin": text(pool.initial_margin),
            "maintenanceMargin": text(pool.maintenance_margin), "marginRatio": text(pool.margin_ratio),
            "freeCollateral": text(pool.free_collateral),
        })
        for position in pool.positions:
            venue, symbol = position.market.split("/", 1)
            positions.append({
                "symbol": symbol, "venue": venue, "settle": pool.settle, "side": text(position.side),
                "contracts": text(position.size), "entryPrice": text(position.entry_price),
                "markPrice": text(position.mark_price), "notional": text(position.notional),
                "unrealizedPnl": text(position.unrealized_pnl), "initialMargin": text(position.initial_margin),
                "maintenanceMargin": text(position.maintenance_margin), "marginMode": text(position.margin_mode),
                "collateral": text(pool.collateral), "liquidationPrice": text(position.liquidation_price),
            })
    lending = {}
    for name, lending_venue in sorted(lending_registry(engine).items()):
        if account in getattr(lending_venue, "accounts", ()):
            lending[name] = text(lending_account(engine, name, account))
    return {"account": account, "venue": engine.home_venue.get(account), "balances": _balances(engine, account),
            "pools": pool_views, "positions": positions, "lending": lending}


def venue_view(engine: Engine, name: str) -> dict[str, Any]:
    """A venue's insurance fund, backstop and marks; a lending venue's state and open auctions."""
    if name in engine.venues:
        venue = engine.venues[name]
        backstop = None
        if venue.backstop is not None:
            state = engine.backstops[venue.backstop]
            backstop = {"name": state.name, "asset": state.asset, "balance": _balances(engine, state.account),
                        "cap": text(engine.ledger.amount(state.asset, state.caps.get(name, 0))),
                        "drawn": text(engine.ledger.amount(state.asset, state.drawn.get(name, 0)))}
        return {"venue": name, "type": "perpetual", "preset": venue.preset.name,
                "markets": {symbol: {"markPrice": text(engine.marks.get(key))}
                            for symbol, key in sorted(venue.markets.items())},
                "insuranceFund": _balances(engine, venue.insurance), "backstop": backstop,
                "accounts": len(venue.accounts), "auctions": []}
    state = text(lending_state(engine, name))
    auctions = state.get("auctions", []) if isinstance(state, dict) else []
    if isinstance(auctions, dict):
        auctions = list(auctions.values())
    return {"venue": name, "type": "lending", "preset": lending_registry(engine)[name].preset.name
            if hasattr(lending_registry(engine)[name], "preset") else None,
            "auctions": auctions, "state": state}


def event_accounts(event: dict[str, Any]) -> set[str]:
    """The accounts an event is about (the fields that name one)."""
    names = {event[field] for field in EVENT_ACCOUNT_FIELDS if isinstance(event.get(field), str)}
    if isinstance(event.get("accounts"), (list, tuple)):
        names |= {name for name in event["accounts"] if isinstance(name, str)}
    return names
