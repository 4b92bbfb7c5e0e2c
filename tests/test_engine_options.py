"""Options in the engine: venues, markets, surfaces, fills, margin calls, liquidation, expiry and
settlement, Derive's Dutch auction (its published vectors through the engine), conservation,
replay and bad input."""

from __future__ import annotations

import copy
import json
import random
from decimal import Decimal as D
from pathlib import Path

import pytest

from solvent.engine import commands as c
from solvent.engine.engine import CommandRejected, Engine
from solvent.engine.options import commands as oc
from solvent.engine.options import events as oe
from solvent.engine.options import options_positions_balance, options_venue
from solvent.engine.options.liquidation import account_margin
from solvent.policies.options.auction import AuctionParams, start_fee

DAY = 86400
EXPIRY = 30 * DAY
# The venues' vectors beside the project (../shared/conformance) when present, and the harvested ones.
SHARED_OPTIONS = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "options.json"
VECTORS = [path for path in (SHARED_OPTIONS, Path(__file__).parent / "vectors" / "options_venue_cases.json")
           if path.is_file()]


def surface(spot: str, vol: str, timestamp: int, forward: str | None = None, expiry: int = EXPIRY,
            **extra: object) -> oc.UpdateVolSurface:
    return oc.UpdateVolSurface("v", "ETH", spot, timestamp,
                               ({"expiry": expiry, "forward": forward or spot, "vol": vol, **extra},))


def venue_with_straddle(preset: str, seller_cash: str) -> tuple[Engine, list]:
    """A venue with a call and a put at 2000, a market maker and a seller who sold one straddle."""
    engine = Engine()
    events: list = []
    commands = [c.CreateVenue("v", preset),
                oc.CreateOptionMarket("v", "ETH-C-2000", "ETH", EXPIRY, "2000", "call", size_decimals=2),
                oc.CreateOptionMarket("v", "ETH-P-2000", "ETH", EXPIRY, "2000", "put", size_decimals=2)]
    for account, cash in (("maker", "100000"), ("seller", seller_cash), ("bidder", "100000"), ("saver", "5000")):
        commands += [c.OpenAccount(account, "v"), c.Deposit(account, "USDC", cash)]
    commands += [c.FundInsurance("USDC", "1000", venue="v"), surface("2000", "0.5", 0),
                 oc.ApplyOptionFill("v", "ETH-C-2000", "maker", "seller", "1", "114"),
                 oc.ApplyOptionFill("v", "ETH-P-2000", "maker", "seller", "1", "114")]
    for command in commands:
        events += engine.apply(command)
    return engine, events


def balances(engine: Engine) -> dict[str, int]:
    return {name: account.balance("USDC") for name, account in engine.ledger.accounts.items()}


def state_of(engine: Engine) -> object:
    venue = options_venue(engine, "v")
    return (balances(engine), copy.deepcopy(venue.positions), set(venue.liquidating), set(venue.margin_called),
            dict(venue.auctions), engine.timestamp)


def check_conserved(engine: Engine) -> None:
    assert engine.conservation().holds
    assert all(total == 0 for total in options_positions_balance(engine).values())
    assert balances(engine).get("v/settlement", 0) == 0


# ------------------------------------------------------------------ venues, fills, margin


@pytest.mark.parametrize("preset", ["derive", "span16", "deribit", "bitcom", "okx_options", "aevo"])
def test_every_options_preset_makes_a_venue_and_trades_exactly(preset: str) -> None:
    engine, events = venue_with_straddle(preset, "5000")
    fills = [event for event in events if isinstance(event, oe.OptionFilled)]
    assert [fill.premium for fill in fills] == ["114.000000", "114.000000"]
    assert engine.balance("seller", "USDC") == D("5228") and engine.balance("maker", "USDC") == D("99772")
    venue = options_venue(engine, "v")
    assert {symbol: (held.lots, held.cost) for symbol, held in venue.positions["seller"].items()} == {
        "ETH-C-2000": (-100, -114_000_000), "ETH-P-2000": (-100, -114_000_000)}
    margin = account_margin(engine, venue, "seller")
    assert 0 < margin.mm < margin.mtm and margin.im <= margin.mm  # IM asks at least MM
    check_conserved(engine)


