"""Per-position option margin (bit.com, OKX, Deribit, Aevo) and Derive's standard manager."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.core.errors import InvalidInput
from solvent.policies.options.standard import (
    DeriveOption,
    DeriveStandardParams,
    MarginTier,
    OptionKind,
    StandardOptionMargin,
    derive_expiry_margin,
    derive_isolated_margin,
    settlement_payoff,
)
from solvent.presets import load_preset

VENUES = ("bitcom", "okx_options", "deribit", "aevo")


def model(name: str, underlying: str | None = None) -> StandardOptionMargin:
    return StandardOptionMargin.from_preset(load_preset(name).section("option_margin"), underlying)


MODELS = {name: model(name) for name in VENUES}


# ------------------------------------------------------------------ published numbers


def test_bitcom_published_put_example_through_the_preset():
    # ETH-USDT-17NOV23-1850-P, U 2098, mark 2.4, 50 contracts (bit.com help center)
    result = model("bitcom", "ETH").position("put", "short", "50", "2098", "1850", "2.4")
    assert result.per_unit.maintenance == D("159.75")     # max(157.35, 0.18) + 2.4
    assert result.per_unit.initial == D("212.2")          # max(max(314.7 − 248, 209.8) + 2.4, 159.75)
    assert (result.initial, result.maintenance) == (D("10610.0"), D("7987.50"))


def test_okx_published_call_and_sell_to_open_example():
    okx = model("okx_options").with_overrides(contract_multiplier="0.1")
    result = okx.position("call", "short", "1", "5900", "6000", "0.0575", reference_price="5900", margin_factor="1.02")
    assert abs(result.per_contract.initial - D("0.01932")) < D("0.000005")
    order = okx.sell_to_open_order_margin(result.per_contract.initial, "0.06", "100", fee_per_contract="0.00002")
    assert abs(order - D("1.334")) < D("0.0005")
    assert okx.buy_to_open_order_margin("0.0475", "100", fee_per_contract="0.00002") == D("0.477")


def test_okx_requires_the_forward_for_the_otm_share():
    with pytest.raises(InvalidInput) as error:
        model("okx_options").per_unit("call", "short", "5900", "6000", "0.05")
    assert error.value.field == "reference_price"


# ------------------------------------------------------------------ the rules, hand-checked


def test_linear_short_call_and_put_by_hand():
    bitcom = model("bitcom", "BTC")
    call = bitcom.per_unit("call", "short", "2000", "2200", "10")
    assert call.initial == D("210.00") and call.maintenance == D("160.000")   # max(300 − 200, 200) + 10; 150 + 10
    put = bitcom.per_unit("put", "short", "2000", "2100", "120")               # in the money: no OTM relief
    assert put.initial == D("420.00") and put.maintenance == D("270.000")     # 300 + 120; max(150, 9) + 120


def test_inverse_book_counts_shares_of_one_coin():
    deribit = model("deribit")
    call = deribit.per_unit("call", "short", "50000", "60000", "0.01")
    assert call.initial == D("0.11") and call.maintenance == D("0.085")       # max(0.15 − 0.2, 0.1) + 0.01
    put = deribit.per_unit("put", "short", "50000", "55000", "0.12")
    assert put.initial == D("0.27") and put.maintenance == D("0.195")


def test_okx_usd_margined_multiplies_the_shares_by_the_index():
    okx = model("okx_options").with_overrides(settlement="linear")
    put = okx.per_unit("put", "short", "60000", "58000", "500", reference_price="60500", margin_factor="1.02")
    otm_share = D(2500) / D(60500)
    assert put.initial == max(D("0.1"), D("0.15") - otm_share) * D("1.02") * 60000 + 500
    assert put.maintenance == max(D("0.03") * 60000, D("0.03") * 500) * D("1.02") + 500
    minimum = okx.sell_to_open_order_margin(put.initial, "1000000", "1", underlying_price="60000",
                                            contract_multiplier="0.01")
    assert minimum == D("0.1") * 60000 * D("0.01")                          # the floor: 0.1 × index per unit


def test_longs_need_no_margin_but_aevo_orders_pay_their_premium():
    for name in ("bitcom", "deribit", "okx_options"):
        long = model(name).per_unit("call", "long", "100", "90", "12", reference_price="100")
        assert (long.initial, long.maintenance) == (0, 0)
    assert model("aevo").per_unit("put", "long", "100", "90", "3").initial == 3


def test_position_tier_factor_grows_with_size():
    tiered = model("bitcom").with_overrides(tiers=(MarginTier(D(0), D(1)), MarginTier(D(100), D("1.02")),
                                                   MarginTier(D(1000), D("1.1"))))
    assert [tiered.margin_factor(n) for n in ("0", "99", "100", "999", "5000")] == [1, 1, D("1.02"), D("1.02"), D("1.1")]
    small = tiered.position("call", "short", "99", "2000", "2200", "10")
    large = tiered.position("call", "short", "100", "2000", "2200", "10")
    assert large.initial / 100 > small.initial / 99                         # margin grows faster than size
    with pytest.raises(InvalidInput) as error:
        tiered.with_overrides(tiers=(MarginTier(D(0), D(2)), MarginTier(D(10), D(1))))
    assert error.value.field == "tiers"


# ------------------------------------------------------------------ properties

prices = st.decimals(min_value=D("0.01"), max_value=D(200000), places=2)
marks = st.decimals(min_value=D(0), max_value=D(5000), places=4)
sizes = st.decimals(min_value=D(0), max_value=D(10000), places=3)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(VENUES), kind=st.sampled_from(["call", "put"]), underlying=prices, strike=prices,
       mark=marks, size=sizes, extra=sizes)
def test_short_margin_is_monotone_in_size_and_never_below_the_mark(name, kind, underlying, strike, mark, size, extra):
    venue = MODELS[name]
    smaller = venue.position(kind, "short", size, underlying, strike, mark, reference_price=underlying)
    larger = venue.position(kind, "short", size + extra, underlying, strike, mark, reference_price=underlying)
    assert larger.initial >= smaller.initial and larger.maintenance >= smaller.maintenance
    per_contract_mark = mark * venue.contract_multiplier
    assert smaller.per_contract.maintenance >= per_contract_mark and smaller.per_contract.initial >= per_contract_mark
    if kind == "call" or venue.put_initial_at_least_maintenance:        # every shipped preset has floor ≥ c
        assert smaller.per_unit.initial >= smaller.per_unit.maintenance


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(VENUES), kind=st.sampled_from(["call", "put"]), underlying=prices, strike=prices,
       mark=marks, step=st.decimals(min_value=D(0), max_value=D(50000), places=2))
def test_further_out_of_the_money_never_needs_more(name, kind, underlying, strike, mark, step):
    venue = MODELS[name]
    further = strike + step if kind == "call" else max(strike - step, D("0.01"))
    near = venue.per_unit(kind, "short", underlying, strike, mark, reference_price=underlying)
    far = venue.per_unit(kind, "short", underlying, further, mark, reference_price=underlying)
    assert far.initial <= near.initial


@pytest.mark.parametrize("field, args", [
    ("underlying_price", ("call", "short", "-1", "100", "1")),
    ("strike", ("put", "short", "100", "0", "1")),
    ("mark_price", ("put", "short", "100", "90", "NaN")),
    ("mark_price", ("put", "short", "100", "90", "1e40")),
    ("kind", ("straddle", "short", "100", "90", "1")),
    ("side", ("call", "sideways", "100", "90", "1")),
])
def test_bad_input_is_refused_naming_the_field(field, args):
    with pytest.raises(InvalidInput) as error:
        model("bitcom").per_unit(*args)
    assert error.value.field == field


def test_bad_preset_values_name_the_field():
    with pytest.raises(InvalidInput) as error:
        StandardOptionMargin.from_table({"im_factor": "0.15", "im_floor_factor": "x", "mm_factor": "0.075"}, "p")
    assert error.value.field == "p.im_floor_factor"
    with pytest.raises(InvalidInput) as error:
        model("bitcom").position("call", "short", "1e30", "100", "90", "1")
    assert error.value.field == "size"


# ------------------------------------------------------------------ Derive's standard manager

SRM = DeriveStandardParams.from_table({
    "max_spot_req": "0.15", "min_spot_req": "0.13", "mm_call_spot_req": "0.09", "mm_put_spot_req": "0.09",
    "mm_put_mtm_req": "0.09", "unpaired_im_scale": "1.2", "unpaired_mm_scale": "1.1", "mm_offset_scale": "1.05"})


def option(kind, strike, amount, value):
    return DeriveOption(OptionKind.parse(kind), D(strike), D(amount), D(value))


def test_derive_isolated_margins_by_hand():
    short_call = option("call", "2200", "-2", "30")          # spot 2000: otm 0.1 → multiplier max(0.05, 0.13)
    assert derive_isolated_margin(short_call, "2000", SRM, initial=True) == D("-0.13") * 2000 * 2 - 60
    assert derive_isolated_margin(short_call, "2000", SRM, initial=False) == -60 - D("0.09") * 2000 * 2
    short_put = option("put", "1900", "-1", "40")            # otm 0.05 → 0.10, floored at 0.13
    mm = min(D("0.09") * 2000 * -1, D("0.09") * -40) - 40
    assert derive_isolated_margin(short_put, "2000", SRM, initial=False) == mm
    assert derive_isolated_margin(short_put, "2000", SRM, initial=True) == min(D("-0.13") * 2000 - 40, mm * D("1.05"))
    assert derive_isolated_margin(option("call", "2200", "3", "30"), "2000", SRM, initial=True) == 0


def test_derive_call_spread_uses_its_bounded_max_loss():
    spread = [option("call", "2000", "-1", "100"), option("call", "2100", "1", "60")]
    result = derive_expiry_margin(spread, "2000", "2010", SRM, initial=True)
    assert result.max_loss == -100                           # worst payoff: settle at or above 2100
    assert result.margin == max(result.isolated, D(-100)) == -100
    assert result.mark_to_market == -40


def test_derive_naked_calls_are_charged_the_unpaired_scale():
    naked = [option("call", "2000", "-1", "100")]
    for initial, scale in ((True, D("1.2")), (False, D("1.1"))):
        result = derive_expiry_margin(naked, "2000", "2010", SRM, initial=initial)
        assert result.max_loss == -scale * 2010
        assert result.margin == max(result.isolated, result.max_loss)


def test_settlement_payoff_of_calls_and_puts():
    book = [option("call", "100", "1", "0"), option("put", "90", "-2", "0")]
    assert settlement_payoff(book, D(120)) == 20
    assert settlement_payoff(book, D(80)) == -20
    with pytest.raises(InvalidInput) as error:
        DeriveStandardParams.from_table({**{k: "0.1" for k in DeriveStandardParams.__dataclass_fields__},
                                         "mm_offset_scale": "0.5", "unpaired_im_scale": "1",
                                         "unpaired_mm_scale": "1"})
    assert error.value.field == "standard_manager.mm_offset_scale"


def test_malformed_tier_tables_are_refused():
    spec = {"im_factor": "0.15", "im_floor_factor": "0.1", "mm_factor": "0.03", "tiers": ["1.02"]}
    with pytest.raises(InvalidInput) as error:
        StandardOptionMargin.from_table(spec, "okx")
    assert error.value.field == "okx.tiers"
    okx = model("okx_options").with_overrides(otm_reference="underlying", put_initial_at_least_maintenance=True)
    assert okx.per_unit("put", "short", "100", "100", "5").initial >= okx.per_unit("put", "short", "100", "100", "5").maintenance


def test_put_floor_that_scales_with_the_mark():
    # OKEx's 2020 rule (and Gate's): short put IM = max(0.1·(1 + mark), 0.15 − OTM/F) + mark, per coin
    old_okex = model("okx_options").with_overrides(put_floor_includes_mark=True, otm_reference="underlying")
    put = old_okex.per_unit("put", "short", "10000", "8000", "0.02", margin_factor="1")
    assert put.initial == D("0.1") * (1 + D("0.02")) + D("0.02")                 # deep OTM: the floor binds
    call = old_okex.per_unit("call", "short", "10000", "12000", "0.02", margin_factor="1")
    assert call.initial == D("0.1") + D("0.02")                                  # calls keep the plain floor
