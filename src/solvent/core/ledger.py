"""The exact ledger: balances, positions and cost bases in integer units.

Every asset declares its unit (10**-decimals); every market declares its lot (10**-size_decimals
contracts). Balances, isolated margins, pools and position cost bases are Python ints in the
settle asset's units, so sums are exact and a conservation check can demand equality, not
closeness.

How value is conserved. A trade moves the same integer notional ``n = size × price`` (rounded
half-even once, for both sides) into the buyer's and the seller's cost basis with opposite signs.
Closing a position realizes ``direction·(n − cost_closed)`` where ``cost_closed`` is the closed
share of the cost basis, rounded against the account (so the account never gains a unit from
rounding; the unit stays in its remaining cost basis). Hence, per settle asset,

    Σ balances + Σ isolated margins + Σ pools − Σ signed cost bases = net deposits

holds exactly after every operation, provided every market's open interest nets to zero, which
trades between accounts guarantee. ``signed cost`` is ``+cost`` for a linear long and for an
inverse short (their value rises with the quantity they hold), ``−cost`` otherwise.

Every operation validates everything first and mutates only once nothing can fail: it applies
completely or raises and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

from . import bounds
from .domain import Asset, ContractKind, MarginMode, Market, PositionMode, Side
from .errors import InsufficientFunds, InvalidInput, UnknownName
from .numbers import ZERO, from_units, non_negative, positive, to_decimal, to_units
from .values import value

PROTOCOL_POOLS = ("insurance_fund", "fee_pool")
# Losses of isolated positions that no layer of a venue's waterfall absorbed: an isolated position
# risks only its own margin, so what it lost beyond it is written off here (a negative balance),
# never charged to the holder's wallet. Created on first use.
BAD_DEBT_POOL = "bad_debt"


@dataclass
class Position:
    """A position on one market. ``lots`` is signed: positive long, negative short.

    ``cost`` is the entry value in settle-asset units (always >= 0). In hedge mode an account may
    hold one LONG and one SHORT position per market, told apart by ``hedge_side``.
    """

    market: str
    lots: int = 0
    cost: int = 0
    margin_mode: MarginMode = MarginMode.CROSS
    hedge_side: Side | None = None
    isolated_margin: int = 0
    leverage: Decimal | None = None

    @property
    def side(self) -> Side | None:
        if self.lots == 0:
            return None
        return Side.LONG if self.lots > 0 else Side.SHORT

    @property
    def key(self) -> tuple[str, Side | None]:
        return (self.market, self.hedge_side)


@dataclass
class Account:
    id: str
    position_mode: PositionMode = PositionMode.ONE_WAY
    balances: dict[str, int] = field(default_factory=dict)
    positions: dict[tuple[str, Side | None], Position] = field(default_factory=dict)

    def balance(self, asset: str) -> int:
        return self.balances.get(asset, 0)

    def open_positions(self) -> list[Position]:
        return [position for position in self.positions.values() if position.lots != 0]



def closed_cost(cost: int, closing: int, held: int, *, up: bool) -> int:
    """The share ``closing / held`` of a cost basis (units), exactly, rounded against the account:
    up when it profits from a higher exit value (``up``), down otherwise."""
    return -(-cost * closing // held) if up else cost * closing // held


def close_part(cost: int, held: int, signed: int, notional: int, linear: bool) -> tuple[int, int, int, int]:
    """What a fill of ``signed`` lots worth ``notional`` units closes of a position of ``held`` lots
    on the other side, bought for ``cost``: (lots closed, cost closed, exit value, realized PnL),
    in integer units; the exit value pro rata to the lots, floored, the cost share by
    :func:`closed_cost`."""
    closing = min(abs(signed), abs(held))
    direction = (1 if linear else -1) * (1 if held > 0 else -1)
    cost_closed = closed_cost(cost, closing, abs(held), up=direction > 0)
    exit_value = notional * closing // abs(signed) if closing != abs(signed) else notional
    return closing, cost_closed, exit_value, direction * (exit_value - cost_closed)


@value
class FillResult:
    """What a fill did to one account, in settle-asset units."""

    account: str
    market: str
    lots: int  # signed change of the position
    notional: int
    realized_pnl: int
    fee: int
    position_lots: int  # after the fill


@dataclass(frozen=True)
class ConservationReport:
    """Per asset: where every unit is, and whether it adds up to what came in."""

    expected: dict[str, int]  # net deposits
    found: dict[str, int]  # balances + isolated margins + pools − signed cost bases
    open_interest_imbalance: dict[str, int]  # market → net lots (must be 0)

    @property
    def holds(self) -> bool:
        return self.expected == self.found and not any(self.open_interest_imbalance.values())

    def describe(self) -> str:
        lines = []
        for asset in sorted(set(self.expected) | set(self.found)):
            expected, found = self.expected.get(asset, 0), self.found.get(asset, 0)
            mark = "ok" if expected == found else f"MISMATCH by {found - expected}"
            lines.append(f"{asset}: expected {expected}, found {found} ({mark})")
        for market, lots in sorted(self.open_interest_imbalance.items()):
            if lots:
                lines.append(f"{market}: open interest does not net to zero ({lots} lots)")
        return "\n".join(lines)


class Ledger:
    """Accounts, positions and protocol pools of one or more venues, in exact integers."""

    def __init__(self) -> None:
        self.assets: dict[str, Asset] = {}
        self.markets: dict[str, Market] = {}
        self.settle_assets: set[str] = set()  # assets some market settles in
        self.accounts: dict[str, Account] = {}
        self.pools: dict[str, dict[str, int]] = {name: {} for name in PROTOCOL_POOLS}
        self.net_deposits: dict[str, int] = {}
        # Accounts whose balances or positions changed since the caller last cleared this set:
        # a columnar copy of the ledger knows exactly which of its rows went stale.
        self.touched: set[str] = set()
        # The same, for the liquidation pipeline: who changed during the command being applied.
        self.changed: set[str] = set()

    # ---------------------------------------------------------------- registry

    def add_asset(self, asset: Asset) -> Asset:
        if asset.symbol in self.assets and self.assets[asset.symbol] != asset:
            raise InvalidInput(f"asset[{asset.symbol}]", "already exists with other decimals")
        self.assets[asset.symbol] = asset
        return asset

    def add_market(self, market: Market) -> Market:
        if market.settle not in self.assets:
            raise UnknownName("asset", market.settle, list(self.assets))
        if market.symbol in self.markets and self.markets[market.symbol] != market:
            raise InvalidInput(f"market[{market.symbol}]", "already exists with another specification")
        self.markets[market.symbol] = market
        self.settle_assets.add(market.settle)
        return market

    def open_account(self, account_id: str, position_mode: PositionMode = PositionMode.ONE_WAY) -> Account:
        if not account_id:
            raise InvalidInput("account", "must not be empty")
        if account_id in self.accounts:
            raise InvalidInput("account", f"{account_id!r} already exists")
        account = Account(account_id, position_mode)
        self.accounts[account_id] = account
        return account

    def asset(self, symbol: str) -> Asset:
        try:
            return self.assets[symbol]
        except KeyError:
            raise UnknownName("asset", symbol, list(self.assets)) from None

    def market(self, symbol: str) -> Market:
        try:
            return self.markets[symbol]
        except KeyError:
            raise UnknownName("market", symbol, list(self.markets)) from None

    def account(self, account_id: str) -> Account:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise UnknownName("account", account_id) from None

    def _touch(self, *accounts: str) -> None:
        self.touched.update(accounts)
        self.changed.update(accounts)

    # ---------------------------------------------------------------- amounts

    def units(self, asset: str, amount: object, field_name: str = "amount") -> int:
        """Exact integer units of an amount; refuses amounts finer than the asset's unit."""
        decimals = self.asset(asset).decimals
        value = bounds.amount(to_decimal(amount, field_name), field_name)
        scaled = value.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidInput(field_name, f"{value} is finer than the unit 1e-{decimals} of {asset}")
        return int(scaled)

    def amount(self, asset: str, units: int) -> Decimal:
        return from_units(units, self.asset(asset).decimals)

    # ---------------------------------------------------------------- cash

    def deposit(self, account_id: str, asset: str, amount: object) -> int:
        units = self.units(asset, positive(amount, "amount"))
        account = self.account(account_id)
        account.balances[asset] = account.balance(asset) + units
        self.net_deposits[asset] = self.net_deposits.get(asset, 0) + units
        self._touch(account_id)
        return units

    def withdraw(self, account_id: str, asset: str, amount: object) -> int:
        """Take an amount out. Margin rules (free collateral) are the engine's; this checks funds."""
        units = self.units(asset, positive(amount, "amount"))
        account = self.account(account_id)
        if account.balance(asset) < units:
            raise InsufficientFunds(
                f"account {account_id!r} holds {self.amount(asset, account.balance(asset))} {asset}, "
                f"cannot withdraw {self.amount(asset, units)}"
            )
        account.balances[asset] = account.balance(asset) - units
        self.net_deposits[asset] = self.net_deposits.get(asset, 0) - units
        self._touch(account_id)
        return units

    def move_isolated_margin(self, account_id: str, market: str, amount: object, hedge_side: Side | None = None) -> int:
        """Move margin into (positive) or out of (negative) an isolated position."""
        account = self.account(account_id)
        spec = self.market(market)
        units = self.units(spec.settle, amount)
        if (hedge_side is None) != (account.position_mode is PositionMode.ONE_WAY):
            raise InvalidInput("hedge_side", "required in hedge mode (long or short leg)" if hedge_side is None
                               else "only accounts in hedge mode have legs")
        position = account.positions.get((market, hedge_side))
        if position is None and units > 0:  # fund an isolated position before its first fill
            position = Position(market, margin_mode=MarginMode.ISOLATED, hedge_side=hedge_side)
        if position is None or position.margin_mode is not MarginMode.ISOLATED:
            raise InvalidInput("market", f"account {account_id!r} has no isolated position on {market}")
        if units > 0 and account.balance(spec.settle) < units:
            raise InsufficientFunds(f"account {account_id!r} lacks {self.amount(spec.settle, units)} {spec.settle}")
        if units < 0 and position.isolated_margin < -units:
            raise InsufficientFunds(f"isolated margin of {market} holds only {self.amount(spec.settle, position.isolated_margin)}")
        account.balances[spec.settle] = account.balance(spec.settle) - units
        position.isolated_margin += units
        account.positions[(market, hedge_side)] = position
        self._touch(account_id)
        return units

    def _isolated_slot(self, account_id: str, market: str, hedge_side: Side | None) -> tuple[Account, Position, str]:
        account = self.account(account_id)
        position = account.positions.get((market, hedge_side))
        if position is None or position.margin_mode is not MarginMode.ISOLATED:
            raise InvalidInput("market", f"account {account_id!r} has no isolated position on {market}")
        return account, position, self.markets[market].settle

    def pay_into_isolated(self, source: str, account_id: str, market: str, hedge_side: Side | None, units: int, *,
                          allow_overdraft: bool = False) -> None:
        """Move units from ``source``'s balance into an isolated position's margin (the waterfall
        covering its deficit). ``allow_overdraft`` as in :meth:`transfer`."""
        if units < 0:
            raise InvalidInput("units", f"must not be negative, got {units}")
        _, position, settle = self._isolated_slot(account_id, market, hedge_side)
        giver = self.account(source)
        if not allow_overdraft and giver.balance(settle) < units:
            raise InsufficientFunds(f"account {source!r} holds {self.amount(settle, giver.balance(settle))} {settle}, "
                                    f"cannot pay {self.amount(settle, units)}")
        giver.balances[settle] = giver.balance(settle) - units
        position.isolated_margin += units
        self._touch(source, account_id)

    def pay_from_isolated(self, account_id: str, market: str, hedge_side: Side | None, target: str, units: int, *,
                          pool: str | None = None) -> None:
        """Move units out of an isolated position's margin, which must hold them, to ``target``'s
        balance (the holder's own wallet included), or into the protocol ``pool`` if given."""
        if units < 0:
            raise InvalidInput("units", f"must not be negative, got {units}")
        _, position, settle = self._isolated_slot(account_id, market, hedge_side)
        if position.isolated_margin < units:
            raise InsufficientFunds(f"isolated margin of {market} holds only "
                                    f"{self.amount(settle, position.isolated_margin)} {settle}, "
                                    f"cannot pay {self.amount(settle, units)}")
        if pool is None:
            taker = self.account(target)
            taker.balances[settle] = taker.balance(settle) + units
            self._touch(target)
        else:
            held = self.pools.setdefault(pool, {})
            held[settle] = held.get(settle, 0) + units
        position.isolated_margin -= units
        self._touch(account_id)

    def write_off_isolated(self, account_id: str, market: str, hedge_side: Side | None) -> int:
        """Write off the negative margin of a closed isolated position to the bad-debt pool;
        returns the units written off (0 if the margin is not negative)."""
        _, position, settle = self._isolated_slot(account_id, market, hedge_side)
        if position.lots:
            raise InvalidInput("market", f"the isolated position on {market} is still open")
        deficit = -position.isolated_margin
        if deficit <= 0:
            return 0
        held = self.pools.setdefault(BAD_DEBT_POOL, {})
        held[settle] = held.get(settle, 0) - deficit
        position.isolated_margin = 0
        self._touch(account_id)
        return deficit

    def transfer(self, source: str, target: str, asset: str, units: int, *, allow_overdraft: bool = False) -> None:
        """Move units of an asset between two accounts (fees, insurance payouts, socialized losses).

        The source must hold them unless ``allow_overdraft`` (a loss charged to an account that
        the waterfall will cover or report as bad debt).
        """
        if units < 0:
            raise InvalidInput("units", f"must not be negative, got {units}")
        self.asset(asset)
        giver, taker = self.account(source), self.account(target)
        if not allow_overdraft and giver.balance(asset) < units:
            raise InsufficientFunds(f"account {source!r} holds {self.amount(asset, giver.balance(asset))} {asset}, "
                                    f"cannot pay {self.amount(asset, units)}")
        giver.balances[asset] = giver.balance(asset) - units
        taker.balances[asset] = taker.balance(asset) + units
        self._touch(source, target)

    def pay_to_pool(self, source: str, pool: str, asset: str, units: int) -> None:
        """Move units an account holds into a protocol pool (a fee share to the protocol)."""
        if units < 0:
            raise InvalidInput("units", f"must not be negative, got {units}")
        giver = self.account(source)
        if giver.balance(asset) < units:
            raise InsufficientFunds(f"account {source!r} cannot pay {self.amount(asset, units)} {asset}")
        giver.balances[asset] = giver.balance(asset) - units
        target = self.pools.setdefault(pool, {})
        target[asset] = target.get(asset, 0) + units
        self._touch(source)

    # ---------------------------------------------------------------- trading

    def fill_notional(self, market: Market, lots: int, price: Decimal) -> int:
        """Units of settle asset a fill of ``lots`` at ``price`` is worth, the same for both sides."""
        size = market.size_of(abs(lots))
        return to_units(market.notional(size, price), self.asset(market.settle).decimals, rounding=ROUND_HALF_EVEN)

    def apply_trade(
        self,
        buyer: str,
        seller: str,
        market: str,
        size: object,
        price: object,
        *,
        buyer_fee: object = ZERO,
        seller_fee: object = ZERO,
        buyer_mode: MarginMode = MarginMode.CROSS,
        seller_mode: MarginMode = MarginMode.CROSS,
        buyer_hedge_side: Side | None = None,
        seller_hedge_side: Side | None = None,
        fee_pool: str = "fee_pool",
        hold_isolated: str | None = None,
    ) -> tuple[FillResult, FillResult]:
        """A match between two accounts, applied to both or to neither; fees go to ``fee_pool``.

        ``hold_isolated``: an account whose isolated position this trade may close and whose
        isolated margin then stays with the closed position instead of returning to its wallet
        (a liquidation settles that margin itself: fee, remainder, or a deficit to cover).
        """
        if buyer == seller:
            raise InvalidInput("seller", "an account cannot trade with itself")
        bought = self._plan_fill(buyer, market, Side.LONG, size, price, buyer_fee, buyer_mode, buyer_hedge_side,
                                 "buyer")
        # The same size and price for the seller: its plan reuses the lots and the notional.
        sold = self._plan_fill(seller, market, Side.SHORT, size, price, seller_fee, seller_mode, seller_hedge_side,
                               "seller", matched=(abs(bought[3]), bought[4]))
        if hold_isolated is None:
            return self._commit(bought, fee_pool), self._commit(sold, fee_pool)
        return (self._commit(bought, fee_pool, hold=buyer == hold_isolated),
                self._commit(sold, fee_pool, hold=seller == hold_isolated))

    def apply_fill(
        self,
        account_id: str,
        market: str,
        side: Side,
        size: object,
        price: object,
        *,
        fee: object = ZERO,
        margin_mode: MarginMode = MarginMode.CROSS,
        hedge_side: Side | None = None,
    ) -> FillResult:
        """One side of a fill whose counterparty is outside this ledger (or applied separately)."""
        return self._commit(self._plan_fill(account_id, market, side, size, price, fee, margin_mode, hedge_side, "fill"))

    def open_funded_positions(self, market_symbol: str, counterparty: str,
                              rows: list[tuple[str, object, object, object]]) -> list[tuple[int, int, int]]:
        """New accounts in bulk, each funded and holding a position taken from ``counterparty``.

        ``rows`` are ``(account, deposit, signed size, price)``: the deposit is in the market's
        settle asset, a positive size is a long. The result is exactly that of opening each
        account, depositing and applying a fee-less fill against the counterparty, row by row;
        everything is validated before anything changes. Returns each row's (deposit units,
        signed lots, cost units).

        This is how a simulator builds a book of 100,000 traders, so the loop below does what
        :meth:`deposit` and :meth:`_commit` would, inline, in the same integer arithmetic.
        """
        market = self.market(market_symbol)
        other = self.account(counterparty)
        if other.position_mode is not PositionMode.ONE_WAY:
            raise InvalidInput("counterparty", "must be in one-way mode")
        key = (market.symbol, None)
        held = other.positions.get(key)
        if held is not None and held.margin_mode is not MarginMode.CROSS and (held.lots or held.isolated_margin):
            raise InvalidInput("counterparty", f"its position on {market.symbol} is {held.margin_mode}")
        planned = []
        seen: set[str] = set()
        accounts = self.accounts
        for index, (account_id, deposit, size, price) in enumerate(rows):
            if not account_id or account_id in accounts or account_id in seen:
                raise InvalidInput(f"rows[{index}].account", f"{account_id!r} is empty, exists or is repeated")
            seen.add(account_id)
            try:
                planned.append(self._funded_row(market, deposit, size, price))
            except InvalidInput as error:  # the row's field, named within the rows
                raise InvalidInput(f"rows[{index}].{error.field}", error.message) from None
        settle = market.settle
        one_way = PositionMode.ONE_WAY
        # The counterparty's side of every row, as _commit would apply it (no fee, cross).
        if held is None or held.lots == 0:
            held = Position(market.symbol, isolated_margin=held.isolated_margin if held else 0)
            other.positions[key] = held
        lots, cost = held.lots, held.cost
        linear = market.kind is ContractKind.LINEAR
        realized_total = 0
        emptied = False
        for (account_id, _, _, _), (units, signed, notional) in zip(rows, planned):
            account = Account(account_id, one_way, {settle: units}, {key: Position(market.symbol, signed, notional)})
            accounts[account_id] = account
            taken = -signed
            if lots != 0 and (lots > 0) != (taken > 0):
                closing, cost_closed, exit_value, realized = close_part(cost, lots, taken, notional, linear)
                realized_total += realized
                cost -= cost_closed
                lots += closing if taken > 0 else -closing
                emptied = emptied or lots == 0
                if closing != abs(taken):
                    lots += (abs(taken) - closing) * (1 if taken > 0 else -1)
                    cost += notional - exit_value
            else:
                lots += taken
                cost += notional
        held.lots, held.cost = lots, cost
        if emptied:  # _commit opens a fresh position after one that went flat: no leverage kept
            held.leverage = None
        other.balances[settle] = other.balance(settle) + realized_total
        self.net_deposits[settle] = self.net_deposits.get(settle, 0) + sum(units for units, _, _ in planned)
        names = [row[0] for row in rows]
        self._touch(counterparty, *names)
        return planned

    def _funded_row(self, market: Market, deposit: object, size: object, price: object) -> tuple[int, int, int]:
        """(deposit units, signed lots, notional units) of one row of :meth:`open_funded_positions`:
        what :meth:`units`, :meth:`Market.lots` and :meth:`fill_notional` give, validated the same."""
        decimals = self.assets[market.settle].decimals
        amount = bounds.amount(positive(deposit, "deposit"), "deposit")
        scaled = amount.scaleb(decimals)
        units = int(scaled)
        if units != scaled:
            raise InvalidInput("deposit", f"{amount} is finer than the unit 1e-{decimals} of {market.settle}")
        signed_size = bounds.size(to_decimal(size, "size"), "size")
        if signed_size == 0:
            raise InvalidInput("size", "must not be zero")
        scaled = signed_size.scaleb(market.size_decimals)
        lots = int(scaled)
        if lots != scaled:
            raise InvalidInput("size", f"{abs(signed_size)} is finer than the lot size 1e-{market.size_decimals} "
                               f"of {market.symbol}")
        checked = bounds.price(positive(price, "price"), "price")
        value = market.notional(Decimal(abs(lots)).scaleb(-market.size_decimals), checked)
        return units, lots, int(value.scaleb(decimals).to_integral_value(rounding=ROUND_HALF_EVEN))

    def _plan_fill(self, account_id, market_symbol, side, size, price, fee, margin_mode, hedge_side, where,
                   matched: tuple[int, int] | None = None):
        """Validate one side of a fill; ``matched``: the (lots, notional) the other side already
        validated for the same size and price."""
        account = self.account(account_id)
        market = self.market(market_symbol)
        fee_amount = bounds.amount(non_negative(fee, f"{where}.fee"), f"{where}.fee")
        if matched is None:
            size = bounds.size(positive(size, f"{where}.size"), f"{where}.size")
            price = bounds.price(positive(price, f"{where}.price"), f"{where}.price")
            lots = market.lots(size, f"{where}.size")
        else:
            lots = matched[0]
        if account.position_mode is PositionMode.HEDGE:
            if hedge_side is None:
                raise InvalidInput(f"{where}.hedge_side", "required for an account in hedge mode (long or short leg)")
        elif hedge_side is not None:
            raise InvalidInput(f"{where}.hedge_side", "only accounts in hedge mode have legs")
        key = (market.symbol, hedge_side)
        current = account.positions.get(key)
        if current is not None and (current.lots != 0 or current.isolated_margin) and current.margin_mode is not margin_mode:
            raise InvalidInput(f"{where}.margin_mode", f"the position on {market.symbol} is {current.margin_mode}")
        signed = int(side) * lots
        if hedge_side is not None:
            held = current.lots if current else 0
            new_lots = held + signed
            if new_lots != 0 and (new_lots > 0) != (hedge_side is Side.LONG):
                raise InvalidInput(f"{where}.size", f"would turn the {hedge_side} leg of {market.symbol} to the other side")
        notional = self.fill_notional(market, lots, price) if matched is None else matched[1]
        fee_units = to_units(fee_amount, self.asset(market.settle).decimals, rounding=ROUND_CEILING) if fee_amount else 0
        return (account, market, key, signed, notional, fee_units, margin_mode, hedge_side)

    def isolated_margin_after(self, account_id: str, market_symbol: str, side: Side, size: object, price: object,
                              fee: object = "0", hedge_side: Side | None = None) -> int | None:
        """The isolated margin (units) the account's isolated position on the market would hold
        after one side of a fill, by :meth:`_commit`'s arithmetic (realized PnL and the fee into
        the margin, before any margin moved in for an opening part); None when the account holds
        no open isolated position there. Validates nothing the fill itself will not."""
        account = self.account(account_id)
        market = self.market(market_symbol)
        position = account.positions.get((market.symbol, hedge_side))
        if position is None or position.margin_mode is not MarginMode.ISOLATED or not position.lots:
            return None
        lots = market.lots(positive(size, "size"))
        signed = int(side) * lots
        notional = self.fill_notional(market, lots, positive(price, "price"))
        fee_amount = bounds.amount(non_negative(fee, "fee"), "fee")
        fee_units = to_units(fee_amount, self.asset(market.settle).decimals, rounding=ROUND_CEILING) if fee_amount else 0
        held = position.lots
        realized = 0
        if (held > 0) != (signed > 0):  # the same closing arithmetic as _commit
            realized = close_part(position.cost, held, signed, notional, market.kind is ContractKind.LINEAR)[3]
        return position.isolated_margin + realized - fee_units

    def _commit(self, plan, fee_pool: str = "fee_pool", hold: bool = False) -> FillResult:
        account, market, key, signed, notional, fee_units, margin_mode, hedge_side = plan
        self._touch(account.id)
        position = account.positions.get(key)
        if position is None or position.lots == 0:
            position = Position(market.symbol, margin_mode=margin_mode, hedge_side=hedge_side,
                                isolated_margin=position.isolated_margin if position else 0)
            account.positions[key] = position
        realized = 0
        held = position.lots
        if held != 0 and (held > 0) != (signed > 0):
            closing, cost_closed, exit_value, realized = close_part(position.cost, held, signed, notional,
                                                                    market.kind is ContractKind.LINEAR)
            position.cost -= cost_closed
            position.lots += closing * (1 if signed > 0 else -1)
            opening_notional = notional - exit_value
            opening = abs(signed) - closing
        else:
            opening_notional = notional
            opening = abs(signed)
        if opening:
            position.lots += opening * (1 if signed > 0 else -1)
            position.cost += opening_notional
        settle = market.settle
        if position.margin_mode is MarginMode.ISOLATED:
            position.isolated_margin += realized - fee_units
            if position.lots == 0 and not hold:  # what is left of the isolated margin returns to the wallet
                account.balances[settle] = account.balance(settle) + position.isolated_margin
                position.isolated_margin = 0
        else:
            account.balances[settle] = account.balance(settle) + realized - fee_units
        if fee_units:
            pool = self.pools.setdefault(fee_pool, {})
            pool[settle] = pool.get(settle, 0) + fee_units
        return FillResult(account.id, market.symbol, signed, notional, realized, fee_units, position.lots)

    # ---------------------------------------------------------------- conservation

    def signed_cost(self, position: Position) -> int:
        market = self.markets[position.market]
        direction = 1 if market.kind is ContractKind.LINEAR else -1
        return direction * (1 if position.lots > 0 else -1) * position.cost if position.lots else 0

    def conservation(self) -> ConservationReport:
        found: dict[str, int] = {}
        imbalance: dict[str, int] = {symbol: 0 for symbol in self.markets}

        def add(asset: str, units: int) -> None:
            found[asset] = found.get(asset, 0) + units

        for account in self.accounts.values():
            for asset, units in account.balances.items():
                add(asset, units)
            for position in account.positions.values():
                settle = self.markets[position.market].settle
                add(settle, position.isolated_margin - self.signed_cost(position))
                imbalance[position.market] += position.lots
        for pool in self.pools.values():
            for asset, units in pool.items():
                add(asset, units)
        expected = {asset: units for asset, units in self.net_deposits.items() if units or found.get(asset)}
        found = {asset: units for asset, units in found.items() if units or asset in expected}
        for asset in expected:
            found.setdefault(asset, 0)
        return ConservationReport(expected, found, imbalance)
