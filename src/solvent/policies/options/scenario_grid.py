"""Scenario-grid portfolio margin: one general model whose parameters reproduce Derive's PMRM_2.

Reference: ../shared/reference/options.md §3 (restated from Derive's ``PMRMLib_2.sol`` and
``PMRM_2.sol``); the design is in docs/options.md. A portfolio (options grouped by expiry, a perp,
collaterals, cash) is revalued under every scenario of a grid:

- a scenario is a spot shock s, a vol-shock kind (``up``, ``down``, ``none``, or the skew twists
  ``linear`` / ``abs``), a dampening factor δ that scales its whole PnL, and a group label
  (``regular``, ``tail``, ``skew``) that only names it in the report;
- vol shocks scale with (30 days / max(T, dte floor))^p, p differing at or below 30 days and over;
- each expiry's shocked value is discounted statically by its sign (a long is marked down, a
  short up, capped at 1/D) before its PnL against the unshocked MtM is taken;
- contingencies: basis (forward) scenarios, naked shorts per strike, perp notional, collateral
  haircuts, oracle confidence; a de-pegged cash asset raises the IM factor;
- IM = minSPAN·IM factor − IM cont − MM cont + MtM + cash, MM = minSPAN·MM factor − MM cont + MtM + cash,
  where minSPAN = min(basis contingency, every scenario's PnL). Both are surpluses: negative
  means below the requirement.

This module is the exact, scalar path (plain floats, one loop per account, the contract's
arithmetic in order). :mod:`.grid_kernel` values whole books in arrays and must agree with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from itertools import repeat
from typing import Any

from ...core.errors import InvalidInput
from .black76 import (
    MAX_TOTAL_VOL,
    SECONDS_PER_YEAR,
    Greeks,
    checked_float,
    discount_factor,
    greeks_unchecked,
)

THIRTY_DAYS = 30 * 86400
DAY = 86400


class VolShock(str, Enum):
    UP = "up"
    DOWN = "down"
    NONE = "none"
    LINEAR = "linear"
    ABS = "abs"

    @classmethod
    def parse(cls, value: object, field_name: str) -> VolShock:
        text = str(value).strip().lower()
        for member in cls:
            if member.value == text:
                return member
        raise InvalidInput(field_name, f"expected one of {', '.join(m.value for m in cls)}, got {value!r}")

    @property
    def is_skew(self) -> bool:
        return self in (VolShock.LINEAR, VolShock.ABS)


# ----------------------------------------------------------------------------- parameters


def _table(spec: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = spec.get(key)
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}.{key}", "missing (expected a table)")
    return value


def _number(table: Mapping[str, Any], key: str, where: str, *, minimum: float | None = 0.0,
            strict: bool = False) -> float:
    if key not in table or table[key] is None:
        raise InvalidInput(f"{where}.{key}", "missing")
    return checked_float(table[key], f"{where}.{key}", minimum=minimum, strict=strict)


@dataclass(frozen=True)
class Scenario:
    spot_shock: float
    vol_shock: VolShock
    dampening: float = 1.0
    group: str = "regular"

    @property
    def label(self) -> str:
        return f"{self.group}: spot x{self.spot_shock:g}, vol {self.vol_shock.value}, dampening {self.dampening:g}"


@dataclass(frozen=True)
class VolShockParams:
    vol_range_up: float
    vol_range_down: float
    short_term_power: float
    long_term_power: float
    dte_floor_seconds: float
    min_vol_up_shock: float
    additive: bool = False  # vol points added (CME SPAN, Aevo) instead of multiplied (Derive, Deribit, Paradex)

    def scale(self, seconds: float) -> float:
        """(30 days / max(T, floor))^power, the power by whether T is at most 30 days."""
        floor = max(seconds, self.dte_floor_seconds)
        if floor <= 0.0:
            raise InvalidInput("params.vol_shock.dte_floor_days", "an expired option needs a positive dte floor "
                               "(the vol-shock ratio divides by max(T, floor))")
        power = self.short_term_power if seconds <= THIRTY_DAYS else self.long_term_power
        return (THIRTY_DAYS / floor) ** power

    def multipliers(self, seconds: float) -> tuple[float, float]:
        """(up, down) vol multipliers of an expiry T seconds away (1, 1 when the shocks are additive)."""
        if self.additive:
            return 1.0, 1.0
        scale = self.scale(seconds)
        return 1.0 + self.vol_range_up * scale, max(0.0, 1.0 - self.vol_range_down * scale)

    def shifts(self, seconds: float) -> tuple[float, float]:
        """(up, down) vol points added (0, 0 when the shocks are multiplicative); a vol never goes below 0."""
        if not self.additive:
            return 0.0, 0.0
        scale = self.scale(seconds)
        return self.vol_range_up * scale, -self.vol_range_down * scale


@dataclass(frozen=True)
class MarginParams:
    im_factor: float
    mm_factor: float
    long_base_static_discount: float
    short_base_static_discount: float
    long_rate_mult_scale: float
    long_rate_add_scale: float
    short_rate_mult_scale: float
    short_rate_add_scale: float

    def static_discounts(self, seconds: float, rate: float, discount: float) -> tuple[float, float]:
        """(positive, negative) static discounts of an expiry's shocked value."""
        tau = seconds / SECONDS_PER_YEAR
        positive = self.long_base_static_discount * math.exp(
            -tau * (rate * self.long_rate_mult_scale + self.long_rate_add_scale))
        negative = self.short_base_static_discount * math.exp(
            tau * (rate * self.short_rate_mult_scale + self.short_rate_add_scale))
        return positive, min(1.0 / discount, negative)


