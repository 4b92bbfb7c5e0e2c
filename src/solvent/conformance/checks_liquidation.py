"""Conformance checks for liquidation execution and the loss waterfall (dYdX, Drift, ADL).

Each check maps its case's vocabulary onto the policies in ``solvent.policies.dydx``,
``solvent.policies.drift`` and ``solvent.policies.adl``, with parameters from the venue's preset
(``[liquidation]`` table) overridden by what the case states. No formula lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.numbers import to_int
from ..policies import adl, drift, dydx
from ..presets import load_preset
from .checks import _required, _rows, check

# ------------------------------------------------------------------------------- dYdX

_DYDX_RATES = ("max_liquidation_fee", "bankruptcy_adjustment", "spread_to_maintenance_margin_ratio",
               "max_position_portion_liquidated")


def _dydx_config(data: Mapping[str, Any]) -> dydx.DydxLiquidationConfig:
    """The preset's liquidations config, with any rate the case states replacing the preset's."""
    table = load_preset("dydx_v4").section("liquidation")
    config = dydx.DydxLiquidationConfig.from_table(table, "preset[dydx_v4].liquidation")
    overrides = {name: data[name] for name in _DYDX_RATES if name in data}
    return config.with_rates(**overrides) if overrides else config


def _dydx_subaccount(data: Mapping[str, Any]) -> dydx.Subaccount:
    return dydx.Subaccount.parse(_rows(_required(data, "positions"), "positions"), data.get("quote_balance", "0"))


@check("dydx.fillable_price")
def dydx_fillable_price(data):
    price = dydx.fillable_price(_dydx_subaccount(data), str(_required(data, "liquidate")), _dydx_config(data),
                                tick=data.get("tick"))
    return {"price": price}


@check("dydx.bankruptcy_quote")
def dydx_bankruptcy_quote(data):
    quote = dydx.bankruptcy_quote(_dydx_subaccount(data), str(_required(data, "liquidate")),
                                  _required(data, "delta_size"))
    return {"quote_quantums": quote}


@check("dydx.insurance_fund_delta")
def dydx_insurance_fund_delta(data):
    delta = dydx.insurance_fund_delta(_dydx_subaccount(data), str(_required(data, "liquidate")),
                                      _required(data, "fill_price"), _required(data, "fill_size"), _dydx_config(data))
    return {"quote_quantums": delta}


# ------------------------------------------------------------------------------- Drift


def _drift_config() -> drift.DriftLiquidationConfig:
    return drift.DriftLiquidationConfig.from_table(load_preset("drift_v2").section("liquidation"),
                                                   "preset[drift_v2].liquidation")


@check("drift.base_to_cover_shortage")
def drift_base_to_cover_shortage(data):
    base = drift.base_to_cover_shortage(
        margin_shortage=_required(data, "margin_shortage"),
        margin_ratio=_required(data, "margin_ratio"),
        liquidator_fee=_required(data, "liquidator_fee"),
        if_fee=data.get("if_fee", "0"),
        oracle_price=_required(data, "oracle_price"),
        quote_price=data.get("quote_price", "1"),
    )
    return {"base": base}


@check("drift.if_fee")
def drift_if_fee(data):
    fee = drift.if_fee(
        margin_shortage=_required(data, "margin_shortage"),
        base=_required(data, "base"),
        oracle_price=_required(data, "oracle_price"),
        margin_ratio=_required(data, "margin_ratio"),
        liquidator_fee=_required(data, "liquidator_fee"),
        max_if_fee=_required(data, "max_if_fee"),
        quote_price=data.get("quote_price", "1"),
        config=_drift_config(),
    )
    return {"if_fee": fee}


@check("drift.liquidator_fee")
def drift_liquidator_fee(data):
    fee = drift.liquidator_fee(_required(data, "base_fee"), _required(data, "max_fee"),
                               _required(data, "last_active_slot"), _required(data, "current_slot"),
                               config=_drift_config())
    return {"fee": fee}


@check("drift.socialized_loss")
def drift_socialized_loss(data):
    delta = drift.socialized_loss_funding_delta(_required(data, "loss"), _required(data, "base_long"),
                                                _required(data, "base_short"))
    return {"funding_delta_per_base": delta}


# ------------------------------------------------------------------------------- ADL


@check("adl.queue")
def adl_queue(data):
    rule = str(_required(data, "rule")).strip().lower()
    candidates = adl.parse_candidates(_rows(_required(data, "candidates"), "candidates"),
                                      contract=data.get("contract") or "linear")
    offset = data.get("offset")
    max_visits = data.get("max_visits")
    if rule == "dydx" and max_visits is None:
        max_visits = load_preset("dydx_v4").section("liquidation").get("max_deleveraging_subaccounts_to_iterate")
    result = adl.deleverage(
        rule,
        candidates,
        _required(data, "deficit_size"),
        offset=None if offset is None else to_int(offset, "offset"),
        lot=data.get("lot"),
        max_visits=max_visits,
    )
    return {
        "closes": [{"account": close.account, "size": close.size} for close in result.closes],
        "queue": [{"account": s.account, "rank": s.rank, "quantile": s.quantile, "lights": s.lights}
                  for s in result.standings],
        "uncovered": result.uncovered,
    }
