"""dYdX v4's own unit-test numbers, every case the conformance checks can express.

Harvested from dydxprotocol/v4-chain:

- protocol/x/clob/keeper/liquidations_test.go: TestGetBankruptcyPriceInQuoteQuantums,
  TestGetFillablePrice, TestGetLiquidationInsuranceFundDelta;
- protocol/x/perpetuals/types/liquidity_tier_test.go: TestGetInitialMarginQuoteQuantums.

The fixtures those tests use (protocol/testutil/constants), restated in the checks' units:

- BtcUsd_20PercentInitial_10PercentMaintenance / EthUsd_20PercentInitial_10PercentMaintenance:
  liquidity tier 3 (initial margin 200,000 ppm, maintenance fraction 500,000 ppm: IMF 0.2,
  MMF 0.1), atomic resolution -8 (BTC) and -9 (ETH);
- test market oracle prices $50,000 (BTC) and $3,000 (ETH);
- positions in base quantums: OneBTC 100,000,000 (1 BTC), OneTenthBTC 10,000,000 (0.1 BTC),
  FourThousandthsBTC 400,000 (0.004 BTC), OneTenthEth 100,000,000 (0.1 ETH at -9);
- quote balances QuoteBalance_OneDollar x N quantums = N USDC;
- LiquidationsConfig_Default: MaxLiquidationFeePpm 5,000 (0.005), BankruptcyAdjustmentPpm 1,000,000
  (1), SpreadToMaintenanceMarginRatioPpm 100,000 (0.1);
- ClobPair_Btc: QuantumConversionExponent -8, so a fill at S subticks for 0.1 BTC (10,000,000 base
  quantums) is 10,000,000 x S x 1e-8 quote quantums: a price of S x 1e-6 USDC per BTC;
- a fillable price is returned as a rational in quote quantums per base quantum: x 100 for BTC
  (1e-6 / 1e-8), x 1,000 for ETH (1e-6 / 1e-9) gives USDC per coin;
- TestGetInitialMarginQuoteQuantums states open interest and caps in quote quantums; the check takes
  them in USDC (1,500,000,000,000 quantums = 1,500,000 USDC).

Cases that expect an error (a zero delta, no position, a delta of the position's own sign or larger
than it, a zero fill amount) have no expected number in the vector format and are left out.
"""

import json
import sys
from pathlib import Path

import pytest

from solvent.conformance.runner import run_case

LIQ = "dydxprotocol/v4-chain protocol/x/clob/keeper/liquidations_test.go::"
TIER = "dydxprotocol/v4-chain protocol/x/perpetuals/types/liquidity_tier_test.go::"

BQ = LIQ + "TestGetBankruptcyPriceInQuoteQuantums/"
FP = LIQ + "TestGetFillablePrice/"
IFD = LIQ + "TestGetLiquidationInsuranceFundDelta/"
IM = TIER + "TestGetInitialMarginQuoteQuantums/"


def pos(market, side, size):
    price = {"BTC-USD": "50000", "ETH-USD": "3000"}[market]
    return {"market": market, "side": side, "size": size, "oracle_price": price, "imf": "0.2", "mmf": "0.1"}


BTC_1_L, BTC_1_S = pos("BTC-USD", "long", "1"), pos("BTC-USD", "short", "1")
BTC_L, BTC_S = pos("BTC-USD", "long", "0.1"), pos("BTC-USD", "short", "0.1")
BTC_004_L, BTC_004_S = pos("BTC-USD", "long", "0.004"), pos("BTC-USD", "short", "0.004")
ETH_L, ETH_S = pos("ETH-USD", "long", "0.1"), pos("ETH-USD", "short", "0.1")


def case(id, source, check, input, expect):
    return {"id": id, "source": source, "check": check, "input": input, "expect": expect}


def bq(id, name, positions, quote, delta, expected, market="BTC-USD"):
    if name[0].islower():
        name = "Can calculate bankruptcy price in quote quantums for a subaccount that is " + name
    return case(id, BQ + name, "dydx.bankruptcy_quote",
                {"positions": positions, "quote_balance": quote, "liquidate": market, "delta_size": delta},
                {"quote_quantums": expected})