@dataclass(frozen=True)
class BasisParams:
    scenario_spot_up: float
    scenario_spot_down: float
    add_factor: float
    mult_factor: float


@dataclass(frozen=True)
class ContingencyParams:
    peg_loss_threshold: float
    peg_loss_factor: float
    conf_threshold: float
    conf_margin: float
    mm_perp_percent: float
    im_perp_percent: float
    mm_option_percent: float
    im_option_percent: float

    def confidence(self, confidence: float, notional: float) -> float:
        """IM added for a notional whose oracle confidence is below the threshold."""
        if confidence < self.conf_threshold:
            return (1.0 - confidence) * self.conf_margin * notional
        return 0.0


@dataclass(frozen=True)
class SkewParams:
    linear_base_cap: float
    abs_base_cap: float
    linear_c_base: float
    abs_c_base: float
    min_k_star: float
    width_scale: float
    vol_param_static: float
    vol_param_scale: float

    def cap_and_k_star(self, seconds: float, kind: VolShock) -> tuple[float, float]:
        sqrt_tau = math.sqrt(seconds / SECONDS_PER_YEAR)
        if kind is VolShock.LINEAR:
            cap = self.linear_c_base * sqrt_tau + self.linear_base_cap
        else:
            cap = self.abs_c_base * sqrt_tau + self.abs_base_cap
        k_star = max(self.min_k_star, sqrt_tau * self.width_scale * (self.vol_param_static + sqrt_tau * self.vol_param_scale))
        if k_star <= 0.0:
            raise InvalidInput("params.skew_shock.min_k_star", "k* is zero: the skew multiplier divides by it")
        return cap, k_star


def _vol_shock_mode(value: object, field_name: str) -> bool:
    """True for additive vol shocks."""
    text = str(value).strip().lower()
    if text not in ("multiplicative", "additive"):
        raise InvalidInput(field_name, f"expected multiplicative or additive, got {value!r}")
    return text == "additive"


def skew_multiplier(log_strike: float, cap: float, k_star: float) -> float:
    """1 + the twist at log-strike k (k already |k| for ``abs``), bounded by ±cap; never below 0 as a vol factor."""
    x = log_strike * cap / k_star
    return 1.0 + (min(cap, x) if log_strike >= 0.0 else max(-cap, x))


