"""Liquidation policies beyond the published vectors: dYdX, Drift and ADL, hand-computed.

Every expected number below is worked out in the comment beside it from the rule in
../shared/reference/perp-venues.md (§1.5, §2.5, §4.5, §5.3–5.5, §6.3–6.5).
"""

from decimal import Decimal as D
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.core.domain import Side
from solvent.core.errors import InvalidInput, UnknownName
from solvent.policies import adl, drift, dydx
from solvent.policies.margin import LiquidityTier
from solvent.presets import load_preset

SHARED_CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance"

# dYdX's code-default fillable-price settings (BA 1, SMMR 10%, max fee 0.5%) with mainnet block limits.
DEFAULT_TABLE = {
    "max_liquidation_fee": "0.005", "bankruptcy_adjustment": "1", "spread_to_maintenance_margin_ratio": "0.1",
    "min_position_notional_liquidated": "1000", "max_position_portion_liquidated": "0.1",
    "max_notional_liquidated": "100000", "max_insurance_lost": "1000000",
}
CONFIG = dydx.DydxLiquidationConfig.from_table(DEFAULT_TABLE)
ETH = {"market": "ETH-USD", "oracle_price": "3000", "imf": "0.2", "mmf": "0.1"}
BTC = {"market": "BTC-USD", "oracle_price": "50000", "imf": "0.05", "mmf": "0.03"}


def subaccount(quote, *positions):
    return dydx.Subaccount.parse(list(positions), quote)


def short_eth(size="1", quote="3250"):
    # NC = −3000·size USDC, MM = ⌈⌈3000·size·0.2⌉·0.5⌉ = 300·size USDC.
    return subaccount(quote, dict(ETH, side="short", size=size))


# ------------------------------------------------------------------------------- dYdX


def test_short_totals_and_trigger():
    account = short_eth()  # TNC = 3250 − 3000 = 250 USDC, TMMR = 300 USDC
    assert account.net_collateral() == 250_000_000
    assert account.maintenance_requirement() == 300_000_000
    assert dydx.is_liquidatable(account.net_collateral(), account.maintenance_requirement())
    assert not dydx.is_liquidatable(300_000_000, 300_000_000)  # TNC == TMMR is not below
    assert not dydx.is_liquidatable(-5, 0)  # no requirement, nothing to liquidate


def test_short_bankruptcy_quote():
    # Closing the whole short: ΔNC = +3000, |ΔMMR| = 300 = TMMR, so BQ = −3000 − 250 = −3250 USDC:
    # the account pays 3250 to buy back 1 ETH, its bankruptcy price.
    assert dydx.bankruptcy_quote(short_eth(), "ETH-USD", "1") == -3_250_000_000
    # Half: ΔNC = +1500, |ΔMMR| = 150 -> BQ = −1500 − 250·150/300 = −1625 USDC.
    assert dydx.bankruptcy_quote(short_eth(), "ETH-USD", "0.5") == -1_625_000_000


def test_short_fillable_price_is_above_the_oracle():
    # ABR = 1 − 250/300 = 1/6; spread = 1/6 · 0.1 · 300 = 5 USDC; (−3000 − 5) / −1 = 3005.
    assert dydx.fillable_price(short_eth(), "ETH-USD", CONFIG) == D("3005")
    # SMMR 1: spread 50 -> 3050. TNC <= 0: ABR clamps at 1 -> spread SMMR·MM = 30 -> 3030.
    assert dydx.fillable_price(short_eth(), "ETH-USD", CONFIG.with_rates(spread_to_maintenance_margin_ratio="1")) == 3050
    assert dydx.fillable_price(short_eth(quote="2900"), "ETH-USD", CONFIG) == D("3030")
    # At TNC == TMMR the spread is zero: the oracle price.
    assert dydx.fillable_price(short_eth(quote="3300"), "ETH-USD", CONFIG) == D("3000")


