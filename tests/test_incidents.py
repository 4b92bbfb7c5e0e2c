"""Incident replays (issue 20): the facts and their bands, the leverage-draining ADL rule, the
margined backstop vault's ADL, Maker's flip auctions, and each incident at a reduced size that
keeps its mechanism (ADL against the vault; zero bids; none under Liquidations 2.0)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from solvent.core.errors import InvalidInput, UnknownName
from solvent.engine import (
    ApplyFill,
    CreateVenue,
    Deposit,
    Engine,
    OpenAccount,
    UpdateOracle,
)
from solvent.engine.engine import CommandRejected
from solvent.engine.lending import (
    Bark,
    Borrow,
    Deal,
    FlipBid,
    OpenLendingAccount,
    Redo,
    Supply,
    UpdatePrices,
    lending_conservation,
    lending_venue,
)
from solvent.policies import adl
from solvent.policies.lending import WAD, maker_flip
from solvent.sim.incidents import Band, compare, load_incident_file, run_incident
from solvent.sim.incidents.facts import FactSpec

# ------------------------------------------------------------------------------------ facts


@pytest.mark.parametrize("table, published, inside, outside", [
    ({"factor": 1.5}, 100.0, (67.0, 150.0), (66.0, 151.0)),
    ({"plus_minus": 15}, 38.0, (23.0, 53.0), (22.9, 53.1)),
    ({"range": [0, 300]}, 61.7, (0.0, 300.0), (-1.0, 301.0)),
])
def test_a_band_holds_inside_and_not_outside(table, published, inside, outside):
    band = Band.parse(table, "band")
    assert all(band.holds(published, value) for value in inside)
    assert not any(band.holds(published, value) for value in outside)


@pytest.mark.parametrize("table", [{"factor": 0.5}, {"plus_minus": -1}, {"range": [3, 1]}, {"within": 2}, {}])
def test_a_band_that_makes_no_sense_is_refused_naming_it(table):
    with pytest.raises(InvalidInput) as error:
        Band.parse(table, "facts[0].band")
    assert "facts[0].band" in str(error.value)


def test_a_fact_not_simulated_is_never_inside_and_json_has_the_five_fields():
    specs = (FactSpec("a", "A", 10.0, Band("factor", 2.0), "usd", "s"),
             FactSpec("b", "B", 10.0, Band("factor", 2.0), "usd", "s"))
    facts = compare(specs, {"a": 19.0})
    assert [f.inside for f in facts] == [True, False] and facts[1].simulated is None
    assert set(facts[0].to_json()) == {"name", "published", "simulated", "band", "inside"}
    assert facts[0].ratio == pytest.approx(1.9)


def test_every_incident_file_states_sources_and_bands_for_its_facts():
    for name in ("hyperliquid-2025-10-10", "maker-2020-03-12"):
        spec = load_incident_file(name)
        assert spec.sources and spec.facts and spec.scenario is not None
        assert all(fact.source for fact in spec.facts)
    with pytest.raises(UnknownName):
        run_incident("mango-2099")


# ------------------------------------------------------------------------- leverage draining


def levered(account, size, value):
    return adl.AdlCandidate(account, D(size), account_value=D(value), mark_price=D(1), upnl=D(1))


def test_leverage_draining_reduces_the_most_levered_first_to_one_level():
    # Leverage (size / value at mark 1): a 10, b 2, c 1.
    candidates = [levered("a", "10", "1"), levered("b", "10", "5"), levered("c", "4", "4")]
    first = adl.deleverage("leverage_draining", candidates, "5", lot="1")
    assert [(c.account, c.size) for c in first.closes] == [("a", D(5))]  # a drained to 5x, alone
    second = adl.deleverage("leverage_draining", candidates, "9")
    # a and b end at the same leverage L: 10 − L = a's close, 10 − 5L = b's; 20 − 6L = 9 → L = 11/6.
    closes = {c.account: c.size for c in second.closes}
    assert set(closes) == {"a", "b"} and D(0) <= D(9) - sum(closes.values()) < D("1e-17")  # floored to 1e-18
    assert float(D(10) - closes["a"]) == pytest.approx(float((D(10) - closes["b"]) / 5), rel=1e-12)
    assert float(D(10) - closes["a"]) == pytest.approx(11 / 6, rel=1e-12)
    lots = adl.deleverage("leverage_draining", candidates, "9", lot="1")
    assert [(c.account, c.size) for c in lots.closes] == [("a", D(8)), ("b", D(1))]  # whole lots, leftover by remainder
    assert adl.deleverage("leverage_draining", candidates, "30").uncovered == D(6)


def test_an_account_with_no_positive_value_is_drained_first():
    candidates = [levered("rich", "10", "1"), adl.AdlCandidate("broke", D(3), account_value=D(-2), upnl=D(0))]
    result = adl.deleverage("leverage_draining", candidates, "4", lot="1")
    assert [(c.account, c.size) for c in result.closes] == [("broke", D(3)), ("rich", D(1))]


def test_overshoot_against_each_benchmark():
    candidates = [adl.AdlCandidate("hi", D(10), account_value=D(1), upnl=D(100)),
                  adl.AdlCandidate("lo", D(10), account_value=D(10), upnl=D(500))]
    # A queue that closes the big winner 'lo' first: against leverage draining (which closes 'hi',
    # the more levered) it took 5 × 50 = 250 instead of 5 × 10 = 50.
    closes = [adl.AdlClose("lo", D(5))]
    draining = adl.overshoot(closes, candidates, "5", benchmark="leverage_draining")
    assert draining.haircut == 250 and draining.benchmark_haircut == 50 and draining.excess == 200
    assert adl.overshoot(closes, candidates, "5", benchmark="pro_rata").benchmark_haircut == 150
    with pytest.raises(InvalidInput):
        adl.overshoot(closes, candidates, "5", benchmark="queue")


# ------------------------------------------------------------ the margined vault's ADL (engine)


def vault_engine(margined: bool) -> tuple[Engine, list]:
    """Hyperliquid, a vault of 3,000 USDC. 'lev' is long 10 BTC at 100,000 on 10,000 of margin (100x
    its equity after the fall below); 'short' sold them, with ample margin. BTC gaps to 99,300 (the
    vault takes 'lev' over), then to 98,000: the vault's account value turns negative."""
    overrides = {"execution": {"backstop_deleveraged_below": "0"}} if margined else {}
    engine = Engine()
    commands = [CreateVenue("v", "hyperliquid", overrides), Deposit("v/liquidator", "USDC", "3000"),
                Deposit("v/book", "USDC", "100000000")]
    for name, amount in (("lev", "10000"), ("short", "500000")):
        commands += [OpenAccount(name, "v"), Deposit(name, "USDC", amount)]
    commands += [UpdateOracle("v", {"BTC": "100000"}, 1), ApplyFill("v", "BTC", "lev", "short", "10", "100000")]
    for command in commands:
        engine.apply(command)
    events = engine.apply(UpdateOracle("v", {"BTC": "99300"}, 2))
    events += engine.apply(UpdateOracle("v", {"BTC": "98000"}, 3))
    return engine, events


