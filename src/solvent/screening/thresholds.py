"""Prices at which a single-position pool changes status, kept sorted per market.

A cross pool that holds one position has an equity and a maintenance margin that depend on that
market's price alone. With ``x = |g|`` (``P`` for a linear contract, ``1/P`` for an inverse one,
as in :mod:`solvent.screening.book`) and ``s = +1`` (linear) or ``−1`` (inverse)::

    equity(x) = base + q·s·x
    MM(x)     = |q|·rate_t·x − deduction_t        bracket t: floor_t <= |q|·x < floor_t+1

The pool's status (margin-called when ``MM >= w·equity``, liquidatable when ``equity < MM``)
can only change where ``h_k(x) = MM(x) − k·equity(x)`` changes sign, for ``k = w`` and ``k = 1``:
at a root inside a bracket, or at a bracket floor where the deductions make ``h_k`` jump. Those
breakpoints are computed once per pool (vectorized per market) and kept sorted, so that when a
price moves from ``x0`` to ``x1`` the pools that may have changed status are one ``searchsorted``
away, whatever the number of pools that did not move. Pools far from any threshold cost nothing.

The breakpoints are floats; a query widens its band by a relative ``DEFAULT_BAND`` so that float
error never hides a crossing, and whoever asks re-values the returned pools exactly. A pool whose
position or balance changed is re-entered (:meth:`ThresholdIndex.replace`); new entries wait in a
small overlay and are merged into the sorted arrays in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ..policies.margin import MarginModel, SizePremium

DEFAULT_BAND = 1e-7  # relative widening of a query's price band
_ROOT_SLACK = 1e-9  # a root this close (relatively) to a bracket's edges still counts as inside


@dataclass(frozen=True)
class MarketSchedule:
    """A market's maintenance schedule as floats, in ``x`` terms."""

    inverse: bool
    floors: np.ndarray  # notional floors of the brackets (in the settle asset)
    rates: np.ndarray
    deductions: np.ndarray
    model: MarginModel | None = None
    floor_list: tuple[float, ...] = ()  # the floors for bisect on one value (faster than NumPy's)

    @classmethod
    def of(cls, model: MarginModel, inverse: bool) -> MarketSchedule:
        table = model.maintenance_table()
        floors = tuple(float(row[0]) for row in table)
        return cls(inverse, np.array(floors), np.array([float(row[1]) for row in table]),
                   np.array([float(row[2]) for row in table]), model, floors)

    @classmethod
    def fixed(cls, inverse: bool) -> MarketSchedule:
        """One bracket with no rate: with per-pool ``deductions`` of ``−MM``, a maintenance margin
        that does not move with the price (Bybit's isolated MM, valued at the entry price)."""
        return cls(inverse, np.zeros(1), np.zeros(1), np.zeros(1), None, (0.0,))

    @property
    def size_dependent(self) -> bool:
        """The rate depends on the position's size (Drift's premium), not on its bracket alone."""
        return isinstance(self.model, SizePremium) and bool(self.model.imf_factor)

    def size_rates(self, sizes: Sequence[Decimal]) -> np.ndarray | None:
        """Per-position rates where the rate depends on the size, else None (the brackets' rates)."""
        if not self.size_dependent:
            return None
        return np.array([float(self.model.maintenance_line(Decimal(0), size)[0])  # type: ignore[union-attr]
                         for size in sizes])


