"""More conformance vectors: input variants the shared sample does not exercise.

Same format and entry point as shared/conformance (``run_case``). Each case names its source:
a venue's own published number (docs, unit tests), or "derived:" when the expected value was
worked out by hand from the venue's published rule (the arithmetic is in the comment), never by
running solvent. Units and tolerances follow shared/conformance/README.md.
"""

import json

import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.conformance.runner import run_case, run_paths


def case(id, check, input, expect, source, tol=None):
    entry = {"id": id, "source": source, "check": check, "input": input, "expect": expect}
    if tol:
        entry["tol"] = tol
    return entry


# ------------------------------------------------------------------------------- Binance

FREQTRADE_BINANCE = ("freqtrade/freqtrade tests/leverage/test_liquidation_price.py (Binance FAQ calc example "
                     "b3c689c1f50a44cabb3a84e663b81d93, cross rows: TMM1/UPNL1 = the other position's MM and uPnL at "
                     "its mark)")
BTC = {"symbol": "BTCUSDT", "side": "long", "size": "109.488", "entry_price": "32481.98", "mark_price": "31967.27",
       "mmr": "0.025", "cum": "16300"}
ETH = {"symbol": "ETHUSDT", "side": "long", "size": "3683.979", "entry_price": "1456.84", "mark_price": "1335.18",
       "mmr": "0.10", "cum": "135365"}


def binance_lp(positions, target, wallet, mode="cross"):
    return {"margin_mode": mode, "wallet_balance": wallet, "positions": positions, "target": target}


def flat(symbol, side, size, entry, mmr, cum="0", mark=None):
    row = {"symbol": symbol, "side": side, "size": size, "entry_price": entry, "mmr": mmr, "cum": cum}
    if mark is not None:
        row["mark_price"] = mark
    return row


BINANCE = [
    case("binance-lp-cross-eth-with-btc", "binance.liquidation_price",
         binance_lp([BTC, ETH], "ETHUSDT", "1535443.01"), {"price": "1153.26"}, FREQTRADE_BINANCE, {"price": "0.01"}),
    case("binance-lp-cross-btc-with-eth", "binance.liquidation_price",
         binance_lp([ETH, BTC], "BTCUSDT", "1535443.01"), {"price": "26316.89"}, FREQTRADE_BINANCE, {"price": "0.01"}),
    # derived: one-way short, LP = (WB + cum + Q·EP) / (Q·MMR + Q) = 11,000 / 1.004
    case("binance-lp-isolated-short", "binance.liquidation_price",
         binance_lp([flat("X", "short", "1", "10000", "0.004")], "X", "1000", "isolated"),
         {"price": "10956.175299"}, "derived: Binance LP formula (reference §1.3), side = -1", {"price": "0.000001"}),
    # derived: hedge mode, both legs of X move together:
    # LP = (WB + cumL + cumS − Q_L·EP_L + Q_S·EP_S) / (Q_L·MMR_L + Q_S·MMR_S − Q_L + Q_S)
    #    = (1000 − 20000 + 10000) / (0.008 + 0.004 − 2 + 1) = −9000 / −0.988
    case("binance-lp-hedge-two-legs", "binance.liquidation_price",
         binance_lp([flat("X", "short", "1", "10000", "0.004"), flat("X", "long", "2", "10000", "0.004")], "X", "1000"),
         {"price": "9109.311741"}, "derived: Binance hedge-mode LP formula (reference §1.3)", {"price": "0.000001"}),
    # derived: isolated ignores the other position (TMM1 = UPNL1 = 0), mark_price absent (not needed)
    case("binance-lp-isolated-ignores-others", "binance.liquidation_price",
         binance_lp([flat("X", "short", "1", "10000", "0.004"), BTC], "X", "1000", "isolated"),
         {"price": "10956.175299"}, "derived: isolated: TMM1 = UPNL1 = 0 (reference §1.3)", {"price": "0.000001"}),
    # derived: at a bracket floor the next bracket applies: 50,000 × 2.5% − 750
    case("binance-mm-at-bracket-floor", "binance.maintenance_margin",
         {"brackets": [{"floor": "0", "mmr": "0.01"}, {"floor": "50000", "mmr": "0.025"}], "notional": "50000"},
         {"maintenance_margin": "500"}, "derived: ZEC/USDT brackets (freqtrade test), MM = N·MMR − cum, continuous"),
    case("binance-mm-just-below-floor", "binance.maintenance_margin",
         {"brackets": [{"floor": "0", "mmr": "0.01"}, {"floor": "50000", "mmr": "0.025"}], "notional": "49999"},
         {"maintenance_margin": "499.99"}, "derived: 49,999 × 1%"),
    case("binance-mm-zero-notional", "binance.maintenance_margin",
         {"brackets": [{"floor": "0", "mmr": "0.01"}], "notional": "0"}, {"maintenance_margin": "0"}, "derived"),
    case("binance-cum-one-bracket", "binance.bracket_cum", {"brackets": [{"floor": "0", "mmr": "0.004"}]},
         {"cum": ["0"]}, "derived: cum_1 = 0"),
]

# ------------------------------------------------------------------------------- Hyperliquid

HYPERLIQUID = [
    # derived: short, liq = EP + m/Q/(1 + l)… solved: (EP + m/Q)/(1 + l) = 120 / 1.05, l = 1/(2·10)
    case("hyperliquid-lp-short", "hyperliquid.liquidation_price",
         {"side": "short", "size": "1", "entry_price": "100", "isolated_margin": "20", "max_leverage": "10"},
         {"price": "114.285714"}, "derived: Hyperliquid liquidation price formula (reference §4.3)",
         {"price": "0.000001"}),
    case("hyperliquid-mm-at-tier-floor", "hyperliquid.maintenance_margin",
         {"tiers": [{"floor": "0", "max_leverage": "40"}, {"floor": "150000000", "max_leverage": "20"}],
          "notional": "150000000"},
         {"maintenance_margin": "1875000"}, "derived: BTC margin table, 150M × 2.5% − 1,875,000 = 150M × 1.25%"),
    # derived: ETH 0-100M 25x, >100M 15x: MMR 1/30, deduction 100M·(1/30 − 1/50)
    case("hyperliquid-mm-eth-tier2", "hyperliquid.maintenance_margin",
         {"tiers": [{"floor": "0", "max_leverage": "25"}, {"floor": "100000000", "max_leverage": "15"}],
          "notional": "200000000"},
         {"maintenance_margin": "5333333.33"}, "derived: https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers (ETH)"),
]

# ------------------------------------------------------------------------------- Bybit

