"""A venue's liquidation pipeline as data: the ``[trigger]``, ``[execution]`` and ``[waterfall]``
tables of its preset (and, from ``[margin]``, what a withdrawal must leave), validated once when
the venue is created or its parameters change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..core.errors import InvalidInput
from ..core.numbers import fraction, non_negative, positive, to_int
from ..presets import Preset

METHODS = ("book", "insurance_takeover", "backstop_vault", "liquidator", "keeper")
LIMITS = ("none", "bankruptcy", "fillable")
LAYERS = ("insurance", "backstop", "pool", "adl", "socialize")
ADL_RULES = ("binance", "bitmex", "hyperliquid", "dydx", "pro_rata", "leverage_draining")
RECEIVERS = ("insurance", "protocol", "liquidator", "pool")


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise InvalidInput(where, f"expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _optional(table: Mapping[str, Any], key: str, parse, where: str):
    value = table.get(key)
    return None if value is None else parse(value, f"{where}.{key}")


def _flag(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}.{key}", f"expected true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class VenueRules:
    # trigger
    trigger: str  # "below": equity < MM; "at_or_below": equity <= MM (margin ratio 100%)
    exit_buffer: Decimal  # stay in liquidation until equity >= MM + buffer·notional (Drift)
    warning_ratio: Decimal  # margin call when MM/equity reaches it
    # execution
    method: str
    limit: str
    book_depth: Decimal  # notional that would move the book price by 100% (linear impact)
    book_half_spread: Decimal
    partial_fraction: Decimal | None  # Hyperliquid: 20% of a position above partial_above_notional
    partial_above_notional: Decimal
    cooldown_seconds: int
    backstop_below: Decimal | None  # fraction of MM below which the vault takes the account
    # The vault is margined like any account: below this fraction of its own maintenance margin its
    # positions are auto-deleveraged; 0: when its account value turns negative (Hyperliquid's ADL
    # trigger); None: the vault holds whatever it takes, whatever it loses.
    backstop_deleveraged_below: Decimal | None
    max_portion_per_block: Decimal | None  # dYdX
    min_notional_per_block: Decimal
    max_notional_per_block: Decimal | None
    max_insurance_lost_per_block: Decimal | None  # dYdX: what the fund may pay out per subaccount per block
    step_down_tiers: bool  # Binance/Bybit/BitMEX: reduce below the bracket floor, tier by tier
    once_per_block: bool  # dYdX: each (account, market) at most once per block
    takeover: str  # "venue": the venue's liquidator account takes over; "open": liquidators send TakeOver
    liquidator_fee: Decimal  # Drift takeover discount at the start (ramps with time)
    liquidator_max_fee: Decimal
    fee_grace_blocks: int
    fee_increase_per_block: Decimal
    # fees
    fee_rule: str  # "notional": fee_rate × notional, capped; "insurance_fund_delta": dYdX, per fill
    if_liquidation_fee: Decimal  # Drift: the most the insurance-fund fee may be, of the base value taken over
    fee_rate: Decimal  # liquidation fee on the notional closed, capped by what is left
    fee_to: tuple[tuple[str, Decimal], ...]
    remainder_to_insurance: bool  # BitMEX/Bybit: margin above bankruptcy goes to the fund
    # waterfall
    layers: tuple[str, ...]
    insurance_cap: Decimal | None  # per liquidation
    insurance_max_position_ratio: Decimal | None  # fund may hold net notional <= ratio × balance
    insurance_tiers: bool  # Drift: payouts per market capped by its contract tier ([liquidation.insurance_max])
    adl_rule: str
    adl_price: str  # "bankruptcy" or "previous_mark"
    adl_when: str  # "unfilled": what no one else takes; "negative_equity": only below zero (dYdX)
    # money leaving a pool (withdrawals, margin moved out): what must stay
    transfer_floor: Decimal  # Hyperliquid: at least max(IM, floor × position value) must remain
    transfer_counts_profit: bool  # unrealized profit may leave an isolated position (else only losses count)
    transfer_cash_covers_maintenance: bool  # Binance: the balance left, without unrealized PnL, must cover MM
    isolated_close: str  # "keep": a partial close leaves the margin in the position; "pro_rata" (Bybit): releases its share

    @classmethod
    def from_preset(cls, preset: Preset) -> VenueRules:
        where = f"preset[{preset.name}]"
        trigger = preset.section("trigger")
        execution = preset.section("execution")
        waterfall = preset.section("waterfall")
        liquidation = preset.section("liquidation")
        margin = preset.section("margin")
        fee_to_table = execution.get("fee_to", {"insurance": "1"})
        if not isinstance(fee_to_table, Mapping):
            raise InvalidInput(f"{where}.execution.fee_to", "expected a table of receiver → share")
        fee_to = tuple((_choice(receiver, RECEIVERS, f"{where}.execution.fee_to"),
                        fraction(share, f"{where}.execution.fee_to.{receiver}"))
                       for receiver, share in sorted(fee_to_table.items()))
        if fee_to and sum(share for _, share in fee_to) != 1:
            raise InvalidInput(f"{where}.execution.fee_to", "shares must add up to 1")
        layers = waterfall.get("layers", ["insurance", "adl"])
        if not isinstance(layers, list):
            raise InvalidInput(f"{where}.waterfall.layers", "expected a list")
        portion = execution.get("max_portion_per_block", liquidation.get("max_position_portion_liquidated"))
        cap = execution.get("max_notional_per_block", liquidation.get("max_notional_liquidated"))
        lost = execution.get("max_insurance_lost_per_block", liquidation.get("max_insurance_lost"))
        return cls(
            trigger=_choice(trigger.get("rule", "below"), ("below", "at_or_below"), f"{where}.trigger.rule"),
            exit_buffer=fraction(trigger.get("exit_buffer", liquidation.get("margin_buffer_ratio", "0")),
                                 f"{where}.trigger.exit_buffer"),
            warning_ratio=positive(trigger.get("warning_ratio", "0.8"), f"{where}.trigger.warning_ratio"),
            method=_choice(execution.get("method", "book"), METHODS, f"{where}.execution.method"),
            limit=_choice(execution.get("limit", "none"), LIMITS, f"{where}.execution.limit"),
            book_depth=positive(execution.get("book_depth", "20000000"), f"{where}.execution.book_depth"),
            book_half_spread=fraction(execution.get("book_half_spread", "0.0002"), f"{where}.execution.book_half_spread"),
            partial_fraction=_optional(execution, "partial_fraction", fraction, f"{where}.execution"),
            partial_above_notional=non_negative(execution.get("partial_above_notional", "0"),
                                                f"{where}.execution.partial_above_notional"),
            cooldown_seconds=to_int(execution.get("cooldown_seconds", 0), f"{where}.execution.cooldown_seconds"),
            backstop_below=_optional(execution, "backstop_below", fraction, f"{where}.execution"),
            backstop_deleveraged_below=_optional(execution, "backstop_deleveraged_below", non_negative,
                                                 f"{where}.execution"),
            max_portion_per_block=None if portion is None else fraction(portion, f"{where}.execution.max_portion_per_block"),
            min_notional_per_block=non_negative(execution.get("min_notional_per_block",
                                                              liquidation.get("min_position_notional_liquidated", "0")),
                                                f"{where}.execution.min_notional_per_block"),
            max_notional_per_block=None if cap is None else positive(cap, f"{where}.execution.max_notional_per_block"),
            max_insurance_lost_per_block=None if lost is None else positive(
                lost, f"{where}.execution.max_insurance_lost_per_block"),
            step_down_tiers=_flag(execution, "step_down_tiers", f"{where}.execution"),
            once_per_block=_flag(execution, "once_per_block", f"{where}.execution"),
            takeover=_choice(execution.get("takeover", "venue"), ("venue", "open"), f"{where}.execution.takeover"),
            liquidator_fee=fraction(execution.get("liquidator_fee", "0"), f"{where}.execution.liquidator_fee"),
            liquidator_max_fee=fraction(execution.get("liquidator_max_fee", execution.get("liquidator_fee", "0")),
                                        f"{where}.execution.liquidator_max_fee"),
            fee_grace_blocks=to_int(execution.get("fee_grace_blocks", liquidation.get("fee_grace_slots", 0)),
                                    f"{where}.execution.fee_grace_blocks"),
            fee_increase_per_block=non_negative(execution.get("fee_increase_per_block",
                                                              liquidation.get("fee_increase_per_slot", "0")),
                                                f"{where}.execution.fee_increase_per_block"),
            fee_rule=_choice(execution.get("fee_rule", "notional"), ("notional", "insurance_fund_delta"),
                             f"{where}.execution.fee_rule"),
            if_liquidation_fee=fraction(execution.get("if_liquidation_fee", "0"), f"{where}.execution.if_liquidation_fee"),
            fee_rate=fraction(execution.get("fee", "0"), f"{where}.execution.fee"),
            fee_to=fee_to,
            remainder_to_insurance=_flag(execution, "remainder_to_insurance", f"{where}.execution"),
            layers=tuple(_choice(layer, LAYERS, f"{where}.waterfall.layers") for layer in layers),
            insurance_cap=_optional(waterfall, "insurance_cap", positive, f"{where}.waterfall"),
            insurance_max_position_ratio=_optional(waterfall, "insurance_max_position_ratio", positive,
                                                   f"{where}.waterfall"),
            insurance_tiers="insurance_max" in liquidation,
            adl_rule=_choice(waterfall.get("adl_rule", "pro_rata"), ADL_RULES, f"{where}.waterfall.adl_rule"),
            adl_price=_choice(waterfall.get("adl_price", "bankruptcy"), ("bankruptcy", "previous_mark"),
                              f"{where}.waterfall.adl_price"),
            adl_when=_choice(waterfall.get("adl_when", "unfilled"), ("unfilled", "negative_equity"),
                             f"{where}.waterfall.adl_when"),
            transfer_floor=fraction(margin.get("transfer_floor", "0"), f"{where}.margin.transfer_floor"),
            transfer_counts_profit=_flag(margin, "transfer_counts_profit", f"{where}.margin"),
            transfer_cash_covers_maintenance=_flag(margin, "transfer_cash_covers_maintenance", f"{where}.margin"),
            isolated_close=_choice(margin.get("isolated_close", "keep"), ("keep", "pro_rata"),
                                   f"{where}.margin.isolated_close"),
        )
