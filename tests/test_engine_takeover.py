"""TakeOver: liquidators take positions over on a venue open to them (Drift's permissionless
liquidators); the venue's own liquidator only takes bankrupt accounts there."""

from decimal import ROUND_CEILING
from decimal import Decimal as D

import pytest

from solvent.engine import CommandRejected
from solvent.engine import commands as c
from solvent.store.snapshots import state_digest
from test_engine_scenarios import SETUPS, balance, kinds, one, opened, oracle, run

OPEN = {"execution": {"takeover": "open"}}
SETUP = SETUPS["drift_v2"]


def open_venue():
    engine, _ = opened(SETUP, overrides=OPEN, others=("mm", "w", "liq"))
    return engine


def test_an_account_in_liquidation_waits_for_a_liquidator_then_one_takes_just_enough():
    engine = open_venue()
    mark = D("137")  # equity 40 < MM 137: in liquidation, nobody has acted yet
    events = run(engine, [oracle(SETUP, str(mark), 2)])
    assert kinds(events) == ["margin_call_issued", "liquidation_started"]
    assert ("t", "USDC") in engine.liquidating
    events = run(engine, [c.TakeOver("v", "liq", "t", SETUP.market, "20")])
    fill = one(events, "position_liquidated")
    size = (D("151.8") / (mark * D("0.06"))).quantize(D("0.01"), rounding=ROUND_CEILING)  # as the venue's own
    assert (fill["method"], fill["counterparty"], D(fill["price"]), D(fill["size"])) == (
        "takeover", "liq", mark * D("0.99"), size)
    assert "liquidation_ended" in kinds(events)
    assert engine.ledger.accounts["liq"].positions[(f"v/{SETUP.market}", None)].lots == int(size * 100)
    assert balance(engine, "v/liquidator", "USDC") == D(SETUP.big)  # the venue's account did nothing
    assert engine.conservation().holds


def test_a_liquidator_may_take_less_and_the_account_stays_in_liquidation():
    engine = open_venue()
    run(engine, [oracle(SETUP, "137", 2)])
    events = run(engine, [c.TakeOver("v", "liq", "t", SETUP.market, "1")])
    assert D(one(events, "position_liquidated")["size"]) == 1
    assert ("t", "USDC") in engine.liquidating


def test_a_bankrupt_account_is_taken_by_the_venue_even_on_an_open_venue():
    engine = open_venue()
    events = run(engine, [oracle(SETUP, "130", 2)])  # equity 300 − 20·20 = −100
    fill = one(events, "position_liquidated")
    assert fill["counterparty"] == "v/liquidator"
    assert engine.conservation().holds


@pytest.mark.parametrize("command,field", [
    (c.TakeOver("v", "liq", "w", SETUP.market, "1"), "account"),  # not in liquidation
    (c.TakeOver("v", "t", "t", SETUP.market, "1"), "liquidator"),  # itself
    (c.TakeOver("v", "liq", "t", SETUP.market, "0"), "size"),
    (c.TakeOver("v", "liq", "t", SETUP.market, "0.001"), "size"),  # finer than the lot
    (c.TakeOver("v", "poor", "t", SETUP.market, "20"), "liquidator"),  # no margin to carry it
])
def test_refused_takeovers_change_nothing(command, field):
    engine = open_venue()
    run(engine, [c.OpenAccount("poor", "v"), c.Deposit("poor", "USDC", "1"), oracle(SETUP, "137", 2)])
    before = state_digest(engine)
    with pytest.raises(CommandRejected) as refused:
        engine.apply(command)
    assert refused.value.field == field
    assert state_digest(engine) == before


def test_a_venue_that_takes_over_itself_refuses_liquidators():
    engine, _ = opened(SETUP, others=("mm", "w", "liq"))
    run(engine, [oracle(SETUP, "137", 2)])  # already taken over by the venue; and any way refused
    with pytest.raises(CommandRejected) as refused:
        engine.apply(c.TakeOver("v", "liq", "t", SETUP.market, "1"))
    assert refused.value.field == "venue"


def test_a_takeover_that_leaves_the_account_below_zero_sends_the_deficit_down_the_waterfall():
    engine = open_venue()
    # Equity 300 − 20·14.5 = 10 > 0: the account waits for liquidators. Curing the shortage takes
    # the whole position, and at the oracle − 1% that loses 20·1.355 = 27.1 > 10.
    events = run(engine, [oracle(SETUP, "135.5", 2)])
    assert "position_liquidated" not in kinds(events)
    fund_before = balance(engine, "v/insurance", "USDC")
    events = run(engine, [c.TakeOver("v", "liq", "t", SETUP.market, "20")])
    assert D(one(events, "position_liquidated")["size"]) == 20
    drawn = one(events, "insurance_fund_drawn")
    assert D(drawn["amount"]) == fund_before - balance(engine, "v/insurance", "USDC") > 0
    assert balance(engine, "t", "USDC") == 0  # the hole is covered, not left on the account
    assert ("t", "USDC") not in engine.liquidating
    assert engine.conservation().holds
