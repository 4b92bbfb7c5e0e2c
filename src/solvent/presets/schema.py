"""The preset schema: which tables and keys a preset may hold, and their shapes.

Every table is closed: a key the schema does not name is refused with its dotted path, so that a
typo in a preset file, an ``--override`` or a ``CreateVenue`` override fails loudly instead of
silently running the baseline. Values are checked for shape here (a table, a list, a scalar);
their ranges are checked where they are read (``engine/config.py``, the policies), which name the
same paths. ``solvent presets --schema`` prints this schema as JSON Schema. See docs/presets.md.

Scalars are decimal text or integers (a TOML float would lose digits: write ``"0.01"``); a
boolean may also be given as text (``"true"``), as ``--override`` passes every value as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from ..core.errors import InvalidInput

Number = StrictStr | StrictInt
Flag = StrictBool | StrictStr
Text = StrictStr


class Closed(BaseModel):
    """A table whose keys are all named: anything else is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------- shared by every family


class Fees(Closed):
    taker: Number | None = None
    maker: Number | None = None
    liquidation: Number | None = None
    max_liquidation: Number | None = Field(None, description="dYdX: cap of the liquidation fee")
    position: Number | None = Field(None, description="GMX: position fee rate")


class MarginTier(Closed):
    floor: Number
    max_leverage: Number | None = None
    mmr: Number | None = None
    imr: Number | None = None
    cum: Number | None = None


class GridScenario(Closed):
    """One scenario of a scenario-grid model: a spot shock factor, a vol shock direction, a weight."""

    spot_shock: Number
    vol_shock: Text
    dampening: Number | None = None
    group: Text | None = None


class GridVolShock(Closed):
    mode: Text | None = None
    vol_range_up: Number | None = None
    vol_range_down: Number | None = None
    short_term_power: Number | None = None
    long_term_power: Number | None = None
    dte_floor_days: Number | None = None
    min_vol_up_shock: Number | None = None


class GridFactors(Closed):
    im_factor: Number | None = None
    mm_factor: Number | None = None
    long_base_static_discount: Number | None = None
    short_base_static_discount: Number | None = None
    long_rate_mult_scale: Number | None = None
    long_rate_add_scale: Number | None = None
    short_rate_mult_scale: Number | None = None
    short_rate_add_scale: Number | None = None


class GridBasisContingency(Closed):
    scenario_spot_up: Number | None = None
    scenario_spot_down: Number | None = None
    add_factor: Number | None = None
    mult_factor: Number | None = None


class GridOtherContingency(Closed):
    peg_loss_threshold: Number | None = None
    peg_loss_factor: Number | None = None
    conf_threshold: Number | None = None
    conf_margin: Number | None = None
    mm_perp_percent: Number | None = None
    im_perp_percent: Number | None = None
    mm_option_percent: Number | None = None
    im_option_percent: Number | None = None


class GridSkewShock(Closed):
    linear_base_cap: Number | None = None
    abs_base_cap: Number | None = None
    linear_c_base: Number | None = None
    abs_c_base: Number | None = None
    min_k_star: Number | None = None
    width_scale: Number | None = None
    vol_param_static: Number | None = None
    vol_param_scale: Number | None = None


