"""Conformance checks of the options family's portfolio margin (Derive PMRM_2).

The check builds the ``derive`` preset's scenario-grid model with the case's own parameter
tables over it, and the portfolio from the case's positions and feeds; every number comes from
``solvent.policies.options``. Floats are the venue's arithmetic here (option values); they leave
as Decimals of their shortest repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..core.errors import InvalidInput
from ..policies.options import margin_model, parse_portfolio
from .checks import check


def _d(value: float) -> Decimal:
    return Decimal(repr(float(value)))


@check("derive.pmrm2")
def derive_pmrm2(data: Mapping[str, Any]) -> dict[str, Any]:
    params = data.get("params")
    if params is not None and not isinstance(params, Mapping):
        raise InvalidInput("params", "expected an object of margin tables")
    report = margin_model("derive", params).evaluate(parse_portfolio(data))
    return {
        "im": _d(report.im), "mm": _d(report.mm), "mtm": _d(report.mtm), "option_mtm": _d(report.option_mtm),
        "basis_contingency": _d(report.basis_contingency), "mm_contingency": _d(report.mm_contingency),
        "im_contingency": _d(report.im_contingency),
        "worst_regular_loss": _d(report.worst_loss("regular")), "worst_tail_loss": _d(report.worst_loss("tail")),
        "worst_skew_loss": _d(report.worst_loss("skew")),
        "scenario_pnls": [_d(pnl) for pnl in report.scenario_pnls],
        "worst_scenario": report.worst_scenario if report.worst_scenario is not None else "basis",
    }