def test_cost_basis_reduces_pro_rata_and_flips() -> None:
    engine, _ = venue_with_straddle("derive", "5000")
    engine.apply(oc.ApplyOptionFill("v", "ETH-C-2000", "seller", "maker", "0.25", "120"))   # buys back a quarter
    venue = options_venue(engine, "v")
    assert (venue.positions["seller"]["ETH-C-2000"].lots, venue.positions["seller"]["ETH-C-2000"].cost) == (
        -75, -85_500_000)
    engine.apply(oc.ApplyOptionFill("v", "ETH-C-2000", "seller", "maker", "1", "100"))      # flips to 0.25 long
    held = venue.positions["seller"]["ETH-C-2000"]
    assert (held.lots, held.cost) == (25, 25_000_000)
    assert venue.positions["maker"]["ETH-C-2000"].lots == -25
    check_conserved(engine)


def test_a_fill_that_adds_risk_needs_initial_margin_naming_the_side() -> None:
    engine, _ = venue_with_straddle("derive", "5000")
    before = state_of(engine)
    with pytest.raises(CommandRejected) as refused:
        engine.apply(oc.ApplyOptionFill("v", "ETH-P-2000", "maker", "seller", "30", "114"))
    assert refused.value.field == "seller" and "initial margin" in refused.value.reason
    assert state_of(engine) == before
    # Reducing risk is allowed even below IM: buy back what was sold.
    engine, _ = venue_with_straddle("derive", "520")
    venue = options_venue(engine, "v")
    engine.apply(surface("2000", "1.0", 10))  # below initial, above maintenance margin
    before_im = account_margin(engine, venue, "seller").im
    assert before_im < 0 and "seller" not in venue.liquidating
    engine.apply(oc.ApplyOptionFill("v", "ETH-P-2000", "seller", "maker", "0.5", "1"))
    assert account_margin(engine, venue, "seller").im > before_im


# ------------------------------------------------------------------ a vol-only shock


@pytest.mark.parametrize("preset,cash", [("derive", "520"), ("deribit", "830")])
def test_vol_only_shock_margin_calls_then_liquidates_a_short_straddle(preset: str, cash: str) -> None:
    engine, _ = venue_with_straddle(preset, cash)
    venue = options_venue(engine, "v")
    assert account_margin(engine, venue, "seller").im >= 0
    seen: list = []
    for step, vol in enumerate(("0.6", "0.7", "0.8", "0.9", "1.0", "1.1", "1.2", "1.4", "1.6")):
        seen += engine.apply(surface("2000", vol, 10 + step))  # spot and forward unchanged
        check_conserved(engine)
    kinds = [event.kind for event in seen if getattr(event, "account", None) == "seller"]
    assert "margin_call_issued" in kinds and "liquidation_started" in kinds
    assert kinds.index("margin_call_issued") < kinds.index("liquidation_started")
    assert all(getattr(event, "account", None) != "maker" for event in seen if event.kind == "liquidation_started")
    if preset == "derive":  # a Dutch auction started, its fee paid to the security module
        assert "seller" in venue.liquidating
        assert account_margin(engine, venue, "seller").mm < 0
        started = [event for event in seen if isinstance(event, oe.OptionAuctionStarted)]
        assert len(started) == 1 and not started[0].insolvent and D(started[0].fee) > 0
        assert engine.balance("v/insurance", "USDC") == 1000 + D(started[0].fee)
    else:  # incremental: slices of the shorts closed against the insurance fund until MM ≥ 0
        closed = [event for event in seen if event.kind == "position_liquidated"]
        assert closed and all(event.counterparty == "v/insurance" and event.side == "short" for event in closed)
        assert "seller" not in venue.liquidating
        assert account_margin(engine, venue, "seller").mm >= 0
        lots = {symbol: held.lots for symbol, held in venue.positions["v/insurance"].items()}
        remaining = {symbol: held.lots for symbol, held in venue.positions.get("seller", {}).items()}
        assert all(lots[symbol] + remaining.get(symbol, 0) == -100 for symbol in lots)
        paid = sum(int(D(event.price) * D(event.size) * 10**6) for event in closed)
        fund_cost = sum(held.cost for held in venue.positions["v/insurance"].values())
        assert fund_cost < 0 and abs(abs(fund_cost) - paid) <= len(closed)  # the fund was paid the marks
        assert any(event.kind == "option_liquidation_ended" for event in seen)