@dataclass(frozen=True)
class ScenarioGridModel:
    """The parameters of a scenario-grid portfolio margin (a preset's ``[margin]`` part)."""

    scenarios: tuple[Scenario, ...]
    vol_shock: VolShockParams
    margin: MarginParams
    basis: BasisParams
    contingency: ContingencyParams
    skew: SkewParams

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], where: str = "params") -> ScenarioGridModel:
        """Parse the tables ``scenarios``, ``vol_shock``, ``margin``, ``basis_contingency``,
        ``other_contingency`` and ``skew_shock`` (the vocabulary of the ``derive.pmrm2`` vectors)."""
        rows = spec.get("scenarios")
        if not isinstance(rows, list) or not rows:
            raise InvalidInput(f"{where}.scenarios", "expected a non-empty list of scenarios")
        scenarios = []
        for index, row in enumerate(rows):
            at = f"{where}.scenarios[{index}]"
            if not isinstance(row, Mapping):
                raise InvalidInput(at, "expected an object {spot_shock, vol_shock, dampening, group}")
            kind = VolShock.parse(row.get("vol_shock", "none"), f"{at}.vol_shock")
            spot_shock = _number(row, "spot_shock", at)
            if kind.is_skew and spot_shock != 1.0:
                raise InvalidInput(f"{at}.spot_shock", "a skew scenario twists the smile and must not move spot "
                                   "(PMRM_2 rejects it)")
            dampening = checked_float(row.get("dampening", 1), f"{at}.dampening")
            group = str(row.get("group", "skew" if kind.is_skew else "regular"))
            scenarios.append(Scenario(spot_shock, kind, dampening, group))
        vol = _table(spec, "vol_shock", where)
        vw = f"{where}.vol_shock"
        margin = _table(spec, "margin", where)
        mw = f"{where}.margin"
        basis = _table(spec, "basis_contingency", where)
        bw = f"{where}.basis_contingency"
        other = _table(spec, "other_contingency", where)
        ow = f"{where}.other_contingency"
        skew = _table(spec, "skew_shock", where)
        sw = f"{where}.skew_shock"
        return cls(
            scenarios=tuple(scenarios),
            vol_shock=VolShockParams(
                _number(vol, "vol_range_up", vw), _number(vol, "vol_range_down", vw),
                _number(vol, "short_term_power", vw, minimum=None), _number(vol, "long_term_power", vw, minimum=None),
                _number(vol, "dte_floor_days", vw) * DAY, _number(vol, "min_vol_up_shock", vw),
                _vol_shock_mode(vol.get("mode", "multiplicative"), f"{vw}.mode")),
            margin=MarginParams(
                _number(margin, "im_factor", mw), _number(margin, "mm_factor", mw),
                _number(margin, "long_base_static_discount", mw), _number(margin, "short_base_static_discount", mw),
                _number(margin, "long_rate_mult_scale", mw, minimum=None),
                _number(margin, "long_rate_add_scale", mw, minimum=None),
                _number(margin, "short_rate_mult_scale", mw, minimum=None),
                _number(margin, "short_rate_add_scale", mw, minimum=None)),
            basis=BasisParams(_number(basis, "scenario_spot_up", bw), _number(basis, "scenario_spot_down", bw),
                              _number(basis, "add_factor", bw, minimum=None),
                              _number(basis, "mult_factor", bw, minimum=None)),
            contingency=ContingencyParams(
                _number(other, "peg_loss_threshold", ow), _number(other, "peg_loss_factor", ow),
                _number(other, "conf_threshold", ow), _number(other, "conf_margin", ow),
                _number(other, "mm_perp_percent", ow), _number(other, "im_perp_percent", ow),
                _number(other, "mm_option_percent", ow), _number(other, "im_option_percent", ow)),
            skew=SkewParams(
                _number(skew, "linear_base_cap", sw, minimum=None), _number(skew, "abs_base_cap", sw, minimum=None),
                _number(skew, "linear_c_base", sw, minimum=None), _number(skew, "abs_c_base", sw, minimum=None),
                _number(skew, "min_k_star", sw), _number(skew, "width_scale", sw, minimum=None),
                _number(skew, "vol_param_static", sw, minimum=None), _number(skew, "vol_param_scale", sw, minimum=None)),
        )

    # ------------------------------------------------------------------------- evaluation

    def evaluate(self, portfolio: OptionPortfolio) -> MarginReport:
        """The margin report of one portfolio: the exact, scalar path."""
        return _evaluate(self, portfolio)


# ----------------------------------------------------------------------------- portfolio


@dataclass(frozen=True)
class OptionHolding:
    strike: float
    is_call: bool
    amount: float  # signed: negative = short
    vol: float


