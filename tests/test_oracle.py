"""Tests for solvent.core.oracle: medians, index aggregation, guards, TWAP and mark prices."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.core.errors import InvalidInput, SolventError
from solvent.core.oracle import (
    BasisAverage,
    HyperliquidEma,
    OracleError,
    OracleReading,
    OracleStatus,
    SourceQuote,
    Twap,
    aggregate_index,
    assess_oracle_price,
    basis_moving_average,
    binance_mark_price,
    check_twap_divergence,
    guard_with_twap,
    hyperliquid_mark_price,
    median,
    weighted_median,
)


def quote(source, price, weight="1", timestamp=0):
    return SourceQuote(source, D(price), D(weight), D(timestamp))


# --- Medians --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, expected",
    [
        (["3"], "3"),
        (["3", "1", "2"], "2"),
        (["4", "1", "3", "2"], "2.5"),  # even count: mean of the middle two
        (["100.005", "100.02", "100.10"], "100.02"),
    ],
)
def test_median(values, expected):
    assert median(values) == D(expected)


@pytest.mark.parametrize(
    "values, weights, expected",
    [
        (["1", "2", "3"], ["1", "1", "1"], "2"),
        (["3", "1", "2"], ["1", "1", "1"], "2"),  # order of input does not matter
        (["10", "20", "30"], ["1", "1", "5"], "30"),  # 30 alone holds more than half
        (["10", "20", "30"], ["5", "1", "1"], "10"),
        # exactly half reached at 2: the lower element is chosen, not 2.5
        (["1", "2", "3", "4"], ["1", "1", "1", "1"], "2"),
        (["1", "2", "3", "4"], ["1", "1", "1", "1.01"], "3"),
        # Hyperliquid CEX perp weights: Binance 3, OKX 2, Bybit 2, Gate 1, MEXC 1 (total 9)
        (["100.0", "100.2", "99.9", "101", "98"], ["3", "2", "2", "1", "1"], "100.0"),
        (["5", "7"], ["0", "1"], "7"),  # a zero weight never wins
    ],
)
def test_weighted_median_hand_computed(values, weights, expected):
    assert weighted_median(values, weights) == D(expected)


@pytest.mark.parametrize(
    "values, weights, field",
    [
        ([], [], "values"),
        (["1", "2"], ["1"], "weights"),
        (["1", "2"], ["0", "0"], "weights"),
        (["1", "2"], ["1", "-1"], "weights[1]"),
        (["1", "NaN"], ["1", "1"], "values[1]"),
        (["Infinity", "1"], ["1", "1"], "values[0]"),
        (["1", "2"], [1.0, "1"], "weights[0]"),  # floats refused
    ],
)
def test_weighted_median_rejects_bad_input(values, weights, field):
    with pytest.raises(InvalidInput) as error:
        weighted_median(values, weights)
    assert error.value.field == field


prices = st.decimals(min_value="0.0001", max_value="1000000", places=4, allow_nan=False, allow_infinity=False)
weights = st.decimals(min_value="0", max_value="1000", places=2, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(prices, weights), min_size=1, max_size=12))
def test_weighted_median_is_one_of_the_values_within_range(pairs):
    values = [value for value, _ in pairs]
    ws = [weight for _, weight in pairs]
    if sum(ws) == 0:
        ws[0] = D(1)
    result = weighted_median(values, ws)
    assert min(values) <= result <= max(values)
    assert result in values


@given(st.lists(prices, min_size=1, max_size=11).filter(lambda xs: len(xs) % 2 == 1))
def test_weighted_median_with_equal_weights_is_the_median_for_odd_counts(values):
    assert weighted_median(values, [1] * len(values)) == median(values)


# --- Index aggregation ----------------------------------------------------------------------


def test_deviating_source_is_capped_not_dropped():
    quotes = [quote("a", "100"), quote("b", "101"), quote("c", "150")]
    reading = aggregate_index(quotes, 10, stale_after=300, deviation_cap="0.03")
    capped = D("101") * D("1.03")  # median of (100, 101, 150) is 101
    assert reading.price == (D("100") + D("101") + capped) / 3
    assert reading.status is OracleStatus.DEVIATED
    assert any("c:" in reason and "capped at 104.03" in reason for reason in reading.reasons)
    assert reading.usable_for_margin and reading.usable_for_liquidation
    assert reading.timestamp == 10


def test_capping_from_below_and_weighted_median_method():
    quotes = [quote("a", "50", "1"), quote("b", "100", "2"), quote("c", "101", "1")]
    mean = aggregate_index(quotes, 0, stale_after=300, deviation_cap="0.01")
    assert mean.price == (D("99") * 1 + D("100") * 2 + D("101") * 1) / 4  # 50 capped at 100·0.99
    by_median = aggregate_index(quotes, 0, stale_after=300, deviation_cap="0.01", method="weighted_median")
    assert by_median.price == D("100")
    assert by_median.status is OracleStatus.DEVIATED


def test_within_cap_is_ok():
    quotes = [quote("a", "100", "3"), quote("b", "101", "1")]
    reading = aggregate_index(quotes, 0, stale_after=300, deviation_cap="0.03")
    assert reading.status is OracleStatus.OK
    assert reading.price == D("100.25")
    assert reading.require_usable() == D("100.25")


def test_stale_source_is_excluded():
    quotes = [quote("a", "100", timestamp=1000), quote("b", "102", timestamp=1000), quote("old", "90", timestamp=600)]
    reading = aggregate_index(quotes, 1000, stale_after=300, deviation_cap="0.03")
    assert reading.price == D("101")
    assert reading.status is OracleStatus.OK
    assert any(reason.startswith("old: stale") for reason in reading.reasons)


def test_age_exactly_at_the_limit_is_fresh():
    reading = aggregate_index([quote("a", "100", timestamp=700)], 1000, stale_after=300, deviation_cap="0.03")
    assert reading.status is OracleStatus.OK


def test_all_sources_stale_gives_no_usable_price():
    quotes = [quote("a", "100", timestamp=0), quote("b", "101", timestamp=0)]
    reading = aggregate_index(quotes, 301, stale_after=300, deviation_cap="0.03")
    assert reading.status is OracleStatus.STALE
    assert reading.price is None
    assert not reading.usable_for_margin and not reading.usable_for_liquidation
    with pytest.raises(OracleError) as error:
        reading.require_usable()
    assert error.value.status is OracleStatus.STALE
    assert "stale" in str(error.value) and "no fresh source" in str(error.value)
    assert isinstance(error.value, SolventError)


def test_too_few_fresh_sources_is_stale_but_keeps_the_price_for_information():
    quotes = [quote("a", "100", timestamp=200), quote("b", "101", timestamp=0)]
    reading = aggregate_index(quotes, 400, stale_after=300, deviation_cap="0.03", min_sources=2)
    assert reading.status is OracleStatus.STALE
    assert reading.price == D("100")
    with pytest.raises(OracleError, match="only 1 fresh source"):
        reading.require_usable("margin")


def test_no_quotes_at_all_is_stale():
    reading = aggregate_index([], 0, stale_after=300, deviation_cap="0.03")
    assert reading.status is OracleStatus.STALE and reading.price is None


@pytest.mark.parametrize(
    "bad, field",
    [
        (SourceQuote("x", D("NaN"), D(1), D(0)), "quotes[2].price"),
        (SourceQuote("x", "Infinity", D(1), D(0)), "quotes[2].price"),
        (SourceQuote("x", D(0), D(1), D(0)), "quotes[2].price"),
        (SourceQuote("x", D(-5), D(1), D(0)), "quotes[2].price"),
        (SourceQuote("x", 100.5, D(1), D(0)), "quotes[2].price"),
        (SourceQuote("x", D(100), D(-1), D(0)), "quotes[2].weight"),
        (SourceQuote("x", D(100), D(1), D(11)), "quotes[2].timestamp"),  # after now
        (SourceQuote("", D(100), D(1), D(0)), "quotes[2].source"),
        (SourceQuote("a", D(100), D(1), D(0)), "quotes[2].source"),  # duplicate
    ],
)
def test_bad_quote_names_the_field(bad, field):
    quotes = [quote("a", "100"), quote("b", "101"), bad]
    with pytest.raises(InvalidInput) as error:
        aggregate_index(quotes, 10, stale_after=300, deviation_cap="0.03")
    assert error.value.field == field


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"stale_after": 0}, "stale_after"),
        ({"stale_after": -1}, "stale_after"),
        ({"deviation_cap": "-0.01"}, "deviation_cap"),
        ({"deviation_cap": "1"}, "deviation_cap"),
        ({"min_sources": 0}, "min_sources"),
        ({"method": "mean"}, "method"),
    ],
)
def test_bad_aggregation_parameters(kwargs, field):
    arguments = {"stale_after": 300, "deviation_cap": "0.03", **kwargs}
    with pytest.raises(InvalidInput) as error:
        aggregate_index([quote("a", "100")], 0, **arguments)
    assert error.value.field == field


@settings(max_examples=200)
@given(
    st.lists(st.tuples(prices, weights.filter(lambda w: w > 0)), min_size=1, max_size=8),
    st.decimals(min_value="0", max_value="0.5", places=3),
    st.sampled_from(["weighted_mean", "weighted_median"]),
)
def test_capped_index_stays_within_the_sources(pairs, cap, method):
    quotes = [quote(f"s{i}", price, weight) for i, (price, weight) in enumerate(pairs)]
    reading = aggregate_index(quotes, 0, stale_after=1, deviation_cap=cap, method=method)
    raw = [price for price, _ in pairs]
    assert min(raw) <= reading.price <= max(raw)
    assert reading.status in (OracleStatus.OK, OracleStatus.DEVIATED)


# --- Readings and single-feed assessment ----------------------------------------------------


@pytest.mark.parametrize(
    "status, margin, liquidation",
    [
        (OracleStatus.OK, True, True),
        (OracleStatus.DEVIATED, True, True),
        (OracleStatus.DIVERGENT, True, False),
        (OracleStatus.STALE, False, False),
        (OracleStatus.INVALID, False, False),
    ],
)
def test_usability_by_status(status, margin, liquidation):
    reading = OracleReading(D("100"), status, ("why",), D(0))
    assert reading.usable_for_margin is margin
    assert reading.usable_for_liquidation is liquidation
    if not liquidation:
        with pytest.raises(OracleError, match=f"status {status.value}.*why"):
            reading.require_usable("liquidation")


def test_a_good_status_needs_a_price():
    with pytest.raises(InvalidInput):
        OracleReading(None, OracleStatus.OK, (), D(0))


def test_assess_oracle_price():
    assert assess_oracle_price("100", 50, 100, max_age=60).status is OracleStatus.OK
    stale = assess_oracle_price("100", 30, 100, max_age=60)
    assert stale.status is OracleStatus.STALE and stale.price == D(100)
    invalid = assess_oracle_price("0", 30, 100, max_age=60)
    assert invalid.status is OracleStatus.INVALID  # worst of INVALID and STALE
    assert len(invalid.reasons) == 2
    with pytest.raises(InvalidInput) as error:
        assess_oracle_price("100", 101, 100, max_age=60)
    assert error.value.field == "timestamp"
    with pytest.raises(InvalidInput) as error:
        assess_oracle_price("NaN", 100, 100, max_age=60)
    assert error.value.field == "price"


# --- TWAP and divergence --------------------------------------------------------------------


def test_twap_is_time_weighted_over_the_window():
    twap = Twap(D(300)).update("100", 0).update("200", 100)
    assert twap.value(100) == D(100)
    assert twap.value(200) == D(150)  # 100 for 100 s, then 200 for 100 s
    assert twap.value(400) == D(200)  # window [100, 400] holds only the second price
    assert twap.value(300) == (D(100) * 100 + D(200) * 200) / 300


def test_twap_prunes_old_samples_but_keeps_the_one_in_force():
    twap = Twap(D(10))
    for t in range(100):
        twap = twap.update(str(100 + t), t)
    assert len(twap.samples) <= 11
    assert twap.value(99) == sum(D(100 + t) for t in range(89, 99)) / 10


def test_twap_is_immutable_and_validates():
    empty = Twap(D(60))
    assert empty.update("1", 0) is not empty and empty.value(0) is None
    with pytest.raises(InvalidInput) as error:
        Twap(D(0))
    assert error.value.field == "window"
    with pytest.raises(InvalidInput) as error:
        empty.update("1", 10).update("1", 5)
    assert error.value.field == "timestamp"
    with pytest.raises(InvalidInput) as error:
        empty.update("1", 10).value(5)
    assert error.value.field == "now"


@pytest.mark.parametrize(
    "price, twap, configured, expected",
    [
        ("100", "100", "0.1", OracleStatus.OK),
        ("149", "100", "0.1", OracleStatus.OK),  # Drift floor: band is max(10%, 50%)
        ("151", "100", "0.1", OracleStatus.DIVERGENT),
        ("49", "100", "0.1", OracleStatus.DIVERGENT),
        ("180", "100", "0.9", OracleStatus.OK),  # configured band wider than the floor
        ("501", "100", "10", OracleStatus.INVALID),  # too volatile: ratio > 5
        ("19", "100", "10", OracleStatus.INVALID),
        ("500", "100", "10", OracleStatus.OK),  # exactly 5x is not "more than"
    ],
)
def test_check_twap_divergence(price, twap, configured, expected):
    status, reasons = check_twap_divergence(price, twap, configured)
    assert status is expected
    assert bool(reasons) is (expected is not OracleStatus.OK)


def test_divergence_without_the_drift_floor():
    assert check_twap_divergence("111", "100", "0.1", min_band=0)[0] is OracleStatus.DIVERGENT


def test_guard_flags_a_spike_and_blocks_liquidation():
    twap = Twap(D(300)).update("100", 0).value(300)
    reading = aggregate_index([quote("a", "160", timestamp=300)], 300, stale_after=60, deviation_cap="0.03")
    guarded = guard_with_twap(reading, twap, "0.1")
    assert guarded.status is OracleStatus.DIVERGENT
    assert guarded.usable_for_margin and not guarded.usable_for_liquidation
    with pytest.raises(OracleError, match="divergent"):
        guarded.require_usable()
    assert guard_with_twap(reading, None, "0.1") == reading


# --- Binance / Bybit mark -------------------------------------------------------------------


# index 100, funding 0.01% with 4 h of an 8 h interval left: Price1 = 100·(1 + 0.0001·0.5) = 100.005
@pytest.mark.parametrize(
    "last, basis, expected",
    [
        ("100.10", "0.02", "100.02"),  # Price2 = 100.02 is the middle one
        ("99.90", "0.02", "100.005"),  # Price1 is the middle one
        ("100.01", "0.02", "100.01"),  # last price is the middle one
        ("100.01", "-0.5", "100.005"),
    ],
)
def test_binance_mark_is_median_of_three(last, basis, expected):
    mark = binance_mark_price("100", last, "0.0001", 4 * 3600, 8 * 3600, basis)
    assert mark == D(expected)


@pytest.mark.parametrize(
    "args, field",
    [
        (("0", "100", "0", 0, 28800, "0"), "index"),
        (("100", "NaN", "0", 0, 28800, "0"), "last_price"),
        (("100", "100", "0", -1, 28800, "0"), "seconds_to_funding"),
        (("100", "100", "0", 30000, 28800, "0"), "seconds_to_funding"),
        (("100", "100", "0", 0, 0, "0"), "funding_interval_seconds"),
        (("100", "100", "Infinity", 0, 28800, "0"), "funding_rate"),
    ],
)
def test_binance_mark_rejects_bad_input(args, field):
    with pytest.raises(InvalidInput) as error:
        binance_mark_price(*args)
    assert error.value.field == field


def test_basis_moving_average_over_the_window():
    samples = [(t, D(100) + D(t) / 100, D(100)) for t in range(1, 61)]  # basis t/100
    # 30 s window at t = 60 holds samples 31..60
    assert basis_moving_average(samples, 60, 30) == sum(D(t) / 100 for t in range(31, 61)) / 30
    assert basis_moving_average(samples[:1], 100, 30) is None
    with pytest.raises(InvalidInput) as error:
        basis_moving_average([(0, "0", "100")], 10, 30)
    assert error.value.field == "samples[0].mid"


def test_basis_average_tracker_matches_the_helper():
    tracker = BasisAverage(D(30))
    samples = []
    for t in range(100):
        sample = (t, D("100.5") + D(t % 7) / 10, D("100.4"))
        samples.append(sample)
        tracker = tracker.add(*sample)
    assert len(tracker.samples) == 30
    assert tracker.value(99) == basis_moving_average(samples, 99, 30)


# --- Hyperliquid EMA and mark ---------------------------------------------------------------


def test_hyperliquid_ema_two_samples_by_hand():
    # start at 0; sample 10 at t=2: num = 20, den = 2; sample 20 at t=5 (3 s later):
    # num = 20·e^(−3/150) + 20·3, den = 2·e^(−3/150) + 3
    ema = HyperliquidEma.start(150, 0).update("10", 2)
    assert ema.value == D(10)
    ema = ema.update("20", 5)
    decay = math.exp(-3 / 150)
    expected = (20 * decay + 60) / (2 * decay + 3)
    assert abs(float(ema.value) - expected) < 1e-12
    assert ema.value.quantize(D("0.000001")) == D("16.047903")


def test_hyperliquid_ema_converges_to_a_constant_input():
    ema = HyperliquidEma.start(150, 0)
    for t in range(1, 101):
        ema = ema.update("0", t)
    for t in range(101, 3101):  # 20 τ of a constant 5
        ema = ema.update("5", t)
    assert abs(ema.value - D(5)) < D("1e-7")
    steady = HyperliquidEma.start(30, 0)
    for t in range(1, 50):
        steady = steady.update("2.5", t)
    assert abs(steady.value - D("2.5")) < D("1e-25")


def test_hyperliquid_ema_is_empty_until_time_passes_and_refuses_going_back():
    ema = HyperliquidEma.start(150, 10)
    assert ema.value is None
    assert ema.update("3", 10).value is None  # no elapsed time, no weight
    with pytest.raises(InvalidInput) as error:
        ema.update("3", 9)
    assert error.value.field == "timestamp"


CEX = [("100.3", 3), ("100.1", 2), ("100.6", 2), ("99", 1), ("102", 1)]  # weighted median 100.3


def test_hyperliquid_mark_median_of_three():
    # (1) 100 + 0.05 = 100.05, (2) median(100.0, 100.2, 100.4) = 100.2, (3) 100.3
    mark = hyperliquid_mark_price("100", "0.05", "100.0", "100.2", "100.4", CEX)
    assert mark == D("100.2")


def test_hyperliquid_mark_uses_the_fallback_when_a_component_is_missing():
    # book one-sided: (1) 100.05, (3) 100.3, fallback 100.1 → median 100.1
    mark = hyperliquid_mark_price("100", "0.05", None, "100.2", "100.4", CEX, fallback_ema="100.1")
    assert mark == D("100.1")
    # no CEX mids: (1) 100.05, (2) 100.2, fallback 100.5 → 100.2
    assert hyperliquid_mark_price("100", "0.05", "100.0", "100.2", "100.4", None, fallback_ema="100.5") == D("100.2")
    # fallback ignored when all three exist
    assert hyperliquid_mark_price("100", "0.05", "100.0", "100.2", "100.4", CEX, fallback_ema="1") == D("100.2")


def test_hyperliquid_mark_without_enough_components_raises():
    with pytest.raises(OracleError, match="no fallback_ema"):
        hyperliquid_mark_price("100", None, "100.0", "100.2", "100.4", CEX)
    with pytest.raises(OracleError, match="only 1 of 3"):
        hyperliquid_mark_price(None, None, None, None, None, CEX, fallback_ema="100")


@pytest.mark.parametrize(
    "args, field",
    [
        (("-1", "0", "1", "2", "1", CEX), "oracle"),
        (("100", "NaN", "1", "2", "1", CEX), "ema_basis"),
        (("100", "0", "3", "2", "2", CEX), "book_bid"),  # crossed book
        (("100", "0", "1", "2", "1", [("100", 1), ("0", 1)]), "cex_perp_mids_with_weights[1].mid"),
        (("100", "0", "1", "2", "1", [("100", -1)]), "cex_perp_mids_with_weights[0].weight"),
        (("100", "0", "1", "2", "1", [("100",)]), "cex_perp_mids_with_weights[0]"),
    ],
)
def test_hyperliquid_mark_rejects_bad_input(args, field):
    with pytest.raises(InvalidInput) as error:
        hyperliquid_mark_price(*args)
    assert error.value.field == field