class Margin(Closed):
    """``[margin]`` (and a market's ``[markets.margin]``): the margin model and its parameters."""

    model: Literal["tiered", "risk_limit_steps", "liquidity_tier", "size_premium", "min_collateral_factor",
                   "health_factor", "standard_option", "scenario_grid"] | None = None
    rates: Text | None = None
    tiers: list[MarginTier] | None = None
    base_mm: Number | None = None
    base_im: Number | None = None
    base_risk_limit: Number | None = None
    step: Number | None = None
    step_rate: Number | None = None
    imf: Number | None = None
    mmf: Number | None = None
    maintenance_fraction: Number | None = None
    oi_lower_cap: Number | None = None
    oi_upper_cap: Number | None = None
    initial_ratio: Number | None = None
    maintenance_ratio: Number | None = None
    imf_factor: Number | None = None
    min_collateral_factor: Number | None = None
    min_collateral_factor_for_liquidation: Number | None = None
    min_collateral_usd: Number | None = None
    transfer_floor: Number | None = None
    transfer_counts_profit: Flag | None = None
    transfer_cash_covers_maintenance: Flag | None = None
    isolated_close: Text | None = None
    # scenario-grid portfolio margin (options: Derive PMRM_2, SPAN-style designs)
    scenarios: list[GridScenario] | None = None
    vol_shock: GridVolShock | None = None
    margin: GridFactors | None = None
    basis_contingency: GridBasisContingency | None = None
    other_contingency: GridOtherContingency | None = None
    skew_shock: GridSkewShock | None = None


class Market(Closed):
    symbol: Text
    base: Text | None = None
    quote: Text | None = None
    settle: Text | None = None
    kind: Text | None = None
    size_decimals: Number | None = None
    contract_size: Number | None = None
    price_tick: Number | None = None
    contract_tier: Text | None = None
    isolated_only: Flag | None = None
    margin: Margin | None = None


class LiquidationPrice(Closed):
    maintenance_at: Text | None = None
    fee_to_close: Flag | None = None
    isolated_margin: Text | None = None
    cross_collateral: Text | None = None
    cross_collateral_inverse: Text | None = None
    maintenance_unit: Number | None = None


class Trigger(Closed):
    rule: Text | None = None
    warning_ratio: Number | None = None
    exit_buffer: Number | None = None


class Execution(Closed):
    method: Text | None = None
    limit: Text | None = None
    book_depth: Number | None = None
    book_half_spread: Number | None = None
    partial_fraction: Number | None = None
    partial_above_notional: Number | None = None
    cooldown_seconds: Number | None = None
    backstop_below: Number | None = None
    backstop_deleveraged_below: Number | None = None
    max_portion_per_block: Number | None = None
    min_notional_per_block: Number | None = None
    max_notional_per_block: Number | None = None
    max_insurance_lost_per_block: Number | None = None
    step_down_tiers: Flag | None = None
    once_per_block: Flag | None = None
    takeover: Text | None = None
    liquidator_fee: Number | None = None
    liquidator_max_fee: Number | None = None
    fee_grace_blocks: Number | None = None
    fee_increase_per_block: Number | None = None
    fee_rule: Text | None = None
    if_liquidation_fee: Number | None = None
    fee: Number | None = None
    fee_to: dict[str, Number] | None = None
    remainder_to_insurance: Flag | None = None


class Waterfall(Closed):
    layers: list[Text] | None = None
    insurance_cap: Number | None = None
    insurance_max_position_ratio: Number | None = None
    adl_rule: Text | None = None
    adl_price: Text | None = None
    adl_when: Text | None = None


class Mark(Closed):
    """The venue's mark-price rule: the engine computes marks from source quotes by it (engine/pricing.py)."""

    rule: Text | None = None
    ema_seconds: Number | None = None
    fallback_ema_seconds: Number | None = None
    basis_window_seconds: Number | None = None
    funding_interval_seconds: Number | None = None
    cex_perp_weights: dict[str, Number] | None = None


class Oracle(Closed):
    method: Text | None = None
    deviation_cap: Number | None = None
    stale_after_seconds: Number | None = None
    min_sources: Number | None = None
    weights: dict[str, Number] | None = None
    max_twap_divergence: Number | None = None
    max_volatility_ratio: Number | None = None
    twap_window_seconds: Number | None = Field(None, description="Drift: the TWAP the divergence guard compares with")
    max_confidence_ratio: Number | None = Field(None, description="a quote whose confidence/price exceeds this: weight 0")
    circuit_breaker: Number | None = Field(None, description="a mark move beyond this fraction in one update trips a guard")
    guard_action: Text | None = Field(None, description="pause_liquidations (default) or hold_mark")
    bounds: dict[str, list[Number]] | None = Field(None, description="market → [min, max]: an index outside is out of "
                                                   "bounds (Chainlink minAnswer/maxAnswer)")
    resume_after_seconds: Number | None = Field(None, description="a guard clears at the first clean reading this long "
                                                 "after the last bad one")


