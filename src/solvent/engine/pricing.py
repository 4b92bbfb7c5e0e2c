"""The price the engine acts on: source quotes in, index and mark out, with guards.

``UpdateSourceQuotes`` carries each market's source quotes (and, optionally, the venue's own book
and funding rate); the engine builds the index by the preset's ``[oracle]`` rule and the mark by
its ``[mark]`` rule with :mod:`solvent.core.oracle`, keeps the running state those rules need
(basis moving averages, EMAs, TWAPs, the last good mark) in ``engine.pricing``, and then moves the
marks exactly as ``UpdateOracle`` does. A stale, invalid, TWAP-divergent reading or a move beyond
the preset's circuit breaker trips a guard (``OracleGuardTripped``): liquidations on that market
pause, or the mark holds at its last good value, as the preset says; the guard clears by rule
(``OracleGuardCleared``). See docs/oracle.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.errors import InvalidInput
from ..core.numbers import ZERO, non_negative, positive, to_decimal, to_int
from ..core.oracle import (
    BasisAverage,
    HyperliquidEma,
    OracleError,
    OracleReading,
    OracleStatus,
    SourceQuote,
    Twap,
    aggregate_index,
    binance_mark_price,
    guard_with_twap,
    hyperliquid_mark_price,
)
from . import commands as c
from .commands import Command, command
from .events import Event, event

if TYPE_CHECKING:
    from .engine import Engine

MAX_MARKETS_PER_COMMAND = 1_000
MAX_QUOTES_PER_MARKET = 64
BOOK_FIELDS = ("bid", "ask", "last", "funding_rate", "cex_perp_mids")
GUARD_ACTIONS = ("pause_liquidations", "hold_mark")
MARK_RULES = ("oracle", "binance", "hyperliquid")
DEFAULT_TWAP_WINDOW_SECONDS = 300  # Drift's 5 min TWAP
DEFAULT_BASIS_WINDOW_SECONDS = 30
DEFAULT_FUNDING_INTERVAL_SECONDS = 28800
DEFAULT_EMA_SECONDS = 150
DEFAULT_FALLBACK_EMA_SECONDS = 30


# ---------------------------------------------------------------------------- command and events


@command
class UpdateSourceQuotes(Command):
    """Source quotes for some of a venue's markets at ``timestamp`` (seconds).

    ``quotes``: market → list of ``{"source", "price", "timestamp", "confidence"?}``.
    ``book``: market → the venue's own ``{"bid", "ask", "last", "funding_rate", "cex_perp_mids"}``
    (all optional), which the Binance/Bybit and Hyperliquid mark rules use.
    """

    kind: ClassVar[str] = "update_source_quotes"
    venue: str
    quotes: Mapping[str, Sequence[Mapping[str, Any]]]
    timestamp: int
    book: Mapping[str, Mapping[str, Any]] | None = None


@event
class MarkComputed(Event):
    """A market's index and mark as the preset's rules computed them (None: not computable)."""

    kind: ClassVar[str] = "mark_computed"
    venue: str
    market: str
    index: str | None
    mark: str | None
    status: str  # ok, deviated, divergent, stale, invalid (core.oracle.OracleStatus)
    applied: bool  # whether the engine's mark moved to it
    reasons: str
    timestamp: int


@event
class OracleGuardTripped(Event):
    kind: ClassVar[str] = "oracle_guard_tripped"
    venue: str
    market: str
    guard: str  # stale, invalid, out_of_bounds, twap_divergence, circuit_breaker
    action: str  # pause_liquidations or hold_mark
    reason: str
    timestamp: int


@event
class OracleGuardCleared(Event):
    kind: ClassVar[str] = "oracle_guard_cleared"
    venue: str
    market: str
    guard: str
    timestamp: int


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True)
class MarketPricing:
    """One market's pricing state (part of the engine's deterministic state: digested, snapshotted)."""

    last_timestamp: int
    index: Decimal | None = None  # the last index computed (usable or not)
    mark: Decimal | None = None  # the last mark computed (the circuit breaker's reference)
    good_mark: Decimal | None = None  # the last mark applied with no guard active
    basis: BasisAverage | None = None  # Binance/Bybit Price2
    ema_basis: HyperliquidEma | None = None  # Hyperliquid component 1
    ema_book: HyperliquidEma | None = None  # Hyperliquid fallback (EMA of component 2)
    twap: Twap | None = None  # Drift's TWAP guard
    guard: str | None = None  # the active guard, None when clear
    guard_action: str | None = None
    last_bad: int | None = None  # the last update a guard found something


@dataclass(frozen=True)
class Rules:
    """A venue's ``[oracle]`` and ``[mark]`` tables, parsed (errors name the preset path)."""

    method: str
    deviation_cap: Decimal
    stale_after: Decimal
    min_sources: int
    weights: dict[str, Decimal] | None
    max_confidence_ratio: Decimal | None
    max_twap_divergence: Decimal | None
    max_volatility_ratio: Decimal
    twap_window: Decimal
    circuit_breaker: Decimal | None
    guard_action: str
    resume_after: int
    mark_rule: str
    basis_window: Decimal
    funding_interval: Decimal
    ema_seconds: Decimal
    fallback_ema_seconds: Decimal
    cex_perp_weights: dict[str, Decimal]
    bounds: dict[str, tuple[Decimal, Decimal]]

    @classmethod
    def of(cls, preset_data: Mapping[str, Any]) -> Rules:
        oracle = preset_data.get("oracle")
        if not oracle:
            raise InvalidInput("preset.oracle", "the venue's preset has no [oracle] table: give marks with update_oracle")
        mark = preset_data.get("mark") or {}

        def number(table: Mapping[str, Any], name: str, path: str, default: object, parse=positive) -> Any:
            value = table.get(name, default)
            return None if value is None else parse(value, f"preset.{path}.{name}")

        method = str(oracle.get("method", "weighted_mean"))
        if method not in ("weighted_mean", "weighted_median"):
            raise InvalidInput("preset.oracle.method", f"expected weighted_mean or weighted_median, got {method!r}")
        action = str(oracle.get("guard_action", "pause_liquidations"))
        if action not in GUARD_ACTIONS:
            raise InvalidInput("preset.oracle.guard_action", f"expected one of {', '.join(GUARD_ACTIONS)}, got {action!r}")
        rule = str(mark.get("rule", "oracle"))
        if rule not in MARK_RULES:
            raise InvalidInput("preset.mark.rule", f"the engine computes marks by {', '.join(MARK_RULES)}; {rule!r} is "
                               "not computed yet: give marks with update_oracle")
        weights = oracle.get("weights")
        cap = number(oracle, "deviation_cap", "oracle", "0", non_negative)
        if cap >= 1:
            raise InvalidInput("preset.oracle.deviation_cap", f"must be below 1, got {cap}")
        min_sources = to_int(oracle.get("min_sources", 1), "preset.oracle.min_sources")
        if min_sources < 1:
            raise InvalidInput("preset.oracle.min_sources", f"must be at least 1, got {min_sources}")
        return cls(
            method=method,
            deviation_cap=cap,
            stale_after=number(oracle, "stale_after_seconds", "oracle", 300),
            min_sources=min_sources,
            weights=None if weights is None else {
                str(name): non_negative(w, f"preset.oracle.weights.{name}") for name, w in weights.items()},
            max_confidence_ratio=number(oracle, "max_confidence_ratio", "oracle", None),
            max_twap_divergence=number(oracle, "max_twap_divergence", "oracle", None, non_negative),
            max_volatility_ratio=number(oracle, "max_volatility_ratio", "oracle", 5),
            twap_window=number(oracle, "twap_window_seconds", "oracle", DEFAULT_TWAP_WINDOW_SECONDS),
            circuit_breaker=number(oracle, "circuit_breaker", "oracle", None),
            guard_action=action,
            resume_after=to_int(oracle.get("resume_after_seconds", 0), "preset.oracle.resume_after_seconds"),
            mark_rule=rule,
            basis_window=number(mark, "basis_window_seconds", "mark", DEFAULT_BASIS_WINDOW_SECONDS),
            funding_interval=number(mark, "funding_interval_seconds", "mark", DEFAULT_FUNDING_INTERVAL_SECONDS),
            ema_seconds=number(mark, "ema_seconds", "mark", DEFAULT_EMA_SECONDS),
            fallback_ema_seconds=number(mark, "fallback_ema_seconds", "mark", DEFAULT_FALLBACK_EMA_SECONDS),
            cex_perp_weights={str(name): non_negative(w, f"preset.mark.cex_perp_weights.{name}")
                              for name, w in (mark.get("cex_perp_weights") or {}).items()},
            bounds=_bounds(oracle.get("bounds") or {}),
        )


