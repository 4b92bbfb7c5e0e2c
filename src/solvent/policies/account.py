"""Exact margin of an account: equity, initial and maintenance margin, ratios, liquidation prices.

An account's positions fall into margin pools: one cross pool per settle asset (its wallet
balance, haircut collateral and every cross position settled in that asset) and one pool per
isolated position (its isolated margin and that position). Everything here is Decimal and exact;
it is the path the vectorized screen is re-checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from ..core.domain import ContractKind, MarginMode, Side
from ..core.errors import InvalidInput, UnknownName
from ..core.ledger import Account, Ledger, Position
from ..core.numbers import ZERO
from ..core.values import value
from .liquidation_price import LiquidationPriceRule, PositionView, account_liquidation_price
from .margin import MarginModel


@value
class PositionMargin:
    market: str
    side: Side
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    notional: Decimal
    unrealized_pnl: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    margin_mode: MarginMode
    liquidation_price: Decimal | None


@value
class PoolMargin:
    """One margin pool of an account."""

    account: str
    settle: str
    isolated_market: str | None  # None for the cross pool
    collateral: Decimal  # wallet balance + haircut collateral (cross) or isolated margin
    unrealized_pnl: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    positions: tuple[PositionMargin, ...]

    @property
    def equity(self) -> Decimal:
        return self.collateral + self.unrealized_pnl

    @property
    def margin_ratio(self) -> Decimal | None:
        """Maintenance margin over equity (Binance's margin ratio); None when equity <= 0."""
        if self.equity <= 0:
            return None
        return self.maintenance_margin / self.equity

    @property
    def free_collateral(self) -> Decimal:
        return self.equity - self.initial_margin

    @property
    def below_maintenance(self) -> bool:
        return self.maintenance_margin > 0 and self.equity < self.maintenance_margin


ModelLookup = Callable[[str], MarginModel]


def position_entry_price(ledger: Ledger, position: Position) -> Decimal:
    market = ledger.markets[position.market]
    size = market.size_of(abs(position.lots))
    value = ledger.amount(market.settle, position.cost)
    if size == 0 or value == 0:
        return ZERO
    # Linear: value = size·cs·price. Inverse: value = size·cs/price.
    return value / (size * market.contract_size) if market.kind.value == "linear" else size * market.contract_size / value


def _view(ledger: Ledger, position: Position, marks: Mapping[str, Decimal], models: ModelLookup) -> PositionView:
    market = ledger.markets[position.market]
    if position.market not in marks:
        raise InvalidInput(f"marks.{position.market}", "no mark price for a market with an open position")
    return PositionView(
        symbol=position.market,
        side=position.side,  # type: ignore[arg-type]
        size=market.size_of(abs(position.lots)),
        entry_price=position_entry_price(ledger, position),
        mark_price=marks[position.market],
        margin=models(position.market),
        kind=market.kind,
        contract_size=market.contract_size,
    )


def _cross_collateral(ledger: Ledger, account: Account, settle: str, prices: Mapping[str, Decimal],
                      haircuts: Mapping[str, Decimal]) -> Decimal:
    """Wallet balance in the settle asset plus other assets at price × (1 − haircut)."""
    total = ledger.amount(settle, account.balance(settle))
    for asset, units in account.balances.items():
        if asset == settle or units == 0:
            continue
        if asset not in haircuts:
            continue  # not accepted as collateral by this venue
        if asset not in prices:
            raise InvalidInput(f"prices.{asset}", f"no price for collateral asset {asset} (in {settle})")
        total += ledger.amount(asset, units) * prices[asset] * (1 - haircuts[asset])
    return total


def _position_margin(view: PositionView, position: Position, liquidation_price: Decimal | None) -> PositionMargin:
    notional = view.notional_at(view.mark_price)
    leverage = position.leverage or view.margin.max_leverage(notional)
    initial = view.margin.initial_margin(notional, view.size, leverage)
    return PositionMargin(
        market=view.symbol,
        side=view.side,
        size=view.size,
        entry_price=view.entry_price,
        mark_price=view.mark_price,
        notional=notional,
        unrealized_pnl=view.pnl_at(view.mark_price),
        initial_margin=initial,
        maintenance_margin=view.margin.maintenance_margin(notional, view.size),  # view.maintenance_at(mark)
        margin_mode=position.margin_mode,
        liquidation_price=liquidation_price,
    )


def _margin_at_mark(ledger: Ledger, position: Position, marks: Mapping[str, Decimal],
                    models: ModelLookup) -> PositionMargin:
    """:func:`_position_margin` of :func:`_view` without a liquidation price, in the same
    arithmetic (same operations, same order, so the same Decimals) but without the intermediate
    view: the engine values accounts this way after every fill and price move."""
    market = ledger.markets[position.market]
    mark = marks.get(position.market)
    if mark is None:
        raise InvalidInput(f"marks.{position.market}", "no mark price for a market with an open position")
    lots = position.lots
    size = Decimal(lots if lots > 0 else -lots).scaleb(-market.size_decimals)
    value = Decimal(position.cost).scaleb(-ledger.assets[market.settle].decimals)
    quantity = size * market.contract_size
    linear = market.kind is ContractKind.LINEAR
    if size == 0 or value == 0:
        entry = ZERO
    else:
        entry = value / quantity if linear else quantity / value
    model = models(position.market)
    notional = quantity * mark if linear else quantity / mark
    signed = quantity if lots > 0 else -quantity
    pnl = signed * (mark - entry) if linear else signed * (1 / entry - 1 / mark)
    return PositionMargin(
        market=position.market,
        side=Side.LONG if lots > 0 else Side.SHORT,
        size=size,
        entry_price=entry,
        mark_price=mark,
        notional=notional,
        unrealized_pnl=pnl,
        initial_margin=model.initial_margin(notional, size, position.leverage or model.max_leverage(notional)),
        maintenance_margin=model.maintenance_margin(notional, size),
        margin_mode=position.margin_mode,
        liquidation_price=None,
    )


def account_margin(
    ledger: Ledger,
    account_id: str,
    *,
    models: ModelLookup,
    marks: Mapping[str, Decimal],
    prices: Mapping[str, Decimal] | None = None,
    haircuts: Mapping[str, Decimal] | None = None,
    rule: LiquidationPriceRule = LiquidationPriceRule(),
    with_liquidation_prices: bool = True,
    markets: Callable[[str], bool] | None = None,
) -> list[PoolMargin]:
    """Every margin pool of an account at the given marks, with liquidation prices.

    ``models(market)`` gives a market's margin model (``preset.margin_model``); ``prices`` and
    ``haircuts`` value non-settle collateral (assets without a haircut are not collateral).
    ``with_liquidation_prices=False`` skips solving them (the engine's trigger does not need
    them); ``markets`` restricts the positions counted to the markets it accepts (a venue's).
    """
    if account_id not in ledger.accounts:
        raise UnknownName("account", account_id)
    account = ledger.accounts[account_id]
    prices = prices or {}
    haircuts = haircuts or {}
    pools: list[PoolMargin] = []

    cross: dict[str, list[Position]] = {}
    open_positions = [p for p in account.open_positions() if markets is None or markets(p.market)]
    for position in open_positions:
        if position.margin_mode is MarginMode.CROSS:
            cross.setdefault(ledger.markets[position.market].settle, []).append(position)
    # A cross pool for every settle asset the account trades in or holds a balance of.
    for settle in _cross_settles(ledger, account, cross):
        positions = cross.get(settle, [])
        collateral = _cross_collateral(ledger, account, settle, prices, haircuts)
        if with_liquidation_prices:
            views = [_view(ledger, position, marks, models) for position in positions]
            margins = [_position_margin(view, position, account_liquidation_price(
                wallet_balance=collateral, positions=views, target=view.symbol, rule=rule))
                for view, position in zip(views, positions)]
        else:
            margins = [_margin_at_mark(ledger, position, marks, models) for position in positions]
        pools.append(_pool(account_id, settle, None, collateral, margins))

    for position in open_positions:
        if position.margin_mode is not MarginMode.ISOLATED:
            continue
        market = ledger.markets[position.market]
        view = _view(ledger, position, marks, models)
        collateral = ledger.amount(market.settle, position.isolated_margin)
        price = (account_liquidation_price(wallet_balance=collateral, positions=[view], target=view.symbol,
                                           rule=rule, margin_mode=MarginMode.ISOLATED)
                 if with_liquidation_prices else None)
        pools.append(_pool(account_id, market.settle, position.market, collateral, [_position_margin(view, position, price)]))
    return pools



def cross_margins(ledger: Ledger, account_id: str, *, models: ModelLookup, marks: Mapping[str, Decimal]) -> list[PoolMargin]:
    """The cross pools of :func:`account_margin` without liquidation prices, with the wallet
    balance as the only collateral, and without valuing the isolated positions: the same pools,
    built directly. The engine values an account this way after every fill and price move."""
    account = ledger.accounts.get(account_id)
    if account is None:
        raise UnknownName("account", account_id)
    cross: dict[str, list[Position]] = {}
    markets = ledger.markets
    for position in account.positions.values():
        if position.lots and position.margin_mode is MarginMode.CROSS:
            cross.setdefault(markets[position.market].settle, []).append(position)
    return [_pool(account_id, settle, None, ledger.amount(settle, account.balance(settle)),
                  [_margin_at_mark(ledger, position, marks, models) for position in cross.get(settle, ())])
            for settle in _cross_settles(ledger, account, cross)]


def _cross_settles(ledger: Ledger, account: Account, cross: dict[str, list[Position]]) -> list[str]:
    """A cross pool for every settle asset the account trades in or holds a balance of (sorted)."""
    settle_assets = ledger.settle_assets
    settles = list(cross)
    for asset, units in account.balances.items():
        if units and asset not in cross and asset in settle_assets:
            settles.append(asset)
    if len(settles) > 1:
        settles.sort()
    return settles


def _pool(account: str, settle: str, market: str | None, collateral: Decimal, margins: list[PositionMargin]) -> PoolMargin:
    upnl = initial = maintenance = ZERO
    for margin in margins:
        upnl += margin.unrealized_pnl
        initial += margin.initial_margin
        maintenance += margin.maintenance_margin
    return PoolMargin(account=account, settle=settle, isolated_market=market, collateral=collateral,
                      unrealized_pnl=upnl, initial_margin=initial, maintenance_margin=maintenance,
                      positions=tuple(margins))
