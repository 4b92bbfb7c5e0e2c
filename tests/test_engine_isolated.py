"""Isolated-margin positions in the engine: opening (the initial margin moves from the wallet),
moving margin in and out, and the liquidation pipeline run on each isolated pool alone.

The trigger is checked against the published formula (``solvent.policies.liquidation_price``,
what ``solvent liq-price`` prints) with the numbers of the conformance vectors: Binance's isolated
worked example (binance-lp-isolated-btcusdt-long: LP 18,778.73), the derived isolated short
(LP 10,956.18) and Bybit's USDT isolated example (1 BTC @ 20,000 at 50x: LP 19,700).
"""

from __future__ import annotations

import copy
import json
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D

import pytest

from solvent.core.domain import ContractKind, MarginMode, Side
from solvent.engine import CommandRejected, Engine
from solvent.engine import commands as c
from solvent.engine.commands import command_from_dict
from solvent.engine.pipeline import cross_pool, isolated_pool, isolated_pool_id
from solvent.policies.liquidation_price import position_liquidation_price
from solvent.presets import load_preset


def run(engine: Engine, commands) -> list[dict]:
    events: list[dict] = []
    for command in commands:
        events += [event.to_dict() for event in engine.apply(command)]
        assert engine.conservation().holds, f"after {command}:\n{engine.conservation().describe()}"
    return events


def kinds(events) -> list[str]:
    return [event["kind"] for event in events]


def one(events, kind: str) -> dict:
    found = [event for event in events if event["kind"] == kind]
    assert len(found) == 1, (kind, kinds(events))
    return found[0]


def wallet(engine: Engine, account: str, asset: str) -> D:
    return engine.balance(account, asset)


def margin_of(engine: Engine, account: str, market: str, hedge_side=None) -> D:
    position = engine.ledger.accounts[account].positions[(market, hedge_side)]
    return engine.ledger.amount(engine.ledger.markets[market].settle, position.isolated_margin)


def venue(preset: str, settle: str, mark: dict[str, str], *, fund: str = "1000000", overrides=None,
          traders=(("t", "2000000"),)) -> Engine:
    engine = Engine()
    commands = [c.CreateVenue("v", preset, overrides or {})]
    if fund != "0":
        commands.append(c.FundInsurance(settle, fund, venue="v"))
    commands += [c.Deposit("v/book", settle, "10000000000"), c.Deposit("v/liquidator", settle, "10000000000")]
    for name, amount in (*traders, ("mm", "100000000")):
        commands += [c.OpenAccount(name, "v"), c.Deposit(name, settle, amount)]
    commands.append(c.UpdateOracle("v", mark, 1))
    run(engine, commands)
    return engine


def snapshot(engine: Engine):
    ledger = engine.ledger
    return copy.deepcopy((ledger.accounts, ledger.pools, ledger.net_deposits, engine.marks, engine.margin_called,
                          engine.liquidating, engine.isolated_accounts, engine.holders))


def rejected(engine: Engine, command, field: str) -> str:
    before = snapshot(engine)
    with pytest.raises(CommandRejected) as caught:
        engine.apply(command)
    assert caught.value.field == field, (caught.value.field, caught.value.reason)
    assert snapshot(engine) == before, f"{command} was refused but changed state"
    return caught.value.reason


# ============================================================================================
# The trigger agrees with the published liquidation price
# ============================================================================================


def published(preset: str, market: str, side: Side, size: str, entry: str, *, margin=None, leverage=None,
              mark=None) -> D:
    venue_preset = load_preset(preset)
    return position_liquidation_price(
        kind=ContractKind.LINEAR, margin_mode=MarginMode.ISOLATED, side=side, size=D(size), entry_price=D(entry),
        margin_model=venue_preset.margin_model(market), rule=venue_preset.liquidation_price_rule,
        isolated_margin=None if margin is None else D(margin), leverage=None if leverage is None else D(leverage),
        mark_price=None if mark is None else D(mark))


def binance_isolated(side: str, size: str, entry: str, margin: str, mark: str) -> Engine:
    """``t`` holds an isolated BTCUSDT position of ``size`` at ``entry`` with exactly ``margin``."""
    engine = venue("binance", "USDT", {"BTCUSDT": mark})
    buyer, seller = ("t", "mm") if side == "long" else ("mm", "t")
    mode = {"buyer_margin_mode" if side == "long" else "seller_margin_mode": "isolated"}
    events = run(engine, [c.ApplyFill("v", "BTCUSDT", buyer, seller, size, entry, **mode)])
    moved = one(events, "isolated_margin_moved")
    assert moved["account"] == "t" and D(moved["amount"]) > 0
    top_up = D(margin) - margin_of(engine, "t", "v/BTCUSDT")
    run(engine, [c.AdjustIsolatedMargin("v", "t", "BTCUSDT", str(top_up))])
    assert margin_of(engine, "t", "v/BTCUSDT") == D(margin)
    return engine


def cross_the_price(engine: Engine, market: str, price: D, side: Side, tick: D, timestamp: int):
    """Move the mark to one tick on the safe side of ``price``, then one tick beyond it; return the
    events of each move."""
    safe_rounding, beyond_rounding = (ROUND_CEILING, ROUND_FLOOR) if side is Side.LONG else (ROUND_FLOOR, ROUND_CEILING)
    safe = price.quantize(tick, rounding=safe_rounding)
    if safe == price:
        safe += tick if side is Side.LONG else -tick
    beyond = price.quantize(tick, rounding=beyond_rounding)
    symbol = market.split("/", 1)[1]
    before = run(engine, [c.UpdateOracle("v", {symbol: str(safe)}, timestamp)])
    after = run(engine, [c.UpdateOracle("v", {symbol: str(beyond)}, timestamp + 1)])
    return before, after