def _bounds(table: Mapping[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    bounds = {}
    for symbol, pair in table.items():
        path = f"preset.oracle.bounds.{symbol}"
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InvalidInput(path, "expected [min, max]")
        low, high = positive(pair[0], f"{path}[0]"), positive(pair[1], f"{path}[1]")
        if low >= high:
            raise InvalidInput(path, f"min {low} must be below max {high}")
        bounds[str(symbol)] = (low, high)
    return bounds


def registry(engine: Engine) -> dict[str, MarketPricing]:
    """``engine.pricing``: ledger market key → its pricing state."""
    if not hasattr(engine, "pricing"):
        engine.pricing = {}  # type: ignore[attr-defined]
    return engine.pricing  # type: ignore[attr-defined]


def liquidation_pause(engine: Engine, market_key: str) -> str | None:
    """Why liquidations on ``market_key`` are paused by an oracle guard, or None (the pipeline's hook)."""
    state = registry(engine).get(market_key)
    if state is None or state.guard is None or state.guard_action != "pause_liquidations":
        return None
    return f"oracle guard {state.guard} on {market_key.split('/', 1)[1]}"


def pricing_handlers(engine: Engine) -> dict[type, Callable]:
    registry(engine)
    return {UpdateSourceQuotes: lambda command: _update_source_quotes(engine, command)}


# ---------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class _Outcome:
    state: MarketPricing
    events: list[Event]
    mark: Decimal | None  # the mark to apply, if any


def _update_source_quotes(engine: Engine, command: UpdateSourceQuotes) -> list[Event]:
    venue = engine.venue(command.venue)
    timestamp = to_int(command.timestamp, "timestamp")
    if timestamp < engine.timestamp:
        raise InvalidInput("timestamp", f"{timestamp} is before the engine's time {engine.timestamp}")
    if not isinstance(command.quotes, Mapping) or not command.quotes:
        raise InvalidInput("quotes", "expected a table of market → quotes with at least one market")
    if len(command.quotes) > MAX_MARKETS_PER_COMMAND:
        raise InvalidInput("quotes", f"at most {MAX_MARKETS_PER_COMMAND} markets per command")
    books = command.book or {}
    if not isinstance(books, Mapping):
        raise InvalidInput("book", "expected a table of market → book fields")
    unknown = set(books) - set(command.quotes)
    if unknown:
        raise InvalidInput(f"book.{sorted(unknown)[0]}", "a book without quotes for the same market")
    rules = Rules.of(venue.preset.data)
    pricing = registry(engine)
    outcomes: dict[str, _Outcome] = {}
    for symbol in sorted(command.quotes):
        key = engine.market_key(venue, symbol)
        quotes = _parse_quotes(command.quotes[symbol], symbol, rules, timestamp)
        book = _parse_book(books.get(symbol), symbol)
        outcomes[key] = _price_market(venue.name, key, symbol, pricing.get(key), rules, quotes, book, timestamp)

    # Everything is computed: commit the state, then move the marks as UpdateOracle does.
    before = {key: pricing.get(key) for key in outcomes}
    for key, outcome in outcomes.items():
        pricing[key] = outcome.state
    events: list[Event] = [event for outcome in outcomes.values() for event in outcome.events]
    marks = {key.split("/", 1)[1]: str(outcome.mark) for key, outcome in outcomes.items() if outcome.mark is not None}
    if marks:
        try:
            events += engine._update_oracle(c.UpdateOracle(venue.name, marks, timestamp))
        except BaseException:
            for key, state in before.items():  # a refusal changes nothing
                if state is None:
                    pricing.pop(key, None)
                else:
                    pricing[key] = state
            raise
    return events


def _parse_quotes(raw: object, symbol: str, rules: Rules, now: int) -> list[tuple[SourceQuote, Decimal | None]]:
    prefix = f"quotes.{symbol}"
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise InvalidInput(prefix, "expected a list of {source, price, timestamp} quotes")
    if not raw:
        raise InvalidInput(prefix, "no quote given")
    if len(raw) > MAX_QUOTES_PER_MARKET:
        raise InvalidInput(prefix, f"at most {MAX_QUOTES_PER_MARKET} quotes per market")
    parsed: list[tuple[SourceQuote, Decimal | None]] = []
    seen: set[str] = set()
    for i, quote in enumerate(raw):
        where = f"{prefix}[{i}]"
        if not isinstance(quote, Mapping):
            raise InvalidInput(where, "expected a table {source, price, timestamp, confidence?}")
        extra = set(quote) - {"source", "price", "timestamp", "confidence"}
        if extra:
            raise InvalidInput(f"{where}.{sorted(extra)[0]}", "not a field of a source quote")
        source = quote.get("source")
        if not isinstance(source, str) or not source.strip():
            raise InvalidInput(f"{where}.source", f"expected a non-empty name, got {source!r}")
        if source in seen:
            raise InvalidInput(f"{where}.source", f"{source!r} quoted twice")
        seen.add(source)
        price = to_decimal(quote.get("price"), f"{where}.price")  # non-positive: an INVALID reading, not an error
        at = to_int(quote.get("timestamp"), f"{where}.timestamp")
        if at > now:
            raise InvalidInput(f"{where}.timestamp", f"{at} is after the command's timestamp {now}")
        confidence = quote.get("confidence")
        conf = None if confidence is None else non_negative(confidence, f"{where}.confidence")
        weight = Decimal(1) if rules.weights is None else rules.weights.get(source, ZERO)
        parsed.append((SourceQuote(source, price, weight, Decimal(at)), conf))
    return parsed


def _parse_book(raw: object, symbol: str) -> dict[str, Any]:
    if raw is None:
        return {}
    prefix = f"book.{symbol}"
    if not isinstance(raw, Mapping):
        raise InvalidInput(prefix, f"expected a table of {', '.join(BOOK_FIELDS)}")
    extra = set(raw) - set(BOOK_FIELDS)
    if extra:
        raise InvalidInput(f"{prefix}.{sorted(extra)[0]}", f"not a book field ({', '.join(BOOK_FIELDS)})")
    book: dict[str, Any] = {}
    for name in ("bid", "ask", "last"):
        if raw.get(name) is not None:
            book[name] = positive(raw[name], f"{prefix}.{name}")
    if "bid" in book and "ask" in book and book["bid"] > book["ask"]:
        raise InvalidInput(f"{prefix}.bid", f"best bid {book['bid']} is above best ask {book['ask']}")
    if ("bid" in book) != ("ask" in book):
        raise InvalidInput(f"{prefix}.{'ask' if 'bid' in book else 'bid'}", "give both bid and ask, or neither")
    if raw.get("funding_rate") is not None:
        book["funding_rate"] = to_decimal(raw["funding_rate"], f"{prefix}.funding_rate")
    mids = raw.get("cex_perp_mids")
    if mids is not None:
        if not isinstance(mids, Mapping) or len(mids) > MAX_QUOTES_PER_MARKET:
            raise InvalidInput(f"{prefix}.cex_perp_mids", f"expected a table source → mid (at most {MAX_QUOTES_PER_MARKET})")
        book["cex_perp_mids"] = {str(name): positive(mid, f"{prefix}.cex_perp_mids.{name}")
                                 for name, mid in sorted(mids.items())}
    return book


def _price_market(venue: str, key: str, symbol: str, state: MarketPricing | None, rules: Rules,
                  quotes: list[tuple[SourceQuote, Decimal | None]], book: dict[str, Any], now: int) -> _Outcome:
    state = state or MarketPricing(last_timestamp=now)
    if now < state.last_timestamp:
        raise InvalidInput("timestamp", f"{now} is before {symbol}'s last update at {state.last_timestamp}")
    reading, extra = _index(quotes, rules, now)
    # Drift: against the TWAP of the index before this reading; only margin-usable prices enter the TWAP.
    twap = state.twap
    if rules.max_twap_divergence is not None:
        twap = twap or Twap(window=rules.twap_window)
        reading = guard_with_twap(reading, twap.value(now), rules.max_twap_divergence,
                                  too_volatile_ratio=rules.max_volatility_ratio)
        if reading.usable_for_margin:
            assert reading.price is not None
            twap = twap.update(reading.price, now)
    reasons = list(extra) + list(reading.reasons)
    status = reading.status
    mark: Decimal | None = None
    next_state = replace(state, last_timestamp=now, index=reading.price, twap=twap)
    if reading.usable_for_margin:
        assert reading.price is not None
        try:
            mark, next_state = _mark(next_state, rules, reading.price, book, now)
        except OracleError as error:
            status = OracleStatus.STALE
            reasons += list(error.reasons)

    finding: tuple[str, str] | None = None
    if status is OracleStatus.STALE:
        finding = ("stale", "; ".join(reasons) or "no fresh source")
    elif status is OracleStatus.INVALID:
        finding = ("invalid", "; ".join(reasons))
    elif reading.price is not None and symbol in rules.bounds and not (
            rules.bounds[symbol][0] <= reading.price <= rules.bounds[symbol][1]):
        low, high = rules.bounds[symbol]
        finding = ("out_of_bounds", f"index {reading.price} is outside [{low}, {high}]")
        mark = None  # never acted on
    elif status is OracleStatus.DIVERGENT:
        finding = ("twap_divergence", "; ".join(reasons))
    elif mark is not None and rules.circuit_breaker is not None and state.mark is not None:
        move = abs(mark - state.mark) / state.mark
        if move > rules.circuit_breaker:
            finding = ("circuit_breaker", f"mark {mark} moved {move:.6f} from {state.mark} in one update "
                                          f"(limit {rules.circuit_breaker})")
    if mark is not None:
        next_state = replace(next_state, mark=mark)

    events: list[Event] = []
    if finding is not None:
        guard, why = finding
        if state.guard != guard:
            events.append(OracleGuardTripped(venue, symbol, guard, rules.guard_action, why, now))
        next_state = replace(next_state, guard=guard, guard_action=rules.guard_action, last_bad=now)
    elif state.guard is not None:
        waited = now - (state.last_bad if state.last_bad is not None else now)
        if waited >= rules.resume_after:
            events.append(OracleGuardCleared(venue, symbol, state.guard, now))
            next_state = replace(next_state, guard=None, guard_action=None)
        else:
            reasons.append(f"guard {state.guard} holds until {rules.resume_after}s after the last bad reading "
                           f"(waited {waited}s)")

    guarded = next_state.guard is not None
    applied = mark is not None and not (guarded and rules.guard_action == "hold_mark")
    if applied and not guarded:
        next_state = replace(next_state, good_mark=mark)
    events.insert(0, MarkComputed(venue, symbol, None if reading.price is None else str(reading.price),
                                  None if mark is None else str(mark), str(status), applied, "; ".join(reasons), now))
    return _Outcome(next_state, events, mark if applied else None)


def _index(quotes: list[tuple[SourceQuote, Decimal | None]], rules: Rules, now: int) -> tuple[OracleReading, list[str]]:
    """The index reading; a Pyth-style quote whose confidence interval is too wide gets weight 0."""
    reasons: list[str] = []
    kept: list[SourceQuote] = []
    for quote, confidence in quotes:
        if quote.price <= 0:
            reasons.append(f"{quote.source}: price {quote.price} is not positive; ignored")
            continue
        if rules.weights is not None and quote.source not in rules.weights:
            reasons.append(f"{quote.source}: not in [oracle].weights; weight 0")
        if confidence is not None and rules.max_confidence_ratio is not None and (
                confidence / quote.price > rules.max_confidence_ratio):
            reasons.append(f"{quote.source}: confidence {confidence} is wider than {rules.max_confidence_ratio} "
                           f"of the price; weight 0")
            quote = replace(quote, weight=ZERO)
        kept.append(quote)
    if not kept:
        return OracleReading(None, OracleStatus.INVALID, tuple(reasons) or ("no positive price",), Decimal(now)), []
    reading = aggregate_index(kept, now, stale_after=rules.stale_after, deviation_cap=rules.deviation_cap,
                              min_sources=rules.min_sources, method=rules.method)
    return reading, reasons


def _mark(state: MarketPricing, rules: Rules, index: Decimal, book: dict[str, Any], now: int
          ) -> tuple[Decimal, MarketPricing]:
    """The mark by the preset's ``[mark]`` rule, and the state with its averages moved."""
    bid, ask, last = book.get("bid"), book.get("ask"), book.get("last")
    mid = None if bid is None else (bid + ask) / 2
    if rules.mark_rule == "oracle":
        return index, state
    if rules.mark_rule == "binance":
        basis = state.basis or BasisAverage(window=rules.basis_window)
        if mid is not None:
            basis = basis.add(now, mid, index)
        interval = rules.funding_interval
        elapsed = Decimal(now) % interval
        to_funding = interval - elapsed
        mark = binance_mark_price(index, last if last is not None else index, book.get("funding_rate", ZERO),
                                  to_funding, interval, basis.value(now) or ZERO)
        return mark, replace(state, basis=basis)
    # Hyperliquid
    ema_basis = state.ema_basis or HyperliquidEma.start(rules.ema_seconds, now)
    basis_now = None
    if mid is not None:
        basis_now = mid - index
        ema_basis = ema_basis.update(basis_now, now)
    basis_value = ema_basis.value if ema_basis.value is not None else basis_now
    component2 = None
    ema_book = state.ema_book or HyperliquidEma.start(rules.fallback_ema_seconds, now)
    if bid is not None and last is not None:
        component2 = sorted([bid, ask, last])[1]
        ema_book = ema_book.update(component2, now)
    mids = book.get("cex_perp_mids")
    pairs = None if not mids else [(value, rules.cex_perp_weights.get(name, ZERO)) for name, value in mids.items()]
    fallback = ema_book.value if ema_book.value is not None else component2
    mark = hyperliquid_mark_price(index, basis_value, bid, ask, last, pairs, fallback)
    return mark, replace(state, ema_basis=ema_basis, ema_book=ema_book)


__all__ = ["MarkComputed", "MarketPricing", "OracleGuardCleared", "OracleGuardTripped", "Rules", "UpdateSourceQuotes",
           "liquidation_pause", "pricing_handlers", "registry"]
