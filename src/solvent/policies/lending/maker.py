"""Maker Liquidations 2.0: ``dog.bark`` starts a Dutch auction that ``clip.take`` sells into.

Reference: ../shared/reference/lending-protocols.md §3 (``dog.sol``, ``clip.sol``, ``abaci.sol``
of makerdao/dss). Everything is computed in Maker's integers: **wad** (1e18: collateral ``ink``,
normalised debt ``art``, ``chop``, OSM prices), **ray** (1e27: ``rate``, ``spot``, ``mat``,
``buf``, ``cusp``, auction prices, ``cut``) and **rad** (1e45: DAI amounts ``tab``, ``dust``,
``hole``, ``owe``, ``chost``), with the contracts' truncating ``rmul``/``rdiv``/``wmul`` and a
half-up ``rpow``. Inputs and outputs are decimals in DAI and collateral units; the ``*_units``
fields hold the integers.

- price decrease (§3.4): linear ``top·(tau − dur)/tau`` (0 from ``tau`` on); stairstep
  ``top·cut^⌊dur/step⌋``; continuous exponential ``top·cut^dur``;
- bark (§3.1–3.2): the vault must be unsafe (``ink·spot < art·rate``); it takes
  ``dart = min(art, room/rate/chop)`` where ``room = min(Hole − Dirt, hole − dirt)``, but never
  leaves a dusty vault (then it takes all of it) nor starts a dusty auction (reverts);
  ``tab = dart·rate·chop`` is what the auction must raise; ``top = feed price · buf``;
- take (§3.3): ``slice = min(lot, amt)``, ``owe = slice·price``; over the tab, ``owe = tab``;
  a partial take that would leave ``0 < tab − owe < chost`` (``chost = dust·chop``) is cut back
  to leave exactly ``chost``; when the tab is covered, the remaining lot goes back to the owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from ...core.errors import InvalidInput, UnknownName
from ...core.numbers import to_int
from . import RAY, WAD, ProtocolRevert, from_units, to_units

BLN = 10**9


def wad(value: object, field: str) -> int:
    return to_units(value, 18, field)


def ray(value: object, field: str) -> int:
    return to_units(value, 27, field)


def rad(value: object, field: str) -> int:
    return to_units(value, 45, field)


def rmul(x: int, y: int) -> int:
    return x * y // RAY


def rdiv(x: int, y: int) -> int:
    return x * RAY // y


def wmul(x: int, y: int) -> int:
    return x * y // WAD


def rpow(x: int, n: int, base: int = RAY) -> int:
    """``x^n`` in fixed point ``base`` by squaring, each product rounded half up (dss ``rpow``)."""
    if n == 0:
        return base
    if x == 0:
        return 0
    half = base // 2
    z = x if n % 2 else base
    n //= 2
    while n:
        x = (x * x + half) // base
        if n % 2:
            z = (z * x + half) // base
        n //= 2
    return z


# --------------------------------------------------------------------------------------------
# Price-decrease functions (abaci)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearDecrease:
    """Falls linearly from ``top`` to 0 over ``tau`` seconds."""

    tau: int

    def __post_init__(self) -> None:
        if self.tau <= 0:
            raise InvalidInput("tau", "must be a positive number of seconds")

    def price(self, top: int, dur: int) -> int:
        if dur >= self.tau:
            return 0
        return rmul(top, (self.tau - dur) * RAY // self.tau)


@dataclass(frozen=True)
class StairstepExponentialDecrease:
    """Multiplied by ``cut`` (ray, ≤ 1) every ``step`` seconds."""

    step: int
    cut: int

    def __post_init__(self) -> None:
        if self.step <= 0:
            raise InvalidInput("step", "must be a positive number of seconds")
        if not 0 <= self.cut <= RAY:
            raise InvalidInput("cut", "must be within [0, 1]")

    def price(self, top: int, dur: int) -> int:
        return rmul(top, rpow(self.cut, dur // self.step, RAY))


@dataclass(frozen=True)
class ExponentialDecrease:
    """Multiplied by ``cut`` (ray, ≤ 1) every second, continuously compounded."""

    cut: int

    def __post_init__(self) -> None:
        if not 0 <= self.cut <= RAY:
            raise InvalidInput("cut", "must be within [0, 1]")

    def price(self, top: int, dur: int) -> int:
        return rmul(top, rpow(self.cut, dur, RAY))


PriceCalc = LinearDecrease | StairstepExponentialDecrease | ExponentialDecrease

_CALC_NAMES = {
    "linear": "linear", "lineardecrease": "linear",
    "stairstep": "stairstep", "stairstep_exponential": "stairstep", "stairstepexponentialdecrease": "stairstep",
    "exponential": "exponential", "continuous": "exponential", "exponentialdecrease": "exponential",
}


def price_calc(spec: Mapping[str, Any], where: str = "calc", defaults: Mapping[str, Any] | None = None) -> PriceCalc:
    """A price function from ``{calc, tau | step, cut | cut}``; missing parameters come from
    ``defaults`` (the ilk's preset) when it names the same function."""
    defaults = dict(defaults or {})

    def at(key: str) -> str:
        return f"{where}.{key}" if where else key

    name = spec.get("calc", defaults.get("calc"))
    if name is None:
        raise InvalidInput(at("calc"), "missing (linear, stairstep or exponential)")
    kind = _CALC_NAMES.get(str(name).strip().lower())
    if kind is None:
        raise InvalidInput(at("calc"), f"unknown price function {name!r} (linear, stairstep, exponential)")
    if _CALC_NAMES.get(str(defaults.get("calc", "")).strip().lower()) != kind:
        defaults = {}

    def get(key: str) -> Any:
        if key in spec:
            return spec[key]
        if key in defaults:
            return defaults[key]
        raise InvalidInput(at(key), f"missing (needed by the {kind} price function)")

    if kind == "linear":
        return LinearDecrease(to_int(get("tau"), at("tau")))
    if kind == "stairstep":
        return StairstepExponentialDecrease(to_int(get("step"), at("step")), ray(get("cut"), at("cut")))
    return ExponentialDecrease(ray(get("cut"), at("cut")))


def auction_price(calc: PriceCalc, top: object, elapsed: object) -> Decimal:
    """The auction price (DAI per collateral unit) ``elapsed`` seconds after the kick."""
    return from_units(calc.price(ray(top, "top"), _seconds(elapsed, "elapsed")), 27)


def _seconds(value: object, field: str) -> int:
    seconds = to_int(value, field)
    if seconds < 0:
        raise InvalidInput(field, "must not be negative")
    return seconds


# --------------------------------------------------------------------------------------------
# Ilk parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MakerIlk:
    """A collateral type's liquidation parameters, in Maker's units (see the module docstring).

    ``hole`` is the ilk's limit on DAI in auctions, ``Hole`` the system's (``system_hole``);
    ``tail``/``cusp`` decide when an auction needs a reset; ``tip`` (rad) + ``chip·tab`` is the
    keeper's reward for a kick, minted as system debt. ``par`` is the DAI target price (ray).
    """

    name: str
    mat: int = RAY
    chop: int = WAD
    dust: int = 0
    hole: int = 0
    system_hole: int = 0
    buf: int = RAY
    tail: int | None = None
    cusp: int | None = None
    chip: int = 0
    tip: int = 0
    par: int = RAY
    calc: Mapping[str, Any] | None = None  # the price function's table (kept as data)

    def __post_init__(self) -> None:
        where = f"ilks[{self.name}]"
        if self.chop < WAD:
            raise InvalidInput(f"{where}.chop", "must be at least 1 (Dog/file-chop-lt-WAD)")
        if self.mat <= 0:
            raise InvalidInput(f"{where}.mat", "must be positive")
        if self.par <= 0:
            raise InvalidInput(f"{where}.par", "must be positive")
        if self.cusp is not None and self.cusp > RAY:
            raise InvalidInput(f"{where}.cusp", "must be at most 1")

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any], where: str | None = None) -> MakerIlk:
        """A preset's ``[ilks.<name>]`` table: DAI amounts, ratios and seconds as decimals."""
        at = where or f"ilks[{name}]"
        calc = {key: table[key] for key in ("calc", "tau", "step", "cut") if key in table} or None
        ilk = cls(
            name=name,
            mat=ray(table.get("mat", "1"), f"{at}.mat"),
            chop=wad(table.get("chop", "1"), f"{at}.chop"),
            dust=rad(table.get("dust", "0"), f"{at}.dust"),
            hole=rad(table.get("hole", "0"), f"{at}.hole"),
            system_hole=rad(table.get("system_hole", "0"), f"{at}.system_hole"),
            buf=ray(table.get("buf", "1"), f"{at}.buf"),
            tail=None if "tail" not in table else _seconds(table["tail"], f"{at}.tail"),
            cusp=None if "cusp" not in table else ray(table["cusp"], f"{at}.cusp"),
            chip=wad(table.get("chip", "0"), f"{at}.chip"),
            tip=rad(table.get("tip", "0"), f"{at}.tip"),
            par=ray(table.get("par", "1"), f"{at}.par"),
            calc=calc,
        )
        if calc is not None:
            price_calc(calc, at)  # validate now
        return ilk

    def with_overrides(self, values: Mapping[str, Any], where: str = "") -> MakerIlk:
        """A copy with any of ``mat chop dust hole buf tail cusp chip tip par`` given as decimals."""
        units = {"mat": ray, "chop": wad, "dust": rad, "hole": rad, "system_hole": rad, "buf": ray,
                 "cusp": ray, "chip": wad, "tip": rad, "par": ray}
        changes: dict[str, Any] = {}
        for key, convert in units.items():
            if key in values:
                changes[key] = convert(values[key], f"{where}{key}")
        if "tail" in values:
            changes["tail"] = _seconds(values["tail"], f"{where}tail")
        calc = {key: values[key] for key in ("calc", "tau", "step", "cut") if key in values}
        if calc:
            changes["calc"] = {**(self.calc or {}), **calc}
        return replace(self, **changes)

    @property
    def chost(self) -> int:
        """``dust·chop`` (rad): the smallest tab a partial take may leave (``clip.upchost``)."""
        return wmul(self.dust, self.chop)

    def price_calc(self, spec: Mapping[str, Any] | None = None, where: str = "calc") -> PriceCalc:
        """The price function ``spec`` names, with this ilk's parameters filling what it omits."""
        return price_calc(spec or {}, where, self.calc)


