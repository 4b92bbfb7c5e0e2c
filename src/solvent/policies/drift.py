"""Drift v2 perp liquidations, in Drift's own fixed-point integer arithmetic.

Reference: ../shared/reference/perp-venues.md §6.3–6.5, restating
``programs/drift/src/math/liquidation.rs`` and ``controller/liquidation.rs`` of
drift-labs/protocol-v2. Every value is converted to the integer Drift stores, and each division
truncates where Drift's does, so results match the program to the unit:

=====================  ==========  =============================================
quantity               precision   stored as
=====================  ==========  =============================================
quote amounts          1e6         ``QUOTE_PRECISION``
prices                 1e6         ``PRICE_PRECISION``
base amounts           1e9         ``BASE_PRECISION`` (and AMM reserve precision)
margin ratios          1e4         ``MARGIN_PRECISION``
liquidation/IF fees    1e6         ``LIQUIDATION_FEE_PRECISION``
funding deltas         1e9         ``FUNDING_RATE_PRECISION`` (quote 1e6 × 1e3)
=====================  ==========  =============================================

A value finer than its precision is refused rather than silently truncated: Drift could not hold it.

Rules:

- trigger with hysteresis (:func:`in_liquidation`): enter when collateral < maintenance; once in,
  leave only when collateral >= maintenance + buffer_ratio × liability;
- liquidator fee (:func:`liquidator_fee`): the base fee during a grace period after the user's
  last activity (1,500 slots); from then on base + elapsed slots × 0.01 bp (counted from the last
  activity), capped at the market's max fee, ``min(3 × base, maintenance ratio)``;
- insurance-fund fee (:func:`if_fee`): ``min(max_if_fee, 95% × (MR − liq_fee − shortage/(base·price)))``,
  never negative;
- base to transfer to cure a shortage (:func:`base_to_cover_shortage`):
  ``shortage / (price·quote_price·(MR − liq_fee) − price·if_fee)``, floored to 1e-9;
- socialized loss (:func:`socialized_loss_funding_delta`): what the insurance fund and the fee pool
  could not cover is charged to every open position through cumulative funding,
  ``loss / (|base_long| + |base_short|)`` per base, rounded up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..core.errors import InvalidInput
from ..core.numbers import ceil_div, non_negative, to_decimal, to_int

QUOTE_PRECISION = 10**6
PRICE_PRECISION = 10**6
BASE_PRECISION = 10**9
MARGIN_PRECISION = 10**4
LIQUIDATION_FEE_PRECISION = 10**6
FUNDING_RATE_PRECISION = 10**9
LIQUIDATION_FEE_TO_MARGIN_PRECISION_RATIO = LIQUIDATION_FEE_PRECISION // MARGIN_PRECISION  # 100
PRICE_TIMES_BASE_TO_QUOTE = PRICE_PRECISION * BASE_PRECISION // QUOTE_PRECISION  # 1e9
FUNDING_TO_QUOTE_RATIO = FUNDING_RATE_PRECISION // QUOTE_PRECISION  # 1e3



def to_fixed(value: object, precision: int, field: str, *, signed: bool = False) -> int:
    """``value`` as Drift's integer at ``precision``; refuses anything finer than one unit."""
    amount = to_decimal(value, field) if signed else non_negative(value, field)
    scaled = amount * precision
    if scaled != scaled.to_integral_value():
        raise InvalidInput(field, f"{amount} is finer than Drift's precision 1/{precision}")
    return int(scaled)


