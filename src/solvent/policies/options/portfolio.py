"""Positions and a volatility surface in, a priced :class:`~.scenario_grid.OptionPortfolio` out.

The venue's feeds for each expiry (forward, optionally split into a fixed and a variable part near
settlement; rate; confidences; an SVI slice or a flat vol) turn a list of option positions into the
holdings the margin model reads. Everything a user can get wrong is refused here, naming the
field: negative or non-finite vols, strikes, amounts or prices; a position whose expiry has no feed;
a time to expiry below zero (an expired option is worth its intrinsic value at 0, never priced as
live); a malformed SVI slice.

Reference: ../shared/reference/options.md §3.1 (how PMRM_2 arranges a portfolio).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...core.errors import InvalidInput
from .black76 import checked_float, is_call_kind
from .scenario_grid import (
    CollateralHolding,
    ExpiryHolding,
    OptionHolding,
    OptionPortfolio,
    PerpHolding,
)
from .svi import SviSlice

SETTLEMENT_WINDOW_SECONDS = 1800
"""Derive settles on a 30-minute average: inside that window part of the forward is already fixed."""


def settlement_forward_split(forward: float, seconds: float, window: float = SETTLEMENT_WINDOW_SECONDS
                             ) -> tuple[float, float]:
    """(fixed, variable) parts of a forward ``seconds`` before expiry when the settlement price is a
    ``window``-second average: the share already averaged no longer moves with spot. (Derive's test
    harness feeds the portions this way; its live forward feed publishes them.)"""
    if seconds >= window:
        return 0.0, forward
    fixed = forward * (window - seconds) / window
    return fixed, forward - fixed


@dataclass(frozen=True)
class ExpiryFeed:
    """What the venue's feeds say about one expiry."""

    seconds: float
    forward: float
    forward_fixed: float = 0.0
    rate: float = 0.0
    forward_confidence: float = 1.0
    rate_confidence: float = 1.0
    vol_confidence: float = 1.0
    svi: SviSlice | None = None
    vol: float | None = None  # a flat mark vol, when no SVI slice is given

    def __post_init__(self) -> None:
        _seconds(self.seconds, "feed.expiry_seconds")
        forward = checked_float(self.forward, "feed.forward")
        fixed = checked_float(self.forward_fixed, "feed.forward_fixed")
        if fixed > forward:
            raise InvalidInput("feed.forward_fixed", f"the fixed part {fixed!r} exceeds the forward {forward!r}")
        checked_float(self.rate, "feed.rate", minimum=None)
        for name in ("forward_confidence", "rate_confidence", "vol_confidence"):
            _confidence(getattr(self, name), f"feed.{name}")
        if self.vol is not None:
            checked_float(self.vol, "feed.vol")
        elif self.svi is None:
            raise InvalidInput("feed.svi", "missing (give an svi slice or a flat vol)")

    def vol_at(self, strike: float, field: str) -> float:
        if self.svi is not None:
            try:
                return self.svi.vol(strike, "strike")
            except InvalidInput as error:  # name the feed whose slice is malformed
                raise InvalidInput(field, error.message) from None
        if self.vol is None:
            raise InvalidInput(field, f"no vol for expiry {self.seconds:g}: give the feed an svi slice or a vol")
        return self.vol


@dataclass(frozen=True)
class OptionPosition:
    expiry_seconds: float
    strike: float
    is_call: bool
    amount: float  # signed: negative = short


def _confidence(value: object, field: str) -> float:
    result = checked_float(value, field)
    if result > 1.0:
        raise InvalidInput(field, f"a confidence is within [0, 1], got {result!r}")
    return result


def parse_feed(data: Mapping[str, Any], where: str) -> ExpiryFeed:
    if not isinstance(data, Mapping):
        raise InvalidInput(where, "expected an object")
    seconds = _seconds(data.get("expiry_seconds"), f"{where}.expiry_seconds")
    forward = checked_float(_need(data, "forward", where), f"{where}.forward")
    fixed = checked_float(data.get("forward_fixed", 0), f"{where}.forward_fixed")
    if fixed > forward:
        raise InvalidInput(f"{where}.forward_fixed", f"the fixed part {fixed!r} exceeds the forward {forward!r}")
    svi = SviSlice.parse(data["svi"], f"{where}.svi") if data.get("svi") is not None else None
    vol = checked_float(data["vol"], f"{where}.vol") if data.get("vol") is not None else None
    if svi is None and vol is None:
        raise InvalidInput(f"{where}.svi", "missing (give an svi slice or a flat vol)")
    try:
        return _feed(seconds, forward, fixed, data, where, svi, vol)
    except InvalidInput as error:  # re-root "feed.x" under this feed's place in the list
        raise InvalidInput(where + error.field[len("feed"):] if error.field.startswith("feed.") else error.field,
                           error.message) from None