BYBIT_USDT = "https://help.bybit.com/hc/en-us/articles/900000181046-Liquidation-Price-USDT-Contract-"
BYBIT_INVERSE_CROSS = "https://help.bybit.com/hc/en-us/articles/360039261334 (LP rounded to the 0.5 tick)"


def bybit(side, size, entry, leverage=None, mmr="0.005", contract="linear", mode="isolated", **more):
    data = {"contract": contract, "margin_mode": mode, "side": side, "size": size, "entry_price": entry, "mmr": mmr}
    if leverage is not None:
        data["leverage"] = leverage
    data.update(more)
    return data


BYBIT = [
    case("bybit-lp-linear-long-10000-50x", "bybit.liquidation_price", bybit("long", "1", "10000", "50"),
         {"price": "9850"}, BYBIT_USDT + " (10,000 × (1 − 2% + 0.5%))"),
    case("bybit-lp-linear-short-8000-40x", "bybit.liquidation_price", bybit("short", "1", "8000", "40"),
         {"price": "8160"}, BYBIT_USDT + " (8,000 × (1 + 2.5% − 0.5%))"),
    case("bybit-lp-linear-short-20000-40x", "bybit.liquidation_price",
         bybit("short", "1", "20000", "40", wallet_balance="500", fee_rate="0"),
         {"price": "20400"}, "support.moonxbt.com copy of the Bybit USDT liquidation page (20,000 × (1 + 2.5% − 0.5%))"),
    # derived: LP = EP − (IM − MM)/Q − extra/Q = 20,000 − 300 − 100
    case("bybit-lp-linear-extra-margin", "bybit.liquidation_price",
         bybit("long", "1", "20000", "50", extra_margin="100"), {"price": "19600"},
         "derived: https://testnet.bybit.com/en-US/help-center/s/article/Liquidation-Price-USDT-Contract (extra margin)"),
    # the position margin stated without a leverage (the shared sample's convention: wallet = IM)
    case("bybit-lp-linear-margin-without-leverage", "bybit.liquidation_price",
         bybit("long", "1", "20000", wallet_balance="400"), {"price": "19700"},
         "derived: the same doc example, isolated margin 400 given instead of 50x"),
    case("bybit-lp-linear-cross-available-balance", "bybit.liquidation_price",
         bybit("long", "1", "20000", "100", mode="cross", wallet_balance="2000", fee_rate="0"), {"price": "17900"},
         "support.moonxbt.com copy of the Bybit USDT page: sustainable loss = available 2,000 + IM 200 − MM 100"),
    # derived from the same rule on the page's older example: 2 BTC @ 10,000, 1% IM, 0.5% MM
    case("bybit-lp-linear-cross-two-btc", "bybit.liquidation_price",
         bybit("long", "2", "10000", "100", mode="cross", wallet_balance="2000", fee_rate="0"), {"price": "8950"},
         "derived: " + BYBIT_USDT + " (10,000 − (2,000 + 200 − 100)/2)"),
    # derived: inverse isolated LP_long = Q / (Q/EP + IM − MM), Q/EP = 1.2, IM 0.12, MM 0.006
    case("bybit-lp-inverse-isolated-long", "bybit.liquidation_price",
         bybit("long", "60000", "50000", "10", contract="inverse"), {"price": "45662.10"},
         "derived: https://testnet.bybit.com/ar-SA/help-center/article/Liquidation-Price-Calculation-under-Isolated-Mode-Unified-Trading-Account"),
    case("bybit-lp-inverse-isolated-short", "bybit.liquidation_price",
         bybit("short", "60000", "50000", "10", contract="inverse"), {"price": "55248.62"},
         "derived: same page, LP_short = Q / (Q/EP − (IM − MM))"),
    case("bybit-lp-inverse-cross-long-tick", "bybit.liquidation_price",
         bybit("long", "10000", "8000", mode="cross", contract="inverse", wallet_balance="0.5", fee_rate="0.00075",
               tick="0.5"),
         {"price": "5739.50"}, BYBIT_INVERSE_CROSS),
    # the same account with a leverage stated: inverse cross counts the account balance (which holds
    # the position margin), so the leverage changes nothing (the USDT cross rule adds IM to the
    # available balance; the coin-margined one does not)
    case("bybit-lp-inverse-cross-long-leverage-given", "bybit.liquidation_price",
         bybit("long", "10000", "8000", "100", mode="cross", contract="inverse", wallet_balance="0.5",
               fee_rate="0.00075", tick="0.5"),
         {"price": "5739.50"}, BYBIT_INVERSE_CROSS),
    case("bybit-bp-inverse-cross-long-leverage-given", "bybit.bankruptcy_price",
         bybit("long", "10000", "8000", "100", mode="cross", contract="inverse", wallet_balance="0.5",
               fee_rate="0.00075"),
         {"price": "5718.57"}, BYBIT_INVERSE_CROSS + " (1.00075 × 10,000 / (10,000/8,000 + 0.5))"),
    # derived: short, same doc: BP = 0.99925 × 10,000 / (1.25 − 0.5) = 13,323.33;
    # 10,000/LP = 1.25 − (0.5 − 1.25 × 0.5% − 10,000 × 0.00075 / BP) -> 13,213.45, rounded down to the tick
    case("bybit-lp-inverse-cross-short-tick", "bybit.liquidation_price",
         bybit("short", "10000", "8000", "100", mode="cross", contract="inverse", wallet_balance="0.5",
               fee_rate="0.00075", tick="0.5"),
         {"price": "13213.0"}, "derived: " + BYBIT_INVERSE_CROSS),
    case("bybit-bp-inverse-cross-long", "bybit.bankruptcy_price",
         bybit("long", "10000", "8000", mode="cross", contract="inverse", wallet_balance="0.5", fee_rate="0.00075"),
         {"price": "5718.57"}, BYBIT_INVERSE_CROSS + " (1.00075 × 10,000 / (10,000/8,000 + 0.5))"),
    case("bybit-bp-linear-long-10000", "bybit.bankruptcy_price",
         {"contract": "linear", "side": "long", "entry_price": "10000", "leverage": "50"}, {"price": "9800"},
         "Bybit Bankruptcy Price (USDT Contract) help page: 10,000 × (1 − 2%)"),
    case("bybit-bp-linear-short", "bybit.bankruptcy_price",
         {"contract": "linear", "side": "short", "entry_price": "10000", "leverage": "50"}, {"price": "10200"},
         "derived: same page, short: EP × (1 + 1/L)"),
    # derived: EP·L/(L+1) = 7,843.137…, rounded up to the 0.5 tick for a long (Bybit's note)
    case("bybit-bp-inverse-long-tick", "bybit.bankruptcy_price",
         {"contract": "inverse", "side": "long", "entry_price": "8000", "leverage": "50", "tick": "0.5"},
         {"price": "7843.5"}, "derived: https://help.bybit.com/hc/en-us/articles/360037757474 (rounding note)"),
    case("bybit-bp-inverse-short-tick", "bybit.bankruptcy_price",
         {"contract": "inverse", "side": "short", "entry_price": "8000", "leverage": "50", "tick": "0.5"},
         {"price": "8163.0"}, "derived: EP·L/(L−1) = 8,163.27, rounded down for a short"),
    case("bybit-bp-inverse-short-no-tick", "bybit.bankruptcy_price",
         {"contract": "inverse", "side": "short", "entry_price": "8000", "leverage": "50"},
         {"price": "8163.265306"}, "derived: EP·L/(L−1)", {"price": "0.000001"}),
]

