"""Deribit's portfolio margin (S:PM / X:PM) for the futures and perpetuals of one currency, as far as published.

What ``private/pme/simulate`` returns, reproduced from its ``model_params`` (reference
../shared/reference/options.md §5; design and the inferred rules: docs/options-venues.md):

- **standard vector**: 2·``buckets_count`` + 1 evenly spaced price moves over ±``price_range`` (9 for 4 buckets),
  each under ``vol_scenarios_count`` vol scenarios (up, unchanged, down): 27 PnLs. An inverse (coin-settled)
  future of q coins gains q·s/(1 + s) in coin for a move s; a linear one q·mark·s in its settlement currency.
  Futures do not depend on vol, so their three vol scenarios are equal;
- **extended vector**: the moves of the extended table (−66 % … +500 %), vol up only; a future's move is clamped to
  the ±range edge [inferred from the captures: both show the standard extremes];
- **aggregated vectors**: per scenario the sum over positions; a gain offsets losses only by ``pnl_offset`` (and at
  most ``max_offsetable_pnl``), a loss counts in full. The aggregated extended vector takes the dampened option tails
  only, so it is 0 for futures [inferred: both captures show zeros];
- **worst case** = the largest loss of both aggregated vectors; **roll shock** = Σ|q|·max(annualised_move_risk·τ,
  min_annualised_move), τ the years to expiry (0 for a perpetual) [inferred: both captures]; **delta shock** above
  ``delta_total_liq_shock_threshold`` (USD) [unconfirmed formula, 0 below the threshold as in both captures];
- **risk-matrix margin** = worst case rounded to 1e-9 + roll shock + delta shock; **IM** = that plus the open-order,
  MMP and spot margins, rounded to 1e-9; **MM** = ``mm_factor`` × risk-matrix margin.

Options are not valued here: they need the Black-76 pricer (``policies/options/black76.py``); a position of kind
``option`` is refused, naming the field, until that pricer is wired in (docs/options-venues.md says how).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import Enum
from typing import Any

from ...core.errors import InvalidInput
from ...core.numbers import non_negative, to_decimal, to_int
from .standard import Settlement

ZERO = Decimal(0)
ONE = Decimal(1)
NANO = Decimal("1e-9")
MAX_PRICE = Decimal("1e15")
MAX_SIZE = Decimal("1e15")
EXTENDED_MOVES = tuple(Decimal(text) for text in ("-0.66", "-0.33", "0.5", "1", "2", "3", "4", "5"))
VOL_SCENARIOS = ("up", "unchanged", "down")


class InstrumentKind(str, Enum):
    PERPETUAL = "perpetual"
    FUTURE = "future"

    @classmethod
    def parse(cls, value: object, field: str) -> InstrumentKind:
        text = str(value).strip().lower()
        if text in ("perpetual", "perp", "swap"):
            return cls.PERPETUAL
        if text in ("future", "futures"):
            return cls.FUTURE
        if text in ("option", "call", "put"):
            raise InvalidInput(field, "options in Deribit's portfolio margin need the Black-76 pricer, "
                                      "not wired into this model yet (futures and perpetuals only)")
        raise InvalidInput(field, f"expected 'perpetual' or 'future', got {value!r}")


@dataclass(frozen=True)
class DeribitPmParams:
    """The ``model_params`` of ``private/pme/simulate`` for one currency and its pair (names as the API's)."""

    price_range: Decimal
    buckets_count: int
    vol_scenarios_count: int
    mm_factor: Decimal
    min_annualised_move: Decimal
    annualised_move_risk: Decimal
    pnl_offset: Decimal
    max_offsetable_pnl: Decimal
    max_delta_shock: Decimal
    delta_total_liq_shock_threshold: Decimal
    extended_moves: tuple[Decimal, ...] = EXTENDED_MOVES

    def __post_init__(self) -> None:
        if not ZERO < self.price_range < ONE:
            raise InvalidInput("price_range", f"must be within (0, 1), got {self.price_range}")
        if not 1 <= self.buckets_count <= 50:
            raise InvalidInput("buckets_count", f"must be within [1, 50], got {self.buckets_count}")
        if self.vol_scenarios_count not in (1, 3):
            raise InvalidInput("vol_scenarios_count", f"expected 1 or 3, got {self.vol_scenarios_count}")
        for name in ("mm_factor", "pnl_offset", "max_delta_shock"):
            if not ZERO <= getattr(self, name) <= ONE:
                raise InvalidInput(name, f"must be within [0, 1], got {getattr(self, name)}")
        for name in ("min_annualised_move", "annualised_move_risk"):
            if not ZERO <= getattr(self, name) <= ONE:
                raise InvalidInput(name, f"must be within [0, 1], got {getattr(self, name)}")
        if any(move <= -1 or move > 100 for move in self.extended_moves):
            raise InvalidInput("extended_moves", "each move must be within (−1, 100]")

    @classmethod
    def from_table(cls, spec: Mapping[str, Any], where: str = "params") -> DeribitPmParams:
        def number(name: str, default: object | None = None) -> Decimal:
            value = spec.get(name, default)
            if value is None:
                raise InvalidInput(f"{where}.{name}", "missing")
            return to_decimal(value, f"{where}.{name}")

        moves = spec.get("extended_moves")
        extended = EXTENDED_MOVES if moves is None else tuple(
            to_decimal(move, f"{where}.extended_moves[{i}]") for i, move in enumerate(moves))
        try:
            return cls(
                price_range=number("price_range"),
                buckets_count=to_int(spec.get("buckets_count", 4), f"{where}.buckets_count"),
                vol_scenarios_count=to_int(spec.get("vol_scenarios_count", 3), f"{where}.vol_scenarios_count"),
                mm_factor=number("mm_factor", "0.8"),
                min_annualised_move=number("min_annualised_move"),
                annualised_move_risk=number("annualised_move_risk", "0"),
                pnl_offset=number("pnl_offset", "0"),
                max_offsetable_pnl=non_negative(spec.get("max_offsetable_pnl", "0"), f"{where}.max_offsetable_pnl"),
                max_delta_shock=number("max_delta_shock", "0"),
                delta_total_liq_shock_threshold=non_negative(spec.get("delta_total_liq_shock_threshold", "0"),
                                                             f"{where}.delta_total_liq_shock_threshold"),
                extended_moves=extended,
            )
        except InvalidInput as error:
            if error.field.startswith(where):
                raise
            raise InvalidInput(f"{where}.{error.field}", error.message) from None

    @property
    def price_moves(self) -> tuple[Decimal, ...]:
        """The standard table's moves, from −range to +range, 0 included."""
        n = self.buckets_count
        return tuple(self.price_range * i / n for i in range(-n, n + 1))


@dataclass(frozen=True)
class FuturePosition:
    """A perpetual or dated future of one currency; ``size_currency`` signed in coin (negative = short)."""

    instrument: str
    kind: InstrumentKind
    settlement: Settlement
    size_currency: Decimal
    mark_price: Decimal
    years_to_expiry: Decimal = ZERO   # 0 for a perpetual

    @classmethod
    def parse(cls, row: Mapping[str, Any], where: str) -> FuturePosition:
        kind = InstrumentKind.parse(row.get("kind", "perpetual"), f"{where}.kind")
        size = to_decimal(row.get("size_currency"), f"{where}.size_currency")
        if abs(size) > MAX_SIZE:
            raise InvalidInput(f"{where}.size_currency", f"must be within ±{MAX_SIZE}, got {size}")
        mark = to_decimal(row.get("mark_price"), f"{where}.mark_price")
        if not ZERO < mark <= MAX_PRICE:
            raise InvalidInput(f"{where}.mark_price", f"must be within (0, {MAX_PRICE}], got {mark}")
        years = ZERO
        if row.get("years_to_expiry") is not None:
            years = non_negative(row["years_to_expiry"], f"{where}.years_to_expiry")
        elif row.get("expiry_seconds") is not None:
            years = non_negative(row["expiry_seconds"], f"{where}.expiry_seconds") / (365 * 86400)
        if years > 100:
            raise InvalidInput(f"{where}.years_to_expiry", f"must be at most 100 years, got {years}")
        if kind is InstrumentKind.PERPETUAL and years:
            raise InvalidInput(f"{where}.years_to_expiry", "a perpetual has no expiry")
        return cls(str(row.get("instrument", "")), kind,
                   Settlement.parse(row.get("settlement", "inverse"), f"{where}.settlement"), size, mark, years)

    def pnl(self, move: Decimal) -> Decimal:
        """PnL for a price move ``move`` (0.04 = +4 %), in the settlement currency."""
        if self.settlement is Settlement.INVERSE:
            return self.size_currency * move / (ONE + move)
        return self.size_currency * self.mark_price * move

    def roll_unit(self) -> Decimal:
        """What one coin of this position is worth in its settlement currency (the roll and delta shocks' unit)."""
        return ONE if self.settlement is Settlement.INVERSE else self.mark_price


@dataclass(frozen=True)
class DeribitPmResult:
    position_vectors: dict[str, tuple[tuple[Decimal, ...], tuple[Decimal, ...]]]
    standard_vector: tuple[Decimal, ...]
    extended_vector: tuple[Decimal, ...]
    aggregated_standard_vector: tuple[Decimal, ...]
    aggregated_extended_vector: tuple[Decimal, ...]
    worst_case: Decimal
    worst_case_bucket: dict[str, Any]
    roll_shock: Decimal
    delta_shock: Decimal
    risk_matrix_margin: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal

    def outputs(self) -> dict[str, Any]:
        return {
            "standard_vector": list(self.standard_vector),
            "extended_vector": list(self.extended_vector),
            "aggregated_standard_vector": list(self.aggregated_standard_vector),
            "aggregated_extended_vector": list(self.aggregated_extended_vector),
            "worst_case": self.worst_case,
            "worst_case_bucket": self.worst_case_bucket,
            "roll_shock": self.roll_shock,
            "delta_shock": self.delta_shock,
            "risk_matrix_margin": self.risk_matrix_margin,
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
        }


def _aggregate(pnl: Decimal, params: DeribitPmParams) -> Decimal:
    if pnl <= 0:
        return pnl
    offset = pnl * params.pnl_offset
    return min(offset, params.max_offsetable_pnl) if params.max_offsetable_pnl > 0 else offset


def _round_nano(value: Decimal) -> Decimal:
    return value.quantize(NANO, rounding=ROUND_HALF_EVEN)


def portfolio_margin(positions: Sequence[FuturePosition], index_price: object, params: DeribitPmParams, *,
                     open_orders_margin: object = ZERO, mmp_margin: object = ZERO,
                     spot_margin: object = ZERO) -> DeribitPmResult:
    """The risk matrix and margins of one currency's futures and perpetuals."""
    index = to_decimal(index_price, "index_price")
    if not ZERO < index <= MAX_PRICE:
        raise InvalidInput("index_price", f"must be within (0, {MAX_PRICE}], got {index}")
    extras = [non_negative(value, name) for value, name in ((open_orders_margin, "open_orders_margin"),
                                                            (mmp_margin, "mmp_margin"), (spot_margin, "spot_margin"))]
    moves = params.price_moves
    clamp_low, clamp_high = -params.price_range, params.price_range
    with localcontext() as context:
        context.prec = 40
        per_position: dict[str, tuple[tuple[Decimal, ...], tuple[Decimal, ...]]] = {}
        standard = [ZERO] * (len(moves) * params.vol_scenarios_count)
        extended = [ZERO] * len(params.extended_moves)
        for number, position in enumerate(positions):
            own_standard = tuple(position.pnl(move) for move in moves for _ in range(params.vol_scenarios_count))
            own_extended = tuple(position.pnl(min(max(move, clamp_low), clamp_high))
                                 for move in params.extended_moves)
            per_position[position.instrument or f"position[{number}]"] = (own_standard, own_extended)
            standard = [a + b for a, b in zip(standard, own_standard)]
            extended = [a + b for a, b in zip(extended, own_extended)]
        aggregated_standard = tuple(_aggregate(pnl, params) for pnl in standard)
        aggregated_extended = tuple(ZERO for _ in extended)  # option tails only; futures add none [inferred]
        worst = min(aggregated_standard + aggregated_extended)
        worst_case = max(-worst, ZERO)
        bucket = _worst_bucket(aggregated_standard, aggregated_extended, worst, params)
        roll = sum((abs(p.size_currency) * p.roll_unit()
                    * max(params.annualised_move_risk * p.years_to_expiry, params.min_annualised_move)
                    for p in positions), ZERO)
        delta_shock = _delta_shock(positions, index, params)
        risk_matrix = _round_nano(worst_case) + roll + delta_shock
        initial = _round_nano(risk_matrix + sum(extras, ZERO))
        maintenance = params.mm_factor * risk_matrix
    return DeribitPmResult(per_position, tuple(standard), tuple(extended), aggregated_standard, aggregated_extended,
                           worst_case, bucket, roll, delta_shock, risk_matrix, initial, maintenance)


def _worst_bucket(standard: Sequence[Decimal], extended: Sequence[Decimal], worst: Decimal,
                  params: DeribitPmParams) -> dict[str, Any]:
    """Where the worst case sits, as the API names it: 1-based index in its vector, bucket 1…2n+1, side."""
    if worst >= 0:
        return {}
    if worst in standard:
        index = standard.index(worst)
        bucket = index // params.vol_scenarios_count + 1
        middle = params.buckets_count + 1
        side = "left" if bucket < middle else "right" if bucket > middle else "center"
        return {"source": "standard", "index": index + 1, "bucket": bucket, "side": side}
    index = list(extended).index(worst)
    return {"source": "extended", "index": index + 1, "bucket": index + 1,
            "side": "left" if params.extended_moves[index] < 0 else "right"}


def _delta_shock(positions: Sequence[FuturePosition], index: Decimal, params: DeribitPmParams) -> Decimal:
    """[unconfirmed] Above ``delta_total_liq_shock_threshold`` USD of net delta, the excess delta is charged
    ``max_delta_shock`` of its value; 0 below it (the only regime any capture shows)."""
    net_delta = sum((p.size_currency for p in positions), ZERO)
    delta_usd = abs(net_delta) * index
    threshold = params.delta_total_liq_shock_threshold
    if threshold <= 0 or delta_usd <= threshold:
        return ZERO
    excess_coin = (delta_usd - threshold) / index
    linear = bool(positions) and all(p.settlement is Settlement.LINEAR for p in positions)
    return excess_coin * params.max_delta_shock * (index if linear else ONE)