def test_fillable_price_rounding_for_longs_and_shorts():
    # 3 ETH short, quote 9700: TNC 700, TMMR 900, ABR 2/9, spread 2/9·0.1·900 = 20 -> 9020/3 = 3006.67 (repeating).
    account = short_eth(size="3", quote="9700")
    assert dydx.fillable_price_exact(account, "ETH-USD", CONFIG) == Fraction(9020, 3)
    assert dydx.fillable_price(account, "ETH-USD", CONFIG) == D("3006.666666666666666666")  # down for a short
    assert dydx.fillable_price(account, "ETH-USD", CONFIG, tick="0.1") == D("3006.6")
    # The mirror long (3 ETH long, quote −8300: TNC 700): (9000 − 20)/3 = 2993.33…, rounded up.
    long = subaccount("-8300", dict(ETH, side="long", size="3"))
    assert dydx.fillable_price(long, "ETH-USD", CONFIG) == D("2993.333333333333333334")
    assert dydx.fillable_price(long, "ETH-USD", CONFIG, tick="0.1") == D("2993.4")


@settings(max_examples=300, deadline=None)
@given(size=st.decimals(min_value=D("-1e6"), max_value=D("1e6"), places=9, allow_nan=False).filter(bool),
       price=st.decimals(min_value=D("1e-9"), max_value=D("1e7"), places=9, allow_nan=False))
def test_net_notional_truncates_the_exact_product_toward_zero(size, price):
    position = dydx.DydxPosition("X-USD", size, price, LiquidityTier.from_rates(imf="0.05", mmf="0.03"))
    exact = Fraction(size) * Fraction(price) * 10**6
    assert position.net_notional() == int(exact)  # int() of a Fraction truncates toward zero


def test_multi_position_bankruptcy_shares_tnc_by_mmr():
    # BTC long 0.1 @ 50,000 (MM ⌈⌈5000·0.05⌉·0.6⌉ = 150) and ETH short 1 @ 3,000 (MM 300), quote −1600:
    # TNC = 5000 − 3000 − 1600 = 400, TMMR = 450.
    account = subaccount("-1600", dict(BTC, side="long", size="0.1"), dict(ETH, side="short", size="1"))
    assert (account.net_collateral(), account.maintenance_requirement()) == (400_000_000, 450_000_000)
    # BTC: 5000 − 400·150/450 = 4866.666666⅔ -> rounded toward +inf: 4,866,666,667 quantums.
    assert dydx.bankruptcy_quote(account, "BTC-USD", "-0.1") == 4_866_666_667
    # ETH: −3000 − 400·300/450 = −3266.666666⅔ -> toward +inf: −3,266,666,666.
    assert dydx.bankruptcy_quote(account, "ETH-USD", "1") == -3_266_666_666
    # The two shares of TNC never hand out more than TNC.
    btc_share = 5_000_000_000 - 4_866_666_667
    eth_share = -3_000_000_000 + 3_266_666_666
    assert btc_share + eth_share <= account.net_collateral()


def test_negative_tnc_bankruptcy_rounds_toward_plus_infinity():
    # Long 0.1 BTC (imf 0.2, mmf 0.1: MM 500), quote −5100.000001: TNC = −100.000001 USDC.
    account = subaccount("-5100.000001", {"market": "BTC-USD", "side": "long", "size": "0.1",
                                          "oracle_price": "50000", "imf": "0.2", "mmf": "0.1"})
    # Half: 2500 − (−100.000001)·250/500 = 2550.0000005 -> 2,550,000,001 quantums.
    assert dydx.bankruptcy_quote(account, "BTC-USD", "-0.05") == 2_550_000_001