# ------------------------------------------------------------------------------- BitMEX

BITMEX_OLD = "https://www.bitmex.com/app/riskLimitsExamples (older page: base MM 0.50%, IM 2.00%, limit 100, step 50)"
BITMEX_NOW = "https://bitmex.com/app/riskLimitsExamples (base MM 0.50%, IM 1.00%, limit 200, step 150)"


def bitmex(base_mm, base_im, limit, step, value):
    return {"base_mm": base_mm, "base_im": base_im, "base_risk_limit": limit, "step": step, "position_value": value}


BITMEX = [
    case("bitmex-old-80", "bitmex.risk_limit", bitmex("0.005", "0.02", "100", "50", "80"),
         {"mm_rate": "0.005", "im_rate": "0.02", "maintenance_margin": "0.4"}, BITMEX_OLD + " 80 XBT -> 0.4 XBT"),
    case("bitmex-old-130", "bitmex.risk_limit", bitmex("0.005", "0.02", "100", "50", "130"),
         {"mm_rate": "0.010", "im_rate": "0.025"}, BITMEX_OLD + " 130 XBT -> 1% / 2.5%"),
    case("bitmex-now-600", "bitmex.risk_limit", bitmex("0.005", "0.01", "200", "150", "600"),
         {"mm_rate": "0.020", "im_rate": "0.025", "maintenance_margin": "12"}, BITMEX_NOW + " table row <650"),
    case("bitmex-now-at-base-limit", "bitmex.risk_limit", bitmex("0.005", "0.01", "200", "150", "200"),
         {"mm_rate": "0.010", "im_rate": "0.015"}, BITMEX_NOW + " (the base row is < 200 XBT)"),
    case("bitmex-now-zero", "bitmex.risk_limit", bitmex("0.005", "0.01", "200", "150", "0"),
         {"mm_rate": "0.005", "im_rate": "0.010", "maintenance_margin": "0"}, BITMEX_NOW),
]

# ------------------------------------------------------------------------------- ADL


def adl(rule, candidates, deficit, **more):
    return {"rule": rule, "candidates": candidates, "deficit_size": deficit, "price": "100", **more}


ADL = [
    # derived: shorts in profit, PnL% = (entry − mark)/entry, leverage = mark/(bankrupt − mark):
    # A: 0.1 × 90/30 = 0.3; B: (5/95) × 90/10 = 0.4737 -> B first
    case("adl-bitmex-shorts-from-prices", "adl.queue",
         adl("bitmex", [{"account": "A", "side": "short", "size": "3", "mark_price": "90", "entry_price": "100",
                         "bankrupt_price": "120"},
                        {"account": "B", "side": "short", "size": "1", "mark_price": "90", "entry_price": "95",
                         "bankrupt_price": "100"}], "2"),
         {"closes": [{"account": "B", "size": "1"}, {"account": "A", "size": "1"}]},
         "derived: https://bitmex.com/app/autoDeleveraging ranking"),
    # derived: side not given; the bankrupt price above the mark makes them shorts (same queue)
    case("adl-bitmex-side-from-bankrupt-price", "adl.queue",
         adl("bitmex", [{"account": "A", "size": "3", "mark_price": "90", "entry_price": "100", "bankrupt_price": "120"},
                        {"account": "B", "size": "1", "mark_price": "90", "entry_price": "95",
                         "bankrupt_price": "100"}], "2"),
         {"closes": [{"account": "B", "size": "1"}, {"account": "A", "size": "1"}]}, "derived: as above"),
    # derived: longs at mark 110. Inverse (XBT values): PnL% = 1 − e/m, leverage = b/(m − b):
    # X (e 100, b 100): 0.0909 × 10 = 0.909; Y (e 50, b 20): 0.545 × 0.222 = 0.121 -> X first.
    # Linear values rank the other way: X 0.1 × 11 = 1.1; Y 1.2 × 1.222 = 1.467 -> Y first.
    case("adl-bitmex-inverse-longs", "adl.queue",
         adl("bitmex", [{"account": "X", "side": "long", "size": "10", "mark_price": "110", "entry_price": "100",
                         "bankrupt_price": "100"},
                        {"account": "Y", "side": "long", "size": "10", "mark_price": "110", "entry_price": "50",
                         "bankrupt_price": "20"}], "15", contract="inverse"),
         {"closes": [{"account": "X", "size": "10"}, {"account": "Y", "size": "5"}]},
         "derived: BitMEX ranking on XBT values (inverse: value = −side·Q/price)"),
    case("adl-bitmex-linear-longs", "adl.queue",
         adl("bitmex", [{"account": "X", "side": "long", "size": "10", "mark_price": "110", "entry_price": "100",
                         "bankrupt_price": "100"},
                        {"account": "Y", "side": "long", "size": "10", "mark_price": "110", "entry_price": "50",
                         "bankrupt_price": "20"}], "15"),
         {"closes": [{"account": "Y", "size": "10"}, {"account": "X", "size": "5"}]},
         "derived: the same candidates valued linearly (side·Q·price)"),
    case("adl-bitmex-deficit-beyond-candidates", "adl.queue",
         adl("bitmex", [{"account": "A", "size": "1", "score": "1"}, {"account": "B", "size": "2", "score": "3"}], "10"),
         {"closes": [{"account": "B", "size": "2"}, {"account": "A", "size": "1"}], "uncovered": "7"},
         "derived: every candidate closed, the rest uncovered"),
    # derived: Binance LeveragePnL: A 30/100 × 5/130 = 0.01154; B 20/50 × 2/70 = 0.01143 -> A first
    case("adl-binance-from-inputs", "adl.queue",
         adl("binance", [{"account": "B", "size": "1", "upnl": "20", "wallet_balance": "50", "maintenance_margin": "2"},
                         {"account": "A", "size": "3", "upnl": "30", "wallet_balance": "100",
                          "maintenance_margin": "5"}], "2"),
         {"closes": [{"account": "A", "size": "2"}]}, "derived: Binance ADL ranking (reference §1.5)"),
    # derived: Hyperliquid sorting index: A 1.1 × 330/100 = 3.63; B (110/90) × 110/50 = 2.69 -> A first
    case("adl-hyperliquid-from-inputs", "adl.queue",
         adl("hyperliquid", [{"account": "B", "size": "1", "mark_price": "110", "entry_price": "90",
                              "account_value": "50"},
                             {"account": "A", "size": "3", "mark_price": "110", "entry_price": "100",
                              "account_value": "100"}], "4"),
         {"closes": [{"account": "A", "size": "3"}, {"account": "B", "size": "1"}]},
         "derived: https://hyperliquid.gitbook.io/hyperliquid-docs/trading/auto-deleveraging"),
    # derived: the ranking's factors stated as the venues display them.
    # BitMEX: A 0.2 × 10 = 2; B 0.5 × 3 = 1.5; C in loss: −0.1 / 2 = −0.05 -> A, B, C
    case("adl-bitmex-from-stated-factors", "adl.queue",
         adl("bitmex", [{"account": "A", "size": "5", "pnl_pct": "0.2", "effective_leverage": "10"},
                        {"account": "B", "size": "5", "pnl_pct": "0.5", "effective_leverage": "3"},
                        {"account": "C", "size": "5", "pnl_pct": "-0.1", "effective_leverage": "2"}], "12"),
         {"closes": [{"account": "A", "size": "5"}, {"account": "B", "size": "5"}, {"account": "C", "size": "2"}]},
         "derived: https://bitmex.com/app/autoDeleveraging (PnL% × effective leverage, PnL% / leverage in loss)"),
    # Binance: A 0.2 × 0.1 = 0.02; B 0.5 × 0.05 = 0.025 -> B first
    case("adl-binance-from-stated-factors", "adl.queue",
         adl("binance", [{"account": "A", "size": "5", "pnl_pct": "0.2", "margin_ratio": "0.1"},
                         {"account": "B", "size": "5", "pnl_pct": "0.5", "margin_ratio": "0.05"}], "6"),
         {"closes": [{"account": "B", "size": "5"}, {"account": "A", "size": "1"}]},
         "derived: Binance LeveragePnL = PnL% × margin ratio (reference §1.5)"),
    case("adl-pro-rata", "adl.queue",
         adl("pro_rata", [{"account": "A", "size": "3"}, {"account": "B", "size": "1"}], "2"),
         {"closes": [{"account": "A", "size": "1.5"}, {"account": "B", "size": "0.5"}]},
         "derived: deficit × size / Σ size"),
]