def test_a_margined_vault_whose_value_turns_negative_is_deleveraged_against_the_winners():
    engine, events = vault_engine(margined=True)
    taken = [e for e in events if e.kind == "position_liquidated" and e.method == "backstop"]
    adl_fills = [e for e in events if e.kind == "position_auto_deleveraged"]
    assert taken and adl_fills
    assert all(e.against == "v/liquidator" and e.account == "short" for e in adl_fills)
    ranked = next(e for e in events if e.kind == "adl_queue_ranked")
    assert len(ranked.account_values) == len(ranked.candidates)
    assert engine.conservation().holds
    # Without the rule the vault keeps the position whatever it loses: no ADL.
    _, plain = vault_engine(margined=False)
    assert not [e for e in plain if e.kind == "position_auto_deleveraged"]


# ------------------------------------------------------------------------- flip auctions


ILK = maker_flip.FlipIlk("ETH-A", mat=15 * 10**26, chop=113 * 10**16, lump=50 * WAD, beg=103 * 10**16, ttl=600,
                         tau=21600)


def test_tend_enforces_beg_and_the_tab_then_dent_gives_collateral_back():
    auction = maker_flip.kick(50 * WAD, 5650 * WAD, "owner", 0, ILK)
    auction = maker_flip.tend(auction, "k1", 50 * WAD, 100 * WAD, 10, ILK)
    with pytest.raises(Exception, match="insufficient-increase"):
        maker_flip.tend(auction, "k2", 50 * WAD, 102 * WAD, 20, ILK)  # 2% < beg 3%
    auction = maker_flip.tend(auction, "k2", 50 * WAD, 103 * WAD, 20, ILK)
    with pytest.raises(Exception, match="higher-than-tab"):
        maker_flip.tend(auction, "k1", 50 * WAD, 5651 * WAD, 30, ILK)
    auction = maker_flip.bid(auction, "k1", 50 * WAD, 5650 * WAD, 30, ILK)  # reaching the tab needs no beg
    assert auction.phase == "dent"
    with pytest.raises(Exception, match="insufficient-decrease"):
        maker_flip.bid(auction, "k2", 49 * WAD, 5650 * WAD, 40, ILK)  # 50/49 < 1.03
    auction = maker_flip.bid(auction, "k2", 48 * WAD, 5650 * WAD, 40, ILK)
    assert not maker_flip.can_deal(auction, 640) and maker_flip.can_deal(auction, 641)  # ttl after the last bid
    with pytest.raises(Exception, match="already-finished"):
        maker_flip.bid(auction, "k1", 46 * WAD, 5650 * WAD, 641, ILK)