def test_an_auction_bid_moves_the_share_and_cash_exactly() -> None:
    engine, _ = venue_with_straddle("derive", "520")
    for step, vol in enumerate(("0.8", "1.2", "1.6")):
        engine.apply(surface("2000", vol, 10 + step))
    venue = options_venue(engine, "v")
    assert "seller" in venue.auctions
    engine.apply(c.AdvanceTime(12 + 300))
    cash_before = engine.ledger.account("seller").balance("USDC")
    events = engine.apply(oc.Bid("v", "seller", "bidder", "0.1"))
    bid = next(event for event in events if isinstance(event, oe.OptionAuctionBid))
    assert D(bid.percent) == D("0.1")
    assert venue.positions["bidder"]["ETH-C-2000"].lots == -10 and venue.positions["seller"]["ETH-C-2000"].lots == -90
    paid = (D(bid.price) * 10**6).to_integral_value(rounding="ROUND_CEILING")
    cash_taken = int(D(bid.cash_taken) * 10**6)
    assert cash_taken == int(cash_before * D("0.1"))
    assert engine.ledger.account("seller").balance("USDC") == cash_before - cash_taken + paid
    assert float(bid.post_maintenance_margin) == pytest.approx(account_margin(engine, venue, "seller").mm)
    check_conserved(engine)
    # A bid for everything takes f_max and ends the auction.
    mm_before = account_margin(engine, venue, "seller").mm
    events = engine.apply(oc.Bid("v", "seller", "bidder", "1"))
    assert any(isinstance(event, oe.OptionAuctionEnded) for event in events)
    assert account_margin(engine, venue, "seller").mm > mm_before
    if "seller" in venue.auctions:  # lots round down and the grid is not exactly homogeneous: a new auction
        assert any(isinstance(event, oe.OptionAuctionStarted) for event in events)
        assert account_margin(engine, venue, "seller").mm < 0
    check_conserved(engine)


def test_insolvent_auction_is_paid_by_the_security_module_then_socialized() -> None:
    engine, _ = venue_with_straddle("derive", "520")
    engine.apply(surface("2000", "1.6", 10))
    venue = options_venue(engine, "v")
    assert "seller" in venue.auctions and not venue.auctions["seller"].state.insolvent
    # A crash in spot drives MtM below zero: the auction restarts insolvent.
    events = engine.apply(surface("600", "1.6", 20))
    restarted = [event for event in events if isinstance(event, oe.OptionAuctionStarted)]
    assert restarted and restarted[-1].insolvent
    engine.apply(c.AdvanceTime(20 + 3600))  # the insolvent price has reached MM
    fund_before = engine.ledger.account("v/insurance").balance("USDC")
    events = engine.apply(oc.Bid("v", "seller", "bidder", "1"))
    bid = next(event for event in events if isinstance(event, oe.OptionAuctionBid))
    owed = int((-D(bid.price) * 10**6).to_integral_value(rounding="ROUND_DOWN"))
    assert owed > 0
    drawn = sum(int(D(event.amount) * 10**6) for event in events if event.kind == "insurance_fund_drawn")
    socialized = sum(int(D(event.amount) * 10**6) for event in events if event.kind == "loss_socialized")
    assert drawn == min(fund_before, owed) and drawn + socialized == owed
    if owed > fund_before:
        assert socialized > 0 and engine.ledger.account("v/insurance").balance("USDC") == 0
    assert not venue.holdings("seller")
    check_conserved(engine)


