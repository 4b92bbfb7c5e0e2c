"""Derive's Dutch liquidation auction (``DutchAuction.sol``), as pure functions over a small immutable state.

An engine runs an auction step by step: :func:`start_auction` on an account below maintenance, then
:func:`place_bid` for each bid with the account's MtM and MM at that instant (the margin model supplies them),
carrying the returned :class:`AuctionState`. Nothing here reads a clock: ``elapsed`` is seconds since the start.

Rules (reference ../shared/reference/options.md §6; design docs/options-venues.md):

- start: allowed when MM < 0; MtM > 0 makes a *solvent* auction, whose fee to the security module is
  ``f_max(d = 1, R = 0)·|MtM|·liquidatorFeeRate``; otherwise an *insolvent* one (no fee);
- buffer margin BM = MM + bufferMarginPercentage·(MM − MtM);
- discount d(t): from ``starting_mtm_percentage`` down to ``fast_auction_cutoff_percentage`` linearly over the fast
  phase, then to 0 over the slow phase, 0 afterwards;
- largest share of the current portfolio a bidder may take: f_max = BM⁻/(BM⁻ − MtM·d − R·(1 − d)) with BM⁻ = min(BM,
  0), or 1 when MtM < ``mtm_cutoff``; R is the *reserved cash* that earlier bidders paid in (it stays with the account
  and is not sold);
- a bid for share f pays (MtM − R)·d·f; asking for f_max or more takes exactly f_max and ends the auction;
- after a bid the bidder holds share f of everything but R, so MtM' = (MtM − R)(1 − f) + R + paid and likewise MM'
  (the margin is homogeneous in the holdings); R grows by what was paid;
- insolvent phase: the security module pays the bidder; per unit share the (negative) price moves linearly from
  min(MtM, 0) at the start to MM at ``insolvent_auction_length``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from typing import Any

from ...core.errors import InvalidInput
from ...core.numbers import non_negative, to_decimal

ZERO = Decimal(0)
ONE = Decimal(1)
MAX_VALUE = Decimal("1e18")        # bound on MtM / MM magnitudes entering
MAX_SECONDS = Decimal(10**10)
PRECISION = 50                     # digits for the divisions; every published figure is far coarser


def _amount(value: object, field: str) -> Decimal:
    number = to_decimal(value, field)
    if abs(number) > MAX_VALUE:
        raise InvalidInput(field, f"must be within ±{MAX_VALUE}, got {number}")
    return number


def _seconds(value: object, field: str, *, allow_zero: bool = True) -> Decimal:
    number = non_negative(value, field)
    if number > MAX_SECONDS:
        raise InvalidInput(field, f"must be at most {MAX_SECONDS} seconds, got {number}")
    if not allow_zero and number == 0:
        raise InvalidInput(field, "must be positive")
    return number


@dataclass(frozen=True)
class AuctionParams:
    """``AuctionParams`` of ``DutchAuction.sol`` plus ``mtmCutoff``; bounds as the contract's ``setAuctionParams``."""

    starting_mtm_percentage: Decimal
    fast_auction_cutoff_percentage: Decimal
    fast_auction_length: Decimal
    slow_auction_length: Decimal
    insolvent_auction_length: Decimal
    liquidator_fee_rate: Decimal
    buffer_margin_percentage: Decimal
    mtm_cutoff: Decimal = ZERO

    def __post_init__(self) -> None:
        if not ZERO <= self.starting_mtm_percentage <= ONE:
            raise InvalidInput("starting_mtm_percentage", f"must be within [0, 1], got {self.starting_mtm_percentage}")
        if not ZERO <= self.fast_auction_cutoff_percentage <= self.starting_mtm_percentage:
            raise InvalidInput("fast_auction_cutoff_percentage",
                               f"must be within [0, starting_mtm_percentage], got {self.fast_auction_cutoff_percentage}")
        if not ZERO <= self.liquidator_fee_rate <= Decimal("0.1"):
            raise InvalidInput("liquidator_fee_rate", f"must be within [0, 0.1], got {self.liquidator_fee_rate}")
        if not ZERO <= self.buffer_margin_percentage <= 4:
            raise InvalidInput("buffer_margin_percentage", f"must be within [0, 4], got {self.buffer_margin_percentage}")
        if self.mtm_cutoff > 1000:
            raise InvalidInput("mtm_cutoff", f"must be at most 1000, got {self.mtm_cutoff}")
        for name in ("fast_auction_length", "slow_auction_length", "insolvent_auction_length"):
            _seconds(getattr(self, name), name, allow_zero=False)

    @classmethod
    def from_table(cls, spec: Mapping[str, Any], where: str = "auction") -> AuctionParams:
        def number(name: str, default: object | None = None) -> Decimal:
            value = spec.get(name, default)
            if value is None:
                raise InvalidInput(f"{where}.{name}", "missing")
            return to_decimal(value, f"{where}.{name}")

        try:
            return cls(
                starting_mtm_percentage=number("starting_mtm_percentage"),
                fast_auction_cutoff_percentage=number("fast_auction_cutoff_percentage"),
                fast_auction_length=number("fast_auction_length"),
                slow_auction_length=number("slow_auction_length"),
                insolvent_auction_length=number("insolvent_auction_length", "600"),
                liquidator_fee_rate=number("liquidator_fee_rate"),
                buffer_margin_percentage=number("buffer_margin_percentage"),
                mtm_cutoff=number("mtm_cutoff", "0"),
            )
        except InvalidInput as error:
            if error.field.startswith(where):
                raise
            raise InvalidInput(f"{where}.{error.field}", error.message) from None

    def with_overrides(self, spec: Mapping[str, Any], where: str = "params") -> AuctionParams:
        merged = {name: getattr(self, name) for name in self.__dataclass_fields__}
        merged.update({key: value for key, value in spec.items() if key in merged})
        return AuctionParams.from_table(merged, where)

    @property
    def solvent_length(self) -> Decimal:
        return self.fast_auction_length + self.slow_auction_length