def test_tick_restarts_only_an_auction_without_bids_past_its_end():
    auction = maker_flip.kick(WAD, 100 * WAD, "owner", 0, ILK)
    with pytest.raises(Exception, match="not-finished"):
        maker_flip.tick(auction, 100, ILK)
    assert maker_flip.tick(auction, 21601, ILK).end == 21601 + 21600
    with pytest.raises(Exception, match="bid-already-placed"):
        maker_flip.tick(maker_flip.tend(auction, "k", WAD, 1, 5, ILK), 21601, ILK)


def flip_engine() -> Engine:
    engine = Engine()
    for command in [CreateVenue("m", "maker_2020"), *(OpenLendingAccount(a, "m") for a in ("owner", "bot", "k")),
                    Deposit("owner", "ETH", "120"), Deposit("k", "DAI", "100000"), Deposit("bot", "DAI", "1"),
                    UpdatePrices("m", {"ETH": "200"}, 1), Supply("m", "owner", "ETH", "120", market="ETH-A"),
                    Borrow("m", "owner", "DAI", "12000", market="ETH-A"), UpdatePrices("m", {"ETH": "140"}, 2)]:
        engine.apply(command)
    return engine


def test_a_zero_bid_nobody_outbids_within_ttl_wins_the_lot_and_leaves_system_debt():
    engine = flip_engine()
    started = [engine.apply(Bark("m", "bot", "owner", "ETH-A"))[0] for _ in range(3)]  # 50 + 50 + 20 ETH
    assert [s.lot for s in started] == ["50.000000000000000000", "50.000000000000000000", "20.000000000000000000"]
    with pytest.raises(CommandRejected):
        engine.apply(Bark("m", "bot", "owner", "ETH-A"))  # nothing left to bite
    engine.apply(FlipBid("m", "bot", 1, "50", "0.000000000000000001"))  # one wei of DAI
    engine.apply(FlipBid("m", "k", 2, "50", "5000"))
    engine.apply(UpdatePrices("m", {"ETH": "140"}, 700))
    with pytest.raises(CommandRejected):
        engine.apply(Deal("m", "k", 3))  # no bid: only tick may act, after the auction's end
    settled = engine.apply(Deal("m", "k", 1))
    # The debt taken (50 of 120 ETH of 12,000 DAI: 5,000) less the one wei the bid raised.
    assert settled[0].kind == "bad_debt_recorded" and D(settled[0].amount) == D(5000) - D("1e-18")
    engine.apply(Deal("m", "k", 2))
    assert engine.ledger.accounts["bot"].balance("ETH") == 50 * WAD
    venue = lending_venue(engine, "m")
    assert lending_conservation(engine, "m").holds
    assert venue.system_debt() > 0
    engine.apply(UpdatePrices("m", {"ETH": "140"}, 22000))
    assert engine.apply(Redo("m", "k", 3))[0].kind == "auction_reset"


# ------------------------------------------------------------------- incidents, reduced size


def test_hyperliquid_replay_deleverages_against_the_vault_at_a_reduced_size():
    run = run_incident("hyperliquid-2025-10-10", seed=3, scale=0.015, counterfactuals=False)
    metrics = run.replay.metrics
    assert metrics["adl_events"] > 0 and metrics["adl_notional"] > 0
    assert metrics["vault_share_of_adl"] > 0  # some fills were against the liquidator vault
    assert metrics["first_adl_delay_seconds"] is not None and metrics["first_adl_delay_seconds"] >= 0
    assert {fact.name for fact in run.facts} >= {"adl_notional", "adl_share_of_liquidations"}


def test_maker_replay_has_zero_bids_under_flip_and_none_under_liquidations_2():
    run = run_incident("maker-2020-03-12", seed=3, scale=0.02)
    flip, clip = run.replay.metrics, run.counterfactuals[0].metrics
    assert flip["zero_bid_auctions"] > 0 and flip["deficit_dai"] > 0 and flip["dent_bids"] > 0
    assert clip["zero_bid_auctions"] == 0 and clip["deficit_dai"] < flip["deficit_dai"]
    assert run.to_json()["facts"][0]["name"] == "zero_bid_collateral_usd"
