"""Oracle prices: index aggregation, oracle guards, TWAP and mark-price rules.

A venue liquidates against a number it did not trade at: an index built from other markets,
a validator median, a mark price blended from several of them. This module turns raw quotes
into that number and, just as importantly, says when the number must not be trusted.

Sources (``shared/reference/perp-venues.md``):

- §1.2 Binance mark/index: volume-weighted index of spot sources; a source more than 3% (1% for
  BTC/ETH) from the median of sources is capped at median·(1±cap); a source silent for 5 min gets
  weight 0; mark = median(Price1, Price2, last price), Price2 = index + 30 s MA of basis.
- §3.2 Bybit: the same mark rule with a 5 min basis moving average.
- §4.2 Hyperliquid oracle & mark: weighted medians of sources; mark = median of
  (oracle + 150 s EMA of basis, book median, weighted median of CEX perp mids), topped up with
  the 30 s EMA of the book median when one component is missing.
- §6.2 Drift oracle guards: non-positive and "too volatile" (max/min vs TWAP > 5) prices are
  invalid; liquidation is refused when the oracle diverges from its 5 min TWAP by more than
  max(configured, 50%).

Conventions, chosen once here so every caller gets the same answer:

- Time is seconds (int, Decimal or decimal string) passed in by the caller. Nothing here reads
  a clock: the same inputs give the same reading, which replay and simulation depend on.
- All arithmetic is ``Decimal``; floats are refused (see :func:`solvent.core.numbers.to_decimal`).
- :func:`median` of an even count is the mean of the two middle values.
- :func:`weighted_median` is the *lower* weighted median: the smallest value whose cumulative
  weight (values sorted ascending) reaches at least half of the total. When the cumulative
  weight hits exactly half, that element is chosen, not the mean with the next one. The result
  is always one of the inputs, as in stake-weighted validator medians, so no source can pull
  it to a price nobody quoted.
- A reading that is stale or out of bounds carries its status; callers get the price through
  :meth:`OracleReading.require_usable`, which raises :class:`OracleError` instead of handing
  back a number that only looks good.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import Enum
from typing import cast

from .errors import InvalidInput, SolventError
from .numbers import ONE, ZERO, non_negative, positive, to_decimal, to_int

# --- Published parameters (see the module docstring for the sections they come from) -------

# Venue values (deviation caps, weights, EMA spans) live in the presets' [oracle] and [mark] tables.
BINANCE_BASIS_WINDOW_SECONDS = Decimal(30)  # since 2025-09-18 08:01 UTC (was 60 s)
DRIFT_MIN_TWAP_DIVERGENCE = Decimal("0.5")
DRIFT_TOO_VOLATILE_RATIO = Decimal(5)

INDEX_METHODS = ("weighted_mean", "weighted_median")


# --- Small validation helpers ---------------------------------------------------------------


def _seconds(value: object, field_name: str) -> Decimal:
    """A point in time in seconds. Any finite number: simulations often start at zero."""
    return to_decimal(value, field_name)


def _not_in_future(timestamp: Decimal, now: Decimal, field_name: str) -> None:
    """A sample stamped after ``now`` means the caller mixed clocks; refuse rather than guess."""
    if timestamp > now:
        raise InvalidInput(field_name, f"timestamp {timestamp} is after now ({now})")


def _optional(value: object, parse, field_name: str) -> Decimal | None:
    return None if value is None else parse(value, field_name)


# --- Medians --------------------------------------------------------------------------------


def median(values: Iterable[object], field_name: str = "values") -> Decimal:
    """The median; for an even count, the mean of the two middle values.

    The plain median is what Binance and Bybit take over (Price1, Price2, last price) and what
    the index guard compares each source against.
    """
    parsed = [to_decimal(value, f"{field_name}[{i}]") for i, value in enumerate(values)]
    if not parsed:
        raise InvalidInput(field_name, "must not be empty")
    return _median(parsed)


def _median(values: Sequence[Decimal]) -> Decimal:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def weighted_median(values: Iterable[object], weights: Iterable[object]) -> Decimal:
    """The lower weighted median of ``values`` under ``weights``.

    Sort by value and walk up the cumulative weight; the first value at which it reaches at
    least half the total is the answer. On an exact tie at one half the lower element wins
    (e.g. values 1, 2, 3, 4 with equal weights give 2, not 2.5): the result is always an
    input value, so a single source cannot move it to a price no one quoted. Zero-weight
    values never win.
    """
    values = list(values)
    weights = list(weights)
    if not values:
        raise InvalidInput("values", "must not be empty")
    if len(weights) != len(values):
        raise InvalidInput("weights", f"expected {len(values)} weights, got {len(weights)}")
    pairs = [
        (to_decimal(value, f"values[{i}]"), non_negative(weight, f"weights[{i}]"))
        for i, (value, weight) in enumerate(zip(values, weights))
    ]
    if sum((weight for _, weight in pairs), ZERO) == 0:
        raise InvalidInput("weights", "total weight must be positive")
    return _weighted_median(pairs)


def _weighted_median(pairs: Sequence[tuple[Decimal, Decimal]]) -> Decimal:
    """Lower weighted median of validated (value, weight) pairs with a positive total."""
    total = sum((weight for _, weight in pairs), ZERO)
    cumulative = ZERO
    for value, weight in sorted(pairs, key=lambda pair: pair[0]):
        cumulative += weight
        if cumulative * 2 >= total:  # compare doubled: no division, no rounding
            return value
    raise AssertionError("unreachable: cumulative weight reaches the total")


# --- Readings -------------------------------------------------------------------------------


class OracleStatus(str, Enum):
    """How far a price can be trusted.

    - OK: fresh, within bounds.
    - DEVIATED: a source was capped toward the median (Binance §1.2). Usable, but flagged.
    - DIVERGENT: too far from its own TWAP (Drift ``is_oracle_too_divergent_with_twap_5min``).
      Margin may still be computed but liquidation is refused, as in Drift: a spike must not
      liquidate anyone before it has lasted.
    - STALE: not enough fresh data. Not usable.
    - INVALID: non-positive, or "too volatile" against its TWAP (Drift validity classes that
      block both margin and liquidation). Not usable.
    """

    OK = "ok"
    DEVIATED = "deviated"
    DIVERGENT = "divergent"
    STALE = "stale"
    INVALID = "invalid"

    @property
    def severity(self) -> int:
        """Order used to combine checks: a reading is as bad as its worst finding."""
        return _SEVERITY[self]

    def __str__(self) -> str:
        return self.value


_SEVERITY = {
    OracleStatus.OK: 0,
    OracleStatus.DEVIATED: 1,
    OracleStatus.DIVERGENT: 2,
    OracleStatus.STALE: 3,
    OracleStatus.INVALID: 4,
}
_USABLE_FOR = {
    "margin": frozenset({OracleStatus.OK, OracleStatus.DEVIATED, OracleStatus.DIVERGENT}),
    "liquidation": frozenset({OracleStatus.OK, OracleStatus.DEVIATED}),
}


def worse(first: OracleStatus, second: OracleStatus) -> OracleStatus:
    """The more severe of two statuses."""
    return first if first.severity >= second.severity else second


class OracleError(SolventError):
    """A price was asked for but the oracle cannot vouch for one."""

    def __init__(self, status: OracleStatus, reasons: Sequence[str], purpose: str | None = None):
        self.status = status
        self.reasons = tuple(reasons)
        self.purpose = purpose
        use = f" for {purpose}" if purpose else ""
        why = "; ".join(self.reasons) if self.reasons else "no reason recorded"
        super().__init__(f"oracle price not usable{use}: status {status} ({why})")


@dataclass(frozen=True)
class OracleReading:
    """A price together with how far it can be trusted.

    ``price`` may be present on a bad reading for information (dashboards, audit), so never read
    it directly to act on: use :attr:`usable_for_margin`, :attr:`usable_for_liquidation` or
    :meth:`require_usable`. ``timestamp`` is the time the price describes (for an aggregated
    index, the ``now`` it was computed at). ``reasons`` explain every finding, including sources
    left out of an otherwise OK reading.
    """

    price: Decimal | None
    status: OracleStatus
    reasons: tuple[str, ...]
    timestamp: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.price is None and self.status in _USABLE_FOR["margin"]:
            raise InvalidInput("price", f"a reading with status {self.status} needs a price")

    @property
    def usable_for_margin(self) -> bool:
        """OK, DEVIATED or DIVERGENT (Drift computes margin while refusing to liquidate)."""
        return self._usable("margin")

    @property
    def usable_for_liquidation(self) -> bool:
        """Only OK or DEVIATED: liquidating on a stale, invalid or spiking price is irreversible."""
        return self._usable("liquidation")

    def require_usable(self, purpose: str = "liquidation") -> Decimal:
        """The price, or :class:`OracleError` naming the status and reasons.

        ``purpose`` is ``"liquidation"`` (the default, the strictest) or ``"margin"``.
        """
        if not self._usable(purpose):
            raise OracleError(self.status, self.reasons, purpose)
        assert self.price is not None  # guaranteed by __post_init__ for usable statuses
        return self.price

    def with_finding(self, status: OracleStatus, reasons: Sequence[str]) -> OracleReading:
        """This reading with one more check applied: worst status wins, reasons accumulate."""
        return replace(self, status=worse(self.status, status), reasons=self.reasons + tuple(reasons))

    def _usable(self, purpose: str) -> bool:
        if purpose not in _USABLE_FOR:
            raise InvalidInput("purpose", f"expected 'margin' or 'liquidation', got {purpose!r}")
        return self.price is not None and self.status in _USABLE_FOR[purpose]


def assess_oracle_price(price: object, timestamp: object, now: object, *, max_age: object) -> OracleReading:
    """Classify one published oracle price (a validator median, a Pyth feed) at ``now``.

    A non-positive price is a state the feed can be in (Drift's NonPositive), so it becomes an
    INVALID reading rather than an exception; a value that is not a number at all, or a
    timestamp after ``now``, is a caller error and raises :class:`InvalidInput`. A price older
    than ``max_age`` seconds is STALE (Drift StaleForMargin: 120 slots, about 60 s).
    """
    value = to_decimal(price, "price")
    published = _seconds(timestamp, "timestamp")
    current = _seconds(now, "now")
    limit = positive(max_age, "max_age")
    _not_in_future(published, current, "timestamp")
    reading = OracleReading(value, OracleStatus.OK, (), published)
    if value <= 0:
        reading = reading.with_finding(OracleStatus.INVALID, (f"price {value} is not positive",))
    age = current - published
    if age > limit:
        reading = reading.with_finding(OracleStatus.STALE, (f"price is {age}s old (limit {limit}s)",))
    return reading


# --- Index aggregation (Binance §1.2, Hyperliquid §4.2) -------------------------------------


@dataclass(frozen=True)
class SourceQuote:
    """One source's latest price for the index, with its configured weight.

    Validated where it is used (:func:`aggregate_index`), so that an error can name the quote
    by position (``quotes[2].price``) rather than just ``price``.
    """

    source: str
    price: Decimal
    weight: Decimal
    timestamp: Decimal

    def validated(self, prefix: str) -> SourceQuote:
        """A copy with every field parsed to Decimal, errors naming ``prefix.field``."""
        if not isinstance(self.source, str) or not self.source.strip():
            raise InvalidInput(f"{prefix}.source", f"expected a non-empty name, got {self.source!r}")
        return SourceQuote(
            source=self.source,
            price=positive(self.price, f"{prefix}.price"),
            weight=non_negative(self.weight, f"{prefix}.weight"),
            timestamp=_seconds(self.timestamp, f"{prefix}.timestamp"),
        )


def aggregate_index(
    quotes: Iterable[SourceQuote],
    now: object,
    *,
    stale_after: object,
    deviation_cap: object,
    min_sources: int = 1,
    method: str = "weighted_mean",
) -> OracleReading:
    """Combine source quotes into an index reading at ``now``.

    1. A quote older than ``stale_after`` seconds (age strictly greater) gets weight 0, as does
       one configured with weight 0; the rest are the fresh sources.
    2. A fresh source further than ``deviation_cap`` (a fraction: 0.03, 0.01 for BTC/ETH) from
       the plain median of fresh prices is capped at median·(1±cap), not dropped: one bad tick
       then moves the index by a bounded amount, and the reading is flagged DEVIATED.
    3. The index is the ``"weighted_mean"`` (Binance) or ``"weighted_median"`` (Hyperliquid) of
       the capped prices.

    Fewer than ``min_sources`` fresh sources gives STALE; the price is still computed for
    information when at least one is fresh, and is None when none is.
    """
    current = _seconds(now, "now")
    limit = positive(stale_after, "stale_after")
    cap = non_negative(deviation_cap, "deviation_cap")
    if cap >= 1:
        raise InvalidInput("deviation_cap", f"must be below 1, got {cap}")
    required = to_int(min_sources, "min_sources")
    if required < 1:
        raise InvalidInput("min_sources", f"must be at least 1, got {required}")
    if method not in INDEX_METHODS:
        raise InvalidInput("method", f"expected one of {', '.join(INDEX_METHODS)}, got {method!r}")

    parsed = _validated_quotes(quotes, current)
    fresh, reasons = _fresh_sources(parsed, current, limit)
    if not fresh:
        reasons.append(f"no fresh source (need {required})")
        return OracleReading(None, OracleStatus.STALE, tuple(reasons), current)

    capped, cap_reasons = _cap_deviations(fresh, cap)
    reasons.extend(cap_reasons)
    price = _combine(capped, method)

    status = OracleStatus.DEVIATED if cap_reasons else OracleStatus.OK
    if len(fresh) < required:
        status = OracleStatus.STALE
        reasons.append(f"only {len(fresh)} fresh source(s), need {required}")
    return OracleReading(price, status, tuple(reasons), current)


def _validated_quotes(quotes: Iterable[SourceQuote], now: Decimal) -> list[SourceQuote]:
    parsed: list[SourceQuote] = []
    seen: set[str] = set()
    for i, quote in enumerate(quotes):
        prefix = f"quotes[{i}]"
        if not isinstance(quote, SourceQuote):
            raise InvalidInput(prefix, f"expected a SourceQuote, got {type(quote).__name__}")
        quote = quote.validated(prefix)
        _not_in_future(quote.timestamp, now, f"{prefix}.timestamp")
        if quote.source in seen:  # counting a source twice would double its weight
            raise InvalidInput(f"{prefix}.source", f"duplicate source {quote.source!r}")
        seen.add(quote.source)
        parsed.append(quote)
    return parsed


def _fresh_sources(
    quotes: Sequence[SourceQuote], now: Decimal, stale_after: Decimal
) -> tuple[list[SourceQuote], list[str]]:
    """Quotes that count, and a reason for each stale one left out."""
    fresh: list[SourceQuote] = []
    reasons: list[str] = []
    for quote in quotes:
        age = now - quote.timestamp
        if age > stale_after:
            reasons.append(f"{quote.source}: stale, last update {age}s ago (limit {stale_after}s)")
        elif quote.weight > 0:
            fresh.append(quote)
    return fresh, reasons


def _cap_deviations(quotes: Sequence[SourceQuote], cap: Decimal) -> tuple[list[SourceQuote], list[str]]:
    """Clamp each price into [median·(1−cap), median·(1+cap)], saying which ones moved."""
    middle = _median([quote.price for quote in quotes])
    low, high = middle * (ONE - cap), middle * (ONE + cap)
    capped: list[SourceQuote] = []
    reasons: list[str] = []
    for quote in quotes:
        bounded = min(max(quote.price, low), high)
        if bounded != quote.price:
            reasons.append(
                f"{quote.source}: price {quote.price} deviates more than {cap} from the median "
                f"{middle}; capped at {bounded}"
            )
        capped.append(replace(quote, price=bounded))
    return capped, reasons


def _combine(quotes: Sequence[SourceQuote], method: str) -> Decimal:
    if method == "weighted_median":
        return _weighted_median([(quote.price, quote.weight) for quote in quotes])
    total = sum((quote.weight for quote in quotes), ZERO)
    return sum((quote.price * quote.weight for quote in quotes), ZERO) / total


# --- TWAP and divergence guards (Drift §6.2) ------------------------------------------------


@dataclass(frozen=True)
class Twap:
    """Time-weighted average price over a trailing window; immutable.

    Each sample's price holds from its timestamp until the next sample (and the last one until
    ``now``); :meth:`value` integrates that step over [now − window, now], or over the history
    available if it is shorter. :meth:`update` returns a new tracker and keeps only the samples
    still needed, so memory is bounded by the sampling rate times the window. Drift's on-chain
    5 min TWAP is a cheaper running approximation of the same quantity.
    """

    window: Decimal
    samples: tuple[tuple[Decimal, Decimal], ...] = field(default=())  # (timestamp, price)

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", positive(self.window, "window"))

    def update(self, price: object, timestamp: object) -> Twap:
        """A tracker that also knows ``price`` observed at ``timestamp``.

        Timestamps must not go backwards; a second sample at the same instant replaces the first.
        """
        value = positive(price, "price")
        at = _seconds(timestamp, "timestamp")
        kept = list(self.samples)
        if kept and at < kept[-1][0]:
            raise InvalidInput("timestamp", f"{at} is before the previous sample at {kept[-1][0]}")
        if kept and at == kept[-1][0]:
            kept.pop()
        kept.append((at, value))
        return replace(self, samples=_prune(kept, at - self.window))

    def value(self, now: object) -> Decimal | None:
        """The TWAP at ``now``, or None before the first sample."""
        if not self.samples:
            return None
        current = _seconds(now, "now")
        _not_in_future(self.samples[-1][0], current, "now")
        start = max(current - self.window, self.samples[0][0])
        if current == start:
            return self.samples[-1][1]
        area = ZERO
        ends = [timestamp for timestamp, _ in self.samples[1:]] + [current]
        for (timestamp, price), end in zip(self.samples, ends):
            begin = max(timestamp, start)
            if end > begin:
                area += price * (end - begin)
        return area / (current - start)


def _prune(samples: list[tuple[Decimal, Decimal]], start: Decimal) -> tuple[tuple[Decimal, Decimal], ...]:
    """Drop samples wholly before ``start``, keeping the one that sets the price at ``start``."""
    first_needed = 0
    for i, (timestamp, _) in enumerate(samples):
        if timestamp <= start:
            first_needed = i
    return tuple(samples[first_needed:])


def check_twap_divergence(
    price: object,
    twap: object,
    max_divergence: object,
    *,
    min_band: object = DRIFT_MIN_TWAP_DIVERGENCE,
    too_volatile_ratio: object = DRIFT_TOO_VOLATILE_RATIO,
) -> tuple[OracleStatus, tuple[str, ...]]:
    """Compare an oracle price with its TWAP, Drift-style.

    - max(p, twap)/min(p, twap) > ``too_volatile_ratio`` (5): INVALID, blocks margin and
      liquidation (Drift TooVolatile: a 5x move or an 80% drop is more likely a broken feed).
    - |p − twap|/twap > max(``max_divergence``, ``min_band``): DIVERGENT, blocks liquidation
      (Drift ``liquidate_perp`` with its 50% floor; pass ``min_band=0`` to use only your own).
    - otherwise OK.

    Returns ``(status, reasons)``; see :func:`guard_with_twap` to apply it to a reading.
    """
    current = positive(price, "price")
    average = positive(twap, "twap")
    band = max(non_negative(max_divergence, "max_divergence"), non_negative(min_band, "min_band"))
    ratio_limit = positive(too_volatile_ratio, "too_volatile_ratio")

    ratio = max(current, average) / min(current, average)
    if ratio > ratio_limit:
        return OracleStatus.INVALID, (
            f"too volatile: price {current} vs TWAP {average} is a {ratio}x move (limit {ratio_limit}x)",
        )
    divergence = abs(current - average) / average
    if divergence > band:
        return OracleStatus.DIVERGENT, (
            f"price {current} diverges {divergence} from TWAP {average} (limit {band})",
        )
    return OracleStatus.OK, ()


def guard_with_twap(
    reading: OracleReading,
    twap: object | None,
    max_divergence: object,
    *,
    min_band: object = DRIFT_MIN_TWAP_DIVERGENCE,
    too_volatile_ratio: object = DRIFT_TOO_VOLATILE_RATIO,
) -> OracleReading:
    """``reading`` with :func:`check_twap_divergence` applied (worst status wins).

    A reading without a positive price, or a TWAP not yet known (None), is returned unchanged:
    there is nothing to compare, and the reading's own status already says so.
    """
    if twap is None or reading.price is None or reading.price <= 0:
        return reading
    status, reasons = check_twap_divergence(
        reading.price, twap, max_divergence, min_band=min_band, too_volatile_ratio=too_volatile_ratio
    )
    return reading.with_finding(status, reasons)


# --- Binance / Bybit mark price (§1.2, §3.2) ------------------------------------------------


def basis_moving_average(samples: Iterable[tuple[object, object, object]], now: object, window: object) -> Decimal | None:
    """Mean of basis = mid − index over samples with now − window < timestamp ≤ now.

    ``samples`` are (timestamp, mid, index) with mid = (bid1 + ask1)/2. Venues sample once per
    second and take a plain average of the samples in the window (Binance 30 s, Bybit 5 min), so
    this is an arithmetic mean of samples, not a time-weighted one. None when no sample is in
    the window: the caller decides what a missing basis means.
    """
    current = _seconds(now, "now")
    span = positive(window, "window")
    total, count = ZERO, 0
    for i, sample in enumerate(samples):
        timestamp, basis = _basis_sample(sample, f"samples[{i}]")
        _not_in_future(timestamp, current, f"samples[{i}].timestamp")
        if current - timestamp < span:
            total += basis
            count += 1
    return total / count if count else None


def _basis_sample(sample: object, prefix: str) -> tuple[Decimal, Decimal]:
    try:
        timestamp, mid, index = cast(Sequence[object], sample)
    except (TypeError, ValueError):
        raise InvalidInput(prefix, "expected a (timestamp, mid, index) triple") from None
    return (
        _seconds(timestamp, f"{prefix}.timestamp"),
        positive(mid, f"{prefix}.mid") - positive(index, f"{prefix}.index"),
    )


@dataclass(frozen=True)
class BasisAverage:
    """Running moving average of the basis (mid − index) for the Binance/Bybit Price2; immutable.

    ``add`` returns a new instance holding only samples still inside the window.
    """

    window: Decimal = BINANCE_BASIS_WINDOW_SECONDS
    samples: tuple[tuple[Decimal, Decimal, Decimal], ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", positive(self.window, "window"))

    def add(self, timestamp: object, mid: object, index: object) -> BasisAverage:
        at = _seconds(timestamp, "timestamp")
        sample = (at, positive(mid, "mid"), positive(index, "index"))
        if self.samples and at < self.samples[-1][0]:
            raise InvalidInput("timestamp", f"{at} is before the previous sample at {self.samples[-1][0]}")
        kept = tuple(s for s in self.samples if at - s[0] < self.window) + (sample,)
        return replace(self, samples=kept)

    def value(self, now: object) -> Decimal | None:
        """The moving average at ``now`` (None when the window holds no sample)."""
        return basis_moving_average(self.samples, now, self.window)


def binance_mark_price(
    index: object,
    last_price: object,
    funding_rate: object,
    seconds_to_funding: object,
    funding_interval_seconds: object,
    basis_ma: object,
) -> Decimal:
    """Perpetual mark = median(Price1, Price2, last price) (Binance §1.2, Bybit §3.2).

    Price1 = index·(1 + funding_rate·seconds_to_funding/funding_interval) carries the funding
    the next settlement will pay; Price2 = index + moving average of basis follows the book.
    Taking the median means no single input (a thin last trade, a spoofed book) sets the mark.
    """
    index_price = positive(index, "index")
    last = positive(last_price, "last_price")
    rate = to_decimal(funding_rate, "funding_rate")
    interval = positive(funding_interval_seconds, "funding_interval_seconds")
    remaining = non_negative(seconds_to_funding, "seconds_to_funding")
    if remaining > interval:
        raise InvalidInput("seconds_to_funding", f"{remaining} exceeds the funding interval {interval}")
    basis = to_decimal(basis_ma, "basis_ma")

    price1 = index_price * (ONE + rate * remaining / interval)
    price2 = index_price + basis
    return _median([price1, price2, last])


# --- Hyperliquid mark price (§4.2) ----------------------------------------------------------


@dataclass(frozen=True)
class HyperliquidEma:
    """Hyperliquid's time-decayed EMA; immutable.

    On a sample arriving t seconds after the previous update:
    num ← num·e^(−t/τ) + sample·t, den ← den·e^(−t/τ) + t, ema = num/den.
    A sample is weighted by the time since the last update, so the tracker starts from a
    timestamp (:meth:`start`) and a sample at the same instant as the last update adds nothing.
    τ = 150 s for the basis EMA of mark component 1, 30 s for the fallback EMA of component 2.
    """

    tau: Decimal
    last_timestamp: Decimal
    numerator: Decimal = ZERO
    denominator: Decimal = ZERO

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", positive(self.tau, "tau"))
        object.__setattr__(self, "last_timestamp", _seconds(self.last_timestamp, "last_timestamp"))

    @classmethod
    def start(cls, tau: object, timestamp: object) -> HyperliquidEma:
        """An empty EMA whose first sample is weighted by the time since ``timestamp``."""
        return cls(tau=tau, last_timestamp=timestamp)  # type: ignore[arg-type]

    def update(self, sample: object, timestamp: object) -> HyperliquidEma:
        value = to_decimal(sample, "sample")
        at = _seconds(timestamp, "timestamp")
        elapsed = at - self.last_timestamp
        if elapsed < 0:
            raise InvalidInput("timestamp", f"{at} is before the previous update at {self.last_timestamp}")
        decay = (-elapsed / self.tau).exp()
        return replace(
            self,
            last_timestamp=at,
            numerator=self.numerator * decay + value * elapsed,
            denominator=self.denominator * decay + elapsed,
        )

    @property
    def value(self) -> Decimal | None:
        """num/den, or None until some time has been observed."""
        return self.numerator / self.denominator if self.denominator > 0 else None


def hyperliquid_mark_price(
    oracle: object,
    ema_basis: object,
    book_bid: object,
    book_ask: object,
    last_trade: object,
    cex_perp_mids_with_weights: Iterable[tuple[object, object]] | None,
    fallback_ema: object = None,
) -> Decimal:
    """Hyperliquid mark = median of three components (§4.2).

    1. ``oracle + ema_basis`` (150 s EMA of HL mid − oracle);
    2. median(best bid, best ask, last trade) on Hyperliquid;
    3. weighted median of CEX perp mids, given as (mid, weight) pairs
       (:data:`HYPERLIQUID_CEX_PERP_WEIGHTS`).

    A component is missing when any of its inputs is None (or no CEX mid is given). With only
    two, ``fallback_ema`` (the 30 s EMA of component 2) is added so the median is over three.
    Raises :class:`OracleError` (STALE) when that fallback is needed but absent, or fewer than
    two components exist: there is then no mark to stand behind.
    """
    components = [
        c for c in (
            _oracle_component(oracle, ema_basis),
            _book_component(book_bid, book_ask, last_trade),
            _cex_component(cex_perp_mids_with_weights),
        ) if c is not None
    ]
    if len(components) == 3:
        return _median(components)
    if len(components) < 2:
        raise OracleError(OracleStatus.STALE, (f"only {len(components)} of 3 mark components available",))
    fallback = _optional(fallback_ema, positive, "fallback_ema")
    if fallback is None:
        raise OracleError(
            OracleStatus.STALE, ("a mark component is missing and no fallback_ema was given",)
        )
    return _median(components + [fallback])


def _oracle_component(oracle: object, ema_basis: object) -> Decimal | None:
    price = _optional(oracle, positive, "oracle")
    basis = _optional(ema_basis, to_decimal, "ema_basis")
    return None if price is None or basis is None else price + basis


def _book_component(bid: object, ask: object, last: object) -> Decimal | None:
    best_bid = _optional(bid, positive, "book_bid")
    best_ask = _optional(ask, positive, "book_ask")
    last_trade = _optional(last, positive, "last_trade")
    if best_bid is not None and best_ask is not None and best_bid > best_ask:
        raise InvalidInput("book_bid", f"best bid {best_bid} is above best ask {best_ask}")
    if best_bid is None or best_ask is None or last_trade is None:
        return None
    return _median([best_bid, best_ask, last_trade])


def _cex_component(pairs: Iterable[tuple[object, object]] | None) -> Decimal | None:
    if pairs is None:
        return None
    parsed: list[tuple[Decimal, Decimal]] = []
    for i, pair in enumerate(pairs):
        prefix = f"cex_perp_mids_with_weights[{i}]"
        try:
            mid, weight = pair
        except (TypeError, ValueError):
            raise InvalidInput(prefix, "expected a (mid, weight) pair") from None
        parsed.append((positive(mid, f"{prefix}.mid"), non_negative(weight, f"{prefix}.weight")))
    if sum((weight for _, weight in parsed), ZERO) == 0:
        return None
    return _weighted_median(parsed)
