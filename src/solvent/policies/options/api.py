"""The friendly face of the options family: a preset's margin model, and a margin report from
positions and a surface. Documented in docs/options.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...core.errors import InvalidInput
from .portfolio import ExpiryFeed, OptionPosition, build_portfolio, parse_portfolio
from .scenario_grid import (
    CollateralHolding,
    MarginReport,
    PerpHolding,
    ScenarioGridModel,
)


def margin_model(preset: object = "derive", params: Mapping[str, Any] | None = None) -> ScenarioGridModel:
    """The scenario-grid model of an options preset (a name, a path or a loaded ``Preset``), with
    ``params`` overriding its ``[margin]`` tables key by key (lists such as ``scenarios`` are replaced)."""
    from ...presets import load_preset
    from ...presets.loader import Preset

    loaded = preset if isinstance(preset, Preset) else load_preset(str(preset))
    where = f"preset[{loaded.name}].margin"
    if loaded.data.get("kind") != "options":
        raise InvalidInput("preset", f"{loaded.name} is not an options preset (kind = {loaded.data.get('kind')!r})")
    spec = loaded.margin_spec(**dict(params or {}))
    if spec.get("model") != "scenario_grid":
        raise InvalidInput(f"{where}.model", f"expected scenario_grid, got {spec.get('model')!r}")
    return ScenarioGridModel.from_spec(spec, "params" if params else where)


def margin_report(positions: Sequence[OptionPosition], feeds: Sequence[ExpiryFeed], spot: object, *,
                  preset: object = "derive", params: Mapping[str, Any] | None = None,
                  perp: PerpHolding | None = None, collaterals: Sequence[CollateralHolding] = (), cash: object = 0,
                  spot_confidence: object = 1, stable_price: object = 1) -> MarginReport:
    """IM, MM, MtM, contingencies, the worst scenario of each group and every scenario's PnL, and
    the Greeks, of option ``positions`` priced on ``feeds`` (one per expiry: forward, rate, SVI
    slice or flat vol), under an options preset's scenario grid."""
    portfolio = build_portfolio(spot, positions, feeds, perp=perp, collaterals=collaterals, cash=cash,
                                spot_confidence=spot_confidence, stable_price=stable_price)
    return margin_model(preset, params).evaluate(portfolio)


def margin_report_from_json(data: Mapping[str, Any], preset: object = "derive") -> MarginReport:
    """The same from the JSON vocabulary of ``solvent margin --portfolio`` (and of the ``derive.pmrm2``
    vectors): ``spot``, ``feeds``, ``options``, ``perp``, ``collaterals``, ``cash``, optional ``params``."""
    params = data.get("params")
    if params is not None and not isinstance(params, Mapping):
        raise InvalidInput("params", "expected an object of margin tables")
    return margin_model(preset, params).evaluate(parse_portfolio(data))
