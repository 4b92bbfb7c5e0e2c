"""Lending and CDP liquidation policies beyond the published vectors, hand-computed.

Every expected number is worked out in the comment beside it from the rule in
../shared/reference/lending-protocols.md (§1 Aave v3, §2 Compound v3, §3 Maker, §4 Liquity v1,
§5 Euler v2, §6 Morpho Blue), in the protocol's own integer units.
"""

from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from solvent.core.errors import InvalidInput, UnknownName
from solvent.policies.lending import RAY, ProtocolRevert, aave, compound, euler, liquity, maker, morpho
from solvent.presets import list_presets, load_preset

SHARED_CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance"
LENDING_PRESETS = ("aave_v3", "compound_v3", "maker", "liquity_v1", "euler_v2", "morpho_blue")


# ============================================================================================
# Presets
# ============================================================================================


@pytest.mark.parametrize("name", LENDING_PRESETS)
def test_lending_presets_load_with_sources_and_no_perpetual_markets(name):
    assert name in list_presets()
    preset = load_preset(name)
    assert preset.title and preset.sources and preset.summary
    assert preset.section("margin")["model"] == "health_factor"
    assert preset.markets == {}


def aave_market(version="3.3"):
    preset = load_preset("aave_v3")
    market = aave.AaveMarket.from_tables(preset.section("liquidation"), preset.section("reserves"),
                                         preset.section("assets"), preset.section("emodes"))
    return market.with_version(version)


