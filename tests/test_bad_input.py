"""Bad input: every malformed value raises a clear error naming its field, and changes nothing.

Covers the number parsers, the exact ledger, the liquidation-price entry point, preset files,
the screener's price updates and the command line.
"""

from __future__ import annotations

import copy
from decimal import Decimal as D

import numpy as np
import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.core.domain import Asset, ContractKind, MarginMode, Market, PositionMode, Side
from solvent.core.errors import InsufficientFunds, InvalidInput, UnknownName
from solvent.core.ledger import Ledger
from solvent.core.numbers import non_negative, positive, to_decimal
from solvent.demo import build_population
from solvent.policies.liquidation_price import position_liquidation_price
from solvent.presets import list_presets, load_preset
from solvent.screening import ColumnarBook, Screener

# ============================================================================================
# Numbers
# ============================================================================================

NOT_NUMBERS = [
    pytest.param("NaN", id="str-nan"),
    pytest.param("nan", id="str-nan-lower"),
    pytest.param("sNaN", id="str-snan"),
    pytest.param("inf", id="str-inf"),
    pytest.param("-inf", id="str-minus-inf"),
    pytest.param("Infinity", id="str-infinity"),
    pytest.param(D("NaN"), id="decimal-nan"),
    pytest.param(D("-Infinity"), id="decimal-minus-inf"),
    pytest.param(float("nan"), id="float-nan"),
    pytest.param(float("inf"), id="float-inf"),
    pytest.param(0.1, id="float"),
    pytest.param(1.0, id="float-integral"),
    pytest.param(True, id="bool-true"),
    pytest.param(False, id="bool-false"),
    pytest.param("abc", id="str-abc"),
    pytest.param("", id="str-empty"),
    pytest.param("1,5", id="str-comma"),
    pytest.param(None, id="none"),
    pytest.param([1], id="list"),
    pytest.param(np.float64(1.5), id="numpy-float"),
]


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize("parse", [to_decimal, positive, non_negative])
def test_parsers_refuse_non_numbers_naming_the_field(parse, value):
    with pytest.raises(InvalidInput) as error:
        parse(value, "positions[3].entry_price")
    assert error.value.field == "positions[3].entry_price"
    assert str(error.value).startswith("positions[3].entry_price: ")


@pytest.mark.parametrize("value", ["0", 0, D("0"), "-0", "-1", -5, D("-0.00000001"), " -2 "])
def test_positive_refuses_zero_and_negative(value):
    with pytest.raises(InvalidInput) as error:
        positive(value, "size")
    assert error.value.field == "size"
    assert "positive" in error.value.message


@pytest.mark.parametrize("value", ["-1", -1, D("-1e-18")])
def test_non_negative_refuses_negative(value):
    with pytest.raises(InvalidInput) as error:
        non_negative(value, "rate")
    assert error.value.field == "rate"


@pytest.mark.parametrize("value,expected", [
    ("1.5", D("1.5")), (" 2 ", D(2)), ("1_000", D(1000)), (7, D(7)), (D("0.1"), D("0.1")), ("-3", D(-3)), ("1e3", D(1000)),
])
def test_parsers_accept_decimal_strings_ints_and_decimals(value, expected):
    assert to_decimal(value, "x") == expected


# ============================================================================================
# Ledger
# ============================================================================================


def snapshot(ledger: Ledger):
    return copy.deepcopy((ledger.assets, ledger.markets, ledger.accounts, ledger.pools, ledger.net_deposits))


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger()
    ledger.add_asset(Asset("USDT", 6))
    ledger.add_asset(Asset("BTC", 8))
    ledger.add_market(Market("BTCUSDT", "BTC", "USDT", "USDT", ContractKind.LINEAR, size_decimals=3))
    ledger.add_market(Market("BTCUSD", "BTC", "USD", "BTC", ContractKind.INVERSE, size_decimals=0))
    for account in ("a", "b"):
        ledger.open_account(account)
        ledger.deposit(account, "USDT", "10000")
        ledger.deposit(account, "BTC", "1")
    ledger.open_account("h", PositionMode.HEDGE)
    ledger.deposit("h", "USDT", "10000")
    ledger.apply_trade("a", "b", "BTCUSDT", "0.5", "60000")
    ledger.apply_trade("h", "b", "BTCUSDT", "0.1", "60000", buyer_hedge_side=Side.LONG)
    ledger.apply_trade("a", "b", "BTCUSD", "100", "60000", buyer_mode=MarginMode.ISOLATED)
    return ledger