def test_binance_isolated_long_is_liquidated_at_the_published_price():
    # binance-lp-isolated-btcusdt-long: 109.488 BTC @ 32,481.98, isolated wallet 1,535,443.01,
    # mark 31,967.27 (bracket 2.5%, cum 16,300) -> 18,778.73.
    engine = binance_isolated("long", "109.488", "32481.98", "1535443.01", "31967.27")
    price = published("binance", "BTCUSDT", Side.LONG, "109.488", "32481.98", margin="1535443.01", mark="31967.27")
    assert price.quantize(D("0.01")) == D("18778.73")
    cash = wallet(engine, "t", "USDT")
    before, after = cross_the_price(engine, "v/BTCUSDT", price, Side.LONG, D("0.01"), 2)
    assert "liquidation_started" not in kinds(before)
    assert kinds(before) == ["oracle_price_updated", "margin_call_issued"]
    started = one(after, "liquidation_started")
    assert started["account"] == "t"
    # The recorded equity and maintenance margin are the isolated pool's: margin + uPnL, Q·P·2.5% − 16,300.
    equity = D("1535443.01") + D("109.488") * (D(after[0]["price"]) - D("32481.98"))
    assert D(started["equity"]) == equity <= D(started["maintenance_margin"])
    assert ("t", isolated_pool_id("v/BTCUSDT", None)) in engine.liquidating or "liquidation_ended" in kinds(after)
    assert all(event["market"] == "BTCUSDT" for event in after if event["kind"] == "position_liquidated")
    assert wallet(engine, "t", "USDT") == cash  # the wallet neither paid nor received anything


def test_binance_isolated_short_is_liquidated_at_the_published_price():
    # binance-lp-isolated-short (derived from Binance's formula): 1 short @ 10,000, margin 1,000,
    # MMR 0.4% -> 10,956.175299. Opened at 10x: the fill moves exactly 1,000 of initial margin.
    engine = venue("binance", "USDT", {"BTCUSDT": "10000"})
    events = run(engine, [c.ApplyFill("v", "BTCUSDT", "mm", "t", "1", "10000", seller_margin_mode="isolated",
                                      seller_leverage="10")])
    assert D(one(events, "isolated_margin_moved")["amount"]) == 1000
    assert wallet(engine, "t", "USDT") == 2000000 - 1000
    price = published("binance", "BTCUSDT", Side.SHORT, "1", "10000", margin="1000")
    assert price.quantize(D("0.000001")) == D("10956.175299")
    before, after = cross_the_price(engine, "v/BTCUSDT", price, Side.SHORT, D("0.01"), 2)
    assert "liquidation_started" not in kinds(before)
    assert one(after, "liquidation_started")["account"] == "t"
    liquidated = [event for event in after if event["kind"] == "position_liquidated"]
    assert liquidated and liquidated[0]["side"] == "short"
    # Bankruptcy against the isolated margin alone: 10,000 + 1,000 / 1.
    assert D(liquidated[0]["bankruptcy_price"]) == D(11000)
    assert wallet(engine, "t", "USDT") >= 2000000 - 1000  # the wallet never pays the isolated loss


@pytest.mark.parametrize("side, expected", [(Side.LONG, D(19700)), (Side.SHORT, D(20300))])
def test_bybit_isolated_is_liquidated_at_the_published_price(side, expected):
    # bybit-lp-linear-isolated-long: 1 BTC @ 20,000 at 50x, MMR 0.5%: IM 400, MM 100 (at entry)
    # -> LP = 20,000 ∓ 300. The fill moves the 400 of initial margin; the trigger is "position
    # margin <= maintenance margin" with Bybit's MM valued at the entry price.
    engine = venue("bybit", "USDT", {"BTCUSDT": "20000"})
    buyer, seller = ("t", "mm") if side is Side.LONG else ("mm", "t")
    role = "buyer" if side is Side.LONG else "seller"
    events = run(engine, [c.ApplyFill("v", "BTCUSDT", buyer, seller, "1", "20000",
                                      **{f"{role}_margin_mode": "isolated", f"{role}_leverage": "50"})])
    assert D(one(events, "isolated_margin_moved")["amount"]) == 400
    price = published("bybit", "BTCUSDT", side, "1", "20000", leverage="50")
    assert price == expected
    pool = isolated_pool(engine, "t", isolated_pool_id("v/BTCUSDT", None))
    assert (pool.collateral, pool.maintenance_margin) == (400, 100)
    safe = expected + (D("0.1") if side is Side.LONG else D("-0.1"))
    before = run(engine, [c.UpdateOracle("v", {"BTCUSDT": str(safe)}, 2)])
    assert "liquidation_started" not in kinds(before)
    after = run(engine, [c.UpdateOracle("v", {"BTCUSDT": str(expected)}, 3)])  # at the price: liquidated (<=)
    started = one(after, "liquidation_started")
    assert (D(started["equity"]), D(started["maintenance_margin"])) == (100, 100)
    cash = D(2000000) - 400
    # Bybit: the margin left above bankruptcy goes to the fund, never to (or from) the wallet.
    assert wallet(engine, "t", "USDT") == cash
    assert not engine.ledger.accounts["t"].positions[("v/BTCUSDT", None)].lots
    assert margin_of(engine, "t", "v/BTCUSDT") == 0


