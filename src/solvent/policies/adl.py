"""Auto-deleveraging: who is closed against a bankrupt position the backstop could not absorb.

Reference: ../shared/reference/perp-venues.md §1.5 (Binance), §2.5 (BitMEX), §3.5 (Bybit),
§4.5 (Hyperliquid), §5.5 (dYdX), §6.5 (Drift), §10 (policy matrix).

The candidates are the accounts on the opposite side of the bankrupt position. A rule decides the
order in which they are closed; the queue then closes each candidate fully until ``deficit_size``
(base units) is covered, the last one partially. Rules:

- ``binance``: ``PnL% = max(0, uPnL) / max(1, WB)``; ``margin ratio = MM / (WB + uPnL)`` if that
  is positive, else 0; score = PnL% × margin ratio. A candidate may state its ``pnl_pct`` and
  ``margin_ratio`` as Binance displays them instead of the inputs they come from.
- ``bitmex``: ``PnL% = (mark value − entry value) / |entry value|``; ``effective leverage =
  |mark value| / (mark value − bankrupt value)``; score = PnL% × leverage if PnL% > 0, else
  PnL% / leverage. Values are signed (a short's are negative), so a short's bankrupt price above
  its mark still gives a positive leverage. From prices, a value is ``side × size × price`` for a
  linear contract and ``−side × size / price`` for an inverse one (XBTUSD: a long's value in XBT
  is negative, as BitMEX reports it), so PnL% = ``1 − entry/mark`` for an inverse long. A
  candidate given without a side is on the side its bankrupt price implies (below the mark: long).
  A candidate may instead state its ``pnl_pct`` and ``effective_leverage`` (BitMEX's own terms).
- ``hyperliquid``: score = ``(mark / entry) × (notional / account value)``, as documented.
- ``dydx``: no ranking. Candidates are visited in the order given, starting at a pseudorandom
  ``offset`` (wrapping around); the engine supplies the draw, this module never makes one.
- ``pro_rata``: no queue. Every candidate closes ``deficit × size / Σ size`` (Drift socializes
  this way through funding). Run on the profitable candidates, it is the benchmark ADL
  "overshoot" is measured against: :func:`overshoot` compares the PnL haircut a rule took with
  the pro-rata haircut of the same deficit (Chitra 2025, reference/simulation.md §2.2 item 11).
- ``leverage_draining``: no score queue. Positions are reduced from the most levered account down,
  levelling leverage (notional / account value) to one water level ``L`` that covers the deficit:
  each candidate keeps ``min(size, L × account value / mark)``. Campbell, Hey, Moallemi and Nutz,
  "Risk-Based Auto-Deleveraging" (arXiv 2603.15963, 2026) show that in the single-asset,
  isolated-margin setting under a risk-neutral expected-loss objective this rule, which minimises
  the largest leverage left, is the unique optimum. A candidate whose account value is zero or
  negative has unbounded leverage and is closed first. With a ``lot``, shares are whole lots
  (floored, the leftover lots to the largest remainders). It is also a benchmark: :func:`overshoot`
  measures a rule against it as against pro-rata.

Any candidate may carry a precomputed ``score`` instead of the inputs its rule needs.

Ranking is high to low score; equal scores are ordered by account id (ascending, as text), so the
queue is a pure function of its inputs. Scores are computed on exact rationals, so two candidates
tie only when their scores are truly equal.

Each candidate's standing is reported as venues display it: ``rank`` (1 = first to be closed),
``quantile`` and ``lights`` (BitMEX/Binance's 1–5 indicator, in 20% increments: a quantile up to
20% shows 5 lights, above 80% one, i.e. ``6 − ⌈5·quantile⌉``). The quantile is ``rank / n``
(Binance's "rank / total users") except under ``bitmex``, where it is the share of the queue's
quantity ranked at or above the candidate: BitMEX's own example (autoDeleveragingExamples: six
longs of 10, 10, 20, 30, 20, 10 ranked 2, 5, 4, 1, 6, 3) gives percentiles 20%, 40%, 60%, 80%,
80%, 100%, which cumulative quantity (10, 30, 60, 70, 80, 100 of 100) rounded up to 20% reproduces
and rank / n (the fifth of six at 83% → 100%) does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from ..core.domain import Side
from ..core.errors import InvalidInput
from ..core.numbers import non_negative, positive, to_decimal, to_int

RULES = ("binance", "bitmex", "hyperliquid", "dydx", "pro_rata", "leverage_draining")
BENCHMARKS = ("pro_rata", "leverage_draining")  # the allocations overshoot is measured against
RANKED_RULES = ("binance", "bitmex", "hyperliquid")

# Input names a candidate may use for each ranking input (the venues' own vocabulary first).
_ALIASES: dict[str, tuple[str, ...]] = {
    "score": ("score", "ranking", "sorting_index", "leverage_pnl"),
    "upnl": ("upnl", "unrealized_pnl", "unrealised_pnl"),
    "wallet_balance": ("wallet_balance",),
    "maintenance_margin": ("maintenance_margin",),
    "mark_price": ("mark_price",),
    "entry_price": ("entry_price", "avg_entry_price"),
    "bankrupt_price": ("bankrupt_price", "bankruptcy_price"),
    "mark_value": ("mark_value",),
    "entry_value": ("entry_value", "avg_entry_value"),
    "bankrupt_value": ("bankrupt_value", "bankruptcy_value"),
    "notional": ("notional", "notional_position", "position_value"),
    "account_value": ("account_value",),
    # the ranking's own factors, as the venues display them
    "pnl_pct": ("pnl_pct", "pnl_percent", "pnl_percentage"),
    "effective_leverage": ("effective_leverage",),
    "margin_ratio": ("margin_ratio",),
}


@dataclass(frozen=True)
class AdlCandidate:
    """An account that may be deleveraged: its id, its position size (base units, > 0) and either a
    precomputed ``score`` or the inputs its rule needs (all optional here; the rule checks)."""

    account: str
    size: Decimal
    side: Side | None = None
    score: Decimal | Fraction | None = None  # a Fraction: the rule's own score, computed once (the engine)
    upnl: Decimal | None = None
    wallet_balance: Decimal | None = None
    maintenance_margin: Decimal | None = None
    mark_price: Decimal | None = None
    entry_price: Decimal | None = None
    bankrupt_price: Decimal | None = None
    mark_value: Decimal | None = None
    entry_value: Decimal | None = None
    bankrupt_value: Decimal | None = None
    notional: Decimal | None = None
    account_value: Decimal | None = None
    pnl_pct: Decimal | None = None
    effective_leverage: Decimal | None = None
    margin_ratio: Decimal | None = None
    inverse: bool = False  # an inverse contract: values from prices are −side·size/price

    def __post_init__(self) -> None:
        if not isinstance(self.account, str) or not self.account:
            raise InvalidInput("account", "must be a non-empty account id")
        object.__setattr__(self, "size", positive(self.size, f"candidates[{self.account}].size"))

    @classmethod
    def parse(cls, row: Mapping[str, Any], where: str = "candidate", contract: object = "linear") -> AdlCandidate:
        """From a mapping in the venues' vocabulary (see ``_ALIASES``); numbers as decimal strings.
        ``contract`` (``linear``/``inverse``) applies unless the row states its own."""
        if not isinstance(row, Mapping):
            raise InvalidInput(where, "expected an object")
        account = row.get("account")
        if account is None or str(account) == "":
            raise InvalidInput(f"{where}.account", "missing")
        values: dict[str, Any] = {}
        for name, aliases in _ALIASES.items():
            present = [alias for alias in aliases if alias in row]
            if len(present) > 1:
                raise InvalidInput(f"{where}.{present[1]}", f"given twice (also as {present[0]})")
            if present:
                values[name] = to_decimal(row[present[0]], f"{where}.{present[0]}")
        side = row.get("side")
        kind = str(row.get("contract", contract)).strip().lower()
        if kind not in ("linear", "inverse"):
            raise InvalidInput(f"{where}.contract", f"expected 'linear' or 'inverse', got {kind!r}")
        return cls(
            account=str(account),
            size=positive(row.get("size"), f"{where}.size"),
            side=None if side is None else Side.parse(side, f"{where}.side"),
            inverse=kind == "inverse",
            **values,
        )


@dataclass(frozen=True)
class AdlClose:
    """One deleveraging fill: ``size`` base units of ``account``'s position closed."""

    account: str
    size: Decimal


