"""Lending and CDP venues on the engine: Aave v3, Compound v3, Euler v2, Morpho Blue, Maker, Liquity.

A lending preset (``kind = "lending"``, with a ``[lending]`` table naming its ``protocol``) becomes
a venue of the same engine, on the same exact ledger, writing to the same event log as the
perpetual venues. Its rules are the policies of :mod:`solvent.policies.lending`; this package only
keeps the protocol's state across commands and moves the money.

Money. Every token lives in a ledger account and moves by ledger transfers only:

- ``<venue>/pool`` holds what the protocol holds (supplied assets not lent out, collateral,
  seized collateral and auction lots);
- ``<venue>/treasury`` receives protocol fees (Aave's share of the bonus is booked as a supply
  claim of the treasury, as the aTokens it receives);
- the CDP protocols mint their stablecoin: ``<venue>/issuer`` holds minus the amount issued, so
  that minting and burning are transfers and the ledger's conservation still holds; Maker's
  ``<venue>/vow`` holds the system surplus, Liquity's ``<venue>/stability_pool`` and
  ``<venue>/gas_pool`` the pool deposits and the liquidation reserves.

Claims (supplies, debts, collateral, auctions) are the protocol's own state, kept on the venue
object in ``engine.lending[venue]``. :func:`lending_conservation` checks, after any command, that
the ledger's protocol balances equal what that state says they must be (per asset), and each
protocol's accounting identity (see the module of each protocol).

Commands (all validated in full before anything changes; a refusal raises ``InvalidInput`` and
changes nothing):

- ``CreateVenue(venue, preset)`` with a lending preset; ``OpenLendingAccount(account, venue)``;
  ``UpdatePrices(venue, {asset: price}, timestamp)`` (the venue's oracle; time moves with it and
  with the engine's ``AdvanceTime``); wallet money arrives by the engine's ``Deposit``;
- generic positions, routed to the venue's protocol: ``Supply``, ``WithdrawSupply``, ``Borrow``,
  ``Repay`` (``market`` names a Morpho market or a Maker ilk where the protocol has several);
- Aave: ``SetEMode``, ``SetCollateralEnabled``, ``LiquidationCall``;
- Compound: ``Absorb``, ``BuyCollateral``, ``FundReserves``;
- Euler and Morpho: ``Liquidate`` (one command, protocol-specific fields documented on it);
- Maker: ``Bark``, ``Take``, ``Redo`` (auctions are engine state across commands); Maker's
  English auctions of 2020 (``maker_flip``): ``Bark`` (``cat.bite``), ``FlipBid``, ``Deal``, ``Redo``
  (``flip.tick``);
- Liquity: ``ProvideToStabilityPool``, ``WithdrawFromStabilityPool``, ``LiquidateTrove``.

Liquidations are never automatic here: they arrive as commands from a liquidator (keeper,
absorber) account that pays and receives through the ledger. Any user account of the ledger may
call them; one that receives a supply position (Euler's vault shares, Aave's ``receive_a_token``)
must have joined the venue.

The command kinds register when this module is imported (the engine imports it when it starts);
a process that parses a lending command log before creating an ``Engine`` must import
``solvent.engine.lending`` first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

from ..core import bounds
from ..core.errors import InvalidInput, UnknownName
from ..core.numbers import positive, to_int
from ..policies.lending import ProtocolRevert
from .commands import COMMANDS, Command, command
from .events import AccountOpened, Event, VenueCreated, event

if TYPE_CHECKING:  # pragma: no cover
    from ..presets import Preset
    from .engine import Engine

SEPARATOR = "/"


# ============================================================================================
# Commands
# ============================================================================================


_LendingCommand = TypeVar("_LendingCommand", bound=type[Command])


@dataclass_transform(frozen_default=True)
def _lending_command(cls: _LendingCommand) -> _LendingCommand:
    """``@command``, refusing to silently replace a kind another module registered."""
    kind = cls.__dict__.get("kind")
    known = COMMANDS.get(kind) if isinstance(kind, str) else None
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise RuntimeError(f"command kind {kind!r} is already registered by {known.__module__}")
    return command(cls)


@_lending_command
class OpenLendingAccount(Command):
    """Join a lending venue (opens the ledger account if it does not exist yet)."""

    kind: ClassVar[str] = "open_lending_account"
    account: str
    venue: str


@_lending_command
class UpdatePrices(Command):
    """The lending venue's oracle: a price per asset, in the venue's unit of account (Aave and
    Compound: USD with 8 decimals; Euler: unit of account with 18; Morpho: any common unit, the
    market's oracle price is ``collateral price / loan price``; Maker and Liquity: the collateral's
    price in the stablecoin, 18 decimals)."""

    kind: ClassVar[str] = "update_prices"
    venue: str
    prices: Mapping[str, str]
    timestamp: int


@_lending_command
class Supply(Command):
    """Wallet → pool. Aave: a supply (collateral unless disabled); Compound: base supply (repays
    debt first) or collateral; Euler: a deposit into the asset's vault; Morpho: lending the loan
    asset or posting the collateral of ``market``; Maker: locking ``ink`` in ilk ``market``;
    Liquity: trove collateral."""

    kind: ClassVar[str] = "supply"
    venue: str
    account: str
    asset: str
    amount: str
    market: str | None = None


@_lending_command
class WithdrawSupply(Command):
    """Pool → wallet, refused if it would leave the account unhealthy (each protocol's rule)."""

    kind: ClassVar[str] = "withdraw_supply"
    venue: str
    account: str
    asset: str
    amount: str
    market: str | None = None


@_lending_command
class Borrow(Command):
    """Pool (or the stablecoin's issuer) → wallet, recorded as debt; refused if the protocol's
    borrow rule would not allow it."""

    kind: ClassVar[str] = "borrow"
    venue: str
    account: str
    asset: str
    amount: str
    market: str | None = None


@_lending_command
class Repay(Command):
    """``payer`` (default: the account) → pool, reducing the account's debt; ``amount`` may be
    ``"max"`` (the whole debt); more than the debt repays the debt only."""

    kind: ClassVar[str] = "repay"
    venue: str
    account: str
    asset: str
    amount: str
    market: str | None = None
    payer: str | None = None


@_lending_command
class SetEMode(Command):
    """Aave: enter e-mode ``category`` (0 leaves it); refused if a borrowed asset is outside the
    category or the health factor would fall below 1."""

    kind: ClassVar[str] = "set_emode"
    venue: str
    account: str
    category: int


@_lending_command
class SetCollateralEnabled(Command):
    """Aave: ``setUserUseReserveAsCollateral``."""

    kind: ClassVar[str] = "set_collateral_enabled"
    venue: str
    account: str
    asset: str
    enabled: bool


@_lending_command
class LiquidationCall(Command):
    """Aave ``liquidationCall``: the liquidator repays up to ``debt_to_cover`` (``"max"``: the most
    the close factor allows) of the borrower's ``debt_asset`` and receives its ``collateral_asset``
    with the bonus, less the protocol's fee (underlying, or a supply claim if ``receive_a_token``)."""

    kind: ClassVar[str] = "liquidation_call"
    venue: str
    liquidator: str
    borrower: str
    collateral_asset: str
    debt_asset: str
    debt_to_cover: str = "max"
    receive_a_token: bool = False


@_lending_command
class Absorb(Command):
    """Compound ``absorb``: the protocol takes every listed account whole (all must be
    liquidatable); the absorber earns only liquidator points."""

    kind: ClassVar[str] = "absorb"
    venue: str
    absorber: str
    accounts: tuple[str, ...]


@_lending_command
class BuyCollateral(Command):
    """Compound ``buyCollateral``: pay ``base_amount`` of the base asset for seized ``asset`` at the
    store-front discount, while reserves are below target; at least ``min_amount`` or refused."""

    kind: ClassVar[str] = "buy_collateral"
    venue: str
    buyer: str
    asset: str
    base_amount: str
    min_amount: str = "0"


@_lending_command
class FundReserves(Command):
    """Compound: base asset from an account's wallet into the protocol's reserves (governance
    replenishing them; interest is not modelled)."""

    kind: ClassVar[str] = "fund_reserves"
    venue: str
    account: str
    amount: str


@_lending_command
class Liquidate(Command):
    """Euler v2 and Morpho Blue liquidation by a liquidator account.

    Euler: ``collateral_asset`` (required) is the collateral vault to take; ``repay`` is the
    liability (in the borrowed asset) to take over, ``"max"`` for the most allowed; ``min_yield``
    the least collateral accepted. By default the liquidator repays the debt it takes over from
    its wallet in the same command (what an EVC batch does); with ``take_over_debt`` it keeps the
    debt and must stay healthy itself.

    Morpho: ``market`` (required) names the market; give exactly one of ``repay`` (loan assets;
    ``"max"`` for all the debt the collateral allows) or ``seize`` (collateral to seize).
    """

    kind: ClassVar[str] = "liquidate"
    venue: str
    liquidator: str
    borrower: str
    collateral_asset: str | None = None
    repay: str | None = "max"
    seize: str | None = None
    market: str | None = None
    min_yield: str = "0"
    take_over_debt: bool = False


@_lending_command
class Bark(Command):
    """Maker ``dog.bark``: send an unsafe vault of ilk ``ilk`` to a Dutch auction; the keeper
    receives ``tip + chip·tab`` (new system debt)."""

    kind: ClassVar[str] = "bark"
    venue: str
    keeper: str
    account: str
    ilk: str | None = None


@_lending_command
class Take(Command):
    """Maker ``clip.take``: buy up to ``amount`` of the auction's collateral at the current price
    if it is at most ``max_price`` (DAI per collateral unit)."""

    kind: ClassVar[str] = "take"
    venue: str
    buyer: str
    auction_id: int
    amount: str
    max_price: str


@_lending_command
class Redo(Command):
    """Maker ``clip.redo``: restart an auction that needs a reset (past ``tail`` or below ``cusp``)."""

    kind: ClassVar[str] = "redo"
    venue: str
    keeper: str
    auction_id: int


@_lending_command
class FlipBid(Command):
    """Maker's English auction (``flip.tend`` / ``flip.dent``, the ``maker_flip`` protocol): bid
    ``bid`` DAI for ``lot`` collateral; ``tend`` while the bid is below the tab (a higher bid for
    the same lot), ``dent`` once it reached it (less collateral for the whole tab)."""

    kind: ClassVar[str] = "flip_bid"
    venue: str
    bidder: str
    auction_id: int
    lot: str
    bid: str


@_lending_command
class Deal(Command):
    """Maker ``flip.deal``: settle an English auction whose last bid expired (``ttl``) or whose
    time ran out (``tau``); the collateral goes to the highest bidder."""

    kind: ClassVar[str] = "deal"
    venue: str
    keeper: str
    auction_id: int


@_lending_command
class ProvideToStabilityPool(Command):
    kind: ClassVar[str] = "provide_to_stability_pool"
    venue: str
    account: str
    amount: str


@_lending_command
class WithdrawFromStabilityPool(Command):
    """Withdraw LUSD (``"max"`` for all) and every collateral gain; refused while a trove is below MCR."""

    kind: ClassVar[str] = "withdraw_from_stability_pool"
    venue: str
    account: str
    amount: str


@_lending_command
class LiquidateTrove(Command):
    """Liquity ``liquidate(borrower)``: the whole trove, offset against the stability pool and
    redistributed; the caller gets the gas compensation."""

    kind: ClassVar[str] = "liquidate_trove"
    venue: str
    liquidator: str
    borrower: str


# ============================================================================================
# Events (amounts as decimal strings in the asset's own unit)
# ============================================================================================


@event
class PricesUpdated(Event):
    kind: ClassVar[str] = "prices_updated"
    venue: str
    prices: tuple[tuple[str, str], ...]
    timestamp: int


@event
class SupplyAdded(Event):
    kind: ClassVar[str] = "supply_added"
    venue: str
    account: str
    asset: str
    amount: str
    market: str | None = None


@event
class SupplyWithdrawn(Event):
    kind: ClassVar[str] = "supply_withdrawn"
    venue: str
    account: str
    asset: str
    amount: str
    market: str | None = None


@event
class Borrowed(Event):
    kind: ClassVar[str] = "borrowed"
    venue: str
    account: str
    asset: str
    amount: str
    market: str | None = None
    health: str | None = None  # the protocol's health measure after the borrow


@event
class Repaid(Event):
    kind: ClassVar[str] = "repaid"
    venue: str
    account: str
    payer: str
    asset: str
    amount: str
    market: str | None = None


@event
class EModeSet(Event):
    kind: ClassVar[str] = "emode_set"
    venue: str
    account: str
    category: int


@event
class CollateralEnabledSet(Event):
    kind: ClassVar[str] = "collateral_enabled_set"
    venue: str
    account: str
    asset: str
    enabled: bool


@event
class LiquidationCalled(Event):
    """Aave: the liquidator paid ``debt_repaid`` and received ``liquidator_received`` of the
    ``collateral_seized``; ``protocol_fee`` went to the treasury. ``toxic``: the loan-to-value
    before was above 1/LB, so the call lowered the health factor."""

    kind: ClassVar[str] = "liquidation_called"
    venue: str
    liquidator: str
    borrower: str
    collateral_asset: str
    debt_asset: str
    debt_repaid: str
    collateral_seized: str
    protocol_fee: str
    liquidator_received: str
    health_factor_before: str | None
    health_factor_after: str | None
    toxic: bool


@event
class BadDebtRecorded(Event):
    """Debt no collateral covers, and who bears it: ``reserve_deficit`` (Aave 3.3+),
    ``reserves`` (Compound), ``vault_depositors`` (Euler), ``market_suppliers`` (Morpho),
    ``system_debt`` (Maker), ``stability_pool`` / ``redistribution`` (Liquity)."""

    kind: ClassVar[str] = "bad_debt_recorded"
    venue: str
    account: str
    asset: str
    amount: str
    absorbed_by: str
    market: str | None = None


@event
class Absorbed(Event):
    kind: ClassVar[str] = "absorbed"
    venue: str
    absorber: str
    account: str
    debt_absorbed: str
    collateral_seized: tuple[tuple[str, str], ...]
    credit: str
    balance_after: str
    reserves_after: str


@event
class CollateralBought(Event):
    kind: ClassVar[str] = "collateral_bought"
    venue: str
    buyer: str
    asset: str
    base_paid: str
    collateral_received: str
    reserves_after: str


@event
class ReservesFunded(Event):
    kind: ClassVar[str] = "reserves_funded"
    venue: str
    account: str
    asset: str
    amount: str
    reserves_after: str


@event
class Liquidated(Event):
    """Euler / Morpho: ``repaid`` of ``debt_asset`` for ``seized`` of ``collateral_asset``.
    ``incentive``: Euler's discount or Morpho's LIF; ``debt_taken_over``: Euler, the debt the
    liquidator kept (0 when it repaid in the same command)."""

    kind: ClassVar[str] = "liquidated"
    venue: str
    liquidator: str
    borrower: str
    collateral_asset: str
    debt_asset: str
    repaid: str
    seized: str
    incentive: str
    debt_taken_over: str
    market: str | None = None


@event
class AuctionStarted(Event):
    kind: ClassVar[str] = "auction_started"
    venue: str
    auction_id: int
    ilk: str
    owner: str
    keeper: str
    tab: str  # DAI to raise, penalty included
    lot: str  # collateral for sale
    top: str  # starting price
    due: str  # debt taken from the vault
    keeper_incentive: str


@event
class AuctionTaken(Event):
    kind: ClassVar[str] = "auction_taken"
    venue: str
    auction_id: int
    buyer: str
    price: str
    owe: str  # DAI the buyer paid (the ledger pays it rounded up to the DAI unit)
    slice: str  # collateral bought
    tab_after: str
    lot_after: str


@event
class AuctionReset(Event):
    kind: ClassVar[str] = "auction_reset"
    venue: str
    auction_id: int
    keeper: str
    top: str
    timestamp: int
    keeper_incentive: str


@event
class FlipBidPlaced(Event):
    """A bid in an English auction: ``phase`` ``tend`` (a higher DAI bid) or ``dent`` (less
    collateral for the whole tab); ``expires``: when it wins unless outbid (``tic``)."""

    kind: ClassVar[str] = "flip_bid_placed"
    venue: str
    auction_id: int
    bidder: str
    phase: str
    bid: str
    lot: str
    returned_to_owner: str
    expires: int


@event
class AuctionSettled(Event):
    """The auction ended: all sold (``uncovered_tab`` left to system debt) or the tab covered
    (the rest of the lot returned to the owner). ``system_debt``: the venue's unbacked debt after."""

    kind: ClassVar[str] = "auction_settled"
    venue: str
    auction_id: int
    owner: str
    raised: str
    returned_to_owner: str
    uncovered_tab: str
    system_debt: str


@event
class StabilityDeposited(Event):
    kind: ClassVar[str] = "stability_deposited"
    venue: str
    account: str
    amount: str


@event
class StabilityWithdrawn(Event):
    kind: ClassVar[str] = "stability_withdrawn"
    venue: str
    account: str
    amount: str
    collateral_gain: str


@event
class TroveLiquidated(Event):
    kind: ClassVar[str] = "trove_liquidated"
    venue: str
    liquidator: str
    borrower: str
    mode: str  # normal / recovery
    rule: str  # offset / redistribution / capped_offset
    icr: str
    debt: str
    collateral: str
    debt_offset: str
    collateral_to_stability_pool: str
    debt_redistributed: str
    collateral_redistributed: str
    gas_compensation: str  # stablecoin to the liquidator
    collateral_compensation: str  # collateral to the liquidator
    collateral_surplus: str  # returned to the borrower (recovery-mode capped offset)


# ============================================================================================
# Shared machinery
# ============================================================================================


class Moves:
    """Ledger transfers planned during validation and applied together once nothing can fail.

    ``add`` checks the source's balance as it will be after the moves planned before it, so a
    plan that would overdraw an account is refused before anything changes.
    """

    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.items: list[tuple[str, str, str, int, bool]] = []
        self._balances: dict[tuple[str, str], int] = {}

    def _balance(self, account: str, asset: str) -> int:
        key = (account, asset)
        if key not in self._balances:
            self._balances[key] = self.ledger.account(account).balance(asset)
        return self._balances[key]

    def add(self, source: str, target: str, asset: str, units: int, *, overdraft: bool = False,
            field_name: str = "amount") -> None:
        if units < 0:
            raise InvalidInput(field_name, f"internal: negative transfer {units}")
        if units == 0:
            return
        held = self._balance(source, asset)
        if not overdraft and held < units:
            raise InvalidInput(field_name, f"{source!r} holds {self.ledger.amount(asset, held)} {asset}, "
                               f"cannot pay {self.ledger.amount(asset, units)}")
        self._balances[(source, asset)] = held - units
        self._balances[(target, asset)] = self._balance(target, asset) + units
        self.items.append((source, target, asset, units, overdraft))

    def apply(self) -> None:
        for source, target, asset, units, overdraft in self.items:
            self.ledger.transfer(source, target, asset, units, allow_overdraft=overdraft)


class SharePool:
    """Supply and borrow side of one lendable asset (an Aave reserve, an Euler vault, a Morpho
    market's loan side), in exact integers.

    Suppliers hold shares of ``total_assets`` (the suppliers' claim). Cash (what the pool holds in
    the ledger for it) is ``total_assets − borrowed − deficit``:

    - ``deficit`` (Aave 3.3+) is debt burned from borrowers that suppliers are still owed;
    - ``lost`` (Euler, Morpho) is debt written off against suppliers: ``total_assets`` fell by it.

    Identity kept: ``cash + borrowed + deficit + lost == net_supplied`` (assets supplied minus
    assets withdrawn, by anyone, including collateral paid out in liquidations).
    Shares are minted rounded down and burned rounded up (the protocol keeps the dust); while no
    loss was taken, a share is exactly one unit of the asset.
    """

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.shares: dict[str, int] = {}
        self.total_shares = 0
        self.total_assets = 0
        self.debts: dict[str, int] = {}
        self.borrowed = 0
        self.deficit = 0
        self.lost = 0
        self.net_supplied = 0

    @property
    def cash(self) -> int:
        return self.total_assets - self.borrowed - self.deficit

    def assets_of(self, account: str) -> int:
        shares = self.shares.get(account, 0)
        if not shares:
            return 0
        return shares * self.total_assets // self.total_shares

    def debt_of(self, account: str) -> int:
        return self.debts.get(account, 0)

    def shares_for_deposit(self, assets: int) -> int:
        if self.total_shares == 0:
            return assets
        if self.total_assets == 0:
            raise InvalidInput("amount", f"the {self.asset} pool lost all its assets: no new supply")
        return assets * self.total_shares // self.total_assets

    def shares_for_withdrawal(self, assets: int) -> int:
        if assets == 0:
            return 0
        return -((-assets * self.total_shares) // self.total_assets)

    # mutations (callers validate first)
    def deposit(self, account: str, assets: int, shares: int) -> None:
        self.shares[account] = self.shares.get(account, 0) + shares
        self.total_shares += shares
        self.total_assets += assets
        self.net_supplied += assets

    def withdraw(self, account: str, assets: int, shares: int) -> None:
        self._burn(account, shares)
        self.total_assets -= assets
        self.net_supplied -= assets

    def move_shares(self, source: str, target: str, shares: int) -> None:
        self._burn(source, shares)
        self.shares[target] = self.shares.get(target, 0) + shares
        self.total_shares += shares

    def _burn(self, account: str, shares: int) -> None:
        left = self.shares.get(account, 0) - shares
        if left < 0:
            raise AssertionError(f"{account} burns more {self.asset} shares than it holds")
        if left:
            self.shares[account] = left
        else:
            self.shares.pop(account, None)
        self.total_shares -= shares

    def add_debt(self, account: str, assets: int) -> None:
        self.debts[account] = self.debts.get(account, 0) + assets
        self.borrowed += assets

    def reduce_debt(self, account: str, assets: int) -> None:
        left = self.debts.get(account, 0) - assets
        if left < 0:
            raise AssertionError(f"{account} repays more {self.asset} than it owes")
        if left:
            self.debts[account] = left
        else:
            self.debts.pop(account, None)
        self.borrowed -= assets

    def write_off(self, account: str, assets: int, *, against_suppliers: bool) -> None:
        self.reduce_debt(account, assets)
        if against_suppliers:
            self.total_assets -= assets
            self.lost += assets
        else:
            self.deficit += assets

    def identity(self) -> tuple[int, int]:
        return self.cash + self.borrowed + self.deficit + self.lost, self.net_supplied

    def view(self, ledger) -> dict[str, Any]:
        amount = lambda units: "0" if units == 0 else str(ledger.amount(self.asset, units))
        return {"total_supplied": amount(self.total_assets), "total_borrowed": amount(self.borrowed),
                "cash": amount(self.cash), "deficit": amount(self.deficit), "lost_by_suppliers": amount(self.lost),
                "total_shares": self.total_shares}


@dataclass(frozen=True)
class LendingConservation:
    """Per (protocol account, asset): the ledger balance ``found`` against what the protocol's
    state says it must be (``expected``); and each named accounting identity as (lhs, rhs)."""

    venue: str
    expected: dict[tuple[str, str], int]
    found: dict[tuple[str, str], int]
    identities: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return self.expected == self.found and all(lhs == rhs for lhs, rhs in self.identities.values())

    def describe(self) -> str:
        lines = []
        for key in sorted(set(self.expected) | set(self.found)):
            expected, found = self.expected.get(key, 0), self.found.get(key, 0)
            mark = "ok" if expected == found else f"MISMATCH by {found - expected}"
            lines.append(f"{key[0]} {key[1]}: expected {expected}, found {found} ({mark})")
        for name, (lhs, rhs) in sorted(self.identities.items()):
            lines.append(f"{name}: {lhs} == {rhs} ({'ok' if lhs == rhs else 'MISMATCH'})")
        return "\n".join(lines)


class LendingVenue:
    """A lending venue's state and rules; one subclass per protocol."""

    protocol: ClassVar[str] = ""
    price_decimals: int = 18
    #: protocol account suffixes opened with the venue
    account_names: ClassVar[tuple[str, ...]] = ("pool", "treasury")

    def __init__(self, engine: Engine, name: str, preset: Preset) -> None:
        self.engine = engine
        self.ledger = engine.ledger
        self.name = name
        self.preset = preset
        self.prices: dict[str, Decimal] = {}
        self.accounts: set[str] = set()
        self.settings = preset.section("lending")

    # ---------------------------------------------------------------- names

    def protocol_account(self, suffix: str) -> str:
        return f"{self.name}{SEPARATOR}{suffix}"

    @property
    def pool(self) -> str:
        return self.protocol_account("pool")

    @property
    def treasury(self) -> str:
        return self.protocol_account("treasury")

    def assets(self) -> list[str]:
        """Assets the venue lists (prices may be given for these)."""
        return sorted(self.preset.assets)

    def market_names(self) -> tuple[str, ...]:
        return tuple(self.assets())

    # ---------------------------------------------------------------- helpers

    def units(self, asset: str, value: object, field_name: str = "amount") -> int:
        return self.ledger.units(asset, positive(value, field_name), field_name)

    def text(self, asset: str, units: int) -> str:
        return "0" if units == 0 else str(self.ledger.amount(asset, units))

    def price(self, asset: str, field_name: str = "prices") -> Decimal:
        if asset not in self.prices:
            raise InvalidInput(field_name, f"{self.name} has no price for {asset} yet: send update_prices first")
        return self.prices[asset]

    def require_member(self, account: str, field_name: str = "account") -> None:
        if account not in self.accounts:
            raise InvalidInput(field_name, f"account {account!r} has not joined lending venue {self.name}")

    def require_caller(self, account: str, field_name: str) -> None:
        """A liquidator, keeper or buyer: any user account of the ledger."""
        if account not in self.ledger.accounts:
            raise UnknownName("account", account)
        if SEPARATOR in account:
            raise InvalidInput(field_name, f"{account!r} is a protocol account")

    def require_asset(self, asset: str, allowed, field_name: str = "asset") -> None:
        if asset not in allowed:
            raise InvalidInput(field_name, f"{asset!r} is not an asset of {self.name} here "
                               f"(known: {', '.join(sorted(allowed))})")

    def deposit_shares(self, account: str, asset: str, units: int, pool: SharePool, *,
                       zero_shares: str | None = None) -> None:
        """Move ``units`` from the account into the venue's pool, as shares of ``pool``.

        ``zero_shares``: the refusal when the deposit would mint no share (Euler, Morpho).
        """
        shares = pool.shares_for_deposit(units)
        if zero_shares is not None and shares == 0:
            raise InvalidInput("amount", zero_shares)
        moves = Moves(self.ledger)
        moves.add(account, self.pool, asset, units)
        moves.apply()
        pool.deposit(account, units, shares)

    def repay_debt(self, command: Repay, pool: SharePool, nothing_owed: tuple[str, str]) -> tuple[str, int]:
        """Repay (up to all of) the account's debt in ``pool`` from the payer; (payer, units).

        ``nothing_owed``: the (field, message) of the refusal when there is no debt to repay.
        """
        payer = command.payer or command.account
        self.require_caller(payer, "payer")
        owed = pool.debt_of(command.account)
        if owed == 0:
            raise InvalidInput(*nothing_owed)
        wanted = decimal_or_max(command.amount, "amount")
        units = owed if wanted is None else min(owed, self.ledger.units(command.asset, wanted))
        moves = Moves(self.ledger)
        moves.add(payer, self.pool, command.asset, units)
        moves.apply()
        pool.reduce_debt(command.account, units)
        return payer, units

    def check_price(self, asset: str, value: object, field_name: str) -> Decimal:
        price = bounds.price(positive(value, field_name), field_name)
        scaled = price.scaleb(self.price_decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidInput(field_name, f"{price} is finer than the oracle's unit 1e-{self.price_decimals}")
        return price

    def not_supported(self, command: Command) -> list[Event]:
        raise InvalidInput("venue", f"{self.name} is a {self.protocol} venue: {command.kind} does not apply")

    # ---------------------------------------------------------------- generic commands

    def supply(self, command: Supply) -> list[Event]:
        return self.not_supported(command)

    def withdraw_supply(self, command: WithdrawSupply) -> list[Event]:
        return self.not_supported(command)

    def borrow(self, command: Borrow) -> list[Event]:
        return self.not_supported(command)

    def repay(self, command: Repay) -> list[Event]:
        return self.not_supported(command)

    # ---------------------------------------------------------------- views and checks

    def expected_balances(self) -> dict[tuple[str, str], int]:
        """What each protocol account must hold per asset, by the protocol's state."""
        raise NotImplementedError

    def identities(self) -> dict[str, tuple[int, int]]:
        return {}

    def account_state(self, account: str) -> dict[str, Any]:
        raise NotImplementedError

    def venue_state(self) -> dict[str, Any]:
        raise NotImplementedError


# ============================================================================================
# Registry and engine hooks
# ============================================================================================


def _protocols() -> dict[str, type[LendingVenue]]:
    from .lending_aave import AaveVenue
    from .lending_compound import CompoundVenue
    from .lending_euler import EulerVenue
    from .lending_liquity import LiquityVenue
    from .lending_maker import MakerVenue
    from .lending_maker_flip import MakerFlipVenue
    from .lending_morpho import MorphoVenue

    return {cls.protocol: cls for cls in (AaveVenue, CompoundVenue, EulerVenue, MorphoVenue, MakerVenue, MakerFlipVenue,
                                          LiquityVenue)}


def registry(engine: Engine) -> dict[str, LendingVenue]:
    if not hasattr(engine, "lending"):
        engine.lending = {}
    return engine.lending


def lending_venue(engine: Engine, name: str) -> LendingVenue:
    venues = registry(engine)
    if name not in venues:
        raise UnknownName("lending venue", name, list(venues))
    return venues[name]


def create_lending_venue(engine: Engine, name: str, preset: Preset, overrides: dict[str, Any]) -> list[Event]:
    """``CreateVenue`` of a preset with ``kind = "lending"``: protocol accounts and registry entry."""
    venues = registry(engine)
    if not name or SEPARATOR in name:
        raise InvalidInput("venue", f"must be non-empty without {SEPARATOR!r}")
    if name in venues or name in engine.venues:
        raise InvalidInput("venue", f"{name!r} already exists")
    if overrides:
        preset = preset.with_overrides(overrides, name=f"{preset.name}+{name}")
    protocol = str(preset.section("lending").get("protocol", ""))
    classes = _protocols()
    if protocol not in classes:
        raise InvalidInput(f"preset[{preset.name}].lending.protocol",
                           f"expected one of {', '.join(sorted(classes))}, got {protocol!r}")
    for symbol, asset in preset.assets.items():
        known = engine.ledger.assets.get(symbol)
        if known is not None and known.decimals != asset.decimals:
            raise InvalidInput(f"assets.{symbol}", f"{preset.name} counts {symbol} in 1e-{asset.decimals}, "
                               f"another venue in 1e-{known.decimals}")
    venue = classes[protocol](engine, name, preset)  # parses and validates the preset's tables
    names = [venue.protocol_account(suffix) for suffix in venue.account_names]
    for account in names:
        if account in engine.ledger.accounts:
            raise InvalidInput("venue", f"protocol account {account!r} already exists")
    # Validated: now change state.
    for asset in preset.assets.values():
        engine.ledger.add_asset(asset)
    for account in names:
        engine.ledger.open_account(account)
    venues[name] = venue
    return [VenueCreated(name, preset.name, venue.market_names())]


def _open_account(engine: Engine, command: OpenLendingAccount) -> list[Event]:
    venue = lending_venue(engine, command.venue)
    if not command.account or SEPARATOR in command.account:
        raise InvalidInput("account", f"account ids must be non-empty without {SEPARATOR!r}")
    bounds.identifier(command.account, "account")
    if command.account in venue.accounts:
        raise InvalidInput("account", f"{command.account!r} already joined {venue.name}")
    if command.account not in engine.ledger.accounts:
        engine.ledger.open_account(command.account)
    venue.accounts.add(command.account)
    engine.member_venues.setdefault(command.account, set()).add(venue.name)
    return [AccountOpened(command.account, venue.name)]


def _update_prices(engine: Engine, command: UpdatePrices) -> list[Event]:
    venue = lending_venue(engine, command.venue)
    timestamp = bounds.timestamp(to_int(command.timestamp, "timestamp"))
    now = engine.time_of(venue.name)
    if timestamp < now:
        raise InvalidInput("timestamp", f"{timestamp} is before the engine's time {now}")
    if not command.prices:
        raise InvalidInput("prices", "no price given")
    known = set(venue.assets())
    updates = {}
    for asset, value in sorted(dict(command.prices).items()):
        venue.require_asset(asset, known, f"prices.{asset}")
        updates[asset] = venue.check_price(asset, value, f"prices.{asset}")
    engine.clocks[venue.name] = timestamp  # this venue's time only (see Engine.time_of)
    venue.prices.update(updates)
    return [PricesUpdated(venue.name, tuple((asset, str(price)) for asset, price in updates.items()), timestamp)]


def _routed(engine: Engine, method: str) -> Callable[[Command], list[Event]]:
    def handle(command: Command) -> list[Event]:
        assert hasattr(command, "venue")  # every command in ROUTES names its venue
        venue = lending_venue(engine, command.venue)
        handler = getattr(venue, method, None)
        if handler is None:
            return venue.not_supported(command)
        try:
            return handler(command)
        except ProtocolRevert as error:
            where = next((name for name in ("borrower", "auction_id", "account") if hasattr(command, name)), "command")
            raise InvalidInput(where, str(error)) from error

    return handle


ROUTES: dict[type, str] = {
    Supply: "supply",
    WithdrawSupply: "withdraw_supply",
    Borrow: "borrow",
    Repay: "repay",
    SetEMode: "set_emode",
    SetCollateralEnabled: "set_collateral_enabled",
    LiquidationCall: "liquidation_call",
    Absorb: "absorb",
    BuyCollateral: "buy_collateral",
    FundReserves: "fund_reserves",
    Liquidate: "liquidate",
    Bark: "bark",
    Take: "take",
    Redo: "redo",
    FlipBid: "flip_bid",
    Deal: "deal",
    ProvideToStabilityPool: "provide_to_stability_pool",
    WithdrawFromStabilityPool: "withdraw_from_stability_pool",
    LiquidateTrove: "liquidate_trove",
}


def lending_handlers(engine: Engine) -> dict[type, Callable]:
    """Handlers of the lending commands, registered by the engine."""
    registry(engine)
    handlers: dict[type, Callable] = {
        OpenLendingAccount: lambda command: _open_account(engine, command),
        UpdatePrices: lambda command: _update_prices(engine, command),
    }
    for cls, method in ROUTES.items():
        handlers[cls] = _routed(engine, method)
    return handlers


# ============================================================================================
# Views and checks
# ============================================================================================


def lending_conservation(engine: Engine, venue: str) -> LendingConservation:
    """The venue's protocol accounts hold exactly what its state says (per asset), and its
    accounting identities hold. See :class:`SharePool` and each protocol's module."""
    state = lending_venue(engine, venue)
    expected = {key: units for key, units in state.expected_balances().items() if units}
    found: dict[tuple[str, str], int] = {}
    for suffix in state.account_names:
        account = state.protocol_account(suffix)
        for asset, units in engine.ledger.account(account).balances.items():
            if units:
                found[(account, asset)] = units
    return LendingConservation(venue, expected, found, state.identities())


def all_lending_conservation(engine: Engine) -> dict[str, LendingConservation]:
    return {name: lending_conservation(engine, name) for name in sorted(registry(engine))}


def lending_account(engine: Engine, venue: str, account: str) -> dict[str, Any]:
    """An account's position on a lending venue: supplies, debts, health, auctions."""
    return lending_venue(engine, venue).account_state(account)


def lending_state(engine: Engine, venue: str) -> dict[str, Any]:
    """A lending venue's state: pools, reserves, running auctions, stability pool."""
    return lending_venue(engine, venue).venue_state()


def fraction_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def decimal_or_max(value: object, field_name: str) -> Decimal | None:
    """``None`` for ``"max"``, else a positive decimal."""
    if isinstance(value, str) and value.strip().lower() == "max":
        return None
    return positive(value, field_name)


__all__ = [
    "Absorb",
    "Bark",
    "Borrow",
    "BuyCollateral",
    "Deal",
    "FlipBid",
    "FundReserves",
    "LendingConservation",
    "LendingVenue",
    "Liquidate",
    "LiquidateTrove",
    "LiquidationCall",
    "Moves",
    "OpenLendingAccount",
    "ProvideToStabilityPool",
    "Redo",
    "Repay",
    "SetCollateralEnabled",
    "SetEMode",
    "SharePool",
    "Supply",
    "Take",
    "UpdatePrices",
    "WithdrawFromStabilityPool",
    "WithdrawSupply",
    "all_lending_conservation",
    "create_lending_venue",
    "lending_account",
    "lending_conservation",
    "lending_handlers",
    "lending_state",
]
