"""Per-position ("standard") option margin: a short option needs an out-of-the-money-adjusted share of the
underlying plus its mark; a long has paid its premium and needs nothing more.

Two mechanisms, both pure functions of decimals (design and sources: docs/options-venues.md;
reference ../shared/reference/options.md §4):

- :class:`StandardOptionMargin`, the ``max(a − OTM/U, b)·U + mark`` family with a maintenance floor and a
  position-tier factor. bit.com (linear), OKX (coin- or USD-margined, with its tier ``margin_factor``, contract
  multiplier and sell-to-open order margin), Deribit's standard margin and Aevo are each a set of parameters:

  - short call IM = max(a − OTM/R, b)·MF·N + mark; MM = c·MF·N + mark;
  - short put IM = max(a − OTM/R, b)·MF·N + mark, raised to MM where the venue says so (Gate and OKEx's 2020 rule
    floor it at b·(N + mark) instead of b·N); MM = max(c·N, c·mark)·MF + mark;

  with OTM the out-of-the-money amount against the reference price R (the underlying, or OKX's same-expiry
  forward), N the notional unit of one unit of underlying (its price in a linear, USD-margined book; 1 coin in an
  inverse, coin-margined one) and MF the position-tier factor (1 where a venue has none).
- :func:`derive_expiry_margin`, Derive's standard manager (``StandardManager.sol``): per expiry the better of the
  sum of isolated margins and the max-loss margin (worst settlement payoff over {0, every strike}, with the unpaired
  short calls charged ``unpairedScale·F`` each). Values there are *signed* (a requirement is negative), as Derive
  writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import Enum
from typing import Any

from ...core.domain import Side
from ...core.errors import InvalidInput
from ...core.numbers import non_negative, positive, to_decimal
from .black76 import OptionKind

ZERO = Decimal(0)
ONE = Decimal(1)
# Bounds on what enters: prices, sizes and factors far beyond any market are refused, naming the field.
MAX_PRICE = Decimal("1e15")
MAX_SIZE = Decimal("1e15")
MAX_FACTOR = Decimal(100)


class Settlement(str, Enum):
    """How a book counts money: ``linear`` in the quote (USD, USDT, USDC), ``inverse`` in the underlying coin."""

    LINEAR = "linear"
    INVERSE = "inverse"

    @classmethod
    def parse(cls, value: object, field: str = "settlement") -> Settlement:
        if isinstance(value, Settlement):
            return value
        text = str(value).strip().lower()
        if text in ("linear", "usd", "usdt", "usdc", "usd-margined", "usdt-margined", "quote"):
            return cls.LINEAR
        if text in ("inverse", "coin", "coin-margined", "coin_margined"):
            return cls.INVERSE
        raise InvalidInput(field, f"expected 'linear' or 'inverse', got {value!r}")


def bounded(value: object, field: str, *, limit: Decimal, allow_zero: bool = True) -> Decimal:
    """A non-negative (or positive) decimal no larger than ``limit``."""
    number = non_negative(value, field) if allow_zero else positive(value, field)
    if number > limit:
        raise InvalidInput(field, f"must be at most {limit}, got {number}")
    return number


def _flag(spec: Mapping[str, Any], name: str, default: bool, where: str) -> bool:
    value = spec.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}.{name}", f"expected true or false, got {value!r}")
    return value


def out_of_the_money(kind: OptionKind, strike: Decimal, reference_price: Decimal) -> Decimal:
    """How far an option is out of the money, in price units (0 when in or at the money)."""
    return max(strike - reference_price, ZERO) if kind is OptionKind.CALL else max(reference_price - strike, ZERO)


@dataclass(frozen=True)
class MarginTier:
    """From ``floor`` contracts up (the seller's position plus open sell orders), margins are scaled by ``factor``."""

    floor: Decimal
    factor: Decimal


@dataclass(frozen=True)
class OptionMarginPerUnit:
    """Margins of one unit of underlying (per coin in an inverse book, in quote per unit in a linear one)."""

    initial: Decimal
    maintenance: Decimal


@dataclass(frozen=True)
class OptionPositionMargin:
    per_unit: OptionMarginPerUnit
    per_contract: OptionMarginPerUnit
    initial: Decimal          # whole position
    maintenance: Decimal
    margin_factor: Decimal

    def outputs(self) -> dict[str, Decimal]:
        return {
            "initial_margin_per_unit": self.per_unit.initial,
            "maintenance_margin_per_unit": self.per_unit.maintenance,
            "initial_margin_per_contract": self.per_contract.initial,
            "maintenance_margin_per_contract": self.per_contract.maintenance,
            "initial_margin": self.initial,
            "maintenance_margin": self.maintenance,
            "margin_factor": self.margin_factor,
        }


@dataclass(frozen=True)
class StandardOptionMargin:
    """The ``max(a − OTM/R, b)·N + mark`` family; one instance per venue (and underlying), built from its preset.

    ``im_factor`` is a (0.15 at every venue that publishes it), ``im_floor_factor`` b (0.10), ``mm_factor`` c
    (bit.com and Deribit 0.075, Aevo 0.10, OKX 0.03 BTC / 0.05 ETH).
    """

    im_factor: Decimal
    im_floor_factor: Decimal
    mm_factor: Decimal
    settlement: Settlement = Settlement.LINEAR
    put_initial_at_least_maintenance: bool = True   # bit.com, Deribit, Aevo publish IM put = max(…, MM)
    contract_multiplier: Decimal = ONE               # units of underlying per contract (OKX BTC-USD: 0.1)
    tiers: tuple[MarginTier, ...] = (MarginTier(ZERO, ONE),)
    min_open_order_margin: Decimal = ZERO            # per unit, OKX's floor on a sell-to-open order
    long_margin: str = "none"                        # "none": a long needs nothing beyond its paid premium
    otm_reference: str = "underlying"                # OKX: "forward", the same-expiry forward's mark
    put_floor_includes_mark: bool = False            # Gate, OKEx 2020: a short put's floor is b·(N + mark)

    def __post_init__(self) -> None:
        for name in ("im_factor", "im_floor_factor", "mm_factor", "min_open_order_margin"):
            bounded(getattr(self, name), name, limit=MAX_FACTOR)
        bounded(self.contract_multiplier, "contract_multiplier", limit=MAX_SIZE, allow_zero=False)
        if not self.tiers or self.tiers[0].floor != 0:
            raise InvalidInput("tiers", "the first tier must start at 0 contracts")
        floors = [tier.floor for tier in self.tiers]
        if floors != sorted(set(floors)):
            raise InvalidInput("tiers", "floors must increase strictly")
        factors = [tier.factor for tier in self.tiers]
        if factors != sorted(factors) or any(factor <= 0 for factor in factors):
            raise InvalidInput("tiers", "factors must be positive and never decrease with size")
        if self.long_margin not in ("none", "premium"):
            raise InvalidInput("long_margin", f"expected 'none' or 'premium', got {self.long_margin!r}")
        if self.otm_reference not in ("underlying", "forward"):
            raise InvalidInput("otm_reference", f"expected 'underlying' or 'forward', got {self.otm_reference!r}")

    # ------------------------------------------------------------ construction

    @classmethod
    def from_table(cls, spec: Mapping[str, Any], where: str = "option_margin") -> StandardOptionMargin:
        """From a preset's table (``im_factor``, ``im_floor_factor``, ``mm_factor``, ``settlement``, ``tiers`` …)."""
        tiers_spec = spec.get("tiers")
        tiers: tuple[MarginTier, ...] = (MarginTier(ZERO, ONE),)
        if tiers_spec is not None:
            if not isinstance(tiers_spec, list) or not tiers_spec or not all(
                    isinstance(row, Mapping) for row in tiers_spec):
                raise InvalidInput(f"{where}.tiers", "expected a list of {floor, factor}")
            tiers = tuple(
                MarginTier(bounded(row.get("floor"), f"{where}.tiers[{i}].floor", limit=MAX_SIZE),
                           bounded(row.get("factor"), f"{where}.tiers[{i}].factor", limit=MAX_FACTOR, allow_zero=False))
                for i, row in enumerate(tiers_spec))
        put_rule = _flag(spec, "put_initial_at_least_maintenance", True, where)
        try:
            return cls(
                im_factor=to_decimal(spec.get("im_factor"), f"{where}.im_factor"),
                im_floor_factor=to_decimal(spec.get("im_floor_factor"), f"{where}.im_floor_factor"),
                mm_factor=to_decimal(spec.get("mm_factor"), f"{where}.mm_factor"),
                settlement=Settlement.parse(spec.get("settlement", "linear"), f"{where}.settlement"),
                put_initial_at_least_maintenance=put_rule,
                contract_multiplier=to_decimal(spec.get("contract_multiplier", "1"), f"{where}.contract_multiplier"),
                tiers=tiers,
                min_open_order_margin=to_decimal(spec.get("min_open_order_margin", "0"),
                                                 f"{where}.min_open_order_margin"),
                long_margin=str(spec.get("long_margin", "none")),
                otm_reference=str(spec.get("otm_reference", "underlying")),
                put_floor_includes_mark=_flag(spec, "put_floor_includes_mark", False, where),
            )
        except InvalidInput as error:
            if error.field.startswith(where):
                raise
            raise InvalidInput(f"{where}.{error.field}", error.message) from None

    @classmethod
    def from_preset(cls, spec: Mapping[str, Any], underlying: str | None = None,
                    where: str = "option_margin") -> StandardOptionMargin:
        """A preset's ``[option_margin]`` table, with an underlying's own factors (``underlyings.BTC``) merged in."""
        table = {key: value for key, value in spec.items() if key != "underlyings" and not isinstance(value, Mapping)}
        if underlying is not None:
            own = spec.get("underlyings", {}).get(str(underlying).upper())
            if own is None:
                known = sorted(spec.get("underlyings", {}))
                raise InvalidInput("underlying", f"no margin factors for {underlying!r} (known: {', '.join(known)})")
            table.update(own)
            where = f"{where}.underlyings.{str(underlying).upper()}"
        return cls.from_table(table, where)

    def with_overrides(self, **changes: Any) -> StandardOptionMargin:
        """The same venue with some parameters replaced (a case's own factors, another underlying's)."""
        parsed: dict[str, Any] = {}
        for name, value in changes.items():
            if value is None:
                continue
            if name == "settlement":
                parsed[name] = Settlement.parse(value, name)
            elif name in ("tiers", "put_initial_at_least_maintenance", "put_floor_includes_mark"):
                parsed[name] = value
            elif name in ("long_margin", "otm_reference"):
                parsed[name] = str(value)
            else:
                parsed[name] = to_decimal(value, name)
        return replace(self, **parsed)

    # ------------------------------------------------------------ rules

    def margin_factor(self, contracts: object) -> Decimal:
        """The position-tier factor for a seller holding (or about to hold) ``contracts``."""
        size = bounded(contracts, "contracts", limit=MAX_SIZE)
        factor = self.tiers[0].factor
        for tier in self.tiers:
            if size >= tier.floor:
                factor = tier.factor
        return factor

    def per_unit(self, kind: object, side: object, underlying_price: object, strike: object, mark_price: object, *,
                 reference_price: object | None = None, margin_factor: object | None = None) -> OptionMarginPerUnit:
        """Margins of one unit of underlying.

        ``underlying_price`` (U) sets the notional of a linear book; ``reference_price`` (default U) is what the
        out-of-the-money amount is measured against (OKX: the same-expiry forward). ``mark_price`` is in the book's
        money: quote per unit (linear) or coin per coin (inverse).
        """
        option_kind = OptionKind.parse(kind, "kind")
        position_side = Side.parse(side, "side")
        underlying = bounded(underlying_price, "underlying_price", limit=MAX_PRICE, allow_zero=False)
        reference = underlying if reference_price is None else bounded(
            reference_price, "reference_price", limit=MAX_PRICE, allow_zero=False)
        strike_price = bounded(strike, "strike", limit=MAX_PRICE, allow_zero=False)
        mark = bounded(mark_price, "mark_price", limit=MAX_PRICE)
        factor = self.tiers[0].factor if margin_factor is None else bounded(
            margin_factor, "margin_factor", limit=MAX_FACTOR, allow_zero=False)
        if reference_price is None and self.otm_reference == "forward":
            raise InvalidInput("reference_price", "this venue measures OTM against the same-expiry forward: give it")
        if position_side is Side.LONG:
            premium = mark if self.long_margin == "premium" else ZERO
            return OptionMarginPerUnit(premium, ZERO)
        notional = underlying if self.settlement is Settlement.LINEAR else ONE
        otm_share = out_of_the_money(option_kind, strike_price, reference) / reference
        if option_kind is OptionKind.PUT and self.put_floor_includes_mark:
            floor = self.im_floor_factor * (notional + mark)
            initial = max((self.im_factor - otm_share) * notional, floor) * factor + mark
        else:
            initial = max(self.im_factor - otm_share, self.im_floor_factor) * factor * notional + mark
        if option_kind is OptionKind.CALL:
            maintenance = self.mm_factor * factor * notional + mark
        else:
            maintenance = max(self.mm_factor * notional, self.mm_factor * mark) * factor + mark
            if self.put_initial_at_least_maintenance:
                initial = max(initial, maintenance)
        return OptionMarginPerUnit(initial, maintenance)

    def position(self, kind: object, side: object, size: object, underlying_price: object, strike: object,
                 mark_price: object, *, reference_price: object | None = None,
                 margin_factor: object | None = None, contract_multiplier: object | None = None,
                 tier_contracts: object | None = None) -> OptionPositionMargin:
        """Margins of a position of ``size`` contracts (positive; the side carries the sign).

        The tier factor is ``margin_factor`` when given, else the tier of ``tier_contracts`` (the seller's position
        plus open sell orders; default the position itself).
        """
        contracts = bounded(size, "size", limit=MAX_SIZE)
        multiplier = self.contract_multiplier if contract_multiplier is None else bounded(
            contract_multiplier, "contract_multiplier", limit=MAX_SIZE, allow_zero=False)
        if margin_factor is None:
            margin_factor = self.margin_factor(contracts if tier_contracts is None else tier_contracts)
        unit = self.per_unit(kind, side, underlying_price, strike, mark_price, reference_price=reference_price,
                             margin_factor=margin_factor)
        contract = OptionMarginPerUnit(unit.initial * multiplier, unit.maintenance * multiplier)
        return OptionPositionMargin(unit, contract, contract.initial * contracts, contract.maintenance * contracts,
                                    to_decimal(margin_factor, "margin_factor"))

    def sell_to_open_order_margin(self, position_initial_per_contract: object, order_price: object,
                                  quantity: object, *, fee_per_contract: object = ZERO,
                                  contract_multiplier: object | None = None,
                                  min_open_order_margin: object | None = None,
                                  underlying_price: object | None = None) -> Decimal:
        """OKX: a sell-to-open order reserves max(position IM − premium received + fee, minimum) per contract.

        ``order_price`` and the minimum are per unit of underlying (× the multiplier), the fee per contract; in a
        linear (USD-margined) book the minimum is a share of ``underlying_price`` (OKX: × index price).
        """
        initial = bounded(position_initial_per_contract, "initial_margin_per_contract", limit=MAX_PRICE)
        price = bounded(order_price, "order_price", limit=MAX_PRICE)
        count = bounded(quantity, "order_quantity", limit=MAX_SIZE)
        fee = bounded(fee_per_contract, "fee_per_contract", limit=MAX_PRICE)
        multiplier = self.contract_multiplier if contract_multiplier is None else bounded(
            contract_multiplier, "contract_multiplier", limit=MAX_SIZE, allow_zero=False)
        minimum = self.min_open_order_margin if min_open_order_margin is None else bounded(
            min_open_order_margin, "min_open_order_margin", limit=MAX_FACTOR)
        if self.settlement is Settlement.LINEAR:
            if underlying_price is None:
                raise InvalidInput("underlying_price", "a linear book's minimum order margin is a share of it: give it")
            minimum *= bounded(underlying_price, "underlying_price", limit=MAX_PRICE, allow_zero=False)
        per_contract = max(initial - price * multiplier + fee, minimum * multiplier)
        return per_contract * count

    def buy_to_open_order_margin(self, order_price: object, quantity: object, *,
                                 fee_per_contract: object = ZERO, contract_multiplier: object | None = None) -> Decimal:
        """A buy order reserves its premium and fee: (order price × multiplier + fee) × quantity."""
        price = bounded(order_price, "order_price", limit=MAX_PRICE)
        count = bounded(quantity, "order_quantity", limit=MAX_SIZE)
        fee = bounded(fee_per_contract, "fee_per_contract", limit=MAX_PRICE)
        multiplier = self.contract_multiplier if contract_multiplier is None else bounded(
            contract_multiplier, "contract_multiplier", limit=MAX_SIZE, allow_zero=False)
        return (price * multiplier + fee) * count

    def buy_to_close_order_margin(self, position_initial_per_contract: object, order_price: object,
                                  quantity: object, *, fee_per_contract: object = ZERO,
                                  contract_multiplier: object | None = None) -> Decimal:
        """OKX: a buy-to-close order reserves max(order price − position IM (+ fee), 0) per contract."""
        initial = bounded(position_initial_per_contract, "initial_margin_per_contract", limit=MAX_PRICE)
        price = bounded(order_price, "order_price", limit=MAX_PRICE)
        count = bounded(quantity, "order_quantity", limit=MAX_SIZE)
        fee = bounded(fee_per_contract, "fee_per_contract", limit=MAX_PRICE)
        multiplier = self.contract_multiplier if contract_multiplier is None else bounded(
            contract_multiplier, "contract_multiplier", limit=MAX_SIZE, allow_zero=False)
        return max(price * multiplier - initial + fee, ZERO) * count


# --------------------------------------------------------------------------------------------
# Derive's standard manager
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeriveStandardParams:
    """``OptionMarginParams`` of Derive's ``StandardManager`` (mainnet ETH/BTC: 0.15 / 0.13 / 0.09 / 0.09 / 0.09 /
    1.2 / 1.1 / 1.05, ``scripts/config-mainnet.sol getSRMParams``)."""

    max_spot_req: Decimal
    min_spot_req: Decimal
    mm_call_spot_req: Decimal
    mm_put_spot_req: Decimal
    mm_put_mtm_req: Decimal
    unpaired_im_scale: Decimal
    unpaired_mm_scale: Decimal
    mm_offset_scale: Decimal

    @classmethod
    def from_table(cls, spec: Mapping[str, Any], where: str = "standard_manager") -> DeriveStandardParams:
        values = {}
        for name in cls.__dataclass_fields__:
            values[name] = bounded(spec.get(name), f"{where}.{name}", limit=MAX_FACTOR)
        params = cls(**values)
        for name in ("unpaired_im_scale", "unpaired_mm_scale", "mm_offset_scale"):  # the contract's own bounds
            if not ONE <= getattr(params, name) <= 3:
                raise InvalidInput(f"{where}.{name}", f"must be within [1, 3], got {getattr(params, name)}")
        return params


@dataclass(frozen=True)
class DeriveOption:
    """One option of an expiry: signed ``amount`` (negative = short) and its value per unit (Black-76 on the
    expiry's forward and SVI vol, undiscounted, as the standard manager prices it)."""

    kind: OptionKind
    strike: Decimal
    amount: Decimal
    value: Decimal

    @classmethod
    def parse(cls, row: Mapping[str, Any], where: str) -> DeriveOption:
        return cls(OptionKind.parse(row.get("kind"), f"{where}.kind"),
                   bounded(row.get("strike"), f"{where}.strike", limit=MAX_PRICE, allow_zero=False),
                   _signed(row.get("amount"), f"{where}.amount"),
                   bounded(row.get("value"), f"{where}.value", limit=MAX_PRICE))


def _signed(value: object, field_name: str) -> Decimal:
    number = to_decimal(value, field_name)
    if abs(number) > MAX_SIZE:
        raise InvalidInput(field_name, f"must be within ±{MAX_SIZE}, got {number}")
    return number


@dataclass(frozen=True)
class DeriveExpiryMargin:
    margin: Decimal           # ≤ 0: the requirement, signed as Derive writes it
    mark_to_market: Decimal
    isolated: Decimal         # Σ isolated margins (shorts only)
    max_loss: Decimal         # max-loss margin, with the unpaired calls
    isolated_per_option: tuple[Decimal, ...] = field(default=())


def derive_isolated_margin(option: DeriveOption, spot: object, params: DeriveStandardParams,
                           initial: bool) -> Decimal:
    """An option's isolated margin (negative: cash needed); a long needs none (0)."""
    spot_price = bounded(spot, "spot", limit=MAX_PRICE, allow_zero=False)
    mtm = option.amount * option.value
    if option.amount >= 0:
        return ZERO
    if option.kind is OptionKind.CALL:
        if not initial:
            return mtm + params.mm_call_spot_req * spot_price * option.amount
        otm = max(option.strike - spot_price, ZERO) / spot_price
        return max(params.max_spot_req - otm, params.min_spot_req) * spot_price * option.amount + mtm
    maintenance = min(params.mm_put_spot_req * spot_price * option.amount, params.mm_put_mtm_req * mtm) + mtm
    if not initial:
        return maintenance
    otm = max(spot_price - option.strike, ZERO) / spot_price
    isolated = max(params.max_spot_req - otm, params.min_spot_req) * spot_price * option.amount + mtm
    return min(isolated, maintenance * params.mm_offset_scale)


def settlement_payoff(options: Iterable[DeriveOption], price: Decimal) -> Decimal:
    """What an expiry's options pay at settlement ``price`` (signed: negative is owed)."""
    total = ZERO
    for option in options:
        diff = price - option.strike
        if option.kind is OptionKind.CALL and diff > 0:
            total += diff * option.amount
        elif option.kind is OptionKind.PUT and diff < 0:
            total -= diff * option.amount
    return total


def derive_expiry_margin(options: Sequence[DeriveOption], spot: object, forward: object,
                         params: DeriveStandardParams, initial: bool) -> DeriveExpiryMargin:
    """One expiry under Derive's standard manager: the better (larger) of Σ isolated margins and the max-loss
    margin (worst payoff over settlement at 0 and at every strike, capped at 0, plus ``unpairedScale·F`` per net
    short call, whose loss is unbounded)."""
    forward_price = bounded(forward, "forward", limit=MAX_PRICE, allow_zero=False)
    isolated = tuple(derive_isolated_margin(option, spot, params, initial) for option in options)
    prices = [ZERO] + [option.strike for option in options]
    max_loss = min(min(settlement_payoff(options, price), ZERO) for price in prices)
    net_calls = sum((option.amount for option in options if option.kind is OptionKind.CALL), ZERO)
    if net_calls < 0:
        scale = params.unpaired_im_scale if initial else params.unpaired_mm_scale
        max_loss += scale * forward_price * net_calls
    total_isolated = sum(isolated, ZERO)
    mtm = sum((option.amount * option.value for option in options), ZERO)
    return DeriveExpiryMargin(max(total_isolated, max_loss), mtm, total_isolated, max_loss, isolated)