# --------------------------------------------------------------------------------------------
# The arithmetic
# --------------------------------------------------------------------------------------------


def discount(params: AuctionParams, elapsed: object) -> Decimal:
    """The share of MtM a bidder pays, ``elapsed`` seconds after a solvent auction started (non-increasing)."""
    t = _seconds(elapsed, "elapsed")
    if t < params.fast_auction_length:
        drop = params.starting_mtm_percentage - params.fast_auction_cutoff_percentage
        return params.starting_mtm_percentage - drop * t / params.fast_auction_length
    if t >= params.solvent_length:
        return ZERO
    in_slow = t - params.fast_auction_length
    return params.fast_auction_cutoff_percentage * (ONE - in_slow / params.slow_auction_length)


def buffer_margin(params: AuctionParams, mm: object, mtm: object) -> Decimal:
    """BM = MM + bufferMarginPercentage·(MM − MtM): the margin the auction liquidates back up to."""
    maintenance, value = _amount(mm, "mm"), _amount(mtm, "mtm")
    return maintenance + (maintenance - value) * params.buffer_margin_percentage


def max_share(params: AuctionParams, mtm: object, buffer: object, discount_fraction: object,
              reserved_cash: object = ZERO) -> Decimal:
    """f_max: the largest share of the current portfolio a bidder may take at discount d, in [0, 1]."""
    value = _amount(mtm, "mtm")
    bm = min(_amount(buffer, "buffer_margin"), ZERO)
    d = to_decimal(discount_fraction, "discount")
    if not ZERO <= d <= ONE:
        raise InvalidInput("discount", f"must be within [0, 1], got {d}")
    reserved = _amount(reserved_cash, "reserved_cash")
    if value < params.mtm_cutoff:
        return ONE
    if bm == 0:
        return ZERO
    with localcontext() as context:
        context.prec = PRECISION
        denominator = bm - value * d - reserved * (ONE - d)
        if denominator >= 0:  # MtM·d + R·(1 − d) ≤ BM < 0: the account is worth nothing to a bidder
            return ONE
        return min(bm / denominator, ONE)


def start_fee(params: AuctionParams, mtm: object, mm: object) -> Decimal:
    """The fee a solvent auction pays the security module at its start: f_max(d = 1, R = 0)·|MtM|·feeRate."""
    value = _amount(mtm, "mtm")
    if value <= 0:
        return ZERO
    share = max_share(params, value, buffer_margin(params, mm, value), ONE, ZERO)
    return share * abs(value) * params.liquidator_fee_rate


def insolvent_price(params: AuctionParams, mtm: object, mm: object, elapsed: object) -> Decimal:
    """What the security module pays per unit share (negative: cash to the bidder), from min(MtM, 0) at the start
    to MM at ``insolvent_auction_length``; 0 once MM ≥ 0."""
    value, maintenance = _amount(mtm, "mtm"), _amount(mm, "mm")
    t = _seconds(elapsed, "elapsed")
    if maintenance >= 0:
        return ZERO
    value = min(value, ZERO)
    if t >= params.insolvent_auction_length:
        return maintenance
    return value + (maintenance - value) * t / params.insolvent_auction_length


# --------------------------------------------------------------------------------------------
# Step by step
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuctionState:
    """An auction under way: its phase and the cash earlier bidders paid in (``reserved_cash``)."""

    insolvent: bool
    reserved_cash: Decimal = ZERO
    fee: Decimal = ZERO
    ongoing: bool = True