# ============================================================================================
# Losses stay in the isolated pool: the fund pays, then bad debt
# ============================================================================================


def drift_isolated(fund: str) -> tuple[Engine, D]:
    """Drift rules (a liquidator takes over at the oracle − 1%), the fund as the only layer: ``t``
    holds 20 SOL-PERP long at 150, isolated at 10x; its wallet keeps the rest of its 1,000."""
    engine = venue("drift_v2", "USDC", {"SOL-PERP": "150"}, fund=fund, traders=(("t", "1000"),),
                   overrides={"waterfall": {"layers": ["insurance"]}})
    events = run(engine, [c.ApplyFill("v", "SOL-PERP", "t", "mm", "20", "150", buyer_margin_mode="isolated",
                                      buyer_leverage="10")])
    margin = D(one(events, "isolated_margin_moved")["amount"])
    assert margin >= 300 and wallet(engine, "t", "USDC") == 1000 - margin
    return engine, margin


def test_a_bankrupt_isolated_position_is_covered_by_the_fund_and_never_by_the_wallet():
    engine, margin = drift_isolated(fund="100000")
    cash = wallet(engine, "t", "USDC")
    events = run(engine, [c.UpdateOracle("v", {"SOL-PERP": "120"}, 2)])
    # Taken over at 118.8: the isolated margin ends at margin − 20 × 31.2, the fund pays the rest.
    deficit = 20 * D("31.2") - margin
    assert kinds(events) == ["oracle_price_updated", "margin_call_issued", "liquidation_started",
                             "position_liquidated", "insurance_fund_drawn", "liquidation_ended", "margin_call_cleared"]
    assert D(one(events, "insurance_fund_drawn")["amount"]) == deficit
    assert D(one(events, "position_liquidated")["bankruptcy_price"]) == 150 - margin / 20
    assert wallet(engine, "t", "USDC") == cash
    assert margin_of(engine, "t", "v/SOL-PERP") == 0
    assert "bad_debt" not in engine.ledger.pools
    assert cross_pool(engine, "t", "USDC").equity == cash


def test_a_bankrupt_isolated_position_beyond_the_fund_is_bad_debt_written_off():
    engine, margin = drift_isolated(fund="50")
    cash = wallet(engine, "t", "USDC")
    events = run(engine, [c.UpdateOracle("v", {"SOL-PERP": "120"}, 2)])
    deficit = 20 * D("31.2") - margin
    assert kinds(events) == ["oracle_price_updated", "margin_call_issued", "liquidation_started",
                             "position_liquidated", "insurance_fund_drawn", "bad_debt", "liquidation_ended",
                             "margin_call_cleared"]
    paid = D(50) - D("0.000001")  # Drift's fund keeps one unit: min(loss, vault − 1, tier room)
    assert D(one(events, "insurance_fund_drawn")["amount"]) == paid
    assert D(one(events, "bad_debt")["amount"]) == deficit - paid
    assert wallet(engine, "t", "USDC") == cash  # the holder risked its isolated margin, no more
    assert margin_of(engine, "t", "v/SOL-PERP") == 0
    assert engine.ledger.amount("USDC", engine.ledger.pools["bad_debt"]["USDC"]) == -(deficit - paid)
    assert not engine.liquidating and not engine.margin_called
    # The account trades on: the written-off loss does not follow it.
    run(engine, [c.ApplyFill("v", "SOL-PERP", "t", "mm", "1", "120")])


def test_a_cross_liquidation_leaves_the_isolated_margin_alone():
    # t: a cross BTCUSDT long on a thin wallet, and an isolated ZECUSDT short with its own margin.
    engine = venue("binance", "USDT", {"BTCUSDT": "60000", "ZECUSDT": "50"}, traders=(("t", "2000"),))
    run(engine, [c.ApplyFill("v", "ZECUSDT", "mm", "t", "10", "50", seller_margin_mode="isolated",
                             seller_leverage="5")])
    assert margin_of(engine, "t", "v/ZECUSDT") == 100
    run(engine, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "0.5", "60000")])
    events = run(engine, [c.UpdateOracle("v", {"BTCUSDT": "56000"}, 2)])
    assert "liquidation_started" in kinds(events)
    assert {event["market"] for event in events if event["kind"] == "position_liquidated"} == {"BTCUSDT"}
    assert margin_of(engine, "t", "v/ZECUSDT") == 100
    assert engine.ledger.accounts["t"].positions[("v/ZECUSDT", None)].lots == -10000