@dataclass(frozen=True)
class QueueStanding:
    """Where a candidate stands in the queue. ``None`` fields for ``pro_rata``, which has no queue."""

    account: str
    rank: int | None
    quantile: Decimal | None
    lights: int | None
    score: Decimal | None


@dataclass(frozen=True)
class AdlResult:
    """The closes in the order they happen, every candidate's standing (queue order), and the part
    of the deficit no candidate could cover."""

    closes: tuple[AdlClose, ...]
    standings: tuple[QueueStanding, ...]
    uncovered: Decimal

    @property
    def closed_size(self) -> Decimal:
        with _exact():
            return sum((close.size for close in self.closes), Decimal(0))

    def standing(self, account: str) -> QueueStanding:
        for standing in self.standings:
            if standing.account == account:
                return standing
        raise InvalidInput("account", f"{account!r} is not a candidate")


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def _need(candidate: AdlCandidate, name: str, rule: str) -> Fraction:
    value = getattr(candidate, name)
    if value is None:
        raise InvalidInput(f"candidates[{candidate.account}].{name}", f"required by the {rule} rule (or give a score)")
    return Fraction(value)


def binance_score(candidate: AdlCandidate) -> Fraction:
    """``max(0, uPnL)/max(1, WB) × (MM/(WB + uPnL) if WB + uPnL > 0 else 0)``, or the stated
    ``pnl_pct × margin_ratio``."""
    if candidate.pnl_pct is not None or candidate.margin_ratio is not None:
        return _need(candidate, "pnl_pct", "binance") * _need(candidate, "margin_ratio", "binance")
    upnl = _need(candidate, "upnl", "binance")
    wallet = _need(candidate, "wallet_balance", "binance")
    maintenance = _need(candidate, "maintenance_margin", "binance")
    if maintenance < 0:
        raise InvalidInput(f"candidates[{candidate.account}].maintenance_margin", "must not be negative")
    pnl_pct = max(Fraction(0), upnl) / max(Fraction(1), wallet)
    equity = wallet + upnl
    margin_ratio = maintenance / equity if equity > 0 else Fraction(0)
    return pnl_pct * margin_ratio


