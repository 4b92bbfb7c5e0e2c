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
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Callable, Iterable

import numpy as np

from ..core.errors import InvalidInput
from ..engine import CommandRejected
from ..engine import commands as c
from ..engine import lending as L
from ..policies.lending import ProtocolRevert, aave
from .market import ConstantProduct, Fill, L2Book, SqrtImpact, _average_exp

SLICE_HALVINGS = 10  # candidate sizes: the most allowed, then halved this many times

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

    def price(self, asset: str) -> float:
        return float(self.venue.prices[asset])

    def balance(self, account: str, asset: str) -> Decimal:
        return self.engine.balance(account, asset)

    # ---- Maker

    def vaults(self, ilk: str) -> Iterable[tuple[str, float, float]]:
        """(owner, ink, art) of every vault of ``ilk`` with debt, in collateral and DAI units."""
        for owner, (ink, art) in self.venue.urns[ilk].items():
            if art:
                yield owner, ink / 1e18, art / 1e18

    def auctions(self) -> list[AuctionSeen]:
        """Running auctions by id (cached while time and the auctions stay the same)."""
        key = (self.engine.timestamp, tuple((a.id, a.tab, a.lot, a.top, a.tic) for a in self.venue.auctions.values()))
        if self._auctions is not None and self._auctions[0] == key:
            return self._auctions[1]
        seen = []
        for state in sorted(self.venue.auctions.values(), key=lambda a: a.id):
            done, price = self.venue.status(state)
            gem = self.venue.gems[state.ilk]
            seen.append(AuctionSeen(state.id, state.ilk, state.owner, state.tab / 1e45, state.lot / 1e18,
                                    price / 1e27, _ray_text(price), str(self.engine.ledger.amount(gem, state.lot)),
                                    done))
        self._auctions = (key, seen)
        return seen

    def chost(self, ilk: str) -> float:
        """``dust·chop`` in DAI: the least tab a partial take may leave."""
        return self.venue.ilks[ilk].chost / 1e45

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
        config = self.venue.ilks[ilk]
        return config.tip / 1e45 + config.chip / 1e18 * tab

    def ilk_params(self, ilk: str) -> tuple[float, float]:
        """(mat, chop) of ``ilk``."""
        config = self.venue.ilks[ilk]
        return config.mat / 1e27, config.chop / 1e18

    # ---- Aave

    def borrowers(self, debt_asset: str) -> list[str]:
        return sorted(self.venue.reserves[debt_asset].debts)

    def position(self, account: str, collateral: str, debt_asset: str) -> tuple[Decimal, Decimal]:
        """(collateral supplied, debt) of ``account``, in token units."""
        supplies, debts = self.venue.balances(account)
        ledger = self.engine.ledger
        return (ledger.amount(collateral, supplies.get(collateral, 0)),
                ledger.amount(debt_asset, debts.get(debt_asset, 0)))

    def health_factor(self, account: str) -> Decimal | None:
        value = L.lending_account(self.engine, self.name, account)["health_factor"]
        return None if value is None else Decimal(value)

    def preview_liquidation(self, borrower: str, collateral: str, debt_asset: str,
                            cover: Decimal | None) -> tuple[Decimal, Decimal] | None:
        """(debt repaid, collateral the liquidator receives) of a ``LiquidationCall`` now, or None
        if it would revert. ``cover`` None asks for the most allowed."""
        venue = self.venue
        supplies, debts = venue.balances(borrower)
        try:
            account = venue.policy_account(borrower, supplies, debts,
                                           include=(("collateral", collateral), ("debt", debt_asset)))
            result = aave.liquidation_call(account, collateral, debt_asset, None if cover is None else str(cover),
                                           venue.config)
        except (ProtocolRevert, InvalidInput):
            return None
        ledger = self.engine.ledger
        received = result.collateral_seized - result.protocol_fee
        return ledger.amount(debt_asset, result.debt_repaid), ledger.amount(collateral, received)


# ============================================================================================
# Liquidators
# ============================================================================================


def passes_gate(cost: float, proceeds: float, min_margin: float, gas: float = 0.0) -> bool:
    """The profit gate: act only if ``proceeds − gas ≥ cost · (1 + min_margin)`` (and something
    is bought)."""
    return proceeds > 0 and proceeds - gas >= cost * (1.0 + min_margin)


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
        debt_price = view.price(self.debt_asset)
        reserves = {asset: view.venue.market.reserve(asset) for asset in markets}
        lt = {asset: reserve.liquidation_threshold_bps / 1e4 for asset, reserve in reserves.items()}
        # Necessary for the gate: repaying x buys at most x·LB of collateral at the oracle, sold at most at the mid.
        worth = {asset: reserve.liquidation_bonus_bps / 1e4 * markets[asset].mid() / view.price(asset)
                 >= 1.0 + self.min_margin for asset, reserve in reserves.items()}
        candidates = []
        for borrower in view.borrowers(self.debt_asset):
            for asset in markets:
                collateral, debt = view.position(borrower, asset, self.debt_asset)
                if collateral <= 0 or debt <= 0:
                    continue
                if lt[asset] * float(collateral) * view.price(asset) >= float(debt) * debt_price * 1.000001:
                    continue  # health factor at least 1 (one collateral; the engine checks the rest)
                key = ("call", borrower, asset)
                if self.ready(key, step) and worth[asset] and key not in tried:
                    candidates.append((-float(debt), borrower, asset, key))
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
    "AuctionSeen", "BorrowerBook", "ExitMarket", "LendingView", "Liquidator", "MarketMaker", "passes_gate",
    "quote_sell", "sample_borrowers",
]