def rejects(ledger: Ledger, operation, error_type=InvalidInput, field: str | None = None):
    before = snapshot(ledger)
    with pytest.raises(error_type) as error:
        operation()
    assert snapshot(ledger) == before, "a rejected operation changed the ledger"
    assert ledger.conservation().holds
    if field is not None:
        assert error.value.field == field
        assert str(error.value).startswith(f"{field}: ")
    return error.value


@pytest.mark.parametrize("amount", ["-1", "0", "-0", 0, "NaN", "inf", 1.5, None, True, "abc"])
def test_deposit_and_withdraw_refuse_bad_amounts(ledger, amount):
    rejects(ledger, lambda: ledger.deposit("a", "USDT", amount), field="amount")
    rejects(ledger, lambda: ledger.withdraw("a", "USDT", amount), field="amount")


@pytest.mark.parametrize("asset,amount", [("USDT", "0.0000001"), ("BTC", "1e-9"), ("USDT", "1.1234567")])
def test_amount_finer_than_the_asset_unit(ledger, asset, amount):
    error = rejects(ledger, lambda: ledger.deposit("a", asset, amount), field="amount")
    assert "finer than the unit" in error.message
    rejects(ledger, lambda: ledger.withdraw("a", asset, amount), field="amount")


def test_withdrawing_more_than_held(ledger):
    rejects(ledger, lambda: ledger.withdraw("a", "USDT", "10000.000001"), InsufficientFunds)


def test_unknown_names(ledger):
    error = rejects(ledger, lambda: ledger.deposit("nobody", "USDT", "1"), UnknownName)
    assert error.kind == "account" and error.name == "nobody" and "nobody" in str(error)
    error = rejects(ledger, lambda: ledger.deposit("a", "DOGE", "1"), UnknownName)
    assert error.kind == "asset" and "DOGE" in str(error) and "BTC" in str(error) and "USDT" in str(error)
    error = rejects(ledger, lambda: ledger.withdraw("a", "DOGE", "1"), UnknownName)
    assert error.kind == "asset"
    error = rejects(ledger, lambda: ledger.apply_trade("a", "b", "ETHUSDT", "1", "2000"), UnknownName)
    assert error.kind == "market" and "ETHUSDT" in str(error) and "BTCUSDT" in str(error)
    error = rejects(ledger, lambda: ledger.apply_trade("a", "ghost", "BTCUSDT", "1", "60000"), UnknownName)
    assert error.kind == "account" and error.name == "ghost"
    rejects(ledger, lambda: ledger.move_isolated_margin("a", "ETHUSDT", "1"), UnknownName)
    rejects(ledger, lambda: ledger.apply_fill("ghost", "BTCUSDT", Side.LONG, "1", "60000"), UnknownName)


