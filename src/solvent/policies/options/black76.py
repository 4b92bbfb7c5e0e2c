"""Black-76 on the forward, with discounting, as the crypto option venues price it.

Reference: ../shared/reference/options.md §1 (Derive's lyra-utils ``Black76.sol``). With total
volatility v = σ·√τ and moneyness m = K/F, the standardised call is c = N(d1) − m·N(d2),
d1 = (v²/2 − ln m)/v, d2 = d1 − v, the standardised put p = max(c + m − 1, 0) (parity), and the
money prices are C = c·F·D and P = p·F·D. The venues' edge handling is part of the rule:

- v = 0 (expiry reached, or zero vol) gives intrinsic value on the forward: D·max(F − K, 0);
- v ≥ 24 gives the limit c = 1 (the call is worth the discounted forward);
- K = 0 gives C = F·D, P = 0; F = 0 gives C = 0, P = K·D;
- prices are capped at F·D (call) and K·D (put).

τ is seconds / (365·86400). Floats throughout: option values are floating point by nature and the
venues' own tests accept 1e-8 relative. The public functions validate their inputs (naming the
field); the ``_unchecked`` kernels are for callers that validated once (the margin model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy.special import ndtr

from ...core.errors import InvalidInput

SECONDS_PER_YEAR = 365 * 86400
MAX_TOTAL_VOL = 24.0
"""Above this total volatility the standardised call is 1 to the last bit (lyra-utils ``MAX_TOTAL_VOL``)."""

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def year_fraction(seconds: float) -> float:
    """τ in years of 365 days."""
    return seconds / SECONDS_PER_YEAR


def normal_cdf(x: float) -> float:
    """Φ(x) through erfc, accurate in both tails."""
    return 0.5 * math.erfc(-x / _SQRT2)


def checked_float(value: object, field: str, *, minimum: float | None = 0.0, strict: bool = False) -> float:
    """A finite float at least ``minimum`` (above it when ``strict``), or :class:`InvalidInput` naming ``field``."""
    if isinstance(value, bool):
        raise InvalidInput(field, f"expected a number, got a boolean ({value})")
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(field, f"not a number: {value!r}") from None
    if not math.isfinite(result):
        raise InvalidInput(field, f"must be finite, got {value!r}")
    if minimum is not None and (result < minimum or (strict and result == minimum)):
        relation = "above" if strict else "at least"
        raise InvalidInput(field, f"must be {relation} {minimum:g}, got {result!r}")
    return result


# ----------------------------------------------------------------------------- scalar kernels


def standard_call_unchecked(moneyness: float, total_vol: float) -> float:
    """c(m, v) with forward = discount = 1, the venues' limits included (m ≥ 0, v ≥ 0)."""
    if total_vol >= MAX_TOTAL_VOL:
        return 1.0
    if total_vol <= 0.0:
        return max(1.0 - moneyness, 0.0)
    if moneyness <= 0.0:
        return 1.0
    d1 = (0.5 * total_vol * total_vol - math.log(moneyness)) / total_vol
    value = normal_cdf(d1) - moneyness * normal_cdf(d1 - total_vol)
    return max(0.0, value)


def prices_unchecked(forward: float, strike: float, vol: float, seconds: float, discount: float) -> tuple[float, float]:
    """(call, put) money prices; inputs already validated."""
    forward_discounted = forward * discount
    if strike <= 0.0:
        return forward_discounted, 0.0
    strike_discounted = strike * discount
    if forward <= 0.0:
        return 0.0, strike_discounted
    moneyness = strike / forward
    call = standard_call_unchecked(moneyness, vol * math.sqrt(seconds / SECONDS_PER_YEAR))
    put = call + moneyness - 1.0
    call_price = min(call * forward_discounted, forward_discounted)
    put_price = min(put * forward_discounted, strike_discounted) if put > 0.0 else 0.0
    return call_price, put_price