# ------------------------------------------------------------------ expiry and settlement


def test_advancing_past_expiry_settles_in_the_money_options_exactly() -> None:
    engine, _ = venue_with_straddle("derive", "5000")
    engine.apply(surface("2300.5", "0.5", EXPIRY - 60))  # the index just before expiry
    cash = {name: engine.ledger.account(name).balance("USDC") for name in ("maker", "seller")}
    events = engine.apply(c.AdvanceTime(EXPIRY + 1))
    settled = [event for event in events if isinstance(event, oe.OptionSettled)]
    assert {(event.account, event.symbol, event.payoff) for event in settled} == {
        ("seller", "ETH-C-2000", "-300.500000"), ("seller", "ETH-P-2000", "0.000000"),
        ("maker", "ETH-C-2000", "300.500000"), ("maker", "ETH-P-2000", "0.000000")}
    assert engine.ledger.account("seller").balance("USDC") == cash["seller"] - 300_500_000
    assert engine.ledger.account("maker").balance("USDC") == cash["maker"] + 300_500_000
    assert not options_venue(engine, "v").positions
    check_conserved(engine)
    with pytest.raises(CommandRejected) as refused:  # an expired option no longer trades
        engine.apply(oc.ApplyOptionFill("v", "ETH-C-2000", "maker", "seller", "1", "1"))
    assert refused.value.field == "symbol"


def test_settle_expiry_at_an_explicit_price_and_a_short_who_cannot_pay() -> None:
    engine, _ = venue_with_straddle("derive", "520")
    engine.apply(c.AdvanceTime(EXPIRY - 1))
    with pytest.raises(CommandRejected) as early:
        engine.apply(oc.SettleExpiry("v", "ETH", EXPIRY, "100"))
    assert early.value.field == "expiry"
    # Move time to the expiry itself (no later): the explicit settlement price applies.
    engine.apply(c.AdvanceTime(EXPIRY))
    events = engine.apply(oc.SettleExpiry("v", "ETH", EXPIRY, "100.123456789"))
    put = next(event for event in events if isinstance(event, oe.OptionSettled) and event.account == "seller"
               and event.symbol == "ETH-P-2000")
    assert put.payoff == "-1899.876544"  # rounded against the short
    maker = next(event for event in events if isinstance(event, oe.OptionSettled) and event.account == "maker"
                 and event.symbol == "ETH-P-2000")
    assert maker.payoff == "1899.876543"  # rounded against the long; the unit left goes to the fund
    # The seller held 748 and owed 1899.876544: the fund and then the other cash holders cover the rest.
    assert any(event.kind == "insurance_fund_drawn" for event in events)
    assert any(event.kind == "loss_socialized" for event in events)
    assert engine.ledger.account("seller").balance("USDC") == 0
    check_conserved(engine)


# ------------------------------------------------------------------ Derive's auction vectors through the engine


def _auction_cases() -> list[dict]:
    cases = []
    for path in VECTORS:
        cases += [case for case in json.loads(path.read_text())["cases"] if case["check"] == "derive.auction"]
    return cases


STRIKE = D(1000)


def _q(value: D) -> str:
    return str(value.quantize(D("1e-18")))