def test_insurance_fund_delta_for_a_short():
    account = short_eth()  # BQ for the whole short: −3250 USDC
    # Bought back at 3100: quote −3100, d = 150 > 0; fee = min(150, 0.5%·3100 = 15.5) = 15.5 USDC.
    assert dydx.insurance_fund_delta(account, "ETH-USD", "3100", "1", CONFIG) == 15_500_000
    assert dydx.insurance_fund_delta(account, "ETH-USD", "3100", "1", CONFIG.with_rates(max_liquidation_fee="1")) == 150_000_000
    # Bought back at 3300, beyond bankruptcy: the fund pays 50 USDC.
    assert dydx.insurance_fund_delta(account, "ETH-USD", "3300", "1", CONFIG) == -50_000_000
    with pytest.raises(InvalidInput) as error:
        dydx.insurance_fund_delta(account, "ETH-USD", "3100", "2", CONFIG)
    assert error.value.field == "fill_size"


def test_liquidatable_size_delta_per_block():
    mainnet = dydx.DydxLiquidationConfig.from_table(load_preset("dydx_v4").section("liquidation"))
    big = dydx.DydxPosition.parse(dict(BTC, side="long", size="10"))  # 500,000 USDC
    # 10% of 500,000 = 50,000 USDC < 100,000 subaccount cap -> 1 BTC.
    assert dydx.liquidatable_size_delta(big, mainnet, step_size="0.0001") == D("-1")
    # 80,000 already liquidated this block: 20,000 left -> 0.4 BTC.
    assert dydx.liquidatable_size_delta(big, mainnet, step_size="0.0001",
                                        notional_liquidated_this_block=80_000_000_000) == D("-0.4")
    # A 500 USDC position is within the 1,000 USDC minimum: closed whole.
    small = dydx.DydxPosition.parse(dict(BTC, side="short", size="0.01"))
    assert dydx.liquidatable_size_delta(small, mainnet, step_size="0.0001") == D("0.01")
    # A position of one step is closed whole however large.
    one_step = dydx.DydxPosition.parse(dict(BTC, side="short", size="10"))
    assert dydx.liquidatable_size_delta(one_step, mainnet, step_size="10") == D("10")
    # Limit rounded down to the step: 50,000 USDC / 50,000 = 1 BTC; step 0.3 -> 0.9.
    assert dydx.liquidatable_size_delta(big, mainnet, step_size="0.3") == D("-0.9")


def test_config_from_preset_and_case_overrides():
    table = load_preset("dydx_v4").section("liquidation")
    mainnet = dydx.DydxLiquidationConfig.from_table(table)
    assert mainnet.max_liquidation_fee_ppm == 15_000
    assert mainnet.spread_to_maintenance_margin_ratio_ppm == 1_500_000
    assert mainnet.max_notional_liquidated == 100_000_000_000
    assert mainnet.with_rates(max_liquidation_fee="0.005").max_liquidation_fee_ppm == 5_000
    with pytest.raises(InvalidInput) as error:
        dydx.DydxLiquidationConfig.from_table(dict(table, bankruptcy_adjustment="0.5"))
    assert error.value.field == "bankruptcy_adjustment"
    with pytest.raises(InvalidInput) as error:
        dydx.DydxLiquidationConfig.from_table({k: v for k, v in table.items() if k != "max_liquidation_fee"})
    assert error.value.field == "liquidation.max_liquidation_fee"


@pytest.mark.parametrize("row,field", [
    (dict(ETH, side="short", size="-1"), "positions[0].size"),
    (dict(ETH, side="short", size="1", oracle_price="0"), "positions[0].oracle_price"),
    (dict(ETH, side="short", size="NaN"), "positions[0].size"),
    (dict(ETH, side="sideways", size="1"), "positions[0].side"),
    (dict(ETH, side="long", size="1", imf="NaN"), "positions[0].imf"),
])
def test_dydx_bad_positions_name_the_field(row, field):
    with pytest.raises(InvalidInput) as error:
        dydx.Subaccount.parse([row], "0")
    assert error.value.field == field


def test_dydx_bad_deltas_and_markets():
    account = short_eth()
    for delta in ("-1", "2", "0"):  # same sign, beyond the position, nothing
        with pytest.raises(InvalidInput) as error:
            dydx.bankruptcy_quote(account, "ETH-USD", delta)
        assert error.value.field == "delta_size"
    with pytest.raises(UnknownName):
        dydx.bankruptcy_quote(account, "BTC-USD", "1")
    with pytest.raises(InvalidInput) as error:
        dydx.Subaccount.parse([dict(ETH, side="long", size="1")], "0.0000001")
    assert error.value.field == "quote_balance"


