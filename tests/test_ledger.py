"""The exact ledger: fills, realized PnL, rounding against the account, isolated margin, conservation."""

import math
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solvent.core.domain import Asset, ContractKind, MarginMode, Market, PositionMode, Side
from solvent.core.errors import InsufficientFunds, InvalidInput
from solvent.core.ledger import Ledger, closed_cost


@pytest.fixture
def ledger():
    book = Ledger()
    book.add_asset(Asset("USDT", 6))
    book.add_asset(Asset("BTC", 8))
    book.add_market(Market("BTCUSDT", "BTC", "USDT", "USDT", ContractKind.LINEAR, 3))
    book.add_market(Market("BTCUSD", "BTC", "USD", "BTC", ContractKind.INVERSE, 0, D(100)))
    for name in ("alice", "bob", "carol"):
        book.open_account(name)
        book.deposit(name, "USDT", "100000")
        book.deposit(name, "BTC", "2")
    return book


def test_round_trip_realizes_exact_pnl_and_fees_go_to_the_pool(ledger):
    ledger.apply_trade("alice", "bob", "BTCUSDT", "0.5", "60000", buyer_fee="3", seller_fee="1.5")
    ledger.apply_trade("bob", "alice", "BTCUSDT", "0.5", "61000")
    assert ledger.accounts["alice"].balance("USDT") == (100000 + 500 - 3) * 10**6
    assert ledger.accounts["bob"].balance("USDT") == (100000 - 500 - D("1.5")) * 10**6
    assert ledger.pools["fee_pool"]["USDT"] == D("4.5") * 10**6
    assert ledger.conservation().holds


def test_partial_close_rounds_cost_against_the_account(ledger):
    # 3 lots bought for a total of 100 units of cost; closing one lot takes ceil(100/3) = 34 of
    # the cost basis, so the long realizes one unit less than the exact third.
    ledger.apply_trade("alice", "bob", "BTCUSDT", "0.001", "33.333333")
    ledger.apply_trade("alice", "bob", "BTCUSDT", "0.002", "33.3333335")
    position = ledger.accounts["alice"].positions[("BTCUSDT", None)]
    cost = position.cost
    result = ledger.apply_trade("bob", "alice", "BTCUSDT", "0.001", "40")[1]
    expected_cost_closed = -(-cost // 3)
    assert result.realized_pnl == 40_000 - expected_cost_closed
    assert ledger.conservation().holds


def test_flip_closes_then_opens(ledger):
    ledger.apply_trade("alice", "bob", "BTCUSDT", "1", "60000")
    ledger.apply_trade("bob", "alice", "BTCUSDT", "3", "59000")  # alice sells 3: closes 1, opens 2 short
    position = ledger.accounts["alice"].positions[("BTCUSDT", None)]
    assert position.lots == -2000 and position.cost == 2 * 59000 * 10**6
    assert ledger.accounts["alice"].balance("USDT") == (100000 - 1000) * 10**6
    assert ledger.conservation().holds


def test_inverse_pnl_in_coin(ledger):
    # 100 contracts of $100 long at 50,000 then closed at 60,000: 10,000·(1/50,000 − 1/60,000) BTC.
    ledger.apply_trade("alice", "bob", "BTCUSD", "100", "50000")
    ledger.apply_trade("bob", "alice", "BTCUSD", "100", "60000")
    gained = ledger.accounts["alice"].balance("BTC") - 2 * 10**8
    assert gained == 20_000_000 - 16_666_667  # both legs' values rounded half-even once per fill
    assert ledger.conservation().holds


def test_isolated_margin_returns_to_the_wallet_on_close(ledger):
    ledger.move_isolated_margin("alice", "BTCUSDT", "1000")
    ledger.apply_trade("alice", "bob", "BTCUSDT", "0.1", "60000", buyer_mode=MarginMode.ISOLATED)
    position = ledger.accounts["alice"].positions[("BTCUSDT", None)]
    assert position.isolated_margin == 1000 * 10**6
    ledger.apply_trade("bob", "alice", "BTCUSDT", "0.1", "59000", seller_mode=MarginMode.ISOLATED)
    assert ledger.accounts["alice"].balance("USDT") == (100000 - 100) * 10**6
    assert ledger.conservation().holds


def test_hedge_mode_keeps_two_legs(ledger):
    ledger.open_account("dave", PositionMode.HEDGE)
    ledger.deposit("dave", "USDT", "50000")
    ledger.apply_trade("dave", "bob", "BTCUSDT", "1", "60000", buyer_hedge_side=Side.LONG)
    ledger.apply_trade("bob", "dave", "BTCUSDT", "1", "60000", seller_hedge_side=Side.SHORT)
    legs = {key: position.lots for key, position in ledger.accounts["dave"].positions.items()}
    assert legs == {("BTCUSDT", Side.LONG): 1000, ("BTCUSDT", Side.SHORT): -1000}
    with pytest.raises(InvalidInput, match="other side"):
        ledger.apply_trade("bob", "dave", "BTCUSDT", "2", "60000", seller_hedge_side=Side.LONG)
    assert ledger.conservation().holds


def test_withdraw_more_than_held_changes_nothing(ledger):
    before = dict(ledger.accounts["alice"].balances)
    with pytest.raises(InsufficientFunds):
        ledger.withdraw("alice", "USDT", "100000.000001")
    assert ledger.accounts["alice"].balances == before
    ledger.withdraw("alice", "USDT", "100000")
    assert ledger.conservation().holds


def test_conservation_detects_a_missing_unit(ledger):
    ledger.apply_trade("alice", "bob", "BTCUSDT", "1", "60000")
    ledger.accounts["carol"].balances["USDT"] -= 1
    report = ledger.conservation()
    assert not report.holds and "MISMATCH by -1" in report.describe()


def test_one_sided_fill_shows_as_open_interest_imbalance(ledger):
    ledger.apply_fill("alice", "BTCUSDT", Side.LONG, "1", "60000")
    report = ledger.conservation()
    assert not report.holds and report.open_interest_imbalance["BTCUSDT"] == 1000


@given(st.integers(0, 10**30), st.integers(1, 10**15), st.integers(0, 10**15), st.booleans())
def test_closed_share_of_a_cost_basis_is_exact_and_rounded_against_the_account(cost, held, closing, up):
    closing = min(closing, held)
    exact = Fraction(cost * closing, held)
    assert closed_cost(cost, closing, held, up=up) == (math.ceil(exact) if up else math.floor(exact))
    assert closed_cost(cost, held, held, up=up) == cost  # closing everything takes the whole basis