def from_fixed(units: int, precision: int) -> Decimal:
    exponent = len(str(precision)) - 1  # precisions are powers of ten
    return Decimal(units).scaleb(-exponent)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftLiquidationConfig:
    """Drift's liquidation parameters (defaults: the program's constants, see drift_v2.toml).

    ``margin_buffer_ratio`` in MARGIN_PRECISION units (200 = 2%); ``fee_increase_per_slot`` in
    LIQUIDATION_FEE_PRECISION units (1 = 0.01 bp); ``insurance_max`` in quote units (1e-6 USDC)
    per contract tier.
    """

    margin_buffer_ratio: int = MARGIN_PRECISION // 50
    fee_grace_slots: int = 1_500
    fee_increase_per_slot: int = 1
    max_fee_multiplier: int = 3
    # The implied IF fee is scaled by 95% (19/20 on chain) so that the fee cannot bring a user's
    # deposits down to exactly their negative PnL and into bankruptcy (Drift's own comment).
    if_fee_scale: Fraction = Fraction(19, 20)
    insurance_max: Mapping[str, int] = field(default_factory=lambda: {
        "A": 100_000_000 * QUOTE_PRECISION,
        "B": 1_000_000 * QUOTE_PRECISION,
        "C": 100_000 * QUOTE_PRECISION,
        "Speculative": 0,
        "HighlySpeculative": 0,
        "Isolated": 0,
    })

    def __post_init__(self) -> None:
        for name in ("margin_buffer_ratio", "fee_grace_slots", "fee_increase_per_slot", "max_fee_multiplier"):
            if getattr(self, name) < 0:
                raise InvalidInput(name, "must not be negative")
        if not 0 <= self.if_fee_scale <= 1:
            raise InvalidInput("if_fee_share_of_implied", "must be within 0..1")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "liquidation") -> DriftLiquidationConfig:
        """Build from a ``[liquidation]`` table (decimal strings; slots and multipliers as ints)."""
        defaults = cls()
        caps = table.get("insurance_max")
        insurance_max = dict(defaults.insurance_max)
        if caps is not None:
            if not isinstance(caps, Mapping):
                raise InvalidInput(f"{where}.insurance_max", "expected a table of contract tier -> USDC")
            insurance_max = {str(tier): to_fixed(amount, QUOTE_PRECISION, f"{where}.insurance_max.{tier}")
                             for tier, amount in caps.items()}
        return cls(
            margin_buffer_ratio=to_fixed(table.get("margin_buffer_ratio", "0.02"), MARGIN_PRECISION,
                                         f"{where}.margin_buffer_ratio"),
            fee_grace_slots=to_int(table.get("fee_grace_slots", defaults.fee_grace_slots), f"{where}.fee_grace_slots"),
            fee_increase_per_slot=to_fixed(table.get("fee_increase_per_slot", "0.000001"), LIQUIDATION_FEE_PRECISION,
                                           f"{where}.fee_increase_per_slot"),
            max_fee_multiplier=to_int(table.get("max_fee_multiplier", defaults.max_fee_multiplier),
                                      f"{where}.max_fee_multiplier"),
            if_fee_scale=Fraction(non_negative(table.get("if_fee_share_of_implied", "0.95"),
                                               f"{where}.if_fee_share_of_implied")),
            insurance_max=insurance_max,
        )


DEFAULT_CONFIG = DriftLiquidationConfig()


# --------------------------------------------------------------------------------------------
# Trigger with hysteresis
# --------------------------------------------------------------------------------------------


def margin_requirement_plus_buffer(maintenance: object, buffer_ratio: object, liability: object) -> Decimal:
    """Maintenance requirement plus ``buffer_ratio × liability`` (the exit line)."""
    return (non_negative(maintenance, "maintenance")
            + non_negative(buffer_ratio, "buffer_ratio") * non_negative(liability, "liability"))


def in_liquidation(collateral: object, maintenance: object, buffer_ratio: object, liability: object,
                   currently_in: bool) -> bool:
    """Whether the account is (still) being liquidated after this check.

    Not yet in liquidation: enters when ``collateral < maintenance``. Already in: stays until
    ``collateral >= maintenance + buffer_ratio × liability``, so an account hovering at the line
    is not flipped in and out every slot.
    """
    total = to_decimal(collateral, "collateral")
    if not isinstance(currently_in, bool):
        raise InvalidInput("currently_in", f"expected a boolean, got {currently_in!r}")
    if currently_in:
        return total < margin_requirement_plus_buffer(maintenance, buffer_ratio, liability)
    non_negative(buffer_ratio, "buffer_ratio")
    non_negative(liability, "liability")
    return total < non_negative(maintenance, "maintenance")


def margin_shortage(collateral: object, maintenance: object, buffer_ratio: object, liability: object) -> Decimal:
    """How far collateral is below maintenance + buffer (0 when it is not)."""
    shortfall = margin_requirement_plus_buffer(maintenance, buffer_ratio, liability) - to_decimal(collateral, "collateral")
    return max(shortfall, Decimal(0))


# --------------------------------------------------------------------------------------------
# Fees
# --------------------------------------------------------------------------------------------