@dataclass(frozen=True)
class BidResult:
    buffer_margin: Decimal
    f_max: Decimal
    price: Decimal             # cash the bidder pays the account (solvent); negative: paid to the bidder (insolvent)
    percent: Decimal           # share of the current portfolio actually taken
    post_mtm: Decimal
    post_mm: Decimal
    post_buffer_margin: Decimal
    post_f_max: Decimal
    state: AuctionState        # after the bid

    def outputs(self) -> dict[str, Any]:
        return {"buffer_margin": self.buffer_margin, "f_max": self.f_max, "price": self.price,
                "percent": self.percent, "post_mtm": self.post_mtm, "post_mm": self.post_mm,
                "post_buffer_margin": self.post_buffer_margin, "post_f_max": self.post_f_max,
                "terminated": not self.state.ongoing}


def start_auction(params: AuctionParams, mtm: object, mm: object) -> AuctionState:
    """Open an auction on an account with MM < 0; solvent (with its fee) when MtM > 0, else insolvent.

    The fee is paid in cash at once: the account's MtM and MM both drop by ``state.fee``.
    """
    value, maintenance = _amount(mtm, "mtm"), _amount(mm, "mm")
    if maintenance >= 0:
        raise InvalidInput("mm", f"an auction starts only below maintenance (MM < 0), got {maintenance}")
    if value > 0:
        return AuctionState(insolvent=False, fee=start_fee(params, value, maintenance))
    return AuctionState(insolvent=True)


def termination_reason(params: AuctionParams, state: AuctionState, elapsed: object, mtm: object,
                       mm: object) -> str | None:
    """Why the auction may be terminated now (anyone may end it), or None while it runs."""
    value, maintenance = _amount(mtm, "mtm"), _amount(mm, "mm")
    t = _seconds(elapsed, "elapsed")
    if state.insolvent or t >= params.solvent_length:
        return "maintenance margin restored" if maintenance >= 0 else None
    if value < 0:
        return "mark-to-market below zero: restart as an insolvent auction"
    if state.reserved_cash >= value:
        return "reserved cash covers the mark-to-market: restart the auction"
    if buffer_margin(params, maintenance, value) >= 0:
        return "buffer margin restored"
    return None


def place_bid(params: AuctionParams, state: AuctionState, elapsed: object, mtm: object, mm: object,
              percent: object, field: str = "bid") -> BidResult:
    """A bid for ``percent`` of the current portfolio, ``elapsed`` seconds after the start, on an account whose MtM
    and MM (reserved cash included) are given. Refused, naming ``field``, where the contract reverts."""
    if not state.ongoing:
        raise InvalidInput(field, "the auction has ended")
    value, maintenance = _amount(mtm, f"{field}.mtm"), _amount(mm, f"{field}.mm")
    t = _seconds(elapsed, f"{field}.elapsed")
    share = to_decimal(percent, f"{field}.percent")
    if not ZERO < share <= ONE:
        raise InvalidInput(f"{field}.percent", f"must be within (0, 1], got {share}")
    reason = termination_reason(params, state, t, value, maintenance)
    if reason is not None:
        raise InvalidInput(field, f"the auction should be terminated: {reason}")
    reserved = state.reserved_cash
    bm = buffer_margin(params, maintenance, value)
    with localcontext() as context:
        context.prec = PRECISION
        if state.insolvent:
            paid = insolvent_price(params, value, maintenance, t) * share   # ≤ 0: the security module pays
            taken, f_max, terminates = share, ZERO, share == ONE
            cash_in = ZERO
        else:
            d = discount(params, t)
            if t >= params.solvent_length or (value - reserved) * d <= 0:
                raise InvalidInput(f"{field}.elapsed", "the solvent auction has ended: convert it to insolvent")
            f_max = max_share(params, value, bm, d, reserved)
            taken, terminates = (f_max, True) if share >= f_max else (share, False)
            paid = (value - reserved) * d * taken
            cash_in = paid
        post_mtm = (value - reserved) * (ONE - taken) + reserved + cash_in
        post_mm = (maintenance - reserved) * (ONE - taken) + reserved + cash_in
        post_reserved = reserved + cash_in
        post_bm = buffer_margin(params, post_mm, post_mtm)
        if state.insolvent:
            post_f_max = ZERO
        else:
            post_f_max = max_share(params, post_mtm, post_bm, discount(params, t), post_reserved)
    after = replace(state, reserved_cash=post_reserved, ongoing=not terminates)
    return BidResult(bm, f_max, paid, taken, post_mtm, post_mm, post_bm, post_f_max, after)