def _bitmex_values(candidate: AdlCandidate) -> tuple[Fraction, Fraction, Fraction]:
    """Signed (mark, entry, bankrupt) values: given, or side × size × price."""
    if candidate.mark_value is not None or candidate.entry_value is not None or candidate.bankrupt_value is not None:
        return (_need(candidate, "mark_value", "bitmex"), _need(candidate, "entry_value", "bitmex"),
                _need(candidate, "bankrupt_value", "bitmex"))
    prices = []
    for name in ("mark_price", "entry_price", "bankrupt_price"):
        price = _need(candidate, name, "bitmex")
        if price <= 0:
            raise InvalidInput(f"candidates[{candidate.account}].{name}", "must be positive")
        prices.append(price)
    if candidate.side is not None:
        sign = int(candidate.side)
    else:  # the bankrupt price lies on the losing side of the mark: below it for a long
        sign = 1 if prices[2] < prices[0] else -1
    quantity = Fraction(candidate.size) * sign
    if candidate.inverse:
        values = [-quantity / price for price in prices]
    else:
        values = [quantity * price for price in prices]
    return values[0], values[1], values[2]


def bitmex_score(candidate: AdlCandidate) -> Fraction:
    """``PnL% × effective leverage`` when in profit, ``PnL% / effective leverage`` otherwise."""
    where = f"candidates[{candidate.account}]"
    if candidate.pnl_pct is not None or candidate.effective_leverage is not None:
        pnl_pct = _need(candidate, "pnl_pct", "bitmex")
        leverage = _need(candidate, "effective_leverage", "bitmex")
        if leverage <= 0:
            raise InvalidInput(f"{where}.effective_leverage", "must be positive")
        return pnl_pct * leverage if pnl_pct > 0 else pnl_pct / leverage
    mark, entry, bankrupt = _bitmex_values(candidate)
    if entry == 0:
        raise InvalidInput(f"{where}.entry_value", "must not be zero")
    if mark - bankrupt <= 0:
        raise InvalidInput(f"{where}.bankrupt_value", "must lie beyond the mark (the position would already be bankrupt)")
    pnl_pct = (mark - entry) / abs(entry)
    leverage = abs(mark) / (mark - bankrupt)
    if leverage == 0:
        raise InvalidInput(f"{where}.mark_value", "must not be zero")
    return pnl_pct * leverage if pnl_pct > 0 else pnl_pct / leverage