@settings(max_examples=200, deadline=None)
@given(quote=st.integers(-10**10, 10**10), tenths=st.integers(1, 30), close=st.integers(1, 30))
def test_bankruptcy_quote_never_rounds_in_the_accounts_favour(quote, tenths, close):
    close = min(close, tenths)
    account = dydx.Subaccount(quote, (dydx.DydxPosition.parse(dict(ETH, side="long", size=str(D(tenths) / 10))),))
    delta = -D(close) / 10
    bq = dydx.bankruptcy_quote(account, "ETH-USD", delta)
    position = account.positions[0]
    exact = (-Fraction(position.net_notional(position.size + delta) - position.net_notional())
             - Fraction(account.net_collateral() * abs(position.maintenance_margin(position.size + delta)
                                                      - position.maintenance_margin()), account.maintenance_requirement()))
    assert exact <= bq < exact + 1


# ------------------------------------------------------------------------------- Drift


def test_liquidator_fee_grace_boundary_and_cap():
    assert drift.liquidator_fee("0.02", "0.05", 100, 1599) == D("0.02")  # 1,499 slots: still grace
    # From 1,500 slots the ramp counts every slot since last activity: 0.02 + 1500·0.000001.
    assert drift.liquidator_fee("0.02", "0.05", 100, 1600) == D("0.0215")
    assert drift.liquidator_fee("0.02", "0.05", 0, 30_000) == D("0.05")  # exactly at the cap
    assert drift.liquidator_fee("0.02", "0.05", 0, 30_001) == D("0.05")
    with pytest.raises(InvalidInput) as error:
        drift.liquidator_fee("0.02", "0.05", 10, 9)
    assert error.value.field == "current_slot"


def test_max_liquidator_fee_and_config_from_preset():
    config = drift.DriftLiquidationConfig.from_table(load_preset("drift_v2").section("liquidation"))
    assert config == drift.DriftLiquidationConfig()  # the preset restates the program's constants
    assert drift.max_liquidator_fee("0.01", "0.05") == D("0.03")  # min(3·1%, 5%)
    assert drift.max_liquidator_fee("0.02", "0.05") == D("0.05")
    slow = drift.DriftLiquidationConfig(fee_grace_slots=10, fee_increase_per_slot=2)
    assert drift.liquidator_fee("0.01", "1", 0, 10, config=slow) == D("0.01002")


def test_hysteresis_enter_and_exit():
    # Maintenance 100, buffer 2% of a 1,000 liability: exit line 120.
    assert drift.in_liquidation("99.99", "100", "0.02", "1000", currently_in=False)
    assert not drift.in_liquidation("100", "100", "0.02", "1000", currently_in=False)
    assert drift.in_liquidation("110", "100", "0.02", "1000", currently_in=True)  # healthy, but not by the buffer
    assert drift.in_liquidation("119.99", "100", "0.02", "1000", currently_in=True)
    assert not drift.in_liquidation("120", "100", "0.02", "1000", currently_in=True)
    assert drift.margin_shortage("110", "100", "0.02", "1000") == D("10")
    assert drift.margin_shortage("130", "100", "0.02", "1000") == 0


