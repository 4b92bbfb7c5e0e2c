"""Dynamic margin: volatility estimators, margin models that use them, and their backtest.

Statistics over a price history, in float64 (NumPy): these are estimates, as the clearing houses
that publish such models compute them; nothing here touches the ledger. See docs/oracle.md.

- Volatility: EWMA (RiskMetrics: σ²_t = λ·σ²_{t−1} + (1−λ)·r²_{t−1}) and realized (root mean
  square of the last ``window`` log returns). Both are forecasts for period t from returns before t.
- Margin rate (a fraction of notional, per side): ``scaled``: z_c·σ_t·√h (normal quantile at the
  confidence c over a margin period of risk of h periods); ``fhs``: filtered historical
  simulation, the c-quantile of σ_t times the h-period sums of past standardized returns r_i/σ_i.
- Anti-procyclicality, EMIR RTS 153/2013 Art. 28(1): (a) a buffer of at least 25% of margin,
  released when margin rises and rebuilt when it falls; (b) at least 25% weight on stressed
  observations (the highest volatility seen in the lookback); (c) a floor at the margin computed
  with volatility over a 10-year lookback.
- Backtest: a breach is an h-period loss (for a long: price fall; for a short: rise) above the
  margin posted at the start of the period. Kupiec's proportion-of-failures and Christoffersen's
  independence likelihood ratios (chi-square, 1 degree of freedom), and procyclicality metrics:
  the peak-to-trough margin ratio and the largest n-period increase.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from ..core.errors import InvalidInput

MODELS = ("scaled", "fhs")
ESTIMATORS = ("ewma", "realized")
APC_OPTIONS = ("none", "buffer", "stressed", "floor")
EMIR_BUFFER = 0.25  # Art. 28(1)(a): at least 25%
EMIR_STRESSED_WEIGHT = 0.25  # Art. 28(1)(b): at least 25%
EMIR_FLOOR_YEARS = 10  # Art. 28(1)(c)


@dataclass(frozen=True)
class MarginSpec:
    """A margin model's parameters (each checked where it is parsed, errors naming the option)."""

    model: str = "scaled"
    estimator: str = "ewma"
    lam: float = 0.94
    window: int = 30  # realized volatility window, and the EWMA's seed
    confidence: float = 0.99
    mpor: int = 1  # margin period of risk, in periods
    lookback: int = 500  # FHS: standardized returns kept
    apc: str = "none"
    buffer: float = EMIR_BUFFER
    stressed_weight: float = EMIR_STRESSED_WEIGHT
    periods_per_year: int = 365
    floor_years: int = EMIR_FLOOR_YEARS
    min_rate: float = 0.0

    def checked(self) -> MarginSpec:
        if self.model not in MODELS:
            raise InvalidInput("model", f"expected one of {', '.join(MODELS)}, got {self.model!r}")
        if self.estimator not in ESTIMATORS:
            raise InvalidInput("estimator", f"expected one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        if self.apc not in APC_OPTIONS:
            raise InvalidInput("apc", f"expected one of {', '.join(APC_OPTIONS)}, got {self.apc!r}")
        if not 0 < self.lam < 1:
            raise InvalidInput("lambda", f"must be in (0, 1), got {self.lam}")
        if not 0.5 < self.confidence < 1:
            raise InvalidInput("confidence", f"must be in (0.5, 1), got {self.confidence}")
        for name, value, low in (("window", self.window, 2), ("mpor", self.mpor, 1), ("lookback", self.lookback, 10),
                                 ("periods_per_year", self.periods_per_year, 1), ("floor_years", self.floor_years, 1)):
            if value < low:
                raise InvalidInput(name, f"must be at least {low}, got {value}")
        if self.apc == "buffer" and self.buffer < EMIR_BUFFER:
            raise InvalidInput("buffer", f"EMIR Art. 28(1)(a) asks for at least {EMIR_BUFFER}, got {self.buffer}")
        if self.apc == "stressed" and not EMIR_STRESSED_WEIGHT <= self.stressed_weight <= 1:
            raise InvalidInput("stressed_weight", f"EMIR Art. 28(1)(b) asks for at least {EMIR_STRESSED_WEIGHT}, "
                               f"got {self.stressed_weight}")
        if self.min_rate < 0:
            raise InvalidInput("min_rate", f"must not be negative, got {self.min_rate}")
        return self


# ---------------------------------------------------------------------------- volatility


def log_returns(closes: np.ndarray) -> np.ndarray:
    closes = np.asarray(closes, dtype=float)
    if closes.ndim != 1 or len(closes) < 3:
        raise InvalidInput("close", "need at least 3 prices")
    if not np.all(np.isfinite(closes)) or np.any(closes <= 0):
        raise InvalidInput("close", "every price must be positive and finite")
    return np.diff(np.log(closes))


def ewma_volatility(returns: np.ndarray, lam: float, seed: int) -> np.ndarray:
    """σ_t for each period t (a forecast from returns before t); NaN until ``seed`` returns are known.

    Seeded with the mean square of the first ``seed`` returns, then σ²_t = λσ²_{t−1} + (1−λ)r²_{t−1}.
    """
    n = len(returns)
    sigma2 = np.full(n, np.nan)
    if n <= seed:
        return sigma2
    sigma2[seed] = float(np.mean(returns[:seed] ** 2))
    for t in range(seed + 1, n):
        sigma2[t] = lam * sigma2[t - 1] + (1 - lam) * returns[t - 1] ** 2
    return np.sqrt(sigma2)


def realized_volatility(returns: np.ndarray, window: int) -> np.ndarray:
    """σ_t = √(mean of r² over the ``window`` returns before t); NaN before that."""
    n = len(returns)
    out = np.full(n, np.nan)
    if n <= window:
        return out
    squares = np.concatenate([[0.0], np.cumsum(returns ** 2)])
    t = np.arange(window, n)
    out[window:] = np.sqrt((squares[t] - squares[t - window]) / window)
    return out


def volatility(returns: np.ndarray, spec: MarginSpec) -> np.ndarray:
    if spec.estimator == "ewma":
        return ewma_volatility(returns, spec.lam, spec.window)
    return realized_volatility(returns, spec.window)


# ---------------------------------------------------------------------------- margin rates


def _rate_from_log_quantiles(low: float, high: float) -> tuple[float, float]:
    """(long rate, short rate): the loss fractions at the lower and upper log-return quantiles."""
    return max(0.0, -math.expm1(low)), max(0.0, math.expm1(high))


def _fhs_full_windows(standardized: np.ndarray, sigma: np.ndarray, spec: MarginSpec, long_rate: np.ndarray,
                      short_rate: np.ndarray) -> None:
    """FHS rates at every t whose ``lookback`` past standardized returns are all known, in one pass."""
    h, size = spec.mpor, spec.lookback
    if len(standardized) <= size:
        return
    windows = np.lib.stride_tricks.sliding_window_view(standardized, size)[:-1]  # row k: returns k .. k+size−1
    t = np.arange(size, len(standardized))
    ok = np.all(np.isfinite(windows), axis=1) & np.isfinite(sigma[t])
    if not ok.any():
        return
    rows = windows[ok]
    if h > 1:
        cumulative = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(rows, axis=1)], axis=1)
        rows = cumulative[:, h:] - cumulative[:, :-h]
    low = np.quantile(rows, 1 - spec.confidence, axis=1) * sigma[t[ok]]
    high = np.quantile(rows, spec.confidence, axis=1) * sigma[t[ok]]
    long_rate[t[ok]] = np.maximum(0.0, -np.expm1(low))
    short_rate[t[ok]] = np.maximum(0.0, np.expm1(high))