def test_an_isolated_position_is_deleveraged_against_and_ranked_within_its_own_pool():
    # Binance with an empty fund: what the book cannot fill within bankruptcy is deleveraged
    # against the profitable opposite side, here w's isolated short and mm's cross short.
    engine = venue("binance", "USDT", {"BTCUSDT": "60000"}, fund="0", traders=(("t", "2000000"), ("w", "100000")),
                   overrides={"execution": {"book_depth": "1000000"}})
    run(engine, [
        c.ApplyFill("v", "BTCUSDT", "t", "w", "1", "60000", buyer_margin_mode="isolated", buyer_leverage="20",
                    seller_margin_mode="isolated", seller_leverage="2"),
        c.ApplyFill("v", "BTCUSDT", "t", "mm", "1", "60000", buyer_margin_mode="isolated"),
    ])
    cash = wallet(engine, "t", "USDT")
    w_margin = margin_of(engine, "w", "v/BTCUSDT")
    events = run(engine, [c.UpdateOracle("v", {"BTCUSDT": "50000"}, 2)])
    # t's pool: 2 BTC long on 2 × 3,000 of margin, bankrupt at 57,000. w's short is ranked within
    # its own isolated pool (PnL% over its 30,000 of margin) ahead of mm's big cross wallet.
    ranked = one(events, "adl_queue_ranked")
    assert [name for name, _, _ in ranked["queue"]] == ["w", "mm"]
    deleveraged = [(event["account"], D(event["price"])) for event in events
                   if event["kind"] == "position_auto_deleveraged"]
    assert deleveraged == [("w", D(57000)), ("mm", D(57000))]
    assert wallet(engine, "t", "USDT") == cash == 2000000 - 6000
    # w's profit (3,000) went into its isolated margin, which returned to its wallet on the close.
    assert w_margin == 30000 and wallet(engine, "w", "USDT") == 100000 - 30000 + 33000
    assert margin_of(engine, "w", "v/BTCUSDT") == 0


def test_the_hyperliquid_vault_takes_an_isolated_position_with_its_margin_only():
    engine = venue("hyperliquid", "USDC", {"BTC": "60000"}, traders=(("t", "10000"),))
    run(engine, [c.ApplyFill("v", "BTC", "t", "mm", "1", "60000", buyer_margin_mode="isolated", buyer_leverage="20")])
    margin = margin_of(engine, "t", "v/BTC")
    assert margin == 3000
    cash, vault = wallet(engine, "t", "USDC"), wallet(engine, "v/liquidator", "USDC")
    # Equity 3,000 − 60,000·x below ⅔ of MM (1.25% of the notional): the vault takes it at the mark.
    events = run(engine, [c.UpdateOracle("v", {"BTC": "57300"}, 2)])
    taken = one(events, "position_liquidated")
    assert (taken["method"], taken["counterparty"]) == ("backstop", "v/liquidator")
    assert wallet(engine, "t", "USDC") == cash
    assert wallet(engine, "v/liquidator", "USDC") == vault + 300  # the margin left, not the wallet
    assert margin_of(engine, "t", "v/BTC") == 0


# ============================================================================================
# Opening and moving margin
# ============================================================================================


def test_a_fill_moves_the_initial_margin_and_a_closing_fill_returns_what_is_left():
    engine = venue("binance", "USDT", {"BTCUSDT": "60000"})
    events = run(engine, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "0.5", "60000", buyer_margin_mode="isolated",
                                      buyer_leverage="25", buyer_fee="3")])
    assert kinds(events) == ["fill_applied", "isolated_margin_moved"]
    # 30,000 / 25 = 1,200 moved; the 3 fee is taken from the isolated margin.
    assert D(one(events, "isolated_margin_moved")["amount"]) == 1200
    assert margin_of(engine, "t", "v/BTCUSDT") == 1197
    assert wallet(engine, "t", "USDT") == 2000000 - 1200
    assert engine.ledger.accounts["t"].positions[("v/BTCUSDT", None)].leverage == 25
    # Adding at the same leverage moves the initial margin of what is added only.
    events = run(engine, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "0.1", "60000", buyer_margin_mode="isolated")])
    assert D(one(events, "isolated_margin_moved")["amount"]) == 240
    # Reducing moves nothing; realized PnL goes to the isolated margin.
    run(engine, [c.UpdateOracle("v", {"BTCUSDT": "61000"}, 2)])
    events = run(engine, [c.ApplyFill("v", "BTCUSDT", "mm", "t", "0.2", "61000", seller_margin_mode="isolated")])
    assert kinds(events) == ["fill_applied"]
    assert margin_of(engine, "t", "v/BTCUSDT") == 1197 + 240 + 200
    # Closing returns the rest to the wallet.
    run(engine, [c.ApplyFill("v", "BTCUSDT", "mm", "t", "0.4", "61000", seller_margin_mode="isolated")])
    assert margin_of(engine, "t", "v/BTCUSDT") == 0
    assert wallet(engine, "t", "USDT") == 2000000 - 3 + 600
    assert "t" not in engine.isolated_accounts


def test_isolated_fills_are_refused_when_they_should_be():
    engine = venue("binance", "USDT", {"BTCUSDT": "60000"}, traders=(("t", "1000"), ("x", "100000")))
    # The wallet cannot fund 30,000 / 20 = 1,500.
    reason = rejected(engine, c.ApplyFill("v", "BTCUSDT", "t", "mm", "0.5", "60000", buyer_margin_mode="isolated",
                                          buyer_leverage="20"), "buyer")
    assert "1500" in reason and "1000" in reason
    # Beyond the bracket's maximum leverage (125x below 50,000 of notional, 100x above).
    rejected(engine, c.ApplyFill("v", "BTCUSDT", "x", "mm", "1", "60000", buyer_margin_mode="isolated",
                                 buyer_leverage="125"), "buyer_leverage")
    rejected(engine, c.ApplyFill("v", "BTCUSDT", "x", "mm", "1", "60000", buyer_margin_mode="isolated",
                                 buyer_leverage="0"), "buyer_leverage")
    rejected(engine, c.ApplyFill("v", "BTCUSDT", "x", "mm", "1", "60000", buyer_leverage="10"), "buyer_leverage")
    run(engine, [c.ApplyFill("v", "BTCUSDT", "x", "mm", "0.1", "60000", buyer_margin_mode="isolated",
                             buyer_leverage="10")])
    # Another leverage on an open position, and a cross fill on an isolated position.
    rejected(engine, c.ApplyFill("v", "BTCUSDT", "x", "mm", "0.1", "60000", buyer_margin_mode="isolated",
                                 buyer_leverage="20"), "buyer_leverage")
    rejected(engine, c.ApplyFill("v", "BTCUSDT", "x", "mm", "0.1", "60000"), "buyer.margin_mode")
    # A cross position's wallet keeps the cross positions' initial margin.
    run(engine, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "0.1", "60000")])
    rejected(engine, c.ApplyFill("v", "ZECUSDT" if False else "BTCUSDT", "mm", "t", "0.001", "60000",
                                 seller_margin_mode="isolated"), "seller.margin_mode")