@dataclass(frozen=True)
class ExpiryHolding:
    """The options of one expiry with the feeds the margin reads for it."""

    seconds: float           # time to expiry; 0 once expired (the option is then worth its intrinsic value)
    forward_fixed: float     # the part of the forward already fixed by the settlement average (moves with nothing)
    forward_variable: float  # the part that moves with a spot shock: F(s) = variable·s + fixed
    rate: float              # already floored at 0 (see :func:`build_portfolio`)
    confidence: float        # min of the forward, rate and vol confidences
    options: tuple[OptionHolding, ...]

    @property
    def forward(self) -> float:
        return self.forward_variable + self.forward_fixed

    @cached_property
    def rows(self) -> tuple[tuple[float, float, bool, float, float], ...]:
        """(strike, ln strike, is_call, amount, vol) per option, for the pricing loop."""
        return tuple((o.strike, math.log(o.strike) if o.strike > 0.0 else -math.inf, o.is_call, o.amount, o.vol)
                     for o in self.options)

    @cached_property
    def sqrt_tau(self) -> float:
        return math.sqrt(self.seconds / SECONDS_PER_YEAR)

    @property
    def discount(self) -> float:
        return discount_factor(self.rate, self.seconds)


@dataclass(frozen=True)
class PerpHolding:
    amount: float = 0.0
    price: float = 0.0
    confidence: float = 1.0
    unrealised_pnl: float = 0.0
    unrealised_funding: float = 0.0

    @property
    def value(self) -> float:
        return self.unrealised_pnl + self.unrealised_funding


@dataclass(frozen=True)
class CollateralHolding:
    name: str
    amount: float
    price: float
    confidence: float = 1.0
    risk_cancelling: bool = False
    mm_haircut: float = 0.0
    im_haircut: float = 0.0


@dataclass(frozen=True)
class OptionPortfolio:
    spot: float
    expiries: tuple[ExpiryHolding, ...] = ()
    perp: PerpHolding = field(default_factory=PerpHolding)
    collaterals: tuple[CollateralHolding, ...] = ()
    cash: float = 0.0
    spot_confidence: float = 1.0
    stable_price: float = 1.0

    @property
    def portfolio_confidence(self) -> float:
        """Spot confidence, and the perp's only when a perp is held."""
        if self.perp.amount != 0.0:
            return min(self.spot_confidence, self.perp.confidence)
        return self.spot_confidence

    def collateral_value(self, collateral: CollateralHolding) -> float:
        """Collateral valued in the stable (cash) unit."""
        return collateral.amount * collateral.price / self.stable_price


# ----------------------------------------------------------------------------- report


@dataclass(frozen=True)
class WorstScenario:
    index: int         # position in the model's scenario list
    pnl: float
    scenario: Scenario


@dataclass(frozen=True)
class ExpiryReport:
    seconds: float
    forward: float
    discount: float
    mtm: float
    vol_up_multiplier: float
    vol_down_multiplier: float
    vol_up_shift: float
    vol_down_shift: float
    static_discount_positive: float
    static_discount_negative: float
    basis_contingency: float
    naked_shorts: float
    confidence: float