def fp(id, name, positions, quote, price, market="BTC-USD", ba="1", smmr="0.1"):
    if name.startswith(("one ", "multiple ")):
        name = "Can calculate fillable price for a subaccount with " + name
    else:
        name = "Can calculate fillable price when " + name
    return case(id, FP + name, "dydx.fillable_price",
                {"positions": positions, "quote_balance": quote, "bankruptcy_adjustment": ba,
                 "spread_to_maintenance_margin_ratio": smmr, "liquidate": market},
                {"price": price})


def ifd(id, name, positions, quote, fill_price, expected, fee="0.005"):
    return case(id, IFD + name, "dydx.insurance_fund_delta",
                {"positions": positions, "quote_balance": quote, "liquidate": "BTC-USD", "fill_price": fill_price,
                 "fill_size": "0.1", "max_liquidation_fee": fee},
                {"quote_quantums": expected})


def im(id, name, imf, quantums, expected, oi="0", lower="0", upper="0"):
    return case(id, IM + name, "dydx.initial_margin",
                {"imf": imf, "open_interest_notional": oi, "oi_lower_cap": lower, "oi_upper_cap": upper,
                 "quote_quantums": quantums},
                {"initial_margin_quantums": expected})


BANKRUPTCY_QUOTE = [
    bq("dydx-src-bq-long-full-below-mm",
       "fully closing one long position that is slightly below maintenance margin requirements",
       [BTC_L], "-4501", "-0.1", "4501000000"),
    bq("dydx-src-bq-short-full-below-mm",
       "fully closing one short position that is slightly below maintenance margin requirements",
       [BTC_S], "5499", "0.1", "-5499000000"),
    bq("dydx-src-bq-long-full-at-bankruptcy", "fully closing one long position that is at the bankruptcy price",
       [BTC_L], "-5000", "-0.1", "5000000000"),
    bq("dydx-src-bq-long-half-at-bankruptcy", "partially closing one long position that is at the bankruptcy price",
       [BTC_L], "-5000", "-0.05", "2500000000"),
    bq("dydx-src-bq-short-half-at-bankruptcy",
       "partially closing one short position that is at the bankruptcy price",
       [BTC_S], "5000", "0.05", "-2500000000"),
    bq("dydx-src-bq-short-full-at-bankruptcy", "fully closing one short position that is at the bankruptcy price",
       [BTC_S], "5000", "0.1", "-5000000000"),
    bq("dydx-src-bq-long-full-below-bankruptcy",
       "fully closing one long position that is below the bankruptcy price",
       [BTC_L], "-5100", "-0.1", "5100000000"),
    bq("dydx-src-bq-short-full-below-bankruptcy",
       "fully closing one short position that is below the bankruptcy price",
       [BTC_S], "4900", "0.1", "-4900000000"),
    bq("dydx-src-bq-two-longs", "fully closing one long position and has multiple long positions",
       [BTC_004_L, ETH_L], "-490", "-0.1", "294000000", "ETH-USD"),
    bq("dydx-src-bq-two-shorts", "fully closing one short position and has multiple short positions",
       [BTC_004_S, ETH_S], "510", "0.1", "-306000000", "ETH-USD"),
    bq("dydx-src-bq-long-and-short", "fully closing one short position and has a long and short position",
       [BTC_004_L, ETH_S], "110", "0.1", "-306000000", "ETH-USD"),
    bq("dydx-src-bq-rounds-up-long",
       "Rounds up bankruptcy price in quote quantums for a subaccount that is partially closing one long "
       "position that is slightly below maintenance margin requirements",
       [BTC_1_L], "-13", "-0.00021347", "2776"),
    bq("dydx-src-bq-rounds-up-short",
       "Rounds up bankruptcy price in quote quantums for a subaccount that is partially closing one short "
       "position that is below the bankruptcy price",
       [BTC_1_S], "13", "0.00021347", "-2775"),
    bq("dydx-src-bq-long-no-loss",
       "Account with a long position that cannot be liquidated at a loss has a negative bankruptcy price",
       [BTC_1_L], "1", "-1", "-1000000"),
]

