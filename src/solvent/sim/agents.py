"""Agents of the lending cascade simulator: borrowers, liquidators (keepers), market makers.

Agents only *decide*: they read what anyone could observe (oracle prices, vaults and accounts,
running auctions, account health through the venue's public views, the market's mid and depth)
and emit engine commands. The engine, the same one that runs live, judges every command; a
command it refuses changes nothing and the agent moves on. No randomness is drawn here except
from a ``numpy.random.Generator`` passed in.

**Borrowers** (:func:`sample_borrowers`): one position per borrower, a debt and a
collateralization ratio ``c = collateral value / debt`` at the opening price. Defaults
(assumptions, stated as such):

- debt: log-normal, median 20,000 (in the debt asset, DAI/USDC ≈ USD) and log-sd 1.0, clipped
  to ``[min_debt, 50M]``; ``min_debt`` is raised to the protocol's floor (Maker's ``dust``, 7,500
  DAI for ETH-A) by the caller.
- collateralization: ``c = c_min · (1 + b)`` with ``c_min`` the most a borrower may draw (Maker
  ``mat`` = 1.45; Aave ``1/LTV`` = 1/0.805 = 1.242 for WETH) and the buffer ``b`` log-normal with
  median 0.5 and log-sd 0.6, at least 0.01. The median Maker vault then sits at ``c`` ≈ 2.18,
  i.e. a leverage ``C/(C − D)`` ≈ 1.85, at the top of the aggregate DeFi leverage of 1.4–1.9 that
  BIS WP 1171 measures (reference/simulation.md §2.2 item 10); the log-sd is not sourced.

**Liquidators** (:class:`Liquidator`): a keeper with capital in the debt asset (it really holds
it in its ledger account and pays from it), a latency (steps between first seeing an opportunity
and acting on it; an opportunity that disappears for a step is new when it returns) and a
profit gate. For every take or liquidation call it previews the result on public state (Maker:
``clip.take``'s arithmetic on the auction's tab, lot, price and ``chost``; Aave: the pool's own
``liquidationCall`` rules, what an ``eth_call`` gives a real keeper), values the collateral it
would receive at what selling it into the market model would fetch (:func:`quote_sell`), and
acts only if ``proceeds − gas ≥ cost · (1 + min_margin)``. Sizes tried: the most it may buy
(the lot, or the largest repayment the protocol allows, within its capital), halved up to
``SLICE_HALVINGS`` times; it takes the most profitable size that passes. On Maker it bids on the
auction where that profit is highest; on Aave it works through liquidatable accounts largest
debt first and calls the first one that passes. After a take it sells what it bought into the market (the
sale moves the price: the feedback loop) and books the sale through the ledger: ``Withdraw`` of
the collateral to the market and ``Deposit`` of the proceeds. Barks and redos cost nothing but
gas and pay the minted ``tip + chip·tab``: a keeper sends them when that covers ``gas``.

On Compound, Euler, Morpho and Liquity keepers find positions through a
:class:`BorrowerScreen` (floats, re-read from the protocol after each event that touches a
position) and preview each candidate with the protocol's own integer rules before acting:
Compound accounts are absorbed (no reward on-chain: no gate) and the seized collateral bought at
the store front when ``quoteCollateral``'s discount passes the gate; Euler and Morpho positions
are liquidated, largest debt first, when the incentive (Euler's discount, Morpho's LIF) covers
the slippage; Liquity troves, lowest ICR first, when the gas compensation (200 LUSD and 0.5% of
the collateral, sold) covers ``gas``.

**Market makers** (:class:`MarketMaker`): a depth multiplier that falls as realised volatility
rises, ``clip((calm_volatility / σ) ** vol_sensitivity, min_depth_fraction, 1)``, withdrawn at
once and refilled with a half-life. This is exactly the thinning of
:class:`~solvent.sim.market.SqrtImpact` (reference §2.2 item 5, Brunnermeier–Pedersen; Kaiko's
books "empty for several minutes" on 10 Oct 2025), so a market maker is the set of parameters of
that thinning: :meth:`MarketMaker.impact` builds the square-root market they quote, and
:meth:`MarketMaker.book` applies the same multiplier to an :class:`~solvent.sim.market.L2Book`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar

import numpy as np

from ..core.errors import InvalidInput
from ..engine import CommandRejected
from ..engine import commands as c
from ..engine import lending as L
from ..engine.lending_aave import AaveVenue
from ..engine.lending_compound import CompoundVenue
from ..engine.lending_euler import EulerVenue
from ..engine.lending_liquity import LiquityVenue
from ..engine.lending_maker import MakerVenue
from ..engine.lending_morpho import MorphoVenue
from ..policies.lending import ProtocolRevert, aave, ceil_div, compound, euler, liquity, morpho
from .market import ConstantProduct, Fill, L2Book, SqrtImpact, _average_exp

SLICE_HALVINGS = 10  # candidate sizes: the most allowed, then halved this many times
ABSORB_BATCH = 50  # Compound: accounts per absorb call (Comet's absorb takes a list)

# ============================================================================================
# Borrowers
# ============================================================================================


@dataclass(frozen=True)
class BorrowerBook:
    """Columns, one borrower per row: debt (debt asset), collateralization at the opening price,
    and the index of its collateral market in ``markets``."""

    markets: tuple[str, ...]
    debt: np.ndarray
    collateralization: np.ndarray
    market: np.ndarray

    def __len__(self) -> int:
        return int(self.debt.shape[0])


def sample_borrowers(count: int, markets: Iterable[str], minimum_ratio: dict[str, float], rng: Any,
                     median_debt: float = 20_000.0, debt_sigma: float = 1.0, min_debt: float = 100.0,
                     max_debt: float = 50_000_000.0, median_buffer: float = 0.5, buffer_sigma: float = 0.6,
                     min_buffer: float = 0.01) -> BorrowerBook:
    """Draw ``count`` borrowers (see the module for the defaults). ``minimum_ratio[market]`` is the
    lowest collateralization the protocol lets a borrower draw to. Draw order, fixed: debt,
    buffer, market."""
    markets = tuple(markets)
    if count <= 0:
        raise InvalidInput("borrowers", "must be positive")
    if not markets:
        raise InvalidInput("markets", "at least one collateral market is needed")
    if not (median_debt > 0 and median_buffer > 0) or debt_sigma < 0 or buffer_sigma < 0:
        raise InvalidInput("borrowers", "medians must be positive and log-sds non-negative")
    rng = np.random.default_rng(rng)
    debt = np.clip(rng.lognormal(math.log(median_debt), debt_sigma, count), min_debt, max_debt)
    buffer = np.maximum(rng.lognormal(math.log(median_buffer), buffer_sigma, count), min_buffer)
    market = rng.integers(0, len(markets), count).astype(np.int32)
    floor = np.array([minimum_ratio[name] for name in markets])[market]
    return BorrowerBook(markets, debt, floor * (1.0 + buffer), market)


# ============================================================================================
# Market makers and the market a keeper sells into
# ============================================================================================


@dataclass(frozen=True)
class MarketMaker:
    """Depth that market makers leave as volatility rises (see the module docstring).

    Defaults are :class:`SqrtImpact`'s (assumptions there): calm volatility 0.5, sensitivity 1,
    a floor of 5% of the base depth, a 10-step refill half-life.
    """

    calm_volatility: float = 0.5
    vol_sensitivity: float = 1.0
    min_depth_fraction: float = 0.05
    recovery_half_life_steps: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.min_depth_fraction <= 1:
            raise InvalidInput("min_depth_fraction", "must be within (0, 1]")
        if not self.calm_volatility > 0 or self.vol_sensitivity < 0:
            raise InvalidInput("calm_volatility", "must be positive (and the sensitivity non-negative)")

    def depth_multiplier(self, realized_vol: float) -> float:
        """The fraction of the calm depth quoted at an annualised realised volatility."""
        return self.impact(1.0).target_depth_fraction(realized_vol)

    def impact(self, depth_1pct_usd: float, **kwargs: Any) -> SqrtImpact:
        """A square-root market of ``depth_1pct_usd`` whose depth these market makers thin."""
        return SqrtImpact(depth_1pct_usd, vol_sensitivity=self.vol_sensitivity,
                          recovery_half_life_steps=self.recovery_half_life_steps,
                          min_depth_fraction=self.min_depth_fraction, calm_volatility=self.calm_volatility, **kwargs)

    def book(self, base: L2Book, realized_vol: float) -> L2Book:
        """``base`` with the depth these market makers pull at ``realized_vol`` withdrawn."""
        return base.withdraw(1.0 - self.depth_multiplier(realized_vol))


MarketModel = SqrtImpact | L2Book | ConstantProduct


def quote_sell(model: MarketModel, notional: float) -> Fill:
    """What selling ``notional`` (USD at mid) would fill, without changing ``model``."""
    if notional <= 0:
        return Fill(0.0, 0.0, 1.0, 1.0)
    if isinstance(model, SqrtImpact):  # SqrtImpact.trade's walk along the curve, without the state change
        scale, depth, before = model.y * 0.01, model.depth_usd, model.displacement
        volume = math.copysign(depth * (before / scale) ** 2, before) - notional
        after = math.copysign(scale * math.sqrt(abs(volume) / depth), volume)
        return Fill(notional, notional, _average_exp(before, after), math.exp(after))
    if isinstance(model, (L2Book, ConstantProduct)):
        return model.sell(notional)  # both leave the model as it was
    raise InvalidInput("market", f"unsupported market model {type(model).__name__}")


@dataclass
class ExitMarket:
    """The market a keeper sells seized collateral into: a model and the mid it sits on.

    ``mid()`` is the price now (debt-asset units per collateral unit). Selling into a
    :class:`SqrtImpact` moves it (the cascade's feedback); L2 books and pools are static here.
    """

    model: MarketModel
    mid: Callable[[], float]

    def quote(self, units: float) -> tuple[float, Fill]:
        """(proceeds, fill) of selling ``units`` of collateral now, without trading."""
        fill = quote_sell(self.model, units * self.mid())
        return fill.filled_notional * fill.average_price_factor, fill

    def sell(self, units: float) -> tuple[float, float, Fill]:
        """Sell ``units``: (units sold, proceeds, fill); the model moves if it keeps state."""
        mid = self.mid()
        if isinstance(self.model, SqrtImpact):
            fill = self.model.sell(units * mid)
        else:
            fill = quote_sell(self.model, units * mid)
        return fill.filled_notional / mid, fill.filled_notional * fill.average_price_factor, fill


# ============================================================================================
# What a keeper can observe
# ============================================================================================


@dataclass(frozen=True)
class AuctionSeen:
    """A running Maker auction as ``clip.sales`` / ``clip.getStatus`` show it (floats, DAI and
    collateral units; ``price_text`` is the price rounded up to 18 places, a take's ``max_price``)."""

    id: int
    ilk: str
    owner: str
    tab: float
    lot: float
    price: float
    price_text: str
    lot_text: str  # the lot exactly, to take all of it
    needs_reset: bool


def _ray_text(value: int) -> str:
    """A ray price rounded up to 18 decimals, as a take's ``max_price``: the take pays the auction's
    own price, and 18 places stay within the decimal context's 28 significant digits (a 27-place
    string would be rounded, possibly below the price)."""
    wad = -(-value // 10**9)
    whole, fraction = divmod(wad, 10**18)
    return f"{whole}.{fraction:018d}"


_Venue = TypeVar("_Venue", bound=L.LendingVenue)


class LendingView:
    """Read-only observations of one lending venue, as a keeper would make them on-chain.

    Prices are the venue's oracle; vaults and debts are the protocols' public storage
    (``vat.urns``, ``dog.ilks``, reserve balances); auction status is ``clip.getStatus``;
    ``preview_*`` run the protocol's own rules on that public state without changing it (an
    ``eth_call``). Nothing here changes the engine.
    """

    def __init__(self, engine, venue: str) -> None:
        self.engine = engine
        self.name = venue
        self.venue = L.lending_venue(engine, venue)
        self.protocol = self.venue.protocol
        self._auctions: tuple[Any, list[AuctionSeen]] | None = None
        self.screen: BorrowerScreen | None = None  # every protocol but Maker: see watch()
        self._previews: tuple[int, dict] = (-1, {})  # Aave: (time, previews of liquidation calls at that time)

    def price(self, asset: str) -> float:
        return float(self.venue.prices[asset])

    def _venue_as(self, kind: type[_Venue]) -> _Venue:
        """The venue as its protocol's class (the caller reads state only that protocol has)."""
        assert isinstance(self.venue, kind), f"{self.venue.name} is a {self.protocol} venue"
        return self.venue

    def balance(self, account: str, asset: str) -> Decimal:
        return self.engine.balance(account, asset)

    # ---- Maker

    def vaults(self, ilk: str) -> Iterable[tuple[str, float, float]]:
        """(owner, ink, art) of every vault of ``ilk`` with debt, in collateral and DAI units."""
        for owner, (ink, art) in self._venue_as(MakerVenue).urns[ilk].items():
            if art:
                yield owner, ink / 1e18, art / 1e18

    def auctions(self) -> list[AuctionSeen]:
        """Running auctions by id (cached while time and the auctions stay the same)."""
        venue = self._venue_as(MakerVenue)
        key = (self.engine.time_of(self.venue.name),
               tuple((a.id, a.tab, a.lot, a.top, a.tic) for a in venue.auctions.values()))
        if self._auctions is not None and self._auctions[0] == key:
            return self._auctions[1]
        seen = []
        for state in sorted(venue.auctions.values(), key=lambda a: a.id):
            done, price = venue.status(state)
            gem = venue.gems[state.ilk]
            seen.append(AuctionSeen(state.id, state.ilk, state.owner, state.tab / 1e45, state.lot / 1e18,
                                    price / 1e27, _ray_text(price), str(self.engine.ledger.amount(gem, state.lot)),
                                    done))
        self._auctions = (key, seen)
        return seen

    def chost(self, ilk: str) -> float:
        """``dust·chop`` in DAI: the least tab a partial take may leave."""
        return self._venue_as(MakerVenue).ilks[ilk].chost / 1e45

    def preview_take(self, auction: AuctionSeen, amount: float) -> tuple[float, float] | None:
        """(collateral bought, DAI owed) of taking up to ``amount`` at the auction's price now, or
        None if ``clip.take`` would revert (floats: the engine settles exactly)."""
        price = auction.price
        if price <= 0 or amount <= 0:
            return None
        bought = min(auction.lot, amount)
        owe = bought * price
        if owe >= auction.tab:
            return auction.tab / price, auction.tab
        if bought < auction.lot and auction.tab - owe < self.chost(auction.ilk):
            if auction.tab <= self.chost(auction.ilk):
                return None  # Clipper/no-partial-purchase
            owe = auction.tab - self.chost(auction.ilk)
            bought = owe / price
        return bought, owe

    def keeper_incentive(self, ilk: str, tab: float) -> float:
        """``tip + chip·tab`` in DAI (``dog.ilks`` is public)."""
        config = self._venue_as(MakerVenue).ilks[ilk]
        return config.tip / 1e45 + config.chip / 1e18 * tab

    def ilk_params(self, ilk: str) -> tuple[float, float]:
        """(mat, chop) of ``ilk``."""
        config = self._venue_as(MakerVenue).ilks[ilk]
        return config.mat / 1e27, config.chop / 1e18

    # ---- Aave

    def preview_liquidation(self, borrower: str, collateral: str, debt_asset: str,
                            cover: Decimal | None) -> tuple[Decimal, Decimal] | None:
        """(debt repaid, collateral the liquidator receives) of a ``LiquidationCall`` now, or None
        if it would revert. ``cover`` None asks for the most allowed."""
        venue = self._venue_as(AaveVenue)
        supplies, debts = venue.balances(borrower)
        try:
            account = venue.policy_account(borrower, supplies, debts,
                                           include=(("collateral", collateral), ("debt", debt_asset)))
        except (ProtocolRevert, InvalidInput):
            return None
        # The same account (balances, prices, e-mode) under the same rules previews the same: keepers
        # look at the same candidates within a step. Kept for the current time only.
        key = (account, collateral, debt_asset, cover, venue.config)
        if self._previews[0] != self.engine.time_of(self.venue.name):
            self._previews = (self.engine.time_of(self.venue.name), {})
        if key not in self._previews[1]:
            self._previews[1][key] = self._preview_call(account, collateral, debt_asset, cover)
        return self._previews[1][key]

    def _preview_call(self, account, collateral: str, debt_asset: str,
                      cover: Decimal | None) -> tuple[Decimal, Decimal] | None:
        try:
            result = aave.liquidation_call(account, collateral, debt_asset, None if cover is None else str(cover),
                                           self._venue_as(AaveVenue).config)
        except (ProtocolRevert, InvalidInput):
            return None
        ledger = self.engine.ledger
        received = result.collateral_seized - result.protocol_fee
        return ledger.amount(debt_asset, result.debt_repaid), ledger.amount(collateral, received)

    # ---- Compound, Euler, Morpho, Liquity: a screen of the book, then the protocol's own rules

    def watch(self, accounts: Iterable[tuple[str, str, str | None]], debt_asset: str) -> None:
        """Start screening ``(account, collateral token, market)`` positions borrowing ``debt_asset``
        (Aave, Compound, Euler, Morpho, Liquity). See :class:`BorrowerScreen`."""
        self.screen = BorrowerScreen(self, tuple(accounts), debt_asset)

    def observe(self, events: Iterable[Any]) -> None:
        """Events the venue emitted (its public log): positions they touch are read again."""
        if self.screen is not None:
            self.screen.observe(events)

    def position_units(self, account: str, gem: str, market: str | None, debt_asset: str) -> tuple[int, int]:
        """(collateral, debt) of ``account`` in token units, from the protocol's public storage
        (Comet's ``userCollateral``/``borrowBalanceOf``, an EVault's ``convertToAssets``/``debtOf``,
        Morpho's ``position``, Liquity's ``Troves``)."""
        if self.protocol == "aave":
            supplies, debts = self._venue_as(AaveVenue).balances(account)
            return supplies.get(gem, 0), debts.get(debt_asset, 0)
        if self.protocol == "compound":
            comet = self._venue_as(CompoundVenue)
            return comet.collateral[gem].get(account, 0), comet.debt(account)
        if self.protocol == "euler":
            evaults = self._venue_as(EulerVenue)
            return evaults.pools[gem].assets_of(account), evaults.pools[debt_asset].debt_of(account)
        if self.protocol == "morpho":
            blue = self._venue_as(MorphoVenue)
            assert market is not None  # a Morpho position is in a market
            return blue.collateral[market].get(account, 0), blue.pools[market].debt_of(account)
        if self.protocol == "liquity":
            coll, debt = self._venue_as(LiquityVenue).troves.get(account, (0, 0))  # [coll, debt]
            return coll, debt
        raise InvalidInput("venue", f"no position reader for {self.protocol}")

    def liquidation_factor(self, gem: str, market: str | None, debt_asset: str) -> float:
        """The fraction of collateral value that must cover the debt: Comet's liquidate CF, Euler's
        liquidation LTV, Morpho's LLTV, 1/MCR on Liquity (recovery mode lowers it further)."""
        if self.protocol == "aave":  # the reserve's threshold (an e-mode one is higher: this screens wider)
            return self._venue_as(AaveVenue).market.reserve(gem).liquidation_threshold_bps / 1e4
        if self.protocol == "compound":
            return self._venue_as(CompoundVenue).comet.assets[gem].liquidate_collateral_factor / compound.FACTOR_SCALE
        if self.protocol == "euler":
            return self._venue_as(EulerVenue).vaults[debt_asset].liquidation_ltv[gem] / euler.CONFIG_SCALE
        if self.protocol == "morpho":
            assert market is not None  # a Morpho position is in a market
            return self._venue_as(MorphoVenue).markets[market].lltv / 1e18
        if self.protocol == "liquity":
            return 1e18 / self._venue_as(LiquityVenue).rules.mcr
        raise InvalidInput("venue", f"no liquidation factor for {self.protocol}")

    def decimals(self, asset: str) -> int:
        return self.engine.ledger.assets[asset].decimals

    def preview_euler(self, borrower: str, collateral: str) -> tuple[int, int] | None:
        """(most debt that may be repaid, collateral assets it yields) of an Euler liquidation now,
        in token units, or None if the borrower is not in violation: ``calculateMaxLiquidation``
        on the vaults' public state (the engine's own arithmetic, read only)."""
        venue = self._venue_as(EulerVenue)
        controller = venue.controller(borrower)
        if controller is None or collateral not in venue.vaults[controller].liquidation_ltv:
            return None
        config = venue.vaults[controller]
        cool_off = config.liquidation.liquidation_cool_off_time
        last = venue.last_status_check.get(borrower)
        if cool_off and last is not None and last + cool_off > self.engine.time_of(self.venue.name):
            return None
        adjusted, liability = venue.liquidity(borrower, controller, liquidation=True)
        if not euler.is_violator(adjusted, liability):
            return None
        pool = venue.pools[collateral]
        owed = venue.pools[controller].debt_of(borrower)
        shares = pool.shares.get(borrower, 0)
        _, _, max_repay_value, max_yield = euler.max_liquidation(
            adjusted, liability, config.liquidation.max_liquidation_discount, shares,
            venue.share_value(collateral, shares))
        max_repay = owed if max_repay_value == liability else max_repay_value * owed // liability
        yielded = max_yield * pool.total_assets // pool.total_shares if max_yield else 0
        return max_repay, yielded

    def preview_morpho(self, borrower: str, market: str, repaid: int | None) -> Any:
        """Morpho ``liquidate`` of ``repaid`` loan units (None: the most, as the engine's ``"max"``)
        on public state, as a :class:`~solvent.policies.lending.morpho.MorphoLiquidation`, or None
        if it would revert."""
        venue = self._venue_as(MorphoVenue)
        config = venue.markets[market]
        collateral = venue.collateral[market].get(borrower, 0)
        borrowed = venue.pools[market].debt_of(borrower)
        if borrowed == 0 or collateral == 0:
            return None
        price = venue.oracle_price(config)
        seized = 0
        if repaid is None:
            lif = morpho.lif_units(config.lltv, venue.morpho)
            for_all = morpho.w_div_up(ceil_div(collateral * price, morpho.ORACLE_PRICE_SCALE), lif)
            seized, repaid = (collateral, 0) if for_all <= borrowed else (0, borrowed)
        try:
            result = morpho.liquidate_units(collateral, borrowed, price, config.lltv, seized=seized, repaid=repaid,
                                            config=venue.morpho)
        except (ProtocolRevert, InvalidInput):
            return None
        return result if result.seized > 0 else None

    def preview_trove(self, borrower: str, tcr: int) -> Any:
        """Liquity ``liquidate(borrower)`` on public state (``tcr``: the system's TCR now), as a
        :class:`~solvent.policies.lending.liquity.TroveLiquidation` (``rule == "none"``: it would revert)."""
        venue = self._venue_as(LiquityVenue)
        coll, debt = venue.troves.get(borrower, (0, 0))
        if debt == 0:
            return None
        return liquity.liquidate_units(coll, debt, venue.price_units(), sum(venue.deposits.values()),
                                       recovery_mode=tcr < venue.rules.ccr, tcr=tcr, config=venue.rules)


class BorrowerScreen:
    """Which positions may be liquidatable at the oracle's prices: a float index a keeper keeps.

    Real keepers do not re-read every position at every block: they index positions from the
    protocol's logs and re-read those an event touched. This screen does the same: one row per
    watched position with its collateral and debt (token units, floats), read exactly from the
    protocol's storage at the start and again after any event naming the account (an absorb, a
    liquidation) or, for a Liquity redistribution, which changes every trove, all of them. At a
    price it returns the rows whose ``collateral value × factor`` is below the debt, with a
    relative margin of 1e-9 so that no borderline position is missed: floats decide what to look
    at, the protocol's own integer rules (previews, then the engine) decide what happens.
    """

    MARGIN = 1e-9

    def __init__(self, view: LendingView, accounts: tuple[tuple[str, str, str | None], ...], debt_asset: str) -> None:
        self.view = view
        self.debt_asset = debt_asset
        self.names = [account for account, _, _ in accounts]
        self.row = {name: index for index, name in enumerate(self.names)}
        self.gem = [gem for _, gem, _ in accounts]
        self.market = [market for _, _, market in accounts]
        self.gems = sorted(set(self.gem))
        self.gem_index = np.array([self.gems.index(gem) for gem in self.gem], dtype=np.int64)
        self.factor = np.array([view.liquidation_factor(gem, market, debt_asset) for _, gem, market in accounts])
        self.scale = {asset: 10.0 ** view.decimals(asset) for asset in {*self.gems, debt_asset}}
        self.coll = np.zeros(len(accounts))
        self.debt = np.zeros(len(accounts))
        self._dirty: set[int] | None = None  # None: every row
        self._refresh()

    def observe(self, events: Iterable[Any]) -> None:
        for event in events:
            kind = event.kind
            if kind in ("absorbed", "liquidated", "liquidation_called", "trove_liquidated", "bad_debt_recorded"):
                account = getattr(event, "borrower", None) or getattr(event, "account", None)
                if kind == "trove_liquidated" and event.debt_redistributed != "0":
                    self._dirty = None
                elif self._dirty is not None and account in self.row:
                    self._dirty.add(self.row[account])

    def _refresh(self) -> None:
        rows = range(len(self.names)) if self._dirty is None else sorted(self._dirty)
        debt_scale = self.scale[self.debt_asset]
        for index in rows:
            coll, debt = self.view.position_units(self.names[index], self.gem[index], self.market[index],
                                                  self.debt_asset)
            self.coll[index] = coll / self.scale[self.gem[index]]
            self.debt[index] = debt / debt_scale
        self._dirty = set()

    def values(self) -> np.ndarray:
        """Each position's collateral at the oracle (debt-asset units: the debt asset is priced 1
        where the oracle prices it)."""
        if self._dirty is None or self._dirty:
            self._refresh()
        view = self.view
        prices = np.array([view.price(gem) for gem in self.gems])
        debt_price = view.price(self.debt_asset) if self.debt_asset in view.venue.prices else 1.0
        return self.coll * prices[self.gem_index] / debt_price

    def total_collateral_ratio(self) -> float:
        """Σ collateral value / Σ debt (Liquity's TCR, up to the few units pending redistribution)."""
        debt = float(self.debt.sum())
        return math.inf if debt <= 0 else float(self.values().sum()) / debt

    def candidates(self, factor: float | None = None, margin: float = MARGIN) -> list[int]:
        """Rows with debt whose collateral value × factor falls short of the debt, within
        ``margin`` (relative). ``factor`` widens the screen (the lower of it and each row's own
        applies: Liquity's recovery mode, where a trove below the TCR may be liquidated, passes 1/TCR)."""
        values = self.values()
        weight = self.factor if factor is None else np.minimum(self.factor, factor)
        mask = (self.debt > 0) & (values * weight < self.debt * (1.0 + margin))
        return [int(index) for index in np.flatnonzero(mask)]

    def loan_to_value(self, account: str) -> float | None:
        """Debt over collateral value (unweighted), from the screen's rows."""
        index = self.row.get(account)
        if index is None:
            return None
        value = float(self.values()[index])
        return None if value <= 0 else float(self.debt[index]) / value


# ============================================================================================
# Liquidators
# ============================================================================================


def passes_gate(cost: float, proceeds: float, min_margin: float, gas: float = 0.0) -> bool:
    """The profit gate: act only if ``proceeds − gas ≥ cost · (1 + min_margin)`` (and something
    is bought)."""
    return proceeds > 0 and proceeds - gas >= cost * (1.0 + min_margin)


def _units_text(units: int, decimals: int) -> str:
    """Token units as the decimal string commands take."""
    return str(Decimal(units).scaleb(-decimals))


def _down(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


@dataclass
class Liquidator:
    """A keeper: see the module docstring. ``name`` is its ledger account; ``debt_asset`` the
    asset of its capital (DAI on Maker, USDC on Aave)."""

    name: str
    debt_asset: str
    latency_steps: int = 1
    min_margin: float = 0.02
    gas: float = 0.0  # per transaction, in the debt asset
    max_actions_per_step: int = 8
    first_seen: dict[tuple, tuple[int, int]] = field(default_factory=dict)  # key → (first, last) step seen
    spent: Decimal = Decimal(0)  # debt asset paid for collateral
    recovered: Decimal = Decimal(0)  # debt asset received from selling it
    actions: int = 0
    auction_gems: dict[int, str] = field(default_factory=dict)  # auctions it bid on → collateral

    def __post_init__(self) -> None:
        if self.latency_steps < 0:
            raise InvalidInput("latency_steps", "must not be negative")
        if self.min_margin < 0 or self.gas < 0:
            raise InvalidInput("min_margin", "the margin and the gas cost must not be negative")

    def ready(self, key: tuple, step: int) -> bool:
        """Whether ``latency_steps`` have passed since the keeper first saw opportunity ``key``
        (records the sighting). An opportunity missing for a step is new when it comes back."""
        seen = self.first_seen.get(key)
        first = step if seen is None or seen[1] < step - 1 else seen[0]
        self.first_seen[key] = (first, step)
        return step - first >= self.latency_steps

    # ---- one step

    def act(self, view: LendingView, markets: dict[str, ExitMarket], step: int,
            apply: Callable[[c.Command], list]) -> None:
        """Look, decide, send commands through ``apply`` (which returns the events or raises
        :class:`CommandRejected`), and sell what was bought. Up to ``max_actions_per_step``
        liquidation commands per step; the decision is remade after each."""
        tried: set[tuple] = set()
        for _ in range(self.max_actions_per_step):
            decision = self.decide(view, markets, step, tried)
            if decision is None:
                return
            key, command = decision
            tried.add(key)
            try:
                events = apply(command)
            except CommandRejected:
                continue
            self.actions += 1
            self._after(events, view, markets, apply)

    def decide(self, view: LendingView, markets: dict[str, ExitMarket], step: int,
               tried: set[tuple]) -> tuple[tuple, c.Command] | None:
        if view.protocol == "maker":
            return self._decide_maker(view, markets, step, tried)
        if view.protocol == "aave":
            return self._decide_aave(view, markets, step, tried)
        if view.protocol == "compound":
            return self._decide_compound(view, markets, step, tried)
        if view.protocol in ("euler", "morpho"):
            return self._decide_liquidate(view, markets, step, tried)
        if view.protocol == "liquity":
            return self._decide_liquity(view, markets, step, tried)
        raise InvalidInput("venue", f"the simulator's keepers do not know {view.protocol} yet")

    # ---- Maker: bark, redo, take

    def _decide_maker(self, view, markets, step, tried):
        venue = view.venue
        for ilk, gem in sorted(venue.gems.items()):
            if gem not in markets:
                continue
            price = view.price(gem)
            mat, chop = view.ilk_params(ilk)
            for owner, ink, art in view.vaults(ilk):
                key = ("bark", ilk, owner)
                if key in tried or ink * price / mat >= art:
                    continue  # safe (the engine decides borderline cases)
                if self.ready(key, step) and view.keeper_incentive(ilk, art * chop) >= self.gas:
                    return key, L.Bark(view.name, self.name, owner, ilk)
        best: tuple[float, tuple, c.Command] | None = None
        capital = float(view.balance(self.name, self.debt_asset))
        for auction in view.auctions():
            gem = venue.gems[auction.ilk]
            if gem not in markets:
                continue
            if auction.needs_reset:
                key = ("redo", auction.id)
                if key not in tried and self.ready(("auction", auction.id), step) and \
                        view.keeper_incentive(auction.ilk, auction.tab) >= self.gas:
                    return key, L.Redo(view.name, self.name, auction.id)
                continue
            key = ("take", auction.id)
            if key in tried or not self.ready(("auction", auction.id), step) or auction.price <= 0:
                continue
            # Necessary for the gate: a unit sells for at most the mid.
            if auction.price * (1.0 + self.min_margin) > markets[gem].mid():
                continue
            choice = self._best_take(view, markets[gem], auction, capital)
            if choice is None:
                tried.add(key)  # within a step the market only gets worse: no need to look again
            if choice is not None and (best is None or choice[0] > best[0]):
                self.auction_gems[auction.id] = gem
                profit, size, covers_tab = choice
                # The whole lot exactly when it is all wanted, or when the tab will cap the take anyway.
                amount = auction.lot_text if covers_tab or size >= auction.lot * (1 - 1e-9) else \
                    str(_down(Decimal(repr(size)), 18))
                if Decimal(amount) > 0:
                    best = (profit, key, L.Take(view.name, self.name, auction.id, amount, auction.price_text))
        return None if best is None else (best[1], best[2])

    def _best_take(self, view: LendingView, market: ExitMarket, auction: AuctionSeen,
                   capital: float) -> tuple[float, float, bool] | None:
        """(profit, amount, covers the tab) of the most profitable take that passes the gate, or None."""
        best = None
        size = min(auction.lot, capital / auction.price * (1.0 - 1e-9))
        smallest = size / 2**SLICE_HALVINGS
        if smallest <= 0 or market.quote(smallest)[0] < smallest * auction.price * (1.0 + self.min_margin):
            return None  # a unit fetches the most in the smallest sale: if that fails, all sizes fail
        for _ in range(SLICE_HALVINGS + 1):
            preview = view.preview_take(auction, size)
            if preview is not None:
                bought, owe = preview
                if bought > 0 and owe <= capital:
                    proceeds, _ = market.quote(bought)
                    if passes_gate(owe, proceeds, self.min_margin, self.gas):
                        profit = proceeds - owe - self.gas
                        if best is None or profit > best[0]:
                            best = (profit, size, owe >= auction.tab)
            size /= 2
        return best

    # ---- Aave: liquidation calls

    def _decide_aave(self, view, markets, step, tried):
        """The first liquidatable account, largest debt first, whose best call passes the gate."""
        capital = view.balance(self.name, self.debt_asset)
        if capital <= 0:
            return None
        reserves = {asset: view.venue.market.reserve(asset) for asset in markets}
        # Necessary for the gate: repaying x buys at most x·LB of collateral at the oracle, sold at most at the mid.
        worth = {asset: reserve.liquidation_bonus_bps / 1e4 * markets[asset].mid() / view.price(asset)
                 >= 1.0 + self.min_margin for asset, reserve in reserves.items()}
        candidates = []
        screen = view.screen  # the positions as of the protocol's last events, in token units
        for index in screen.candidates(margin=1e-6):  # health factor under 1 (one collateral; the engine checks the rest)
            borrower, asset = screen.names[index], screen.gem[index]
            key = ("call", borrower, asset)
            if asset in markets and screen.coll[index] > 0 and self.ready(key, step) and worth[asset] and key not in tried:
                candidates.append((-float(screen.debt[index]), borrower, asset, key))
        for _, borrower, asset, key in sorted(candidates):
            choice = self._best_call(view, markets[asset], borrower, asset, capital)
            if choice is not None:
                return key, L.LiquidationCall(view.name, self.name, borrower, asset, self.debt_asset, choice[1])
            tried.add(key)  # within a step the market only gets worse: no need to look again
        return None

    def _best_call(self, view, market, borrower, asset, capital) -> tuple[float, str] | None:
        """(profit, debt_to_cover) of the most profitable call that passes the gate: the most the
        protocol allows (within capital), halved up to ``SLICE_HALVINGS`` times. Collateral per
        unit repaid is fixed (the bonus), so the sizes are scored from one preview of the largest;
        the chosen size is previewed again before it is sent."""
        decimals = view.engine.ledger.assets[self.debt_asset].decimals
        whole = view.preview_liquidation(borrower, asset, self.debt_asset, None)
        if whole is None or whole[0] <= 0 or whole[1] <= 0:
            return None
        cover = min(whole[0], capital)
        received_per_unit = float(whole[1]) / float(whole[0])
        debt_price = view.price(self.debt_asset)
        # A unit of collateral fetches the most in the smallest sale: if the smallest slice fails
        # the gate even without gas, every size fails.
        smallest = next((amount for halving in range(SLICE_HALVINGS, -1, -1)
                         if (amount := _down(cover / (2 ** halving), decimals)) > 0), None)
        if smallest is None or not passes_gate(float(smallest) * debt_price,
                                               market.quote(float(smallest) * received_per_unit)[0], self.min_margin):
            return None
        scored = []
        for halving in range(SLICE_HALVINGS + 1):
            amount = _down(cover / (2 ** halving), decimals)
            if amount <= 0:
                break
            proceeds, _ = market.quote(float(amount) * received_per_unit)
            cost = float(amount) * debt_price
            if passes_gate(cost, proceeds, self.min_margin, self.gas):
                scored.append((proceeds - cost - self.gas, -halving, amount))
        for profit, negative_halving, amount in sorted(scored, reverse=True):
            if negative_halving == 0 and amount == whole[0]:
                return profit, "max"
            preview = view.preview_liquidation(borrower, asset, self.debt_asset, amount)
            if preview is None or preview[0] > capital:
                continue  # e.g. Aave 3.3's MUST_NOT_LEAVE_DUST
            proceeds, _ = market.quote(float(preview[1]))
            cost = float(preview[0]) * debt_price
            if passes_gate(cost, proceeds, self.min_margin, self.gas):
                return proceeds - cost - self.gas, str(amount)
        return None

    # ---- Compound: absorb, then buy collateral at the store front

    def _decide_compound(self, view, markets, step, tried):
        """Absorb every liquidatable account it is ready for (one call, up to ``ABSORB_BATCH``
        accounts; the gas is assumed paid back through liquidator points, so no gate), then buy
        the protocol's collateral when the store-front discount passes the profit gate."""
        screen = view.screen
        venue = view.venue
        ready = []
        for index in sorted(screen.candidates(), key=lambda i: (-screen.debt[i], i)):
            account = screen.names[index]
            if self.ready(("absorb", account), step) and venue.is_liquidatable(account):
                ready.append(account)
                if len(ready) == ABSORB_BATCH:
                    break
        key = ("absorb", tuple(ready))
        if ready and key not in tried:
            return key, L.Absorb(view.name, self.name, tuple(ready))
        if venue.reserves >= venue.comet.target_reserves:
            return None  # the store front is closed (NotForSale)
        for gem in sorted(markets):
            held = venue.collateral_reserves.get(gem, 0)
            key = ("buy", gem)
            if held <= 0 or key in tried or not self.ready(key, step):
                continue
            choice = self._best_buy(view, markets[gem], gem, held)
            if choice is not None:
                base_units, bought = choice
                return key, L.BuyCollateral(view.name, self.name, gem,
                                            _units_text(base_units, view.decimals(venue.base)),
                                            _units_text(bought, view.decimals(gem)))
            tried.add(key)  # within a step the market only gets worse: no need to look again
        return None

    def _best_buy(self, view, market, gem, held) -> tuple[int, int] | None:
        """(base units paid, collateral units bought) of the most profitable store-front purchase
        that passes the gate: all the collateral the protocol holds (within capital), halved up to
        ``SLICE_HALVINGS`` times, each quoted with ``quoteCollateral``'s integers."""
        venue = view.venue
        comet, spec = venue.comet, venue.comet.assets[gem]
        base_price, asset_price = venue.price_units(venue.base), venue.price_units(gem)
        discounted = compound.discounted_price_units(asset_price, spec.liquidation_factor, comet.store_front_price_factor)
        # The base that buys everything held, rounded down (so the quote never exceeds it).
        for_all = held * discounted * comet.base_scale // (base_price * spec.scale)
        capital = int(view.balance(self.name, venue.base) * comet.base_scale)
        size = min(for_all, capital)
        best = None
        for _ in range(SLICE_HALVINGS + 1):
            if size <= 0:
                break
            bought = compound.quote_collateral_units(asset_price, base_price, spec.liquidation_factor,
                                                     comet.store_front_price_factor, size, spec.decimals,
                                                     comet.base_decimals)
            if 0 < bought <= held:
                proceeds, _ = market.quote(bought / spec.scale)
                cost = size / comet.base_scale * base_price / compound.PRICE_SCALE
                if passes_gate(cost, proceeds, self.min_margin, self.gas):
                    profit = proceeds - cost - self.gas
                    if best is None or profit > best[0]:
                        best = (profit, size, bought)
            size //= 2
        return None if best is None else (best[1], best[2])

    # ---- Euler and Morpho: liquidate at the protocol's incentive

    def _decide_liquidate(self, view, markets, step, tried):
        """The first position in violation, largest debt first, whose best liquidation passes
        the gate: Euler's discount (1 − health, capped) or Morpho's LIF must cover the slippage."""
        capital = view.balance(self.name, self.debt_asset)
        if capital <= 0:
            return None
        screen = view.screen
        values = screen.values()
        debt_price = view.price(self.debt_asset)
        best_sale: dict[str, float] = {}  # per collateral: what a unit fetches at most now, over the oracle
        for index in sorted(screen.candidates(), key=lambda i: (-screen.debt[i], i)):
            borrower, gem, market = screen.names[index], screen.gem[index], screen.market[index]
            key = ("liquidate", borrower, gem)
            if key in tried or gem not in markets or not self.ready(key, step):
                continue
            # Necessary for the gate: a unit repaid buys at most the incentive's worth of collateral
            # at the oracle, and a unit of collateral sells for at most the smallest sale's price.
            if gem not in best_sale:
                tiny = 1e-6
                best_sale[gem] = markets[gem].quote(tiny)[0] / tiny / view.price(gem)
            if self._incentive(view, index, market, values) * best_sale[gem] < debt_price * (1.0 + self.min_margin):
                tried.add(key)
                continue
            choice = self._best_liquidation(view, markets[gem], borrower, gem, market, capital)
            if choice is not None:
                return key, L.Liquidate(view.name, self.name, borrower, collateral_asset=gem, repay=choice,
                                        market=market)
            tried.add(key)
        return None

    @staticmethod
    def _incentive(view, index: int, market_id: str | None, values: np.ndarray) -> float:
        """Collateral value received per unit of debt repaid, from the screen (floats): Morpho's
        LIF; Euler's ``1/(1 − discount)`` with the discount ``1 − health`` capped at the vault's."""
        venue, screen = view.venue, view.screen
        if view.protocol == "morpho":
            return morpho.lif_units(venue.markets[market_id].lltv, venue.morpho) / 1e18
        vault = venue.vaults[screen.debt_asset].liquidation
        health = float(values[index]) * float(screen.factor[index]) / float(screen.debt[index])
        floor = 1.0 - vault.max_liquidation_discount / euler.CONFIG_SCALE
        return 1.0 / max(min(health, 1.0), floor)

    def _best_liquidation(self, view, market, borrower, gem, market_id, capital: Decimal) -> str | None:
        """The repay (text, ``"max"`` for the whole of what is allowed) of the most profitable
        liquidation that passes the gate: the most allowed within capital, halved up to
        ``SLICE_HALVINGS`` times; collateral per unit repaid is fixed by the incentive, so the
        sizes are scored from one preview of the largest and the chosen one previewed again."""
        debt_decimals = view.decimals(self.debt_asset)
        scale = 10**debt_decimals
        if view.protocol == "euler":
            whole = view.preview_euler(borrower, gem)
            if whole is None or whole[0] <= 0 or whole[1] <= 0:
                return None
            most, received = whole
        else:
            result = view.preview_morpho(borrower, market_id, None)
            if result is None or result.repaid <= 0:
                return None
            most, received = result.repaid, result.seized
        per_unit = received / most / 10 ** view.decimals(gem) * scale  # collateral per debt unit
        top = min(most, int(capital * scale))
        debt_price = view.price(self.debt_asset)
        scored = []
        for halving in range(SLICE_HALVINGS + 1):
            amount = top >> halving
            if amount <= 0:
                break
            proceeds, _ = market.quote(amount / scale * per_unit)
            cost = amount / scale * debt_price
            if passes_gate(cost, proceeds, self.min_margin, self.gas):
                scored.append((proceeds - cost - self.gas, -halving, amount))
        for profit, _, amount in sorted(scored, reverse=True):
            if amount == most:
                return "max"
            if view.protocol == "morpho":
                result = view.preview_morpho(borrower, market_id, amount)
                if result is None:
                    continue
                proceeds, _ = market.quote(result.seized / 10 ** view.decimals(gem))
                if not passes_gate(result.repaid / scale * debt_price, proceeds, self.min_margin, self.gas):
                    continue
            return _units_text(amount, debt_decimals)
        return None

    # ---- Liquity: liquidate troves for the gas compensation

    def _decide_liquity(self, view, markets, step, tried):
        """The liquidatable trove with the lowest ICR first (Liquity keeps troves sorted by ICR):
        the caller pays nothing and receives 200 LUSD and 0.5% of the collateral, so the gate is
        that this (the collateral sold into the market) covers the gas."""
        screen = view.screen
        tcr = screen.total_collateral_ratio()  # (brings the screen's rows up to date)
        if np.count_nonzero(screen.debt > 0) < 2:
            return None  # the last trove is never liquidated (TroveManager: Only one trove in the system)
        recovery = tcr < view.venue.rules.ccr / 1e18 * (1.0 + screen.MARGIN)
        candidates = screen.candidates(1.0 / tcr if recovery and tcr > 0 else None)
        if not candidates:
            return None
        values = screen.values()
        exact_tcr = None
        for index in sorted(candidates, key=lambda i: (values[i] / screen.debt[i], i)):
            borrower, gem = screen.names[index], screen.gem[index]
            key = ("trove", borrower)
            if key in tried or gem not in markets or not self.ready(key, step):
                continue
            if exact_tcr is None:
                exact_tcr = view.venue.tcr()
            result = view.preview_trove(borrower, exact_tcr)
            if result is None or not result.liquidated:
                tried.add(key)
                continue
            proceeds, _ = markets[gem].quote(result.gas_comp_coll / 1e18)
            proceeds += result.gas_comp_lusd / 1e18
            if passes_gate(0.0, proceeds, self.min_margin, self.gas):
                return key, L.LiquidateTrove(view.name, self.name, borrower)
            tried.add(key)
        return None

    # ---- selling what was bought

    def _after(self, events: list, view: LendingView, markets: dict[str, ExitMarket],
               apply: Callable[[c.Command], list]) -> None:
        for event in events:
            if event.kind == "auction_taken" and event.buyer == self.name:
                gem = self.auction_gems[event.auction_id]
                self.spent += Decimal(event.owe)
                self._sell(gem, Decimal(event.slice), view, markets, apply)
            elif event.kind == "liquidation_called" and event.liquidator == self.name:
                self.spent += Decimal(event.debt_repaid)
                self._sell(event.collateral_asset, Decimal(event.liquidator_received), view, markets, apply)
            elif event.kind == "collateral_bought" and event.buyer == self.name:
                self.spent += Decimal(event.base_paid)
                self._sell(event.asset, Decimal(event.collateral_received), view, markets, apply)
            elif event.kind == "liquidated" and event.liquidator == self.name:
                self.spent += Decimal(event.repaid)
                units = Decimal(event.seized)
                if view.protocol == "euler":  # the seized collateral arrives as vault shares: redeem them
                    redeemed = apply(L.WithdrawSupply(view.name, self.name, event.collateral_asset, "max"))
                    units = sum((Decimal(e.amount) for e in redeemed if e.kind == "supply_withdrawn"), Decimal(0))
                self._sell(event.collateral_asset, units, view, markets, apply)
            elif event.kind == "trove_liquidated" and event.liquidator == self.name:
                self._sell(view._venue_as(LiquityVenue).coll, Decimal(event.collateral_compensation), view, markets,
                           apply)

    def _sell(self, asset: str, units: Decimal, view: LendingView, markets: dict[str, ExitMarket],
              apply: Callable[[c.Command], list]) -> None:
        """Sell ``units`` of ``asset`` into its market, booked as a withdrawal of the collateral to
        the market and a deposit of the proceeds (in the debt asset)."""
        if units <= 0:
            return
        ledger = view.engine.ledger
        sold, proceeds, _ = markets[asset].sell(float(units))
        sold_units = min(units, _down(Decimal(repr(sold)), ledger.assets[asset].decimals))
        cash = _down(Decimal(repr(proceeds)) / Decimal(repr(view.price(self.debt_asset)))
                     if self.debt_asset in view.venue.prices else Decimal(repr(proceeds)),
                     min(ledger.assets[self.debt_asset].decimals, 12))
        if sold_units > 0:
            apply(c.Withdraw(self.name, asset, str(sold_units)))
        if cash > 0:
            apply(c.Deposit(self.name, self.debt_asset, str(cash)))
            self.recovered += cash


__all__ = [
    "AuctionSeen", "BorrowerBook", "BorrowerScreen", "ExitMarket", "LendingView", "Liquidator", "MarketMaker",
    "passes_gate",
    "quote_sell", "sample_borrowers",
]