@pytest.mark.parametrize("case", _auction_cases(), ids=lambda case: case["id"])
def test_derive_auction_vectors_pass_through_the_engine(case: dict) -> None:
    """The account holds cash C and short puts worth 0 (vol 0, out of the money) whose one stress scenario
    (forward × 0.5) loses n·(K − F/2): MtM = C and MM = C − n·(K − F/2). The vector's MtM and MM are set
    by a deposit and the forward; the auction, its fee, the bids and the moves of share and cash are the
    engine's own."""
    params = dict(case["input"]["params"])
    auction_params = AuctionParams.from_table({"insolvent_auction_length": "600", **params})
    scenario = [{"spot_shock": "0.5", "vol_shock": "none", "dampening": "1", "group": "regular"}]
    engine = Engine()
    engine.apply(c.CreateVenue("v", "span16", {"settle_decimals": 18, "margin": {"scenarios": scenario},
                                               "auction": params}))
    engine.apply(oc.CreateOptionMarket("v", "P", "ETH", 365 * DAY, str(STRIKE), "put", size_decimals=18))
    bids = case["input"]["bids"]
    if "start" in case["input"]:
        mtm0, mm0 = D(case["input"]["start"]["mtm"]), D(case["input"]["start"]["mm"])
    else:  # the first bid's state is after the start fee: find the state before it
        mtm0, mm0 = D(bids[0]["mtm"]), D(bids[0]["mm"])
        for _ in range(60):
            fee = start_fee(auction_params, mtm0, mm0)
            mtm0, mm0 = D(bids[0]["mtm"]) + fee, D(bids[0]["mm"]) + fee
    for account, cash in (("liq", _q(mtm0)), ("maker", "1000000"), ("bidder", "1000000")):
        engine.apply(c.OpenAccount(account, "v"))
        engine.apply(c.Deposit(account, "USDC", cash))
    engine.apply(oc.UpdateVolSurface("v", "ETH", "4000", 0, ({"expiry": 365 * DAY, "forward": "4000", "vol": "0"},)))
    engine.apply(oc.ApplyOptionFill("v", "P", "maker", "liq", "1", "0"))
    venue = options_venue(engine, "v")

    def set_mm(target: D, timestamp: int) -> list:
        units = -D(venue.positions["liq"]["P"].lots).scaleb(-18)  # short
        cash = D(engine.ledger.account("liq").balance("USDC")).scaleb(-18)
        forward = 2 * (STRIKE - (cash - target) / units)
        return engine.apply(oc.UpdateVolSurface("v", "ETH", _q(forward), timestamp,
                                                ({"expiry": 365 * DAY, "forward": _q(forward), "vol": "0"},)))

    started = set_mm(mm0, 10)
    start = next(event for event in started if isinstance(event, oe.OptionAuctionStarted))
    if "fee" in case["expect"]:
        assert float(start.fee) == pytest.approx(float(case["expect"]["fee"]), abs=1e-9)
    tolerance = float(case["tol"]["bids"])
    for index, (given, expected) in enumerate(zip(bids, case["expect"]["bids"], strict=True)):
        timestamp = 10 + int(given["elapsed"])
        if timestamp > engine.timestamp:
            engine.apply(c.AdvanceTime(timestamp))
        if index:  # the market moved between bids in the harness: set the account's MtM and MM to the vector's
            now = account_margin(engine, venue, "liq")
            gap = D(given["mtm"]) - D(repr(now.mtm))
            if gap < D("-1e-12"):
                pytest.skip("the next bid's MtM is below the previous post-bid MtM (a withdrawal would be needed)")
            if gap > D("1e-12"):
                engine.apply(c.Deposit("liq", "USDC", _q(gap)))
            set_mm(D(given["mm"]), engine.timestamp)
        now = account_margin(engine, venue, "liq")
        assert now.mtm == pytest.approx(float(given["mtm"]), abs=1e-9)
        assert now.mm == pytest.approx(float(given["mm"]), abs=1e-9)
        events = engine.apply(oc.Bid("v", "liq", "bidder", given["percent"]))
        bid = next(event for event in events if isinstance(event, oe.OptionAuctionBid))
        for name, value in (("price", bid.price), ("percent", bid.percent), ("f_max", bid.f_max),
                            ("post_mtm", bid.post_mark_to_market), ("post_mm", bid.post_maintenance_margin)):
            assert float(value) == pytest.approx(float(expected[name]), abs=tolerance * max(1, abs(float(value)))), name
        check_conserved(engine)


# ------------------------------------------------------------------ bad input


