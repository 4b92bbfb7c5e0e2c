"""Liquidation and bankruptcy prices.

One solver for every venue. With the other positions of the margin pool held at their marks,
an account's equity and its maintenance requirement are both linear in the target market's
price ``P`` (linear contracts) or in ``1/P`` (inverse contracts) within one margin bracket:

    equity(t)      = A + B·t
    requirement(t) = R0 + R1·t         t = P (linear) or 1/P (inverse)

so the liquidation price is ``t* = (R0 − A) / (B − R1)``. Binance's published formula, Bybit's,
Hyperliquid's and dYdX's are all this equation with their own conventions, which a preset states
as a :class:`LiquidationPriceRule`:

- ``maintenance_at``: ``"price"`` values the maintenance margin at the liquidation price itself
  (Binance, Hyperliquid, dYdX); ``"entry"`` values it at the entry price (Bybit's ``MM = position
  value at entry × MMR``).
- ``fee_to_close``: the requirement also reserves the taker fee to close at the bankruptcy price
  (Bybit's cross formula).
- ``isolated_margin``: an isolated position's collateral is the margin it was given
  (``"balance"``) or the initial margin implied by its leverage plus any extra margin
  (``"leverage"``, Bybit; the margin given is used when no leverage is).
- ``cross_collateral``: a cross position's collateral is the wallet balance (``"balance"``) or,
  Bybit's classic cross, the available balance plus the position's own initial margin at its
  leverage (``"available_plus_initial"``: "total sustainable loss = available balance + IM − MM";
  the IM is held apart from the available balance). Without a leverage the balance alone counts
  (Bybit's inverse cross example states an account balance and no leverage).
  ``cross_collateral_inverse`` sets the same for inverse contracts when it differs: Bybit's
  inverse (coin-margined) cross formula counts the account balance, which already holds the
  position margin, so the leverage plays no part there ("balance").
- ``maintenance_unit``: the venue's formula starts from the maintenance margin at the entry price
  in whole units of this size, rounded down (Hyperliquid: ``liq = price − side·margin_available /
  size / (1 − side/maintenance leverage)`` with ``margin_available = margin − MM`` in USDC's 1e-6;
  every liquidation price its API returns in freqtrade's tests/exchange/test_hyperliquid.py
  matches this to 1e-8). The exact solution gives the same price once the collateral is credited
  with what that rounding took off.

When the notional at the solution falls in another bracket than the one used, the solver retries
with that bracket until the bracket is stable (Binance's own note: "iterate").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from ..core.domain import ContractKind, MarginMode, Side
from ..core.errors import InvalidInput
from ..core.numbers import ONE, ZERO, fraction, non_negative, positive, to_decimal
from ..core.values import value
from .margin import MarginModel, TieredMargin


@dataclass(frozen=True)
class LiquidationPriceRule:
    maintenance_at: str = "price"  # "price" or "entry"
    fee_to_close: bool = False
    isolated_margin: str = "balance"  # "balance" or "leverage"
    cross_collateral: str = "balance"  # "balance" or "available_plus_initial"
    cross_collateral_inverse: str | None = None  # inverse contracts' rule; None: as cross_collateral
    maintenance_unit: Decimal | None = None  # the formula's MM at entry rounded down to this unit; None: exact

    def __post_init__(self) -> None:
        if self.maintenance_at not in ("price", "entry"):
            raise InvalidInput("liquidation_price.maintenance_at", f"expected 'price' or 'entry', got {self.maintenance_at!r}")
        if self.isolated_margin not in ("balance", "leverage"):
            raise InvalidInput("liquidation_price.isolated_margin", f"expected 'balance' or 'leverage', got {self.isolated_margin!r}")
        for name in ("cross_collateral", "cross_collateral_inverse"):
            value = getattr(self, name)
            if value is None and name == "cross_collateral_inverse":
                continue
            if value not in ("balance", "available_plus_initial"):
                raise InvalidInput(f"liquidation_price.{name}",
                                   f"expected 'balance' or 'available_plus_initial', got {value!r}")
        if self.maintenance_unit is not None:
            object.__setattr__(self, "maintenance_unit", positive(self.maintenance_unit,
                                                                  "liquidation_price.maintenance_unit"))

    def cross_collateral_for(self, kind: ContractKind) -> str:
        """The cross-collateral rule for a linear or an inverse contract."""
        if kind is ContractKind.INVERSE and self.cross_collateral_inverse is not None:
            return self.cross_collateral_inverse
        return self.cross_collateral


@value
class Leg:
    """A position on the target market: one leg in one-way mode, up to two in hedge mode.

    ``size`` is in contracts; ``contract_size`` turns it into base units (linear) or quote value
    (inverse). ``margin`` gives the bracket at any notional; use :meth:`TieredMargin.flat` for a
    position whose rate and deduction are given.
    """

    side: Side
    size: Decimal
    entry_price: Decimal
    margin: MarginModel
    contract_size: Decimal = ONE

    @property
    def quantity(self) -> Decimal:
        return self.size * self.contract_size


@value
class PriceSolution:
    price: Decimal | None  # None: no positive price at which the pool reaches the requirement
    iterations: int  # brackets tried


MAX_BRACKET_ITERATIONS = 64


def _coefficients(kind: ContractKind, collateral: Decimal, legs: Sequence[Leg]) -> tuple[Decimal, Decimal]:
    """Equity as A + B·t over the legs on the target market (t = P linear, 1/P inverse)."""
    a = collateral
    b = ZERO
    for leg in legs:
        signed = int(leg.side) * leg.quantity
        if kind is ContractKind.LINEAR:
            a -= signed * leg.entry_price
            b += signed
        else:
            a += signed / leg.entry_price
            b -= signed
    return a, b


MAX_BRACKET_COMBINATIONS = 1024


def _solve_in_brackets(legs: Sequence[Leg], solve) -> tuple[list[Decimal], int] | None:
    """Solutions of every combination of the legs' brackets that fall inside those brackets.

    ``solve(lines)`` gives t for one (rate, deduction) per leg; a leg's notional at t is
    ``quantity·t`` (quote for linear, coin for inverse: the unit of its brackets). None when the
    combinations are too many to enumerate (the caller iterates instead).
    """
    from itertools import product

    tables = [leg.margin.maintenance_table(leg.size) for leg in legs]
    combinations = 1
    for table in tables:
        combinations *= len(table)
    if combinations > MAX_BRACKET_COMBINATIONS:
        return None
    candidates = []
    for combo in product(*(range(len(table)) for table in tables)):
        lines = tuple((tables[i][k][1], tables[i][k][2]) for i, k in enumerate(combo))
        t = solve(lines)
        if t is None or t <= 0:
            continue
        inside = True
        for leg, table, k in zip(legs, tables, combo):
            notional = leg.quantity * t
            upper = table[k + 1][0] if k + 1 < len(table) else None
            if notional < table[k][0] or (upper is not None and notional >= upper):
                inside = False
                break
        if inside:
            candidates.append(t)
    return candidates, combinations


def solve_price(
    kind: ContractKind,
    collateral: Decimal,
    legs: Sequence[Leg],
    *,
    rule: LiquidationPriceRule = LiquidationPriceRule(),
    other_maintenance: Decimal = ZERO,
    other_pnl: Decimal = ZERO,
    reference_price: Decimal | None = None,
    fee_rate: Decimal = ZERO,
    bankruptcy: bool = False,
) -> PriceSolution:
    """Price of the target market at which equity meets the requirement.

    ``collateral``: wallet balance of the pool (cross) or the position's margin (isolated).
    ``other_maintenance`` / ``other_pnl``: maintenance margin and unrealized PnL of the pool's
    other positions at their marks (Binance's TMM1 and UPNL1). ``reference_price``: where the
    starting bracket is looked up (the mark; the first leg's entry price if omitted).
    ``bankruptcy``: solve for a zero maintenance requirement instead.
    """
    if not legs:
        raise InvalidInput("positions", "no position on the target market")
    if rule.maintenance_unit is not None and not bankruptcy:
        collateral += _rounded_off_maintenance(kind, legs, rule.maintenance_unit)
    a, b = _coefficients(kind, collateral + other_pnl - other_maintenance, legs)
    quantity = sum((leg.quantity for leg in legs), ZERO)
    fee = fee_rate * quantity if rule.fee_to_close else ZERO

    def t_of(price: Decimal) -> Decimal:
        return price if kind is ContractKind.LINEAR else ONE / price

    def price_of(t: Decimal | None) -> Decimal | None:
        if t is None or t <= 0:
            return None
        return t if kind is ContractKind.LINEAR else ONE / t

    # Bankruptcy: A + B·t = fee·t (the fee to close at that price, when the venue reserves it).
    t_bankrupt = None if b == fee else (ZERO - a) / (b - fee)
    if bankruptcy:
        return PriceSolution(price_of(t_bankrupt), 0)
    reserve = fee * t_bankrupt if fee and t_bankrupt is not None and t_bankrupt > 0 else ZERO

    def basis(leg: Leg, t: Decimal) -> Decimal:
        return leg.quantity * (t_of(leg.entry_price) if rule.maintenance_at == "entry" else t)

    def solve(lines: tuple[tuple[Decimal, Decimal], ...]) -> Decimal | None:
        r0, r1 = reserve, ZERO
        for leg, (rate, deduction) in zip(legs, lines):
            r0 -= deduction
            if rule.maintenance_at == "entry":
                r0 += leg.quantity * t_of(leg.entry_price) * rate
            else:
                r1 += leg.quantity * rate
        return None if b == r1 else (r0 - a) / (b - r1)

    t_start = t_of(reference_price if reference_price is not None else legs[0].entry_price)
    if rule.maintenance_at == "price":
        # Every bracket combination, each solution kept only if it lies in its own brackets;
        # the trigger is the one closest to the reference price (the mark).
        found = _solve_in_brackets(legs, solve)
        if found is not None:
            candidates, combinations = found
            if candidates:
                best = min(candidates, key=lambda value: abs(value - t_start))
                return PriceSolution(price_of(best), combinations)
    t = t_start
    tried: dict[tuple, Decimal | None] = {}
    for iteration in range(1, MAX_BRACKET_ITERATIONS + 1):
        lines = tuple(leg.margin.maintenance_line(basis(leg, t), leg.size) for leg in legs)
        if lines in tried:
            # The brackets cycle: take the earliest trigger, the solution closest to the start.
            candidates = [value for value in tried.values() if value is not None and value > 0]
            earliest = min(candidates, key=lambda value: abs(value - t_start)) if candidates else None
            return PriceSolution(price_of(earliest), iteration)
        solution = solve(lines)
        tried[lines] = solution
        if solution is None or solution <= 0 or rule.maintenance_at == "entry":
            return PriceSolution(price_of(solution), iteration)
        if tuple(leg.margin.maintenance_line(basis(leg, solution), leg.size) for leg in legs) == lines:
            return PriceSolution(price_of(solution), iteration)
        t = solution
    raise InvalidInput("positions", "liquidation price did not settle on a bracket")  # pragma: no cover


def _rounded_off_maintenance(kind: ContractKind, legs: Sequence[Leg], unit: Decimal) -> Decimal:
    """What rounding the legs' maintenance margin at their entry prices down to ``unit`` takes off."""
    at_entry = sum((leg.margin.maintenance_margin(
        leg.quantity * leg.entry_price if kind is ContractKind.LINEAR else leg.quantity / leg.entry_price, leg.size)
        for leg in legs), ZERO)
    return at_entry - (at_entry / unit).to_integral_value(rounding=ROUND_FLOOR) * unit


# --------------------------------------------------------------------------------------------
# Convenience for one isolated position
# --------------------------------------------------------------------------------------------


def isolated_collateral(
    rule: LiquidationPriceRule,
    kind: ContractKind,
    quantity: Decimal,
    entry_price: Decimal,
    *,
    margin: Decimal | None = None,
    leverage: Decimal | None = None,
    extra_margin: Decimal = ZERO,
) -> Decimal:
    """The collateral of an isolated position under the venue's rule.

    Under the ``"leverage"`` rule the margin is the initial margin of the leverage plus extra
    margin; a position stated with its margin and no leverage keeps the margin given.
    ``extra_margin`` is margin added to the position (positive) or taken out of it (negative:
    margin removed, or funding fees paid out of the position margin, which moves the liquidation
    price toward the entry); the resulting collateral must not be negative.
    """
    if rule.isolated_margin == "leverage" and (leverage is not None or margin is None):
        if leverage is None:
            raise InvalidInput("leverage", "required: this venue's isolated margin is the initial margin of the leverage")
        leverage = positive(leverage, "leverage")
        value = quantity * entry_price if kind is ContractKind.LINEAR else quantity / entry_price
        return _with_extra(value / leverage, extra_margin)
    if margin is None:
        raise InvalidInput("isolated_margin", "required for an isolated position")
    return _with_extra(non_negative(margin, "isolated_margin"), extra_margin)


def _with_extra(margin: Decimal, extra_margin: Decimal) -> Decimal:
    extra = to_decimal(extra_margin, "extra_margin")
    if margin + extra < 0:
        raise InvalidInput("extra_margin", f"takes out more than the position margin {margin}, got {extra}")
    return margin + extra


def position_liquidation_price(
    *,
    kind: ContractKind,
    margin_mode: MarginMode,
    side: Side,
    size: Decimal,
    entry_price: Decimal,
    margin_model: MarginModel,
    rule: LiquidationPriceRule = LiquidationPriceRule(),
    contract_size: Decimal = ONE,
    wallet_balance: Decimal | None = None,
    isolated_margin: Decimal | None = None,
    leverage: Decimal | None = None,
    extra_margin: Decimal = ZERO,
    fee_rate: Decimal = ZERO,
    mark_price: Decimal | None = None,
    bankruptcy: bool = False,
) -> Decimal | None:
    """Liquidation (or bankruptcy) price of a single position under a venue's rule."""
    size = positive(size, "size")
    entry_price = positive(entry_price, "entry_price")
    fee_rate = fraction(fee_rate, "fee_rate")
    mark_price = None if mark_price is None else positive(mark_price, "mark_price")
    leverage = None if leverage is None else positive(leverage, "leverage")
    leg = Leg(side, size, entry_price, margin_model, contract_size)
    if margin_mode is MarginMode.ISOLATED:
        collateral = isolated_collateral(
            rule, kind, leg.quantity, entry_price,
            margin=isolated_margin if isolated_margin is not None else wallet_balance,
            leverage=leverage, extra_margin=extra_margin,
        )
        isolated_rule = replace(rule, fee_to_close=False)
        return solve_price(kind, collateral, [leg], rule=isolated_rule, reference_price=mark_price,
                           bankruptcy=bankruptcy).price
    if wallet_balance is None:
        raise InvalidInput("wallet_balance", "required for a cross position")
    collateral = to_decimal_balance(wallet_balance)
    if rule.cross_collateral_for(kind) == "available_plus_initial" and leverage is not None:
        value = leg.quantity * entry_price if kind is ContractKind.LINEAR else leg.quantity / entry_price
        collateral += value / leverage
    return solve_price(kind, collateral, [leg], rule=rule, reference_price=mark_price,
                       fee_rate=fee_rate, bankruptcy=bankruptcy).price


def to_decimal_balance(value: Decimal) -> Decimal:
    # A cross wallet balance may be negative (realized losses on a multi-asset account).
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidInput("wallet_balance", f"must be a finite decimal, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# A margin pool with several positions
# --------------------------------------------------------------------------------------------


@value
class PositionView:
    """A position as the liquidation-price solver sees it: held at ``mark_price`` unless targeted."""

    symbol: str
    side: Side
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    margin: MarginModel
    kind: ContractKind = ContractKind.LINEAR
    contract_size: Decimal = ONE

    @property
    def quantity(self) -> Decimal:
        return self.size * self.contract_size

    def notional_at(self, price: Decimal) -> Decimal:
        return self.quantity * price if self.kind is ContractKind.LINEAR else self.quantity / price

    def pnl_at(self, price: Decimal) -> Decimal:
        signed = int(self.side) * self.quantity
        if self.kind is ContractKind.LINEAR:
            return signed * (price - self.entry_price)
        return signed * (1 / self.entry_price - 1 / price)

    def maintenance_at(self, price: Decimal) -> Decimal:
        return self.margin.maintenance_margin(self.notional_at(price), self.size)


def account_liquidation_price(
    *,
    wallet_balance: Decimal,
    positions: Sequence[PositionView],
    target: str,
    rule: LiquidationPriceRule = LiquidationPriceRule(),
    margin_mode: MarginMode = MarginMode.CROSS,
    fee_rate: Decimal = ZERO,
    bankruptcy: bool = False,
) -> Decimal | None:
    """Liquidation price of ``target`` in a margin pool, other positions held at their marks.

    Cross: ``wallet_balance`` is the pool's wallet balance and every other position contributes
    its maintenance margin and unrealized PnL at its mark (Binance's TMM1, UPNL1). Isolated: the
    wallet balance is the position's isolated margin and other positions do not count. Both hedge
    legs of the target market move together.
    """
    legs = [view for view in positions if view.symbol == target]
    if not legs:
        raise InvalidInput("target", f"no position on {target!r} among {[view.symbol for view in positions]}")
    if len({view.kind for view in legs}) != 1:
        raise InvalidInput("positions", f"legs of {target} mix linear and inverse contracts")
    others = [] if margin_mode is MarginMode.ISOLATED else [view for view in positions if view.symbol != target]
    other_maintenance = sum((view.maintenance_at(view.mark_price) for view in others), ZERO)
    other_pnl = sum((view.pnl_at(view.mark_price) for view in others), ZERO)
    solution = solve_price(
        legs[0].kind,
        to_decimal_balance(wallet_balance),
        [Leg(view.side, view.size, view.entry_price, view.margin, view.contract_size) for view in legs],
        rule=rule,
        other_maintenance=other_maintenance,
        other_pnl=other_pnl,
        reference_price=legs[0].mark_price,
        fee_rate=fee_rate,
        bankruptcy=bankruptcy,
    )
    return solution.price


def round_price_against_account(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """Round a liquidation price to the venue's tick toward earlier liquidation (up for a long)."""
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if side is Side.LONG else ROUND_FLOOR)
    return steps * tick


__all__ = [
    "Leg",
    "LiquidationPriceRule",
    "PositionView",
    "PriceSolution",
    "TieredMargin",
    "account_liquidation_price",
    "isolated_collateral",
    "position_liquidation_price",
    "round_price_against_account",
    "solve_price",
]
