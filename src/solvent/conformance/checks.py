"""Conformance checks: each maps a venue's vocabulary onto solvent's presets and policies.

A check parses its case's input, builds the policy objects the venue's preset uses, calls them
and returns the outputs by name. It holds no formula of its own: if a number is computed here
rather than in a policy, the policy is missing something. Add a check with ``@check("venue.name")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..core.domain import ContractKind, MarginMode, Side
from ..core.errors import InvalidInput
from ..core.numbers import non_negative, positive, to_decimal, to_int
from ..policies.liquidation_price import (
    PositionView,
    account_liquidation_price,
    position_liquidation_price,
    round_price_against_account,
)
from ..policies.margin import drift_size_premium_weight
from ..presets import load_preset

Handler = Callable[[Mapping[str, Any]], dict[str, Any]]
CHECKS: dict[str, Handler] = {}


def check(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        CHECKS[name] = handler
        return handler

    return register


def _rows(value: Any, field: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(row, Mapping) for row in value):
        raise InvalidInput(field, "expected a list of objects")
    return value


def _required(data: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in data or data[key] is None:
        raise InvalidInput(f"{where}.{key}" if where else key, "missing")
    return data[key]


def _on_tick(price, data: Mapping[str, Any], side: Side):
    """A price rounded to the case's optional ``tick`` as the venues publish theirs: toward the
    account's earlier liquidation (up for a long, down for a short; Bybit's stated rule)."""
    tick = next((data[key] for key in ("tick", "tick_size", "price_tick") if data.get(key) is not None), None)
    if tick is None or price is None:
        return price
    return round_price_against_account(price, positive(tick, "tick"), side)


# ------------------------------------------------------------------------------- Binance


@check("binance.bracket_cum")
def binance_bracket_cum(data):
    model = load_preset("binance").margin_model(tiers=_rows(_required(data, "brackets"), "brackets"))
    return {"cum": model.deductions}


@check("binance.maintenance_margin")
def binance_maintenance_margin(data):
    model = load_preset("binance").margin_model(tiers=_rows(_required(data, "brackets"), "brackets"))
    return {"maintenance_margin": model.maintenance_margin(non_negative(_required(data, "notional"), "notional"))}


@check("binance.liquidation_price")
def binance_liquidation_price(data):
    preset = load_preset("binance")
    views = []
    for index, row in enumerate(_rows(_required(data, "positions"), "positions")):
        where = f"positions[{index}]"
        # Each position comes with the bracket it sits in: a one-row table with its rate and cum.
        bracket = {"floor": "0", "mmr": _required(row, "mmr", where), "cum": row.get("cum") or "0"}
        views.append(PositionView(
            symbol=str(_required(row, "symbol", where)),
            side=Side.parse(_required(row, "side", where), f"{where}.side"),
            size=positive(_required(row, "size", where), f"{where}.size"),
            entry_price=positive(_required(row, "entry_price", where), f"{where}.entry_price"),
            mark_price=positive(row.get("mark_price") or row["entry_price"], f"{where}.mark_price"),
            margin=preset.margin_model(tiers=[bracket]),
        ))
    price = account_liquidation_price(
        wallet_balance=to_decimal(_required(data, "wallet_balance"), "wallet_balance"),
        positions=views,
        target=str(_required(data, "target")),
        rule=preset.liquidation_price_rule,
        margin_mode=MarginMode.parse(data.get("margin_mode", "cross"), "margin_mode"),
    )
    target = [view for view in views if view.symbol == str(data["target"])]
    return {"price": _on_tick(price, data, target[0].side) if len(target) == 1 else price}


# ------------------------------------------------------------------------------- Hyperliquid


@check("hyperliquid.liquidation_price")
def hyperliquid_liquidation_price(data):
    preset = load_preset("hyperliquid")
    model = preset.margin_model(tiers=[{"floor": "0", "max_leverage": _required(data, "max_leverage")}])
    side = Side.parse(_required(data, "side"))
    price = position_liquidation_price(
        kind=ContractKind.LINEAR,
        margin_mode=MarginMode.ISOLATED,
        side=side,
        size=to_decimal(_required(data, "size"), "size"),
        entry_price=to_decimal(_required(data, "entry_price"), "entry_price"),
        margin_model=model,
        rule=preset.liquidation_price_rule,
        isolated_margin=to_decimal(_required(data, "isolated_margin"), "isolated_margin"),
    )
    return {"price": _on_tick(price, data, side)}


@check("hyperliquid.maintenance_margin")
def hyperliquid_maintenance_margin(data):
    model = load_preset("hyperliquid").margin_model(tiers=_rows(_required(data, "tiers"), "tiers"))
    return {"maintenance_margin": model.maintenance_margin(non_negative(_required(data, "notional"), "notional"))}


# ------------------------------------------------------------------------------- Bybit


def _bybit_price(data, *, bankruptcy: bool):
    preset = load_preset("bybit")
    kind = ContractKind.parse(data.get("contract", "linear"), "contract")
    mode = MarginMode.parse(data.get("margin_mode", "isolated"), "margin_mode")
    model = preset.margin_model(tiers=[{"floor": "0", "mmr": data.get("mmr", "0"),
                                        "deduction": data.get("mm_deduction") or data.get("deduction") or "0"}])
    wallet = data.get("wallet_balance")
    side = Side.parse(_required(data, "side"))
    price = position_liquidation_price(
        kind=kind,
        margin_mode=mode,
        side=side,
        # The bankruptcy price does not depend on the size; the published case gives none.
        size=to_decimal(data.get("size", "1"), "size"),
        entry_price=to_decimal(_required(data, "entry_price"), "entry_price"),
        margin_model=model,
        rule=preset.liquidation_price_rule,
        wallet_balance=None if wallet is None else to_decimal(wallet, "wallet_balance"),
        leverage=None if data.get("leverage") is None else to_decimal(data["leverage"], "leverage"),
        extra_margin=to_decimal(data.get("extra_margin") or "0", "extra_margin"),
        fee_rate=to_decimal(data.get("fee_rate") or "0", "fee_rate"),
        bankruptcy=bankruptcy,
    )
    return _on_tick(price, data, side)


@check("bybit.liquidation_price")
def bybit_liquidation_price(data):
    return {"price": _bybit_price(data, bankruptcy=False)}


@check("bybit.bankruptcy_price")
def bybit_bankruptcy_price(data):
    return {"price": _bybit_price(data, bankruptcy=True)}


# ------------------------------------------------------------------------------- BitMEX


@check("bitmex.risk_limit")
def bitmex_risk_limit(data):
    model = load_preset("bitmex").margin_model(
        base_mm=_required(data, "base_mm"),
        base_im=_required(data, "base_im"),
        base_risk_limit=_required(data, "base_risk_limit"),
        step=_required(data, "step"),
    )
    value = non_negative(_required(data, "position_value"), "position_value")
    mm_rate, im_rate = model.rates(value)
    return {"mm_rate": mm_rate, "im_rate": im_rate, "maintenance_margin": model.maintenance_margin(value)}


# ------------------------------------------------------------------------------- dYdX


@check("dydx.initial_margin")
def dydx_initial_margin(data):
    model = load_preset("dydx_v4").margin_model(
        imf=_required(data, "imf"),
        oi_lower_cap=data.get("oi_lower_cap", "0"),
        oi_upper_cap=data.get("oi_upper_cap", "0"),
    )
    quantums = to_int(_required(data, "quote_quantums"), "quote_quantums")
    open_interest = non_negative(data.get("open_interest_notional", "0"), "open_interest_notional")
    return {"initial_margin_quantums": model.initial_margin_quantums(quantums, open_interest)}


# ------------------------------------------------------------------------------- Drift


@check("drift.size_premium")
def drift_size_premium(data):
    weight = drift_size_premium_weight(
        _required(data, "weight"), _required(data, "imf_factor"), _required(data, "size"), str(_required(data, "kind"))
    )
    return {"weight": weight}


# ------------------------------------------------------------------------------- GMX


@check("gmx.is_liquidatable")
def gmx_is_liquidatable(data):
    model = load_preset("gmx_v2").margin_model(
        min_collateral_factor=_required(data, "min_collateral_factor"),
        min_collateral_factor_for_liquidation=data.get("min_collateral_factor_for_liquidation",
                                                       _required(data, "min_collateral_factor")),
    )
    size_usd = positive(_required(data, "size_usd"), "size_usd")
    remaining = model.remaining_collateral(
        non_negative(_required(data, "collateral_amount"), "collateral_amount"),
        positive(data.get("collateral_price", "1"), "collateral_price"),
        int(Side.parse(_required(data, "side"))),
        size_usd,
        positive(_required(data, "entry_price"), "entry_price"),
        positive(_required(data, "price"), "price"),
        non_negative(data.get("position_fee_rate", "0"), "position_fee_rate"),
    )
    return {"liquidatable": model.is_liquidatable(remaining, size_usd)}


# Checks of the liquidation policies register themselves on import (they use ``check`` above).
from . import (
    checks_lending,  # noqa: F401
    checks_liquidation,  # noqa: F401
    checks_options,  # noqa: F401
    checks_options_venues,  # noqa: F401
)