def _bad_commands() -> list[tuple[object, str]]:
    return [
        (surface("2000", "-0.2", 5), "expiries[0].vol"),
        (surface("2000", "nan", 5), "expiries[0].vol"),
        (surface("nan", "0.5", 5), "spot"),
        (surface("2000", "0.5", 5, forward="0"), "expiries[0].forward"),
        (surface("2000", "0.5", 5, forward="1e300"), "expiries[0].forward"),
        (surface("2000", "0.5", 5, rate="1e300"), "expiries[0].rate"),
        (surface("2000", "1e300", 5), "expiries[0].vol"),
        (surface("2000", "0.5", 5, expiry=4), "expiries[0].expiry"),
        (oc.UpdateVolSurface("v", "ETH", "2000", 5, ({"expiry": EXPIRY, "forward": "2000"},)), "expiries[0].svi"),
        (oc.CreateOptionMarket("v", "X", "ETH", EXPIRY, "0", "call"), "strike"),
        (oc.CreateOptionMarket("v", "X", "ETH", EXPIRY, "inf", "call"), "strike"),
        (oc.CreateOptionMarket("v", "X", "ETH", 0, "2000", "call"), "expiry"),
        (oc.CreateOptionMarket("v", "X", "ETH", EXPIRY, "2000", "straddle"), "option"),
        (oc.ApplyOptionFill("v", "ETH-C-2000", "maker", "seller", "0.001", "1"), "size"),
        (oc.ApplyOptionFill("v", "ETH-C-2000", "maker", "seller", "-1", "1"), "size"),
        (oc.ApplyOptionFill("v", "ETH-C-2000", "maker", "seller", "1", "nan"), "price"),
        (oc.ApplyOptionFill("v", "ETH-C-2000", "maker", "maker", "1", "1"), "seller"),
        (oc.ApplyOptionFill("v", "ETH-C-2000", "maker", "nobody", "1", "1"), "seller"),
        (oc.ApplyOptionFill("v", "ETH-C-2000", "saver", "seller", "1000", "10"), "buyer"),
        (oc.Bid("v", "seller", "bidder", "0.1"), "account"),
        (c.Withdraw("seller", "USDC", "4900"), "amount"),
    ]


@pytest.mark.parametrize("index", range(len(_bad_commands())))
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(index: int) -> None:
    command, field = _bad_commands()[index]
    engine, _ = venue_with_straddle("derive", "1000")
    before = state_of(engine)
    with pytest.raises(CommandRejected) as refused:
        engine.apply(command)  # type: ignore[arg-type]
    assert refused.value.field == field, refused.value.reason
    assert state_of(engine) == before


def test_an_expired_option_fill_is_refused() -> None:
    engine, _ = venue_with_straddle("derive", "5000")
    engine.apply(c.AdvanceTime(EXPIRY + 5))
    before = state_of(engine)
    with pytest.raises(CommandRejected) as refused:
        engine.apply(oc.ApplyOptionFill("v", "ETH-P-2000", "maker", "seller", "1", "1"))
    assert refused.value.field == "symbol" and state_of(engine) == before


# ------------------------------------------------------------------ random sequences: conservation and replay


