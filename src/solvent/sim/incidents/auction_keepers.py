"""Keepers of Maker's auctions on a congested chain (the agents of the Black Thursday replay).

A keeper's transaction lands in a step only if it pays the gas of the moment: the gas price is a
multiple of its calm level that rises with how far the collateral fell within the hour
(:class:`GasMarket`), and a keeper running default gas logic pays up to ``gas_cap`` times calm,
above which its transactions are stuck (Black Thursday response thread: keepers with the default
settings stalled). One keeper may pay any gas (``always_lands``): on 12 March 2020 one did, and
bid zero DAI.

Honest keepers bid what the lot is worth to them, the market price less ``margin`` (they must
sell the collateral after a ``ttl`` of exposure), within their DAI, at most ``bids_per_step`` bids
a step. Under English auctions they ``tend`` (never less than the ``beg`` increase) and ``dent``;
under Dutch auctions they ``take`` once the price is below their value. The zero bidder bids one
unit of DAI on every auction without a bid. Won collateral is sold off-venue at the market price,
and the DAI comes back as capital (a ``Deposit``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GasMarket:
    """Gas as a multiple of its calm level: ``1 + (peak − 1)·min(1, fall / full_at)`` with
    ``fall`` the collateral's fall over the last hour (0 when it rose)."""

    peak: float
    full_at: float

    def multiple(self, price_now: float, price_hour_ago: float) -> float:
        fall = max(0.0, 1.0 - price_now / price_hour_ago) if price_hour_ago > 0 else 0.0
        return 1.0 + (self.peak - 1.0) * min(1.0, fall / self.full_at)


@dataclass
class AuctionKeeper:
    name: str
    gas_cap: float
    margin: float
    bids_per_step: int
    always_lands: bool = False  # pays any gas (the zero bidder)
    zero_bidder: bool = False

    def lands(self, gas: float) -> bool:
        return self.always_lands or gas <= self.gas_cap

    def value(self, lot: float, market_price: float) -> float:
        """What ``lot`` of collateral is worth to the keeper, in DAI."""
        return lot * market_price * (1.0 - self.margin)