def _feed(seconds: float, forward: float, fixed: float, data: Mapping[str, Any], where: str, svi: SviSlice | None,
          vol: float | None) -> ExpiryFeed:
    return ExpiryFeed(
        seconds=seconds, forward=forward, forward_fixed=fixed,
        rate=checked_float(data.get("rate", 0), f"{where}.rate", minimum=None),
        forward_confidence=_confidence(data.get("forward_confidence", 1), f"{where}.forward_confidence"),
        rate_confidence=_confidence(data.get("rate_confidence", 1), f"{where}.rate_confidence"),
        vol_confidence=_confidence(data.get("vol_confidence", 1), f"{where}.vol_confidence"),
        svi=svi, vol=vol)


def _need(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] is None:
        raise InvalidInput(f"{where}.{key}", "missing")
    return data[key]


def _seconds(value: object, field: str) -> float:
    if value is None:
        raise InvalidInput(field, "missing")
    seconds = checked_float(value, field, minimum=None)
    if seconds < 0:
        raise InvalidInput(field, f"the option expired {-seconds:g} s ago: it settles at expiry (0), it is not "
                           "priced as live")
    return seconds


def parse_position(data: Mapping[str, Any], where: str) -> OptionPosition:
    if not isinstance(data, Mapping):
        raise InvalidInput(where, "expected an object {expiry_seconds, strike, kind, amount}")
    return OptionPosition(
        expiry_seconds=_seconds(data.get("expiry_seconds"), f"{where}.expiry_seconds"),
        strike=checked_float(_need(data, "strike", where), f"{where}.strike", strict=True),
        is_call=is_call_kind(_need(data, "kind", where), f"{where}.kind"),
        amount=checked_float(_need(data, "amount", where), f"{where}.amount", minimum=None))


def build_portfolio(spot: object, positions: Sequence[OptionPosition], feeds: Sequence[ExpiryFeed], *,
                    perp: PerpHolding | None = None, collaterals: Sequence[CollateralHolding] = (),
                    cash: object = 0.0, spot_confidence: object = 1.0, stable_price: object = 1.0) -> OptionPortfolio:
    """Group positions by expiry, price each strike's vol from its expiry's surface.

    Positions of the same expiry, strike and kind are merged (an account holds one balance per
    option). Negative rates are floored at zero (PMRM_2 does, for discounting and static
    discounts alike). Expiries are kept in the order their first position appears.
    """
    spot_f = checked_float(spot, "spot", strict=True)
    by_seconds: dict[float, ExpiryFeed] = {}
    for index, feed in enumerate(feeds):
        if feed.seconds in by_seconds:
            raise InvalidInput(f"feeds[{index}].expiry_seconds", f"two feeds for expiry {feed.seconds:g}")
        by_seconds[feed.seconds] = feed
    merged: dict[float, dict[tuple[float, bool], float]] = {}
    for index, position in enumerate(positions):
        _seconds(position.expiry_seconds, f"options[{index}].expiry_seconds")
        # Black-76 has a limit at strike 0, but no venue lists such an option (and k = ln K/F needs K > 0).
        checked_float(position.strike, f"options[{index}].strike", strict=True)
        checked_float(position.amount, f"options[{index}].amount", minimum=None)
        if position.expiry_seconds not in by_seconds:
            raise InvalidInput(f"options[{index}].expiry_seconds",
                               f"no feed for expiry {position.expiry_seconds:g} (known: "
                               f"{', '.join(f'{s:g}' for s in by_seconds) or 'none'})")
        key = (position.strike, position.is_call)
        holdings = merged.setdefault(position.expiry_seconds, {})
        holdings[key] = holdings.get(key, 0.0) + position.amount
    expiries = []
    for seconds, holdings in merged.items():
        feed = by_seconds[seconds]
        options = []
        where = f"feeds[{list(by_seconds).index(seconds)}]"
        for (strike, is_call), amount in holdings.items():
            if amount == 0.0:
                continue
            vol = feed.vol_at(strike, f"{where}.svi")
            options.append(OptionHolding(strike, is_call, amount, vol))
        if not options:
            continue
        confidence = min(feed.forward_confidence, feed.rate_confidence, feed.vol_confidence)
        expiries.append(ExpiryHolding(seconds=seconds, forward_fixed=feed.forward_fixed,
                                      forward_variable=feed.forward - feed.forward_fixed, rate=max(feed.rate, 0.0),
                                      confidence=confidence, options=tuple(options)))
    stable = checked_float(stable_price, "stable_price", strict=True)
    return OptionPortfolio(spot=spot_f, expiries=tuple(expiries), perp=perp or PerpHolding(),
                           collaterals=tuple(collaterals), cash=checked_float(cash, "cash", minimum=None),
                           spot_confidence=_confidence(spot_confidence, "spot_confidence"), stable_price=stable)