FILLABLE_PRICE = [
    fp("dydx-src-fp-long-below-mm", "one long position that is slightly below maintenance margin requirements",
       [BTC_L], "-4501", "49999"),
    fp("dydx-src-fp-long-ba-2", "one long position when bankruptcyAdjustmentPpm is 2_000_000",
       [BTC_L], "-4501", "49998", ba="2"),
    fp("dydx-src-fp-long-smmr-0p2", "one long position when spreadToMaintenanceMarginRatioPpm is 200_000",
       [BTC_L], "-4501", "49998", smmr="0.2"),
    fp("dydx-src-fp-short-below-mm", "one short position that is slightly below maintenance margin requirements",
       [BTC_S], "5499", "50001"),
    fp("dydx-src-fp-short-ba-2", "one short position when bankruptcyAdjustmentPpm is 2_000_000",
       [BTC_S], "5499", "50002", ba="2"),
    fp("dydx-src-fp-short-smmr-0p2", "one short position when SpreadToMaintenanceMarginRatioPpm is 200_000",
       [BTC_S], "5499", "50002", smmr="0.2"),
    fp("dydx-src-fp-long-at-bankruptcy", "one long position at the bankruptcy price", [BTC_L], "-5000", "49500"),
    # The Go case closes half the position (delta -5,000,000); the fillable price depends on the
    # position, not the delta, and dYdX expects the same price as the full close.
    fp("dydx-src-fp-long-at-bankruptcy-half",
       "one long position at the bankruptcy price where we are liquidating half of the position",
       [BTC_L], "-5000", "49500"),
    fp("dydx-src-fp-short-at-bankruptcy", "one short position at the bankruptcy price", [BTC_S], "5000", "50500"),
    fp("dydx-src-fp-long-below-bankruptcy", "one long position below the bankruptcy price",
       [BTC_L], "-5500", "49500"),
    fp("dydx-src-fp-short-below-bankruptcy", "one short position below the bankruptcy price",
       [BTC_S], "4500", "50500"),
    # 372/125 quote quantums per ETH base quantum (1e-9 ETH) = 2,976 USDC per ETH.
    fp("dydx-src-fp-two-longs-eth", "multiple long positions", [BTC_004_L, ETH_L], "-490", "2976", "ETH-USD"),
    fp("dydx-src-fp-ba-max-uint32", "bankruptcyAdjustmentPpm is max uint32",
       [BTC_L], "-4501", "49500", ba="4294.967295"),
    # 4,999,999,999/10,000,000 quote quantums per base quantum = 49,999.99999 USDC per BTC.
    fp("dydx-src-fp-smmr-one-ppm", "SpreadTomaintenanceMarginRatioPpm is 1",
       [BTC_L], "-4501", "49999.99999", smmr="0.000001"),
    fp("dydx-src-fp-smmr-one-million", "SpreadTomaintenanceMarginRatioPpm is one million",
       [BTC_L], "-4501", "49990", smmr="1"),
]