def test_if_fee_and_base_with_quote_price():
    # Shortage 20, 10 base at 100: shortage rate 0.02; (5% − 1% − 2%)·0.95 = 1.9%, cap 5%.
    assert drift.if_fee("20", "10", "100", "0.05", "0.01", "0.05") == D("0.019")
    assert drift.if_fee("20", "10", "100", "0.05", "0.01", "0.01") == D("0.01")  # capped
    assert drift.if_fee("20", "0", "100", "0.05", "0.01", "0.05") == 0  # no base: no fee
    # Base with an IF fee: 10·1e9 / (100·(0.1 − 0.01) − 100·0.01) = 1e10 / 8e6 -> 1.25 base.
    assert drift.base_to_cover_shortage("10", "0.1", "0.01", "0.01", "100") == D("1.25")
    # A quote asset at 0.5 halves the margin freed per base: 1e10 / (50·0.1 − 0) = 2 base.
    assert drift.base_to_cover_shortage("10", "0.1", "0", "0", "100", quote_price="0.5") == D("2")
    assert drift.base_to_cover_shortage("10", "0.01", "0.01", "0", "100") is None  # fee eats the margin
    with pytest.raises(InvalidInput) as error:
        drift.base_to_cover_shortage("10", "0.00001", "0", "0", "100")
    assert error.value.field == "margin_ratio"


def test_socialized_loss_and_insurance_payout():
    # 100 / (7 + 4) = 9.0909090909… -> rounded up at 1e-6.
    assert drift.socialized_loss_funding_delta("100", "7", "-4") == D("9.090910")
    assert drift.socialized_loss_funding_delta("-100", "7", "4") == D("9.090910")
    assert drift.socialized_loss_funding_delta("1", "3", "0") == D("0.333334")
    with pytest.raises(InvalidInput) as error:
        drift.socialized_loss_funding_delta("1", "0", "0")
    assert error.value.field == "base_long"
    assert drift.insurance_fund_payout("500", "1000", "C") == D("500")
    assert drift.insurance_fund_payout("500", "300", "C") == D("299.999999")  # vault keeps one unit
    assert drift.insurance_fund_payout("500", "10000", "C", already_paid="99800") == D("200")  # tier cap 100k
    assert drift.insurance_fund_payout("500", "10000", "Speculative") == 0


@pytest.mark.parametrize("call,field", [
    (lambda: drift.if_fee("NaN", "10", "100", "0.05", "0.01", "0.05"), "margin_shortage"),
    (lambda: drift.if_fee("20", "-10", "100", "0.05", "0.01", "0.05"), "base"),
    (lambda: drift.base_to_cover_shortage("10", "0.1", "0", "0", "-1"), "oracle_price"),
    (lambda: drift.liquidator_fee("0.02", "0.05", "1.5", 10), "last_active_slot"),
    (lambda: drift.in_liquidation("1", "inf", "0.02", "1", currently_in=True), "maintenance"),
    (lambda: drift.in_liquidation("1", "1", "0.02", "1", currently_in="yes"), "currently_in"),
])
def test_drift_bad_input_names_the_field(call, field):
    with pytest.raises(InvalidInput) as error:
        call()
    assert error.value.field == field


# ------------------------------------------------------------------------------- ADL


def candidates(*rows):
    return adl.parse_candidates(list(rows))


def accounts(result):
    return [close.account for close in result.closes]


def test_binance_ranking():
    queue = candidates(
        # PnL% 0.1 · MM/(WB+uPnL) 50/1100 = 0.004545…
        {"account": "A", "size": "1", "upnl": "100", "wallet_balance": "1000", "maintenance_margin": "50"},
        # 1 · 100/1000 = 0.1
        {"account": "B", "size": "1", "upnl": "500", "wallet_balance": "500", "maintenance_margin": "100"},
        # losing: PnL% 0 -> 0
        {"account": "C", "size": "1", "upnl": "-50", "wallet_balance": "1000", "maintenance_margin": "10"},
        # WB below 1 counts as 1: 10 · 5/10.5 = 4.76
        {"account": "D", "size": "1", "upnl": "10", "wallet_balance": "0.5", "maintenance_margin": "5"},
    )
    result = adl.deleverage("binance", queue, "4")
    assert accounts(result) == ["D", "B", "A", "C"]
    assert result.standing("B").score == D("0.1")