# --------------------------------------------------------------------------------------------
# Vault safety and bark
# --------------------------------------------------------------------------------------------


def feed_price(price: int, par: int = RAY) -> int:
    """The OSM price (wad) as a ray, divided by the DAI target price ``par`` (``clip.getFeedPrice``)."""
    return rdiv(price * BLN, par)


def spot(price: int, mat: int, par: int = RAY) -> int:
    """``spotter.poke``: price / par / liquidation ratio, in ray."""
    return rdiv(rdiv(price * BLN, par), mat) if price > 0 else 0


def is_unsafe(ink: int, art: int, rate: int, spot_: int) -> bool:
    """``ink·spot < art·rate`` with ``spot > 0`` — the vault may be barked."""
    return spot_ > 0 and ink * spot_ < art * rate


def liquidation_room(system_hole: int, system_dirt: int, hole: int, dirt: int) -> int:
    """``min(Hole − Dirt, hole − dirt)`` (rad); reverts when either limit is reached."""
    if not (system_hole > system_dirt and hole > dirt):
        raise ProtocolRevert("Dog/liquidation-limit-hit", "no room left under Hole or the ilk's hole")
    return min(system_hole - system_dirt, hole - dirt)


@dataclass(frozen=True)
class Auction:
    """A running collateral auction: ``tab`` (rad) still to raise, ``lot`` (wad) still for sale,
    starting price ``top`` (ray), its price function and reset rules (``tail`` s, ``cusp`` ray;
    ``None`` = not checked)."""

    tab: int
    lot: int
    top: int
    calc: PriceCalc
    tail: int | None = None
    cusp: int | None = None

    @classmethod
    def parse(cls, tab: object, lot: object, top: object, calc: PriceCalc, *, tail: object = None,
              cusp: object = None, where: str = "auction") -> Auction:
        return cls(rad(tab, f"{where}.tab"), wad(lot, f"{where}.lot"), ray(top, f"{where}.top"), calc,
                   None if tail is None else _seconds(tail, f"{where}.tail"),
                   None if cusp is None else ray(cusp, f"{where}.cusp"))

    def status(self, elapsed: int) -> tuple[bool, int]:
        """(needs reset, price) ``elapsed`` seconds after the kick (``clip.status``)."""
        price = self.calc.price(self.top, elapsed)
        done = False
        if self.tail is not None and elapsed > self.tail:
            done = True
        if self.cusp is not None and self.top and rdiv(price, self.top) < self.cusp:
            done = True
        return done, price