def hyperliquid_score(candidate: AdlCandidate) -> Fraction:
    """``(mark / entry) × (notional / account value)``; notional defaults to size × mark."""
    where = f"candidates[{candidate.account}]"
    mark = _need(candidate, "mark_price", "hyperliquid")
    entry = _need(candidate, "entry_price", "hyperliquid")
    account_value = _need(candidate, "account_value", "hyperliquid")
    if mark <= 0:
        raise InvalidInput(f"{where}.mark_price", "must be positive")
    if entry <= 0:
        raise InvalidInput(f"{where}.entry_price", "must be positive")
    if account_value <= 0:
        raise InvalidInput(f"{where}.account_value", "must be positive for a ranked candidate")
    notional = Fraction(candidate.notional) if candidate.notional is not None else Fraction(candidate.size) * mark
    if notional < 0:
        raise InvalidInput(f"{where}.notional", "must not be negative")
    return (mark / entry) * (notional / account_value)


_SCORERS = {"binance": binance_score, "bitmex": bitmex_score, "hyperliquid": hyperliquid_score}


def score(rule: str, candidate: AdlCandidate) -> Fraction:
    """The candidate's ranking score under ``rule`` (its given ``score`` when it carries one)."""
    if candidate.score is not None:
        return Fraction(candidate.score)
    if rule not in _SCORERS:
        raise InvalidInput("rule", f"{rule!r} does not rank by score")
    return _SCORERS[rule](candidate)


# --------------------------------------------------------------------------------------------
# Queue
# --------------------------------------------------------------------------------------------


# Sizes are added and subtracted at a precision no realistic input reaches, so the queue's
# arithmetic is exact (the default 28 digits could round a sum up past the deficit).
_EXACT_DIGITS = 100
PRO_RATA_PLACES = 18  # pro-rata shares without a lot are rounded down to 1e-18 base units


def _exact():
    return localcontext(prec=_EXACT_DIGITS)


def _as_decimal(value: Fraction) -> Decimal:
    with localcontext() as context:
        context.prec = 34
        return Decimal(value.numerator) / Decimal(value.denominator)


def _lights(quantile: Fraction) -> int:
    """5 lights for a quantile in the first 20% of the queue (20% included), down to 1 above 80%."""
    fifths = -((-quantile * 5).__floor__())  # ⌈5·quantile⌉, exact
    return max(1, min(5, 6 - fifths))


# Rules whose queue indicator weighs each candidate by its quantity (see the module docstring).
_QUANTITY_WEIGHTED_QUANTILE = ("bitmex",)


def _check_unique(candidates: Sequence[AdlCandidate]) -> None:
    seen: set[str] = set()
    for index, candidate in enumerate(candidates):
        if candidate.account in seen:
            raise InvalidInput(f"candidates[{index}].account", f"{candidate.account!r} appears twice")
        seen.add(candidate.account)


def queue_order(rule: str, candidates: Sequence[AdlCandidate], *, offset: int | None = None
                ) -> list[tuple[AdlCandidate, Fraction | None]]:
    """Candidates in the order they would be closed, with their scores (None for ``dydx``)."""
    if rule in RANKED_RULES:
        scored = [(candidate, score(rule, candidate)) for candidate in candidates]
        return list(_ranked(scored))
    if rule == "dydx":
        if offset is None:
            raise InvalidInput("offset", "the dydx rule needs the pseudorandom offset drawn by the engine")
        if not candidates:
            return []
        start = offset % len(candidates)
        ordered = list(candidates[start:]) + list(candidates[:start])
        return [(candidate, None) for candidate in ordered]
    raise InvalidInput("rule", f"expected one of {', '.join(RULES)}, got {rule!r}")


