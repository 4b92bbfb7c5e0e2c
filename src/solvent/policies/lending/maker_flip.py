"""Maker's English collateral auctions of 2019-2020 (``cat.bite`` and ``flip``): pure rules.

Before Liquidations 2.0, an unsafe vault was "bitten": the Cat took up to ``lump`` of its
collateral with the matching share of its debt and kicked an English auction for it in the
Flipper. Reference: ../shared/reference/lending-protocols.md §9.1; makerdao/dss ``cat.sol`` and
``flip.sol`` (the "Liquidations 1.2" system, docs.makerdao.com/miscellaneous/
liquidations-1.2-system-deprecated/flipper-detailed-documentation). The rules, restated:

- **bite**: the vault must be unsafe (``ink·spot < art·rate``, ``spot = price/par/mat``);
  ``lot = min(ink, lump)``, ``art' = art·lot/ink`` (all of it when the lot is the whole vault);
  ``tab = art'·rate·chop`` (rad) is what the auction must raise; the debt ``art'·rate`` goes to
  the vow as system debt (``sin``) until the bids cover it.
- **kick**: ``bid = 0``, ``end = now + tau``, no bid expiry yet (``tic = 0``).
- **tend** (first phase, rising DAI for the whole lot): the auction must not be finished
  (``tic > now or tic == 0`` and ``end > now``); same ``lot``; ``bid <= tab``; ``bid > bid₀``;
  and ``bid >= beg·bid₀`` unless ``bid == tab``. The new bidder refunds the previous one and pays
  the increase to the vow; ``tic = now + ttl``.
- **dent** (second phase, once ``bid == tab``: less collateral for the same DAI): not finished;
  ``bid == bid₀ == tab``; ``lot < lot₀``; ``beg·lot <= lot₀``. The collateral given up goes back
  to the vault's owner; ``tic = now + ttl``.
- **deal**: once a bid stands and has expired (``tic != 0`` and ``tic < now`` or ``end < now``),
  the lot goes to the highest bidder.
- **tick**: no bid and ``end < now``: the auction restarts, ``end = now + tau``.

Because ``bid > 0`` is the only floor, the first bid may be one wei of DAI: if no one outbids it
within ``ttl`` (keepers' transactions stuck behind congested gas), it wins the whole lot. That is
the "zero-bid" failure of 12-13 March 2020.

Amounts: collateral in wad, DAI bids in wad (the ledger's DAI unit; ``tab`` rounded up to it),
debt in rad, ratios in ray, times in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ...core.errors import InvalidInput
from ...core.numbers import to_int
from . import RAY, WAD, ProtocolRevert, ceil_div, to_units


@dataclass(frozen=True)
class FlipIlk:
    """One collateral type's liquidation parameters under the Cat and the Flipper."""

    name: str
    mat: int  # ray, liquidation ratio
    chop: int  # wad, liquidation penalty (1.13 = 13%)
    lump: int  # wad, most collateral per auction
    beg: int  # wad, minimum bid increase (1.03 = 3%)
    ttl: int  # s, bid duration
    tau: int  # s, auction length
    par: int = RAY
    dust: int = 0  # rad

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any], where: str) -> FlipIlk:
        def need(key: str) -> Any:
            if key not in table:
                raise InvalidInput(f"{where}.{key}", "missing")
            return table[key]

        ilk = cls(name=name, mat=to_units(need("mat"), 27, f"{where}.mat"),
                  chop=to_units(need("chop"), 18, f"{where}.chop"), lump=to_units(need("lump"), 18, f"{where}.lump"),
                  beg=to_units(need("beg"), 18, f"{where}.beg"), ttl=to_int(need("ttl"), f"{where}.ttl"),
                  tau=to_int(need("tau"), f"{where}.tau"), par=to_units(table.get("par", "1"), 27, f"{where}.par"),
                  dust=to_units(table.get("dust", "0"), 45, f"{where}.dust"))
        for key in ("mat", "chop", "lump", "ttl", "tau"):
            if getattr(ilk, key) <= 0:
                raise InvalidInput(f"{where}.{key}", "must be positive")
        if ilk.beg < WAD:
            raise InvalidInput(f"{where}.beg", "must be at least 1 (1.03 = a 3% minimum increase)")
        return ilk


@dataclass(frozen=True)
class Bite:
    lot: int  # wad of collateral put up for auction
    art: int  # wad of normalised debt taken from the vault
    due: int  # rad, the debt handed to the vow (art·rate)
    tab: int  # DAI wad the auction must raise (art·rate·chop, rounded up)