@dataclass(frozen=True)
class Bark:
    """``dog.bark`` of one vault: what moved where. Integers in Maker units, decimals via ``outputs``."""

    dart: int  # normalised debt taken (wad)
    dink: int  # collateral sent to auction (wad)
    due: int  # debt moved to the vow (rad)
    tab: int  # DAI the auction must raise, penalty included (rad)
    top: int  # starting price (ray)
    ink_after: int
    art_after: int
    coin: int  # keeper incentive tip + chip·tab (rad), new system debt
    auction: Auction

    def outputs(self) -> dict[str, Any]:
        return {
            "tab": from_units(self.tab, 45), "lot": from_units(self.dink, 18), "top": from_units(self.top, 27),
            "ink_after": from_units(self.ink_after, 18), "art_after": from_units(self.art_after, 18),
            "due": from_units(self.due, 45), "coin": from_units(self.coin, 45),
            "penalty": from_units(self.tab - self.due, 45),
        }


def bark(ink: int, art: int, rate: int, price: int, ilk: MakerIlk, room: int, *,
         calc: PriceCalc | None = None) -> Bark:
    """Liquidate an unsafe vault (§3.1–3.2), all in Maker units: ``ink``/``art`` wad, ``rate`` ray,
    ``price`` (OSM, wad), ``room`` (rad) left under ``Hole`` and the ilk's ``hole``."""
    if min(ink, art, rate, price) < 0:
        raise InvalidInput("vault", "ink, art, rate and price must not be negative")
    if room <= 0:
        raise ProtocolRevert("Dog/liquidation-limit-hit", "no room left under Hole or the ilk's hole")
    if not is_unsafe(ink, art, rate, spot(price, ilk.mat, ilk.par)):
        raise ProtocolRevert("Dog/not-unsafe", "collateral value / mat still covers the debt")
    dart = min(art, room * WAD // rate // ilk.chop)
    if art > dart:
        if (art - dart) * rate < ilk.dust:
            dart = art  # a dusty remainder would be unliquidatable: take the whole vault
        elif dart * rate < ilk.dust:
            raise ProtocolRevert("Dog/dusty-auction-from-partial-liquidation",
                                 "the room allows only a dusty auction")
    dink = ink * dart // art
    if dink <= 0:
        raise ProtocolRevert("Dog/null-auction", "no collateral would be auctioned")
    due = dart * rate
    tab = due * ilk.chop // WAD
    top = rmul(feed_price(price, ilk.par), ilk.buf)
    if top <= 0:
        raise ProtocolRevert("Clipper/zero-top-price", "the feed price is zero")
    coin = ilk.tip + wmul(tab, ilk.chip) if (ilk.tip or ilk.chip) else 0
    auction = Auction(tab, dink, top, calc or ilk.price_calc(), ilk.tail, ilk.cusp)
    return Bark(dart, dink, due, tab, top, ink - dink, art - dart, coin, auction)


def bark_vault(ink: object, art: object, rate: object, price: object, ilk: MakerIlk, room: object = None, *,
               system_dirt: object = "0", dirt: object = "0") -> Bark:
    """:func:`bark` from decimals: collateral units, normalised debt, rate, DAI price. ``room``
    (DAI) defaults to what the ilk's ``hole`` and the system ``Hole`` leave above ``dirt`` and
    ``Dirt`` (DAI already in auctions)."""
    if room is None:
        room_units = liquidation_room(ilk.system_hole, rad(system_dirt, "system_dirt"), ilk.hole, rad(dirt, "dirt"))
    else:
        room_units = rad(room, "hole_room")
    return bark(wad(ink, "ink"), wad(art, "art"), ray(rate, "rate"), wad(price, "price"), ilk, room_units)


# --------------------------------------------------------------------------------------------
# Take
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Take:
    """One ``clip.take``: the price paid (ray), DAI owed (rad), collateral bought (wad), and the
    auction afterwards."""

    elapsed: int
    price: int
    owe: int
    slice: int
    tab_after: int
    lot_after: int
    returned_to_owner: int  # collateral given back when the tab is covered (wad)
    dirt_released: int  # what ``dog.digs`` removes from Dirt/dirt (rad)

    @property
    def finished(self) -> bool:
        return self.lot_after == 0 or self.tab_after == 0


def take(auction: Auction, elapsed: int, amt: int, max_price: int, chost: int) -> tuple[Take, Auction | None]:
    """Buy up to ``amt`` (wad) of the lot at the current price if it is at most ``max_price``
    (ray). Returns the take and the auction left running (``None`` once it has ended)."""
    if amt < 0 or max_price < 0 or chost < 0 or elapsed < 0:
        raise InvalidInput("take", "amt, max, chost and elapsed must not be negative")
    done, price = auction.status(elapsed)
    if done:
        raise ProtocolRevert("Clipper/needs-reset", f"the auction needs a reset at {elapsed} s")
    if max_price < price:
        raise ProtocolRevert("Clipper/too-expensive", "the price is above the buyer's max")
    lot, tab = auction.lot, auction.tab
    slice_ = min(lot, amt)
    owe = slice_ * price
    if owe > tab:  # the whole tab is paid; buy only what it needs
        owe = tab
        slice_ = owe // price
    elif owe < tab and slice_ < lot and tab - owe < chost:
        # What is left must stay auctionable: leave exactly chost, or take the whole lot.
        if tab <= chost:
            raise ProtocolRevert("Clipper/no-partial-purchase", "the tab is below chost: take the whole lot")
        owe = tab - chost
        slice_ = owe // price
    tab -= owe
    lot -= slice_
    released = tab + owe if lot == 0 else owe
    returned = 0
    remaining: Auction | None = replace(auction, tab=tab, lot=lot)
    if lot == 0:
        remaining = None  # any tab left is uncovered: it stays as the vow's sin (bad debt)
    elif tab == 0:
        returned, lot, remaining = lot, 0, None
    result = Take(elapsed, price, owe, slice_, tab, lot, returned, released)
    return result, remaining


@dataclass(frozen=True)
class TakeSequence:
    """Takes applied in order, and the final state: ``tab`` (rad) uncovered or still open,
    ``lot`` (wad) still for sale, ``returned_to_owner`` (wad)."""

    takes: tuple[Take, ...]
    tab: int
    lot: int
    returned_to_owner: int
    running: bool

    def outputs(self) -> dict[str, Any]:
        """``tab``/``lot`` as the Clipper's sale record holds them: both 0 once the auction has
        ended (``clip.take`` deletes the sale). A tab the whole lot did not cover is reported as
        ``uncovered`` (it stays as the vow's bad debt)."""
        return {
            "takes": [{"owe": from_units(t.owe, 45), "slice": from_units(t.slice, 18), "price": from_units(t.price, 27)}
                      for t in self.takes],
            "tab": from_units(self.tab if self.running else 0, 45),
            "uncovered": from_units(0 if self.running else self.tab, 45),
            "lot": from_units(self.lot, 18),
            "returned_to_owner": from_units(self.returned_to_owner, 18),
            "running": self.running,
        }


def run_takes(auction: Auction, takes: Iterable[Mapping[str, Any]], chost: object) -> TakeSequence:
    """Apply takes given as ``{elapsed, amt, max}`` (seconds, collateral units, DAI per unit)."""
    chost_units = rad(chost, "chost")
    done: list[Take] = []
    state: Auction | None = auction
    tab, lot, returned = auction.tab, auction.lot, 0
    for index, row in enumerate(takes):
        where = f"takes[{index}]"
        if state is None:
            raise ProtocolRevert("Clipper/not-running-auction", f"{where}: the auction has ended")
        for key in ("elapsed", "amt", "max"):
            if key not in row:
                raise InvalidInput(f"{where}.{key}", "missing")
        result, state = take(state, _seconds(row["elapsed"], f"{where}.elapsed"), wad(row["amt"], f"{where}.amt"),
                             ray(row["max"], f"{where}.max"), chost_units)
        done.append(result)
        tab, lot = result.tab_after, result.lot_after
        returned += result.returned_to_owner
    return TakeSequence(tuple(done), tab, lot, returned, state is not None)


def keeper_incentive(tab: int, ilk: MakerIlk) -> int:
    """``tip + chip·tab`` (rad), paid to whoever kicks or resets an auction."""
    return ilk.tip + wmul(tab, ilk.chip)


def ilk_from_tables(name: str, ilks: Mapping[str, Any], system: Mapping[str, Any] | None = None,
                    where: str = "preset") -> MakerIlk:
    """The ilk ``name`` from a preset's ``[ilks.<name>]`` table, with the system-wide ``par`` and
    ``system_hole`` of its ``[liquidation]`` table."""
    if name not in ilks:
        raise UnknownName("ilk", name, list(ilks))
    table = ilks[name]
    if not isinstance(table, Mapping):
        raise InvalidInput(f"{where}.ilks.{name}", "expected a table")
    shared = {key: value for key, value in dict(system or {}).items() if key in ("par", "system_hole")}
    return MakerIlk.from_table(name, {**shared, **table}, f"{where}.ilks.{name}")
