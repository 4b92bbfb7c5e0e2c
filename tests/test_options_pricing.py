"""Black-76 and SVI as the option venues compute them: identities, limits, Greeks, bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.core.errors import InvalidInput
from solvent.policies.options import (
    SviSlice,
    black76_greeks,
    black76_price,
    black76_prices,
)
from solvent.policies.options.black76 import (
    SECONDS_PER_YEAR,
    prices_array,
    prices_unchecked,
)

YEAR = SECONDS_PER_YEAR
prices_ = st.floats(1e-3, 1e7, allow_nan=False)
vols = st.floats(0.0, 50.0, allow_nan=False)
seconds_ = st.floats(0.0, 20 * YEAR, allow_nan=False)
discounts = st.floats(1e-3, 1.0, allow_nan=False)


def test_textbook_value_at_the_money():
    # F = K = 100, sigma 20%, one year, no discounting: C = 100 (2 N(0.1) - 1).
    call, put = black76_prices(100, 100, 0.2, YEAR, 1)
    assert call == pytest.approx(7.965567455405804, rel=1e-12)
    assert put == pytest.approx(call, rel=1e-12)
    discounted, _ = black76_prices(100, 100, 0.2, YEAR, math.exp(-0.05))
    assert discounted == pytest.approx(call * math.exp(-0.05), rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(prices_, prices_, vols, seconds_, discounts)
def test_put_call_parity(forward, strike, vol, seconds, discount):
    call, put = black76_prices(forward, strike, vol, seconds, discount)
    assert call - put == pytest.approx(discount * (forward - strike), abs=1e-9 * max(forward, strike))


@settings(max_examples=150, deadline=None)
@given(prices_, prices_, vols, seconds_, discounts)
def test_no_arbitrage_bounds(forward, strike, vol, seconds, discount):
    call, put = black76_prices(forward, strike, vol, seconds, discount)
    tolerance = 1e-9 * max(forward, strike)
    assert max(discount * (forward - strike), 0.0) - tolerance <= call <= discount * forward
    assert max(discount * (strike - forward), 0.0) - tolerance <= put <= discount * strike


@settings(max_examples=200, deadline=None)
@given(prices_, prices_, seconds_, discounts, st.floats(0.0, 5.0), st.floats(0.0, 5.0))
def test_call_value_never_falls_as_vol_rises(forward, strike, seconds, discount, vol_a, vol_b):
    low, high = sorted((vol_a, vol_b))
    assert black76_price("call", forward, strike, low, seconds, discount) <= \
        black76_price("call", forward, strike, high, seconds, discount) + 1e-9 * max(forward, strike)


@given(prices_, prices_, discounts)
def test_expired_or_zero_vol_is_intrinsic(forward, strike, discount):
    for vol, seconds in ((0.8, 0.0), (0.0, YEAR)):
        call, put = black76_prices(forward, strike, vol, seconds, discount)
        scale = 1e-12 * max(forward, strike)
        assert call == pytest.approx(discount * max(forward - strike, 0.0), abs=scale)
        assert put == pytest.approx(discount * max(strike - forward, 0.0), abs=scale)


@given(prices_, prices_, discounts, st.floats(24.0, 1e6))
def test_total_vol_above_the_cap_gives_the_limit(forward, strike, discount, total_vol):
    call, put = black76_prices(forward, strike, total_vol, YEAR, discount)  # v = sigma at one year
    assert call == discount * forward
    # The put comes from parity (c + m - 1): exact to float rounding of the larger of F and K.
    assert put == pytest.approx(discount * strike, abs=1e-12 * max(forward, strike))


def test_limit_is_continuous_just_below_the_cap():
    below = black76_price("call", 100, 120, 23.999, YEAR)
    assert below == pytest.approx(100, rel=1e-9)


@given(prices_, discounts, vols, seconds_)
def test_zero_strike_and_zero_forward(forward, discount, vol, seconds):
    assert black76_prices(forward, 0, vol, seconds, discount) == (forward * discount, 0.0)
    assert black76_prices(0, forward, vol, seconds, discount) == (0.0, forward * discount)


def test_tiny_vol_converges_to_intrinsic():
    for strike in (90.0, 100.0, 110.0):
        live = black76_price("call", 100, strike, 1e-9, YEAR)
        assert live == pytest.approx(max(100 - strike, 0.0), abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(prices_, prices_, vols, seconds_, discounts, st.booleans()), min_size=1, max_size=40))
def test_array_kernel_equals_scalar(rows):
    forward, strike, vol, seconds, discount, is_call = (np.array(column) for column in zip(*rows))
    got = prices_array(forward, strike, vol, seconds, discount, is_call)
    want = [prices_unchecked(*row[:5])[0 if row[5] else 1] for row in rows]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * float(np.max(np.r_[forward, strike])))


def test_array_kernel_edges():
    forward = np.array([100.0, 100.0, 0.0, 100.0, 100.0])
    strike = np.array([0.0, 100.0, 100.0, 90.0, 120.0])
    vol = np.array([0.5, 0.0, 0.5, 30.0, 0.5])
    seconds = np.array([YEAR, YEAR, YEAR, YEAR, 0.0])
    discount = np.full(5, 0.9)
    calls = prices_array(forward, strike, vol, seconds, discount, np.ones(5, bool))
    puts = prices_array(forward, strike, vol, seconds, discount, np.zeros(5, bool))
    np.testing.assert_allclose(calls, [90.0, 0.0, 0.0, 90.0, 0.0])
    np.testing.assert_allclose(puts, [0.0, 0.0, 90.0, 81.0, 18.0])


@pytest.mark.parametrize("kind", ["call", "put"])
@pytest.mark.parametrize("strike", [70.0, 100.0, 140.0])
def test_greeks_match_finite_differences(kind, strike):
    forward, vol, seconds, rate = 100.0, 0.6, 0.25 * YEAR, 0.05

    def value(f=forward, v=vol, s=seconds):
        return black76_price(kind, f, strike, v, s, math.exp(-rate * s / YEAR))

    greeks = black76_greeks(kind, forward, strike, vol, seconds, math.exp(-rate * seconds / YEAR))
    h = 1e-3
    assert greeks.delta == pytest.approx((value(f=forward + h) - value(f=forward - h)) / (2 * h), rel=1e-6, abs=1e-9)
    assert greeks.gamma == pytest.approx((value(f=forward + h) - 2 * value() + value(f=forward - h)) / h**2,
                                         rel=1e-4, abs=1e-7)
    assert greeks.vega == pytest.approx((value(v=vol + 1e-6) - value(v=vol - 1e-6)) / 2e-6, rel=1e-6)
    dt = 60.0  # one minute of calendar time passing: theta is per year
    assert greeks.theta == pytest.approx((value(s=seconds - dt) - value(s=seconds + dt)) / (2 * dt / YEAR), rel=1e-5)


def test_greeks_at_expiry_are_those_of_the_payoff():
    greeks = black76_greeks("put", 100, 120, 0.5, 0, 1)
    assert (greeks.delta, greeks.gamma, greeks.vega) == (-1.0, 0.0, 0.0)


@pytest.mark.parametrize("args, field", [
    ((100, 100, -0.1, YEAR), "vol"),
    ((float("nan"), 100, 0.5, YEAR), "forward"),
    ((100, -1, 0.5, YEAR), "strike"),
    ((100, 100, 0.5, -1), "seconds_to_expiry"),
    ((100, 100, float("inf"), YEAR), "vol"),
    ((100, 100, 0.5, YEAR, 0), "discount"),
])
def test_bad_input_is_refused_naming_the_field(args, field):
    with pytest.raises(InvalidInput) as error:
        black76_prices(*args)
    assert error.value.field == field


def test_unknown_kind_is_refused():
    with pytest.raises(InvalidInput, match="call or put"):
        black76_price("straddle", 100, 100, 0.5, YEAR)


# ------------------------------------------------------------------------------------------- SVI

SLICE = SviSlice(a=0.024537690770119612, b=0.109352002425581584, rho=-0.415043334267211712,
                 m=-0.119132790857374784, sigma=0.172435504151341056, forward=2695.7814942763334,
                 tau=0.10191907661086)


def test_svi_formula_at_a_strike_inside_the_bound():
    k = math.log(2500 / SLICE.forward)
    w = SLICE.a + SLICE.b * (SLICE.rho * (k - SLICE.m) + math.sqrt((k - SLICE.m) ** 2 + SLICE.sigma ** 2))
    assert SLICE.vol(2500) == pytest.approx(math.sqrt(w / SLICE.tau), rel=1e-14)


def test_svi_log_strike_is_bounded():
    bound = 4 * math.sqrt(SLICE.a + SLICE.b * SLICE.sigma)
    edge = SLICE.forward * math.exp(bound)
    assert SLICE.vol(edge * 3) == pytest.approx(SLICE.vol(edge), rel=1e-12)
    assert SLICE.vol(SLICE.forward * math.exp(-bound) / 5) == pytest.approx(
        SLICE.vol(SLICE.forward * math.exp(-bound)), rel=1e-12)
    assert SLICE.vol(edge * 0.9) != pytest.approx(SLICE.vol(edge), rel=1e-6)


def test_svi_zero_strike_and_vectorized():
    strikes = np.array([0.0, 1.0, 2000.0, 2700.0, 4200.0, 1e6])
    assert SLICE.vol(0) == 0.0
    np.testing.assert_allclose(SLICE.vols(strikes), [SLICE.vol(s) for s in strikes], rtol=1e-14)


def test_svi_total_variance_is_capped():
    wild = SviSlice(a=200.0, b=0.1, rho=0.0, m=0.0, sigma=0.1, forward=100.0, tau=1.0)
    assert wild.vol(100) == pytest.approx(12.0)  # sqrt(144 / 1)


@pytest.mark.parametrize("params, field", [
    ({"b": -0.1}, "svi.b"),
    ({"tau": 0.0}, "svi.tau"),
    ({"forward": 0.0}, "svi.forward"),
    ({"rho": 1.5}, "svi.rho"),
    ({"a": -1.0}, "svi.a"),
    ({"sigma": float("nan")}, "svi.sigma"),
])
def test_malformed_slices_are_refused(params, field):
    base = {"a": 0.02, "b": 0.1, "rho": -0.4, "m": 0.0, "sigma": 0.2, "forward": 100.0, "tau": 0.1}
    with pytest.raises(InvalidInput) as error:
        SviSlice(**{**base, **params})
    assert error.value.field == field


def test_negative_total_variance_is_refused():
    slice_ = SviSlice(a=-0.05, b=0.1, rho=-0.9, m=0.0, sigma=0.6, forward=100.0, tau=0.1)
    with pytest.raises(InvalidInput, match="negative total variance"):
        slice_.vol(300)
