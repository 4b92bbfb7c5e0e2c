"""Liquidation and bankruptcy prices: published examples, brackets, cross accounts, inverse."""

from decimal import Decimal as D

import pytest

from solvent.core.domain import ContractKind, MarginMode, Side
from solvent.policies.liquidation_price import (
    LiquidationPriceRule,
    PositionView,
    account_liquidation_price,
    position_liquidation_price,
    round_price_against_account,
)
from solvent.policies.margin import TieredMargin
from solvent.presets import load_preset

BINANCE = load_preset("binance")
BYBIT = load_preset("bybit")


def test_binance_example_with_the_real_bracket_table():
    # Binance's calc example (BTCUSDT 109.488 @ 32,481.98, isolated wallet 1,535,443.01): the
    # solver starts in the mark's bracket and must land on the 1M–10M bracket (2.5%, cum 16,300).
    price = position_liquidation_price(
        kind=ContractKind.LINEAR, margin_mode=MarginMode.ISOLATED, side=Side.LONG, size=D("109.488"),
        entry_price=D("32481.98"), margin_model=BINANCE.margin_model("BTCUSDT"),
        isolated_margin=D("1535443.01"), mark_price=D("31967.27"))
    assert abs(price - D("18778.73")) < D("0.01")


def test_bracket_change_between_entry_and_liquidation_is_iterated():
    model = BINANCE.margin_model("BTCUSDT")
    # 20 BTC long at 60,000 = 1.2M notional (2.5% bracket); with little margin the LP is close
    # to entry; with a lot, the notional at LP falls below 1M and the 1% bracket applies.
    rich = position_liquidation_price(kind=ContractKind.LINEAR, margin_mode=MarginMode.ISOLATED, side=Side.LONG,
                                      size=D(20), entry_price=D(60000), margin_model=model, isolated_margin=D(400000))
    notional = rich * 20
    rate, deduction = model.maintenance_line(notional)
    assert notional < 1_000_000 and rate == D("0.01")
    # The solution satisfies equity == MM in the bracket of its own notional.
    equity = D(400000) + 20 * (rich - 60000)
    assert abs(equity - (notional * rate - deduction)) < D("1e-18")


def test_binance_cross_with_other_positions_held_at_mark():
    # ETH and BTC in one cross account: the BTC LP depends on ETH's MM and PnL at its mark.
    views = [
        PositionView("BTCUSDT", Side.LONG, D("1"), D(60000), D(59000), TieredMargin.flat(D("0.004"))),
        PositionView("ETHUSDT", Side.SHORT, D("10"), D(3000), D(3100), TieredMargin.flat(D("0.005"))),
    ]
    price = account_liquidation_price(wallet_balance=D(10000), positions=views, target="BTCUSDT",
                                      rule=BINANCE.liquidation_price_rule)
    # Hand solution: 10000 + (P − 60000) − 1000 = 0.004·P + 155  →  P = 51155 / 0.996
    assert price == D(51155) / D("0.996")
    isolated = account_liquidation_price(wallet_balance=D(10000), positions=views, target="BTCUSDT",
                                         rule=BINANCE.liquidation_price_rule, margin_mode=MarginMode.ISOLATED)
    assert isolated == D(50000) / D("0.996")


def test_hedge_mode_both_legs_move_together():
    legs = [
        PositionView("BTCUSDT", Side.LONG, D("2"), D(60000), D(60000), TieredMargin.flat(D("0.01"))),
        PositionView("BTCUSDT", Side.SHORT, D("1"), D(61000), D(60000), TieredMargin.flat(D("0.01"))),
    ]
    price = account_liquidation_price(wallet_balance=D(5000), positions=legs, target="BTCUSDT")
    # equity 5000 + 2(P − 60000) − (P − 61000) = 0.03·P  →  P = 54000 / 0.97
    assert price == D(54000) / D("0.97")


@pytest.mark.parametrize("side, expected", [(Side.LONG, "19700"), (Side.SHORT, "20300")])
def test_bybit_usdt_isolated_doc_example(side, expected):
    price = position_liquidation_price(kind=ContractKind.LINEAR, margin_mode=MarginMode.ISOLATED, side=side,
                                       size=D(1), entry_price=D(20000), margin_model=TieredMargin.flat(D("0.005")),
                                       rule=BYBIT.liquidation_price_rule, leverage=D(50))
    assert price == D(expected)