def _exact_key(pair: tuple[AdlCandidate, Fraction]):
    # High score first; equal scores by account id so the order never depends on input order.
    return (-pair[1], pair[0].account)


def _ranked(scored: list[tuple[AdlCandidate, Fraction]]) -> list[tuple[AdlCandidate, Fraction]]:
    """``sorted(scored, key=_exact_key)``, sorting by the scores' floats first. A Fraction's float
    is correctly rounded, so rounding never reverses two scores: only candidates whose floats are
    equal may be out of order, and each such run is sorted again by the exact key."""
    try:
        approximate = [float(fraction) for _, fraction in scored]
    except OverflowError:
        return sorted(scored, key=_exact_key)
    order = sorted(range(len(scored)), key=lambda index: (-approximate[index], scored[index][0].account))
    ranked: list[tuple[AdlCandidate, Fraction]] = []
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and approximate[order[end]] == approximate[order[start]]:
            end += 1
        run = [scored[index] for index in order[start:end]]
        ranked.extend(sorted(run, key=_exact_key) if len(run) > 1 else run)
        start = end
    return ranked


def _exponent(value: Decimal) -> int:
    """The exponent of a finite Decimal (a NaN or an infinity has a letter there)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # ADL quantities are validated finite before they get here
    return exponent


def _scaled(value: Decimal, exponent: int) -> int:
    """``value`` as an integer count of ``10**exponent`` (exact; ``exponent`` ≤ value's own)."""
    sign, digits, _ = value.as_tuple()
    own = _exponent(value)
    number = int("".join(map(str, digits)) or "0") * 10 ** (own - exponent)
    return -number if sign else number


def _pro_rata(candidates: Sequence[AdlCandidate], deficit: Decimal, lot: Decimal | None) -> AdlResult:
    with _exact():
        total = sum((candidate.size for candidate in candidates), Decimal(0))
    standings = tuple(QueueStanding(candidate.account, None, None, None, None) for candidate in candidates)
    if total == 0 or deficit == 0:
        return AdlResult((), standings, deficit)
    target = min(deficit, total)
    # Exact integer arithmetic: every quantity counts units of 10**exponent, so candidate i's exact
    # share is target·size_i/total = (t·s_i/T)·10**exponent (a rational with the common denominator T).
    values = [target, total] + [candidate.size for candidate in candidates] + ([] if lot is None else [lot])
    exponent = min(_exponent(value) for value in values)
    t, big_t = _scaled(target, exponent), _scaled(total, exponent)
    sizes = [_scaled(candidate.size, exponent) for candidate in candidates]
    if lot is None:
        # Round each share down to 1e-18: the sum never exceeds the deficit nor any candidate's size.
        shift = PRO_RATA_PLACES + exponent
        if shift >= 0:
            units = [t * size * 10**shift // big_t for size in sizes]
        else:
            units = [t * size // (big_t * 10**-shift) for size in sizes]
        shares = [Decimal(unit).scaleb(-PRO_RATA_PLACES) for unit in units]
    else:
        # Whole lots: floor every share, then hand the leftover lots out one each by largest
        # remainder (ties by account id), never beyond a candidate's size.
        step = _scaled(lot, exponent)
        denominator = big_t * step  # share_i / lot = t·s_i / (T·step)
        lots = [t * size // denominator for size in sizes]
        remainders = [t * size - count * denominator for size, count in zip(sizes, lots)]
        leftover = t // step - sum(lots)
        order = sorted(range(len(candidates)), key=lambda i: (-remainders[i], candidates[i].account))
        for index in order:
            if leftover <= 0:
                break
            if (lots[index] + 1) * step <= sizes[index]:
                lots[index] += 1
                leftover -= 1
        shares = [Decimal(count) * lot for count in lots]
    closes = tuple(AdlClose(candidate.account, share)
                   for candidate, share in zip(candidates, shares) if share > 0)
    with _exact():
        uncovered = deficit - sum(shares, Decimal(0))
    return AdlResult(closes, standings, uncovered)


def _leverage_inputs(candidate: AdlCandidate) -> tuple[Decimal, Decimal]:
    """(account value, mark): leverage is ``size × mark / account value``; a candidate without a
    mark is valued at 1 (all candidates of one episode share the market's mark, which cancels)."""
    if candidate.account_value is None:
        _need(candidate, "account_value", "leverage_draining")
    mark = candidate.mark_price if candidate.mark_price is not None else Decimal(1)
    if mark <= 0:
        raise InvalidInput(f"candidates[{candidate.account}].mark_price", "must be positive")
    return candidate.account_value, mark  # type: ignore[return-value]


def _leverage_draining(candidates: Sequence[AdlCandidate], deficit: Decimal, lot: Decimal | None) -> AdlResult:
    """Water-filling: reduce the most levered first until every reduced account sits at the same
    leverage ``L``, the highest level at which the reductions cover the deficit. Candidates are
    ordered by leverage in floats (ties by id); the level and the reductions are exact rationals."""
    inputs = {candidate.account: _leverage_inputs(candidate) for candidate in candidates}
    approximate: dict[str, float] = {}
    for candidate in candidates:
        value, mark = inputs[candidate.account]
        if value > 0:
            approximate[candidate.account] = float(candidate.size) * float(mark) / float(value)
    unbounded = sorted((c for c in candidates if c.account not in approximate),
                       key=lambda c: (inputs[c.account][0], c.account))
    bounded = sorted((c for c in candidates if c.account in approximate),
                     key=lambda c: (-approximate[c.account], c.account))
    ordered = unbounded + bounded
    count = len(ordered)
    standings = []
    with localcontext() as context:
        context.prec = 34
        for rank, candidate in enumerate(ordered, start=1):
            approximate_level = approximate.get(candidate.account)
            standings.append(QueueStanding(candidate.account, rank, Decimal(rank) / Decimal(count),
                                           max(1, min(5, 6 - (-(-5 * rank // count)))),
                                           None if approximate_level is None else Decimal(repr(approximate_level))))
    sizes = {candidate.account: Fraction(candidate.size) for candidate in ordered}

    def exact(candidate: AdlCandidate) -> tuple[Fraction, Fraction]:  # (leverage, value / mark)
        value, mark = inputs[candidate.account]
        capacity = Fraction(value) / Fraction(mark)
        return sizes[candidate.account] / capacity, capacity

    def leverage(candidate: AdlCandidate) -> Fraction:
        return exact(candidate)[0]
    total = sum(sizes.values(), Fraction(0))
    target = min(Fraction(deficit), total)
    shares: dict[str, Fraction] = {}
    remaining = target
    for candidate in unbounded:  # unbounded leverage: closed whole, first
        take = min(remaining, sizes[candidate.account])
        shares[candidate.account] = take
        remaining -= take
    if remaining > 0 and bounded:
        # Reductions at level L: Σ_{i ≤ k} (size_i − L·value_i/mark_i) over the k accounts above L.
        # Walk down the leverages until the level that covers what remains falls within the step.
        size_sum = Fraction(0)
        capacity_sum = Fraction(0)  # Σ value_i / mark_i: base units kept per unit of leverage
        level = Fraction(0)
        reduced = 0
        for index, candidate in enumerate(bounded):
            size_sum += sizes[candidate.account]
            capacity_sum += exact(candidate)[1]
            level = (size_sum - remaining) / capacity_sum
            reduced = index + 1
            following = leverage(bounded[index + 1]) if index + 1 < len(bounded) else Fraction(0)
            if level >= following:
                break
        level = max(level, Fraction(0))
        for candidate in bounded[:reduced + 1]:  # beyond the next one, leverage is below the level
            keep = level * exact(candidate)[1]
            if keep < sizes[candidate.account]:
                shares[candidate.account] = sizes[candidate.account] - keep
    if lot is None:
        scale = 10 ** PRO_RATA_PLACES
        closed = {account: Decimal(int(share * scale)).scaleb(-PRO_RATA_PLACES) for account, share in shares.items()}
    else:
        step = Fraction(lot)
        counts = {account: int(share / step) for account, share in shares.items()}
        leftover = int(target / step) - sum(counts.values())
        # Leftover lots to the largest remainders (ties: the more levered first, then by id).
        rank_of = {candidate.account: position for position, candidate in enumerate(ordered)}
        for account in sorted(shares, key=lambda a: (-(shares[a] / step - counts[a]), rank_of[a])):
            if leftover <= 0:
                break
            if (counts[account] + 1) * step <= sizes[account]:
                counts[account] += 1
                leftover -= 1
        closed = {account: Decimal(count) * lot for account, count in counts.items()}
    closes = tuple(AdlClose(candidate.account, closed[candidate.account]) for candidate in ordered
                   if closed.get(candidate.account, Decimal(0)) > 0)
    with _exact():
        uncovered = deficit - sum((close.size for close in closes), Decimal(0))
    return AdlResult(closes, tuple(standings), uncovered)


def deleverage(rule: str, candidates: Iterable[AdlCandidate], deficit_size: object, *,
               offset: int | None = None, lot: object | None = None, max_visits: int | None = None) -> AdlResult:
    """Close candidates' positions until ``deficit_size`` base units are covered.

    Ranked rules and ``dydx``: each candidate in queue order closes ``min(remaining, size)``; the
    last one partially. ``pro_rata``: every candidate closes its share. ``leverage_draining``:
    the most levered are reduced to a common leverage (needs each candidate's ``account_value``). ``offset`` (an int the
    engine drew) is required by ``dydx``; ``lot`` makes ``pro_rata`` shares whole lots;
    ``max_visits`` stops after that many candidates (dYdX iterates at most 500 subaccounts).
    """
    candidates = list(candidates)
    if not all(isinstance(candidate, AdlCandidate) for candidate in candidates):
        raise InvalidInput("candidates", "expected AdlCandidate records (use AdlCandidate.parse)")
    _check_unique(candidates)
    deficit = non_negative(deficit_size, "deficit_size")
    if offset is not None:
        offset = to_int(offset, "offset")
        if offset < 0:
            raise InvalidInput("offset", "must not be negative")
    if max_visits is not None:
        max_visits = to_int(max_visits, "max_visits")
        if max_visits < 1:
            raise InvalidInput("max_visits", "must be at least 1")
    if rule == "pro_rata":
        return _pro_rata(candidates, deficit, None if lot is None else positive(lot, "lot"))
    if rule == "leverage_draining":
        return _leverage_draining(candidates, deficit, None if lot is None else positive(lot, "lot"))
    ordered = queue_order(rule, candidates, offset=offset)
    total = len(ordered)
    weighted = rule in _QUANTITY_WEIGHTED_QUANTILE
    total_size = sum((Fraction(candidate.size) for candidate, _ in ordered), Fraction(0))
    standings = []
    closes = []
    remaining = deficit
    size_so_far = Fraction(0)
    for rank, (candidate, candidate_score) in enumerate(ordered, start=1):
        size_so_far += Fraction(candidate.size)
        quantile = size_so_far / total_size if weighted and total_size > 0 else Fraction(rank, total)
        standings.append(QueueStanding(
            account=candidate.account,
            rank=rank,
            quantile=_as_decimal(quantile),
            lights=_lights(quantile),
            score=None if candidate_score is None else _as_decimal(candidate_score),
        ))
        if remaining > 0 and (max_visits is None or rank <= max_visits):
            size = min(remaining, candidate.size)
            closes.append(AdlClose(candidate.account, size))
            with _exact():
                remaining -= size
    return AdlResult(tuple(closes), tuple(standings), remaining)


# --------------------------------------------------------------------------------------------
# Overshoot against the pro-rata benchmark (Chitra 2025)
# --------------------------------------------------------------------------------------------


def pnl_haircut(closes: Iterable[AdlClose], candidates: Iterable[AdlCandidate]) -> Decimal:
    """The profit an allocation takes from winners: ``Σ closed_i × max(0, uPnL_i) / size_i``.

    Chitra's haircut applies to positive unrealized PnL, never to posted collateral: a winner
    closed for ``closed_i`` of its ``size_i`` gives up that share of its positive uPnL (settle
    asset); a loser closed gives up nothing. Every candidate in ``closes`` must carry ``upnl``.
    """
    by_account = {candidate.account: candidate for candidate in candidates}
    total = Decimal(0)
    # Each term at 100 digits (far beyond any input's), the sum rounded to 34 like the other results.
    with _exact():
        for close in closes:
            candidate = by_account.get(close.account)
            if candidate is None:
                raise InvalidInput("closes", f"{close.account!r} is not a candidate")
            if candidate.upnl is None:
                _need(candidate, "upnl", "haircut")
            upnl = candidate.upnl
            if upnl > 0:  # type: ignore[operator]
                total += close.size * upnl / candidate.size  # type: ignore[operator]
    with localcontext() as context:
        context.prec = 34
        return +total


@dataclass(frozen=True)
class AdlOvershoot:
    """One ADL episode measured against the pro-rata benchmark (settle-asset amounts, base units).

    ``haircut``: :func:`pnl_haircut` of the closes the venue's rule made. ``benchmark_haircut``:
    the same for :func:`deleverage` ``("pro_rata", winners, deficit, lot=lot)``, where the winners
    are the candidates with positive uPnL (Chitra's pro-rata is over profitable positions only).
    ``excess = max(0, haircut − benchmark_haircut)``: profit taken beyond the fair allocation of
    the same deficit. ``closed`` / ``benchmark_closed``: base units each allocation closed.
    """

    haircut: Decimal
    benchmark_haircut: Decimal
    closed: Decimal
    benchmark_closed: Decimal

    @property
    def excess(self) -> Decimal:
        return max(self.haircut - self.benchmark_haircut, Decimal(0))


def overshoot(closes: Iterable[AdlClose], candidates: Sequence[AdlCandidate], deficit_size: object, *,
              lot: object | None = None, benchmark: str = "pro_rata") -> AdlOvershoot:
    """Compare the closes a rule made for ``deficit_size`` with a benchmark allocation of the same
    deficit (see :class:`AdlOvershoot`): ``pro_rata`` (this module's pro-rata rule run on the
    winners, Chitra 2025) or ``leverage_draining`` (the minimax-leverage rule run on every
    candidate, Campbell et al. 2026; each needs its ``account_value``)."""
    if benchmark not in BENCHMARKS:
        raise InvalidInput("benchmark", f"expected one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
    closes = [close for close in closes if close.size > 0]
    candidates = list(candidates)
    if benchmark == "pro_rata":
        pool = [candidate for candidate in candidates if _need(candidate, "upnl", "haircut") > 0]
    else:
        pool = candidates
    allocation = deleverage(benchmark, pool, deficit_size, lot=lot)
    with _exact():
        closed = sum((close.size for close in closes), Decimal(0))
    return AdlOvershoot(pnl_haircut(closes, candidates), pnl_haircut(allocation.closes, pool),
                        closed, allocation.closed_size)


def parse_candidates(rows: Iterable[Mapping[str, Any]], field: str = "candidates",
                     contract: object = "linear") -> list[AdlCandidate]:
    """Candidate records from rows in the venues' vocabulary (``contract``: their default kind)."""
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise InvalidInput(field, "expected a list of candidates")
    return [AdlCandidate.parse(row, f"{field}[{index}]", contract) for index, row in enumerate(rows)]


__all__ = [
    "BENCHMARKS",
    "RULES",
    "AdlCandidate",
    "AdlClose",
    "AdlOvershoot",
    "AdlResult",
    "QueueStanding",
    "binance_score",
    "bitmex_score",
    "deleverage",
    "hyperliquid_score",
    "overshoot",
    "parse_candidates",
    "pnl_haircut",
    "queue_order",
    "score",
]