def margin_rates(returns: np.ndarray, spec: MarginSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per period t: (σ_t, long margin rate, short margin rate) posted at t, NaN while unknown."""
    spec = spec.checked()
    sigma = volatility(returns, spec)
    n = len(returns)
    if spec.apc == "stressed":  # Art. 28(1)(b): weight on the most stressed volatility seen so far
        stressed = np.fmax.accumulate(np.where(np.isnan(sigma), -np.inf, sigma))
        stressed = np.where(np.isfinite(stressed), stressed, np.nan)
        w = spec.stressed_weight
        sigma = np.sqrt((1 - w) * sigma ** 2 + w * stressed ** 2)
    long_rate, short_rate = np.full(n, np.nan), np.full(n, np.nan)
    z = float(stats.norm.ppf(spec.confidence))
    root_h = math.sqrt(spec.mpor)
    standardized = returns / sigma  # NaN where σ is unknown
    if spec.model == "fhs":
        _fhs_full_windows(standardized, sigma, spec, long_rate, short_rate)
    for t in range(n):
        if not np.isfinite(sigma[t]) or np.isfinite(long_rate[t]):
            continue
        if spec.model == "scaled":
            low, high = -z * sigma[t] * root_h, z * sigma[t] * root_h
        else:
            past = standardized[max(0, t - spec.lookback):t]
            past = past[np.isfinite(past)]
            if len(past) < max(spec.mpor, 10):
                continue
            sums = np.convolve(past, np.ones(spec.mpor), mode="valid") if spec.mpor > 1 else past
            low = float(np.quantile(sigma[t] * sums, 1 - spec.confidence))
            high = float(np.quantile(sigma[t] * sums, spec.confidence))
        long_rate[t], short_rate[t] = _rate_from_log_quantiles(low, high)
    if spec.apc == "floor":  # Art. 28(1)(c): the rate at the volatility of the last 10 years of returns
        span = spec.floor_years * spec.periods_per_year
        squares = np.concatenate([[0.0], np.cumsum(returns ** 2)])
        for t in range(n):
            if not np.isfinite(long_rate[t]) or t < 2:
                continue
            start = max(0, t - span)
            sigma_floor = math.sqrt((squares[t] - squares[start]) / (t - start))
            floor_long, floor_short = _rate_from_log_quantiles(-z * sigma_floor * root_h, z * sigma_floor * root_h)
            long_rate[t], short_rate[t] = max(long_rate[t], floor_long), max(short_rate[t], floor_short)
    if spec.apc == "buffer":  # Art. 28(1)(a): posted within [base, (1 + buffer)·base], as close to the last as allowed
        for rates in (long_rate, short_rate):
            posted = math.nan
            for t in range(n):
                base = rates[t]
                if not np.isfinite(base):
                    continue
                posted = (1 + spec.buffer) * base if not np.isfinite(posted) else min(max(posted, base),
                                                                                      (1 + spec.buffer) * base)
                rates[t] = posted
    if spec.min_rate:
        long_rate = np.where(np.isfinite(long_rate), np.maximum(long_rate, spec.min_rate), long_rate)
        short_rate = np.where(np.isfinite(short_rate), np.maximum(short_rate, spec.min_rate), short_rate)
    return sigma, long_rate, short_rate


# ---------------------------------------------------------------------------- tests of a breach series


def kupiec_pof(breaches: int, observations: int, expected_rate: float) -> tuple[float, float]:
    """Kupiec's proportion-of-failures likelihood ratio and its chi-square(1) p-value."""
    if observations <= 0:
        return math.nan, math.nan
    x, n, p = breaches, observations, expected_rate
    observed = x / n
    null = special.xlogy(n - x, 1 - p) + special.xlogy(x, p)
    alternative = special.xlogy(n - x, 1 - observed) + special.xlogy(x, observed)
    ratio = float(max(0.0, -2 * (null - alternative)))
    return ratio, float(stats.chi2.sf(ratio, 1))


def christoffersen_independence(hits: np.ndarray) -> tuple[float, float]:
    """Christoffersen's independence likelihood ratio (does a breach follow a breach more often?)
    and its chi-square(1) p-value; NaN when there is no breach or no non-breach."""
    hits = np.asarray(hits, dtype=bool)
    if len(hits) < 2 or hits.all() or not hits.any():
        return math.nan, math.nan
    before, after = hits[:-1], hits[1:]
    n00 = int(np.sum(~before & ~after))
    n01 = int(np.sum(~before & after))
    n10 = int(np.sum(before & ~after))
    n11 = int(np.sum(before & after))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    null = special.xlogy(n00 + n10, 1 - pi) + special.xlogy(n01 + n11, pi)
    alternative = (special.xlogy(n00, 1 - pi01) + special.xlogy(n01, pi01) + special.xlogy(n10, 1 - pi11)
                   + special.xlogy(n11, pi11))
    ratio = float(max(0.0, -2 * (null - alternative)))
    return ratio, float(stats.chi2.sf(ratio, 1))


def binomial_band(observations: int, rate: float, sigmas: float = 3.0) -> tuple[float, float]:
    """Expected breaches ± ``sigmas`` binomial standard deviations."""
    mean = observations * rate
    spread = sigmas * math.sqrt(observations * rate * (1 - rate))
    return mean - spread, mean + spread


# ---------------------------------------------------------------------------- the backtest


@dataclass
class SideReport:
    side: str
    observations: int
    breaches: int
    breach_rate: float
    expected_rate: float
    expected_band: tuple[float, float]  # 3 binomial standard deviations
    kupiec_lr: float
    kupiec_p: float
    christoffersen_lr: float
    christoffersen_p: float


@dataclass
class BacktestReport:
    spec: dict[str, Any]
    prices: int
    sides: list[SideReport]
    mean_rate: float
    peak_rate: float
    trough_rate: float
    peak_to_trough: float
    n_periods: int
    largest_n_period_increase: float  # as a fraction: 0.5 is +50% of margin within n periods
    largest_increase_at: str | None
    series: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self, with_series: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_series:
            data.pop("series")
        return _finite(data)


def _finite(value: Any) -> Any:
    """NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def backtest(closes: Sequence[float] | np.ndarray, spec: MarginSpec, *, timestamps: Sequence[str] | None = None,
             n_periods: int = 5) -> BacktestReport:
    """Run ``spec`` over ``closes``: margin posted at each price, breaches over the next ``mpor`` periods."""
    spec = spec.checked()
    if n_periods < 1:
        raise InvalidInput("n_days", f"must be at least 1, got {n_periods}")
    closes = np.asarray(closes, dtype=float)
    returns = log_returns(closes)
    sigma, long_rate, short_rate = margin_rates(returns, spec)
    # Margin rate index t is posted at price index t (the forecast from returns before it).
    n_prices = len(closes)
    h = spec.mpor
    sides = []
    for side, rates in (("long", long_rate), ("short", short_rate)):
        posted = np.arange(n_prices - h)
        posted = posted[(posted < len(rates))]
        posted = posted[np.isfinite(rates[posted])]
        moves = closes[posted + h] / closes[posted] - 1
        losses = -moves if side == "long" else moves
        hits = losses > rates[posted]
        count = int(hits.sum())
        observations = len(posted)
        expected = 1 - spec.confidence
        lr, p = kupiec_pof(count, observations, expected)
        # with h > 1 the periods overlap: test independence on every h-th one
        ind_lr, ind_p = christoffersen_independence(hits[::h])
        sides.append(SideReport(side, observations, count, count / observations if observations else math.nan,
                                expected, binomial_band(observations, expected), lr, p, ind_lr, ind_p))
    posted_rate = np.fmax(long_rate, short_rate)
    known = np.isfinite(posted_rate)
    if not known.any():
        raise InvalidInput("close", f"too few prices for the model (need more than {spec.window + 1})")
    values = posted_rate[known]
    peak, trough = float(values.max()), float(values.min())
    increase, at = -math.inf, None
    index = np.flatnonzero(known)
    for t in index:
        if t - n_periods >= 0 and known[t - n_periods] and posted_rate[t - n_periods] > 0:
            change = posted_rate[t] / posted_rate[t - n_periods] - 1
            if change > increase:
                increase, at = float(change), t
    stamps = list(timestamps) if timestamps is not None else [str(i) for i in range(n_prices)]
    series = [{"timestamp": stamps[t], "close": float(closes[t]), "sigma": float(sigma[t]),
               "long_rate": float(long_rate[t]), "short_rate": float(short_rate[t])} for t in index]
    return BacktestReport(
        spec=asdict(spec), prices=n_prices, sides=sides, mean_rate=float(values.mean()), peak_rate=peak,
        trough_rate=trough, peak_to_trough=peak / trough if trough > 0 else math.inf, n_periods=n_periods,
        largest_n_period_increase=increase if math.isfinite(increase) else math.nan,
        largest_increase_at=None if at is None else stamps[at], series=_finite(series))


# ---------------------------------------------------------------------------- built-in scenarios


def scenario(name: str, *, length: int = 2000, seed: int = 7) -> np.ndarray:
    """Synthetic daily closes, deterministic by ``seed``.

    - ``gbm``: lognormal steps at a constant daily volatility of 3%;
    - ``regime``: 3% daily for the first half, then 9% (a stress that margin must follow);
    - ``crash``: 2% daily with a 35% fall spread over five days at two-thirds of the way.
    """
    if length < 50:
        raise InvalidInput("length", f"must be at least 50, got {length}")
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(length - 1)
    if name == "gbm":
        steps = 0.03 * shocks - 0.5 * 0.03 ** 2
    elif name == "regime":
        vol = np.where(np.arange(length - 1) < (length - 1) // 2, 0.03, 0.09)
        steps = vol * shocks - 0.5 * vol ** 2
    elif name == "crash":
        steps = 0.02 * shocks - 0.5 * 0.02 ** 2
        start = 2 * length // 3
        steps[start:start + 5] += math.log(0.65) / 5
    else:
        raise InvalidInput("scenario", f"expected one of {', '.join(SCENARIOS)}, got {name!r}")
    return 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(steps)]))


SCENARIOS = ("gbm", "regime", "crash")
