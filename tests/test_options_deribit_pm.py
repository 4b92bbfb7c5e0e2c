"""Deribit portfolio margin for futures and perpetuals: the published capture, the rules, properties, bad input."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.core.errors import InvalidInput
from solvent.policies.options.deribit_portfolio import (
    DeribitPmParams,
    FuturePosition,
    portfolio_margin,
)
from solvent.presets import load_preset


def params(currency: str = "eth", **changes) -> DeribitPmParams:
    spec = load_preset("deribit").section("portfolio_margin")
    table = {key: value for key, value in spec.items() if key != "currencies"}
    table.update(spec["currencies"][currency])
    table.update(changes)
    return DeribitPmParams.from_table(table)


def future(size, mark="2000", settlement="inverse", kind="perpetual", **extra):
    row = {"instrument": "X", "kind": kind, "settlement": settlement, "size_currency": str(size), "mark_price": mark}
    row.update(extra)
    return FuturePosition.parse(row, "positions[0]")


def test_the_eth_capture_of_2026_02_15():
    # private/pme/simulate: short 0.999487053 ETH-PERPETUAL, index 1949.34 (reference §5.3)
    result = portfolio_margin([future("-0.999487053", "1949.49")], "1949.34", params("eth"))
    assert len(result.standard_vector) == 27 and len(result.extended_vector) == 8
    assert abs(result.standard_vector[0] - D("0.219399597")) < D("1e-15")
    assert abs(result.standard_vector[-1] - D("-0.152464126728814")) < D("1e-15")
    assert abs(result.aggregated_standard_vector[0] - D("0.1316397582")) < D("1e-15")   # gains × pnl_offset 0.6
    assert result.roll_shock == D("0.004997435265")                                     # 0.005 × |q|
    assert result.risk_matrix_margin == D("0.157461562265")
    assert result.initial_margin == D("0.157461562")
    assert result.maintenance_margin == D("0.125969249812")
    assert result.worst_case_bucket == {"source": "standard", "index": 25, "bucket": 9, "side": "right"}


def test_inverse_and_linear_legs():
    p = params("eth")
    inverse = portfolio_margin([future("2")], "2000", p)
    linear = portfolio_margin([future("2", mark="2000", settlement="linear")], "2000", p)
    for move, pnl_inverse, pnl_linear in zip(p.price_moves, inverse.standard_vector[::3], linear.standard_vector[::3]):
        assert abs(pnl_inverse - 2 * move / (1 + move)) < D("1e-25")  # coin: q·s/(1 + s)
        assert pnl_linear == 2 * 2000 * move                        # quote: q·mark·s
    assert p.price_moves == tuple(D("0.18") * i / 4 for i in range(-4, 5))


def test_extended_table_clamps_a_future_at_the_range_edge():
    result = portfolio_margin([future("1")], "2000", params("eth"))
    assert result.extended_vector[:2] == (result.standard_vector[0],) * 2
    assert result.extended_vector[2:] == (result.standard_vector[-1],) * 6
    assert set(result.aggregated_extended_vector) == {0}


def test_long_and_short_mirror_and_gains_offset_only_in_part():
    p = params("eth")
    long, short = portfolio_margin([future("3")], "2000", p), portfolio_margin([future("-3")], "2000", p)
    assert all(abs(a + b) < D("1e-25") for a, b in zip(long.standard_vector, short.standard_vector))
    for raw, aggregated in zip(long.standard_vector, long.aggregated_standard_vector):
        assert abs(aggregated - (raw if raw <= 0 else raw * D("0.6"))) < D("1e-25")


def test_hedged_futures_pay_only_the_roll_shock():
    dated = {"kind": "future", "years_to_expiry": "0.5"}
    p = params("btc")
    hedge = portfolio_margin([future("1", "60000"), future("-1", "61000", **dated)], "60000", p)
    assert hedge.worst_case == 0
    # each leg: |q|·max(annualised_move_risk·τ, min_annualised_move) = 0.01 and 0.0375
    assert hedge.roll_shock == D("0.01") + D("0.075") * D("0.5")
    assert hedge.risk_matrix_margin == hedge.roll_shock


def test_delta_shock_is_zero_below_the_threshold_and_grows_above_it():
    p = params("btc")
    small = portfolio_margin([future("100", "60000")], "60000", p)
    large = portfolio_margin([future("1000", "60000")], "60000", p)       # 60M USD of delta, threshold 20M
    assert small.delta_shock == 0 and large.delta_shock > 0


@settings(max_examples=60, deadline=None)
@given(size=st.decimals(min_value=D(-1000), max_value=D(1000), places=4),
       extra=st.decimals(min_value=D(0), max_value=D(1000), places=4),
       price_range=st.decimals(min_value=D("0.01"), max_value=D("0.5"), places=3),
       wider=st.decimals(min_value=D(0), max_value=D("0.4"), places=3))
def test_margin_grows_with_size_and_with_the_price_range(size, extra, price_range, wider):
    p = params("eth", price_range=str(price_range))
    sign = 1 if size >= 0 else -1
    base = portfolio_margin([future(size)], "2000", p)
    bigger = portfolio_margin([future(size + sign * extra)], "2000", p)
    assert bigger.risk_matrix_margin >= base.risk_matrix_margin and bigger.maintenance_margin >= base.maintenance_margin
    assert base.maintenance_margin == D("0.8") * base.risk_matrix_margin <= base.risk_matrix_margin
    wide = portfolio_margin([future(size)], "2000", params("eth", price_range=str(min(price_range + wider, D("0.9")))))
    assert wide.worst_case >= base.worst_case


def test_options_are_refused_until_the_pricer_is_wired_in():
    with pytest.raises(InvalidInput) as error:
        future("1", kind="option")
    assert error.value.field == "positions[0].kind"


@pytest.mark.parametrize("changes, field", [
    ({"price_range": "1.5"}, "params.price_range"), ({"buckets_count": "0"}, "params.buckets_count"),
    ({"vol_scenarios_count": "2"}, "params.vol_scenarios_count"), ({"pnl_offset": "-0.1"}, "params.pnl_offset"),
    ({"mm_factor": "x"}, "params.mm_factor"),
])
def test_bad_parameters_are_refused_naming_the_field(changes, field):
    with pytest.raises(InvalidInput) as error:
        params("eth", **changes)
    assert error.value.field == field


@pytest.mark.parametrize("row, field", [
    ({"size_currency": "1e40"}, "positions[0].size_currency"), ({"mark_price": "0"}, "positions[0].mark_price"),
    ({"size_currency": "NaN"}, "positions[0].size_currency"), ({"settlement": "quanto"}, "positions[0].settlement"),
    ({"years_to_expiry": "1"}, "positions[0].years_to_expiry"),
])
def test_bad_positions_are_refused_naming_the_field(row, field):
    base = {"instrument": "X", "kind": "perpetual", "settlement": "inverse", "size_currency": "1", "mark_price": "10"}
    with pytest.raises(InvalidInput) as error:
        FuturePosition.parse({**base, **row}, "positions[0]")
    assert error.value.field == field
    with pytest.raises(InvalidInput) as error:
        portfolio_margin([], "-5", params("eth"))
    assert error.value.field == "index_price"


def test_every_option_preset_builds_its_models():
    from solvent.policies.options.standard import StandardOptionMargin
    from solvent.presets import list_presets

    option_presets = [name for name in list_presets() if load_preset(name).data.get("kind") == "options"]
    assert {"bitcom", "okx_options", "deribit", "aevo", "span16"} <= set(option_presets)
    for name in option_presets:
        preset = load_preset(name)
        assert preset.sources and preset.summary
        if "option_margin" in preset.data:
            table = preset.section("option_margin")
            StandardOptionMargin.from_preset(table)
            for underlying in table.get("underlyings", {}):
                StandardOptionMargin.from_preset(table, underlying)
        for currency in preset.section("portfolio_margin").get("currencies", {}):
            assert params(currency).price_moves[4] == 0
