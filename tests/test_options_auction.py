"""Derive's Dutch liquidation auction: published numbers, phases, f_max, a step-by-step run, bad input."""

from decimal import Decimal as D

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from solvent.core.errors import InvalidInput
from solvent.policies.options import auction
from solvent.policies.options.auction import AuctionParams, AuctionState

# Derive's test harness (PMRMTestBase._getDefaultAuctionParams)
HARNESS = AuctionParams.from_table({
    "starting_mtm_percentage": "0.98", "fast_auction_cutoff_percentage": "0.8", "fast_auction_length": "100",
    "slow_auction_length": "14400", "insolvent_auction_length": "600", "buffer_margin_percentage": "0.2",
    "liquidator_fee_rate": "0.02", "mtm_cutoff": "0"})


def close(a, b, tol="0.000000001"):
    return abs(D(a) - D(b)) <= D(tol)


# ------------------------------------------------------------------ published numbers (liquidationTests.json Test1)


def test_start_fee_and_first_bid_of_derive_test1():
    state = auction.start_auction(HARNESS, "120.62841481094", "-101.768534860364")
    assert not state.insolvent and close(state.fee, "1.32208463016534")
    result = auction.place_bid(HARNESS, state, 0, "119.306330180775", "-103.09061949053", "1")
    assert close(result.buffer_margin, "-147.57000942479")
    assert close(result.f_max, "0.557941285425569") and result.percent == result.f_max
    assert close(result.price, "65.2346086760595")
    assert close(result.post_mtm, "117.975011636365") and close(result.post_mm, "19.6625019393942")
    assert close(result.post_buffer_margin, "0") and not result.state.ongoing
    assert result.state.reserved_cash == result.price


def test_reserved_cash_carries_to_the_next_bid_of_derive_test4():
    state = AuctionState(insolvent=False)
    first = auction.place_bid(HARNESS, state, 30, "119.308718797352", "-103.087867828869", "0.1")
    assert close(first.price, "11.0479873606348") and close(first.post_f_max, "0.524290585958139")
    second = auction.place_bid(HARNESS, first.state, 30, first.post_mtm, first.post_mm, "0.111111111111111")
    assert close(second.f_max, "0.524290585958139") and close(second.price, "11.0479873606348")
    assert close(second.post_mtm, "117.542949759152") and close(second.post_mm, "-60.3743195418254")
    assert close(second.state.reserved_cash, first.price + second.price)


# ------------------------------------------------------------------ phases


def test_discount_phases():
    assert auction.discount(HARNESS, 0) == D("0.98")
    assert auction.discount(HARNESS, 50) == D("0.89")
    assert auction.discount(HARNESS, 100) == D("0.8")
    assert auction.discount(HARNESS, 100 + 7200) == D("0.4")
    assert auction.discount(HARNESS, 14500) == 0 and auction.discount(HARNESS, 10**6) == 0


@settings(max_examples=100, deadline=None)
@given(a=st.integers(min_value=0, max_value=20000), b=st.integers(min_value=0, max_value=20000))
def test_price_never_rises_with_time(a, b):
    early, late = sorted((a, b))
    assert auction.discount(HARNESS, late) <= auction.discount(HARNESS, early)
    assert auction.insolvent_price(HARNESS, "-10", "-50", late) <= auction.insolvent_price(HARNESS, "-10", "-50", early)


def test_insolvent_phase_pays_from_mtm_to_mm():
    state = auction.start_auction(HARNESS, "-29.369", "-251.766")
    assert state.insolvent and state.fee == 0
    assert auction.insolvent_price(HARNESS, "-29.369", "-251.766", 0) == D("-29.369")
    assert auction.insolvent_price(HARNESS, "-29.369", "-251.766", 300) == D("-140.5675")
    assert auction.insolvent_price(HARNESS, "-29.369", "-251.766", 900) == D("-251.766")
    assert auction.insolvent_price(HARNESS, "5", "-100", 0) == 0                    # MtM capped at 0
    result = auction.place_bid(HARNESS, state, 300, "-29.369", "-251.766", "0.1")
    assert result.price == D("-14.05675") and result.post_mtm == D("-26.4321")     # the module pays the bidder
    assert result.state.ongoing and result.state.reserved_cash == 0
    whole = auction.place_bid(HARNESS, state, 300, "-29.369", "-251.766", "1")
    assert not whole.state.ongoing and whole.post_mtm == 0


def test_a_run_step_by_step_ends_when_the_buffer_is_restored():
    state = auction.start_auction(HARNESS, "200", "-50")
    mtm, mm = D(200) - state.fee, D(-50) - state.fee
    for elapsed in (0, 40, 90):
        result = auction.place_bid(HARNESS, state, elapsed, mtm, mm, "0.05")
        assert result.percent == D("0.05") and result.state.ongoing
        state, mtm, mm = result.state, result.post_mtm, result.post_mm
    last = auction.place_bid(HARNESS, state, 5000, mtm, mm, "1")
    assert last.percent == last.f_max < 1 and not last.state.ongoing
    assert abs(last.post_buffer_margin) < D("1e-20")
    with pytest.raises(InvalidInput) as error:
        auction.place_bid(HARNESS, last.state, 5000, last.post_mtm, last.post_mm, "0.1")
    assert "ended" in error.value.message


