"""Immutable domain values: sides, modes, assets and markets."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, IntEnum

from .errors import InvalidInput
from .numbers import positive


class Side(IntEnum):
    """Direction of a position. The value is the sign of its size."""

    LONG = 1
    SHORT = -1

    @classmethod
    def parse(cls, value: object, field: str = "side") -> Side:
        if isinstance(value, Side):
            return value
        text = str(value).strip().lower()
        if text in ("long", "buy", "bid"):
            return cls.LONG
        if text in ("short", "sell", "ask"):
            return cls.SHORT
        raise InvalidInput(field, f"expected 'long' or 'short', got {value!r}")

    @property
    def opposite(self) -> Side:
        return Side(-self.value)

    def __str__(self) -> str:
        return self.name.lower()


class _ParsedEnum(str, Enum):
    @classmethod
    def parse(cls, value: object, field: str):
        try:
            return cls(str(value).strip().lower().replace("-", "_"))
        except ValueError:
            choices = ", ".join(repr(member.value) for member in cls)
            raise InvalidInput(field, f"expected one of {choices}, got {value!r}") from None

    def __str__(self) -> str:
        return self.value


class MarginMode(_ParsedEnum):
    """Cross shares one collateral pool over positions; isolated gives a position its own."""

    CROSS = "cross"
    ISOLATED = "isolated"


class PositionMode(_ParsedEnum):
    """One-way nets buys and sells on a market; hedge keeps a long and a short leg."""

    ONE_WAY = "one_way"
    HEDGE = "hedge"


class ContractKind(_ParsedEnum):
    """Linear: quote-margined, PnL = size·Δprice. Inverse: coin-margined, PnL = size·Δ(1/price)."""

    LINEAR = "linear"
    INVERSE = "inverse"


@dataclass(frozen=True)
class Asset:
    """An asset the ledger counts in integer units of 10**-decimals."""

    symbol: str
    decimals: int

    def __post_init__(self) -> None:
        if not self.symbol:
            raise InvalidInput("asset.symbol", "must not be empty")
        if not 0 <= self.decimals <= 18:
            raise InvalidInput(f"asset[{self.symbol}].decimals", f"must be in 0..18, got {self.decimals}")


@dataclass(frozen=True)
class Market:
    """A perpetual (or dated future) on one venue.

    ``size_decimals``: positions are counted in integer lots of 10**-size_decimals contracts.
    ``contract_size``: base units per contract for linear markets, quote (USD) per contract for
    inverse ones. ``settle``: the asset margin and PnL are paid in (USDT for a linear market,
    the coin for an inverse one).
    """

    symbol: str
    base: str
    quote: str
    settle: str
    kind: ContractKind = ContractKind.LINEAR
    size_decimals: int = 3
    contract_size: Decimal = Decimal(1)
    expiry: int | None = None  # seconds since epoch for a dated future, None for a perpetual

    def __post_init__(self) -> None:
        if not self.symbol:
            raise InvalidInput("market.symbol", "must not be empty")
        if not 0 <= self.size_decimals <= 12:
            raise InvalidInput(f"market[{self.symbol}].size_decimals", "must be in 0..12")
        object.__setattr__(self, "contract_size", positive(self.contract_size, f"market[{self.symbol}].contract_size"))

    def lots(self, size: Decimal, field: str = "size") -> int:
        """Exact lots of a size in contracts; refuses a size finer than the lot."""
        scaled = size.scaleb(self.size_decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidInput(field, f"{size} is finer than the lot size 1e-{self.size_decimals} of {self.symbol}")
        return int(scaled)

    def size_of(self, lots: int) -> Decimal:
        return Decimal(lots).scaleb(-self.size_decimals)

    def notional(self, size: Decimal, price: Decimal) -> Decimal:
        """Position value in the settle asset at ``price``: size·cs·price (linear), size·cs/price (inverse)."""
        if self.kind is ContractKind.LINEAR:
            return size * self.contract_size * price
        return size * self.contract_size / price