def parse_perp(data: Any, where: str = "perp") -> PerpHolding:
    if data is None:
        return PerpHolding()
    if not isinstance(data, Mapping):
        raise InvalidInput(where, "expected an object {amount, price, confidence, unrealised_pnl, unrealised_funding}")
    amount = checked_float(data.get("amount", 0), f"{where}.amount", minimum=None)
    price = checked_float(data.get("price", 0), f"{where}.price")
    if amount != 0.0 and price <= 0.0:
        raise InvalidInput(f"{where}.price", "a perp position needs a positive price")
    return PerpHolding(amount=amount, price=price,
                       confidence=_confidence(data.get("confidence", 1), f"{where}.confidence"),
                       unrealised_pnl=checked_float(data.get("unrealised_pnl", 0), f"{where}.unrealised_pnl",
                                                    minimum=None),
                       unrealised_funding=checked_float(data.get("unrealised_funding", 0),
                                                        f"{where}.unrealised_funding", minimum=None))


def parse_collateral(data: Mapping[str, Any], where: str) -> CollateralHolding:
    if not isinstance(data, Mapping):
        raise InvalidInput(where, "expected an object {name, amount, price, confidence, risk_cancelling, ...}")
    risk_cancelling = data.get("risk_cancelling", False)
    if not isinstance(risk_cancelling, bool):
        raise InvalidInput(f"{where}.risk_cancelling", f"expected true or false, got {risk_cancelling!r}")
    mm = checked_float(data.get("mm_haircut", 0), f"{where}.mm_haircut")
    im = checked_float(data.get("im_haircut", 0), f"{where}.im_haircut")
    if mm > 1.0 or mm + im > 1.0:
        raise InvalidInput(f"{where}.im_haircut", "haircuts must satisfy mm ≤ 1 and mm + im ≤ 1 (PMRM_2's rule)")
    return CollateralHolding(
        name=str(data.get("name", f"collateral{where}")),
        amount=checked_float(_need(data, "amount", where), f"{where}.amount"),
        price=checked_float(_need(data, "price", where), f"{where}.price"),
        confidence=_confidence(data.get("confidence", 1), f"{where}.confidence"),
        risk_cancelling=risk_cancelling, mm_haircut=mm, im_haircut=im)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(key, "expected a list")
    return value


def parse_portfolio(data: Mapping[str, Any]) -> OptionPortfolio:
    """A portfolio from the JSON vocabulary of the ``derive.pmrm2`` vectors and ``solvent margin``:
    ``spot``, ``spot_confidence``, ``stable_price``, ``cash``, ``perp``, ``collaterals``, ``feeds``, ``options``."""
    if not isinstance(data, Mapping):
        raise InvalidInput("portfolio", "expected an object")
    feeds = [parse_feed(row, f"feeds[{i}]") for i, row in enumerate(_list(data, "feeds"))]
    positions = [parse_position(row, f"options[{i}]") for i, row in enumerate(_list(data, "options"))]
    collaterals = [parse_collateral(row, f"collaterals[{i}]") for i, row in enumerate(_list(data, "collaterals"))]
    if data.get("spot") is None:
        raise InvalidInput("spot", "missing")
    return build_portfolio(data["spot"], positions, feeds,
                           perp=parse_perp(data.get("perp")), collaterals=collaterals, cash=data.get("cash", 0),
                           spot_confidence=data.get("spot_confidence", 1), stable_price=data.get("stable_price", 1))
