"""An options venue in the engine: its option markets, surfaces, positions and each account's margin.

Money is exact: premiums, settlements, fees and auction payments move whole units of the venue's
settle asset through the engine's ledger. Positions are whole lots (``10**-size_decimals``
contracts) with a cost basis in settle units, kept here (option positions are zero-sum per market).
The margin is the preset's model, in floats as the venues compute it: the scenario grid
(``[margin] model = "scenario_grid"``: Derive PMRM_2, span16) per underlying, or the per-position
standard model (``"standard_option"``: Deribit, bit.com, OKX, Aevo) on Black-76 marks.

Design: docs/options-engine.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from ...core.errors import InvalidInput, UnknownName
from ...policies.options.auction import AuctionParams, AuctionState
from ...policies.options.black76 import black76_price
from ...policies.options.portfolio import ExpiryFeed, OptionPosition, build_portfolio, parse_feed
from ...policies.options.scenario_grid import OptionPortfolio, ScenarioGridModel
from ...policies.options.standard import StandardOptionMargin

if TYPE_CHECKING:
    from ...presets.loader import Preset

SEPARATOR = "/"
YEAR_SECONDS = 365 * 86400
MAX_PRICE = Decimal("1e12")          # strikes, spots, premiums per contract
MAX_CONTRACT_SIZE = Decimal("1e6")
MAX_SIZE_DECIMALS = 18


@dataclass(frozen=True)
class OptionMarket:
    symbol: str
    underlying: str
    expiry: int
    strike: Decimal
    is_call: bool
    size_decimals: int
    contract_size: Decimal

    @property
    def underlying_per_lot(self) -> Decimal:
        return self.contract_size.scaleb(-self.size_decimals)

    @property
    def option(self) -> str:
        return "call" if self.is_call else "put"

    def payoff_per_unit(self, price: Decimal, inverse: bool = False) -> Decimal:
        """In the quote currency, or in coin (÷ the settlement price) for an inverse book."""
        payoff = max(price - self.strike, Decimal(0)) if self.is_call else max(self.strike - price, Decimal(0))
        return payoff / price if inverse else payoff


@dataclass
class Holding:
    lots: int = 0
    cost: int = 0  # settle units paid (+, long) or received (−, short) for the lots held


@dataclass(frozen=True)
class Surface:
    spot: Decimal
    spot_confidence: float
    timestamp: int
    feeds: Mapping[int, Mapping[str, Any]]  # expiry → the feed as given (validated when received)


@dataclass
class AuctionRecord:
    state: AuctionState
    started: int           # engine time the auction (or its insolvent phase) started
    reserved_units: int = 0


@dataclass(frozen=True)
class IncrementalRules:
    """How a venue without an auction liquidates: ``step_fraction`` of the chosen short per step (at least one
    lot), at most ``max_steps`` steps per review. [unconfirmed] Deribit publishes the method, not the step."""

    step_fraction: Decimal = Decimal("0.25")
    max_steps: int = 64

    @classmethod
    def from_table(cls, spec: Mapping[str, Any], where: str) -> IncrementalRules:
        from ...core.numbers import positive, to_int

        fraction = positive(spec.get("step_fraction", "0.25"), f"{where}.step_fraction")
        if fraction > 1:
            raise InvalidInput(f"{where}.step_fraction", f"must be within (0, 1], got {fraction}")
        steps = to_int(spec.get("max_steps", 64), f"{where}.max_steps")
        if not 1 <= steps <= 10_000:
            raise InvalidInput(f"{where}.max_steps", f"must be within [1, 10000], got {steps}")
        return cls(fraction, steps)


@dataclass(frozen=True)
class AccountMargin:
    """Surpluses as the venue computes them (floats): IM < 0 blocks risk, MM < 0 liquidates."""

    mtm: float
    im: float
    mm: float

    @property
    def maintenance_requirement(self) -> float:
        return self.mtm - self.mm


def decimal_of(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def with_holding(holdings: Mapping[str, Holding], symbol: str, delta_lots: int, premium_units: int
                 ) -> dict[str, Holding]:
    """A copy of ``holdings`` after ``delta_lots`` of ``symbol`` traded for ``premium_units`` (paid: +)."""
    result = {key: Holding(value.lots, value.cost) for key, value in holdings.items()}
    held = result.get(symbol, Holding())
    lots = held.lots + delta_lots
    if held.lots == 0 or (held.lots > 0) == (delta_lots > 0):
        cost = held.cost + premium_units
    elif abs(delta_lots) <= abs(held.lots):  # reducing: the cost of what is left, pro rata
        cost = _pro_rata(held.cost, lots, held.lots)
    else:  # flipped: the new side's cost is its share of this trade's premium
        cost = _pro_rata(premium_units, lots, delta_lots)
    if lots == 0:
        result.pop(symbol, None)
    else:
        result[symbol] = Holding(lots, cost)
    return result


def _pro_rata(units: int, part: int, whole: int) -> int:
    return int((Decimal(units) * Decimal(part) / Decimal(whole)).to_integral_value(ROUND_DOWN))


class OptionsVenue:
    """One options venue: rules from its preset, state kept between commands."""

    def __init__(self, name: str, preset: Preset, settle: str, inverse: bool = False) -> None:
        self.name = name
        self.preset = preset
        self.settle = settle
        self.inverse = inverse  # premiums, margin and payoffs in coin: USD value / the expiry's forward
        self.markets: dict[str, OptionMarket] = {}
        self.surfaces: dict[str, Surface] = {}
        self.positions: dict[str, dict[str, Holding]] = {}
        self.accounts: set[str] = set()
        self.margin_called: set[str] = set()
        self.liquidating: set[str] = set()
        self.auctions: dict[str, AuctionRecord] = {}
        self.last_screened = 0  # accounts the last surface update reviewed exactly (for benchmarks)
        where = f"preset[{preset.name}]"
        model = preset.section("margin").get("model")
        self.grid: ScenarioGridModel | None = None
        self.standard: dict[str, StandardOptionMargin] = {}
        if model == "scenario_grid":
            from ...policies.options.api import margin_model

            self.grid = margin_model(preset)
            if inverse:
                raise InvalidInput("overrides.settle_kind", "the scenario grid values a linear (USD-settled) book")
        elif model == "standard_option":
            self._standard_table = preset.section("option_margin")
            if not self._standard_table:
                raise InvalidInput(f"{where}.option_margin", "missing (the standard option model needs it)")
            if not self._standard_table.get("underlyings"):
                self.standard[""] = self._standard_model(None)
        else:
            raise InvalidInput(f"{where}.margin.model", f"expected scenario_grid or standard_option, got {model!r}")
        self.incremental = IncrementalRules.from_table(preset.section("incremental_liquidation"),
                                                       f"{where}.incremental_liquidation")
        self.auction_params = (AuctionParams.from_table(preset.section("auction"), f"{where}.auction")
                               if preset.section("auction") else None)

    # ------------------------------------------------------------------ names

    @property
    def insurance(self) -> str:
        """The security module (Derive) / insurance fund: auction fees in, insolvent bids out."""
        return f"{self.name}{SEPARATOR}insurance"

    @property
    def settlement(self) -> str:
        """Where expiring shorts pay and longs are paid, within one command (left empty)."""
        return f"{self.name}{SEPARATOR}settlement"

    @property
    def protocol_accounts(self) -> tuple[str, ...]:
        return (self.insurance, self.settlement)

    def market(self, symbol: str, field_name: str = "symbol") -> OptionMarket:
        if symbol not in self.markets:
            raise UnknownName(f"option market of {self.name}", symbol, list(self.markets)[:20])
        return self.markets[symbol]

    def require_account(self, account: str, field_name: str) -> None:
        if account not in self.accounts:
            raise InvalidInput(field_name, f"account {account!r} is not on options venue {self.name}")

    def holdings(self, account: str) -> dict[str, Holding]:
        return self.positions.get(account, {})

    def set_holdings(self, account: str, holdings: dict[str, Holding]) -> None:
        if holdings:
            self.positions[account] = holdings
        else:
            self.positions.pop(account, None)

    def holders(self, underlying: str | None = None) -> list[str]:
        return sorted(account for account, held in self.positions.items()
                      if underlying is None or any(self.markets[s].underlying == underlying for s in held))

    # ------------------------------------------------------------------ the models

    def _standard_model(self, underlying: str | None) -> StandardOptionMargin:
        where = f"preset[{self.preset.name}].option_margin"
        # Markets listed in the engine are linear: premium and margin in the settle asset.
        return StandardOptionMargin.from_preset(self._standard_table, underlying, where).with_overrides(
            settlement="inverse" if self.inverse else "linear")

    def check_underlying(self, underlying: str, field_name: str) -> None:
        """The standard model with per-underlying factors must know this underlying."""
        if self.grid is None and "" not in self.standard and underlying not in self.standard:
            try:
                self.standard[underlying] = self._standard_model(underlying)
            except InvalidInput as error:
                raise InvalidInput(field_name, error.message) from None

    def feed(self, surface: Surface, expiry: int, now: int, field_name: str) -> ExpiryFeed:
        raw = surface.feeds.get(expiry)
        if raw is None:
            raise InvalidInput(field_name, f"the surface has no feed for expiry {expiry}")
        data = {key: value for key, value in raw.items() if key != "expiry"}
        data["expiry_seconds"] = expiry - now
        return parse_feed(data, field_name)

    def surface(self, underlying: str, field_name: str) -> Surface:
        if underlying not in self.surfaces:
            raise InvalidInput(field_name, f"no vol surface for {underlying} yet (send update_vol_surface)")
        return self.surfaces[underlying]

    def mark(self, market: OptionMarket, now: int, field_name: str = "symbol") -> float:
        """Black-76 value of the option on one unit of underlying, in the settle asset (coin: ÷ forward)."""
        surface = self.surface(market.underlying, field_name)
        feed = self.feed(surface, market.expiry, now, field_name)
        seconds = market.expiry - now
        discount = math.exp(-max(feed.rate, 0.0) * seconds / YEAR_SECONDS)
        vol = feed.vol_at(float(market.strike), field_name)
        value = black76_price(market.option, feed.forward, float(market.strike), vol, seconds, discount)
        return value / feed.forward if self.inverse else value

    def margin(self, holdings: Mapping[str, Holding], cash_units: int, now: int) -> AccountMargin:
        """The account's MtM and IM/MM surpluses with these holdings and this cash."""
        cash = float(Decimal(cash_units).scaleb(-self._decimals))
        mtm = im = mm = cash
        by_underlying: dict[str, list[tuple[OptionMarket, int]]] = {}
        for symbol, held in sorted(holdings.items()):
            market = self.markets[symbol]
            by_underlying.setdefault(market.underlying, []).append((market, held.lots))
        for underlying, rows in sorted(by_underlying.items()):
            surface = self.surface(underlying, "symbol")
            if self.grid is not None:
                report = self.grid.evaluate(self._portfolio(surface, rows, 0.0, now))
                mtm += report.mtm
                im += report.im
                mm += report.mm
                continue
            model = self.standard.get(underlying) or self.standard[""]
            for market, lots in rows:
                unit = self.mark(market, now)
                amount = market.underlying_per_lot * lots
                value = unit * float(amount)
                mtm, im, mm = mtm + value, im + value, mm + value
                side = "long" if lots > 0 else "short"
                reference = None
                if model.otm_reference == "forward":
                    reference = decimal_of(self.feed(surface, market.expiry, now, "symbol").forward)
                margin = model.position(market.option, side, abs(amount), surface.spot, market.strike,
                                        decimal_of(unit), reference_price=reference, contract_multiplier=1)
                im -= float(margin.initial)
                mm -= float(margin.maintenance)
        return AccountMargin(mtm, im, mm)

    def _portfolio(self, surface: Surface, rows: list[tuple[OptionMarket, int]], cash: float,
                   now: int) -> OptionPortfolio:
        positions = [OptionPosition(float(market.expiry - now), float(market.strike), market.is_call,
                                    float(market.underlying_per_lot * lots)) for market, lots in rows]
        expiries = sorted({market.expiry for market, _ in rows})
        feeds = [self.feed(surface, expiry, now, f"expiries[{expiry}]") for expiry in expiries]
        return build_portfolio(float(surface.spot), positions, feeds, cash=cash,
                               spot_confidence=surface.spot_confidence)

    def portfolio(self, holdings: Mapping[str, Holding], underlying: str, cash_units: int, now: int
                  ) -> OptionPortfolio:
        """The scenario-grid portfolio of an account holding options of one underlying, its cash included."""
        rows = [(self.markets[symbol], held.lots) for symbol, held in sorted(holdings.items())]
        cash = float(Decimal(cash_units).scaleb(-self._decimals))
        return self._portfolio(self.surface(underlying, "underlying"), rows, cash, now)

    _decimals: int = 6  # the settle asset's decimals, set when the venue is created

    # ------------------------------------------------------------------ units

    def units_of(self, amount: Decimal, rounding: str) -> int:
        return int(amount.scaleb(self._decimals).to_integral_value(rounding))

    def amount_of(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self._decimals)


def registry(engine: Any) -> dict[str, OptionsVenue]:
    if not hasattr(engine, "options"):
        engine.options = {}
    return engine.options


def options_venue(engine: Any, name: str) -> OptionsVenue:
    venues = registry(engine)
    if name not in venues:
        raise UnknownName("options venue", name, list(venues))
    return venues[name]
