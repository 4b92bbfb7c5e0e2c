"""Options policies: pricing (Black-76 on SVI slices) and scenario-grid portfolio margin.

- :mod:`.black76` — Black-76 on the forward with discounting, the venues' edge handling, Greeks;
- :mod:`.svi` — raw SVI slices with their own forward and τ, bounded log-strike, capped variance;
- :mod:`.scenario_grid` — the general scenario-grid margin model (Derive PMRM_2 exactly), scalar path;
- :mod:`.grid_kernel` — the same valuation for whole books in arrays (accounts × scenarios × options);
- :mod:`.portfolio` — positions and feeds into a priced portfolio, bad input refused by field;
- :mod:`.api` — a preset's model and a margin report from positions and a surface;
- :mod:`.standard` — per-position ("standard") option margin: bit.com, OKX, Deribit, Aevo, Derive's standard manager;
- :mod:`.deribit_portfolio` — Deribit's risk-matrix portfolio margin (futures and perpetuals);
- :mod:`.auction` — Derive's Dutch liquidation auction, as pure steps over an immutable state.

Reference: ../shared/reference/options.md; guide: docs/options.md.
"""

from .api import margin_model, margin_report, margin_report_from_json
from .black76 import Greeks, black76_greeks, black76_price, black76_prices
from .portfolio import (
    ExpiryFeed,
    OptionPosition,
    build_portfolio,
    parse_portfolio,
    settlement_forward_split,
)
from .scenario_grid import (
    CollateralHolding,
    ExpiryHolding,
    MarginReport,
    OptionHolding,
    OptionPortfolio,
    PerpHolding,
    Scenario,
    ScenarioGridModel,
    VolShock,
)
from .svi import SviSlice

__all__ = [
    "CollateralHolding", "ExpiryFeed", "ExpiryHolding", "Greeks", "MarginReport", "OptionHolding", "OptionPortfolio",
    "OptionPosition", "PerpHolding", "Scenario", "ScenarioGridModel", "SviSlice", "VolShock", "black76_greeks",
    "black76_price", "black76_prices", "build_portfolio", "margin_model", "margin_report", "margin_report_from_json",
    "parse_portfolio", "settlement_forward_split",
]
