"""Commands of the options family (imperative names; numbers as strings, so a command round-trips
through JSON exactly). Design: docs/options-engine.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..commands import Command, command


@command
class CreateOptionMarket(Command):
    """List a European option on an options venue: ``underlying``, ``expiry`` (a timestamp in the
    engine's seconds), ``strike``, ``option`` (call or put). Linear: premium and settlement in the
    venue's settle asset, one contract = ``contract_size`` units of the underlying."""

    kind: ClassVar[str] = "create_option_market"
    venue: str
    symbol: str
    underlying: str
    expiry: int
    strike: str
    option: str
    size_decimals: int = 3
    contract_size: str = "1"


@command
class UpdateVolSurface(Command):
    """The index price and vol surface of one underlying at ``timestamp``. ``expiries``: one entry
    per expiry timestamp, ``{expiry, forward, rate, forward_confidence, rate_confidence,
    vol_confidence}`` plus either ``svi`` (a raw SVI slice ``{a, b, rho, m, sigma}``, with its
    ``forward`` and ``tau``) or a flat ``vol``."""

    kind: ClassVar[str] = "update_vol_surface"
    venue: str
    underlying: str
    spot: str
    timestamp: int
    expiries: tuple[Mapping[str, Any], ...] = ()
    spot_confidence: str = "1"


@command
class ApplyOptionFill(Command):
    """A trade of ``size`` contracts of an option between ``buyer`` and ``seller`` at ``price`` (premium
    per contract, in the settle asset). A fill that raises either side's risk needs IM ≥ 0 after it."""

    kind: ClassVar[str] = "apply_option_fill"
    venue: str
    symbol: str
    buyer: str
    seller: str
    size: str
    price: str


@command
class SettleExpiry(Command):
    """Cash-settle every option of ``underlying`` expiring at ``expiry`` at ``price`` (the venue's
    settlement price); the engine's time must have reached the expiry."""

    kind: ClassVar[str] = "settle_expiry"
    venue: str
    underlying: str
    expiry: int
    price: str


@command
class Bid(Command):
    """A bid in the Dutch auction of ``account``: ``bidder`` takes ``percent`` (0, 1] of the account's
    current portfolio at the auction's price now (capped at the auction's largest share)."""

    kind: ClassVar[str] = "bid"
    venue: str
    account: str
    bidder: str
    percent: str