def bite(ink: int, art: int, rate: int, price: int, ilk: FlipIlk) -> Bite:
    """``cat.bite`` of a vault (``price``: the OSM price in DAI, wad)."""
    if art <= 0 or ink <= 0:
        raise ProtocolRevert("Cat/not-unsafe: the vault has no debt")
    spot = price * RAY // ilk.par * RAY // ilk.mat  # ray: price / par / mat
    if ink * spot >= art * rate:
        raise ProtocolRevert("Cat/not-unsafe")
    lot = min(ink, ilk.lump)
    taken = art if lot == ink else art * lot // ink
    due = taken * rate
    tab = ceil_div(due * ilk.chop // WAD, RAY)
    return Bite(lot, taken, due, tab)


@dataclass(frozen=True)
class FlipAuction:
    """``flip.bids[id]``: ``bid`` (DAI wad) offered for ``lot`` (collateral wad) by ``guy``;
    ``tic`` the bid's expiry (0: no bid yet), ``end`` the auction's; ``tab`` the DAI to raise."""

    bid: int
    lot: int
    guy: str
    tic: int
    end: int
    tab: int
    usr: str  # the vault's owner, who gets back what the dent phase gives up

    @property
    def phase(self) -> str:
        return "dent" if self.bid >= self.tab else "tend"


def kick(lot: int, tab: int, usr: str, now: int, ilk: FlipIlk, kicker: str = "") -> FlipAuction:
    return FlipAuction(bid=0, lot=lot, guy=kicker, tic=0, end=now + ilk.tau, tab=tab, usr=usr)


def _open(auction: FlipAuction, now: int) -> None:
    if not (auction.tic > now or auction.tic == 0):
        raise ProtocolRevert("Flipper/already-finished-tic")
    if not auction.end > now:
        raise ProtocolRevert("Flipper/already-finished-end")


def tend(auction: FlipAuction, bidder: str, lot: int, bid: int, now: int, ilk: FlipIlk) -> FlipAuction:
    """A higher DAI bid for the whole lot."""
    _open(auction, now)
    if lot != auction.lot:
        raise ProtocolRevert("Flipper/lot-not-matching")
    if bid > auction.tab:
        raise ProtocolRevert("Flipper/higher-than-tab")
    if bid <= auction.bid:
        raise ProtocolRevert("Flipper/bid-not-higher")
    if bid * WAD < ilk.beg * auction.bid and bid != auction.tab:
        raise ProtocolRevert("Flipper/insufficient-increase")
    return replace(auction, bid=bid, guy=bidder, tic=now + ilk.ttl)


def dent(auction: FlipAuction, bidder: str, lot: int, bid: int, now: int, ilk: FlipIlk) -> FlipAuction:
    """Less collateral for the full tab."""
    _open(auction, now)
    if bid != auction.bid:
        raise ProtocolRevert("Flipper/not-matching-bid")
    if bid != auction.tab:
        raise ProtocolRevert("Flipper/tend-not-finished")
    if lot >= auction.lot:
        raise ProtocolRevert("Flipper/lot-not-lower")
    if ilk.beg * lot > auction.lot * WAD:
        raise ProtocolRevert("Flipper/insufficient-decrease")
    return replace(auction, lot=lot, guy=bidder, tic=now + ilk.ttl)


def bid(auction: FlipAuction, bidder: str, lot: int, amount: int, now: int, ilk: FlipIlk) -> FlipAuction:
    """``tend`` while the bid is below the tab, ``dent`` once it reached it."""
    if auction.phase == "tend":
        return tend(auction, bidder, lot, amount, now, ilk)
    return dent(auction, bidder, lot, amount, now, ilk)


def can_deal(auction: FlipAuction, now: int) -> bool:
    return auction.tic != 0 and (auction.tic < now or auction.end < now)


def deal(auction: FlipAuction, now: int) -> FlipAuction:
    if not can_deal(auction, now):
        raise ProtocolRevert("Flipper/not-finished")
    return auction


def tick(auction: FlipAuction, now: int, ilk: FlipIlk) -> FlipAuction:
    if not auction.end < now:
        raise ProtocolRevert("Flipper/not-finished")
    if auction.tic != 0:
        raise ProtocolRevert("Flipper/bid-already-placed")
    return replace(auction, end=now + ilk.tau)


def min_next_bid(auction: FlipAuction, ilk: FlipIlk) -> int:
    """The smallest DAI bid ``tend`` accepts now: one unit above the standing bid, and ``beg``
    times it (rounded up), but never above the tab (which is always accepted)."""
    least = max(auction.bid + 1, ceil_div(ilk.beg * auction.bid, WAD))
    return min(least, auction.tab)


def max_next_lot(auction: FlipAuction, ilk: FlipIlk) -> int:
    """The largest lot ``dent`` accepts now: ``lot₀ / beg`` (rounded down), below ``lot₀``."""
    return min(auction.lot * WAD // ilk.beg, auction.lot - 1)