# ------------------------------------------------------------------------------- dYdX

DYDX_TEST = "dydxprotocol/v4-chain protocol/x/clob/keeper/liquidations_test.go::"


def pos(market, side, size, price):
    return {"market": market, "side": side, "size": size, "oracle_price": price, "imf": "0.2", "mmf": "0.1"}


BTC_L, BTC_S = pos("BTC-USD", "long", "0.1", "50000"), pos("BTC-USD", "short", "0.1", "50000")
TWO_LONGS = [pos("BTC-USD", "long", "0.004", "50000"), pos("ETH-USD", "long", "0.1", "3000")]


def fillable(positions, quote, liquidate="BTC-USD", ba="1", smmr="0.1"):
    return {"positions": positions, "quote_balance": quote, "bankruptcy_adjustment": ba,
            "spread_to_maintenance_margin_ratio": smmr, "liquidate": liquidate}


def bq(positions, quote, delta, liquidate="BTC-USD"):
    return {"positions": positions, "quote_balance": quote, "liquidate": liquidate, "delta_size": delta}


DYDX = [
    case("dydx-fill-ba-2", "dydx.fillable_price", fillable([BTC_L], "-4501", ba="2"), {"price": "49998"},
         DYDX_TEST + "TestGetFillablePrice (bankruptcyAdjustmentPpm 2,000,000)"),
    case("dydx-fill-smmr-0p2", "dydx.fillable_price", fillable([BTC_L], "-4501", smmr="0.2"), {"price": "49998"},
         DYDX_TEST + "TestGetFillablePrice (SMMR 200,000)"),
    case("dydx-fill-short-below-mm", "dydx.fillable_price", fillable([BTC_S], "5499"), {"price": "50001"},
         DYDX_TEST + "TestGetFillablePrice (one short slightly below MM)"),
    case("dydx-fill-short-ba-2", "dydx.fillable_price", fillable([BTC_S], "5499", ba="2"), {"price": "50002"},
         DYDX_TEST + "TestGetFillablePrice"),
    case("dydx-fill-short-at-bankruptcy", "dydx.fillable_price", fillable([BTC_S], "5000"), {"price": "50500"},
         DYDX_TEST + "TestGetFillablePrice"),
    case("dydx-fill-short-below-bankruptcy", "dydx.fillable_price", fillable([BTC_S], "4500"), {"price": "50500"},
         DYDX_TEST + "TestGetFillablePrice"),
    case("dydx-fill-two-longs-eth", "dydx.fillable_price", fillable(TWO_LONGS, "-490", "ETH-USD"),
         {"price": "2976"}, DYDX_TEST + "TestGetFillablePrice (multiple long positions: 372/125 subticks = $2,976)"),
    case("dydx-fill-ba-max-uint32", "dydx.fillable_price", fillable([BTC_L], "-4501", ba="4294.967295"),
         {"price": "49500"}, DYDX_TEST + "TestGetFillablePrice (BA = max uint32 ppm)"),
    case("dydx-fill-smmr-one-ppm", "dydx.fillable_price", fillable([BTC_L], "-4501", smmr="0.000001"),
         {"price": "49999.99999"}, DYDX_TEST + "TestGetFillablePrice (SMMR 1 ppm)"),
    case("dydx-bq-short-full", "dydx.bankruptcy_quote", bq([BTC_S], "5499", "0.1"),
         {"quote_quantums": "-5499000000"}, DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums"),
    case("dydx-bq-short-half", "dydx.bankruptcy_quote", bq([BTC_S], "5000", "0.05"),
         {"quote_quantums": "-2500000000"}, DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums"),
    case("dydx-bq-long-below-bankruptcy", "dydx.bankruptcy_quote", bq([BTC_L], "-5100", "-0.1"),
         {"quote_quantums": "5100000000"}, DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums"),
    case("dydx-bq-short-below-bankruptcy", "dydx.bankruptcy_quote", bq([BTC_S], "4900", "0.1"),
         {"quote_quantums": "-4900000000"}, DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums"),
    case("dydx-bq-two-longs", "dydx.bankruptcy_quote", bq(TWO_LONGS, "-490", "-0.1", "ETH-USD"),
         {"quote_quantums": "294000000"}, DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums"),
    case("dydx-bq-two-shorts", "dydx.bankruptcy_quote",
         bq([pos("BTC-USD", "short", "0.004", "50000"), pos("ETH-USD", "short", "0.1", "3000")], "510", "0.1",
            "ETH-USD"),
         {"quote_quantums": "-306000000"}, DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums"),
    case("dydx-bq-long-and-short", "dydx.bankruptcy_quote",
         bq([pos("BTC-USD", "long", "0.004", "50000"), pos("ETH-USD", "short", "0.1", "3000")], "110", "0.1",
            "ETH-USD"),
         {"quote_quantums": "-306000000"}, DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums"),
    case("dydx-bq-rounds-up-long", "dydx.bankruptcy_quote",
         bq([pos("BTC-USD", "long", "1", "50000")], "-13", "-0.00021347"), {"quote_quantums": "2776"},
         DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums (2,775.11 rounded up)"),
    case("dydx-bq-rounds-up-short", "dydx.bankruptcy_quote",
         bq([pos("BTC-USD", "short", "1", "50000")], "13", "0.00021347"), {"quote_quantums": "-2775"},
         DYDX_TEST + "TestGetBankruptcyPriceInQuoteQuantums (-2,775.11 rounded toward +inf)"),
    # derived: short 0.1 @ 50,000, quote 5,100: TNC 100, TMMR 500, BQ(+0.1) = −5,000 − 100 = −5,100 USDC.
    # Buying back at 49,000 pays 4,900: d = 200 USDC > 0, fee = min(200, 0.5% × 4,900 = 24.5).
    case("dydx-ifd-short-fee", "dydx.insurance_fund_delta",
         {"positions": [BTC_S], "quote_balance": "5100", "liquidate": "BTC-USD", "fill_price": "49000",
          "fill_size": "0.1", "max_liquidation_fee": "0.005"},
         {"quote_quantums": "24500000"}, "derived: GetLiquidationInsuranceFundDelta rule (reference §5.3)"),
    # the fill stated as the signed delta of the close (−0.1 for a long), like delta_size
    case("dydx-ifd-long-signed-fill-size", "dydx.insurance_fund_delta",
         {"positions": [BTC_L], "quote_balance": "-5100", "liquidate": "BTC-USD", "fill_price": "56100",
          "fill_size": "-0.1", "max_liquidation_fee": "0.005"},
         {"quote_quantums": "28050000"}, DYDX_TEST + "TestGetLiquidationInsuranceFundDelta (fee capped at 0.5% of 5,610)"),
    # derived: same account buying back at 51,500 pays 5,150: d = −50 USDC, the fund covers it
    case("dydx-ifd-short-fund-pays", "dydx.insurance_fund_delta",
         {"positions": [BTC_S], "quote_balance": "5100", "liquidate": "BTC-USD", "fill_price": "51500",
          "fill_size": "0.1", "max_liquidation_fee": "0.005"},
         {"quote_quantums": "-50000000"}, "derived: as above"),
    case("dydx-im-realistic-oimf", "dydx.initial_margin",
         {"imf": "0.2", "open_interest_notional": "28123456.789123", "oi_lower_cap": "25000000",
          "oi_upper_cap": "60000000", "quote_quantums": "500000"},
         {"initial_margin_quantums": "135697"},
         "dydxprotocol/v4-chain protocol/x/perpetuals/types/liquidity_tier_test.go::TestGetInitialMarginQuoteQuantums"),
    case("dydx-im-oi-above-upper-cap", "dydx.initial_margin",
         {"imf": "0.2", "open_interest_notional": "80000000", "oi_lower_cap": "25000000",
          "oi_upper_cap": "50000000", "quote_quantums": "500000"},
         {"initial_margin_quantums": "500000"}, "same test (scaling factor 1)"),
    case("dydx-im-oimf-disabled", "dydx.initial_margin",
         {"imf": "0.2", "open_interest_notional": "1500000", "oi_lower_cap": "0", "oi_upper_cap": "0",
          "quote_quantums": "500000"},
         {"initial_margin_quantums": "100000"}, "same test (lower = upper = 0)"),
    case("dydx-im-50pct", "dydx.initial_margin", {"imf": "0.5", "quote_quantums": "1000000"},
         {"initial_margin_quantums": "500000"}, "same test (OI inputs absent = no OIMF)"),
]

# ------------------------------------------------------------------------------- Drift

DRIFT_TESTS = "drift-labs/protocol-v2 programs/drift/src/math/liquidation/tests.rs::"

DRIFT = [
    case("drift-base-one-pct-fee-one-pct-if", "drift.base_to_cover_shortage",
         {"margin_shortage": "10", "margin_ratio": "0.1", "liquidator_fee": "0.01", "if_fee": "0.01",
          "oracle_price": "100", "quote_price": "1"},
         {"base": "1.25"}, DRIFT_TESTS + "one_percent_liquidation_fee_and_one_percent_if_liquidation_fee"),
    case("drift-base-no-quote-price", "drift.base_to_cover_shortage",
         {"margin_shortage": "10", "margin_ratio": "0.1", "liquidator_fee": "0", "oracle_price": "100"},
         {"base": "1"}, DRIFT_TESTS + "zero_percent_liquidation_fee (optional inputs absent)"),
    # derived: elapsed 1,500 is not below the grace period: 0.02 + 1,500 × 1e-6
    case("drift-liq-fee-at-grace-end", "drift.liquidator_fee",
         {"base_fee": "0.02", "max_fee": "0.05", "last_active_slot": "100", "current_slot": "1600"},
         {"fee": "0.0215"}, "derived: get_liquidation_fee (reference §6.4)"),
    case("drift-liq-fee-just-inside-grace", "drift.liquidator_fee",
         {"base_fee": "0.02", "max_fee": "0.05", "last_active_slot": "100", "current_slot": "1599"},
         {"fee": "0.02"}, "derived: as above"),
    # derived: 100 / 3 = 33.3333333… rounded up at 1e-6
    case("drift-socialized-loss-shorts-only", "drift.socialized_loss",
         {"loss": "100", "base_long": "0", "base_short": "-3"}, {"funding_delta_per_base": "33.333334"},
         "derived: calculate_funding_rate_deltas_to_resolve_bankruptcy (ceil division)"),
    # derived: max(0.5, 0.8 × 0.5 + 0.02 × √100) = 0.6
    case("drift-size-premium-liability-100", "drift.size_premium",
         {"weight": "0.5", "imf_factor": "0.02", "size": "100", "kind": "liability"}, {"weight": "0.6"},
         "derived: calculate_size_premium_liability_weight"),
    # derived: min(0.8, 1.1 / (1 + 0.01 × √100)) = 1.0 -> 0.8 (no discount at this size)
    case("drift-size-premium-asset-no-discount", "drift.size_premium",
         {"weight": "0.8", "imf_factor": "0.01", "size": "100", "kind": "asset"}, {"weight": "0.8"},
         "derived: calculate_size_discount_asset_weight"),
    case("drift-size-premium-zero-imf", "drift.size_premium",
         {"weight": "0.5", "imf_factor": "0", "size": "1000000", "kind": "liability"}, {"weight": "0.5"}, "derived"),
]

# ------------------------------------------------------------------------------- GMX

GMX_RULE = ("derived: gmx-io/gmx-synthetics contracts/position/PositionUtils.sol::isPositionLiquidatable "
            "(remaining < size × factor, strict)")


def gmx(side, price, collateral="2500", fee="0.0006"):
    return {"collateral_amount": collateral, "collateral_price": "1", "side": side, "size_usd": "100000",
            "entry_price": "2000", "price": price, "min_collateral_factor": "0.01", "position_fee_rate": fee}


GMX = [
    # short 50 tokens: pnl = 100,000 − 50 × 2,040 = −2,000; 2,500 − 2,000 − 60 = 440 < 1,000
    case("gmx-short-liquidatable", "gmx.is_liquidatable", gmx("short", "2040"), {"liquidatable": True}, GMX_RULE),
    case("gmx-short-healthy", "gmx.is_liquidatable", gmx("short", "2010"), {"liquidatable": False}, GMX_RULE),
    # long 50 tokens at 1,970: 2,500 − 1,500 = 1,000, not below 1,000
    case("gmx-long-exactly-at-factor", "gmx.is_liquidatable", gmx("long", "1970", fee="0"),
         {"liquidatable": False}, GMX_RULE),
    case("gmx-long-just-below-factor", "gmx.is_liquidatable", gmx("long", "1969.98", fee="0"),
         {"liquidatable": True}, GMX_RULE),
    case("gmx-long-no-collateral-left", "gmx.is_liquidatable", gmx("long", "1900", fee="0"),
         {"liquidatable": True}, GMX_RULE + " (remaining ≤ 0)"),
]

# ------------------------------------------------------------------------------- Aave

AAVE_RULE = ("derived: aave-v3-core / aave-v3-origin LiquidationLogic and GenericLogic (reference §1), "
             "WETH LT 83%, LB 105%, fee 10%")


def weth(price, amount="10"):
    return {"asset": "WETH", "amount": amount, "price": price, "liquidation_threshold": "0.83",
            "liquidation_bonus": "1.05", "protocol_fee": "0.1"}


def aave_call(version, price, cover="max"):
    return {"version": version, "collateral": [weth(price)], "debt": [{"asset": "USDC", "amount": "16000", "price": "1"}],
            "collateral_asset": "WETH", "debt_asset": "USDC", "debt_to_cover": cover}


AAVE = [
    # HF = 50,000 × 80% / 17,000 (avg LT = (20,000 × 83% + 30,000 × 78%) / 50,000 = 80%)
    case("aave-hf-two-collaterals-two-debts", "aave.health_factor",
         {"collateral": [weth("2000"), {"asset": "WBTC", "amount": "1", "price": "30000", "liquidation_threshold": "0.78"}],
          "debt": [{"asset": "USDC", "amount": "16000", "price": "1"}, {"asset": "DAI", "amount": "1000", "price": "1"}]},
         {"health_factor": "2.352941176470588235"}, AAVE_RULE),
    case("aave-cf-v33-large-above-095", "aave.close_factor",
         {"version": "3.3", "health_factor": "0.96", "collateral_value": "2000", "debt_value": "2000"},
         {"close_factor": "0.5"}, AAVE_RULE + " (both at the $2,000 threshold)"),
    case("aave-cf-v33-small-debt", "aave.close_factor",
         {"version": "3.3", "health_factor": "0.96", "collateral_value": "20000", "debt_value": "1999.99"},
         {"close_factor": "1"}, AAVE_RULE),
    case("aave-cf-v33-at-095", "aave.close_factor",
         {"version": "3.3", "health_factor": "0.95", "collateral_value": "20000", "debt_value": "20000"},
         {"close_factor": "1"}, AAVE_RULE + " (HF must exceed 0.95)"),
    case("aave-cf-v30-at-095", "aave.close_factor", {"version": "3.0", "health_factor": "0.95"},
         {"close_factor": "1"}, AAVE_RULE),
    case("aave-cf-v30-just-above-095", "aave.close_factor", {"version": "3.0", "health_factor": "0.950001"},
         {"close_factor": "0.5"}, AAVE_RULE),
    # an HF written as the quotient it is (16,600 / 17,000), values finer than the oracle's 1e-8:
    # compared as given (each threshold lies on the pool's grid, so flooring would agree)
    case("aave-cf-v30-hf-as-long-quotient", "aave.close_factor",
         {"version": "3.0", "health_factor": "0.97647058823529411764705882352941", "collateral_value": "20000",
          "debt_value": "17000"},
         {"close_factor": "0.5"}, AAVE_RULE + " (HF 16,600/17,000 > 0.95)"),
    case("aave-cf-v33-values-finer-than-base-unit", "aave.close_factor",
         {"version": "3.3", "health_factor": "0.96", "collateral_value": "19000.123456789",
          "debt_value": "16000.000000001"},
         {"close_factor": "0.5"}, AAVE_RULE + " (both above $2,000, HF > 0.95)"),
    case("aave-cf-v33-collateral-just-below-threshold", "aave.close_factor",
         {"version": "3.3", "health_factor": "0.96", "collateral_value": "1999.999999999", "debt_value": "5000"},
         {"close_factor": "1"}, AAVE_RULE + " (collateral below $2,000 -> 100%)"),
    # 3.0, 1,000 USDC: base 1,000/1,900 WETH, × 1.05 = 0.552631578947368421 (half up)
    case("aave-liq-v30-partial-cover", "aave.liquidation_call", aave_call("3.0", "1900", "1000"),
         {"debt_repaid": "1000", "collateral_seized": "0.552631578947368421", "liquidator_received": "0.55"},
         AAVE_RULE, {"collateral_seized": "0.000000000000000001", "liquidator_received": "0.000000000000000001"}),
    # 3.3 at $1,500: HF 0.778 < 0.95 -> 100%; all 10 WETH ($15,000) seized for 15,000/1.05 = 14,285.714286;
    # no collateral left -> the remaining 1,714.285714 USDC is burned as deficit
    case("aave-liq-v33-deficit", "aave.liquidation_call", aave_call("3.3", "1500"),
         {"debt_repaid": "14285.714286", "collateral_seized": "10", "protocol_fee": "0.047619047619047619",
          "deficit": "1714.285714"},
         AAVE_RULE + " (v3.3 deficit)", {"protocol_fee": "0.000000000000000001"}),
    case("aave-liq-v30-no-deficit", "aave.liquidation_call", aave_call("3.0", "1500"),
         {"debt_repaid": "14285.714286", "collateral_seized": "10", "deficit": "0"}, AAVE_RULE + " (v3.0: debt stays)"),
]

# ------------------------------------------------------------------------------- Compound, Maker, Euler, Liquity, Morpho

OTHER_LENDING = [
    case("compound-quote-zero", "compound.quote_collateral",
         {"asset_price": "200", "base_price": "1", "liquidation_factor": "0.6", "store_front_price_factor": "0.5",
          "base_amount": "0"}, {"collateral_amount": "0"}, "derived: compound-finance/comet quoteCollateral"),
    # credit 2,000 × 0.95 = 1,900 > debt 1,000: balance +900; reserves pay supply 900 + repay 1,000
    case("compound-absorb-surplus", "compound.absorb",
         {"debt": "1000", "base_price": "1",
          "collateral": [{"asset": "WETH", "amount": "1", "price": "2000", "liquidation_factor": "0.95"}]},
         {"balance_after": "900", "reserves_delta": "-1900"}, "derived: compound-finance/comet Comet.sol::absorbInternal"),
    case("compound-absorb-shortfall", "compound.absorb",
         {"debt": "5000", "base_price": "1",
          "collateral": [{"asset": "WETH", "amount": "1", "price": "2000", "liquidation_factor": "0.95"}]},
         {"balance_after": "0", "reserves_delta": "-5000"}, "derived: same (balance floored at 0)"),
    case("maker-linear-after-tau", "maker.auction_price", {"calc": "linear", "top": "1000", "tau": "3600",
                                                            "elapsed": "4000"},
         {"price": "0"}, "derived: makerdao/dss abaci.sol LinearDecrease (dur >= tau -> 0)"),
    case("maker-stairstep-before-first-step", "maker.auction_price",
         {"calc": "stairstep", "top": "5", "step": "90", "cut": "0.99", "elapsed": "89"}, {"price": "5"},
         "derived: StairstepExponentialDecrease, floor(89/90) = 0"),
    case("maker-exponential-at-kick", "maker.auction_price",
         {"calc": "exponential", "top": "4000", "cut": "0.999230132966", "elapsed": "0"}, {"price": "4000"},
         "derived: cut^0 = 1"),
    # hole room 50 DAI, chop 1.1: dart = 50/1.1 = 45.454545454545454545 (wad, floored), lot = 40 × dart/100
    case("maker-bark-partial-by-hole", "maker.bark",
         {"ink": "40", "art": "100", "rate": "1", "price": "4", "mat": "2", "chop": "1.1", "hole_room": "50",
          "dust": "20", "buf": "1.25"},
         {"tab": "50", "lot": "18.181818181818181818", "art_after": "54.545454545454545455", "top": "5"},
         "derived: makerdao/dss dog.sol::bark", {"tab": "0.000000001", "lot": "0.000000000000000001",
                                                 "art_after": "0.000000000000000001", "top": "0.000000001"}),
    # amt 19 at price 5: owe 95 leaves 15 < chost 22, so owe = tab − chost = 88, slice 17.6
    case("maker-take-avoids-dust", "maker.take",
         {"auction": {"tab": "110", "lot": "40", "top": "5", "calc": "stairstep", "step": "1", "cut": "0.99"},
          "chost": "22", "takes": [{"elapsed": "0", "amt": "19", "max": "5"}]},
         {"takes": [{"owe": "88", "slice": "17.6"}], "tab": "22", "lot": "22.4", "returned_to_owner": "0"},
         "derived: makerdao/dss clip.sol::take (chost rule)", {"takes": "0.000000001", "tab": "0.000000001",
                                                               "lot": "0.000000001", "returned_to_owner": "0.000000001"}),
    # health 90/95 -> discount 5.3% capped at 5%: yield = 95/0.95 = 100 = all collateral
    case("euler-discount-capped", "euler.liquidation",
         {"collateral_value": "100", "liability_value": "95", "ltv": "0.9", "max_discount": "0.05",
          "collateral_amount": "100", "collateral_price": "1"},
         {"discount": "0.05", "yield": "100", "repay": "95"}, "derived: euler-vault-kit Liquidation.sol"),
    case("euler-worthless-collateral", "euler.liquidation",
         {"collateral_value": "0", "liability_value": "5", "ltv": "0.9", "max_discount": "0.2",
          "collateral_amount": "10", "collateral_price": "0"},
         {"repay": "0", "yield": "10"},
         "euler-xyz/euler-vault-kit test/unit/evault/modules/Liquidation/basic.t.sol::"
         "test_basicLiquidation_worthless_collateral (maxRepay 0, all 10 collateral to the liquidator)"),
    case("euler-healthy", "euler.liquidation",
         {"collateral_value": "100", "liability_value": "80", "ltv": "0.9", "max_discount": "0.2",
          "collateral_amount": "100", "collateral_price": "1"},
         {"repay": "0", "yield": "0"}, "derived: no violation, nothing to liquidate"),
    # ICR 1.0667 < MCR; SP 100 of 150: offset 100, coll to SP 1.592 × 100/150, the rest redistributed
    case("liquity-normal-partial-offset", "liquity.liquidate",
         {"mode": "normal", "coll": "1.6", "debt": "150", "price": "100", "stability_pool": "100", "tcr": "2"},
         {"gas_comp_coll": "0.008", "offset_debt": "100", "coll_to_sp": "1.061333333", "redistributed_debt": "50",
          "redistributed_coll": "0.530666667", "surplus_coll": "0"},
         "derived: liquity/dev TroveManager.sol::_getOffsetAndRedistributionVals",
         {"coll_to_sp": "0.000000001", "redistributed_coll": "0.000000001"}),
    # Recovery Mode, MCR <= ICR 1.2 < TCR 1.3, SP covers the debt: capped at 1.1 × debt / price
    case("liquity-recovery-capped-offset", "liquity.liquidate",
         {"mode": "recovery", "coll": "10", "debt": "10000", "price": "1200", "stability_pool": "20000", "tcr": "1.3"},
         {"gas_comp_coll": "0.045833333", "offset_debt": "10000", "coll_to_sp": "9.120833333",
          "redistributed_debt": "0", "surplus_coll": "0.833333333"},
         "derived: liquity/dev TroveManager.sol::_liquidateRecoveryMode (capped offset)",
         {"gas_comp_coll": "0.000000001", "coll_to_sp": "0.000000001", "surplus_coll": "0.000000001"}),
    case("morpho-lif-077", "morpho.lif", {"lltv": "0.77"}, {"lif": "1.074114"},
         "derived: LIF = min(1.15, 1/(1 − 0.3 × 0.23))"),
    case("morpho-lif-0915", "morpho.lif", {"lltv": "0.915"}, {"lif": "1.026167"}, "derived"),
    case("morpho-lif-098", "morpho.lif", {"lltv": "0.98"}, {"lif": "1.006036"}, "derived"),
    case("morpho-lif-0625", "morpho.lif", {"lltv": "0.625"}, {"lif": "1.126761"}, "derived"),
    case("morpho-lif-0385-capped", "morpho.lif", {"lltv": "0.385"}, {"lif": "1.15"}, "derived: 1.2262 > 1.15"),
]

CASES = BINANCE + HYPERLIQUID + BYBIT + BITMEX + ADL + DYDX + DRIFT + GMX + AAVE + OTHER_LENDING


def test_case_ids_are_unique():
    ids = [entry["id"] for entry in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("entry", CASES, ids=[entry["id"] for entry in CASES])
def test_vector(entry):
    result = run_case(entry)
    assert result.passed, result.message


# ------------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("bad, reason", [
    (5, "malformed case: expected an object"),
    ({"id": "x", "check": "morpho.lif", "input": ["0.86"], "expect": {"lif": "1"}}, "'input' must be an object"),
    ({"id": "x", "check": "morpho.lif", "input": {"lltv": "0.86"}, "expect": ["1"]}, "'expect' must be an object"),
    ({"id": "x", "check": "morpho.lif", "input": {"lltv": {"a": 1}}, "expect": {"lif": "1"}}, "lltv"),
    ({"id": "x", "check": "binance.liquidation_price", "input": {"wallet_balance": "1", "target": "X",
                                                                  "positions": [{"symbol": "X"}]},
      "expect": {"price": "1"}}, "positions[0].mmr: missing"),
    ({"id": "x", "check": "bybit.liquidation_price", "input": {"side": "long", "entry_price": "1", "leverage": None},
      "expect": {"price": "1"}}, "leverage"),
    ({"id": "x", "check": "dydx.bankruptcy_quote", "input": {"positions": [BTC_L], "quote_balance": "-4501",
                                                             "liquidate": "BTC-USD", "delta_size": "0.1"},
      "expect": {"quote_quantums": "1"}}, "does not reduce"),
    ({"id": "x", "check": "adl.queue", "input": {"rule": "bitmex", "candidates": [{"account": "A", "size": "1"}],
                                                 "deficit_size": "1"}, "expect": {}}, "required by the bitmex rule"),
])
def test_malformed_case_fails_with_its_reason(bad, reason):
    result = run_case(bad)
    assert not result.passed and reason in result.message


def test_malformed_file_is_one_failure_and_the_run_goes_on(tmp_path):
    (tmp_path / "a_bad.json").write_text("{not json")
    (tmp_path / "b_no_cases.json").write_text(json.dumps({"vectors": []}))
    (tmp_path / "c_good.json").write_text(json.dumps({"cases": [BITMEX[0], "not a case"]}))
    results = run_paths([tmp_path])
    assert [r.passed for r in results] == [False, False, True, False]
    outcome = CliRunner().invoke(app, ["conformance", str(tmp_path)])
    lines = outcome.stdout.strip().splitlines()
    assert outcome.exit_code == 1 and lines[-1] == "1 passed, 3 failed"
    assert lines[0].startswith("FAIL ") and "a_bad.json" in lines[0] and "not valid JSON" in lines[0]
    assert "Traceback" not in outcome.stdout


def test_vectors_written_as_json_numbers_are_read_exactly(tmp_path):
    path = tmp_path / "numbers.json"
    path.write_text('{"cases": [{"id": "n", "check": "morpho.lif", "input": {"lltv": 0.86}, '
                    '"expect": {"lif": 1.043841}}]}')
    assert [r.passed for r in run_paths([path])] == [True]


def test_account_ids_that_read_as_numbers_are_compared_as_names(tmp_path):
    # derived: B (score 7) closes all 8, then A 2 of its 5 (BitMEX queue, high score first)
    closes = [{"account": "2", "size": "8"}, {"account": "1", "size": "2"}]
    text = {"rule": "bitmex", "deficit_size": "10", "price": "100",
            "candidates": [{"account": "1", "size": "5", "score": "2"}, {"account": "2", "size": "8", "score": "7"}]}
    assert run_case(case("adl-numeric-ids", "adl.queue", text, {"closes": closes}, "derived")).passed
    as_ints = {**text, "candidates": [{**row, "account": int(row["account"])} for row in text["candidates"]]}
    expect_ints = [{**close, "account": int(close["account"])} for close in closes]
    assert run_case(case("adl-int-ids", "adl.queue", as_ints, {"closes": expect_ints}, "derived")).passed
    wrong = [{"account": "1", "size": "8"}, {"account": "2", "size": "2"}]
    assert not run_case(case("adl-wrong-order", "adl.queue", text, {"closes": wrong}, "derived")).passed


def test_a_file_starting_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"cases": [BITMEX[0]]}).encode())
    assert [r.passed for r in run_paths([path])] == [True]


def test_a_boolean_written_as_text_is_compared_as_a_boolean():
    liquidatable = gmx("long", "1960")  # 2,500 − 2,000 − 60 < 1,000 (see GMX above)
    assert run_case(case("gmx-text-true", "gmx.is_liquidatable", liquidatable, {"liquidatable": "true"}, GMX_RULE)).passed
    assert not run_case(case("gmx-text-false", "gmx.is_liquidatable", liquidatable, {"liquidatable": "false"},
                             GMX_RULE)).passed
