"""Conformance checks for the option venues' per-position margins, Deribit's portfolio margin and Derive's auction.

Each check takes its venue's preset (``presets/bitcom.toml``, ``okx_options.toml``, ``deribit.toml``, Derive's
auction parameters) for every parameter the case does not state, replaces those the case states, and calls the
policy (``solvent.policies.options.standard``, ``deribit_portfolio``, ``auction``). No formula lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidInput
from ..policies.options import auction, deribit_portfolio
from ..policies.options.standard import StandardOptionMargin
from ..presets import load_preset
from .checks import _required, _rows, check


def _option_margin_model(preset_name: str, data: Mapping[str, Any], overrides: Mapping[str, str]) -> StandardOptionMargin:
    """The preset's standard option margin, for the case's settlement and underlying, with the case's factors."""
    preset = load_preset(preset_name)
    spec = preset.section("option_margin")
    settlement = str(data.get("settlement", spec.get("settlement", "linear"))).lower()
    if settlement in ("inverse", "coin") and str(spec.get("settlement", "linear")) != "inverse":
        spec = {**{k: v for k, v in spec.items() if k != "coin"}, **spec.get("coin", {})}  # the coin-margined book
    model = StandardOptionMargin.from_preset(spec, data.get("underlying"), f"preset[{preset_name}].option_margin")
    return model.with_overrides(settlement=data.get("settlement"),
                                **{name: data.get(key) for key, name in overrides.items()})


# ------------------------------------------------------------------------------- bit.com


@check("bitcom.option_margin")
def bitcom_option_margin(data):
    model = _option_margin_model("bitcom", data, {"im_factor": "im_factor", "im_floor_factor": "im_floor_factor",
                                                  "mm_factor": "mm_factor"})
    result = model.position(_required(data, "kind"), _required(data, "side"), _required(data, "size"),
                            _required(data, "underlying_price"), _required(data, "strike"),
                            _required(data, "mark_price"), contract_multiplier=data.get("contract_multiplier"),
                            margin_factor=data.get("margin_factor"))
    return result.outputs()


# ------------------------------------------------------------------------------- OKX


@check("okx.option_margin")
def okx_option_margin(data):
    # OKX names the floor a and the share b: max(a, b − OTM/F).
    model = _option_margin_model("okx_options", data, {"b": "im_factor", "a": "im_floor_factor", "c": "mm_factor",
                                                       "min_open_order_margin": "min_open_order_margin",
                                                       "contract_multiplier": "contract_multiplier"})
    forward = _required(data, "forward_price")
    index = data.get("index_price", forward)
    result = model.position(_required(data, "kind"), _required(data, "side"), data.get("size", "1"),
                            index, _required(data, "strike"),
                            _required(data, "mark_price"), reference_price=forward,
                            margin_factor=data.get("margin_factor"), tier_contracts=data.get("tier_contracts"))
    outputs: dict[str, Any] = result.outputs()
    if data.get("order_price") is not None:
        outputs["sell_to_open_order_margin"] = model.sell_to_open_order_margin(
            result.per_contract.initial, data["order_price"], data.get("order_quantity", "1"),
            fee_per_contract=data.get("fee_per_contract", "0"), underlying_price=index)
        outputs["buy_to_open_order_margin"] = model.buy_to_open_order_margin(
            data["order_price"], data.get("order_quantity", "1"), fee_per_contract=data.get("fee_per_contract", "0"))
        outputs["buy_to_close_order_margin"] = model.buy_to_close_order_margin(
            result.per_contract.initial, data["order_price"], data.get("order_quantity", "1"),
            fee_per_contract=data.get("fee_per_contract", "0"))
    return outputs


# ------------------------------------------------------------------------------- Deribit


@check("deribit.portfolio_margin")
def deribit_portfolio_margin(data):
    preset = load_preset("deribit")
    spec = preset.section("portfolio_margin")
    currency = str(_required(data, "currency")).lower()
    table = {key: value for key, value in spec.items() if key != "currencies"}
    table.update(spec.get("currencies", {}).get(currency, {}))
    params_in = data.get("params", {})
    if not isinstance(params_in, Mapping):
        raise InvalidInput("params", "expected an object (the model_params of private/pme/simulate)")
    table.update(params_in)
    params = deribit_portfolio.DeribitPmParams.from_table(table, "params")
    positions = [deribit_portfolio.FuturePosition.parse(row, f"positions[{i}]")
                 for i, row in enumerate(_rows(_required(data, "positions"), "positions"))]
    result = deribit_portfolio.portfolio_margin(
        positions, _required(data, "index_price"), params,
        open_orders_margin=data.get("open_orders_margin", "0"), mmp_margin=data.get("mmp_margin", "0"),
        spot_margin=data.get("spot_margin", "0"))
    return result.outputs()


# ------------------------------------------------------------------------------- Derive auction


def _derive_auction_params(data: Mapping[str, Any]) -> auction.AuctionParams:
    """Derive's preset ``[auction]`` table, with the case's parameters."""
    base = load_preset("derive").section("auction")
    given = data.get("params", {})
    if not isinstance(given, Mapping):
        raise InvalidInput("params", "expected an object of auction parameters")
    return auction.AuctionParams.from_table({**base, **given}, "params")


@check("derive.auction")
def derive_auction(data):
    params = _derive_auction_params(data)
    outputs: dict[str, Any] = {}
    state = None
    start = data.get("start")
    if start is not None:
        if not isinstance(start, Mapping):
            raise InvalidInput("start", "expected {mtm, mm}")
        state = auction.start_auction(params, _required(start, "mtm", "start"), _required(start, "mm", "start"))
        outputs["fee"] = state.fee
        outputs["insolvent"] = state.insolvent
    results = []
    for index, row in enumerate(_rows(_required(data, "bids"), "bids")):
        where = f"bids[{index}]"
        mtm, mm = _required(row, "mtm", where), _required(row, "mm", where)
        if state is None:  # no start given: the auction started on this account (solvent iff MtM > 0), fee paid
            state = auction.AuctionState(insolvent=auction.start_auction(params, mtm, mm).insolvent)
        result = auction.place_bid(params, state, _required(row, "elapsed", where), mtm, mm,
                                   _required(row, "percent", where), where)
        results.append(result.outputs())
        state = result.state
    outputs["bids"] = results
    return outputs