def test_bitmex_ranking_with_shorts():
    long = adl.AdlCandidate("L", D(1), side=Side.LONG, mark_price=D(110), entry_price=D(100), bankrupt_price=D(80))
    short = adl.AdlCandidate("S", D(1), side=Side.SHORT, mark_price=D(90), entry_price=D(100), bankrupt_price=D(110))
    loser = adl.AdlCandidate("X", D(1), side=Side.LONG, mark_price=D(95), entry_price=D(100), bankrupt_price=D(50))
    assert adl.bitmex_score(long) == Fraction(1, 10) * Fraction(110, 30)  # PnL% × 110/(110−80)
    assert adl.bitmex_score(short) == Fraction(1, 10) * Fraction(90, 20)  # values −90, −100, −110: leverage 4.5
    assert adl.bitmex_score(loser) == Fraction(-5, 100) / Fraction(95, 45)  # a loss divides by leverage
    assert accounts(adl.deleverage("bitmex", [long, short, loser], "3")) == ["S", "L", "X"]
    by_value = adl.AdlCandidate("V", D(1), mark_value=D(-90), entry_value=D(-100), bankrupt_value=D(-110))
    assert adl.bitmex_score(by_value) == adl.bitmex_score(short)


def test_hyperliquid_ranking():
    queue = candidates(
        {"account": "A", "size": "10", "mark_price": "110", "entry_price": "100", "notional": "1100",
         "account_value": "500"},  # 1.1 · 2.2 = 2.42
        {"account": "B", "size": "1", "mark_price": "110", "entry_price": "55", "notional": "110",
         "account_value": "100"},  # 2 · 1.1 = 2.2
        {"account": "C", "size": "2", "mark_price": "110", "entry_price": "100", "account_value": "50"},  # 1.1 · 220/50
    )
    result = adl.deleverage("hyperliquid", queue, "11")
    assert accounts(result) == ["C", "A"]
    assert [c.size for c in result.closes] == [D(2), D(9)]
    assert [s.account for s in result.standings] == ["C", "A", "B"]


def test_ties_are_ordered_by_account_whatever_the_input_order():
    rows = [{"account": name, "size": "1", "score": "1"} for name in ("b", "c", "a")]
    assert accounts(adl.deleverage("binance", candidates(*rows), "3")) == ["a", "b", "c"]
    assert accounts(adl.deleverage("binance", candidates(*reversed(rows)), "3")) == ["a", "b", "c"]


def test_standings_quantiles_and_lights():
    rows = [{"account": f"u{index:02d}", "size": "1", "score": str(100 - index)} for index in range(10)]
    result = adl.deleverage("bitmex", candidates(*rows), "0")
    assert result.closes == () and result.uncovered == 0
    lights = [s.lights for s in result.standings]
    assert lights == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert result.standings[0].quantile == D("0.1") and result.standings[-1].quantile == 1


def test_deficit_beyond_the_queue_is_reported_uncovered():
    result = adl.deleverage("binance", candidates({"account": "A", "size": "2", "score": "1"}), "5")
    assert [c.size for c in result.closes] == [D(2)] and result.uncovered == D(3)


def test_pro_rata_shares_and_never_more_than_the_queue():
    queue = candidates(*({"account": a, "size": s} for a, s in (("A", "1"), ("B", "2"), ("C", "3"))))
    result = adl.deleverage("pro_rata", queue, "3")
    assert [(c.account, c.size) for c in result.closes] == [("A", D("0.5")), ("B", D(1)), ("C", D("1.5"))]
    assert all(s.rank is None for s in result.standings)
    everything = adl.deleverage("pro_rata", queue, "10")
    assert [c.size for c in everything.closes] == [D(1), D(2), D(3)] and everything.uncovered == D(4)
    thirds = adl.deleverage("pro_rata", candidates(*({"account": a, "size": "1"} for a in "CAB")), "1")
    assert thirds.closed_size <= 1 and thirds.uncovered >= 0
    lots = adl.deleverage("pro_rata", candidates(*({"account": a, "size": "1"} for a in "CAB")), "1", lot="0.1")
    # 0.3 each, the leftover lot to the first account by id.
    assert {c.account: c.size for c in lots.closes} == {"A": D("0.4"), "B": D("0.3"), "C": D("0.3")}
    assert lots.closed_size == 1


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 10**6), min_size=1, max_size=8), deficit=st.integers(0, 10**7),
       lot=st.sampled_from([None, "1", "7"]))