def max_liquidator_fee(liquidator_fee: object, maintenance_ratio: object, *,
                       config: DriftLiquidationConfig = DEFAULT_CONFIG) -> Decimal:
    """The market's cap on the ramped fee: ``min(multiplier × liquidator_fee, maintenance ratio)``."""
    fee = to_fixed(liquidator_fee, LIQUIDATION_FEE_PRECISION, "liquidator_fee")
    ratio = to_fixed(maintenance_ratio, MARGIN_PRECISION, "maintenance_ratio")
    cap = min(fee * config.max_fee_multiplier, ratio * LIQUIDATION_FEE_TO_MARGIN_PRECISION_RATIO)
    return from_fixed(cap, LIQUIDATION_FEE_PRECISION)


def liquidator_fee(base_fee: object, max_fee: object, last_active_slot: object, current_slot: object, *,
                   config: DriftLiquidationConfig = DEFAULT_CONFIG) -> Decimal:
    """The liquidator fee after ``current_slot − last_active_slot`` slots of user inactivity.

    Below the grace period: the base fee. From the grace boundary on: base + elapsed × increase
    (elapsed counted from the last activity, so the fee jumps by grace × increase at the
    boundary), capped at ``max_fee``.
    """
    base = to_fixed(base_fee, LIQUIDATION_FEE_PRECISION, "base_fee")
    cap = to_fixed(max_fee, LIQUIDATION_FEE_PRECISION, "max_fee")
    last = to_int(last_active_slot, "last_active_slot")
    now = to_int(current_slot, "current_slot")
    if last < 0:
        raise InvalidInput("last_active_slot", "must not be negative")
    if now < last:
        raise InvalidInput("current_slot", f"{now} is before last_active_slot {last}")
    elapsed = now - last
    if elapsed < config.fee_grace_slots:
        return from_fixed(base, LIQUIDATION_FEE_PRECISION)
    ramped = base + elapsed * config.fee_increase_per_slot
    return from_fixed(min(ramped, cap), LIQUIDATION_FEE_PRECISION)


def if_fee(margin_shortage: object, base: object, oracle_price: object, margin_ratio: object,
           liquidator_fee: object, max_if_fee: object, quote_price: object = "1", *,
           config: DriftLiquidationConfig = DEFAULT_CONFIG) -> Decimal:
    """The insurance-fund fee charged on a perp liquidation.

    ``min(max_if_fee, 19/20 × (MR − liq_fee − shortage/(base·price)))``, each subtraction stopping
    at zero; 0 when a price or the base is zero or MR <= liq_fee.
    """
    shortage = to_fixed(margin_shortage, QUOTE_PRECISION, "margin_shortage")
    base_units = to_fixed(base, BASE_PRECISION, "base")
    price = to_fixed(oracle_price, PRICE_PRECISION, "oracle_price")
    quote = to_fixed(quote_price, PRICE_PRECISION, "quote_price")
    ratio = to_fixed(margin_ratio, MARGIN_PRECISION, "margin_ratio") * LIQUIDATION_FEE_TO_MARGIN_PRECISION_RATIO
    fee = to_fixed(liquidator_fee, LIQUIDATION_FEE_PRECISION, "liquidator_fee")
    cap = to_fixed(max_if_fee, LIQUIDATION_FEE_PRECISION, "max_if_fee")
    if price == 0 or quote == 0 or base_units == 0 or ratio <= fee:
        return Decimal(0)
    quote_adjusted_price = price * quote // PRICE_PRECISION
    if quote_adjusted_price == 0:
        return Decimal(0)
    # shortage / (base · price) as a fee rate: two truncating divisions, in Drift's order.
    shortage_rate = shortage * BASE_PRECISION // base_units * PRICE_PRECISION // quote_adjusted_price
    implied = max(ratio - fee, 0)
    implied = max(implied - shortage_rate, 0)
    implied = implied * config.if_fee_scale.numerator // config.if_fee_scale.denominator
    return from_fixed(min(cap, implied), LIQUIDATION_FEE_PRECISION)


