"""Raw SVI volatility slice, as Derive's vol feed evaluates it (lyra-utils ``SVI.sol``).

Reference: ../shared/reference/options.md §2. A slice carries its own forward and its own time
τ (years; it need not equal the option's time to expiry). For a strike K:

1. k = ln(K / F_svi), bounded to ±B with B = 4·√(a + b·σ) (far strikes reuse the boundary's vol;
   without this bound 81 of Derive's 138 portfolio cases fail);
2. total variance w = a + b·(ρ·(k − m) + √((k − m)² + σ²)); w < 0 is a malformed slice and is
   refused, w above the cap (144 in the library version read) is capped;
3. σ_K = √(w / τ); K = 0 gives 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...core.errors import InvalidInput
from .black76 import checked_float

TOTAL_VARIANCE_CAP = 144.0
"""lyra-utils ``MAX_TOTAL_VAR`` (144e18) in the version read; binds only where Black-76 is at its limit anyway."""
LOG_STRIKE_SCALE = 4.0
"""lyra-utils ``TOTAL_VOL_SCALAR``: B = 4·√(a + b·σ)."""


@dataclass(frozen=True)
class SviSlice:
    """One expiry's raw SVI parameters with the slice's own forward and τ (years)."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float
    forward: float
    tau: float
    cap: float = TOTAL_VARIANCE_CAP

    def __post_init__(self) -> None:
        where = "svi"
        checked_float(self.a, f"{where}.a", minimum=None)
        checked_float(self.b, f"{where}.b")
        rho = checked_float(self.rho, f"{where}.rho", minimum=None)
        if not -1.0 <= rho <= 1.0:
            raise InvalidInput(f"{where}.rho", f"must be within [-1, 1], got {rho!r}")
        checked_float(self.m, f"{where}.m", minimum=None)
        checked_float(self.sigma, f"{where}.sigma")
        checked_float(self.forward, f"{where}.forward", strict=True)
        checked_float(self.tau, f"{where}.tau", strict=True)
        checked_float(self.cap, f"{where}.cap", strict=True)
        if self.a + self.b * self.sigma < 0.0:
            raise InvalidInput(f"{where}.a", f"a + b·sigma must not be negative (the log-strike bound is its root), "
                               f"got {self.a + self.b * self.sigma!r}")

    @classmethod
    def parse(cls, data: object, where: str = "svi") -> SviSlice:
        """From a mapping of decimal strings/numbers ``{a, b, rho, m, sigma, forward, tau}``."""
        if not isinstance(data, dict):
            raise InvalidInput(where, "expected an object {a, b, rho, m, sigma, forward, tau}")
        values = {}
        for key in ("a", "b", "rho", "m", "sigma", "forward", "tau"):
            if key not in data:
                raise InvalidInput(f"{where}.{key}", "missing")
            values[key] = checked_float(data[key], f"{where}.{key}", minimum=None)
        try:
            return cls(**values)
        except InvalidInput as error:  # re-root the field under ``where``
            raise InvalidInput(where + error.field[len("svi"):], error.message) from None

    @property
    def log_strike_bound(self) -> float:
        return LOG_STRIKE_SCALE * math.sqrt(self.a + self.b * self.sigma)

    def total_variance(self, strike: float) -> float:
        """w(K), bounded log-strike, capped; refuses a negative w."""
        bound = self.log_strike_bound
        ratio = strike / self.forward
        k = -bound if ratio <= 0.0 else min(max(math.log(ratio), -bound), bound)
        shifted = k - self.m
        w = self.a + self.b * (self.rho * shifted + math.sqrt(shifted * shifted + self.sigma * self.sigma))
        if w < 0.0:
            raise InvalidInput("svi", f"negative total variance {w!r} at strike {strike!r}: a malformed slice")
        return min(w, self.cap)

    def vol(self, strike: object, field: str = "strike") -> float:
        """Implied volatility at ``strike`` (0 at strike 0)."""
        value = checked_float(strike, field)
        if value == 0.0:
            return 0.0
        return math.sqrt(self.total_variance(value) / self.tau)

    def vols(self, strikes: np.ndarray) -> np.ndarray:
        """Vectorized :meth:`vol` (strikes already validated ≥ 0)."""
        strikes = np.asarray(strikes, dtype=np.float64)
        bound = self.log_strike_bound
        ratio = strikes / self.forward
        with np.errstate(divide="ignore"):
            k = np.clip(np.log(np.where(ratio > 0.0, ratio, 1.0)), -bound, bound)
        k = np.where(ratio > 0.0, k, -bound)
        shifted = k - self.m
        w = self.a + self.b * (self.rho * shifted + np.sqrt(shifted * shifted + self.sigma * self.sigma))
        if np.any(w < 0.0):
            raise InvalidInput("svi", "negative total variance: a malformed slice")
        return np.where(strikes > 0.0, np.sqrt(np.minimum(w, self.cap) / self.tau), 0.0)