def test_pro_rata_property(sizes, deficit, lot):
    queue = [adl.AdlCandidate(f"a{i}", D(size)) for i, size in enumerate(sizes)]
    result = adl.deleverage("pro_rata", queue, D(deficit), lot=lot)
    closed = {c.account: c.size for c in result.closes}
    assert result.closed_size <= min(D(deficit), sum(D(s) for s in sizes))
    assert all(closed.get(c.account, 0) <= c.size for c in queue)
    assert result.closed_size + result.uncovered == D(deficit)


def test_dydx_offset_wraps_around_and_needs_the_draw():
    queue = candidates({"account": "A", "size": "2"}, {"account": "B", "size": "3"}, {"account": "C", "size": "4"})
    result = adl.deleverage("dydx", queue, "5", offset=5)  # 5 mod 3 = 2: C, A, B
    assert [(c.account, c.size) for c in result.closes] == [("C", D(4)), ("A", D(1))]
    assert [s.account for s in result.standings] == ["C", "A", "B"]
    assert accounts(adl.deleverage("dydx", queue, "9", offset=0)) == ["A", "B", "C"]
    assert accounts(adl.deleverage("dydx", queue, "9", offset=1, max_visits=2)) == ["B", "C"]
    with pytest.raises(InvalidInput) as error:
        adl.deleverage("dydx", queue, "5")
    assert error.value.field == "offset"


@pytest.mark.parametrize("rows,field", [
    ([{"account": "A", "size": "-1", "score": "1"}], "candidates[0].size"),
    ([{"account": "A", "size": "1", "score": "1"}, {"account": "B", "size": "1", "score": "NaN"}], "candidates[1].score"),
    ([{"account": "A", "size": "1"}, {"account": "A", "size": "2"}], "candidates[1].account"),
    ([{"size": "1"}], "candidates[0].account"),
])
def test_adl_bad_candidates_name_the_field(rows, field):
    with pytest.raises(InvalidInput) as error:
        adl.deleverage("binance", adl.parse_candidates(rows), "1")
    assert error.value.field == field


def test_adl_missing_inputs_and_bad_rule():
    with pytest.raises(InvalidInput) as error:
        adl.deleverage("binance", candidates({"account": "A", "size": "1", "upnl": "1"}), "1")
    assert error.value.field == "candidates[A].wallet_balance"
    with pytest.raises(InvalidInput) as error:
        adl.deleverage("hyperliquid", candidates({"account": "A", "size": "1", "mark_price": "0",
                                                  "entry_price": "1", "account_value": "1"}), "1")
    assert error.value.field == "candidates[A].mark_price"
    with pytest.raises(InvalidInput) as error:
        adl.deleverage("lottery", candidates({"account": "A", "size": "1", "score": "1"}), "1")
    assert error.value.field == "rule"
    with pytest.raises(InvalidInput) as error:
        adl.deleverage("binance", candidates({"account": "A", "size": "1", "score": "1"}), "-1")
    assert error.value.field == "deficit_size"


# ------------------------------------------------------------------------------- vectors


@pytest.mark.skipif(not SHARED_CONFORMANCE.is_dir(), reason="shared/conformance is not beside the project")
def test_liquidation_vectors_pass():
    import solvent.conformance.checks_liquidation  # noqa: F401  (registers the checks)
    from solvent.conformance import run_paths

    results = [r for r in run_paths([SHARED_CONFORMANCE]) if r.check.startswith(("dydx.", "drift.", "adl."))]
    assert len(results) >= 28
    failures = [f"{r.id}: {r.message}" for r in results if not r.passed]
    assert not failures, "\n".join(failures)
