"""Commands: what a caller asks the engine to do (imperative names).

Every field is plain data (strings for numbers, so that a command round-trips through JSON
exactly); the engine validates them when applying and rejects a command as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar, dataclass_transform


@dataclass(frozen=True)
class Command:
    kind: ClassVar[str] = "command"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


COMMANDS: dict[str, type[Command]] = {}


_C = TypeVar("_C", bound=type[Command])


@dataclass_transform(frozen_default=True)
def command(cls: _C) -> _C:
    cls = dataclass(frozen=True)(cls)  # type: ignore[assignment]  # the same class, made a dataclass
    COMMANDS[cls.kind] = cls
    return cls


def command_from_dict(data: Mapping[str, Any]) -> Command:
    from ..core.errors import InvalidInput

    kind = data.get("kind")
    if kind not in COMMANDS:
        raise InvalidInput("kind", f"unknown command {kind!r} (known: {', '.join(sorted(COMMANDS))})")
    cls = COMMANDS[kind]
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names - {"kind"}
    if unknown:
        raise InvalidInput(sorted(unknown)[0], f"not a field of {kind}")
    # JSON has no tuples: sequences come back as lists and are restored, so a replayed command
    # equals the one recorded.
    return cls(**{key: tuple(value) if isinstance(value, list) else value
                  for key, value in data.items() if key != "kind"})


@command
class CreateVenue(Command):
    """A venue under a preset. Its insurance fund (and order book, when the preset models one) are
    protocol accounts ``<venue>/insurance`` and ``<venue>/book``."""

    kind: ClassVar[str] = "create_venue"
    venue: str
    preset: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


@command
class CreateMarket(Command):
    """List a new market on a venue: its contract and, unless the preset's default applies, its
    margin table (the same keys as a preset's ``[markets.margin]``). ``isolated_only``: every
    position on it is isolated, its margin only leaves as the position closes (Hyperliquid's
    strict isolated markets)."""

    kind: ClassVar[str] = "create_market"
    venue: str
    symbol: str
    base: str
    quote: str
    settle: str
    contract: str = "linear"
    size_decimals: int = 3
    contract_size: str = "1"
    margin: Mapping[str, Any] = field(default_factory=dict)
    isolated_only: bool = False


@command
class CreateBackstop(Command):
    """A backstop vault shared by several venues, each able to draw at most its cap."""

    kind: ClassVar[str] = "create_backstop"
    backstop: str
    asset: str
    venues: tuple[str, ...]
    caps: Mapping[str, str]


@command
class OpenAccount(Command):
    """A trader's account on a venue; ``cross_venues`` lets its collateral back positions there too."""

    kind: ClassVar[str] = "open_account"
    account: str
    venue: str
    position_mode: str = "one_way"
    cross_venues: tuple[str, ...] = ()


@command
class Deposit(Command):
    kind: ClassVar[str] = "deposit"
    account: str
    asset: str
    amount: str


@command
class Withdraw(Command):
    kind: ClassVar[str] = "withdraw"
    account: str
    asset: str
    amount: str


@command
class FundInsurance(Command):
    """New money into a venue's insurance fund (or a shared backstop, with ``backstop``)."""

    kind: ClassVar[str] = "fund_insurance"
    asset: str
    amount: str
    venue: str | None = None
    backstop: str | None = None


@command
class ApplyFill(Command):
    """A match reported by the venue's matching engine.

    A side in ``"isolated"`` margin mode trades its isolated position on the market. When the
    fill opens or adds to that position, the initial margin of the notional it adds (at the fill
    price and the position's leverage, rounded up to the settle asset's unit) moves from the
    wallet into the position's isolated margin, as Binance, Bybit and Hyperliquid charge an
    isolated order's initial margin from the available balance; the fill is refused, changing
    nothing, when the wallet cannot fund it (its balance, or the cross positions' initial margin
    it backs). ``buyer_leverage`` / ``seller_leverage`` set the position's leverage when the fill
    opens it (without one, the market's own initial rate for the notional added applies) and must
    match it when the fill adds to it; the bracket's maximum leverage is enforced. Margin moved in
    beyond that is the position's extra margin (:class:`AdjustIsolatedMargin`). Closing fills
    realize PnL and fees into the isolated margin; a fill that closes the position returns what
    is left of it to the wallet. Not offered on venues whose liquidation values a whole
    subaccount (dYdX v4: an isolated market there is its own subaccount, i.e. another account).
    """

    kind: ClassVar[str] = "apply_fill"
    venue: str
    market: str
    buyer: str
    seller: str
    size: str
    price: str
    buyer_fee: str = "0"
    seller_fee: str = "0"
    buyer_margin_mode: str = "cross"
    seller_margin_mode: str = "cross"
    buyer_hedge_side: str | None = None
    seller_hedge_side: str | None = None
    buyer_leverage: str | None = None
    seller_leverage: str | None = None


@command
class AdjustIsolatedMargin(Command):
    """Move margin into (``amount`` > 0, from the wallet) or out of (``amount`` < 0, to the wallet)
    an open isolated position (``hedge_side``: its leg, for an account in hedge mode).

    Adding is refused when the wallet cannot fund it: its balance, or what the cross positions it
    backs need (the same rule as a withdrawal). Removing is refused while the position is in
    liquidation, on an isolated-only market, when it would leave it liquidatable, and when it would
    leave less than the venue asks: the initial margin at the mark (at the position's leverage),
    counting an unrealized loss but not a profit; Binance counts the profit but keeps the
    maintenance margin in the margin itself; Hyperliquid counts the profit and keeps max(initial
    margin, 10% of the position value) ([margin] transfer_* in the preset). Binance's, Bybit's and
    Hyperliquid's "add / remove margin" on an isolated position. A refusal names the field and
    changes nothing.
    """

    kind: ClassVar[str] = "adjust_isolated_margin"
    venue: str
    account: str
    market: str
    amount: str
    hedge_side: str | None = None


@command
class SetIsolatedLeverage(Command):
    """Change the leverage of an open isolated position (``hedge_side``: its leg in hedge mode).

    Its margin is reset to the initial margin the new leverage requires on its entry value: what
    was added beyond it returns to the wallet, what more is needed comes from it (Bybit's "adjust
    leverage" on an isolated position). Refused while the position is in liquidation, on a
    leverage above its bracket's maximum, when the wallet cannot fund a lower leverage, and when a
    higher one would leave the position liquidatable. A refusal names the field and changes nothing.
    """

    kind: ClassVar[str] = "set_isolated_leverage"
    venue: str
    account: str
    market: str
    leverage: str
    hedge_side: str | None = None


@command
class OpenPositions(Command):
    """New accounts in bulk on one market: each row opens an account on the venue, deposits
    ``deposits[i]`` of the market's settle asset and takes a position of ``sizes[i]`` (signed,
    positive long) at ``prices[i]`` from ``counterparty``, without fees. The ledger ends exactly
    as after OpenAccount, Deposit and ApplyFill per row, but the pipeline runs once, over the rows
    that may be at risk and the counterparty. For importing a venue's book or seeding a
    simulated one."""

    kind: ClassVar[str] = "open_positions"
    venue: str
    market: str
    counterparty: str
    accounts: tuple[str, ...]
    deposits: tuple[str, ...]
    sizes: tuple[str, ...]
    prices: tuple[str, ...]


@command
class TakeOver(Command):
    """A liquidator takes over (part of) a position in liquidation, on a venue open to liquidators
    (``[execution] method = "liquidator"``, ``takeover = "open"``: Drift's permissionless
    liquidators), at the oracle ∓ the venue's ramped fee. ``size`` is the most it takes; the venue
    may allow less (Drift: the base that cures the shortage)."""

    kind: ClassVar[str] = "take_over"
    venue: str
    liquidator: str
    account: str
    market: str
    size: str


@command
class UpdateOracle(Command):
    """New mark prices for some of a venue's markets, at ``timestamp`` (seconds)."""

    kind: ClassVar[str] = "update_oracle"
    venue: str
    prices: Mapping[str, str]
    timestamp: int


@command
class AdvanceTime(Command):
    """Time (seconds) and, for chains, the block height move forward; ``seed`` is this block's
    random draw (dYdX's pseudorandom offsets come from it, never from a global RNG). With
    ``venue``, only that venue's clock moves (no block, no seed)."""

    kind: ClassVar[str] = "advance_time"
    timestamp: int
    block: int | None = None
    seed: int = 0
    venue: str | None = None  # one venue's clock only (its operator's), see Engine.time_of


@command
class SetParams(Command):
    """Override part of a venue's preset (e.g. ``{"liquidation": {"fee": "0.01"}}``)."""

    kind: ClassVar[str] = "set_params"
    venue: str
    overrides: Mapping[str, Any]


@command
class RegisterKey(Command):
    """An API key of the service (its SHA-256 ``key_hash``, never the key) with its role and scope.
    Logged like any command, so that ``verify`` knows every key that ever existed: a key row
    written into the database by hand, outside the log, is not a key (see ``service/keys.py``)."""

    kind: ClassVar[str] = "register_key"
    key_hash: str
    role: str
    account: str | None = None
    venue: str | None = None
    label: str | None = None


@command
class RevokeKey(Command):
    """Revoke the API key whose id (the first 16 hex digits of its hash) this is."""

    kind: ClassVar[str] = "revoke_key"
    key_id: str