def price_unchecked(forward: float, strike: float, vol: float, seconds: float, discount: float, is_call: bool) -> float:
    call, put = prices_unchecked(forward, strike, vol, seconds, discount)
    return call if is_call else put


# ----------------------------------------------------------------------------- validated API


def _inputs(forward: object, strike: object, vol: object, seconds: object, discount: object
            ) -> tuple[float, float, float, float, float]:
    seconds_f = checked_float(seconds, "seconds_to_expiry")  # negative: the option expired; it settles, it is not priced
    return (checked_float(forward, "forward"), checked_float(strike, "strike"), checked_float(vol, "vol"), seconds_f,
            checked_float(discount, "discount", strict=True))


def black76_prices(forward: object, strike: object, vol: object, seconds_to_expiry: object,
                   discount: object = 1.0) -> tuple[float, float]:
    """(call, put) Black-76 prices on the forward, discounted by ``discount`` (= e^(−r·τ)).

    Refuses, naming the field: a negative or non-finite forward, strike or vol, a time to expiry
    below zero (an expired option settles at intrinsic at ``seconds_to_expiry = 0``; it is not
    priced as live), a discount factor not above zero.
    """
    return prices_unchecked(*_inputs(forward, strike, vol, seconds_to_expiry, discount))


def black76_price(kind: str, forward: object, strike: object, vol: object, seconds_to_expiry: object,
                  discount: object = 1.0) -> float:
    """One option's price; ``kind`` is ``call`` or ``put``."""
    call, put = black76_prices(forward, strike, vol, seconds_to_expiry, discount)
    return call if is_call_kind(kind) else put


class OptionKind(str, Enum):
    """Call or put: the one parser of the family (``call``/``c``, ``put``/``p``, any case)."""

    CALL = "call"
    PUT = "put"

    @classmethod
    def parse(cls, value: object, field: str = "kind") -> OptionKind:
        if isinstance(value, OptionKind):
            return value
        text = str(value).strip().lower()
        if text in ("call", "c"):
            return cls.CALL
        if text in ("put", "p"):
            return cls.PUT
        raise InvalidInput(field, f"expected call or put, got {value!r}")


def is_call_kind(kind: object, field: str = "kind") -> bool:
    return OptionKind.parse(kind, field) is OptionKind.CALL


def discount_factor(rate: float, seconds: float) -> float:
    """e^(−r·τ) with τ in 365-day years."""
    return math.exp(-rate * seconds / SECONDS_PER_YEAR)


@dataclass(frozen=True)
class Greeks:
    """Sensitivities of one unit (or a signed amount) of an option.

    ``delta`` and ``gamma`` are per unit move of the forward, ``vega`` per 1.00 of volatility
    (divide by 100 for a vol point), ``theta`` per year of calendar time passing (negative when
    value decays; divide by 365 for a day), all at the discount factor given.
    """

    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0

    def scaled(self, amount: float) -> Greeks:
        return Greeks(self.delta * amount, self.gamma * amount, self.vega * amount, self.theta * amount)

    def __add__(self, other: Greeks) -> Greeks:
        return Greeks(self.delta + other.delta, self.gamma + other.gamma, self.vega + other.vega,
                      self.theta + other.theta)