@pytest.mark.parametrize("kwargs,field", [
    (dict(size="0.0001"), "buyer.size"),  # finer than the 0.001 lot
    (dict(size="0"), "buyer.size"),
    (dict(size="-0.5"), "buyer.size"),
    (dict(size="NaN"), "buyer.size"),
    (dict(size=0.5), "buyer.size"),
    (dict(price="0"), "buyer.price"),
    (dict(price="-60000"), "buyer.price"),
    (dict(price="inf"), "buyer.price"),
    (dict(price=60000.0), "buyer.price"),
    (dict(buyer_fee="-1"), "buyer.fee"),
    (dict(seller_fee="NaN"), "seller.fee"),
    (dict(buyer_hedge_side=Side.LONG), "buyer.hedge_side"),  # a is one-way
    (dict(seller_hedge_side=Side.SHORT), "seller.hedge_side"),  # b is one-way
    (dict(buyer_mode=MarginMode.ISOLATED), "buyer.margin_mode"),  # a's BTCUSDT position is cross
])
def test_trade_refuses_bad_fills(ledger, kwargs, field):
    arguments = dict(size="0.25", price="61000")
    arguments.update(kwargs)
    size, price = arguments.pop("size"), arguments.pop("price")
    rejects(ledger, lambda: ledger.apply_trade("a", "b", "BTCUSDT", size, price, **arguments), field=field)


def test_one_bad_side_of_a_trade_leaves_the_good_side_untouched(ledger):
    # The buyer's side is valid; the seller's is not: neither is applied.
    rejects(ledger, lambda: ledger.apply_trade("a", "b", "BTCUSDT", "0.1", "61000", seller_hedge_side=Side.LONG),
            field="seller.hedge_side")
    rejects(ledger, lambda: ledger.apply_trade("b", "a", "BTCUSD", "7", "60000", seller_mode=MarginMode.CROSS),
            field="seller.margin_mode")


def test_hedge_account_rules(ledger):
    rejects(ledger, lambda: ledger.apply_trade("h", "b", "BTCUSDT", "0.1", "60000"), field="buyer.hedge_side")
    # Selling 0.2 on a 0.1 long leg would turn the leg short.
    rejects(ledger, lambda: ledger.apply_trade("b", "h", "BTCUSDT", "0.2", "60000", seller_hedge_side=Side.LONG),
            field="seller.size")


def test_trading_with_itself(ledger):
    error = rejects(ledger, lambda: ledger.apply_trade("a", "a", "BTCUSDT", "0.1", "60000"), field="seller")
    assert "itself" in error.message


def test_single_fills_refuse_bad_input(ledger):
    rejects(ledger, lambda: ledger.apply_fill("a", "BTCUSDT", Side.LONG, "0.0005", "60000"), field="fill.size")
    rejects(ledger, lambda: ledger.apply_fill("a", "BTCUSDT", Side.LONG, "1", "0"), field="fill.price")
    rejects(ledger, lambda: ledger.apply_fill("a", "BTCUSD", Side.LONG, "1.5", "60000",
                                              margin_mode=MarginMode.ISOLATED), field="fill.size")


def test_isolated_margin_moves_refuse_bad_input(ledger):
    rejects(ledger, lambda: ledger.move_isolated_margin("a", "BTCUSD", "0.000000001"), field="amount")
    rejects(ledger, lambda: ledger.move_isolated_margin("a", "BTCUSD", "NaN"), field="amount")
    rejects(ledger, lambda: ledger.move_isolated_margin("a", "BTCUSDT", "1"), field="market")  # a cross position
    rejects(ledger, lambda: ledger.move_isolated_margin("b", "BTCUSD", "-1"), field="market")  # none at all
    rejects(ledger, lambda: ledger.move_isolated_margin("a", "BTCUSD", "5"), InsufficientFunds)  # a has ~1 BTC
    rejects(ledger, lambda: ledger.move_isolated_margin("a", "BTCUSD", "-5"), InsufficientFunds)


def test_isolated_margin_move_refuses_hedge_side_on_one_way_account(ledger):
    rejects(ledger, lambda: ledger.move_isolated_margin("b", "BTCUSDT", "10", Side.LONG), InvalidInput)


def test_registry_refuses_bad_definitions(ledger):
    rejects(ledger, lambda: ledger.open_account("a"), field="account")
    rejects(ledger, lambda: ledger.open_account(""), field="account")
    rejects(ledger, lambda: ledger.add_asset(Asset("USDT", 8)), field="asset[USDT]")
    rejects(ledger, lambda: ledger.add_market(Market("X", "X", "USD", "EUR")), UnknownName)
    with pytest.raises(InvalidInput) as error:
        Asset("USDT", 19)
    assert error.value.field == "asset[USDT].decimals"
    with pytest.raises(InvalidInput) as error:
        Market("X", "X", "USD", "USDT", contract_size=D(0))
    assert error.value.field == "market[X].contract_size"