def _random_commands(seed: int, count: int = 90, preset: str = "derive") -> list:
    rng = random.Random(seed)
    accounts = ["a", "b", "c", "d"]
    commands: list = [c.CreateVenue("v", preset),
                      oc.CreateOptionMarket("v", "C1", "ETH", 20 * DAY, "2000", "call", size_decimals=1),
                      oc.CreateOptionMarket("v", "P1", "ETH", 20 * DAY, "1800", "put", size_decimals=1),
                      oc.CreateOptionMarket("v", "C2", "ETH", 60 * DAY, "2400", "call", size_decimals=1),
                      c.FundInsurance("USDC", "500", venue="v")]
    for account in accounts:
        commands += [c.OpenAccount(account, "v"), c.Deposit(account, "USDC", str(rng.choice([250, 600, 3000])))]
    now, spot, vol = 0, 2000.0, 0.6
    for _ in range(count):
        roll = rng.random()
        if roll < 0.45:
            buyer, seller = rng.sample(accounts, 2)
            commands.append(oc.ApplyOptionFill("v", rng.choice(["C1", "P1", "C2"]), buyer, seller,
                                               str(rng.randint(1, 20) / 10), str(rng.randint(0, 3000) / 20)))
        elif roll < 0.8:
            now += rng.randint(0, DAY)
            spot = max(200.0, spot * (1 + rng.gauss(0, 0.1)))
            vol = min(3.0, max(0.1, vol * (1 + rng.gauss(0, 0.25))))
            feeds = tuple({"expiry": expiry, "forward": f"{spot:.2f}", "vol": f"{vol:.3f}"}
                          for expiry in (20 * DAY, 60 * DAY) if expiry > now)
            commands.append(oc.UpdateVolSurface("v", "ETH", f"{spot:.2f}", now, feeds))
        elif roll < 0.92:
            commands.append(oc.Bid("v", rng.choice(accounts), rng.choice(accounts), str(rng.choice([0.1, 0.5, 1]))))
        else:
            now += rng.randint(0, 3 * DAY)
            commands.append(c.AdvanceTime(now))
    return commands


def _run(commands: list) -> tuple[list, Engine]:
    engine = Engine()
    log = []
    for command in commands:
        try:
            events = engine.apply(command)
        except CommandRejected as refused:
            log.append(("rejected", refused.field))
        else:
            log.append([event.to_dict() for event in events])
        check_conserved(engine)
    return log, engine


@pytest.mark.parametrize("seed,preset", [(seed, "derive") for seed in range(6)] + [(seed, "deribit") for seed in
                                                                                  range(3)])
def test_random_sequences_conserve_and_replay_identically(seed: int, preset: str) -> None:
    commands = _random_commands(seed, preset=preset)
    first, _ = _run(commands)
    applied = sum(1 for entry in first if entry and entry[0] != "rejected")
    assert applied > len(commands) // 2
    # Replay through the JSON form of each command: the same events, bit for bit.
    replayed = [c.command_from_dict(json.loads(json.dumps(command.to_dict()))) for command in commands]
    second, _ = _run(replayed)
    assert second == first


# ------------------------------------------------------------------ the screen


def test_a_screened_surface_update_gives_the_same_events_as_valuing_every_account() -> None:
    from solvent.bench.options_engine import run_engine_update_benchmark

    result = run_engine_update_benchmark(300, seed=3)
    assert result.events_identical and result.time_events_identical
    assert result.liquidations_started > 0  # the move matters: some sellers are liquidated
    assert result.screened_candidates < result.accounts  # and the screen skipped the comfortable accounts


def test_a_snapshot_of_an_options_venue_restores_and_continues_identically() -> None:
    from solvent.store.snapshots import dump_engine, load_engine, state_digest

    engine, _ = venue_with_straddle("derive", "520")
    engine.apply(surface("2000", "1.3", 10))
    clone = load_engine(dump_engine(engine))
    assert state_digest(clone) == state_digest(engine)
    first = engine.apply(oc.Bid("v", "seller", "bidder", "0.2"))
    second = clone.apply(oc.Bid("v", "seller", "bidder", "0.2"))
    assert [event.to_dict() for event in first] == [event.to_dict() for event in second]
    engine.apply(oc.ApplyOptionFill("v", "ETH-C-2000", "maker", "bidder", "0.01", "0"))  # positions only, no cash
    assert state_digest(engine) != state_digest(clone)


def test_a_logged_options_venue_verifies(tmp_path: Path) -> None:
    from solvent.store import CommandLog, verify_log
    from solvent.store.durable import outcome_of

    log = CommandLog(f"sqlite:///{tmp_path}/log.db")
    engine = Engine()
    try:
        for command in _random_commands(1):
            entry = log.append(command)
            log.record_outcome(entry.seq, outcome_of(engine, command))
        report = verify_log(log)
    finally:
        log.close()
    assert report.liquidation_events["liquidation_started"] > 0 and report.rejected > 0
    assert report.accepted + report.rejected == report.entries