def base_to_cover_shortage(margin_shortage: object, margin_ratio: object, liquidator_fee: object,
                           if_fee: object, oracle_price: object, quote_price: object = "1") -> Decimal | None:
    """Base units a liquidator must take over to cure ``margin_shortage`` (floored to 1e-9).

    ``shortage / (price·quote_price·(MR − liq_fee) − price·if_fee)``. Taking one base unit frees its
    margin (MR) but costs the fees paid out of the user's collateral. ``None`` when no finite
    amount cures it (a zero price, or fees at or above the margin ratio): the whole position may
    be taken.
    """
    shortage = to_fixed(margin_shortage, QUOTE_PRECISION, "margin_shortage")
    ratio = to_fixed(margin_ratio, MARGIN_PRECISION, "margin_ratio") * LIQUIDATION_FEE_TO_MARGIN_PRECISION_RATIO
    fee = to_fixed(liquidator_fee, LIQUIDATION_FEE_PRECISION, "liquidator_fee")
    insurance_fee = to_fixed(if_fee, LIQUIDATION_FEE_PRECISION, "if_fee")
    price = to_fixed(oracle_price, PRICE_PRECISION, "oracle_price")
    quote = to_fixed(quote_price, PRICE_PRECISION, "quote_price")
    if price == 0 or ratio <= fee:
        return None
    freed_per_base = price * quote // PRICE_PRECISION * (ratio - fee) // LIQUIDATION_FEE_PRECISION
    paid_per_base = price * insurance_fee // LIQUIDATION_FEE_PRECISION
    denominator = freed_per_base - paid_per_base
    if denominator <= 0:
        return None
    return from_fixed(shortage * PRICE_TIMES_BASE_TO_QUOTE // denominator, BASE_PRECISION)


# --------------------------------------------------------------------------------------------
# Loss waterfall: insurance fund, then socialized through funding
# --------------------------------------------------------------------------------------------


def insurance_fund_payout(loss: object, vault_balance: object, contract_tier: str, already_paid: object = "0", *,
                          config: DriftLiquidationConfig = DEFAULT_CONFIG) -> Decimal:
    """What the insurance fund pays toward a bankrupt user's perp loss (quote, 1e-6 units).

    ``min(loss, vault − 1 unit, tier cap − already paid to this market)``, never negative; the
    rest goes to the market's fee pool and then to :func:`socialized_loss_funding_delta`.
    """
    amount = to_fixed(loss, QUOTE_PRECISION, "loss")
    vault = to_fixed(vault_balance, QUOTE_PRECISION, "vault_balance")
    paid = to_fixed(already_paid, QUOTE_PRECISION, "already_paid")
    if contract_tier not in config.insurance_max:
        raise InvalidInput("contract_tier", f"unknown tier {contract_tier!r} (known: {', '.join(config.insurance_max)})")
    room = max(config.insurance_max[contract_tier] - paid, 0)
    payout = max(min(amount, vault - 1, room), 0)
    return from_fixed(payout, QUOTE_PRECISION)


def socialized_loss_funding_delta(loss: object, base_long: object, base_short: object) -> Decimal:
    """Cumulative-funding change per base unit that socializes ``loss`` over all open positions.

    ``|loss| / (|base_long| + |base_short|)`` quote per base, rounded up at 1e-6 (Drift divides
    with ceiling, then scales to FUNDING_RATE_PRECISION); added to longs' and subtracted from
    shorts' cumulative funding. Drift keeps the short base (and the loss) negative; either sign is
    accepted here and taken as a magnitude.
    """
    amount = abs(to_fixed(loss, QUOTE_PRECISION, "loss", signed=True))
    longs = abs(to_fixed(base_long, BASE_PRECISION, "base_long", signed=True))
    shorts = abs(to_fixed(base_short, BASE_PRECISION, "base_short", signed=True))
    total = longs + shorts
    if total == 0:
        raise InvalidInput("base_long", "no open base on either side: the loss cannot be socialized")
    per_base = ceil_div(amount * BASE_PRECISION, total) * FUNDING_TO_QUOTE_RATIO
    return from_fixed(per_base, FUNDING_RATE_PRECISION)


__all__ = [
    "DriftLiquidationConfig",
    "base_to_cover_shortage",
    "if_fee",
    "in_liquidation",
    "insurance_fund_payout",
    "liquidator_fee",
    "margin_requirement_plus_buffer",
    "margin_shortage",
    "max_liquidator_fee",
    "socialized_loss_funding_delta",
]