# ============================================================================================
# Liquidation price
# ============================================================================================

BINANCE = load_preset("binance")
BYBIT = load_preset("bybit")


def liquidation_price(preset=BINANCE, market="BTCUSDT", **overrides):
    spec = preset.markets[market]
    arguments = dict(kind=spec.kind, margin_mode=MarginMode.ISOLATED, side=Side.LONG, size=D(1),
                     entry_price=D(60000), margin_model=preset.margin_model(market),
                     rule=preset.liquidation_price_rule, contract_size=spec.contract_size,
                     isolated_margin=D(6000), leverage=D(10))
    arguments.update(overrides)
    return position_liquidation_price(**arguments)


@pytest.mark.parametrize("overrides,field", [
    (dict(size=D(-1)), "size"),
    (dict(size=D(0)), "size"),
    (dict(size=D("NaN")), "size"),
    (dict(size=1.5), "size"),
    (dict(entry_price=D(0)), "entry_price"),
    (dict(entry_price=D(-60000)), "entry_price"),
    (dict(entry_price=D("Infinity")), "entry_price"),
    (dict(isolated_margin=D("NaN")), "isolated_margin"),
    (dict(isolated_margin=D(-1)), "isolated_margin"),
    (dict(extra_margin=D("NaN")), "extra_margin"),
    (dict(fee_rate=D("NaN")), "fee_rate"),
    (dict(margin_mode=MarginMode.CROSS, isolated_margin=None, wallet_balance=D("NaN")), "wallet_balance"),
    (dict(margin_mode=MarginMode.CROSS, isolated_margin=None, wallet_balance=None), "wallet_balance"),
    (dict(isolated_margin=None), "isolated_margin"),
])
def test_liquidation_price_refuses_bad_input(overrides, field):
    with pytest.raises(InvalidInput) as error:
        liquidation_price(**overrides)
    assert error.value.field == field


@pytest.mark.parametrize("market", ["BTCUSDT", "BTCUSD"])
@pytest.mark.parametrize("leverage", [D("NaN"), D(0), D(-10), D("Infinity"), 10.0])
def test_liquidation_price_refuses_bad_leverage_where_it_is_used(market, leverage):
    # Bybit's isolated margin is the initial margin of the leverage: the leverage is an input.
    with pytest.raises(InvalidInput) as error:
        liquidation_price(BYBIT, market, leverage=leverage)
    assert error.value.field == "leverage"


def test_liquidation_price_refuses_nan_leverage_even_where_unused():
    with pytest.raises(InvalidInput) as error:
        liquidation_price(leverage=D("NaN"))
    assert error.value.field == "leverage"


@pytest.mark.parametrize("preset,market,mark", [
    pytest.param(BINANCE, "BTCUSDT", D("NaN"), id="nan-binance-raw-InvalidOperation"),
    pytest.param(BYBIT, "BTCUSD", D(0), id="zero-inverse-raw-DivisionByZero"),
    pytest.param(BINANCE, "BTCUSDT", D(-5), id="negative-linear-accepted"),
])
def test_liquidation_price_refuses_bad_mark_price(preset, market, mark):
    with pytest.raises(InvalidInput) as error:
        liquidation_price(preset, market, mark_price=mark)
    assert error.value.field == "mark_price"


# ============================================================================================
# Presets
# ============================================================================================


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UnknownName) as error:
        load_preset("binanse")
    assert error.value.kind == "preset"
    message = str(error.value)
    assert "binanse" in message
    for name in list_presets():
        assert name in message
    assert {"binance", "bybit", "hyperliquid"} <= set(list_presets())