def greeks_unchecked(forward: float, strike: float, vol: float, seconds: float, discount: float,
                     is_call: bool) -> Greeks:
    tau = seconds / SECONDS_PER_YEAR
    total_vol = vol * math.sqrt(tau)
    rate = -math.log(discount) / tau if tau > 0.0 else 0.0
    price = price_unchecked(forward, strike, vol, seconds, discount, is_call)
    if strike <= 0.0 or forward <= 0.0 or total_vol <= 0.0 or total_vol >= MAX_TOTAL_VOL:
        # Degenerate ends: the value is linear in the forward (intrinsic, or the v ≥ 24 limit).
        if strike <= 0.0 or total_vol >= MAX_TOTAL_VOL:
            in_the_money = 1.0
        else:
            in_the_money = 1.0 if forward > strike else 0.0
        call_delta = discount * in_the_money
        return Greeks(call_delta if is_call else call_delta - discount, 0.0, 0.0, rate * price)
    d1 = (0.5 * total_vol * total_vol - math.log(strike / forward)) / total_vol
    density = math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    call_delta = discount * normal_cdf(d1)
    gamma = discount * density / (forward * total_vol)
    vega = forward * discount * density * math.sqrt(tau)
    theta = -forward * discount * density * vol / (2.0 * math.sqrt(tau)) + rate * price
    return Greeks(call_delta if is_call else call_delta - discount, gamma, vega, theta)


def black76_greeks(kind: str, forward: object, strike: object, vol: object, seconds_to_expiry: object,
                   discount: object = 1.0) -> Greeks:
    """Delta, gamma, vega and theta of one option (see :class:`Greeks` for the units)."""
    return greeks_unchecked(*_inputs(forward, strike, vol, seconds_to_expiry, discount), is_call_kind(kind))


# ----------------------------------------------------------------------------- array kernel


def prices_array(forward: np.ndarray, strike: np.ndarray, vol: np.ndarray, seconds: np.ndarray | float,
                 discount: np.ndarray, is_call: np.ndarray) -> np.ndarray:
    """Element-wise Black-76 value (call where ``is_call``, else put); arrays broadcast.

    The same rule as :func:`prices_unchecked`, limits included, for arrays of validated inputs.
    """
    forward, strike, vol, seconds, discount, is_call = np.broadcast_arrays(
        np.asarray(forward, dtype=np.float64), np.asarray(strike, dtype=np.float64),
        np.asarray(vol, dtype=np.float64), np.asarray(seconds, dtype=np.float64),
        np.asarray(discount, dtype=np.float64), np.asarray(is_call, dtype=bool))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _prices_array(forward, strike, vol, seconds, discount, is_call)


def _prices_array(forward: np.ndarray, strike: np.ndarray, vol: np.ndarray, seconds: np.ndarray,
                  discount: np.ndarray, is_call: np.ndarray) -> np.ndarray:
    total_vol = vol * np.sqrt(seconds / SECONDS_PER_YEAR)
    positive_forward = forward > 0.0
    safe_forward = np.where(positive_forward, forward, 1.0)
    moneyness = np.where(positive_forward, strike / safe_forward, np.inf)
    live = (total_vol > 0.0) & (total_vol < MAX_TOTAL_VOL) & (moneyness > 0.0) & np.isfinite(moneyness)
    safe_vol = np.where(live, total_vol, 1.0)
    safe_m = np.where(live, moneyness, 1.0)
    d1 = (0.5 * safe_vol * safe_vol - np.log(safe_m)) / safe_vol
    call = np.maximum(ndtr(d1) - safe_m * ndtr(d1 - safe_vol), 0.0)
    call = np.where(live, call, np.where(total_vol >= MAX_TOTAL_VOL, 1.0, np.maximum(1.0 - moneyness, 0.0)))
    call = np.where(moneyness <= 0.0, 1.0, call)
    forward_discounted = forward * discount
    strike_discounted = strike * discount
    put = call + moneyness - 1.0
    call_price = np.minimum(call * forward_discounted, forward_discounted)
    put_price = np.where(put > 0.0, np.minimum(put * forward_discounted, strike_discounted), 0.0)
    # Zero forward: a call is worthless, a put worth its discounted strike (moneyness is inf there).
    call_price = np.where(positive_forward, call_price, 0.0)
    put_price = np.where(positive_forward, put_price, strike_discounted)
    put_price = np.where(strike <= 0.0, 0.0, put_price)
    call_price = np.where(strike <= 0.0, forward_discounted, call_price)
    return np.where(is_call, call_price, put_price)