class StewardParam(Closed):
    """One preset path a risk steward may move: by at most ``max_change`` per update, at most once per delay."""

    max_change: Number
    change: Literal["relative", "absolute"] | None = None
    min_delay_seconds: Number | None = None


class RiskSteward(Closed):
    """``[risk_steward]``: bounds of ``update_risk_param`` (Aave's risk stewards; engine/steward.py)."""

    min_delay_seconds: Number | None = None
    params: dict[str, StewardParam] | None = None


class Liquidation(Closed):
    """``[liquidation]``: a protocol's own liquidation settings, in its own vocabulary (dYdX's
    liquidations config, Drift's, Aave's close factors, Maker's system hole, Morpho's, Euler's)."""

    # dYdX v4
    bankruptcy_adjustment: Number | None = None
    max_liquidation_fee: Number | None = None
    spread_to_maintenance_margin_ratio: Number | None = None
    min_position_notional_liquidated: Number | None = None
    max_position_portion_liquidated: Number | None = None
    max_notional_liquidated: Number | None = None
    max_insurance_lost: Number | None = None
    max_deleveraging_subaccounts_to_iterate: Number | None = None
    max_liquidation_attempts_per_block: Number | None = None
    # Drift v2
    margin_buffer_ratio: Number | None = None
    fee_grace_slots: Number | None = None
    fee_increase_per_slot: Number | None = None
    max_fee_multiplier: Number | None = None
    if_fee_share_of_implied: Number | None = None
    insurance_max: dict[str, Number] | None = None
    liquidation_duration_slots: Number | None = None
    initial_pct_to_liquidate: Number | None = None
    small_shortage_full_liquidation: Flag | Number | None = None
    # Aave v3
    version: Text | None = None
    base_currency_decimals: Number | None = None
    default_close_factor: Number | None = None
    max_close_factor: Number | None = None
    close_factor_hf_threshold: Number | None = None
    min_base_max_close_factor_threshold: Number | None = None
    min_leftover_base: Number | None = None
    # Compound v3
    default_market: Text | None = None
    price_decimals: Number | None = None
    # Maker
    par: Number | None = None
    system_hole: Number | None = None
    # Euler v2
    max_liquidation_discount: Number | None = None
    liquidation_cool_off_time: Number | None = None
    config_scale: Number | None = None
    min_socialization_liability_value: Number | None = None
    # Morpho Blue
    max_liquidation_incentive_factor: Number | None = None
    liquidation_cursor: Number | None = None
    oracle_price_scale_decimals: Number | None = None
    enabled_lltvs: list[Number] | None = None


# ---------------------------------------------------------------------- lending protocols


class AaveReserve(Closed):
    ltv: Number | None = None
    liquidation_threshold: Number | None = None
    liquidation_bonus: Number | None = None
    protocol_fee: Number | None = None
    emode: Number | Text | None = None
    decimals: Number | None = None


class AaveEMode(Closed):
    id: Number
    ltv: Number | None = None
    liquidation_threshold: Number
    liquidation_bonus: Number
    assets: list[Text] | None = None


class CometAsset(Closed):
    decimals: Number | None = None
    borrow_collateral_factor: Number | None = None
    liquidate_collateral_factor: Number | None = None
    liquidation_factor: Number | None = None
    supply_cap: Number | None = None


class Comet(Closed):
    base: Text
    base_decimals: Number | None = None
    base_borrow_min: Number | None = None
    store_front_price_factor: Number | None = None
    target_reserves: Number | None = None
    assets: dict[str, CometAsset] | None = None