def breakpoints(schedule: MarketSchedule, base: np.ndarray, quantity: np.ndarray, ratios: np.ndarray,
                rates: np.ndarray | None = None, deductions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every ``x > 0`` at which one of these single-position pools may change status.

    ``base``, ``quantity`` (signed, in contracts × contract size) and ``ratios`` (each pool's
    warning ratio ``w``) are per pool; ``rates`` overrides the bracket rates per pool (shape
    ``(pools,)``, a size-dependent rate such as Drift's premium), ``deductions`` the bracket
    deductions (with :meth:`MarketSchedule.fixed`, a fixed maintenance margin per pool). Returns
    ``(points, rows)``: the breakpoints and the index of the pool each belongs to (a pool may have
    several).
    """
    base = np.asarray(base, dtype=np.float64)
    quantity = np.asarray(quantity, dtype=np.float64)
    sign = -1.0 if schedule.inverse else 1.0
    size = np.abs(quantity)
    tiers = len(schedule.floors)
    rows = np.arange(len(base))
    found_points: list[np.ndarray] = []
    found_rows: list[np.ndarray] = []

    def rate_of(tier: int) -> np.ndarray | float:
        return rates if rates is not None else float(schedule.rates[tier])

    def deduction_of(tier: int) -> np.ndarray | float:
        return deductions if deductions is not None else float(schedule.deductions[tier])

    with np.errstate(divide="ignore", invalid="ignore"):
        for k in (np.asarray(ratios, dtype=np.float64), np.ones(len(base))):
            for tier in range(tiers):
                slope = size * rate_of(tier) - k * quantity * sign
                offset = deduction_of(tier) + k * base
                root = offset / slope  # h_k(x) = slope·x − offset
                lower = schedule.floors[tier] / size
                upper = schedule.floors[tier + 1] / size if tier + 1 < tiers else np.inf
                inside = (slope != 0) & (root > 0) & (root >= lower * (1 - _ROOT_SLACK)) & (
                    root <= upper * (1 + _ROOT_SLACK))
                found_points.append(root[inside])
                found_rows.append(rows[inside])
            for tier in range(1, tiers):  # a jump of h_k at a bracket floor is a breakpoint too
                edge = schedule.floors[tier] / size
                below = edge * (size * rate_of(tier - 1) - k * quantity * sign) - (deduction_of(tier - 1) + k * base)
                above = edge * (size * rate_of(tier) - k * quantity * sign) - (deduction_of(tier) + k * base)
                jumps = (below * above <= 0) & (below != above) & np.isfinite(edge)
                found_points.append(edge[jumps])
                found_rows.append(rows[jumps])
    if not found_points:
        return np.empty(0), np.empty(0, dtype=np.int64)
    return np.concatenate(found_points), np.concatenate(found_rows).astype(np.int64)


def at_risk(schedule: MarketSchedule, base: np.ndarray, quantity: np.ndarray, ratios: np.ndarray, x: float,
            rates: np.ndarray | None = None, margin: float = 1e-9,
            deductions: np.ndarray | None = None) -> np.ndarray:
    """Which single-position pools are (or are within a relative ``margin`` of being) at risk at
    ``x``: ``MM >= w·equity`` with ``MM > 0``. Floats, for picking what to value exactly.
    ``rates`` and ``deductions`` override the brackets' per pool, as in :func:`breakpoints`."""
    size = np.abs(quantity)
    notional = size * x
    tier = np.maximum(np.searchsorted(schedule.floors, notional, side="right") - 1, 0)
    rate = rates if rates is not None else schedule.rates[tier]
    maintenance = notional * rate - (deductions if deductions is not None else schedule.deductions[tier])
    equity = base + quantity * (-x if schedule.inverse else x)
    tolerance = margin * (np.abs(base) + notional + np.abs(maintenance) + 1.0)
    return (maintenance > 0) & (maintenance - ratios * equity >= -tolerance)


class _Market:
    """One market's breakpoints, sorted, each with the slot (pool entry) it belongs to."""

    def __init__(self) -> None:
        self.points = np.empty(0)
        self.slots = np.empty(0, dtype=np.int64)
        self.pending_points: list[np.ndarray] = []
        self.pending_slots: list[np.ndarray] = []
        self.pending = 0

    def add(self, points: np.ndarray, slots: np.ndarray) -> None:
        self.pending_points.append(points)
        self.pending_slots.append(slots)
        self.pending += len(points)

    def merge(self, alive: np.ndarray) -> None:
        """Fold the pending entries into the sorted arrays (dropping dead slots)."""
        points = np.concatenate([self.points[alive[self.slots]], *self.pending_points])
        slots = np.concatenate([self.slots[alive[self.slots]], *self.pending_slots])
        order = np.argsort(points, kind="stable")
        self.points, self.slots = points[order], slots[order]
        self.pending_points, self.pending_slots, self.pending = [], [], 0

    def crossed(self, low: float, high: float) -> np.ndarray:
        start = np.searchsorted(self.points, low, side="left")
        stop = np.searchsorted(self.points, high, side="right")
        found = [self.slots[start:stop]]
        for points, slots in zip(self.pending_points, self.pending_slots):
            found.append(slots[(points >= low) & (points <= high)])
        return np.concatenate(found) if len(found) > 1 else found[0]


class ThresholdIndex:
    """Breakpoints of many single-position pools, per market, keyed by an owner (an account).

    An owner's entries are replaced as a whole (:meth:`replace`); :meth:`crossed` returns the
    owners with a breakpoint between two prices of a market.
    """

    def __init__(self, *, band: float = DEFAULT_BAND, merge_above: int = 512):
        self.band = band
        self.merge_above = merge_above
        self._markets: dict[str, _Market] = {}
        self._slot_owner: list[str] = []
        self._alive = np.zeros(0, dtype=bool)
        self._owner_slots: dict[str, list[int]] = {}
        self._dead = 0

    def _new_slots(self, owners: list[str]) -> np.ndarray:
        start = len(self._slot_owner)
        self._slot_owner.extend(owners)
        if len(self._slot_owner) > len(self._alive):
            grown = np.zeros(max(2 * len(self._alive), len(self._slot_owner), 1024), dtype=bool)
            grown[:len(self._alive)] = self._alive
            self._alive = grown
        self._alive[start:len(self._slot_owner)] = True
        for offset, owner in enumerate(owners):
            self._owner_slots.setdefault(owner, []).append(start + offset)
        return np.arange(start, start + len(owners), dtype=np.int64)

    def add_many(self, market: str, owners: list[str], points: np.ndarray, rows: np.ndarray, *,
                 merge: bool = False) -> None:
        """Enter pools of one market in bulk: ``owners[i]`` owns the points whose row is ``i``.
        An owner already in the index keeps its other entries (:meth:`remove` it first to
        replace them). ``merge``: sort them in now rather than at the next query."""
        slots = self._new_slots(owners)
        entry = self._markets.setdefault(market, _Market())
        entry.add(np.asarray(points, dtype=np.float64), slots[rows])
        if merge:
            entry.merge(self._alive)

    def remove(self, owner: str) -> None:
        for slot in self._owner_slots.pop(owner, ()):
            self._alive[slot] = False
            self._dead += 1

    def replace(self, owner: str, pools: list[tuple[str, np.ndarray]]) -> None:
        """The owner's pools now are ``(market, breakpoints)``; its old entries are dropped."""
        self.remove(owner)
        if not pools:
            self._owner_slots[owner] = []  # known, with nothing that can cross
            return
        slots = self._new_slots([owner] * len(pools))
        for slot, (market, points) in zip(slots, pools):
            entry = self._markets.setdefault(market, _Market())
            entry.add(np.asarray(points, dtype=np.float64), np.full(len(points), slot, dtype=np.int64))

    def crossed(self, market: str, x0: float, x1: float) -> set[str]:
        """Owners with a breakpoint of ``market`` within [x0, x1] (either order), band included."""
        entry = self._markets.get(market)
        if entry is None:
            return set()
        if entry.pending > self.merge_above or self._dead > max(len(self._slot_owner) // 4, 4096):
            self._compact()
        low, high = min(x0, x1) * (1 - self.band), max(x0, x1) * (1 + self.band)
        slots = entry.crossed(low, high)
        slots = slots[self._alive[slots]]
        owner = self._slot_owner
        return {owner[slot] for slot in np.unique(slots).tolist()}

    def _compact(self) -> None:
        for entry in self._markets.values():
            entry.merge(self._alive)
        if self._dead > len(self._slot_owner) // 4:  # renumber the live slots
            live = np.flatnonzero(self._alive[:len(self._slot_owner)])
            renumber = np.full(len(self._slot_owner), -1, dtype=np.int64)
            renumber[live] = np.arange(len(live))
            self._slot_owner = [self._slot_owner[slot] for slot in live.tolist()]
            self._alive = np.ones(max(len(live), 1024), dtype=bool)
            self._alive[len(live):] = False
            for entry in self._markets.values():
                entry.slots = renumber[entry.slots]
            for owner, slots in self._owner_slots.items():
                self._owner_slots[owner] = [int(renumber[slot]) for slot in slots]
            self._dead = 0