def test_presets_build_their_policies():
    market = aave_market()
    assert market.reserves["WETH"].liquidation_threshold_bps == 8300
    assert market.reserves["USDC"].decimals == 6 and market.reserves["WBTC"].decimals == 8
    assert market.reserves["USDC"].liquidation_bonus_bps == 10450
    assert market.emodes[1].applied_to(market.reserves["wstETH"]).liquidation_threshold_bps == 9300
    comets = load_preset("compound_v3").section("comets")
    usdc = compound.market_from_tables(comets, "cUSDCv3")
    assert usdc.assets["WETH"].liquidate_collateral_factor == 895 * 10**15
    assert usdc.target_reserves == 5_000_000 * 10**6
    ilk = maker.ilk_from_tables("ETH-A", load_preset("maker").section("ilks"), load_preset("maker").section("liquidation"))
    assert ilk.chost == 7500 * 113 // 100 * 10**45  # dust · chop = 8,475 DAI in rad
    assert ilk.system_hole == 150_000_000 * 10**45
    assert ilk.price_calc() == maker.StairstepExponentialDecrease(90, 99 * RAY // 100)
    assert liquity.LiquityConfig.from_table(load_preset("liquity_v1").section("trove_manager")) == liquity.LiquityConfig()
    assert morpho.MorphoConfig.from_table(load_preset("morpho_blue").section("liquidation")) == morpho.MorphoConfig()
    assert euler.EulerVaultConfig.from_table(load_preset("euler_v2").section("liquidation")).max_liquidation_discount == 0


# ============================================================================================
# Aave v3
# ============================================================================================


def weth_usdc(weth="10", price="1900", usdc="16000", version="3.3", **collateral):
    market = aave_market(version)
    account = market.account([dict({"asset": "WETH", "amount": weth, "price": price}, **collateral)],
                             [{"asset": "USDC", "amount": usdc, "price": "1"}])
    return account, market.config


def test_health_factor_averages_thresholds_and_is_strict():
    market = aave_market("3.0")
    # 1 WETH @2,000 (LT 83%) + 0.1 WBTC @30,000 (LT 78%): Σ value·LT = 2,000·8300 + 3,000·7800,
    # avg LT = 40,000,000 / 5,000 = 8000 bps; HF = 5,000·80% / 4,000 = 1 exactly: not liquidatable.
    account = market.account([{"asset": "WETH", "amount": "1", "price": "2000"},
                              {"asset": "WBTC", "amount": "0.1", "price": "30000"}],
                             [{"asset": "USDC", "amount": "4000", "price": "1"}])
    data = aave.account_data(account, market.config)
    assert data.average_liquidation_threshold_bps == 8000
    assert data.health_factor == D(1) and not data.liquidatable
    with pytest.raises(ProtocolRevert) as error:
        aave.liquidation_call(account, "WETH", "USDC", "max", market.config)
    assert error.value.reason == "HEALTH_FACTOR_NOT_BELOW_THRESHOLD"
    no_debt = market.account([{"asset": "WETH", "amount": "1", "price": "2000"}], [])
    assert aave.account_data(no_debt, market.config).health_factor is None  # uint256.max


def test_health_factor_v35_rounds_debt_up():
    # 1 wei of WETH debt at $2,000 is worth 2e-15 USD: 0 base units before 3.5, 1 unit (1e-8) from 3.5.
    for version, debt_base in (("3.3", 0), ("3.5", 1)):
        market = aave_market(version)
        account = market.account([{"asset": "USDC", "amount": "1", "price": "1"}],
                                 [{"asset": "WETH", "amount": "0.000000000000000001", "price": "2000"}])
        assert aave.account_data(account, market.config).total_debt_base == debt_base


@pytest.mark.parametrize("health,expected", [
    ("0.95", "1"),                     # at the threshold: 100% (only HF > 0.95 is limited)
    ("0.950000000000000001", "0.5"),   # one wei above: 50%
    ("0.5", "1"),
    ("0.99", "0.5"),
])
def test_close_factor_v30_thresholds(health, expected):
    config = aave_market("3.0").config
    # 3.0 ignores the position's size.
    assert aave.close_factor(health, "1", "1", config) == D(expected)


@pytest.mark.parametrize("health,collateral,debt,expected", [
    ("0.96", "2000", "2000", "0.5"),          # both at the $2,000 threshold (>=) and HF > 0.95
    ("0.96", "1999.99999999", "5000", "1"),   # collateral one base unit short of $2,000
    ("0.96", "5000", "1999.99999999", "1"),   # debt one base unit short
    ("0.95", "5000", "5000", "1"),            # HF not above 0.95
    ("0.950000000000000001", "5000", "5000", "0.5"),
])
def test_close_factor_v33_thresholds(health, collateral, debt, expected):
    assert aave.close_factor(health, collateral, debt, aave_market("3.3").config) == D(expected)


def test_v33_close_factor_applies_to_the_whole_position():
    # 10 WETH @1,900 (LT 83%) = 19,000; debts 12,000 USDC + 4,000 DAI: HF = 15,770/16,000 = 0.985625.
    # 3.0 limits each reserve to 50% of its own debt: 2,000 DAI. 3.3 limits to 50% of the *total*
    # (8,000), which the 4,000 DAI reserve is below: all of it may go.
    rows = ([{"asset": "WETH", "amount": "10", "price": "1900"}],
            [{"asset": "USDC", "amount": "12000", "price": "1"}, {"asset": "DAI", "amount": "4000", "price": "1"}])
    v30, v33 = aave_market("3.0"), aave_market("3.3")
    old = aave.liquidation_call(v30.account(*rows), "WETH", "DAI", "max", v30.config)
    new = aave.liquidation_call(v33.account(*rows), "WETH", "DAI", "max", v33.config)
    assert old.debt_repaid == 2000 * 10**18
    assert new.debt_repaid == 4000 * 10**18
    # base = ⌊4,000/1,900 WETH⌋ = 2.105263157894736842; ×1.05 half up: 2.2105263157894736841 -> ...684
    assert new.collateral_seized == 2_210_526_315_789_473_684
    # And the USDC reserve (12,000 > 8,000) is capped at 50% of the total: 8,000 USDC.
    usdc = aave.liquidation_call(v33.account(*rows), "WETH", "USDC", "max", v33.config)
    assert usdc.max_liquidatable_debt == 8000 * 10**6


def test_collateral_capped_by_the_balance():
    # 1 WETH @1,000 (LT 83%) vs 1,000 USDC: HF 0.83 -> 100%. Repaying 1,000 would seize 1.05 WETH:
    # the whole 1 WETH is taken and the repay shrinks to percentDiv(1,000 USDC, 10500)
    # = 1,000,000,000·10⁴/10,500 = 952,380,952.38 -> 952.380952 USDC (half up).
    account, config = weth_usdc("1", "1000", "1000", "3.0")
    result = aave.liquidation_call(account, "WETH", "USDC", "max", config)
    assert result.collateral_seized == 10**18
    assert result.debt_repaid == 952_380_952
    # bonus = 1 − percentDiv(1, 10500) = 1e18 − 952,380,952,380,952,381 = 47,619,047,619,047,619;
    # fee = 10% of it, half up: 4,761,904,761,904,761.9 -> 4,761,904,761,904,762.
    assert result.protocol_fee == 4_761_904_761_904_762
    assert result.outputs()["liquidator_received"] == D("0.995238095238095238")
    # 3.0 books no deficit: 47.619048 USDC of debt remain against no collateral, HF 0.
    assert result.deficits == {} and result.after.health_factor == 0
    assert result.account_after.holding("debt", "USDC").amount == 47_619_048


def test_v33_books_the_deficit_when_no_collateral_is_left():
    # Same account under 3.3: the remaining 47.619048 USDC is burned into USDC's deficit.
    account, config = weth_usdc("1", "1000", "1000", "3.3")
    result = aave.liquidation_call(account, "WETH", "USDC", "max", config)
    assert result.deficits == {"USDC": 47_619_048}
    assert result.outputs()["deficit"] == D("47.619048")
    assert result.after.health_factor is None and result.after.total_debt_base == 0
    # 3.5 rounds the reduced repay up (952,380,952.38 -> 952,380,953): one unit less of deficit.
    account, config = weth_usdc("1", "1000", "1000", "3.5")
    assert aave.liquidation_call(account, "WETH", "USDC", "max", config).deficits == {"USDC": 47_619_047}


def test_deficit_covers_every_borrowed_reserve():
    market = aave_market("3.3")
    # 1 WETH @1,000 vs 1,000 USDC + 200 DAI: liquidating USDC takes the only collateral; the rest of
    # USDC (47.619048) and all 200 DAI become deficits.
    account = market.account([{"asset": "WETH", "amount": "1", "price": "1000"}],
                             [{"asset": "USDC", "amount": "1000", "price": "1"},
                              {"asset": "DAI", "amount": "200", "price": "1"}])
    result = aave.liquidation_call(account, "WETH", "USDC", "max", market.config)
    assert result.deficits == {"USDC": 47_619_048, "DAI": 200 * 10**18}
    assert result.outputs()["deficits"] == {"USDC": D("47.619048"), "DAI": D(200)}


def test_v33_dust_rule():
    # 2.2 WETH @1,000 (2,200) vs 2,100 USDC: HF 1,826/2,100 = 0.8695 -> 100%.
    account, config = weth_usdc("2.2", "1000", "2100", "3.3")
    # Repaying 1,200 seizes 1.26 WETH and leaves $940 of collateral and $900 of debt: both < $1,000.
    with pytest.raises(ProtocolRevert) as error:
        aave.liquidation_call(account, "WETH", "USDC", "1200", config)
    assert error.value.reason == "MUST_NOT_LEAVE_DUST"
    # 3.0 has no such rule.
    old_account, old_config = weth_usdc("2.2", "1000", "2100", "3.0")
    assert aave.liquidation_call(old_account, "WETH", "USDC", "1200", old_config).debt_repaid == 1200 * 10**6
    # A small call leaving $2,095 and $2,000 is fine.
    assert aave.liquidation_call(account, "WETH", "USDC", "100", config).collateral_seized == 105 * 10**15
    # Taking all the collateral is fine too: 2.205 WETH > 2.2, so 2.2 for 2,095.238095 USDC; the
    # 4.761905 left is a deficit.
    result = aave.liquidation_call(account, "WETH", "USDC", "max", config)
    assert result.collateral_seized == 22 * 10**17 and result.debt_repaid == 2_095_238_095
    assert result.deficits == {"USDC": 4_761_905}


def test_v37_rounding_lets_the_liquidator_absorb_it():
    # Repay 1,000 USDC against WETH @1,900 (LB 1.05, fee 10%): base = ⌊1,000/1,900⌋ = 0.526315789473684210.
    # ×1.05 = 0.5526315789473684205: half up ...421 (3.0–3.6), floor ...420 (3.7).
    # bonus: 3.3 = 421 − halfup(526,315,789,473,684,210.48) = 26,315,789,473,684,211 -> fee 2,631,578,947,368,421.1
    # -> ...421; 3.7 = 420 − ⌊526,315,789,473,684,209.5⌋ = 26,315,789,473,684,211 -> fee ceil ...422.
    old = aave.liquidation_call(*weth_usdc(version="3.3")[:1], "WETH", "USDC", "1000", weth_usdc(version="3.3")[1])
    new = aave.liquidation_call(*weth_usdc(version="3.7")[:1], "WETH", "USDC", "1000", weth_usdc(version="3.7")[1])
    assert (old.collateral_seized, old.protocol_fee) == (552_631_578_947_368_421, 2_631_578_947_368_421)
    assert (new.collateral_seized, new.protocol_fee) == (552_631_578_947_368_420, 2_631_578_947_368_422)


def test_emode_replaces_threshold_and_bonus():
    market = aave_market("3.3")
    # 1 wstETH @2,000 in e-mode 1 (LT 93%, LB 1.01) vs 1,900 USDC: HF = 1,860/1,900 = 0.978947...
    account = market.account([{"asset": "wstETH", "amount": "1", "price": "2000"}],
                             [{"asset": "USDC", "amount": "1900", "price": "1"}], emode=1)
    data = aave.account_data(account, market.config)
    assert data.liquidatable and data.average_liquidation_threshold_bps == 9300
    # Outside e-mode the same account (LT 81%) is far below 1: 1,620/1,900.
    plain = market.account([{"asset": "wstETH", "amount": "1", "price": "2000"}],
                           [{"asset": "USDC", "amount": "1900", "price": "1"}])
    assert aave.account_data(plain, market.config).average_liquidation_threshold_bps == 8100
    with pytest.raises(UnknownName):
        market.account([{"asset": "WETH", "amount": "1", "price": "1"}], [], emode=7)


def test_toxic_ltv_condition():
    # LB 1.05: a liquidation lowers HF iff debt·1.05 > collateral, i.e. LTV > 1/1.05 = 0.952380...
    assert aave.toxic_ltv("1.05") == D(1) / D("1.05")
    assert aave.liquidation_worsens_health("100", "96", "1.05")       # 100.8 > 100
    assert not aave.liquidation_worsens_health("100", "95", "1.05")   # 99.75 < 100
    assert not aave.liquidation_worsens_health("105", "100", "1.05")  # equality: HF unchanged


@settings(max_examples=150, deadline=None)
@given(
    price=st.integers(min_value=100, max_value=5000),
    bonus_bps=st.integers(min_value=10_100, max_value=11_500),
    lt_fraction=st.floats(min_value=0.6, max_value=1.0),
    debt_fraction=st.floats(min_value=0.0, max_value=1.0),
    cover_fraction=st.floats(min_value=0.01, max_value=1.0),
)
def test_aave_liquidation_helps_below_the_toxic_ltv_and_hurts_above(price, bonus_bps, lt_fraction, debt_fraction,
                                                                    cover_fraction):
    # One collateral (10 WETH) and one debt (USDC): LT·LB ≤ 100% as Aave's configurator requires,
    # debt between LT·C (so HF < 1) and 1.2·C (deeply underwater).
    collateral = D(10 * price)
    lb = D(bonus_bps) / 10_000
    lt_bps = max(1, int(D(lt_fraction) * (D(10_000) / lb)))
    lt = D(lt_bps) / 10_000
    low, high = collateral * lt, collateral * D("1.2")
    debt = (low + (high - low) * D(debt_fraction)).quantize(D("0.000001"))
    toxic_ltv = 1 / lb
    ltv = debt / collateral
    assume(abs(ltv - toxic_ltv) > D("0.0001") and debt > low * D("1.0001"))
    market = aave_market("3.0")
    account = market.account([{"asset": "WETH", "amount": "10", "price": str(price),
                                "liquidation_threshold": str(lt), "liquidation_bonus": str(lb)}],
                              [{"asset": "USDC", "amount": str(debt), "price": "1"}])
    cover = (debt * D("0.5") * D(cover_fraction)).quantize(D("0.000001"))
    result = aave.liquidation_call(account, "WETH", "USDC", str(cover), market.config)
    worsens = aave.liquidation_worsens_health(collateral, debt, lb)
    assert worsens == (ltv > toxic_ltv)
    if worsens:
        assert result.after.health_factor_wad < result.before.health_factor_wad
    else:
        assert result.after.health_factor_wad >= result.before.health_factor_wad


def test_aave_bad_input_names_fields():
    market = aave_market()
    cases = [
        (lambda: market.account([{"asset": "WETH", "amount": "-1", "price": "1"}], []), "collateral[0].amount"),
        (lambda: market.account([{"asset": "WETH", "amount": "1", "price": "abc"}], []), "collateral[0].price"),
        (lambda: market.account([{"asset": "WETH", "amount": "1", "price": "1", "liquidation_threshold": "1.2"}], []),
         "collateral[0].liquidation_threshold"),
        (lambda: market.account([], [{"asset": "USDC", "amount": "0.0000001", "price": "1"}]), "debt[0].amount"),
        (lambda: market.account([{"asset": "WETH", "price": "1"}], []), "collateral[0].amount"),
        (lambda: aave.AaveVersion.parse("2.0"), "version"),
        (lambda: aave.close_factor("0.9x", config=market.config), "health_factor"),
        (lambda: aave.liquidation_worsens_health("1", "1", "0.9"), "liquidation_bonus"),
        (lambda: market.account([{"asset": "WETH", "amount": 1.5, "price": "1"}], []), "collateral[0].amount"),
    ]
    for make, field in cases:
        with pytest.raises(InvalidInput) as error:
            make()
        assert error.value.field == field
    account, config = weth_usdc()
    with pytest.raises(UnknownName):
        aave.liquidation_call(account, "WBTC", "USDC", "max", config)
    with pytest.raises(InvalidInput) as error:
        aave.liquidation_call(account, "WETH", "USDC", "-5", config)
    assert error.value.field == "debt_to_cover"
    bad = aave.AaveReserve.from_values("X", liquidation_threshold="0.9", liquidation_bonus="1.15")
    with pytest.raises(InvalidInput) as error:
        bad.check_configuration()  # 0.9 × 1.15 > 100%
    assert error.value.field == "reserves[X].liquidation_bonus"


# ============================================================================================
# Compound v3
# ============================================================================================


def cusdc():
    return compound.market_from_tables(load_preset("compound_v3").section("comets"), "cUSDCv3")


def test_absorb_at_the_liquidation_factor():
    market = cusdc()
    # 1 WETH @3,000 with LF 0.95 credits 2,850 USDC. Debt 2,900: balance floored at 0, reserves pay 2,900.
    short = market.absorb("2900", "1", [{"asset": "WETH", "amount": "1", "price": "3000"}])
    assert short.balance_after == 0 and short.reserves_delta == -2_900_000_000
    assert short.penalty_value == 150 * 10**8  # 5% of 3,000 withheld
    # Debt 2,000: the account keeps 850 as a supply balance; reserves pay 2,850.
    surplus = market.absorb("2000", "1", [{"asset": "WETH", "amount": "1", "price": "3000"}])
    assert surplus.outputs()["balance_after"] == D(850) and surplus.outputs()["reserves_delta"] == D(-2850)
    assert surplus.seized == {"WETH": 10**18}
    # A row's own factor overrides the preset's.
    assert market.absorb("2000", "1", [{"asset": "WETH", "amount": "1", "price": "3000",
                                        "liquidation_factor": "0.9"}]).balance_after == 700_000_000


def test_comet_liquidatable_is_strict_at_the_liquidate_factor():
    market = cusdc()
    weth = market.holdings([{"asset": "WETH", "amount": "1", "price": "3000"}])  # 3,000 × 0.895 = 2,685
    assert not compound.is_liquidatable(2_685_000_000, 10**8, weth)
    assert compound.is_liquidatable(2_685_000_001, 10**8, weth)
    assert compound.is_borrow_collateralized(2_475_000_000, 10**8, weth)  # 3,000 × 0.825
    assert not compound.is_borrow_collateralized(2_475_000_001, 10**8, weth)


def test_store_front_discount_and_quote():
    assert compound.store_front_discount("0.95", "0.5") == D("0.025")  # half of the 5% penalty
    # WETH @2,000 at 2.5% off = 1,950: 1,950 USDC buys exactly 1 WETH (preset LF and SFPF).
    assert cusdc().quote("2000", "1", "1950", asset="WETH") == D(1)
    with pytest.raises(ProtocolRevert) as error:
        compound.buy_collateral(10**18, reserves=5, target_reserves=5, collateral_reserves=10**18)
    assert error.value.reason == "NotForSale"
    with pytest.raises(ProtocolRevert):
        compound.buy_collateral(10**18, reserves=0, target_reserves=5, collateral_reserves=10**17)
    assert compound.buy_collateral(10**17, reserves=-3, target_reserves=5, collateral_reserves=10**18) == 10**17


def test_compound_bad_input_names_fields():
    market = cusdc()
    with pytest.raises(InvalidInput) as error:
        market.absorb("10", "1", [{"asset": "WETH", "amount": "1", "price": "0"}])
    assert error.value.field == "collateral[0].price"
    with pytest.raises(InvalidInput) as error:
        compound.quote_collateral("1", "1", "0.95001", "0.5", "1")  # finer than 4 decimals
    assert error.value.field == "liquidation_factor"
    with pytest.raises(InvalidInput) as error:
        compound.quote_collateral("1", "1", "0.9", "1.5", "1")
    assert error.value.field == "store_front_price_factor"


# ============================================================================================
# Maker
# ============================================================================================


def test_linear_decrease_boundaries():
    calc = maker.LinearDecrease(3600)
    top = 1000 * RAY
    assert calc.price(top, 0) == top
    # (tau − dur)·RAY/tau is truncated first (0.000277777777777777777777777), then rmul by top:
    assert calc.price(top, 3599) == 277_777_777_777_777_777_777_777_000
    assert calc.price(top, 3600) == 0 and calc.price(top, 10_000) == 0


def test_stairstep_decrease_boundaries():
    calc = maker.StairstepExponentialDecrease(90, 99 * RAY // 100)
    top = 1000 * RAY
    assert calc.price(top, 0) == top
    assert calc.price(top, 89) == top               # still the first step
    assert calc.price(top, 90) == 990 * RAY         # one cut
    assert calc.price(top, 180) == 9801 * RAY // 10  # 0.99² = 0.9801 exactly in ray


def test_exponential_decrease_and_rpow_rounding():
    calc = maker.ExponentialDecrease(99 * RAY // 100)
    assert calc.price(1000 * RAY, 0) == 1000 * RAY
    assert calc.price(1000 * RAY, 2) == 9801 * RAY // 10
    # rpow rounds each product half up: 0.3² in base 10 is 0.09 -> 0.1 (1/10).
    assert maker.rpow(3, 2, 10) == 1
    assert maker.rpow(0, 0, RAY) == RAY and maker.rpow(0, 5, RAY) == 0
    # Preset parameters fill the ones a case leaves out (ETH-A: step 90, cut 0.99).
    assert maker.price_calc({"calc": "stairstep"}, defaults={"calc": "stairstep", "step": 90, "cut": "0.99"}) \
        == maker.StairstepExponentialDecrease(90, 99 * RAY // 100)
    with pytest.raises(InvalidInput) as error:
        maker.price_calc({"calc": "linear"}, "auction", defaults={"calc": "stairstep", "step": 90, "cut": "0.99"})
    assert error.value.field == "auction.tau"


TEST_ILK = maker.MakerIlk("TEST", mat=2 * RAY, chop=11 * 10**17, dust=20 * 10**45, buf=125 * RAY // 100,
                          calc={"calc": "stairstep", "step": 1, "cut": "0.99"})


def test_bark_partial_or_whole_by_the_room():
    # ink 40, art 100, rate 1, price 4, mat 2: spot 2, 80 < 100 -> unsafe.
    # Room 55 DAI: dart = 55/1/1.1 = 50, remainder 50 ≥ dust 20 -> partial: 20 collateral, tab 55.
    partial = maker.bark_vault("40", "100", "1", "4", TEST_ILK, "55")
    assert partial.outputs()["tab"] == D(55) and partial.dink == 20 * 10**18
    assert (partial.ink_after, partial.art_after) == (20 * 10**18, 50 * 10**18)
    # Room 100: dart = 90.909090909090909090, remainder 9.09 < dust -> the whole vault, tab 110.
    whole = maker.bark_vault("40", "100", "1", "4", TEST_ILK, "100")
    assert whole.dart == 100 * 10**18 and whole.tab == 110 * 10**45
    # Room 20: dart = 18.18 leaves 81.8 (fine) but would start an auction below dust -> revert.
    with pytest.raises(ProtocolRevert) as error:
        maker.bark_vault("40", "100", "1", "4", TEST_ILK, "20")
    assert error.value.reason == "Dog/dusty-auction-from-partial-liquidation"
    # Price 6: spot 3, 120 ≥ 100 -> safe.
    with pytest.raises(ProtocolRevert) as error:
        maker.bark_vault("40", "100", "1", "6", TEST_ILK, "1000")
    assert error.value.reason == "Dog/not-unsafe"


def test_room_from_hole_and_dirt():
    ilk = maker.MakerIlk("T", mat=2 * RAY, hole=50 * 10**45, system_hole=100 * 10**45,
                         calc={"calc": "linear", "tau": 3600})
    assert maker.liquidation_room(100, 30, 50, 40) == 10
    with pytest.raises(ProtocolRevert):
        maker.liquidation_room(100, 30, 50, 50)
    # Dirt 30 of Hole 100, dirt 20 of hole 50: room 30 -> dart 30 of 100 (chop 1, dust 0).
    result = maker.bark_vault("40", "100", "1", "4", ilk, system_dirt="30", dirt="20")
    assert result.dart == 30 * 10**18 and result.dink == 12 * 10**18


def auction(tab="110", lot="40", **kwargs):
    return maker.Auction.parse(tab, lot, "5", maker.StairstepExponentialDecrease(1, 99 * RAY // 100), **kwargs)


def test_take_never_leaves_a_dusty_tab():
    # Price 5: buying 18 owes 90 and would leave 20 < chost 22; owe is cut to 110 − 22 = 88,
    # slice = 88/5 = 17.6. A second buyer then covers the 22 with 4.4 and 18 go back to the owner.
    result = maker.run_takes(auction(), [{"elapsed": "0", "amt": "18", "max": "5"},
                                         {"elapsed": "0", "amt": "100", "max": "5"}], "22")
    first, second = result.takes
    assert (first.owe, first.slice, first.tab_after) == (88 * 10**45, 176 * 10**17, 22 * 10**45)
    assert (second.owe, second.slice) == (22 * 10**45, 44 * 10**17)
    assert result.returned_to_owner == 18 * 10**18 and result.lot == 0 and not result.running


def test_take_rules_that_revert():
    # A tab at or below chost cannot be bought in part.
    with pytest.raises(ProtocolRevert) as error:
        maker.run_takes(auction(tab="20"), [{"elapsed": "0", "amt": "1", "max": "5"}], "22")
    assert error.value.reason == "Clipper/no-partial-purchase"
    # ... but the whole lot can (owe 20, slice 4).
    whole = maker.run_takes(auction(tab="20"), [{"elapsed": "0", "amt": "40", "max": "5"}], "22")
    assert whole.takes[0].slice == 4 * 10**18 and whole.returned_to_owner == 36 * 10**18
    with pytest.raises(ProtocolRevert) as error:
        maker.run_takes(auction(), [{"elapsed": "0", "amt": "1", "max": "4.99"}], "22")
    assert error.value.reason == "Clipper/too-expensive"
    with pytest.raises(ProtocolRevert) as error:  # tail 10 s
        maker.run_takes(auction(tail="10"), [{"elapsed": "11", "amt": "1", "max": "5"}], "22")
    assert error.value.reason == "Clipper/needs-reset"
    with pytest.raises(ProtocolRevert):  # cusp 0.9: after 11 s the price is 0.99¹¹ = 0.895 of top
        maker.run_takes(auction(cusp="0.9"), [{"elapsed": "11", "amt": "1", "max": "5"}], "22")
    with pytest.raises(ProtocolRevert) as error:
        maker.run_takes(auction(), [{"elapsed": "0", "amt": "40", "max": "5"},
                                    {"elapsed": "1", "amt": "1", "max": "5"}], "22")
    assert error.value.reason == "Clipper/not-running-auction"


def test_take_of_the_whole_lot_leaves_an_uncovered_tab():
    # Lot 10 at 5 raises 50 of a 110 tab: the auction ends, 60 DAI stay as the vow's bad debt.
    result = maker.run_takes(auction(lot="10"), [{"elapsed": "0", "amt": "10", "max": "5"}], "22")
    assert result.tab == 60 * 10**45 and result.lot == 0 and result.returned_to_owner == 0
    assert result.takes[0].dirt_released == 110 * 10**45  # Dirt drops by the whole tab


def test_maker_bad_input_names_fields():
    with pytest.raises(InvalidInput) as error:
        maker.bark_vault("40", "100", "1", "4", TEST_ILK, "-1")
    assert error.value.field == "hole_room"
    with pytest.raises(InvalidInput) as error:
        maker.MakerIlk.from_table("X", {"chop": "0.9"})
    assert error.value.field == "ilks[X].chop"
    with pytest.raises(InvalidInput) as error:
        maker.price_calc({"calc": "quadratic"}, "auction")
    assert error.value.field == "auction.calc"
    with pytest.raises(InvalidInput) as error:
        maker.run_takes(auction(), [{"elapsed": "0", "amt": "1"}], "22")
    assert error.value.field == "takes[0].max"


# ============================================================================================
# Liquity v1
# ============================================================================================

E18 = 10**18


def test_normal_mode_offset_and_redistribution_split():
    # 10 ETH @1,050 vs 10,000 LUSD: ICR 1.05 < 1.1. Gas 0.05 ETH; 9.95 left. Pool 6,000 offsets
    # 6,000 of debt with 9.95·0.6 = 5.97 ETH; 4,000 LUSD and 3.98 ETH are redistributed.
    result = liquity.liquidate("10", "10000", "1050", "6000", mode="normal")
    out = result.outputs()
    assert out["gas_comp_coll"] == D("0.05") and out["gas_comp_lusd"] == D(200)
    assert (out["offset_debt"], out["coll_to_sp"]) == (D(6000), D("5.97"))
    assert (out["redistributed_debt"], out["redistributed_coll"]) == (D(4000), D("3.98"))
    # An empty pool redistributes everything.
    empty = liquity.liquidate("10", "10000", "1050", "0", mode="normal")
    assert (empty.redistributed_debt, empty.redistributed_coll) == (10_000 * E18, 995 * E18 // 100)
    # ICR ≥ 110%: nothing happens.
    assert not liquity.liquidate("11", "10000", "1000", "6000", mode="normal").liquidated


def test_recovery_mode_capped_offset_between_mcr_and_tcr():
    # 12 ETH @1,000 vs 10,000 LUSD: ICR 1.2, TCR 1.3, pool 20,000 ≥ debt. Collateral worth
    # 10,000·1.1 = 11 ETH is offset (gas 0.055 of it, 10.945 to the pool); 1 ETH is the borrower's surplus.
    result = liquity.liquidate("12", "10000", "1000", "20000", mode="recovery", tcr="1.3")
    assert result.rule == "capped_offset"
    assert (result.gas_comp_coll, result.coll_to_sp) == (55 * E18 // 1000, 10_945 * E18 // 1000)
    assert result.offset_debt == 10_000 * E18 and result.surplus_coll == E18
    assert result.redistributed_debt == result.redistributed_coll == 0
    # Not liquidated when the pool cannot absorb the whole debt, or when ICR ≥ TCR.
    assert not liquity.liquidate("12", "10000", "1000", "9999", mode="recovery", tcr="1.3").liquidated
    assert not liquity.liquidate("12", "10000", "1000", "20000", mode="recovery", tcr="1.2").liquidated
    # 100% < ICR < MCR in recovery mode: the normal offset.
    assert liquity.liquidate("10.5", "10000", "1000", "20000", mode="recovery", tcr="1.3").rule == "offset"
    # The mode follows from the TCR when not given (1.4 < CCR 1.5).
    assert liquity.liquidate("12", "10000", "1000", "20000", tcr="1.4").rule == "capped_offset"
    # The last trove is never liquidated in recovery mode.
    assert not liquity.liquidate("5", "10000", "1000", "20000", mode="recovery", tcr="1.3",
                                 last_trove=True).liquidated


def test_liquity_bad_input_names_fields():
    for kwargs, field in (({"mode": "panic"}, "mode"), ({"mode": "recovery"}, "tcr"), ({}, "mode")):
        with pytest.raises(InvalidInput) as error:
            liquity.liquidate("1", "100", "100", "0", **kwargs)
        assert error.value.field == field
    with pytest.raises(InvalidInput) as error:
        liquity.liquidate("1", "0", "100", "0", mode="normal")
    assert error.value.field == "debt"


# ============================================================================================
# Euler v2
# ============================================================================================


def test_euler_discount_is_unhealthiness_capped():
    # Health 0.8 (100 × 0.8 / 100) would mean a 20% discount; the cap 15% holds it at 0.85.
    # Yield for the full 100 of liability = 100/0.85 = 117.6 > the 100 of collateral: all of it,
    # for a repay of 100 × 0.85 = 85.
    capped = euler.liquidation("100", "100", "0.8", "0.15", "100", "1")
    assert capped.discount == D("0.15")
    assert capped.outputs()["repay"] == D(85) and capped.outputs()["yield"] == D(100)
    # Below the cap: health 0.9 -> discount 10%.
    assert euler.liquidation("100", "100", "0.9", "0.2", "100", "1").discount == D("0.1")
    # At adjusted == liability the account is in violation with no discount (≤, not <).
    even = euler.liquidation("100", "90", "0.9", "0.2", "200", "1")
    assert even.violation and even.discount == 0 and even.yield_ == 90 * E18
    # Healthy: nothing.
    healthy = euler.liquidation("100", "89", "0.9", "0.2", "100", "1")
    assert not healthy.violation and healthy.repay == healthy.yield_ == 0


def test_euler_partial_repay_and_worthless_collateral():
    # Health 0.9: max repay 100 yields 111.11…; repaying 50 yields half of it.
    full = euler.liquidation("100", "100", "0.9", "0.2", "200", "1")
    half = euler.liquidation("100", "100", "0.9", "0.2", "200", "1", repay="50")
    assert half.yield_ == 50 * E18 * full.yield_ // (100 * E18)
    with pytest.raises(ProtocolRevert):
        euler.liquidation("100", "100", "0.9", "0.2", "200", "1", repay="101")
    free = euler.liquidation("100", "100", "0.9", "0.2", "7", "0")
    assert free.repay == 0 and free.yield_ == 7 * E18
    assert euler.ramped_ltv("0.8", "0.9", "50", "100") == D("0.85")
    assert euler.ramped_ltv("0.9", "0.8", "50", "100") == D("0.9")  # increases are immediate


def test_euler_bad_input_names_fields():
    for args, field in ((("100", "100", "0.9", "1", "1", "1"), "max_discount"),
                        (("100", "100", "1.1", "0.2", "1", "1"), "ltv"),
                        (("100", "-1", "0.9", "0.2", "1", "1"), "liability_value")):
        with pytest.raises(InvalidInput) as error:
            euler.liquidation(*args)
        assert error.value.field == field


# ============================================================================================
# Morpho Blue
# ============================================================================================


@pytest.mark.parametrize("lltv,lif", [
    ("0.385", "1.15"),                  # 1/(0.7 + 0.1155) = 1.226 -> capped at 1.15
    ("0.5", "1.15"),                    # 1/0.85 = 1.176 -> capped
    ("0.625", "1.126760563380281690"),  # 1/0.8875, rounded down
    ("0.77", "1.074113856068743286"),   # 1/0.931
    ("0.86", "1.043841336116910229"),   # 1/0.958
    ("0.915", "1.026167265264238070"),  # 1/0.9745
    ("0.98", "1.006036217303822937"),   # 1/0.994
    ("0", "1.15"),
])
def test_morpho_lif(lltv, lif):
    assert morpho.liquidation_incentive_factor(lltv) == D(lif)


def test_morpho_liquidate_and_bad_debt():
    # 1 collateral @100 (LLTV 0.86, LIF 1.043841…) against 90 borrowed: 86 < 90 -> liquidatable.
    # Repay 10: seized = ⌊10·LIF⌋/100 = 0.104384133611691022 collateral.
    partial = morpho.liquidate("1", "90", "100", "0.86", repaid="10")
    assert partial.seized == 104_384_133_611_691_022 and partial.bad_debt == 0
    # Seizing all 1 collateral repays ⌈100/LIF⌉: LIF is rounded down, so 100/1.043841336116910229
    # = 95.8000000000000000592…, rounded up to 95.800000000000000060; 90 borrowed is less than that,
    # so it cannot. With 97 borrowed it can, and the 1.19999999999999994 left is bad debt.
    with pytest.raises(ProtocolRevert):
        morpho.liquidate("1", "90", "100", "0.86", seized="1")
    underwater = morpho.liquidate("1", "97", "100", "0.86", seized="1")
    assert underwater.repaid == 95_800_000_000_000_000_060
    assert underwater.bad_debt == 1_199_999_999_999_999_940
    assert underwater.borrowed_after == 0 and underwater.collateral_after == 0
    with pytest.raises(ProtocolRevert):  # healthy: 86 ≥ 80
        morpho.liquidate("1", "80", "100", "0.86", repaid="1")
    assert morpho.bad_debt_ltv("0.86") == 1 / D("1.043841336116910229")


def test_morpho_bad_input_names_fields():
    with pytest.raises(InvalidInput) as error:
        morpho.liquidation_incentive_factor("1")
    assert error.value.field == "lltv"
    with pytest.raises(InvalidInput) as error:
        morpho.liquidation_incentive_factor("0.8x")
    assert error.value.field == "lltv"


# ============================================================================================
# The published vectors, through the checks
# ============================================================================================


@pytest.mark.skipif(not (SHARED_CONFORMANCE / "lending.json").is_file(), reason="shared/conformance not beside")
def test_every_lending_vector_passes():
    import solvent.conformance.checks_lending  # noqa: F401  (registers the lending checks)
    from solvent.conformance.runner import run_paths

    results = run_paths([SHARED_CONFORMANCE / "lending.json"])
    assert len(results) >= 24
    failures = [f"{r.id}: {r.message}" for r in results if not r.passed]
    assert not failures, "\n".join(failures)
