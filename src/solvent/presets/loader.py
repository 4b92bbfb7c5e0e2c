"""Load, validate and override venue presets."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.domain import Asset, ContractKind, Market
from ..core.errors import InvalidInput, UnknownName
from ..core.numbers import fraction, positive, to_decimal, to_int
from ..core.oracle import OracleReading, SourceQuote, aggregate_index
from ..policies.liquidation_price import LiquidationPriceRule
from ..policies.margin import MarginModel, build_margin_model
from .schema import validate_preset_data


def merge_tables(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: tables merge key by key, everything else (lists included) is replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_tables(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class Preset:
    """A venue's mechanism as data. Build with :func:`load_preset`."""

    name: str
    data: Mapping[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        # Validate eagerly so that a broken preset fails when loaded, naming the field.
        validate_preset_data(self.name, self.data)
        self.liquidation_price_rule
        self.assets
        self.haircuts
        for kind in self.section("fees"):
            self.fee_rate(kind)
        for symbol in self.markets:
            self.margin_model(symbol)
            self.price_tick(symbol)
        strict = []
        for index, entry in enumerate(self._market_entries()):
            where = f"preset[{self.name}].markets[{index}]"
            if not isinstance(entry.get("isolated_only", False), bool):
                raise InvalidInput(f"{where}.isolated_only", f"expected true or false, got {entry['isolated_only']!r}")
            if "contract_tier" in entry and not isinstance(entry["contract_tier"], str):
                raise InvalidInput(f"{where}.contract_tier", f"expected a tier name, got {entry['contract_tier']!r}")
            if entry.get("isolated_only"):
                strict.append(entry.get("symbol"))
        object.__setattr__(self, "_isolated_only", frozenset(strict))  # asked at every fill: looked up once

    # ------------------------------------------------------------ descriptive

    @property
    def title(self) -> str:
        return str(self.data["title"])

    @property
    def summary(self) -> str:
        return str(self.data.get("summary", ""))

    @property
    def sources(self) -> list[str]:
        return list(self.data["sources"])

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.data.get(name, {}))

    # ------------------------------------------------------------ policies

    @property
    def liquidation_price_rule(self) -> LiquidationPriceRule:
        spec = self.section("liquidation_price")
        fee_to_close = spec.get("fee_to_close", False)
        if not isinstance(fee_to_close, bool):
            raise InvalidInput(f"preset[{self.name}].liquidation_price.fee_to_close",
                               f"expected true or false, got {fee_to_close!r}")
        return LiquidationPriceRule(
            maintenance_at=str(spec.get("maintenance_at", "price")),
            fee_to_close=fee_to_close,
            isolated_margin=str(spec.get("isolated_margin", "balance")),
            cross_collateral=str(spec.get("cross_collateral", "balance")),
            cross_collateral_inverse=(None if spec.get("cross_collateral_inverse") is None
                                      else str(spec["cross_collateral_inverse"])),
            maintenance_unit=(None if spec.get("maintenance_unit") is None else to_decimal(
                spec["maintenance_unit"], f"preset[{self.name}].liquidation_price.maintenance_unit")),
        )

    def margin_spec(self, market: str | None = None, **overrides: Any) -> dict[str, Any]:
        """The preset's ``[margin]`` table, merged with a market's own and then ``overrides``."""
        spec = self.section("margin")
        if market is not None:
            spec = merge_tables(spec, self._market_data(market).get("margin", {}))
        return merge_tables(spec, overrides)

    def margin_model(self, market: str | None = None, **overrides: Any) -> MarginModel:
        """The margin model of a market (or of the preset's default, with parameters given)."""
        where = f"preset[{self.name}].margin" if market is None else f"preset[{self.name}].markets[{market}].margin"
        return build_margin_model(self.margin_spec(market, **overrides), where)

    def fee_rate(self, kind: str = "taker") -> Decimal:
        """A fee rate; negative for a maker rebate."""
        rate = to_decimal(self.section("fees").get(kind, "0"), f"preset[{self.name}].fees.{kind}")
        if not -1 <= rate <= 1:
            raise InvalidInput(f"preset[{self.name}].fees.{kind}", f"must be within [-1, 1], got {rate}")
        return rate

    def contract_tier(self, market: str) -> str | None:
        """The market's ``contract_tier`` (Drift: A, B, C, Speculative, ...), None when it has none."""
        tier = self._market_entry(market).get("contract_tier")
        return None if tier is None else str(tier)

    def isolated_only(self, market: str) -> bool:
        """Whether positions on the market are isolated only (Hyperliquid's strict isolated markets:
        no cross position, no margin taken out, margin released in proportion as the position closes)."""
        return market in self._isolated_only  # type: ignore[attr-defined]

    def _market_entry(self, market: str) -> dict[str, Any]:
        return next((dict(entry) for entry in self._market_entries() if entry.get("symbol") == market), {})

    def price_tick(self, market: str) -> Decimal | None:
        tick = self._market_data(market).get("price_tick")
        return None if tick is None else positive(tick, f"preset[{self.name}].markets[{market}].price_tick")

    def index_price(self, quotes: Iterable[SourceQuote], now: object, *,
                    deviation_cap: object | None = None) -> OracleReading:
        """The venue's index from source quotes, under its ``[oracle]`` rules (status, never a bare number)."""
        spec = self.section("oracle")
        return aggregate_index(
            list(quotes), now,
            stale_after=spec.get("stale_after_seconds", 300),
            deviation_cap=deviation_cap if deviation_cap is not None else spec.get("deviation_cap", "0.03"),
            min_sources=int(spec.get("min_sources", 1)),
            method=str(spec.get("method", "weighted_mean")),
        )

    @property
    def haircuts(self) -> dict[str, Decimal]:
        """Collateral haircut per asset (0 = counted in full)."""
        return {
            asset: fraction(value, f"preset[{self.name}].collateral.{asset}")
            for asset, value in self.section("collateral").items()
        }

    # ------------------------------------------------------------ markets

    @property
    def assets(self) -> dict[str, Asset]:
        result = {}
        for symbol, decimals in self.section("assets").items():
            result[symbol] = Asset(symbol, to_int(decimals, f"preset[{self.name}].assets.{symbol}"))
        return result

    def _market_data(self, symbol: str) -> dict[str, Any]:
        for entry in self._market_entries():
            if entry.get("symbol") == symbol:
                return dict(entry)
        raise UnknownName("market", symbol, [str(entry.get("symbol")) for entry in self._market_entries()])

    def _market_entries(self) -> list[Mapping[str, Any]]:
        """The ``[[markets]]`` tables, checked to be a list of tables (an override such as
        ``markets.X.y`` would make them a table of names)."""
        entries = self.data.get("markets", [])
        if not isinstance(entries, list) or not all(isinstance(entry, Mapping) for entry in entries):
            raise InvalidInput(f"preset[{self.name}].markets", "expected an array of market tables, "
                               f"got a {type(entries).__name__}; a lending market's settings are under lending.markets")
        return entries

    @property
    def markets(self) -> dict[str, Market]:
        result = {}
        for index, entry in enumerate(self._market_entries()):
            where = f"preset[{self.name}].markets[{index}]"
            symbol = entry.get("symbol")
            if not symbol:
                raise InvalidInput(f"{where}.symbol", "missing")
            result[symbol] = Market(
                symbol=symbol,
                base=entry.get("base", ""),
                quote=entry.get("quote", ""),
                settle=entry.get("settle", entry.get("quote", "")),
                kind=ContractKind.parse(entry.get("kind", "linear"), f"{where}.kind"),
                size_decimals=to_int(entry.get("size_decimals", 3), f"{where}.size_decimals"),
                contract_size=positive(entry.get("contract_size", "1"), f"{where}.contract_size"),
            )
        return result

    def with_overrides(self, overrides: Mapping[str, Any], name: str | None = None) -> Preset:
        """A new preset: this one with some values replaced (a user's own design)."""
        return Preset(name or f"{self.name}+overrides", merge_tables(self.data, overrides))


PRESET_PACKAGE = "solvent.presets"


def list_presets() -> list[str]:
    """Names of the presets shipped with solvent."""
    return sorted(
        entry.name[: -len(".toml")]
        for entry in resources.files(PRESET_PACKAGE).iterdir()
        if entry.name.endswith(".toml")
    )


@cache
def _load_builtin(name: str) -> Preset:
    text = resources.files(PRESET_PACKAGE).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return Preset(name, tomllib.loads(text))


def load_preset(name_or_path: str | Path) -> Preset:
    """A shipped preset by name (``binance``), or a preset file by path."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise InvalidInput("preset", f"no preset file at {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise InvalidInput("preset", f"{path} is not valid TOML: {error}") from None
        base = data.pop("extends", None)
        if base:  # a user's design: an existing preset with overrides
            return load_preset(base).with_overrides(data, name=path.stem)
        return Preset(path.stem, data)
    if text not in list_presets():
        raise UnknownName("preset", text, list_presets())
    return _load_builtin(text)