def test_an_inverse_venue_trades_margins_and_settles_in_coin() -> None:
    engine = Engine()
    engine.apply(c.CreateVenue("v", "deribit", {"settle_asset": "BTC", "settle_decimals": 8, "settle_kind": "inverse"}))
    engine.apply(oc.CreateOptionMarket("v", "BTC-C-60000", "BTC", EXPIRY, "60000", "call", size_decimals=1))
    engine.apply(oc.CreateOptionMarket("v", "BTC-P-60000", "BTC", EXPIRY, "60000", "put", size_decimals=1))
    for account, cash in (("maker", "10"), ("seller", "1")):
        engine.apply(c.OpenAccount(account, "v"))
        engine.apply(c.Deposit(account, "BTC", cash))
    engine.apply(oc.UpdateVolSurface("v", "BTC", "60000", 0, ({"expiry": EXPIRY, "forward": "60000", "vol": "0.5"},)))
    for symbol in ("BTC-C-60000", "BTC-P-60000"):
        engine.apply(oc.ApplyOptionFill("v", symbol, "maker", "seller", "1", "0.057"))
    assert engine.balance("seller", "BTC") == D("1.114")
    venue = options_venue(engine, "v")
    marks = {symbol: venue.mark(venue.markets[symbol], engine.timestamp) for symbol in venue.markets}
    assert 0.04 < marks["BTC-C-60000"] < 0.07  # coin per coin: the USD value ÷ the forward
    margin = account_margin(engine, venue, "seller")
    # Deribit's inverse rule at the money: IM = 0.15 + mark, MM = 0.075 + mark (per coin), puts IM ≥ MM.
    assert margin.mtm == pytest.approx(1.114 - sum(marks.values()))
    assert margin.im == pytest.approx(margin.mtm - sum(0.15 + mark for mark in marks.values()))
    assert margin.mm == pytest.approx(margin.mtm - sum(0.075 + mark for mark in marks.values()))
    engine.apply(c.AdvanceTime(EXPIRY))
    events = engine.apply(oc.SettleExpiry("v", "BTC", EXPIRY, "66000"))
    payoffs = {(event.account, event.symbol): event.payoff for event in events if isinstance(event, oe.OptionSettled)}
    assert payoffs[("maker", "BTC-C-60000")] == "0.09090909"      # 6000 / 66000 coin, rounded down
    assert payoffs[("seller", "BTC-C-60000")] == "-0.09090910"    # rounded up against the short
    assert payoffs[("seller", "BTC-P-60000")] == "0E-8"
    assert engine.balance("v/insurance", "BTC") == D("0.00000001")
    check_conserved(engine)


def test_the_scenario_grid_refuses_an_inverse_book() -> None:
    engine = Engine()
    with pytest.raises(CommandRejected) as refused:
        engine.apply(c.CreateVenue("v", "derive", {"settle_asset": "ETH", "settle_decimals": 18,
                                                   "settle_kind": "inverse"}))
    assert refused.value.field == "overrides.settle_kind"
    assert "v" not in getattr(engine, "options", {}) and "ETH" not in engine.ledger.assets


def test_an_options_feeder_does_not_move_another_venues_clock():
    """Each venue keeps its own clock: a surface far in the future on the options venue leaves a
    perpetual venue's prices free to arrive at their own time."""
    engine, _ = venue_with_straddle("derive", "10000")
    engine.apply(c.CreateVenue("bn", "binance"))
    engine.apply(surface("2000", "0.5", 10 * DAY))
    assert engine.time_of("v") == 10 * DAY
    engine.apply(c.UpdateOracle("bn", {"BTCUSDT": "60000"}, 5))  # earlier than the options venue's time
    assert engine.time_of("bn") < engine.time_of("v")
    with pytest.raises(CommandRejected):
        engine.apply(surface("2000", "0.5", DAY))  # the options venue's own clock still holds