@dataclass(frozen=True)
class MarginReport:
    """Why the margin is what it is: every figure the requirement is built from."""

    im: float                     # initial margin surplus (negative: risk-adding trades are refused)
    mm: float                     # maintenance margin surplus (negative: liquidatable)
    mtm: float                    # portfolio mark-to-market including cash
    option_mtm: float
    perp_mtm: float
    collateral_mtm: float
    cash: float
    basis_contingency: float      # ≤ 0, a loss like a scenario's
    mm_contingency: float         # ≥ 0, subtracted from both IM and MM
    im_contingency: float         # ≥ 0, subtracted from IM only
    contingencies: dict[str, float]
    im_factor: float              # after the peg-loss add-on
    mm_factor: float
    min_span: float               # min(basis contingency, every scenario PnL)
    worst_scenario: int | None    # index of the scenario that set min_span; None when the basis contingency did
    worst_by_group: dict[str, WorstScenario]
    scenario_pnls: tuple[float, ...]
    scenarios: tuple[Scenario, ...]
    greeks: Greeks
    expiries: tuple[ExpiryReport, ...]

    @property
    def initial_margin_requirement(self) -> float:
        """IM as a requirement (≥ 0 amount the account must hold above its MtM losses)."""
        return self.mtm - self.im

    @property
    def maintenance_margin_requirement(self) -> float:
        return self.mtm - self.mm

    def worst_loss(self, group: str) -> float:
        """Lowest scenario PnL of a group (0 when the grid has no scenario in it)."""
        worst = self.worst_by_group.get(group)
        return worst.pnl if worst is not None else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (the CLI's ``--json`` and the API share these names)."""
        return {
            "im": self.im, "mm": self.mm, "mtm": self.mtm, "option_mtm": self.option_mtm, "perp_mtm": self.perp_mtm,
            "collateral_mtm": self.collateral_mtm, "cash": self.cash,
            "initial_margin_requirement": self.initial_margin_requirement,
            "maintenance_margin_requirement": self.maintenance_margin_requirement,
            "basis_contingency": self.basis_contingency, "mm_contingency": self.mm_contingency,
            "im_contingency": self.im_contingency, "contingencies": dict(self.contingencies),
            "im_factor": self.im_factor, "mm_factor": self.mm_factor, "min_span": self.min_span,
            "worst_scenario": self.worst_scenario,
            "worst_by_group": {group: {"index": w.index, "pnl": w.pnl, "spot_shock": w.scenario.spot_shock,
                                       "vol_shock": w.scenario.vol_shock.value, "dampening": w.scenario.dampening}
                               for group, w in self.worst_by_group.items()},
            "scenario_pnls": [{"index": i, "group": s.group, "spot_shock": s.spot_shock, "vol_shock": s.vol_shock.value,
                               "dampening": s.dampening, "pnl": pnl}
                              for i, (s, pnl) in enumerate(zip(self.scenarios, self.scenario_pnls))],
            "greeks": {"delta": self.greeks.delta, "gamma": self.greeks.gamma, "vega": self.greeks.vega,
                       "theta": self.greeks.theta},
            "expiries": [vars(e) for e in self.expiries],
        }


# ----------------------------------------------------------------------------- the scalar path


def _value(rows: tuple[tuple[float, float, bool, float, float], ...], forward: float, sqrt_tau: float,
           discount: float, factors: Sequence[float] | float, min_vol: float, shift: float = 0.0) -> float:
    """Σ amount·Black-76 over ``rows`` = (strike, ln strike, is_call, amount, vol) at one forward.

    Black-76 inlined for speed (this loop is the exact path's whole cost); the limits are
    :func:`.black76.prices_unchecked`'s: v = 0 intrinsic, v ≥ 24 the limit, F = 0, K = 0, caps.
    ``factors`` scales each vol: one number for the whole expiry, or one per row (skew twists).
    """
    erfc = math.erfc
    forward_discounted = forward * discount
    log_forward = math.log(forward) if forward > 0.0 else 0.0
    half_forward, min_total_vol, total_shift = 0.5 * forward, max(min_vol, 0.0) * sqrt_tau, shift * sqrt_tau
    # Each row's vol times its factor times √τ is its total vol v.
    scales = repeat(factors * sqrt_tau) if isinstance(factors, float) else [f * sqrt_tau for f in factors]
    total = 0.0
    for (strike, log_strike, is_call, amount, vol), scale in zip(rows, scales):
        total_vol = vol * scale + total_shift
        total_vol = max(total_vol, min_total_vol)
        strike_discounted = strike * discount
        if strike <= 0.0:
            call = forward_discounted
        elif forward <= 0.0:
            call = 0.0
        elif total_vol >= MAX_TOTAL_VOL:
            call = forward_discounted
        elif total_vol <= 0.0:
            call = forward_discounted - strike_discounted if forward > strike else 0.0
        else:
            d1 = (log_forward - log_strike) / total_vol + 0.5 * total_vol
            call = discount * (half_forward * erfc(-d1 * _INV_SQRT2) - 0.5 * strike * erfc((total_vol - d1) * _INV_SQRT2))
            if call < 0.0:
                call = 0.0
            elif call > forward_discounted:
                call = forward_discounted
        if is_call:
            total += call * amount
        else:
            put = call + strike_discounted - forward_discounted
            if put > 0.0:
                total += (min(strike_discounted, put)) * amount
    return total


_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def expiry_value(expiry: ExpiryHolding, discount: float, forward: float, vol_factor: float, min_vol: float,
                 vol_shift: float = 0.0) -> float:
    """Σ amount·Black-76 of an expiry at a forward, each vol scaled, shifted (additive shocks) and
    floored at ``min_vol`` (and at 0)."""
    return _value(expiry.rows, forward, expiry.sqrt_tau, discount, float(vol_factor), min_vol, vol_shift)


def skewed_expiry_value(expiry: ExpiryHolding, discount: float, kind: VolShock, skew: SkewParams) -> float:
    """An expiry revalued with its smile twisted (``linear``: wings up on one side, down on the
    other; ``abs``: both wings up), forward unshocked."""
    forward = expiry.forward
    cap, k_star = skew.cap_and_k_star(expiry.seconds, kind)
    if forward <= 0.0:
        raise InvalidInput("feeds.forward", "a skew scenario needs a positive forward (k = ln K/F)")
    log_forward = math.log(forward)
    factors = []
    for strike, log_strike, _, _, _ in expiry.rows:
        if strike <= 0.0:
            raise InvalidInput("options.strike", "a skew scenario needs a positive strike (k = ln K/F)")
        k = log_strike - log_forward
        if kind is VolShock.ABS:
            k = abs(k)
        factors.append(max(skew_multiplier(k, cap, k_star), 0.0))
    return _value(expiry.rows, forward, expiry.sqrt_tau, discount, factors, 0.0)


def naked_shorts(options: Sequence[OptionHolding]) -> float:
    """Shorts not netted by a long of the same strike (calls and puts net against each other)."""
    net: dict[float, float] = {}
    for option in options:
        net[option.strike] = net.get(option.strike, 0.0) + option.amount
    return sum(-amount for amount in net.values() if amount < 0.0)


@dataclass
class _Expiry:
    holding: ExpiryHolding
    discount: float
    mtm: float
    up: float
    down: float
    up_shift: float
    down_shift: float
    sd_positive: float
    sd_negative: float
    unshocked_vol_values: dict[float, float]  # value at a spot shock, vol unchanged: computed once, as PMRM_2 does


def _evaluate(model: ScenarioGridModel, portfolio: OptionPortfolio) -> MarginReport:
    spot = portfolio.spot
    c = model.contingency
    portfolio_confidence = portfolio.portfolio_confidence
    perp = portfolio.perp
    contingencies = {"perp_mm": 0.0, "perp_im": 0.0, "option_mm": 0.0, "option_im": 0.0, "collateral_mm": 0.0,
                     "collateral_im": 0.0, "confidence_im": 0.0}

    perp_notional = abs(perp.amount) * spot
    contingencies["perp_mm"] = perp_notional * c.mm_perp_percent
    contingencies["perp_im"] = perp_notional * c.im_perp_percent
    contingencies["confidence_im"] += c.confidence(portfolio_confidence, perp_notional)

    expiries: list[_Expiry] = []
    reports: list[ExpiryReport] = []
    basis_total = 0.0
    option_mtm = 0.0
    greeks = Greeks(delta=perp.amount)
    for holding in portfolio.expiries:
        discount = holding.discount
        forward = holding.forward
        mtm = expiry_value(holding, discount, forward, 1.0, 0.0)
        option_mtm += mtm
        up_value = expiry_value(holding, discount, holding.forward_variable * model.basis.scenario_spot_up
                                + holding.forward_fixed, 1.0, 0.0)
        down_value = expiry_value(holding, discount, holding.forward_variable * model.basis.scenario_spot_down
                                  + holding.forward_fixed, 1.0, 0.0)
        basis = min(up_value - mtm, down_value - mtm, 0.0) * (
            model.basis.add_factor + model.basis.mult_factor * holding.seconds / SECONDS_PER_YEAR)
        basis_total += basis
        up, down = model.vol_shock.multipliers(holding.seconds)
        up_shift, down_shift = model.vol_shock.shifts(holding.seconds)
        sd_positive, sd_negative = model.margin.static_discounts(holding.seconds, holding.rate, discount)
        naked = naked_shorts(holding.options)
        contingencies["option_mm"] += naked * spot * c.mm_option_percent
        contingencies["option_im"] += naked * spot * c.im_option_percent
        confidence = min(portfolio_confidence, holding.confidence)
        gross = sum(abs(option.amount) for option in holding.options)
        contingencies["confidence_im"] += c.confidence(confidence, gross * spot)
        cached = {1.0: mtm, model.basis.scenario_spot_up: up_value, model.basis.scenario_spot_down: down_value}
        expiries.append(_Expiry(holding, discount, mtm, up, down, up_shift, down_shift, sd_positive, sd_negative,
                                cached))
        reports.append(ExpiryReport(holding.seconds, forward, discount, mtm, up, down, up_shift, down_shift,
                                    sd_positive, sd_negative, basis,
                                    naked, confidence))
        # Greeks per unit of spot: the forward moves by its variable part only.
        spot_per_forward = holding.forward_variable / spot if spot > 0.0 else 0.0
        for option in holding.options:
            g = greeks_unchecked(forward, option.strike, option.vol, holding.seconds, discount, option.is_call)
            greeks = greeks + Greeks(g.delta * spot_per_forward, g.gamma * spot_per_forward * spot_per_forward,
                                     g.vega, g.theta).scaled(option.amount)

    collateral_mtm = 0.0
    risk_cancelling_value = 0.0
    for collateral in portfolio.collaterals:
        value = portfolio.collateral_value(collateral)
        collateral_mtm += value
        contingencies["collateral_mm"] += value * collateral.mm_haircut
        contingencies["collateral_im"] += value * collateral.im_haircut
        # Collateral is arranged before the perp feed is read: its confidence meets spot's only.
        contingencies["confidence_im"] += c.confidence(min(collateral.confidence, portfolio.spot_confidence), value)
        if collateral.risk_cancelling:
            risk_cancelling_value += value
            if spot > 0.0:
                greeks = greeks + Greeks(delta=value / spot)

    pnls = tuple(_scenario_pnl(model, scenario, expiries, perp, risk_cancelling_value)
                 for scenario in model.scenarios)

    min_span = basis_total
    worst: int | None = None
    for index, pnl in enumerate(pnls):
        if pnl < min_span:
            min_span, worst = pnl, index
    worst_by_group: dict[str, WorstScenario] = {}
    for index, (scenario, pnl) in enumerate(zip(model.scenarios, pnls)):
        current = worst_by_group.get(scenario.group)
        if current is None or pnl < current.pnl:
            worst_by_group[scenario.group] = WorstScenario(index, pnl, scenario)

    im_factor = model.margin.im_factor
    if portfolio.stable_price < c.peg_loss_threshold:
        im_factor += (c.peg_loss_threshold - portfolio.stable_price) * c.peg_loss_factor
    mm_contingency = contingencies["perp_mm"] + contingencies["option_mm"] + contingencies["collateral_mm"]
    im_contingency = (contingencies["perp_im"] + contingencies["option_im"] + contingencies["collateral_im"]
                      + contingencies["confidence_im"])
    mtm = perp.value + option_mtm + collateral_mtm + portfolio.cash
    return MarginReport(
        im=min_span * im_factor - im_contingency - mm_contingency + mtm,
        mm=min_span * model.margin.mm_factor - mm_contingency + mtm,
        mtm=mtm, option_mtm=option_mtm, perp_mtm=perp.value, collateral_mtm=collateral_mtm, cash=portfolio.cash,
        basis_contingency=basis_total, mm_contingency=mm_contingency, im_contingency=im_contingency,
        contingencies=contingencies, im_factor=im_factor, mm_factor=model.margin.mm_factor, min_span=min_span,
        worst_scenario=worst, worst_by_group=worst_by_group, scenario_pnls=pnls, scenarios=model.scenarios,
        greeks=greeks, expiries=tuple(reports))


def _scenario_pnl(model: ScenarioGridModel, scenario: Scenario, expiries: Iterable[_Expiry], perp: PerpHolding,
                  risk_cancelling_value: float) -> float:
    s, dampening, kind = scenario.spot_shock, scenario.dampening, scenario.vol_shock
    skew = kind.is_skew
    pnl = 0.0
    if perp.amount != 0.0:
        pnl += perp.amount * ((s - 1.0) * perp.price) * dampening  # the perp moves with its own price, not spot
    for expiry in expiries:
        holding = expiry.holding
        if skew:
            value = skewed_expiry_value(holding, expiry.discount, kind, model.skew)
        else:
            if kind is VolShock.UP:
                factor, shift, min_vol = expiry.up, expiry.up_shift, model.vol_shock.min_vol_up_shock
            elif kind is VolShock.DOWN:
                factor, shift, min_vol = expiry.down, expiry.down_shift, 0.0
            else:
                factor, shift, min_vol = 1.0, 0.0, 0.0
            cached = expiry.unshocked_vol_values.get(s) if kind is VolShock.NONE else None
            if cached is not None:
                value = cached
            else:
                value = expiry_value(holding, expiry.discount, holding.forward_variable * s + holding.forward_fixed,
                                     factor, min_vol, shift)
        value *= expiry.sd_positive if value >= 0.0 else expiry.sd_negative
        expiry_pnl = (value - expiry.mtm) * dampening
        # A skew twist's gain stands for the twist the other way: each expiry counts −|PnL|.
        pnl += -abs(expiry_pnl) if skew else expiry_pnl
    pnl += risk_cancelling_value * (s - 1.0) * dampening
    return pnl