def write(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


BTC_MARKET = """
[[markets]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
settle = "USDT"
"""


@pytest.mark.parametrize("body,field", [
    pytest.param(BTC_MARKET + '[markets.margin]\ntiers = [{ floor = "0", mmr = 0.004 }]\n',
                 "preset[user].markets[BTCUSDT].margin.tiers[0].mmr", id="float-mmr"),
    pytest.param(BTC_MARKET + '[markets.margin]\ntiers = [{ floor = "0", mmr = "0.004" }, { floor = 50000.0, mmr = "0.005" }]\n',
                 "preset[user].markets[BTCUSDT].margin.tiers[1].floor", id="float-floor"),
    pytest.param(BTC_MARKET + '[markets.margin]\ntiers = [{ floor = "0", max_leverage = 125.0, mmr = "0.004" }]\n',
                 "preset[user].markets[BTCUSDT].margin.tiers[0].max_leverage", id="float-leverage"),
    pytest.param(BTC_MARKET + 'contract_size = 0.001\n[markets.margin]\ntiers = [{ floor = "0", mmr = "0.004" }]\n',
                 "preset[user].markets[0].contract_size", id="float-contract-size"),
    pytest.param('[assets]\nUSDT = 8.0\n', "preset[user].assets.USDT", id="float-decimals"),
    pytest.param('[margin]\nmodel = "magic"\n', "preset[user].margin.model", id="unknown-model"),
    pytest.param('[margin]\nmodel = "risk_limit_steps"\nbase_mm = 0.005\nbase_im = "0.01"\nbase_risk_limit = "200"\nstep = "150"\n',
                 "preset[user].margin.base_mm", id="float-risk-limit"),
    pytest.param('[liquidation_price]\nmaintenance_at = "exit"\n', "liquidation_price.maintenance_at", id="bad-rule"),
])
def test_user_preset_extending_binance_refuses_bad_values(tmp_path, body, field):
    path = write(tmp_path, "user", 'extends = "binance"\n' + body)
    with pytest.raises(InvalidInput) as error:
        load_preset(path)
    assert error.value.field == field


def test_standalone_preset_file_with_float_and_unknown_model(tmp_path):
    head = 'title = "mine"\nsources = ["me"]\n[assets]\nUSDT = 6\n'
    path = write(tmp_path, "mine", head + '[margin]\nmodel = "tiered"\n' + BTC_MARKET
                 + '[markets.margin]\ntiers = [{ floor = "0", mmr = 0.01 }]\n')
    with pytest.raises(InvalidInput) as error:
        load_preset(path)
    assert error.value.field == "preset[mine].markets[BTCUSDT].margin.tiers[0].mmr"
    path = write(tmp_path, "other", head + '[margin]\nmodel = "vibes"\n' + BTC_MARKET)
    with pytest.raises(InvalidInput) as error:
        load_preset(path)
    assert error.value.field == "preset[other].margin.model"
    path = write(tmp_path, "bare", 'title = "x"\n[margin]\nmodel = "tiered"\n')
    with pytest.raises(InvalidInput) as error:
        load_preset(path)
    assert error.value.field == "preset[bare].sources"


def test_bad_preset_files(tmp_path):
    with pytest.raises(InvalidInput) as error:
        load_preset(tmp_path / "missing.toml")
    assert error.value.field == "preset"
    path = write(tmp_path, "broken", 'title = "x\n')
    with pytest.raises(InvalidInput) as error:
        load_preset(path)
    assert error.value.field == "preset" and "TOML" in error.value.message
    with pytest.raises(UnknownName) as error:
        load_preset(write(tmp_path, "orphan", 'extends = "nowhere"\n'))
    assert "binance" in str(error.value)


@pytest.mark.parametrize("section,accessor,field", [
    ("[fees]\ntaker = 0.0005\n", lambda p: p.fee_rate("taker"), "preset[lazy].fees.taker"),
    ("[collateral]\nBTC = 0.05\n", lambda p: p.haircuts, "preset[lazy].collateral.BTC"),
])
def test_preset_values_are_checked_at_load_naming_the_field(tmp_path, section, accessor, field):
    with pytest.raises(InvalidInput) as error:
        load_preset(write(tmp_path, "lazy", 'extends = "binance"\n' + section))
    assert error.value.field == field


@pytest.mark.parametrize("section", [
    "[fees]\ntaker = 0.0005\n",
    "[collateral]\nBTC = 0.05\n",
    BTC_MARKET + 'price_tick = 0.1\n[markets.margin]\ntiers = [{ floor = "0", mmr = "0.004" }]\n',
])
def test_float_in_lazily_read_sections_fails_at_load(tmp_path, section):
    with pytest.raises(InvalidInput):
        load_preset(write(tmp_path, "lazy", 'extends = "binance"\n' + section))


def test_fee_to_close_must_be_a_boolean(tmp_path):
    path = write(tmp_path, "strbool", 'extends = "binance"\n[liquidation_price]\nfee_to_close = "false"\n')
    try:
        preset = load_preset(path)
    except InvalidInput as error:
        assert "fee_to_close" in error.field
    else:
        assert preset.liquidation_price_rule.fee_to_close is False


# ============================================================================================
# Screener
# ============================================================================================


@pytest.fixture(scope="module")
def population():
    preset = load_preset("bybit")  # a linear and an inverse market
    ledger, marks = build_population(preset, accounts=200, seed=4)
    models = {symbol: preset.margin_model(symbol) for symbol in ledger.markets}
    return ColumnarBook.from_ledger(ledger, models), marks


def screener_state(screener: Screener):
    return (screener._g.copy() if screener._g is not None else None, screener.equity.copy(),
            screener.maintenance.copy(), screener._pool_deduction.copy(), screener._w.data.copy(),
            [None if b is None else b.copy() for b in screener._boundaries], screener._since_full)


def same_state(a, b) -> bool:
    def equal(x, y):
        if isinstance(x, list):
            return len(x) == len(y) and all(equal(i, j) for i, j in zip(x, y))
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            return x is not None and y is not None and np.array_equal(x, y)
        return x == y
    return all(equal(x, y) for x, y in zip(a, b))


def results_equal(one, other) -> bool:
    return (np.array_equal(one.below_maintenance, other.below_maintenance)
            and np.array_equal(one.at_risk, other.at_risk)
            and np.array_equal(one.equity, other.equity)
            and np.array_equal(one.maintenance, other.maintenance))


@pytest.mark.parametrize("bad", [
    pytest.param(None, id="missing"),
    pytest.param(D(0), id="zero"),
    pytest.param("0", id="zero-str"),
    pytest.param(D(-60000), id="negative"),
    pytest.param(D("NaN"), id="decimal-nan"),
    pytest.param("nan", id="str-nan"),
    pytest.param(float("nan"), id="float-nan"),
    pytest.param("inf", id="inf"),
    pytest.param(60000.0, id="float"),
])
@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTCUSD"])
def test_screener_refuses_bad_prices_and_keeps_its_state(population, bad, symbol):
    book, marks = population
    shocked = {s: p * D("0.9") for s, p in marks.items()}
    later = {s: p * D("0.85") for s, p in marks.items()}
    # The reference: the same valid sequence without the bad update.
    reference = Screener(book)
    reference.update(marks)
    reference.update(shocked)
    expected = reference.update(later)

    screener = Screener(book)
    screener.update(marks)
    screener.update(shocked)
    before = screener_state(screener)
    prices = dict(later)
    if bad is None:
        del prices[symbol]
    else:
        prices[symbol] = bad
    with pytest.raises(InvalidInput) as error:
        screener.update(prices)
    assert error.value.field == f"prices.{symbol}"
    assert same_state(screener_state(screener), before)
    assert results_equal(screener.update(later), expected)


def test_fresh_screener_refuses_bad_prices_then_works(population):
    book, marks = population
    screener = Screener(book)
    with pytest.raises(InvalidInput) as error:
        screener.update({**marks, "BTCUSD": D(0)})
    assert error.value.field == "prices.BTCUSD"
    with pytest.raises(InvalidInput) as error:
        screener.update({"BTCUSD": marks["BTCUSD"]})
    assert error.value.field == "prices.BTCUSDT"
    assert results_equal(screener.update(marks), Screener(book).update(marks))


def test_screener_refuses_bad_warning_ratio(population):
    book, _ = population
    for ratio in ("0", "-0.8", "nan", 0.8):
        with pytest.raises(InvalidInput) as error:
            Screener(book, warning_ratio=ratio)
        assert error.value.field == "warning_ratio"


# ============================================================================================
# Command line
# ============================================================================================

runner = CliRunner()
LIQ = ["liq-price", "--preset", "binance", "--market", "BTCUSDT", "--side", "long"]


def run(args):
    result = runner.invoke(app, args)
    return result, result.output + (result.stderr if hasattr(result, "stderr") else "")


@pytest.mark.parametrize("args,field", [
    (["--size", "-1", "--entry-price", "60000", "--margin", "6000"], "size"),
    (["--size=-1", "--entry-price", "60000", "--margin", "6000"], "size"),
    (["--size", "0", "--entry-price", "60000", "--margin", "6000"], "size"),
    (["--size", "abc", "--entry-price", "60000", "--margin", "6000"], "size"),
    (["--size", "1", "--entry-price", "nan", "--margin", "6000"], "entry_price"),
    (["--size", "1", "--entry-price", "0", "--margin", "6000"], "entry_price"),
    (["--size", "1", "--entry-price", "60000", "--margin", "inf"], "margin"),
    (["--size", "1", "--entry-price", "60000", "--margin", "6000", "--mark-price", "nan"], "mark_price"),
    (["--size", "1", "--entry-price", "60000"], "isolated_margin"),
])
def test_cli_liq_price_bad_input_exits_2_naming_the_field(args, field):
    result, output = run(LIQ + args)
    assert result.exit_code == 2, output
    assert f"{field}:" in output
    assert "Traceback" not in output


def test_cli_liq_price_good_input_still_works():
    result, output = run(LIQ + ["--size", "1", "--entry-price", "60000", "--margin", "6000", "--json"])
    assert result.exit_code == 0, output
    assert '"liquidationPrice": "54221.2"' in result.stdout


def test_cli_unknown_preset_and_market():
    result, output = run(["liq-price", "--preset", "nosuch", "--market", "X", "--side", "long",
                          "--size", "1", "--entry-price", "1", "--margin", "1"])
    assert result.exit_code == 2 and "nosuch" in output and "binance" in output
    result, output = run(["liq-price", "--preset", "binance", "--market", "DOGEUSDT", "--side", "long",
                          "--size", "1", "--entry-price", "1", "--margin", "1"])
    assert result.exit_code == 2 and "DOGEUSDT" in output


def test_cli_zero_mark_price_on_inverse_market_exits_2():
    result, output = run(["liq-price", "--preset", "bybit", "--market", "BTCUSD", "--side", "long", "--size", "1000",
                          "--entry-price", "60000", "--leverage", "10", "--mark-price", "0"])
    assert result.exit_code == 2, output
    assert "mark_price" in output


def test_cli_conformance_on_missing_path_exits_2(tmp_path):
    missing = tmp_path / "no" / "such" / "vectors.json"
    result, output = run(["conformance", str(missing)])
    assert result.exit_code == 2, output
    assert "path" in output and "Traceback" not in output


def test_cli_conformance_on_a_folder_without_vectors_says_so_apart_from_the_results(tmp_path):
    result, output = run(["conformance", str(tmp_path)])
    assert result.exit_code == 0 and "0 passed, 0 failed" in output  # the contract's last line
    assert f"no vectors found in {tmp_path}" in output