def test_dydx_has_no_isolated_margin_mode():
    engine = venue("dydx_v4", "USDC", {"BTC-USD": "60000"})
    reason = rejected(engine, c.ApplyFill("v", "BTC-USD", "t", "mm", "1", "60000", buyer_margin_mode="isolated"),
                      "buyer_margin_mode")
    assert "subaccount" in reason


def test_margin_moves_are_refused_when_they_should_be():
    engine = venue("binance", "USDT", {"BTCUSDT": "60000", "ZECUSDT": "50"}, traders=(("t", "3000"),))
    run(engine, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "0.5", "60000", buyer_margin_mode="isolated",
                             buyer_leverage="20"),
                 c.ApplyFill("v", "ZECUSDT", "t", "mm", "10", "50")])
    assert margin_of(engine, "t", "v/BTCUSDT") == 1500
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "0"), "amount")
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "0.000000001"), "amount")
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "NaN"), "amount")
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "ZECUSDT", "10"), "market")  # a cross position
    rejected(engine, c.AdjustIsolatedMargin("v", "mm", "BTCUSDT", "10"), "market")  # mm is cross
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "ETHUSDT", "10"), None)  # not listed
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "10", hedge_side="long"), "hedge_side")
    rejected(engine, c.AdjustIsolatedMargin("v", "nobody", "BTCUSDT", "10"), None)
    # More than the wallet holds.
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "1501"), "amount")
    # Taking out what the initial margin needs (1,500 at 20x), or more than there is.
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-1"), "amount")
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-2000"), "amount")
    # Added, then the excess can come out again, not more.
    events = run(engine, [c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "500")])
    assert kinds(events) == ["isolated_margin_moved"]
    assert (D(events[0]["amount"]), D(events[0]["isolated_margin"])) == (500, 2000)
    assert wallet(engine, "t", "USDT") == 3000 - 1500 - 500
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-500.01"), "amount")
    # Binance's max removable: min(margin − MM, margin + unrealized PnL − IM at the mark). At 61,000
    # (PnL +500, IM 1,525, MM 122): min(1,878, 975) = 975, profit included.
    run(engine, [c.UpdateOracle("v", {"BTCUSDT": "61000"}, 2)])
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-975.01"), "amount")
    taken = copy.deepcopy(engine)
    run(taken, [c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-975")])
    assert margin_of(taken, "t", "v/BTCUSDT") == 1025
    # At 59,800 (PnL −100, IM 1,495): 405 at most.
    run(engine, [c.UpdateOracle("v", {"BTCUSDT": "59800"}, 3)])
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-500"), "amount")
    run(engine, [c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-300")])
    assert margin_of(engine, "t", "v/BTCUSDT") == 1700
    # In liquidation: nothing comes out.
    run(engine, [c.UpdateOracle("v", {"BTCUSDT": "56700"}, 4)])
    assert ("t", "v/BTCUSDT") in engine.liquidating or margin_of(engine, "t", "v/BTCUSDT") == 0


def test_margin_cannot_come_out_of_a_position_in_liquidation():
    # The fund cannot hold it and the book is too thin: the liquidation waits, the margin stays.
    engine = venue("binance", "USDT", {"BTCUSDT": "60000"}, fund="0",
                   overrides={"execution": {"book_depth": "1000"}, "waterfall": {"layers": ["insurance"]}})
    run(engine, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "1", "60000", buyer_margin_mode="isolated",
                             buyer_leverage="20")])
    run(engine, [c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "100")])
    events = run(engine, [c.UpdateOracle("v", {"BTCUSDT": "57000"}, 2)])
    assert "liquidation_paused" in kinds(events)
    assert ("t", "v/BTCUSDT") in engine.liquidating
    reason = rejected(engine, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-1"), "amount")
    assert "liquidated" in reason
    # Adding margin is allowed and may end the liquidation.
    events = run(engine, [c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "5000")])
    assert "liquidation_ended" in kinds(events)


def test_hedge_mode_legs_are_isolated_pools_of_their_own():
    engine = venue("binance", "USDT", {"BTCUSDT": "60000"}, traders=())
    run(engine, [c.OpenAccount("h", "v", position_mode="hedge"), c.Deposit("h", "USDT", "100000"),
                 c.ApplyFill("v", "BTCUSDT", "h", "mm", "1", "60000", buyer_margin_mode="isolated",
                             buyer_hedge_side="long", buyer_leverage="20"),
                 c.ApplyFill("v", "BTCUSDT", "mm", "h", "1", "60000", seller_margin_mode="isolated",
                             seller_hedge_side="short", seller_leverage="50")])
    rejected(engine, c.AdjustIsolatedMargin("v", "h", "BTCUSDT", "10"), "hedge_side")
    run(engine, [c.AdjustIsolatedMargin("v", "h", "BTCUSDT", "10", hedge_side="short")])
    assert margin_of(engine, "h", "v/BTCUSDT", Side.SHORT) == 1210
    events = run(engine, [c.UpdateOracle("v", {"BTCUSDT": "61500"}, 2)])
    liquidated = [event for event in events if event["kind"] == "position_liquidated"]
    assert liquidated and {event["side"] for event in liquidated} == {"short"}
    assert margin_of(engine, "h", "v/BTCUSDT", Side.LONG) == 3000


# ============================================================================================
# Replay
# ============================================================================================


def isolated_stream() -> list[c.Command]:
    commands = [c.CreateVenue("v", "bybit"), c.FundInsurance("USDT", "1000", venue="v"),
                c.Deposit("v/book", "USDT", "100000000"), c.OpenAccount("mm", "v"), c.Deposit("mm", "USDT", "10000000"),
                c.UpdateOracle("v", {"BTCUSDT": "60000"}, 1)]
    for index in range(12):
        name = f"a{index}"
        commands += [c.OpenAccount(name, "v"), c.Deposit(name, "USDT", str(500 + 300 * index))]
        isolated = index % 3 != 0
        long = index % 2 == 0
        buyer, seller = (name, "mm") if long else ("mm", name)
        role = "buyer" if long else "seller"
        extra = {f"{role}_margin_mode": "isolated", f"{role}_leverage": str(5 + 7 * index)} if isolated else {}
        commands.append(c.ApplyFill("v", "BTCUSDT", buyer, seller, "0.1", "60000", **extra))
        if isolated and index % 4 == 1:
            commands.append(c.AdjustIsolatedMargin("v", name, "BTCUSDT", "25"))
    for step, price in enumerate(("59000", "57000", "61000", "64000", "52000", "66000", "48000"), start=2):
        commands.append(c.UpdateOracle("v", {"BTCUSDT": price}, step))
    return commands


def test_the_same_commands_give_the_same_events_including_through_json():
    first, second = Engine(), Engine()
    events = run(first, isolated_stream())
    assert kinds(events).count("liquidation_started") >= 3
    assert run(second, [command_from_dict(json.loads(json.dumps(command.to_dict())))
                        for command in isolated_stream()]) == events


def test_verify_rederives_every_isolated_liquidation_from_the_log(tmp_path):
    from solvent.store import CommandLog, DurableEngine, replay_log, state_digest, verify_log

    log = CommandLog(f"sqlite:///{tmp_path}/log.db")
    try:
        durable = DurableEngine(log, snapshot_every=25)
        for index, command in enumerate(isolated_stream()):
            durable.submit(command, recorded_at="2025-10-10T21:15:00+00:00", key=f"k{index}")
        engine, replayed = replay_log(log)
        assert replayed.final_digest == state_digest(durable.engine) == state_digest(engine)
        report = verify_log(log)
        # Each liquidation_started was checked against the isolated pool it names.
        assert report.perp_triggers_checked == report.liquidation_events["liquidation_started"] >= 3
    finally:
        log.close()


def test_a_liquidator_takes_over_an_isolated_position_and_its_deficit_goes_to_the_fund():
    # Drift with liquidators open: t's isolated long waits for a TakeOver at the oracle − 1%;
    # taken whole at 134.64 its margin (300) ends at −7.2, which the fund covers.
    engine = venue("drift_v2", "USDC", {"SOL-PERP": "150"}, traders=(("t", "1000"), ("liq", "100000")),
                   overrides={"execution": {"takeover": "open"}})
    run(engine, [c.ApplyFill("v", "SOL-PERP", "t", "mm", "20", "150", buyer_margin_mode="isolated",
                             buyer_leverage="10")])
    events = run(engine, [c.UpdateOracle("v", {"SOL-PERP": "136"}, 2)])
    assert "liquidation_started" in kinds(events) and "position_liquidated" not in kinds(events)
    assert ("t", "v/SOL-PERP") in engine.liquidating
    events = run(engine, [c.TakeOver("v", "liq", "t", "SOL-PERP", "20")])
    taken = one(events, "position_liquidated")
    assert (taken["method"], taken["counterparty"], D(taken["price"])) == ("takeover", "liq", D("134.64"))
    assert D(one(events, "insurance_fund_drawn")["amount"]) == D("7.2")
    assert wallet(engine, "t", "USDC") == 700 and margin_of(engine, "t", "v/SOL-PERP") == 0
    assert not engine.liquidating and "t" not in engine.isolated_accounts


def test_a_closing_fill_may_not_lose_more_than_the_isolated_margin():
    engine = venue("binance", "USDT", {"BTCUSDT": "60000"})
    run(engine, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "1", "60000", buyer_margin_mode="isolated",
                             buyer_leverage="20")])
    cash = wallet(engine, "t", "USDT")
    reason = rejected(engine, c.ApplyFill("v", "BTCUSDT", "mm", "t", "1", "56000", seller_margin_mode="isolated"),
                      "seller")
    assert "beyond the isolated margin" in reason
    rejected(engine, c.ApplyFill("v", "BTCUSDT", "mm", "t", "0.5", "53000", seller_margin_mode="isolated"), "seller")
    run(engine, [c.ApplyFill("v", "BTCUSDT", "mm", "t", "1", "57500", seller_margin_mode="isolated")])
    assert wallet(engine, "t", "USDT") == cash + 500


