"""ADL excess over the pro-rata benchmark (Chitra's overshoot): the policy, the engine's events,
and a simulated run."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from solvent.engine import ApplyFill, CreateVenue, Deposit, Engine, OpenAccount, UpdateOracle
from solvent.policies import adl
from solvent.sim.metrics import adl_excess_over_pro_rata
from solvent.sim.run import SimConfig, run


def candidate(account, size, upnl):
    return adl.AdlCandidate(account, D(size), upnl=D(upnl))


def test_overshoot_counts_profit_taken_beyond_the_pro_rata_share():
    # A: 1 unit with 900 of profit; B: 3 units with 300 in all (100 a unit); L: a loser.
    candidates = [candidate("A", "1", "900"), candidate("B", "3", "300"), candidate("L", "2", "-50")]
    queue = adl.deleverage("binance", [adl.AdlCandidate(c.account, c.size, score=D(s))
                                       for c, s in zip(candidates, ("3", "2", "1"))], "2")
    assert [(c.account, c.size) for c in queue.closes] == [("A", D(1)), ("B", D(1))]
    measured = adl.overshoot(queue.closes, candidates, "2")
    # The queue takes A's 900 and a third of B's 300; pro-rata over the winners (A, B) closes
    # 0.5 of A and 1.5 of B: 450 + 150.
    assert measured.haircut == 1000 and measured.benchmark_haircut == 600
    assert measured.excess == 400 and measured.closed == measured.benchmark_closed == 2
    # Pro-rata itself has nothing to exceed; a rule that picked the smaller winner has no overshoot.
    winners = candidates[:2]
    assert adl.overshoot(adl.deleverage("pro_rata", winners, "2").closes, candidates, "2").excess == 0
    small_first = adl.overshoot([adl.AdlClose("B", D(2))], candidates, "2")
    assert small_first.haircut == 200 and small_first.excess == 0


def test_pro_rata_never_haircuts_more_than_a_queue_that_ranks_by_profit():
    candidates = [candidate(f"a{i}", str(i + 1), str((i + 1) * (10 - i))) for i in range(6)]
    by_profit = [adl.AdlCandidate(c.account, c.size, score=c.upnl / c.size) for c in candidates]
    for deficit in ("1", "4.5", "10", "21"):
        queue = adl.deleverage("hyperliquid", by_profit, deficit)
        measured = adl.overshoot(queue.closes, candidates, deficit)
        assert measured.benchmark_haircut <= measured.haircut
        assert measured.closed == D(deficit)
        assert 0 <= measured.closed - measured.benchmark_closed < D("1e-15")  # shares floored to 1e-18


def adl_engine(rule: str | None) -> tuple[Engine, list]:
    """Binance, empty fund: dave (long 1 at 60,000) goes bankrupt at 55,000. frank sold 0.5 at
    66,000 (11,000 a unit of profit), erin 1 at 60,000 (5,000 a unit)."""
    engine = Engine()
    overrides = {} if rule is None else {"waterfall": {"adl_rule": rule}}
    commands = [CreateVenue("v", "binance", overrides), Deposit("v/book", "USDT", "1000000"),
                Deposit("v/liquidator", "USDT", "1000000")]
    for name, amount in (("dave", "2000"), ("erin", "50000"), ("frank", "5000"), ("mm", "1000000")):
        commands += [OpenAccount(name, "v"), Deposit(name, "USDT", amount)]
    commands += [UpdateOracle("v", {"BTCUSDT": "66000"}, 1),
                 ApplyFill("v", "BTCUSDT", "mm", "frank", "0.5", "66000"),
                 UpdateOracle("v", {"BTCUSDT": "60000"}, 2),
                 ApplyFill("v", "BTCUSDT", "dave", "erin", "1", "60000")]
    for command in commands:
        engine.apply(command)
    events = engine.apply(UpdateOracle("v", {"BTCUSDT": "55000"}, 3))
    assert engine.conservation().holds
    return engine, events


def test_the_engine_describes_each_episode_and_the_queue_overshoots():
    _, events = adl_engine(None)
    ranked = [e for e in events if e.kind == "adl_queue_ranked"]
    assert len(ranked) == 1
    assert D(ranked[0].deficit_size) == 1 and D(ranked[0].lot) == D("0.001")
    assert {(a, D(s), D(u)) for a, s, u in ranked[0].candidates} == {
        ("frank", D("0.5"), D(5500)), ("erin", D(1), D(5000))}
    closes = [(e.account, D(e.size)) for e in events if e.kind == "position_auto_deleveraged"]
    assert closes == [("frank", D("0.5")), ("erin", D("0.5"))]  # frank ranks first (small wallet)
    # Queue: 5,500 + 2,500. Pro-rata by size: frank 1/3 (0.333 lots), erin 2/3 (0.667):
    # 0.333·11,000 + 0.667·5,000 = 3,663 + 3,335.
    assert adl_excess_over_pro_rata(events) == D(8000) - D(6998)


def test_under_the_pro_rata_rule_the_excess_is_zero():
    _, events = adl_engine("pro_rata")
    closes = {e.account: D(e.size) for e in events if e.kind == "position_auto_deleveraged"}
    assert closes == {"frank": D("0.333"), "erin": D("0.667")}
    assert adl_excess_over_pro_rata(events) == 0


def test_older_events_without_candidates_count_nothing():
    _, events = adl_engine(None)
    from dataclasses import replace
    stripped = [replace(e, candidates=()) if e.kind == "adl_queue_ranked" else e for e in events]
    assert adl_excess_over_pro_rata(stripped) == 0


@pytest.mark.parametrize("rule", [None, "pro_rata"])
def test_a_run_that_deleverages_reports_a_finite_excess(rule):
    overrides = () if rule is None else (("waterfall.adl_rule", rule),)
    result = run(SimConfig(preset="binance", accounts=600, insurance_fund="0", depth_scale=0.002,
                           overrides=overrides))
    metrics = result.metrics
    assert metrics.adl_events > 0
    assert metrics.adl_excess_over_pro_rata >= 0
    if rule == "pro_rata":
        assert metrics.adl_excess_over_pro_rata == 0
    else:  # traders entered at different prices: Binance's queue takes more PnL than pro-rata would
        assert metrics.adl_excess_over_pro_rata > 0


def test_the_queue_order_equals_the_exact_sort_even_where_floats_tie():
    """Scores a float cannot tell apart are still ranked exactly (and then by account)."""
    import random
    from fractions import Fraction

    rng = random.Random(4)
    base = Fraction(1, 3)
    scores = [base + Fraction(rng.randint(-3, 3), 10**30) for _ in range(60)]  # equal as floats
    scores += [Fraction(rng.randint(1, 10**6), rng.randint(1, 10**6)) for _ in range(60)]
    scored = [(adl.AdlCandidate(account=f"a{index:03d}", size=D(1), score=score), score)
              for index, score in enumerate(scores)]
    rng.shuffle(scored)
    assert adl._ranked(scored) == sorted(scored, key=lambda pair: (-pair[1], pair[0].account))
