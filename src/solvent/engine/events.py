"""Events: what happened (past-tense names), with every amount as a decimal string."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar, TypeVar, dataclass_transform

from ..core.values import value


@value
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


_E = TypeVar("_E")


@dataclass_transform(frozen_default=True)
def event(cls: type[_E]) -> type[_E]:
    return value(cls)


@event
class VenueCreated(Event):
    kind: ClassVar[str] = "venue_created"
    venue: str
    preset: str
    markets: tuple[str, ...]


@event
class MarketListed(Event):
    kind: ClassVar[str] = "market_listed"
    venue: str
    market: str


@event
class BackstopCreated(Event):
    kind: ClassVar[str] = "backstop_created"
    backstop: str
    venues: tuple[str, ...]


@event
class AccountOpened(Event):
    kind: ClassVar[str] = "account_opened"
    account: str
    venue: str


@event
class Deposited(Event):
    kind: ClassVar[str] = "deposited"
    account: str
    asset: str
    amount: str


@event
class Withdrawn(Event):
    kind: ClassVar[str] = "withdrawn"
    account: str
    asset: str
    amount: str


@event
class IsolatedLeverageChanged(Event):
    """An isolated position's leverage changed; its margin is now the initial margin it requires."""

    kind: ClassVar[str] = "isolated_leverage_changed"
    account: str
    venue: str
    market: str
    leverage: str
    isolated_margin: str  # afterwards (what moved to or from the wallet is the difference)
    hedge_side: str | None = None


@event
class IsolatedMarginMoved(Event):
    """Margin moved between the wallet and an isolated position (positive: into the position)."""

    kind: ClassVar[str] = "isolated_margin_moved"
    account: str
    venue: str
    market: str
    amount: str
    isolated_margin: str  # the position's isolated margin afterwards
    hedge_side: str | None = None


@event
class FillApplied(Event):
    kind: ClassVar[str] = "fill_applied"
    venue: str
    market: str
    buyer: str
    seller: str
    size: str
    price: str


@event
class PositionsOpened(Event):
    kind: ClassVar[str] = "positions_opened"
    venue: str
    market: str
    counterparty: str
    accounts: int
    long_size: str  # total size the new accounts hold long
    short_size: str


@event
class OraclePriceUpdated(Event):
    kind: ClassVar[str] = "oracle_price_updated"
    venue: str
    market: str
    price: str
    timestamp: int


@event
class TimeAdvanced(Event):
    kind: ClassVar[str] = "time_advanced"
    timestamp: int
    block: int


@event
class KeyRegistered(Event):
    kind: ClassVar[str] = "key_registered"
    key_id: str
    role: str
    account: str | None
    venue: str | None


@event
class KeyRevoked(Event):
    kind: ClassVar[str] = "key_revoked"
    key_id: str


@event
class ParamsSet(Event):
    kind: ClassVar[str] = "params_set"
    venue: str


@event
class MarginCallIssued(Event):
    kind: ClassVar[str] = "margin_call_issued"
    account: str
    venue: str
    margin_ratio: str
    equity: str
    maintenance_margin: str


@event
class MarginCallCleared(Event):
    kind: ClassVar[str] = "margin_call_cleared"
    account: str
    venue: str
    margin_ratio: str


@event
class LiquidationStarted(Event):
    kind: ClassVar[str] = "liquidation_started"
    account: str
    venue: str
    equity: str
    maintenance_margin: str


@event
class PositionLiquidated(Event):
    kind: ClassVar[str] = "position_liquidated"
    account: str
    venue: str
    market: str
    side: str
    size: str
    price: str
    bankruptcy_price: str
    method: str  # book, takeover, backstop, insurance, keeper
    counterparty: str
    remaining_size: str


@event
class LiquidationFeeCharged(Event):
    kind: ClassVar[str] = "liquidation_fee_charged"
    account: str
    venue: str
    amount: str
    to: str


@event
class InsuranceFundDrawn(Event):
    kind: ClassVar[str] = "insurance_fund_drawn"
    venue: str
    account: str
    amount: str
    balance_after: str


@event
class BackstopDrawn(Event):
    kind: ClassVar[str] = "backstop_drawn"
    backstop: str
    venue: str
    account: str
    amount: str
    drawn_by_venue: str


@event
class AdlQueueRanked(Event):
    kind: ClassVar[str] = "adl_queue_ranked"
    venue: str
    market: str
    rule: str
    queue: tuple[tuple[str, int, int], ...]  # (account, rank, lights 5..1)
    # What the episode covered and who could have covered it, so a reader can measure the rule
    # against the pro-rata benchmark (policies.adl.overshoot). Defaults keep older producers valid.
    deficit_size: str = "-"  # base units of the bankrupt position to deleverage
    lot: str = "-"  # the market's size step
    candidates: tuple[tuple[str, str, str], ...] = ()  # (account, position size, unrealized PnL in settle)
    # Each candidate's account value (settle), in the order of ``candidates``: the leverage-draining
    # benchmark needs it (policies.adl.overshoot(..., benchmark="leverage_draining")).
    account_values: tuple[str, ...] = ()


@event
class PositionAutoDeleveraged(Event):
    kind: ClassVar[str] = "position_auto_deleveraged"
    venue: str
    market: str
    account: str  # the profitable counterparty that was closed
    against: str  # the bankrupt account
    size: str
    price: str
    queue_position: int


@event
class LossSocialized(Event):
    kind: ClassVar[str] = "loss_socialized"
    venue: str
    market: str
    amount: str
    per_base: str


@event
class BadDebt(Event):
    kind: ClassVar[str] = "bad_debt"
    venue: str
    account: str
    amount: str  # loss no layer of the waterfall absorbed


@event
class LiquidationPaused(Event):
    kind: ClassVar[str] = "liquidation_paused"
    account: str
    venue: str
    reason: str  # cooldown, block cap, oracle flagged


@event
class LiquidationFailed(Event):
    """The pipeline hit an error on this account: reported, never silent (a defect to fix)."""

    kind: ClassVar[str] = "liquidation_failed"
    account: str
    venue: str
    error: str


@event
class LiquidationEnded(Event):
    kind: ClassVar[str] = "liquidation_ended"
    account: str
    venue: str
    equity: str