# ============================================================================================
# What money leaving a pool must leave: Hyperliquid's floor of 10% of the position value
# ============================================================================================


def test_hyperliquid_withdrawals_leave_ten_percent_of_the_position_value():
    # 1 BTC at 100,000 on cross at 40x: IM 2,500, but a transfer must leave max(IM, 10,000).
    engine = venue("hyperliquid", "USDC", {"BTC": "100000"}, traders=(("t", "12000"),))
    run(engine, [c.ApplyFill("v", "BTC", "t", "mm", "1", "100000")])
    reason = rejected(engine, c.Withdraw("t", "USDC", "2000.000001"), "amount")
    assert "10% of the position value" in reason
    run(engine, [c.Withdraw("t", "USDC", "2000")])  # leaves exactly 10,000
    assert wallet(engine, "t", "USDC") == D("10000")
    # Binance asks only for the initial margin (125x here: 800).
    binance = venue("binance", "USDT", {"BTCUSDT": "100000"}, traders=(("t", "12000"),))
    run(binance, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "1", "100000"), c.Withdraw("t", "USDT", "5000")])


@pytest.mark.parametrize("preset, settle, market, most", [
    # Hyperliquid: margin + unrealized PnL must stay >= max(IM 2,525, 10% of 101,000) → 12,500 + 1,000 − 10,100
    ("hyperliquid", "USDC", "BTC", "3400"),
    # Binance: min(margin − MM 455, margin + unrealized PnL − IM 2,525 at the mark) = min(12,045, 10,975)
    ("binance", "USDT", "BTCUSDT", "10975"),
    # Bybit (no published rule here): margin less any unrealized loss (a profit does not count) >= IM
    ("bybit", "USDT", "BTCUSDT", "9975"),
])
def test_margin_taken_out_of_an_isolated_position_leaves_what_the_venue_asks(preset, settle, market, most):
    engine = venue(preset, settle, {market: "100000"}, traders=(("t", "20000"),))
    run(engine, [c.ApplyFill("v", market, "t", "mm", "1", "100000", buyer_margin_mode="isolated", buyer_leverage="40"),
                 c.AdjustIsolatedMargin("v", "t", market, "10000"),
                 c.UpdateOracle("v", {market: "101000"}, 2)])
    assert margin_of(engine, "t", f"v/{market}") == D("12500")
    over = D(most) + D("0.01")
    rejected(engine, c.AdjustIsolatedMargin("v", "t", market, str(-over)), "amount")
    run(engine, [c.AdjustIsolatedMargin("v", "t", market, f"-{most}")])
    assert margin_of(engine, "t", f"v/{market}") == D("12500") - D(most)


