"""The options family's command handlers, registered by the engine (``options_handlers``).

New verbs: ``CreateOptionMarket``, ``UpdateVolSurface``, ``ApplyOptionFill``, ``SettleExpiry``, ``Bid``.
The engine's general verbs reach an options venue through thin wrappers: ``CreateVenue`` of a preset
with ``kind = "options"`` (via :func:`create_options_venue`), ``OpenAccount``, ``FundInsurance``,
``Withdraw`` (refused below initial margin or in liquidation) and ``AdvanceTime`` (expiries settle,
auctions and margin calls are reviewed). Every handler validates in full before it changes anything.

Design: docs/options-engine.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from ...core.errors import InvalidInput
from ...core.numbers import non_negative, positive, to_int
from ...policies.options.black76 import checked_float, is_call_kind
from .. import commands as c
from .. import events as e
from . import commands as oc
from . import events as oe
from .liquidation import account_margin, bid, cash_units, cover_deficits, review, screened
from .venue import (
    MAX_CONTRACT_SIZE,
    MAX_PRICE,
    MAX_SIZE_DECIMALS,
    SEPARATOR,
    OptionMarket,
    OptionsVenue,
    Surface,
    options_venue,
    registry,
    with_holding,
)

if TYPE_CHECKING:
    from ...presets.loader import Preset
    from ..engine import Engine

Handler = Callable[[Any], list[e.Event]]
MAX_EXPIRIES = 256
MAX_RATE = 5.0           # 500% a year
MAX_VOL = 50.0           # 5000% a year
MAX_TIMESTAMP = 10**12   # seconds


def _bounded_price(value: object, field_name: str) -> Decimal:
    price = positive(value, field_name)
    if price > MAX_PRICE:
        raise InvalidInput(field_name, f"must be at most {MAX_PRICE}, got {price}")
    return price


def _timestamp(engine: Engine, venue: str, value: object, field_name: str = "timestamp") -> int:
    """A time for ``venue``: never before its own clock (each venue keeps its own, see Engine.time_of)."""
    timestamp = to_int(value, field_name)
    now = engine.time_of(venue)
    if timestamp < now:
        raise InvalidInput(field_name, f"{timestamp} is before {venue}'s time {now}")
    return timestamp


# ------------------------------------------------------------------ venues, markets, accounts


def create_options_venue(engine: Engine, name: str, preset: Preset, overrides: dict[str, Any]) -> list[e.Event]:
    """``CreateVenue`` of a preset with ``kind = "options"``. ``overrides`` may name the settle asset
    (``settle_asset``, default USDC; ``settle_decimals``, default 6; ``settle_kind``, ``linear`` or ``inverse``:
    premiums, margin and payoffs in coin, standard-margin presets only); the rest override the preset."""
    from ...core.domain import Asset

    if not name or SEPARATOR in name:
        raise InvalidInput("venue", f"must be non-empty without {SEPARATOR!r}")
    if name in engine.venues or name in registry(engine) or name in getattr(engine, "lending", {}):
        raise InvalidInput("venue", f"{name!r} already exists")
    overrides = dict(overrides)
    settle = str(overrides.pop("settle_asset", "USDC"))
    decimals = to_int(overrides.pop("settle_decimals", 6), "overrides.settle_decimals")
    kind = str(overrides.pop("settle_kind", "linear"))
    if kind not in ("linear", "inverse"):
        raise InvalidInput("overrides.settle_kind", f"expected linear or inverse, got {kind!r}")
    if not settle or not 0 <= decimals <= 18:
        raise InvalidInput("overrides.settle_decimals", f"must be within [0, 18], got {decimals}")
    known = engine.ledger.assets.get(settle)
    if known is not None and known.decimals != decimals:
        raise InvalidInput("overrides.settle_decimals", f"{settle} is counted in 1e-{known.decimals} already")
    if overrides:
        preset = preset.with_overrides(overrides, name=f"{preset.name}+{name}")
    venue = OptionsVenue(name, preset, settle, inverse=kind == "inverse")  # parses the margin model and the auction
    venue._decimals = decimals
    for account in venue.protocol_accounts:
        if account in engine.ledger.accounts:
            raise InvalidInput("venue", f"protocol account {account!r} already exists")
    # Validated: now change state.
    if known is None:
        engine.ledger.add_asset(Asset(settle, decimals))
    for account in venue.protocol_accounts:
        engine.ledger.open_account(account)
        engine.home_venue[account] = name
        engine.member_venues[account] = {name}
    registry(engine)[name] = venue
    return [e.VenueCreated(name, preset.name, ())]


def _create_market(engine: Engine, command: oc.CreateOptionMarket) -> list[e.Event]:
    venue = options_venue(engine, command.venue)
    symbol = str(command.symbol)
    if not symbol or SEPARATOR in symbol:
        raise InvalidInput("symbol", f"must be non-empty without {SEPARATOR!r}")
    if symbol in venue.markets:
        raise InvalidInput("symbol", f"{symbol!r} is already listed on {venue.name}")
    underlying = str(command.underlying)
    if not underlying or SEPARATOR in underlying:
        raise InvalidInput("underlying", "must be non-empty")
    expiry = to_int(command.expiry, "expiry")
    if expiry <= engine.time_of(venue.name):
        raise InvalidInput("expiry", f"{expiry} is not after the engine's time {engine.time_of(venue.name)}: already expired")
    if expiry > MAX_TIMESTAMP:
        raise InvalidInput("expiry", f"must be at most {MAX_TIMESTAMP}, got {expiry}")
    strike = _bounded_price(command.strike, "strike")
    is_call = is_call_kind(command.option, "option")
    size_decimals = to_int(command.size_decimals, "size_decimals")
    if not 0 <= size_decimals <= MAX_SIZE_DECIMALS:
        raise InvalidInput("size_decimals", f"must be within [0, {MAX_SIZE_DECIMALS}], got {size_decimals}")
    contract_size = positive(command.contract_size, "contract_size")
    if contract_size > MAX_CONTRACT_SIZE:
        raise InvalidInput("contract_size", f"must be at most {MAX_CONTRACT_SIZE}, got {contract_size}")
    venue.check_underlying(underlying, "underlying")
    market = OptionMarket(symbol, underlying, expiry, strike, is_call, size_decimals, contract_size)
    venue.markets[symbol] = market
    return [oe.OptionMarketListed(venue.name, symbol, underlying, expiry, str(strike), market.option)]


def _open_account(engine: Engine, command: c.OpenAccount, base: Handler) -> list[e.Event]:
    if command.venue not in registry(engine):
        return base(command)
    venue = options_venue(engine, command.venue)
    account = str(command.account)
    if not account or SEPARATOR in account:
        raise InvalidInput("account", f"account ids must be non-empty without {SEPARATOR!r}")
    if account in venue.accounts:
        raise InvalidInput("account", f"{account!r} already joined {venue.name}")
    if account not in engine.ledger.accounts:
        engine.ledger.open_account(account)
    venue.accounts.add(account)
    engine.home_venue.setdefault(account, venue.name)
    engine.member_venues.setdefault(account, set()).add(venue.name)
    return [e.AccountOpened(account, venue.name)]


def _fund_insurance(engine: Engine, command: c.FundInsurance, base: Handler) -> list[e.Event]:
    if command.venue is None or command.venue not in registry(engine) or command.backstop is not None:
        return base(command)
    venue = options_venue(engine, command.venue)
    if command.asset != venue.settle:
        raise InvalidInput("asset", f"{venue.name}'s security module holds {venue.settle}")
    units = engine.ledger.deposit(venue.insurance, command.asset, command.amount)
    return [e.Deposited(venue.insurance, command.asset, str(engine.ledger.amount(command.asset, units)))]


def _withdraw(engine: Engine, command: c.Withdraw, base: Handler) -> list[e.Event]:
    for venue in registry(engine).values():
        if command.account not in venue.accounts or command.asset != venue.settle:
            continue
        if command.account in venue.liquidating:
            raise InvalidInput("account", f"withdrawals are blocked while {command.account!r} is being liquidated")
        if venue.holdings(command.account):
            units = engine.ledger.units(command.asset, positive(command.amount, "amount"))
            after = venue.margin(venue.holdings(command.account), cash_units(engine, venue, command.account) - units,
                                 engine.time_of(venue.name))
            if after.im < 0:
                raise InvalidInput("amount", f"would leave {command.account!r} below initial margin on {venue.name} "
                                   f"(surplus {after.im!r})")
    return base(command)


# ------------------------------------------------------------------ surfaces and time


def _update_surface(engine: Engine, command: oc.UpdateVolSurface) -> list[e.Event]:
    venue = options_venue(engine, command.venue)
    underlying = str(command.underlying)
    if not any(market.underlying == underlying for market in venue.markets.values()):
        raise InvalidInput("underlying", f"no option market on {underlying!r} is listed on {venue.name}")
    timestamp = _timestamp(engine, venue.name, command.timestamp)
    spot = _bounded_price(command.spot, "spot")
    spot_confidence = checked_float(command.spot_confidence, "spot_confidence")
    if spot_confidence > 1:
        raise InvalidInput("spot_confidence", f"a confidence is within [0, 1], got {spot_confidence!r}")
    rows = command.expiries
    if not isinstance(rows, (list, tuple)) or len(rows) > MAX_EXPIRIES:
        raise InvalidInput("expiries", f"expected a list of at most {MAX_EXPIRIES} expiry feeds")
    feeds: dict[int, Mapping[str, Any]] = {}
    for index, row in enumerate(rows):
        where = f"expiries[{index}]"
        if not isinstance(row, Mapping):
            raise InvalidInput(where, "expected an object {expiry, forward, rate, svi or vol, ...}")
        expiry = to_int(row.get("expiry"), f"{where}.expiry")
        if expiry <= timestamp:
            raise InvalidInput(f"{where}.expiry", f"{expiry} is not after the update's time {timestamp}")
        if expiry in feeds:
            raise InvalidInput(f"{where}.expiry", f"two feeds for expiry {expiry}")
        unknown = set(row) - {"expiry", "forward", "forward_fixed", "rate", "forward_confidence", "rate_confidence",
                              "vol_confidence", "svi", "vol"}
        if unknown:
            raise InvalidInput(f"{where}.{sorted(unknown)[0]}", "not a field of an expiry feed")
        data = {key: value for key, value in row.items() if key != "expiry"}
        data["expiry_seconds"] = expiry - timestamp
        from ...policies.options.portfolio import parse_feed

        feed = parse_feed(data, where)  # refuses a negative or NaN vol, a malformed slice, ... naming the field
        # Bounds where they enter, so that nothing downstream (the grid, the auction) can fail after a commit.
        if not 0 < feed.forward <= float(MAX_PRICE):
            raise InvalidInput(f"{where}.forward", f"must be within (0, {MAX_PRICE}], got {feed.forward!r}")
        if abs(feed.rate) > MAX_RATE:
            raise InvalidInput(f"{where}.rate", f"must be within ±{MAX_RATE}, got {feed.rate!r}")
        if feed.vol is not None and feed.vol > MAX_VOL:
            raise InvalidInput(f"{where}.vol", f"must be at most {MAX_VOL}, got {feed.vol!r}")
        feeds[expiry] = dict(row)
    previous = venue.surfaces.get(underlying)
    merged = {expiry: feed for expiry, feed in (previous.feeds.items() if previous else ()) if expiry > timestamp}
    merged.update(feeds)
    surface = Surface(spot, spot_confidence, timestamp, merged)
    # Every live position of this underlying must be priceable on the new surface (checked before committing).
    candidate = dict(venue.surfaces)
    venue_surfaces, venue.surfaces = venue.surfaces, candidate
    candidate[underlying] = surface
    try:
        for symbol in sorted({s for held in venue.positions.values() for s in held}):
            market = venue.markets[symbol]
            if market.underlying == underlying and market.expiry > timestamp:
                venue.mark(market, timestamp, "expiries")
    finally:
        venue.surfaces = venue_surfaces
    # Validated: now change state.
    events: list[e.Event] = []
    engine.clocks[venue.name] = timestamp  # this venue's clock only: no feeder moves another venue's time
    events += _settle_due(engine, venue, {underlying: spot})
    venue.surfaces[underlying] = surface
    events.append(oe.VolSurfaceUpdated(venue.name, underlying, str(spot), tuple(sorted(feeds)), timestamp))
    concerned = set(venue.holders(underlying)) | venue.liquidating | venue.margin_called
    events += review(engine, venue, screened(engine, venue, underlying, sorted(concerned)))
    return events


def _advance_time(engine: Engine, command: c.AdvanceTime, base: Handler) -> list[e.Event]:
    events = base(command)
    for name in sorted(registry(engine)):
        venue = registry(engine)[name]
        events += _settle_due(engine, venue, {})
        # Time moves every option's value (theta, the auction's price): each underlying's holders are
        # screened as after a surface update; open margin calls and liquidations are always reviewed.
        concerned = set(venue.liquidating) | venue.margin_called
        for underlying in sorted({market.underlying for market in venue.markets.values()}):
            holders = venue.holders(underlying)
            if holders:
                concerned.update(screened(engine, venue, underlying, holders))
        events += review(engine, venue, sorted(concerned))
    return events


def _settle_due(engine: Engine, venue: OptionsVenue, spots: Mapping[str, Decimal]) -> list[e.Event]:
    """Settle every held expiry before the engine's time at the underlying's index (``spots``
    first, else the latest surface's spot)."""
    due = sorted({(market.underlying, market.expiry) for held in venue.positions.values() for symbol in held
                  if (market := venue.markets[symbol]).expiry < engine.time_of(venue.name)})
    events: list[e.Event] = []
    for underlying, expiry in due:
        price = spots.get(underlying) or venue.surfaces[underlying].spot
        events += settle(engine, venue, underlying, expiry, price)
    return events


def settle(engine: Engine, venue: OptionsVenue, underlying: str, expiry: int, price: Decimal) -> list[e.Event]:
    """Cash-settle one expiry: shorts pay their payoff (rounded up), longs receive theirs (rounded down),
    the rounding residue goes to the security module, the positions are removed; a short who cannot
    pay leaves a deficit covered by the waterfall."""
    symbols = {symbol for symbol, market in venue.markets.items()
               if market.underlying == underlying and market.expiry == expiry}
    rows = [(account, symbol, held.lots) for account in sorted(venue.positions)
            for symbol, held in sorted(venue.positions[account].items()) if symbol in symbols]
    rows.sort(key=lambda row: (row[2] > 0, row[0], row[1]))  # shorts pay in before longs are paid
    events: list[e.Event] = []
    for account, symbol, lots in rows:
        market = venue.markets[symbol]
        payoff = market.payoff_per_unit(price, venue.inverse) * market.underlying_per_lot * lots
        units = venue.units_of(payoff, ROUND_FLOOR)  # against the account either way
        if units < 0:
            engine.ledger.transfer(account, venue.settlement, venue.settle, -units, allow_overdraft=True)
        elif units > 0:
            engine.ledger.transfer(venue.settlement, account, venue.settle, units)
        holdings = dict(venue.holdings(account))
        del holdings[symbol]
        venue.set_holdings(account, holdings)
        events.append(oe.OptionSettled(venue.name, symbol, account, str(market.underlying_per_lot * lots), str(price),
                                       str(venue.amount_of(units))))
    residue = cash_units(engine, venue, venue.settlement)
    if residue:
        engine.ledger.transfer(venue.settlement, venue.insurance, venue.settle, residue)
    events.append(oe.ExpirySettled(venue.name, underlying, expiry, str(price), len(rows)))
    events += cover_deficits(engine, venue, underlying)
    return events


def _settle_expiry(engine: Engine, command: oc.SettleExpiry) -> list[e.Event]:
    venue = options_venue(engine, command.venue)
    underlying = str(command.underlying)
    expiry = to_int(command.expiry, "expiry")
    if not any(m.underlying == underlying and m.expiry == expiry for m in venue.markets.values()):
        raise InvalidInput("expiry", f"no option of {underlying!r} expires at {expiry} on {venue.name}")
    price = _bounded_price(command.price, "price")
    held = any(venue.markets[s].underlying == underlying and venue.markets[s].expiry == expiry
               for h in venue.positions.values() for s in h)
    if not held:
        raise InvalidInput("expiry", f"expiry {expiry} of {underlying} has no open positions (settled already?)")
    if engine.time_of(venue.name) < expiry:
        raise InvalidInput("expiry", f"{expiry} is after the engine's time {engine.time_of(venue.name)}: not expired yet")
    events = settle(engine, venue, underlying, expiry, price)
    events += review(engine, venue, sorted(set(venue.positions) | venue.liquidating | venue.margin_called))
    return events


# ------------------------------------------------------------------ fills


def _apply_fill(engine: Engine, command: oc.ApplyOptionFill) -> list[e.Event]:
    venue = options_venue(engine, command.venue)
    market = venue.market(str(command.symbol))
    now = engine.time_of(venue.name)
    if market.expiry <= now:
        raise InvalidInput("symbol", f"{market.symbol} expired at {market.expiry} (engine time {now})")
    venue.require_account(command.buyer, "buyer")
    venue.require_account(command.seller, "seller")
    if command.buyer == command.seller:
        raise InvalidInput("seller", "buyer and seller are the same account")
    size = positive(command.size, "size")
    lots_exact = size.scaleb(market.size_decimals)
    if lots_exact != lots_exact.to_integral_value() or size > Decimal("1e12"):
        raise InvalidInput("size", f"{size} is not a whole number of lots of 1e-{market.size_decimals} (or too large)")
    lots = int(lots_exact)
    price = non_negative(command.price, "price")
    if price > MAX_PRICE:
        raise InvalidInput("price", f"must be at most {MAX_PRICE}, got {price}")
    premium = venue.units_of(price * size, ROUND_HALF_EVEN)  # one integer both ways
    venue.mark(market, now, "symbol")  # a surface with this expiry must exist
    for role, account in (("buyer", command.buyer), ("seller", command.seller)):
        if account in venue.liquidating:
            raise InvalidInput(role, f"{account!r} is being liquidated")
    buyer_cash = cash_units(engine, venue, command.buyer)
    if buyer_cash < premium:
        raise InvalidInput("buyer", f"{command.buyer!r} holds {venue.amount_of(buyer_cash)} {venue.settle}, the "
                           f"premium is {venue.amount_of(premium)}")
    plans = {}
    for role, account, delta, paid in (("buyer", command.buyer, lots, premium),
                                       ("seller", command.seller, -lots, -premium)):
        holdings = with_holding(venue.holdings(account), market.symbol, delta, paid)
        cash = cash_units(engine, venue, account) - paid
        after = venue.margin(holdings, cash, now)
        if after.im < 0:
            before = account_margin(engine, venue, account)
            if after.im < before.im:  # the fill adds risk: it needs initial margin
                raise InvalidInput(role, f"{account!r} would be below initial margin (surplus {after.im!r}, before "
                                   f"{before.im!r})")
        plans[account] = holdings
    # Validated: now change state.
    if premium:
        engine.ledger.transfer(command.buyer, command.seller, venue.settle, premium)
    for account, holdings in plans.items():
        venue.set_holdings(account, holdings)
    events: list[e.Event] = [oe.OptionFilled(venue.name, market.symbol, command.buyer, command.seller, str(size),
                                             str(price), str(venue.amount_of(premium)))]
    events += review(engine, venue, sorted(plans))
    return events


def _bid(engine: Engine, command: oc.Bid) -> list[e.Event]:
    venue = options_venue(engine, command.venue)
    return bid(engine, venue, str(command.account), str(command.bidder), command.percent)


# ------------------------------------------------------------------ registration


def options_handlers(engine: Engine, general: Mapping[type, Handler]) -> dict[type, Handler]:
    """The options verbs, and the engine's ``general`` verbs wrapped to reach options venues."""
    registry(engine)
    base = dict(general)

    def wrap(cls: type, function: Callable[[Engine, Any, Handler], list[e.Event]]) -> Handler:
        original = base[cls]
        return lambda command: function(engine, command, original)

    return {
        oc.CreateOptionMarket: lambda command: _create_market(engine, command),
        oc.UpdateVolSurface: lambda command: _update_surface(engine, command),
        oc.ApplyOptionFill: lambda command: _apply_fill(engine, command),
        oc.SettleExpiry: lambda command: _settle_expiry(engine, command),
        oc.Bid: lambda command: _bid(engine, command),
        c.OpenAccount: wrap(c.OpenAccount, _open_account),
        c.FundInsurance: wrap(c.FundInsurance, _fund_insurance),
        c.Withdraw: wrap(c.Withdraw, _withdraw),
        c.AdvanceTime: wrap(c.AdvanceTime, _advance_time),
    }


def options_positions_balance(engine: Engine) -> dict[tuple[str, str], int]:
    """Σ lots per (venue, market): option positions are zero-sum, so every value is 0."""
    totals: dict[tuple[str, str], int] = {}
    for name, venue in registry(engine).items():
        for symbol in venue.markets:
            totals[(name, symbol)] = 0
        for held in venue.positions.values():
            for symbol, holding in held.items():
                totals[(name, symbol)] += holding.lots
    return totals