class Ilk(Closed):
    """A Maker collateral type (``vat``, ``dog`` and ``clip`` settings in Maker's names)."""

    mat: Number | None = None
    chop: Number | None = None
    hole: Number | None = None
    dust: Number | None = None
    buf: Number | None = None
    tail: Number | None = None
    cusp: Number | None = None
    chip: Number | None = None
    tip: Number | None = None
    calc: Text | None = None
    tau: Number | None = None
    step: Number | None = None
    cut: Number | None = None
    tolerance: Number | None = None
    rate: Number | None = None
    # Liquidations 1.2 (cat and flip, until 2021): English auctions
    beg: Number | None = None
    ttl: Number | None = None
    lump: Number | None = None


class TroveManager(Closed):
    mcr: Number | None = None
    ccr: Number | None = None
    lusd_gas_compensation: Number | None = None
    min_net_debt: Number | None = None
    percent_divisor: Number | None = None
    borrowing_fee_floor: Number | None = None


class PriceFeed(Closed):
    timeout_seconds: Number | None = None
    max_price_deviation_from_previous_round: Number | None = None
    max_price_difference_between_oracles: Number | None = None


class EulerVaultCollateral(Closed):
    borrow_ltv: Number | None = None
    liquidation_ltv: Number | None = None


class EulerVault(Closed):
    max_liquidation_discount: Number | None = None
    liquidation_cool_off_time: Number | None = None
    liquidation_ltv: Number | None = None
    collateral: dict[str, EulerVaultCollateral] | None = None


class MorphoMarket(Closed):
    collateral: Text
    loan: Text
    lltv: Number


class MakerIlkAsset(Closed):
    gem: Text


class Lending(Closed):
    """``[lending]``: which protocol's engine runs the preset, and its instances."""

    protocol: Text
    market: Text | None = None
    stablecoin: Text | None = None
    collateral: Text | None = None
    socialize_debt: Flag | None = None
    ilks: dict[str, MakerIlkAsset] | None = None
    vaults: dict[str, EulerVault] | None = None
    markets: dict[str, MorphoMarket] | None = None


# ---------------------------------------------------------------------- options


class OptionMarginFactors(Closed):
    """An underlying's own factors, replacing the table's."""

    settlement: Text | None = None
    im_factor: Number | None = None
    im_floor_factor: Number | None = None
    mm_factor: Number | None = None
    contract_multiplier: Number | None = None


class OptionMarginTier(Closed):
    floor: Number
    factor: Number


class OptionMarginCoin(OptionMarginFactors):
    """bit.com's coin-settled book: its own factors and underlyings."""

    underlyings: dict[str, OptionMarginFactors] | None = None


class OptionMargin(OptionMarginFactors):
    """``[option_margin]``: the per-position ("standard") option margin, max(a − OTM/U, b)·U + mark."""

    put_initial_at_least_maintenance: Flag | None = None
    long_margin: Text | None = None
    otm_reference: Text | None = None
    min_open_order_margin: Number | None = None
    put_floor_includes_mark: Flag | None = None
    tiers: list[OptionMarginTier] | None = None
    underlyings: dict[str, OptionMarginFactors] | None = None
    coin: OptionMarginCoin | None = None


class PortfolioMarginCurrency(Closed):
    """One currency's ``model_params`` (Deribit's names)."""

    price_range: Number | None = None
    volatility_range_up: Number | None = None
    volatility_range_down: Number | None = None
    min_volatility_for_shock_up: Number | None = None
    short_term_vega_power: Number | None = None
    long_term_vega_power: Number | None = None
    max_delta_shock: Number | None = None
    delta_total_liq_shock_threshold: Number | None = None
    extended_table_factor: Number | None = None
    m_inc: Number | None = None
    min_annualised_move: Number | None = None
    annualised_move_risk: Number | None = None
    extended_dampener: Number | None = None
    pnl_offset: Number | None = None
    max_offsetable_pnl: Number | None = None
    buckets_count: Number | None = None
    vol_scenarios_count: Number | None = None
    mm_factor: Number | None = None


