"""Margin models against the venues' documented numbers and their own rules."""

from decimal import Decimal as D

import pytest

from solvent.core.errors import InvalidInput
from solvent.policies.margin import (
    LiquidityTier,
    MinCollateralFactor,
    RiskLimitSteps,
    SizePremium,
    TieredMargin,
    drift_size_premium_weight,
)
from solvent.presets import load_preset

BTCUSDT_2021 = load_preset("binance").margin_model("BTCUSDT")


@pytest.mark.parametrize("notional, expected", [
    ("0", "0"),
    ("50000", "200"),            # 0.4% to the first floor (and 0.5% − 50 from it: continuous)
    ("100000", "450"),           # 0.5% · 100k − 50
    ("3500032.45776", "71200.811444"),  # Binance calc example: 2.5% − 16,300
    ("300000000", "49983700"),   # at the top floor both brackets agree: 25%·300M − 25,016,300
])
def test_binance_brackets_mm(notional, expected):
    assert BTCUSDT_2021.maintenance_margin(D(notional)) == D(expected)


def test_binance_cum_is_derived_from_floors():
    assert BTCUSDT_2021.deductions[:5] == [D(0), D(50), D(1300), D(16300), D(266300)]


@pytest.mark.parametrize("floor_index", range(1, 10))
def test_tiered_mm_is_continuous_at_each_floor(floor_index):
    tier = BTCUSDT_2021.tiers[floor_index]
    below = BTCUSDT_2021.tiers[floor_index - 1]
    assert tier.floor * below.maintenance_rate - below.deduction == tier.floor * tier.maintenance_rate - tier.deduction


def test_published_cum_is_used_as_published():
    model = TieredMargin.from_rows([{"floor": "0", "mmr": "0.01"}, {"floor": "100", "mmr": "0.02", "cum": "1.5"}])
    assert model.deductions == [D(0), D("1.5")]


def test_tier_max_leverage_caps_initial_margin():
    assert BTCUSDT_2021.initial_margin(D(10000), leverage=D(20)) == D(500)
    with pytest.raises(InvalidInput, match="exceeds"):
        BTCUSDT_2021.initial_margin(D(2_000_000), leverage=D(50))  # 1M–10M bracket allows 20x


@pytest.mark.parametrize("notional, expected", [("100000000", "1250000"), ("200000000", "3125000"),
                                                ("150000000", "1875000")])
def test_hyperliquid_tiers_half_initial_at_max_leverage(notional, expected):
    model = load_preset("hyperliquid").margin_model("BTC")  # 40x to $150M, 20x above
    assert model.tiers[0].maintenance_rate == D("0.0125")
    assert model.maintenance_margin(D(notional)) == D(expected)


@pytest.mark.parametrize("value, mm_rate, im_rate", [
    ("0", "0.005", "0.01"), ("199.99", "0.005", "0.01"), ("200", "0.01", "0.015"),
    ("349.99", "0.01", "0.015"), ("350", "0.015", "0.02"), ("499", "0.015", "0.02"), ("500", "0.02", "0.025"),
])
def test_bitmex_risk_limit_steps(value, mm_rate, im_rate):
    model = load_preset("bitmex").margin_model("XBTUSD")
    assert isinstance(model, RiskLimitSteps)
    assert model.rates(D(value)) == (D(mm_rate), D(im_rate))
    assert model.maintenance_margin(D(value)) == D(value) * D(mm_rate)


def test_bitmex_table_matches_rates():
    model = load_preset("bitmex").margin_model("XBTUSD")
    table = model.maintenance_table()
    assert table[1] == (D(200), D("0.01"), D(0)) and table[2] == (D(350), D("0.015"), D(0))


@pytest.mark.parametrize("oi, expected_ppm", [
    (None, 200_000), ("0", 200_000), ("1000000", 200_000), ("1500000", 600_000), ("2000000", 1_000_000),
    ("5000000", 1_000_000), ("1000001", 200_000),  # 0.8 ppm of scaling floors to 0
])
def test_dydx_open_interest_scaling(oi, expected_ppm):
    tier = LiquidityTier.from_rates(imf="0.2", maintenance_fraction="0.5", oi_lower_cap="1000000", oi_upper_cap="2000000")
    assert tier.adjusted_initial_ppm(None if oi is None else D(oi)) == expected_ppm


def test_dydx_requirements_round_up_and_mm_uses_base_imf():
    tier = LiquidityTier.from_rates(imf="0.2", maintenance_fraction="0.5", oi_lower_cap="1", oi_upper_cap="2")
    assert tier.initial_margin_quantums(1) == 1  # 0.2 rounded up
    assert tier.initial_margin_quantums(-1_000_000, D(2)) == 1_000_000  # OI at the cap: 100%
    assert tier.maintenance_margin_quantums(1_000_001) == 100_001  # 10% of base, rounded up


def test_dydx_mmf_must_be_a_whole_ppm_fraction():
    assert LiquidityTier.from_rates(imf="0.2", mmf="0.1").maintenance_fraction_ppm == 500_000
    with pytest.raises(InvalidInput):
        LiquidityTier.from_rates(imf="0.2")


@pytest.mark.parametrize("weight, imf, size, kind, expected", [
    ("1.0", "0.05", "400", "liability", "1.8"),
    ("0.9", "0.05", "400", "asset", "0.55"),
    ("1.0", "0", "400", "liability", "1.0"),        # no premium without an imf factor
    ("2.0", "0.0001", "1", "liability", "2.0"),     # premium below the weight: weight kept
    ("0.5", "0.0001", "1", "asset", "0.5"),         # discount above the weight: weight kept
])
def test_drift_size_premium(weight, imf, size, kind, expected):
    assert drift_size_premium_weight(weight, imf, size, kind) == D(expected)


def test_drift_size_premium_in_model():
    model = SizePremium(D("0.1"), D("0.05"), D("0.05"))
    # 0.8·0.05 + 0.05·√400 = 1.04 > 0.05
    assert model.maintenance_line(D(1000), D(400)) == (D("1.04"), D(0))
    assert model.maintenance_margin(D(1000), D(0)) == D(50)


def test_gmx_min_collateral_factor():
    model = MinCollateralFactor(D("0.01"), D("0.01"), min_collateral_usd=D(5))
    remaining = model.remaining_collateral(D(2500), D(1), 1, D(100000), D(2000), D(1960), D("0.0006"))
    assert remaining == D(440)
    assert model.is_liquidatable(remaining, D(100000))
    assert not model.is_liquidatable(D(1000), D(100000))
    assert model.is_liquidatable(D(4), D(100))  # below the minimum collateral in USD
    assert model.initial_margin(D(1000), open_interest=D(3), leverage=None) == D(10)


def test_tier_validation_names_the_field():
    with pytest.raises(InvalidInput) as error:
        TieredMargin.from_rows([{"floor": "0", "mmr": "0.01"}, {"floor": "0", "mmr": "0.02"}])
    assert error.value.field == "tiers[1].floor"
    with pytest.raises(InvalidInput) as error:
        TieredMargin.from_rows([{"floor": "0", "mmr": "1.5"}])
    assert error.value.field == "tiers[0].mmr"