def test_binance_leaves_the_maintenance_margin_in_cash_whatever_the_unrealized_profit():
    # Binance's max withdrawal (cross) and max removable margin (isolated) are both
    # min(balance − MM, balance + unrealized PnL − IM): with a large profit, the first one binds.
    cross = venue("binance", "USDT", {"BTCUSDT": "100000"}, traders=(("t", "12000"),))
    run(cross, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "1", "100000"), c.UpdateOracle("v", {"BTCUSDT": "110000"}, 2)])
    # PnL +10,000, MM 110,000 × 0.5% − 50 = 500: min(12,000 − 500, 22,000 − IM) = 11,500.
    reason = rejected(cross, c.Withdraw("t", "USDT", "11500.01"), "amount")
    assert "maintenance margin" in reason
    run(cross, [c.Withdraw("t", "USDT", "11500")])
    isolated = venue("binance", "USDT", {"BTCUSDT": "100000"}, traders=(("t", "20000"),))
    run(isolated, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "1", "100000", buyer_margin_mode="isolated",
                               buyer_leverage="40"),
                   c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "10000"),
                   c.UpdateOracle("v", {"BTCUSDT": "120000"}, 2)])
    # Margin 12,500, PnL +20,000, MM 120,000 × 0.5% − 50 = 550, IM 3,000: min(11,950, 29,500).
    rejected(isolated, c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-11950.01"), "amount")
    run(isolated, [c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "-11950")])
    assert margin_of(isolated, "t", "v/BTCUSDT") == 550


def bybit_long_with_added_margin() -> Engine:
    """Bybit: t long 1 BTC at 20,000 isolated at 50x (margin 400), 600 added (1,000), 4,000 in the wallet."""
    engine = venue("bybit", "USDT", {"BTCUSDT": "20000"}, traders=(("t", "5000"),))
    run(engine, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "1", "20000", buyer_margin_mode="isolated",
                             buyer_leverage="50"),
                 c.AdjustIsolatedMargin("v", "t", "BTCUSDT", "600")])
    assert (margin_of(engine, "t", "v/BTCUSDT"), wallet(engine, "t", "USDT")) == (1000, 4000)
    return engine


