"""Maker Liquidations 2.0 on the engine: vaults, ``bark``, Dutch auctions with ``take`` and ``redo``.

Rules come from :mod:`solvent.policies.lending.maker` with the preset's ``[ilks.<ilk>]`` and
``[liquidation]`` tables; ``[lending.ilks.<ilk>].gem`` names the collateral token (18 decimals,
like the vat's wad). Prices are the OSM price of the gem in DAI (18 decimals). The stability fee
is not modelled: ``rate`` stays 1, so a vault's debt is its ``art``.

Money. DAI is minted by the vat: ``<venue>/issuer`` holds minus the DAI in circulation;
``<venue>/vow`` holds the system surplus (what auctions raise); ``<venue>/pool`` holds the gems
locked in vaults and for sale in auctions. The vow's ``sin`` (debt taken from barked vaults and
the keeper incentives minted) is state; after every take the vow ``heal``s what its surplus can
cover. Identities (exact):

- ``issued · RAY == Σ art · rate + sin`` (rad), with ``issued`` = −issuer's DAI balance;
- ``pool[gem] == Σ ink + Σ auction lots`` and ``vow[DAI] == surplus``;
- ``Dirt == Σ ilk dirt == Σ`` tabs of running auctions (less what partial takes released).

Auctions live across commands: ``Bark`` starts one (tab = debt × chop, lot, top = OSM × buf;
the keeper gets ``tip + chip·tab``); time moves by ``AdvanceTime`` / ``UpdatePrices``; ``Take``
buys at the decaying price (partial takes never leave a tab below ``chost``); ``Redo`` restarts
one past ``tail`` or below ``cusp``. When the tab is covered the rest of the lot returns to the
owner's wallet; when the lot runs out first, the tab left is uncovered and the debt the sales
did not cover stays as system debt (``BadDebtRecorded``).

Draws need a safe vault (``ink·spot ≥ art·rate``, ``spot = price/par/mat``) and a debt of at
least ``dust`` (or none); wiping must not leave a dusty vault either.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..core.errors import InvalidInput
from ..core.numbers import positive
from ..policies.lending import RAY, WAD, ceil_div, from_units, maker
from .lending import (
    AuctionReset,
    AuctionSettled,
    AuctionStarted,
    AuctionTaken,
    BadDebtRecorded,
    Borrowed,
    LendingVenue,
    Moves,
    Repaid,
    SupplyAdded,
    SupplyWithdrawn,
    decimal_or_max,
)

RATE = RAY  # stability fees not modelled


def plain(value: Decimal) -> str:
    """An exact decimal without trailing zeros (rad and ray values carry 45 and 27 places)."""
    return "0" if value == 0 else format(value.normalize(), "f")


def dai(rad: int) -> str:
    return plain(from_units(rad, 45))


@dataclass
class AuctionState:
    id: int
    ilk: str
    owner: str
    tab: int  # rad
    lot: int  # wad
    top: int  # ray
    tic: int  # seconds
    due: int  # rad, the debt taken from the vault
    raised: int = 0  # DAI units (wad) paid by buyers


class MakerVenue(LendingVenue):
    protocol = "maker"
    price_decimals = 18
    account_names = ("pool", "vow", "issuer")

    def __init__(self, engine, name, preset) -> None:
        super().__init__(engine, name, preset)
        where = f"preset[{preset.name}]"
        self.dai = str(self.settings.get("stablecoin", "DAI"))
        if preset.assets.get(self.dai) is None or preset.assets[self.dai].decimals != 18:
            raise InvalidInput(f"{where}.assets.{self.dai}", "the stablecoin must be listed with 18 decimals")
        system = preset.section("liquidation")
        self.ilks: dict[str, Any] = {}  # maker.MakerIlk (or a subclass's own parameters)
        self.gems: dict[str, str] = {}
        for ilk, spec in sorted(dict(self.settings.get("ilks", {})).items()):
            at = f"{where}.lending.ilks.{ilk}"
            gem = str(spec.get("gem", ""))
            if gem not in preset.assets or preset.assets[gem].decimals != 18 or gem == self.dai:
                raise InvalidInput(f"{at}.gem", "must be a non-stablecoin asset listed with 18 decimals")
            self.ilks[ilk], self.gems[ilk] = self.parse_ilk(ilk, preset.section("ilks"), system, where), gem
        if not self.ilks:
            raise InvalidInput(f"{where}.lending.ilks", "no ilk defined")
        self.system_hole = maker.rad(system.get("system_hole", "0"), f"{where}.liquidation.system_hole")
        self.urns: dict[str, dict[str, list[int]]] = {ilk: {} for ilk in self.ilks}  # ilk → account → [ink, art]
        self.dirt: dict[str, int] = {ilk: 0 for ilk in self.ilks}
        self.Dirt = 0
        self.sin = 0  # rad
        self.surplus = 0  # wad, the vow's DAI
        self.issued = 0  # wad
        self.auctions: dict[int, AuctionState] = {}
        self.next_auction = 1

    def parse_ilk(self, ilk: str, tables: Any, system: Any, where: str) -> Any:
        """One ilk's liquidation parameters (Liquidations 2.0: ``dog`` and ``clip``)."""
        parsed = maker.ilk_from_tables(ilk, tables, system, where)
        parsed.price_calc()  # the auction's price function must be complete
        if parsed.tail is None and parsed.cusp is None:
            raise InvalidInput(f"{where}.ilks.{ilk}.tail", "an auction needs tail or cusp to ever reset")
        return parsed

    @property
    def vow(self) -> str:
        return self.protocol_account("vow")

    @property
    def issuer(self) -> str:
        return self.protocol_account("issuer")

    def assets(self) -> list[str]:
        return sorted({self.dai, *self.gems.values()})

    def market_names(self) -> tuple[str, ...]:
        return tuple(self.ilks)

    # ---------------------------------------------------------------- helpers

    def ilk_name(self, name: str | None, field_name: str = "market") -> str:
        if name is None:
            if len(self.ilks) == 1:
                return next(iter(self.ilks))
            raise InvalidInput(field_name, f"name an ilk of {self.name} ({', '.join(self.ilks)})")
        self.require_asset(name, self.ilks, field_name)
        return name

    def osm(self, ilk: str) -> int:
        """The gem's OSM price in DAI, wad."""
        return int(self.price(self.gems[ilk]) * WAD)

    def safe(self, ilk: str, ink: int, art: int) -> bool:
        config = self.ilks[ilk]
        return art == 0 or ink * maker.spot(self.osm(ilk), config.mat, config.par) >= art * RATE

    def dusty(self, ilk: str, art: int) -> bool:
        return 0 < art * RATE < self.ilks[ilk].dust

    def urn(self, ilk: str, account: str) -> list[int]:
        return self.urns[ilk].get(account, [0, 0])

    def heal(self) -> None:
        """``vow.heal``: cancel system debt with the surplus DAI (burned)."""
        amount = min(self.surplus, self.sin // RAY)
        if amount:
            self.ledger.transfer(self.vow, self.issuer, self.dai, amount)
            self.surplus -= amount
            self.issued -= amount
            self.sin -= amount * RAY

    def system_debt(self) -> int:
        """Unbacked DAI (rad) after healing: sin the surplus does not cover."""
        return max(self.sin - self.surplus * RAY, 0)

    def mint_incentive(self, keeper: str, coin: int, moves: Moves) -> int:
        """``vat.suck(vow, keeper, coin)``: the keeper gets the coin rounded down to the DAI unit,
        and the vow books exactly that as sin. Returns the DAI units minted."""
        units = coin // RAY
        moves.add(self.issuer, keeper, self.dai, units, overdraft=True)
        return units

    # ---------------------------------------------------------------- vaults

    def supply(self, command) -> list:
        self.require_member(command.account)
        ilk = self.ilk_name(command.market)
        self.require_asset(command.asset, (self.gems[ilk],))
        units = self.units(command.asset, command.amount)
        moves = Moves(self.ledger)
        moves.add(command.account, self.pool, command.asset, units)
        moves.apply()
        ink, art = self.urn(ilk, command.account)
        self.urns[ilk][command.account] = [ink + units, art]
        return [SupplyAdded(self.name, command.account, command.asset, self.text(command.asset, units), ilk)]

    def withdraw_supply(self, command) -> list:
        self.require_member(command.account)
        ilk = self.ilk_name(command.market)
        self.require_asset(command.asset, (self.gems[ilk],))
        ink, art = self.urn(ilk, command.account)
        wanted = decimal_or_max(command.amount, "amount")
        units = ink if wanted is None else self.ledger.units(command.asset, wanted)
        if units == 0 or units > ink:
            raise InvalidInput("amount", f"the vault holds {self.text(command.asset, ink)} {command.asset}")
        if not self.safe(ilk, ink - units, art):
            raise InvalidInput("amount", "the vault would be unsafe (Vat/not-safe)")
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, command.asset, units)
        moves.apply()
        self.urns[ilk][command.account] = [ink - units, art]
        return [SupplyWithdrawn(self.name, command.account, command.asset, self.text(command.asset, units), ilk)]

    def borrow(self, command) -> list:
        self.require_member(command.account)
        ilk = self.ilk_name(command.market)
        self.require_asset(command.asset, (self.dai,))
        units = self.units(command.asset, command.amount)
        ink, art = self.urn(ilk, command.account)
        if not self.safe(ilk, ink, art + units):
            raise InvalidInput("amount", "the vault would be unsafe (Vat/not-safe)")
        if self.dusty(ilk, art + units):
            raise InvalidInput("amount", f"the vault's debt must be at least {dai(self.ilks[ilk].dust)} DAI (Vat/dust)")
        moves = Moves(self.ledger)
        moves.add(self.issuer, command.account, self.dai, units, overdraft=True)
        moves.apply()
        self.urns[ilk][command.account] = [ink, art + units]
        self.issued += units
        return [Borrowed(self.name, command.account, self.dai, self.text(self.dai, units), ilk,
                         plain(self.collateralization(ilk, ink, art + units)))]

    def repay(self, command) -> list:
        self.require_member(command.account)
        payer = command.payer or command.account
        self.require_caller(payer, "payer")
        ilk = self.ilk_name(command.market)
        self.require_asset(command.asset, (self.dai,))
        ink, art = self.urn(ilk, command.account)
        if art == 0:
            raise InvalidInput("account", f"the {ilk} vault of {command.account!r} has no debt")
        wanted = decimal_or_max(command.amount, "amount")
        units = art if wanted is None else min(art, self.ledger.units(self.dai, wanted))
        if self.dusty(ilk, art - units):
            raise InvalidInput("amount", f"would leave a debt below dust {dai(self.ilks[ilk].dust)} DAI (Vat/dust)")
        moves = Moves(self.ledger)
        moves.add(payer, self.issuer, self.dai, units)
        moves.apply()
        self.urns[ilk][command.account] = [ink, art - units]
        self.issued -= units
        return [Repaid(self.name, command.account, payer, self.dai, self.text(self.dai, units), ilk)]

    def collateralization(self, ilk: str, ink: int, art: int) -> Decimal:
        """Collateral value / debt (compare with ``mat``)."""
        return Decimal(ink * self.osm(ilk)) / Decimal(art * WAD) if art else Decimal(0)

    # ---------------------------------------------------------------- auctions

    def bark(self, command) -> list:
        self.require_caller(command.keeper, "keeper")
        self.require_member(command.account, "account")
        ilk = self.ilk_name(command.ilk, "ilk")
        config = self.ilks[ilk]
        ink, art = self.urn(ilk, command.account)
        if art == 0:
            raise InvalidInput("account", f"the {ilk} vault of {command.account!r} has no debt")
        room = maker.liquidation_room(self.system_hole, self.Dirt, config.hole, self.dirt[ilk])
        result = maker.bark(ink, art, RATE, self.osm(ilk), config, room)
        moves = Moves(self.ledger)
        minted = self.mint_incentive(command.keeper, result.coin, moves)
        # Validated: now change state.
        moves.apply()
        self.urns[ilk][command.account] = [result.ink_after, result.art_after]
        self.sin += result.due + minted * RAY
        self.issued += minted
        self.Dirt += result.tab
        self.dirt[ilk] += result.tab
        auction = AuctionState(self.next_auction, ilk, command.account, result.tab, result.dink, result.top,
                               self.engine.time_of(self.name), result.due)
        self.auctions[auction.id] = auction
        self.next_auction += 1
        return [AuctionStarted(self.name, auction.id, ilk, command.account, command.keeper, dai(result.tab),
                               self.text(self.gems[ilk], result.dink), plain(from_units(result.top, 27)),
                               dai(result.due), self.text(self.dai, minted))]

    def auction(self, auction_id: object) -> AuctionState:
        key = auction_id if isinstance(auction_id, int) and not isinstance(auction_id, bool) else None
        if key is None or key not in self.auctions:
            raise InvalidInput("auction_id", f"no running auction {auction_id!r} on {self.name} "
                               "(Clipper/not-running-auction)")
        return self.auctions[key]

    def policy_auction(self, state: AuctionState) -> maker.Auction:
        config = self.ilks[state.ilk]
        return maker.Auction(state.tab, state.lot, state.top, config.price_calc(), config.tail, config.cusp)

    def status(self, state: AuctionState) -> tuple[bool, int]:
        return self.policy_auction(state).status(self.engine.time_of(self.name) - state.tic)

    def take(self, command) -> list:
        self.require_caller(command.buyer, "buyer")
        state = self.auction(command.auction_id)
        gem = self.gems[state.ilk]
        amount = self.ledger.units(gem, positive(command.amount, "amount"), "amount")
        highest = maker.ray(positive(command.max_price, "max_price"), "max_price")
        config = self.ilks[state.ilk]
        elapsed = self.engine.time_of(self.name) - state.tic
        result, remaining = maker.take(self.policy_auction(state), elapsed, amount, highest,
                                       config.chost)
        paid = ceil_div(result.owe, RAY)  # the ledger counts DAI in wad: the buyer pays the rad rounded up
        moves = Moves(self.ledger)
        moves.add(command.buyer, self.vow, self.dai, paid, field_name="buyer")
        moves.add(self.pool, command.buyer, gem, result.slice)
        moves.add(self.pool, state.owner, gem, result.returned_to_owner)
        # Validated: now change state.
        moves.apply()
        self.surplus += paid
        state.raised += paid
        self.Dirt -= result.dirt_released
        self.dirt[state.ilk] -= result.dirt_released
        events: list = [AuctionTaken(self.name, state.id, command.buyer, plain(from_units(result.price, 27)),
                                     dai(result.owe), self.text(gem, result.slice), dai(result.tab_after),
                                     self.text(gem, result.lot_after))]
        if remaining is not None:
            state.tab, state.lot = remaining.tab, remaining.lot
            self.heal()
            return events
        del self.auctions[state.id]
        uncovered = result.tab_after if result.lot_after == 0 else 0
        shortfall = max(state.due - state.raised * RAY, 0) if uncovered else 0
        self.heal()
        if shortfall:
            events.append(BadDebtRecorded(self.name, state.owner, self.dai, dai(shortfall), "system_debt", state.ilk))
        events.append(AuctionSettled(self.name, state.id, state.owner, self.text(self.dai, state.raised),
                                     self.text(gem, result.returned_to_owner), dai(uncovered),
                                     dai(self.system_debt())))
        return events

    def redo(self, command) -> list:
        self.require_caller(command.keeper, "keeper")
        state = self.auction(command.auction_id)
        config = self.ilks[state.ilk]
        done, _ = self.status(state)
        if not done:
            raise InvalidInput("auction_id", f"auction {state.id} does not need a reset yet (Clipper/cannot-reset)")
        feed = maker.feed_price(self.osm(state.ilk), config.par)
        top = maker.rmul(feed, config.buf)
        if top <= 0:
            raise InvalidInput("auction_id", "the feed price is zero (Clipper/zero-top-price)")
        coin = 0
        if (config.tip or config.chip) and state.tab >= config.chost and state.lot * feed >= config.chost:
            coin = maker.keeper_incentive(state.tab, config)
        moves = Moves(self.ledger)
        minted = self.mint_incentive(command.keeper, coin, moves)
        moves.apply()
        self.sin += minted * RAY
        self.issued += minted
        state.top, state.tic = top, self.engine.time_of(self.name)
        return [AuctionReset(self.name, state.id, command.keeper, plain(from_units(top, 27)), state.tic,
                             self.text(self.dai, minted))]

    # ---------------------------------------------------------------- views and checks

    def expected_balances(self) -> dict:
        expected = {(self.vow, self.dai): self.surplus, (self.issuer, self.dai): -self.issued}
        for ilk, urns in self.urns.items():
            key = (self.pool, self.gems[ilk])
            expected[key] = expected.get(key, 0) + sum(ink for ink, _ in urns.values())
        for state in self.auctions.values():
            key = (self.pool, self.gems[state.ilk])
            expected[key] = expected.get(key, 0) + state.lot
        return expected

    def identities(self) -> dict:
        art = sum(art for urns in self.urns.values() for _, art in urns.values())
        return {
            "issued·RAY == Σ art·rate + sin": (self.issued * RAY, art * RATE + self.sin),
            "Dirt == Σ ilk dirt": (self.Dirt, sum(self.dirt.values())),
            "Dirt == Σ running tabs": (self.Dirt, sum(a.tab for a in self.auctions.values())),
        }

    def auction_view(self, state: AuctionState) -> dict[str, Any]:
        view: dict[str, Any] = {"id": state.id, "ilk": state.ilk, "owner": state.owner, "tab": dai(state.tab),
                                "lot": self.text(self.gems[state.ilk], state.lot),
                                "top": plain(from_units(state.top, 27)), "started": state.tic,
                                "raised": self.text(self.dai, state.raised)}
        done, price = self.status(state)
        view.update(price=plain(from_units(price, 27)), needs_reset=done)
        return view

    def account_state(self, account: str) -> dict[str, Any]:
        vaults = {}
        for ilk, urns in self.urns.items():
            if account not in urns:
                continue
            ink, art = urns[account]
            row: dict[str, Any] = {"ink": self.text(self.gems[ilk], ink), "art": self.text(self.dai, art)}
            try:
                row["collateralization"] = plain(self.collateralization(ilk, ink, art)) if art else None
                row["unsafe"] = not self.safe(ilk, ink, art)
            except InvalidInput:
                row["unsafe"] = None
            vaults[ilk] = row
        auctions = [self.auction_view(a) for a in self.auctions.values() if a.owner == account]
        return {"protocol": self.protocol, "vaults": vaults, "auctions": auctions}

    def venue_state(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "prices": {a: str(p) for a, p in sorted(self.prices.items())},
                "Dirt": dai(self.Dirt), "dirt": {ilk: dai(v) for ilk, v in self.dirt.items()},
                "sin": dai(self.sin), "surplus": self.text(self.dai, self.surplus),
                "system_debt": dai(self.system_debt()), "issued": self.text(self.dai, self.issued),
                "auctions": [self.auction_view(a) for a in sorted(self.auctions.values(), key=lambda a: a.id)]}
