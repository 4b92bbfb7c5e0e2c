"""Events of the options family (past tense; every amount a decimal string). The engine's own
``MarginCallIssued``, ``MarginCallCleared``, ``LiquidationStarted``, ``InsuranceFundDrawn`` and
``LossSocialized`` are reused where they mean the same thing."""

from __future__ import annotations

from typing import ClassVar

from ..events import Event, event


@event
class OptionMarketListed(Event):
    kind: ClassVar[str] = "option_market_listed"
    venue: str
    symbol: str
    underlying: str
    expiry: int
    strike: str
    option: str


@event
class VolSurfaceUpdated(Event):
    kind: ClassVar[str] = "vol_surface_updated"
    venue: str
    underlying: str
    spot: str
    expiries: tuple[int, ...]
    timestamp: int


@event
class OptionFilled(Event):
    kind: ClassVar[str] = "option_filled"
    venue: str
    symbol: str
    buyer: str
    seller: str
    size: str
    price: str
    premium: str               # settle asset moved from buyer to seller


@event
class OptionSettled(Event):
    kind: ClassVar[str] = "option_settled"
    venue: str
    symbol: str
    account: str
    size: str                  # signed contracts removed
    settlement_price: str
    payoff: str                # signed settle asset paid to (+) or by (−) the account


@event
class ExpirySettled(Event):
    kind: ClassVar[str] = "expiry_settled"
    venue: str
    underlying: str
    expiry: int
    settlement_price: str
    positions: int


@event
class OptionAuctionStarted(Event):
    kind: ClassVar[str] = "option_auction_started"
    venue: str
    account: str
    insolvent: bool
    mark_to_market: str
    maintenance_margin: str    # the surplus (negative)
    fee: str                   # paid to the security module at the start


@event
class OptionAuctionBid(Event):
    kind: ClassVar[str] = "option_auction_bid"
    venue: str
    account: str
    bidder: str
    percent: str               # share of the current portfolio taken
    price: str                 # cash the bidder paid the account (negative: paid to the bidder)
    cash_taken: str            # the account's cash share handed to the bidder
    f_max: str
    post_mark_to_market: str
    post_maintenance_margin: str


@event
class OptionAuctionEnded(Event):
    kind: ClassVar[str] = "option_auction_ended"
    venue: str
    account: str
    reason: str


@event
class LiquidationEnded(Event):
    kind: ClassVar[str] = "option_liquidation_ended"
    venue: str
    account: str
    reason: str