class PortfolioMargin(Closed):
    """``[portfolio_margin]``: Deribit-style risk-matrix portfolio margin."""

    mm_factor: Number | None = None
    buckets_count: Number | None = None
    vol_scenarios_count: Number | None = None
    extended_moves: list[Number] | None = None
    currencies: dict[str, PortfolioMarginCurrency] | None = None


class OptionPricing(Closed):
    """``[pricing]``: the pricing constants the venue's library uses (held equal to the code's by a test)."""

    year_days: Number | None = None
    settlement_window_seconds: Number | None = None
    svi_total_variance_cap: Number | None = None
    svi_log_strike_scale: Number | None = None
    black76_max_total_vol: Number | None = None


class Auction(Closed):
    """``[auction]``: Derive's Dutch liquidation auction (DutchAuction.sol's parameters)."""

    starting_mtm_percentage: Number | None = None
    fast_auction_cutoff_percentage: Number | None = None
    fast_auction_length: Number | None = None
    slow_auction_length: Number | None = None
    insolvent_auction_length: Number | None = None
    liquidator_fee_rate: Number | None = None
    buffer_margin_percentage: Number | None = None
    mtm_cutoff: Number | None = None


class StandardManager(Closed):
    """``[standard_manager]``: Derive's standard manager (isolated option margin per expiry)."""

    max_spot_req: Number | None = None
    min_spot_req: Number | None = None
    mm_call_spot_req: Number | None = None
    mm_put_spot_req: Number | None = None
    mm_put_mtm_req: Number | None = None
    unpaired_im_scale: Number | None = None
    unpaired_mm_scale: Number | None = None
    mm_offset_scale: Number | None = None
    perp_mm: Number | None = None
    perp_im: Number | None = None


# ---------------------------------------------------------------------- the preset


class PresetSchema(Closed):
    """A venue preset (TOML). Perpetual presets use the market and liquidation tables; lending
    presets name their protocol in ``[lending]`` and keep its settings in its own tables; options
    presets hold their margin models' tables (``[option_margin]``, ``[portfolio_margin]``, ...)."""

    title: Text
    summary: Text | None = None
    kind: Literal["perpetual", "lending", "options"] | None = None
    sources: list[Text]
    assets: dict[str, Number] | None = None
    collateral: dict[str, Number] | None = None
    margin: Margin
    liquidation_price: LiquidationPrice | None = None
    trigger: Trigger | None = None
    execution: Execution | None = None
    waterfall: Waterfall | None = None
    mark: Mark | None = None
    oracle: Oracle | None = None
    risk_steward: RiskSteward | None = None
    fees: Fees | None = None
    markets: list[Market] | None = None
    liquidation: Liquidation | None = None
    lending: Lending | None = None
    reserves: dict[str, AaveReserve] | None = None
    emodes: dict[str, AaveEMode] | None = None
    comets: dict[str, Comet] | None = None
    ilks: dict[str, Ilk] | None = None
    trove_manager: TroveManager | None = None
    price_feed: PriceFeed | None = None
    vaults: dict[str, EulerVault] | None = None
    option_margin: OptionMargin | None = None
    portfolio_margin: PortfolioMargin | None = None
    pricing: OptionPricing | None = None
    caps: dict[str, Number | dict[str, Number]] | None = None
    auction: Auction | None = None
    standard_manager: StandardManager | None = None


def validate_preset_data(name: str, data: Mapping[str, Any]) -> None:
    """Refuse a preset whose tables hold an unknown key or a value of the wrong shape, naming the
    first offending path as ``preset[<name>].<path>``."""
    try:
        PresetSchema.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        path = _dotted(first["loc"], data)
        if first["type"] == "extra_forbidden":
            raise InvalidInput(f"preset[{name}].{path}", "unknown key" + _known(path)) from None
        if path == "markets" and first["type"] == "list_type":
            raise InvalidInput(f"preset[{name}].markets", "expected an array of market tables; a lending "
                               "market's settings are under lending.markets") from None
        if first["type"] == "missing":
            raise InvalidInput(f"preset[{name}].{path}", "missing") from None
        got = first.get("input")
        if isinstance(got, float):
            raise InvalidInput(f"preset[{name}].{path}", f"write the decimal as text ({str(got)!r}): "
                               f"a float may not hold the value exactly, got {got!r}") from None
        raise InvalidInput(f"preset[{name}].{path}", f"{first['msg']}, got {got!r}") from None