INSURANCE_FUND_DELTA = [
    ifd("dydx-src-ifd-long-max-fee", "Fully closing one long position above the bankruptcy price and pays max "
        "liquidation fee", [BTC_L], "-5100", "56100", "28050000"),
    ifd("dydx-src-ifd-long-max-fee-25000", "Fully closing one long position above the bankruptcy price pays max "
        "liquidation fee when MaxLiquidationFeePpm is 25_000", [BTC_L], "-5100", "56100", "140250000", fee="0.025"),
    ifd("dydx-src-ifd-long-fee-one-million", "Fully closing one long position above the bankruptcy price pays less "
        "than max liquidation fee when MaxLiquidationFeePpm is one million",
        [BTC_L], "-5100", "56100", "510000000", fee="1"),
    ifd("dydx-src-ifd-short-max-fee", "Fully closing one short position above the bankruptcy price and pays max "
        "liquidation fee", [BTC_S], "4900", "44100", "22050000"),
    ifd("dydx-src-ifd-short-max-fee-25000", "Fully closing one short position above the bankruptcy price and pays "
        "max liquidation fee when MaxLiquidationFeePpm is 25_000", [BTC_S], "4900", "44100", "110250000",
        fee="0.025"),
    ifd("dydx-src-ifd-short-fee-one-million", "Fully closing one short position above the bankruptcy price and pays "
        "less than max liquidation fee when MaxLiquidationFeePpm is one million",
        [BTC_S], "4900", "44100", "490000000", fee="1"),
    ifd("dydx-src-ifd-long-below-max-fee", "Fully closing one long position above the bankruptcy price and pays "
        "less than max liquidation fee", [BTC_L], "-5100", "51051", "5100000"),
    ifd("dydx-src-ifd-short-below-max-fee", "Fully closing one short position above the bankruptcy price and pays "
        "less than max liquidation fee", [BTC_S], "4900", "48951", "4900000"),
    ifd("dydx-src-ifd-long-at-bankruptcy", "Fully closing one long position at the bankruptcy price and the delta "
        "is 0", [BTC_L], "-5100", "51000", "0"),
    ifd("dydx-src-ifd-short-at-bankruptcy", "Fully closing one short position above the bankruptcy price and the "
        "delta is 0", [BTC_S], "4900", "49000", "0"),
    ifd("dydx-src-ifd-long-below-bankruptcy", "Fully closing one long position below the bankruptcy price and the "
        "insurance fund must cover the loss", [BTC_L], "-5100", "50490", "-51000000"),
    ifd("dydx-src-ifd-short-below-bankruptcy", "If fully closing one short position below the bankruptcy price the "
        "insurance fund must cover the loss", [BTC_S], "4900", "49490", "-49000000"),
    # One subtick: 0.1 BTC is worth 1/10 of a quote quantum, rounded to zero.
    ifd("dydx-src-ifd-zero-quote", "Succeeds when delta quote quantums is zero", [BTC_S], "4900", "0.000001", "0"),
]

INITIAL_MARGIN = [
    im("dydx-src-im-20pct", "initial margin 20%", "0.2", "500000", "100000"),
    im("dydx-src-im-50pct", "initial margin 50%", "0.5", "1000000", "500000"),
    im("dydx-src-im-round-up-to-1", "initial margin 10%, quote quantums = 1, should round up to 1", "0.1", "1", "1"),
    im("dydx-src-im-567243", "initial margin 56.7243%, quote quantums = 123_456, should round up to 70_030",
       "0.567243", "123456", "70030"),
    im("dydx-src-im-no-oimf-caps-zero", "base IMF = 20%, no OIMF since lower_cap = upper_cap = 0",
       "0.2", "500000", "100000", oi="1500000"),
    im("dydx-src-im-oimf-half", "base IMF = 20%, scaling_factor = 0.5",
       "0.2", "500000", "300000", oi="1500000", lower="1000000", upper="2000000"),
    im("dydx-src-im-oi-above-upper", "base IMF = 10%, scaling_factor = 1 since open_interest >> upper_cap",
       "0.2", "500000", "500000", oi="80000000", lower="25000000", upper="50000000"),
    im("dydx-src-im-oi-at-lower", "base IMF = 10%, open_interest = lower_cap so scaling_factor = 0",
       "0.2", "500000", "100000", oi="25000000", lower="25000000", upper="50000000"),
    im("dydx-src-im-oi-realistic", "base IMF = 10%, lower_cap < open_interest < upper_cap, realistic numbers",
       "0.2", "500000", "135697", oi="28123456.789123", lower="25000000", upper="60000000"),
]

CASES = BANKRUPTCY_QUOTE + FILLABLE_PRICE + INSURANCE_FUND_DELTA + INITIAL_MARGIN


def test_ids_are_unique_and_every_case_names_its_source():
    assert len({entry["id"] for entry in CASES}) == len(CASES)
    assert all(entry["source"].startswith("dydxprotocol/v4-chain protocol/x/") for entry in CASES)
    assert (len(BANKRUPTCY_QUOTE), len(FILLABLE_PRICE), len(INSURANCE_FUND_DELTA), len(INITIAL_MARGIN)) == (14, 15, 13, 9)


@pytest.mark.parametrize("entry", CASES, ids=[entry["id"] for entry in CASES])
def test_dydx_source_vector(entry):
    result = run_case(entry, "tests/test_conformance_dydx_sources.py")
    assert result.passed, result.message


if __name__ == "__main__":  # write the cases as a vector file: python tests/test_conformance_dydx_sources.py OUT.json
    Path(sys.argv[1]).write_text(json.dumps({"cases": CASES}, indent=1) + "\n")