def test_bids_the_contract_refuses_are_refused():
    solvent = AuctionState(insolvent=False)
    with pytest.raises(InvalidInput) as error:
        auction.place_bid(HARNESS, solvent, 20000, "100", "-50", "0.1")
    assert error.value.field == "bid.elapsed"
    with pytest.raises(InvalidInput) as error:
        auction.place_bid(HARNESS, solvent, 10, "100", "50", "0.1", field="bids[2]")
    assert error.value.field == "bids[2]" and "buffer margin restored" in error.value.message
    with pytest.raises(InvalidInput) as error:
        auction.place_bid(HARNESS, solvent, 10, "-1", "-50", "0.1")
    assert "insolvent" in error.value.message
    with pytest.raises(InvalidInput) as error:
        auction.start_auction(HARNESS, "100", "0")
    assert error.value.field == "mm"


# ------------------------------------------------------------------ f_max

values = st.decimals(min_value=D("0.01"), max_value=D(10**6), places=4)


@settings(max_examples=150, deadline=None)
@given(mtm=values, gap=values, elapsed=st.integers(min_value=0, max_value=14499),
       reserved_share=st.decimals(min_value=D(0), max_value=D("0.9"), places=3))
def test_f_max_brings_the_account_back_to_the_buffer(mtm, gap, elapsed, reserved_share):
    mm = -gap                                              # below maintenance, MtM positive
    reserved = mtm * reserved_share
    state = AuctionState(insolvent=False, reserved_cash=reserved)
    d = auction.discount(HARNESS, elapsed)
    assume((mtm - reserved) * d > 0)
    result = auction.place_bid(HARNESS, state, elapsed, mtm, mm, "1")
    assert 0 <= result.f_max <= 1 and result.percent == result.f_max
    if result.f_max < 1:
        assert abs(result.post_buffer_margin) <= D("1e-20") * max(mtm, gap)
    else:                                                  # the whole portfolio is not enough: still at or under
        assert result.post_buffer_margin <= D("1e-20") * max(mtm, gap)
    smaller = auction.place_bid(HARNESS, state, elapsed, mtm, mm, result.f_max / 2)
    assert smaller.post_buffer_margin < 0 and 0 < smaller.post_f_max <= 1


def test_mtm_below_cutoff_takes_everything():
    params = HARNESS.with_overrides({"mtm_cutoff": "500"})
    assert auction.max_share(params, "100", "-50", "0.9", "0") == 1


@pytest.mark.parametrize("field, value", [
    ("starting_mtm_percentage", "1.01"), ("fast_auction_cutoff_percentage", "0.99"),
    ("liquidator_fee_rate", "0.2"), ("buffer_margin_percentage", "5"), ("fast_auction_length", "0"),
    ("mtm_cutoff", "2000"), ("slow_auction_length", "NaN"),
])
def test_bad_parameters_are_refused_naming_the_field(field, value):
    with pytest.raises(InvalidInput) as error:
        HARNESS.with_overrides({field: value})
    assert error.value.field == f"params.{field}"


def test_extreme_values_are_refused_naming_the_field():
    with pytest.raises(InvalidInput) as error:
        auction.place_bid(HARNESS, AuctionState(insolvent=False), 0, "1e30", "-5", "0.5")
    assert error.value.field == "bid.mtm"
    with pytest.raises(InvalidInput) as error:
        auction.place_bid(HARNESS, AuctionState(insolvent=False), 0, "100", "-5", "1.5")
    assert error.value.field == "bid.percent"
    with pytest.raises(InvalidInput) as error:
        auction.place_bid(HARNESS, AuctionState(insolvent=False), -1, "100", "-5", "0.5")
    assert error.value.field == "bid.elapsed"


@settings(max_examples=60, deadline=None)
@given(mtm=values, gap=values,
       bids=st.lists(st.tuples(st.integers(min_value=0, max_value=400),
                               st.decimals(min_value=D("0.01"), max_value=D(1), places=3)), min_size=1, max_size=6))
def test_every_bid_raises_the_buffer_margin_until_the_auction_ends(mtm, gap, bids):
    state = auction.start_auction(HARNESS, mtm, -gap)
    value, mm, elapsed = mtm - state.fee, -gap - state.fee, 0
    for step, percent in bids:
        elapsed += step
        if auction.termination_reason(HARNESS, state, elapsed, value, mm) is not None:
            break
        result = auction.place_bid(HARNESS, state, elapsed, value, mm, percent)
        assert result.percent == min(percent, result.f_max) and 0 <= result.percent <= 1
        assert result.price >= 0
        assert abs(result.state.reserved_cash - state.reserved_cash - result.price) < D("1e-20") * max(mtm, gap)
        assert result.post_buffer_margin > result.buffer_margin
        state, value, mm = result.state, result.post_mtm, result.post_mm
        if not state.ongoing:
            assert abs(result.post_buffer_margin) <= D("1e-20") * max(mtm, gap) or result.f_max == 1
            break