def preset_json_schema() -> dict[str, Any]:
    """The schema as JSON Schema (``solvent presets --schema``)."""
    return PresetSchema.model_json_schema()


def check_path(path: str, where: str) -> None:
    """Refuse a dotted override path (``execution.fee``) that no preset table may hold, before any
    preset is loaded: each part must be a key of its table, or any name where the table is a map
    (``reserves.<asset>``, ``ilks.<ilk>``). An array (``markets``) is overridden whole."""
    _check_in(PresetSchema, path, where)


def _check_in(model: Any, path: str, where: str) -> None:
    parts = path.split(".")
    fields = model.model_fields
    if parts[0] not in fields:
        raise InvalidInput(where, f"unknown key {parts[0]!r} (known: {', '.join(sorted(fields))})")
    if len(parts) == 1:
        return
    annotation = fields[parts[0]].annotation
    if _is_list(annotation):
        raise InvalidInput(where, f"{parts[0]} is an array: override it whole")
    inner = _table_model(annotation)
    if _is_map(annotation):
        if inner is None or len(parts) == 2:
            return
        _check_in(inner, ".".join(parts[2:]), where)
    elif inner is None:
        raise InvalidInput(where, f"{parts[0]} holds a value, not a table")
    else:
        _check_in(inner, ".".join(parts[1:]), where)


def _is_list(annotation: Any) -> bool:
    return any(getattr(arg, "__origin__", None) is list for arg in (annotation, *getattr(annotation, "__args__", ())))


def _is_map(annotation: Any) -> bool:
    return any(getattr(arg, "__origin__", None) is dict for arg in (annotation, *getattr(annotation, "__args__", ())))


def _dotted(loc: tuple[int | str, ...], data: Any) -> str:
    """The path of ``loc`` in the preset's words: a market's margin table named by the market's symbol
    (``markets[BTCUSDT].margin.tiers[0].mmr``), as the margin models name it."""
    text = ""
    node = data
    for position, part in enumerate(loc):
        if isinstance(part, int):
            entry = node[part] if isinstance(node, list) and part < len(node) else None
            named = text == "markets" and loc[position + 1:position + 2] == ("margin",)
            symbol = entry.get("symbol") if named and isinstance(entry, Mapping) else None
            text += f"[{symbol}]" if isinstance(symbol, str) and symbol else f"[{part}]"
            node = entry
        elif part in ("str", "int", "bool") or "[" in part:  # pydantic's union-member labels, not keys
            continue
        else:
            text += ("." if text else "") + part
            node = node.get(part) if isinstance(node, Mapping) else None
    return text


def _known(path: str) -> str:
    """`` (known: a, b, ...)`` for the table holding ``path``, when the schema can tell."""
    model: Any = PresetSchema
    parts = [p for p in path.replace("]", "").replace("[", ".").split(".") if p][:-1]
    for part in parts:  # a part that is no field is a list index or a dict key: the model stays
        field = model.model_fields.get(part)
        if field is not None:
            model = _table_model(field.annotation)
            if model is None:
                return ""
    names = sorted(getattr(model, "model_fields", {}))
    return f" (known: {', '.join(names)})" if names else ""


def _table_model(annotation: Any) -> Any:
    """The closed model inside ``X | None``, ``list[X]`` or ``dict[str, X]``, or None."""
    if isinstance(annotation, type) and issubclass(annotation, Closed):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _table_model(arg)
        if found is not None:
            return found
    return None
