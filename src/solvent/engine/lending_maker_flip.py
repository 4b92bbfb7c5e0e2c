"""Maker's English collateral auctions (``cat.bite`` and ``flip``, 2019-2020) on the engine.

The vaults are Maker's (:class:`~solvent.engine.lending_maker.MakerVenue`: ``Supply``,
``Borrow``, ``Repay``, the vat's DAI, the vow's surplus and ``sin``); the liquidation is the
system Liquidations 2.0 replaced, with the rules of :mod:`solvent.policies.lending.maker_flip`:

- ``Bark`` is ``cat.bite``: up to ``lump`` of an unsafe vault's collateral and the matching debt
  go to a new English auction (``tab = debt × chop``); no keeper reward;
- ``FlipBid`` is ``tend`` (higher DAI for the lot; the new bidder refunds the previous one and
  the increase goes to the vow) then ``dent`` (less collateral for the whole tab; what is given
  up returns to the vault's owner);
- ``Deal`` hands the lot to the highest bidder once the bid expired (``ttl``) or the auction
  ended (``tau``); ``Redo`` is ``tick``: an auction without bids whose time ran out restarts.

The debt of a bitten vault is system debt (``sin``) until bids cover it; what the winning bid
did not cover stays as system debt (``BadDebtRecorded``). Preset: ``maker_2020``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidInput
from ..core.numbers import positive
from ..policies.lending import RAY, maker_flip
from .lending import (
    AuctionReset,
    AuctionSettled,
    AuctionStarted,
    BadDebtRecorded,
    FlipBidPlaced,
    Moves,
)
from .lending_maker import RATE, MakerVenue, dai


@dataclass
class FlipState:
    id: int
    ilk: str
    auction: maker_flip.FlipAuction
    due: int  # rad, the debt taken from the vault
    raised: int = 0  # DAI wad paid to the vow so far

    @property
    def lot(self) -> int:  # read by MakerVenue.expected_balances
        return self.auction.lot

    @property
    def owner(self) -> str:
        return self.auction.usr


class MakerFlipVenue(MakerVenue):
    protocol = "maker_flip"

    def parse_ilk(self, ilk: str, tables: Any, system: Any, where: str) -> maker_flip.FlipIlk:
        table = tables.get(ilk) if hasattr(tables, "get") else None
        if table is None:
            raise InvalidInput(f"{where}.ilks.{ilk}", "missing")
        return maker_flip.FlipIlk.from_table(ilk, table, f"{where}.ilks.{ilk}")

    # ---------------------------------------------------------------- auctions

    def bark(self, command) -> list:
        self.require_caller(command.keeper, "keeper")
        self.require_member(command.account, "account")
        ilk = self.ilk_name(command.ilk, "ilk")
        config: maker_flip.FlipIlk = self.ilks[ilk]
        ink, art = self.urn(ilk, command.account)
        result = maker_flip.bite(ink, art, RATE, self.osm(ilk), config)
        # Validated: now change state (the lot stays in the pool, now for sale).
        self.urns[ilk][command.account] = [ink - result.lot, art - result.art]
        self.sin += result.due
        auction = maker_flip.kick(result.lot, result.tab, command.account, self.engine.time_of(self.name), config,
                                  kicker=self.protocol_account("vow"))
        state = FlipState(self.next_auction, ilk, auction, result.due)
        self.auctions[state.id] = state  # type: ignore[assignment]
        self.next_auction += 1
        gem = self.gems[ilk]
        return [AuctionStarted(self.name, state.id, ilk, command.account, command.keeper,
                               self.text(self.dai, result.tab), self.text(gem, result.lot), "0", dai(result.due), "0")]

    def flip_state(self, auction_id: object) -> FlipState:
        return self.auction(auction_id)  # type: ignore[return-value]

    def flip_bid(self, command) -> list:
        self.require_caller(command.bidder, "bidder")
        state = self.flip_state(command.auction_id)
        config: maker_flip.FlipIlk = self.ilks[state.ilk]
        gem = self.gems[state.ilk]
        lot = self.ledger.units(gem, positive(command.lot, "lot"), "lot")
        amount = self.ledger.units(self.dai, positive(command.bid, "bid"), "bid")
        before = state.auction
        after = maker_flip.bid(before, command.bidder, lot, amount, self.engine.time_of(self.name), config)
        moves = Moves(self.ledger)
        previous = before.guy if before.bid else None
        if previous is not None and previous != command.bidder:
            moves.add(command.bidder, previous, self.dai, before.bid, field_name="bidder")
        increase = after.bid - before.bid
        if increase:
            moves.add(command.bidder, self.vow, self.dai, increase, field_name="bidder")
        returned = before.lot - after.lot
        if returned:
            moves.add(self.pool, after.usr, gem, returned)
        # Validated: now change state.
        moves.apply()
        state.auction = after
        self.surplus += increase
        state.raised += increase
        self.heal()
        return [FlipBidPlaced(self.name, state.id, command.bidder, before.phase, self.text(self.dai, after.bid),
                              self.text(gem, after.lot), self.text(gem, returned), after.tic)]

    def deal(self, command) -> list:
        self.require_caller(command.keeper, "keeper")
        state = self.flip_state(command.auction_id)
        auction = maker_flip.deal(state.auction, self.engine.time_of(self.name))
        gem = self.gems[state.ilk]
        moves = Moves(self.ledger)
        moves.add(self.pool, auction.guy, gem, auction.lot)
        moves.apply()
        del self.auctions[state.id]
        shortfall = max(state.due - state.raised * RAY, 0)
        self.heal()
        events: list = []
        if shortfall:
            events.append(BadDebtRecorded(self.name, auction.usr, self.dai, dai(shortfall), "system_debt", state.ilk))
        events.append(AuctionSettled(self.name, state.id, auction.usr, self.text(self.dai, state.raised), "0",
                                     dai(shortfall), dai(self.system_debt())))
        return events

    def redo(self, command) -> list:
        """``flip.tick``: restart an auction that had no bid before its end."""
        self.require_caller(command.keeper, "keeper")
        state = self.flip_state(command.auction_id)
        state.auction = maker_flip.tick(state.auction, self.engine.time_of(self.name), self.ilks[state.ilk])
        return [AuctionReset(self.name, state.id, command.keeper, "0", state.auction.end, "0")]

    def take(self, command) -> list:
        return self.not_supported(command)

    # ---------------------------------------------------------------- views and checks

    def identities(self) -> dict:
        art = sum(art for urns in self.urns.values() for _, art in urns.values())
        return {"issued·RAY == Σ art·rate + sin": (self.issued * RAY, art * RATE + self.sin)}

    def auction_view(self, state) -> dict[str, Any]:
        auction = state.auction
        return {"id": state.id, "ilk": state.ilk, "owner": auction.usr, "phase": auction.phase,
                "bid": self.text(self.dai, auction.bid), "lot": self.text(self.gems[state.ilk], auction.lot),
                "tab": self.text(self.dai, auction.tab), "guy": auction.guy, "tic": auction.tic, "end": auction.end,
                "due": dai(state.due), "raised": self.text(self.dai, state.raised)}

    def venue_state(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "prices": {a: str(p) for a, p in sorted(self.prices.items())},
                "sin": dai(self.sin), "surplus": self.text(self.dai, self.surplus),
                "system_debt": dai(self.system_debt()), "issued": self.text(self.dai, self.issued),
                "auctions": [self.auction_view(a) for a in sorted(self.auctions.values(), key=lambda a: a.id)]}


__all__ = ["FlipState", "MakerFlipVenue"]