def test_bybit_inverse_cross_doc_example():
    # help.bybit.com 360039261334: 0.5 BTC, 10,000 contracts long @ 8,000, MMR 0.5%, fee 0.075%:
    # bankruptcy 5,718.57 and liquidation 5,739.50 on the 0.5 tick.
    common = dict(kind=ContractKind.INVERSE, margin_mode=MarginMode.CROSS, side=Side.LONG, size=D(10000),
                  entry_price=D(8000), margin_model=TieredMargin.flat(D("0.005")),
                  rule=BYBIT.liquidation_price_rule, wallet_balance=D("0.5"), fee_rate=D("0.00075"))
    assert abs(position_liquidation_price(**common, bankruptcy=True) - D("5718.57")) < D("0.005")
    liquidation = position_liquidation_price(**common)
    assert round_price_against_account(liquidation, D("0.5"), Side.LONG) == D("5739.5")


@pytest.mark.parametrize("side, leverage, expected", [
    (Side.LONG, 10, D(50000) * 10 / 11), (Side.SHORT, 10, D(50000) * 10 / 9), (Side.LONG, 1, D(25000)),
])
def test_inverse_bankruptcy_price(side, leverage, expected):
    price = position_liquidation_price(kind=ContractKind.INVERSE, margin_mode=MarginMode.ISOLATED, side=side,
                                       size=D(60000), entry_price=D(50000), margin_model=TieredMargin.flat(D("0.005")),
                                       rule=BYBIT.liquidation_price_rule, leverage=D(leverage), bankruptcy=True)
    assert abs(price - expected) < D("1e-20")


def test_inverse_one_x_short_has_no_bankruptcy_price():
    price = position_liquidation_price(kind=ContractKind.INVERSE, margin_mode=MarginMode.ISOLATED, side=Side.SHORT,
                                       size=D(100), entry_price=D(50000), margin_model=TieredMargin.flat(D("0.005")),
                                       rule=BYBIT.liquidation_price_rule, leverage=D(1), bankruptcy=True)
    assert price is None


def test_overcollateralized_long_has_no_liquidation_price():
    price = position_liquidation_price(kind=ContractKind.LINEAR, margin_mode=MarginMode.ISOLATED, side=Side.LONG,
                                       size=D(1), entry_price=D(100), margin_model=TieredMargin.flat(D("0.01")),
                                       isolated_margin=D(150))
    assert price is None


@pytest.mark.parametrize("price, tick, side, expected", [
    (D("100.01"), D("0.5"), Side.LONG, D("100.5")), (D("100.49"), D("0.5"), Side.SHORT, D("100.0")),
    (D("100.5"), D("0.5"), Side.LONG, D("100.5")),
])
def test_rounding_to_tick_goes_toward_earlier_liquidation(price, tick, side, expected):
    assert round_price_against_account(price, tick, side) == expected


def test_rule_validation():
    with pytest.raises(ValueError):
        LiquidationPriceRule(maintenance_at="mark")


def test_a_solution_outside_the_marks_bracket_is_found_in_a_lower_one():
    # Found by the property tests: 1,912.514 BTC long at 104,574.40 with 1.1x leverage sits in the
    # 25% bracket at the mark, whose line has no positive solution; the liquidation price lies in
    # the 5% bracket (notional 10M–20M), where equity meets the maintenance margin.
    model = BINANCE.margin_model("BTCUSDT")
    size, entry = D("1912.514"), D("104574.40")
    collateral = size * entry / D("1.1")
    price = position_liquidation_price(kind=ContractKind.LINEAR, margin_mode=MarginMode.ISOLATED, side=Side.LONG,
                                       size=size, entry_price=entry, margin_model=model,
                                       isolated_margin=collateral, mark_price=entry)
    equity = collateral + size * (price - entry)
    assert abs(equity - model.maintenance_margin(size * price)) < D("1e-12")
    assert model.maintenance_line(size * price)[0] == D("0.05")
    bankruptcy = position_liquidation_price(kind=ContractKind.LINEAR, margin_mode=MarginMode.ISOLATED,
                                            side=Side.LONG, size=size, entry_price=entry, margin_model=model,
                                            isolated_margin=collateral, bankruptcy=True)
    assert bankruptcy < price