def test_bybit_partial_close_takes_the_isolated_margin_down_in_proportion():
    # Bybit (adjust-margin help page, scenario 3): a partial close reduces the position margin in
    # proportion and leaves the liquidation price where it was. 1 BTC long at 20,000, 50x: margin
    # 400, 600 added → 1,000; LP = EP − (margin − MM at entry)/Q = 20,000 − (1,000 − 100) = 19,100.
    engine = bybit_long_with_added_margin()
    # Half closed at 21,000: half the margin (500) and the realized 500 go to the wallet.
    events = run(engine, [c.ApplyFill("v", "BTCUSDT", "mm", "t", "0.5", "21000", seller_margin_mode="isolated")])
    moved = one(events, "isolated_margin_moved")
    assert (D(moved["amount"]), D(moved["isolated_margin"])) == (-1000, 500)
    assert (margin_of(engine, "t", "v/BTCUSDT"), wallet(engine, "t", "USDT")) == (500, 5000)
    # The liquidation price is unchanged: 20,000 − (500 − 50)/0.5 = 19,100.
    assert published("bybit", "BTCUSDT", Side.LONG, "0.5", "20000", margin="500") == 19100
    assert one(run(engine, [c.UpdateOracle("v", {"BTCUSDT": "19100"}, 2)]), "liquidation_started")
    # Binance keeps the margin in the position (no rule published here): the realized PnL joins it.
    binance = venue("binance", "USDT", {"BTCUSDT": "20000"}, traders=(("t", "5000"),))
    run(binance, [c.ApplyFill("v", "BTCUSDT", "t", "mm", "1", "20000", buyer_margin_mode="isolated",
                              buyer_leverage="50"),
                  c.ApplyFill("v", "BTCUSDT", "mm", "t", "0.5", "21000", seller_margin_mode="isolated")])
    assert margin_of(binance, "t", "v/BTCUSDT") == 900


def test_hyperliquid_isolated_only_market():
    # Strict isolated (Hyperliquid's isolated-only markets): no cross side, no margin taken out,
    # the margin leaving in proportion as the position closes; margin may still be added.
    engine = venue("hyperliquid", "USDC", {"BTC": "100000"}, traders=(("t", "20000"), ("u", "20000")))
    run(engine, [c.CreateMarket("v", "XYZ", "XYZ", "USD", "USDC", size_decimals=2,
                                margin={"tiers": [{"floor": "0", "max_leverage": "10"}]}, isolated_only=True),
                 c.UpdateOracle("v", {"XYZ": "50"}, 2)])
    rejected(engine, c.ApplyFill("v", "XYZ", "t", "u", "100", "50"), "buyer_margin_mode")
    rejected(engine, c.ApplyFill("v", "XYZ", "t", "u", "100", "50", buyer_margin_mode="isolated"), "seller_margin_mode")
    run(engine, [c.ApplyFill("v", "XYZ", "t", "u", "100", "50", buyer_margin_mode="isolated", buyer_leverage="5",
                             seller_margin_mode="isolated", seller_leverage="5")])
    assert margin_of(engine, "t", "v/XYZ") == 1000
    rejected(engine, c.AdjustIsolatedMargin("v", "t", "XYZ", "-1"), "amount")
    run(engine, [c.AdjustIsolatedMargin("v", "t", "XYZ", "500")])
    # A quarter closed at 52: a quarter of the 1,500 (375) and the realized 50 go to the wallet.
    run(engine, [c.ApplyFill("v", "XYZ", "u", "t", "25", "52", buyer_margin_mode="isolated",
                             seller_margin_mode="isolated")])
    assert margin_of(engine, "t", "v/XYZ") == 1125
    assert wallet(engine, "t", "USDC") == 20000 - 1500 + 375 + 50
    assert engine.conservation().holds


def test_changing_an_isolated_positions_leverage_resets_its_margin():
    # Bybit's adjust leverage (help page 900000294083, scenario 1): the margin becomes the initial
    # margin of the new leverage on the entry value; what was added beyond it goes back.
    engine = bybit_long_with_added_margin()
    events = run(engine, [c.SetIsolatedLeverage("v", "t", "BTCUSDT", "10")])  # 2,000 needed: 1,000 more
    changed = one(events, "isolated_leverage_changed")
    assert (D(changed["leverage"]), D(changed["isolated_margin"])) == (10, 2000)
    assert (margin_of(engine, "t", "v/BTCUSDT"), wallet(engine, "t", "USDT")) == (2000, 3000)
    run(engine, [c.SetIsolatedLeverage("v", "t", "BTCUSDT", "40")])  # 500: 1,500 back
    assert (margin_of(engine, "t", "v/BTCUSDT"), wallet(engine, "t", "USDT")) == (500, 4500)
    assert engine.ledger.accounts["t"].positions[("v/BTCUSDT", None)].leverage == 40
    # Refused, changing nothing: a wallet too thin for 2x, above the bracket's maximum, a leverage
    # that would be liquidated at once (after a fall: at 19,700 a 100x margin of 200 is below MM 100 + loss).
    rejected(engine, c.SetIsolatedLeverage("v", "t", "BTCUSDT", "2"), "leverage")
    rejected(engine, c.SetIsolatedLeverage("v", "t", "BTCUSDT", "1000"), "leverage")
    rejected(engine, c.SetIsolatedLeverage("v", "t", "BTCUSDT", "0"), "leverage")
    run(engine, [c.UpdateOracle("v", {"BTCUSDT": "19700"}, 2)])
    rejected(engine, c.SetIsolatedLeverage("v", "t", "BTCUSDT", "100"), "leverage")
    rejected(engine, c.SetIsolatedLeverage("v", "t", "ETHUSDT", "10"), None)  # not listed
    rejected(engine, c.SetIsolatedLeverage("v", "mm", "BTCUSDT", "10"), "market")  # mm is cross
    assert engine.conservation().holds
