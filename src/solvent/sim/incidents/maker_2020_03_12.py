"""Maker, Black Thursday (12-13 March 2020): zero-DAI English auctions, and Liquidations 2.0 instead.

The run drives the engine with commands only: a book of ETH-A vaults opened at the first price,
an OSM that gives the protocol the market price of the previous hour, bites (``Bark``) of every
unsafe vault when that price moves, and the keepers of :mod:`.auction_keepers` bidding through
congested gas (``FlipBid``, ``Deal``, ``Redo``; under the ``maker`` preset ``Bark``, ``Take``,
``Redo``). After the scenario the last price holds until every auction is settled, so the system
debt counted is final. Metrics: auctions settled, those won for at most one DAI (zero bids) and
the market value of their collateral when settled, the system debt left (the vow's ``sin`` the
auctions did not cover), collateral sent to auction.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from ...engine import Engine
from ...engine import commands as c
from ...engine.lending import (
    AuctionStarted,
    AuctionTaken,
    Bark,
    Borrow,
    Deal,
    FlipBid,
    OpenLendingAccount,
    Redo,
    Supply,
    Take,
    UpdatePrices,
    lending_conservation,
    lending_venue,
)
from ...engine.lending_maker import MakerVenue
from ...policies.lending import RAY, WAD, maker_flip
from ..scenarios import scenario_paths
from .auction_keepers import AuctionKeeper, GasMarket
from .facts import IncidentFile

VENUE = "m"
ILK = "ETH-A"
MIN_VAULTS = 40
ONE_DAI = WAD  # a winning bid of at most this is a "zero bid"
SETTLE_STEPS = 8 * 60  # after the scenario: time for the last auctions to settle (tau = 6 h)


def _units_text(units: int, decimals: int) -> str:
    """``units`` counts of 10**-decimals as exact decimal text (no context rounding)."""
    whole, part = divmod(units, 10 ** decimals)
    return f"{whole}.{part:0{decimals}d}"


def _dec(value: float, places: int = 6) -> str:
    return f"{value:.{places}f}"


def _book(spec: IncidentFile, rng: np.random.Generator, vaults: int, price: float,
          scale: float) -> list[tuple[str, str]]:
    """(ink ETH, debt DAI) per vault: debt log-normal with the calibrated total, collateralisation
    log-normal around its median, at least 1.55 (every vault safe at the opening)."""
    sigma = spec.number("debt_sigma")
    mean = spec.number("debt_dai") * scale / vaults
    debt = rng.lognormal(math.log(mean) - sigma ** 2 / 2, sigma, vaults).clip(50.0, None)
    ratio = np.exp(rng.normal(math.log(spec.number("cr_median")), spec.number("cr_sigma"), vaults)).clip(1.55, None)
    ink = debt * ratio / price
    return [(_dec(i), _dec(d, 2)) for i, d in zip(ink.tolist(), debt.tolist())]


def _keepers(spec: IncidentFile) -> list[AuctionKeeper]:
    keepers = [AuctionKeeper(f"keeper{i}", spec.number("keeper_gas_cap"), spec.number("keeper_margin"),
                             int(spec.number("keeper_bids_per_minute"))) for i in range(int(spec.number("keepers")))]
    # The bot that paid any gas: bids one unit of DAI on every auction without a bid (flip); under
    # Dutch auctions it is one more keeper that always lands, with the same margin.
    keepers.append(AuctionKeeper("bot", math.inf, spec.number("keeper_margin"), 1000, always_lands=True,
                                 zero_bidder=True))
    return keepers


def simulate(spec: IncidentFile, seed: int, scale: float, design: str) -> dict[str, float | None]:
    """One run under ``design``: ``flip`` (the maker_2020 preset) or ``clip`` (the maker preset,
    Liquidations 2.0, with that day's liquidation ratio and penalty)."""
    assert spec.scenario is not None
    path_rng, book_rng, order_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    path = scenario_paths(spec.scenario, path_rng)["ETH"]
    step_seconds = spec.scenario.step_seconds
    hour = int(spec.number("osm_delay_seconds")) // step_seconds
    engine = Engine()
    if design == "flip":
        engine.apply(c.CreateVenue(VENUE, "maker_2020"))
    else:
        engine.apply(c.CreateVenue(VENUE, "maker", {
            "ilks": {ILK: {"mat": "1.5", "chop": "1.13", "dust": "20", "hole": "1000000000"}},
            "liquidation": {"system_hole": "1000000000"}}))
    venue = lending_venue(engine, VENUE)
    assert isinstance(venue, MakerVenue)  # the preset above is a Maker one (clip or flip auctions)
    engine.apply(UpdatePrices(VENUE, {"ETH": _dec(path[0], 4)}, 1))
    vaults = max(MIN_VAULTS, round(spec.number("vaults") * scale))
    owners = []
    # ``scale`` shrinks the book in proportion (vaults, debt, keepers' capital); a quick run keeps
    # the mechanism, not the dollar figures.
    for index, (ink_text, debt) in enumerate(_book(spec, book_rng, vaults, float(path[0]), scale)):
        owner = f"v{index}"
        owners.append(owner)
        engine.apply(OpenLendingAccount(owner, VENUE))
        engine.apply(c.Deposit(owner, "ETH", ink_text))
        engine.apply(Supply(VENUE, owner, "ETH", ink_text, market=ILK))
        engine.apply(Borrow(VENUE, owner, "DAI", debt, market=ILK))
    keepers = _keepers(spec)
    capital = _dec(spec.number("keeper_capital_dai") * scale, 2)
    for keeper in keepers:
        engine.apply(OpenLendingAccount(keeper.name, VENUE))
        engine.apply(c.Deposit(keeper.name, "DAI", capital))
    gas = GasMarket(spec.number("gas_peak"), spec.number("gas_full_at_hourly_fall"))
    stats = {"auctions": 0, "settled": 0, "zero_bids": 0, "zero_bid_usd": 0.0, "sent_to_auction_usd": 0.0,
             "bids": 0, "dents": 0, "stuck_steps": 0}
    osm = float(path[0])
    steps = len(path)
    for step in range(steps + SETTLE_STEPS):
        price = float(path[min(step, steps - 1)])
        timestamp = 2 + step * step_seconds
        if step and step % hour == 0:  # the OSM releases the price of the hour before
            osm = float(path[max(0, min(step, steps - 1) - hour)])
        engine.apply(UpdatePrices(VENUE, {"ETH": _dec(osm, 4)}, timestamp))
        gas_now = gas.multiple(price, float(path[max(0, min(step, steps - 1) - hour)]))
        landing = [keeper for keeper in keepers if keeper.lands(gas_now)]
        if len(landing) == 1:
            stats["stuck_steps"] += 1
        if step < steps and (step == 0 or step % hour == 0):
            for owner in owners:  # bite or bark every unsafe vault, as often as it stays unsafe
                while True:
                    ink, art = venue.urn(ILK, owner)
                    if art == 0 or venue.safe(ILK, ink, art):
                        break
                    events = engine.apply(Bark(VENUE, "bot", owner, ILK))
                    started = events[0]
                    assert isinstance(started, AuctionStarted)  # a bark that went through starts an auction
                    stats["auctions"] += 1
                    stats["sent_to_auction_usd"] += float(started.lot) * price
        order = [landing[i] for i in order_rng.permutation(len(landing))]
        if design == "flip":
            _flip_step(engine, venue, order, price, timestamp, stats)
        else:
            _clip_step(engine, venue, order, price, stats)
        if step >= steps and not venue.auctions:
            break
    assert lending_conservation(engine, VENUE).holds
    deficit = venue.system_debt() / Decimal(10) ** 45
    settled = stats["settled"]
    return {
        "zero_bid_collateral_usd": stats["zero_bid_usd"],
        "zero_bid_share": 100.0 * stats["zero_bids"] / settled if settled else None,
        "deficit_dai": float(deficit),
        "auctions": float(stats["auctions"]),
        "auctions_settled": float(settled),
        "zero_bid_auctions": float(stats["zero_bids"]),
        "sent_to_auction_usd": stats["sent_to_auction_usd"],
        "dent_bids": float(stats["dents"]),
        "minutes_honest_keepers_stuck": float(stats["stuck_steps"]),
    }


def _sell(engine: Engine, keeper: str, eth_units: int, price: float) -> None:
    """The keeper sells what it won off-venue; the DAI comes back as capital."""
    if eth_units > 0:
        engine.apply(c.Deposit(keeper, "DAI", _dec(eth_units / WAD * price, 2)))


def _flip_step(engine: Engine, venue, keepers: list[AuctionKeeper], price: float, now: int, stats: dict) -> None:
    ilk = venue.ilks[ILK]
    for state in sorted(venue.auctions.values(), key=lambda s: s.id):  # settle what is over
        auction = state.auction
        if maker_flip.can_deal(auction, now):
            engine.apply(Deal(VENUE, keepers[0].name if keepers else "bot", state.id))
            stats["settled"] += 1
            if auction.bid <= ONE_DAI:
                stats["zero_bids"] += 1
                stats["zero_bid_usd"] += auction.lot / WAD * price
            if auction.guy != "bot":
                _sell(engine, auction.guy, auction.lot, price)
        elif auction.tic == 0 and auction.end < now:
            engine.apply(Redo(VENUE, "bot", state.id))
    for keeper in keepers:
        placed = 0
        for state in sorted(venue.auctions.values(), key=lambda s: -s.auction.tab):
            if placed >= keeper.bids_per_step:
                break
            auction = state.auction
            if auction.guy == keeper.name or (auction.tic and auction.tic <= now) or auction.end <= now:
                continue
            if keeper.zero_bidder:
                if auction.bid == 0:
                    engine.apply(FlipBid(VENUE, keeper.name, state.id, _units_text(auction.lot, 18), "1E-18"))
                    placed += 1
                continue
            cash = engine.ledger.accounts[keeper.name].balance("DAI")
            worth = keeper.value(auction.lot / WAD, price)
            if auction.phase == "tend":
                offer = min(auction.tab, int(worth * WAD))
                if offer < maker_flip.min_next_bid(auction, ilk) or offer > cash:
                    continue
                engine.apply(FlipBid(VENUE, keeper.name, state.id, _units_text(auction.lot, 18),
                                     _units_text(offer, 18)))
            else:
                wanted = int(auction.tab / (price * (1.0 - keeper.margin)))  # wad of ETH worth the tab to it
                if wanted > maker_flip.max_next_lot(auction, ilk) or auction.tab > cash or wanted <= 0:
                    continue
                engine.apply(FlipBid(VENUE, keeper.name, state.id, _units_text(wanted, 18),
                                     _units_text(auction.tab, 18)))
                stats["dents"] += 1
            stats["bids"] += 1
            placed += 1


def _clip_step(engine: Engine, venue, keepers: list[AuctionKeeper], price: float, stats: dict) -> None:
    for state in sorted(venue.auctions.values(), key=lambda s: s.id):
        done, _ = venue.status(state)
        if done:
            engine.apply(Redo(VENUE, keepers[0].name if keepers else "bot", state.id))
    for keeper in keepers:
        placed = 0
        for state in sorted(venue.auctions.values(), key=lambda s: s.id):
            if placed >= keeper.bids_per_step:
                break
            done, auction_price = venue.status(state)
            unit_price = auction_price / RAY  # DAI per ETH
            if done or unit_price <= 0 or unit_price > price * (1.0 - keeper.margin):
                continue
            cash = engine.ledger.accounts[keeper.name].balance("DAI") / WAD
            amount = min(state.lot / WAD, cash / unit_price * 0.999)
            if amount <= 1e-6:
                continue
            # The most it pays: the auction's price rounded up to 1e-18 (the engine reads 28 digits).
            events = engine.apply(Take(VENUE, keeper.name, state.id, _dec(amount, 12),
                                       _units_text(-(-int(auction_price) // 10**9), 18)))
            taken = events[0]
            assert isinstance(taken, AuctionTaken)  # a take that went through buys a slice first
            bought = int(Decimal(taken.slice) * WAD)
            _sell(engine, keeper.name, bought, price)
            placed += 1
            if any(event.kind == "auction_settled" for event in events):
                stats["settled"] += 1


def replay(spec: IncidentFile, seed: int, scale: float, counterfactuals: bool):
    base = simulate(spec, seed, scale, "flip")
    others = [("Liquidations 2.0 (maker preset)", simulate(spec, seed, scale, "clip"))] if counterfactuals else []
    notes = [("Keepers, gas, the book's size and collateralisation are assumptions stated in the facts file;"
              " ttl, tau and lump are recalled values (unconfirmed).")]
    return base, others, notes
