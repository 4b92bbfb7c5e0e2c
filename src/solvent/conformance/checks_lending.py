"""Conformance checks for lending and CDP protocols (Aave v3, Compound v3, Maker, Liquity, Euler, Morpho).

Each check maps its case's vocabulary onto ``solvent.policies.lending`` with the protocol's preset
(``presets/aave_v3.toml`` …) supplying every parameter the case does not state. No formula lives
here: units, rounding and rules are the policies'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..core.errors import InvalidInput
from ..core.numbers import to_int
from ..policies.lending import aave, compound, euler, from_units, liquity, maker, morpho
from ..presets import load_preset
from .checks import _required, _rows, check

# ------------------------------------------------------------------------------- Aave v3


def _aave_market(data: Mapping[str, Any]) -> aave.AaveMarket:
    preset = load_preset("aave_v3")
    market = aave.AaveMarket.from_tables(preset.section("liquidation"), preset.section("reserves"),
                                         preset.section("assets"), preset.section("emodes"), "preset[aave_v3]")
    return market.with_version(data["version"]) if "version" in data else market


def _aave_account(data: Mapping[str, Any], market: aave.AaveMarket) -> aave.AaveAccount:
    return market.account(_rows(_required(data, "collateral"), "collateral"),
                          _rows(data.get("debt", []), "debt"), emode=to_int(data.get("emode", 0), "emode"))


@check("aave.health_factor")
def aave_health_factor(data):
    market = _aave_market(data)
    account_data = aave.account_data(_aave_account(data, market), market.config)
    return {
        "health_factor": account_data.health_factor,
        "total_collateral": market.config.base_to_decimal(account_data.total_collateral_base),
        "total_debt": market.config.base_to_decimal(account_data.total_debt_base),
        "liquidatable": account_data.liquidatable,
    }


@check("aave.close_factor")
def aave_close_factor(data):
    market = _aave_market(data)
    factor = aave.close_factor(_required(data, "health_factor"), data.get("collateral_value", "0"),
                               data.get("debt_value", "0"), market.config)
    return {"close_factor": factor}


@check("aave.liquidation_call")
def aave_liquidation_call(data):
    market = _aave_market(data)
    result = aave.liquidation_call(_aave_account(data, market), str(_required(data, "collateral_asset")),
                                   str(_required(data, "debt_asset")), data.get("debt_to_cover"), market.config)
    return result.outputs()


# ------------------------------------------------------------------------------- Compound v3


def _comet(data: Mapping[str, Any]) -> compound.CometMarket:
    preset = load_preset("compound_v3")
    name = str(data.get("market", preset.section("liquidation").get("default_market", "cUSDCv3")))
    market = compound.market_from_tables(preset.section("comets"), name, "preset[compound_v3].comets")
    if "base_decimals" in data:
        market = replace(market, base_decimals=to_int(data["base_decimals"], "base_decimals"))
    return market


@check("compound.quote_collateral")
def compound_quote_collateral(data):
    amount = _comet(data).quote(
        _required(data, "asset_price"), _required(data, "base_price"), _required(data, "base_amount"),
        asset=data.get("asset"), liquidation_factor=data.get("liquidation_factor"),
        store_front_price_factor=data.get("store_front_price_factor"), asset_decimals=data.get("asset_decimals"),
    )
    return {"collateral_amount": amount}


@check("compound.absorb")
def compound_absorb(data):
    result = _comet(data).absorb(_required(data, "debt"), _required(data, "base_price"),
                                 _rows(data.get("collateral", []), "collateral"))
    return result.outputs()


# ------------------------------------------------------------------------------- Maker


def _ilk(data: Mapping[str, Any]) -> maker.MakerIlk:
    preset = load_preset("maker")
    ilk = maker.ilk_from_tables(str(data.get("ilk", "ETH-A")), preset.section("ilks"),
                                preset.section("liquidation"), "preset[maker]")
    return ilk.with_overrides(data)


@check("maker.auction_price")
def maker_auction_price(data):
    calc = _ilk({}).price_calc(data, where="")
    return {"price": maker.auction_price(calc, _required(data, "top"), _required(data, "elapsed"))}


@check("maker.bark")
def maker_bark(data):
    result = maker.bark_vault(_required(data, "ink"), _required(data, "art"), data.get("rate", "1"),
                              _required(data, "price"), _ilk(data), data.get("hole_room"),
                              system_dirt=data.get("system_dirt", "0"), dirt=data.get("dirt", "0"))
    return result.outputs()


@check("maker.take")
def maker_take(data):
    spec = _required(data, "auction")
    if not isinstance(spec, Mapping):
        raise InvalidInput("auction", "expected an object {tab, lot, top, calc, ...}")
    ilk = _ilk({})
    auction = maker.Auction.parse(_required(spec, "tab"), _required(spec, "lot"), _required(spec, "top"),
                                  ilk.price_calc(spec, "auction"), tail=spec.get("tail"), cusp=spec.get("cusp"))
    chost = data["chost"] if "chost" in data else from_units(ilk.chost, 45)
    return maker.run_takes(auction, _rows(_required(data, "takes"), "takes"), chost).outputs()


# ------------------------------------------------------------------------------- Liquity v1


@check("liquity.liquidate")
def liquity_liquidate(data):
    config = liquity.LiquityConfig.from_table(load_preset("liquity_v1").section("trove_manager"),
                                              "preset[liquity_v1].trove_manager")
    result = liquity.liquidate(_required(data, "coll"), _required(data, "debt"), _required(data, "price"),
                               data.get("stability_pool", "0"), mode=data.get("mode"), tcr=data.get("tcr"),
                               config=config)
    return result.outputs()


# ------------------------------------------------------------------------------- Euler v2


@check("euler.liquidation")
def euler_liquidation(data):
    config = euler.EulerVaultConfig.from_table(load_preset("euler_v2").section("liquidation"),
                                               "preset[euler_v2].liquidation")
    if "max_discount" in data:
        config = config.with_max_discount(data["max_discount"])
    result = euler.liquidation(
        _required(data, "collateral_value"), _required(data, "liability_value"), _required(data, "ltv"),
        from_units(config.max_liquidation_discount, euler.CONFIG_DECIMALS),
        _required(data, "collateral_amount"), _required(data, "collateral_price"), repay=data.get("repay"),
    )
    return result.outputs()


# ------------------------------------------------------------------------------- Morpho Blue


@check("morpho.lif")
def morpho_lif(data):
    config = morpho.MorphoConfig.from_table(load_preset("morpho_blue").section("liquidation"),
                                            "preset[morpho_blue].liquidation")
    return {"lif": morpho.liquidation_incentive_factor(_required(data, "lltv"), config)}
