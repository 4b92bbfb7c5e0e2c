"""Property-based tests: conservation of the exact ledger, and the shape of liquidation prices.

- A stateful test drives a ledger with a linear USDT market and an inverse BTC-settled market
  through deposits, withdrawals, trades (opening, partial closes, closes, flips, isolated and
  cross, hedge legs) and isolated-margin moves; conservation must hold after every step and a
  rejected operation must change nothing.
- Liquidation prices under the binance / hyperliquid / bybit presets: monotone in leverage, on the
  right side of the entry, equal in cross and isolated for one position, beyond the bankruptcy
  price.
- Tiered margin built from random brackets: continuous at every floor, non-decreasing.
"""

from __future__ import annotations

import copy
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from solvent.core.domain import Asset, ContractKind, MarginMode, Market, PositionMode, Side
from solvent.core.errors import InsufficientFunds, InvalidInput, SolventError
from solvent.core.ledger import Ledger
from solvent.policies.liquidation_price import position_liquidation_price
from solvent.policies.margin import TieredMargin
from solvent.presets import load_preset

# ============================================================================================
# Conservation: a stateful test over the exact ledger
# ============================================================================================

ACCOUNTS = ("alice", "bob", "carol", "hedger")  # "hedger" is in hedge mode
ASSETS = {"USDT": 6, "BTC": 8}
LINEAR = Market("BTCUSDT", "BTC", "USDT", "USDT", ContractKind.LINEAR, size_decimals=3)
INVERSE = Market("BTCUSD", "BTC", "USD", "BTC", ContractKind.INVERSE, size_decimals=0, contract_size=D(10))
MARKETS = {LINEAR.symbol: LINEAR, INVERSE.symbol: INVERSE}


def snapshot(ledger: Ledger):
    """Everything an operation may touch, deep-copied for before/after comparison."""
    return copy.deepcopy((ledger.accounts, ledger.pools, ledger.net_deposits))


def amounts(decimals: int, max_units: int) -> st.SearchStrategy[D]:
    """An amount that is a whole number of units of an asset with ``decimals`` decimals."""
    return st.integers(1, max_units).map(lambda units: D(units).scaleb(-decimals))


account_ids = st.sampled_from(ACCOUNTS)
asset_symbols = st.sampled_from(sorted(ASSETS))
market_symbols = st.sampled_from(sorted(MARKETS))
modes = st.sampled_from([MarginMode.CROSS, MarginMode.CROSS, MarginMode.ISOLATED])
# Prices: linear around 1..200k with cents; inverse quoted to 0.5.
prices = st.integers(100, 20_000_000).map(lambda cents: D(cents).scaleb(-2))
fees = st.one_of(st.just(D(0)), st.integers(0, 10**9).map(lambda n: D(n).scaleb(-9)))


class LedgerConservation(RuleBasedStateMachine):
    """Random operations on a two-asset, two-market ledger; value is conserved throughout."""

    @initialize()
    def setup(self) -> None:
        self.ledger = Ledger()
        for symbol, decimals in ASSETS.items():
            self.ledger.add_asset(Asset(symbol, decimals))
        for market in MARKETS.values():
            self.ledger.add_market(market)
        for account in ACCOUNTS:
            mode = PositionMode.HEDGE if account == "hedger" else PositionMode.ONE_WAY
            self.ledger.open_account(account, mode)
        # A first deposit of every asset. Without it, withdrawing a balance that came only from
        # realized PnL hits the KeyError bug shown by
        # test_withdrawing_pnl_of_an_asset_never_deposited_changes_nothing below.
        self.ledger.open_account("bank")
        for symbol in ASSETS:
            self.ledger.deposit("bank", symbol, "1")
        self.rejected = 0

    # ------------------------------------------------------------------ helpers

    def attempt(self, operation, *allowed: type[Exception]):
        """Run an operation; if it raises one of ``allowed``, the ledger must be unchanged."""
        before = snapshot(self.ledger)
        try:
            return operation()
        except allowed:
            self.rejected += 1
            assert snapshot(self.ledger) == before, "a rejected operation changed the ledger"
            return None

    # ------------------------------------------------------------------ rules

    @rule(account=account_ids, asset=asset_symbols, data=st.data())
    def deposit(self, account, asset, data) -> None:
        amount = data.draw(amounts(ASSETS[asset], 10**16))
        before = self.ledger.accounts[account].balance(asset)
        units = self.ledger.deposit(account, asset, amount)
        assert units == int(amount.scaleb(ASSETS[asset]))
        assert self.ledger.accounts[account].balance(asset) == before + units

    @rule(account=account_ids, asset=asset_symbols, data=st.data())
    def withdraw(self, account, asset, data) -> None:
        held = self.ledger.accounts[account].balance(asset)
        # Sometimes exactly the balance, sometimes more than it, sometimes a random amount.
        units = data.draw(st.one_of(
            st.just(max(held, 1)),
            st.just(max(held, 0) + 1),
            st.integers(1, 10**16),
        ))
        amount = D(units).scaleb(-ASSETS[asset])
        if units > held:
            before = snapshot(self.ledger)
            with pytest.raises(InsufficientFunds):
                self.ledger.withdraw(account, asset, amount)
            assert snapshot(self.ledger) == before
            self.rejected += 1
        else:
            self.ledger.withdraw(account, asset, amount)
            assert self.ledger.accounts[account].balance(asset) == held - units

    @rule(
        buyer=account_ids,
        seller=account_ids,
        market=market_symbols,
        lots=st.one_of(st.integers(1, 50), st.integers(1, 200_000)),
        price=prices,
        buyer_fee=fees,
        seller_fee=fees,
        buyer_mode=modes,
        seller_mode=modes,
        data=st.data(),
    )
    def trade(self, buyer, seller, market, lots, price, buyer_fee, seller_fee, buyer_mode, seller_mode, data) -> None:
        spec = MARKETS[market]
        held = self._held(buyer, market, None)
        # Often trade exactly the buyer's short to close it, or twice it to flip it.
        lots = data.draw(st.sampled_from([lots, max(-held, 1), max(-2 * held, 1), max(-held // 2, 1)]))
        size = spec.size_of(lots)
        if spec.kind is ContractKind.INVERSE:
            price = (price * 2).to_integral_value() / 2 or D("0.5")
        buyer_side = data.draw(st.sampled_from([Side.LONG, Side.SHORT])) if buyer == "hedger" else None
        seller_side = data.draw(st.sampled_from([Side.LONG, Side.SHORT])) if seller == "hedger" else None
        oi_before = self._open_interest(market)
        result = self.attempt(
            lambda: self.ledger.apply_trade(
                buyer, seller, market, size, price,
                buyer_fee=buyer_fee, seller_fee=seller_fee,
                buyer_mode=buyer_mode, seller_mode=seller_mode,
                buyer_hedge_side=buyer_side, seller_hedge_side=seller_side,
            ),
            InvalidInput,
        )
        if buyer == seller:
            assert result is None
        if result is not None:
            bought, sold = result
            assert bought.lots == lots and sold.lots == -lots
            assert bought.notional == sold.notional
            assert self._open_interest(market) == oi_before

    @rule(account=account_ids, market=market_symbols, data=st.data())
    def move_isolated_margin(self, account, market, data) -> None:
        settle = MARKETS[market].settle
        decimals = ASSETS[settle]
        hedge_side = data.draw(st.sampled_from([Side.LONG, Side.SHORT])) if account == "hedger" else None
        position = self.ledger.accounts[account].positions.get((market, hedge_side))
        held_margin = position.isolated_margin if position is not None else 0
        units = data.draw(st.one_of(
            st.integers(1, 10**14),
            st.integers(-10**14, -1),
            st.just(-max(held_margin, 1)),  # take it all back out
        ))
        amount = D(units).scaleb(-decimals)
        balance_before = self.ledger.accounts[account].balance(settle)
        moved = self.attempt(
            lambda: self.ledger.move_isolated_margin(account, market, amount, hedge_side),
            InvalidInput, InsufficientFunds,
        )
        if moved is not None:
            assert moved == units
            assert self.ledger.accounts[account].balance(settle) == balance_before - units
            assert self.ledger.accounts[account].positions[(market, hedge_side)].isolated_margin == held_margin + units

    @rule(account=account_ids, asset=asset_symbols,
          amount=st.sampled_from(["0", "-1", "NaN", "1e-9", "0.0000000001", "abc"]))
    def rejected_deposit(self, account, asset, amount) -> None:
        before = snapshot(self.ledger)
        with pytest.raises(InvalidInput) as error:
            self.ledger.deposit(account, asset, amount)
        assert error.value.field == "amount"
        assert snapshot(self.ledger) == before

    # ------------------------------------------------------------------ invariants

    @invariant()
    def value_is_conserved(self) -> None:
        report = self.ledger.conservation()
        assert report.holds, report.describe()

    @invariant()
    def cost_bases_are_sane(self) -> None:
        for account in self.ledger.accounts.values():
            for position in account.positions.values():
                assert position.cost >= 0
                if position.lots == 0:
                    assert position.cost == 0
                if position.hedge_side is not None and position.lots:
                    assert position.side is position.hedge_side

    # ------------------------------------------------------------------ state helpers

    def _held(self, account: str, market: str, hedge_side: Side | None) -> int:
        position = self.ledger.accounts[account].positions.get((market, hedge_side))
        return position.lots if position else 0

    def _open_interest(self, market: str) -> int:
        return sum(p.lots for a in self.ledger.accounts.values() for p in a.positions.values() if p.market == market)


LedgerConservation.TestCase.settings = settings(
    max_examples=250, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedgerConservation = LedgerConservation.TestCase


def test_conservation_through_open_partial_close_flip_and_close():
    """A deterministic walk through the cases the stateful test draws at random."""
    ledger = Ledger()
    for symbol, decimals in ASSETS.items():
        ledger.add_asset(Asset(symbol, decimals))
    for market in MARKETS.values():
        ledger.add_market(market)
    for account in ("a", "b"):
        ledger.open_account(account)
        ledger.deposit(account, "USDT", "100000")
        ledger.deposit(account, "BTC", "10")
    steps = [
        ("a", "b", "BTCUSDT", "1.5", "60000.01", MarginMode.CROSS),  # open
        ("b", "a", "BTCUSDT", "0.7", "61234.57", MarginMode.CROSS),  # partial close
        ("b", "a", "BTCUSDT", "2.0", "59999.99", MarginMode.CROSS),  # flip a to short
        ("a", "b", "BTCUSDT", "1.2", "58000", MarginMode.CROSS),  # close to zero
        ("a", "b", "BTCUSD", "333", "60000.5", MarginMode.ISOLATED),  # inverse, isolated
        ("b", "a", "BTCUSD", "111", "65000", MarginMode.ISOLATED),
        ("b", "a", "BTCUSD", "500", "55000.5", MarginMode.ISOLATED),  # flip
        ("a", "b", "BTCUSD", "278", "57777", MarginMode.ISOLATED),  # close: margin back to wallet
    ]
    for buyer, seller, market, size, price, mode in steps:
        ledger.apply_trade(buyer, seller, market, size, price, buyer_fee="0.12345678", seller_fee="1",
                           buyer_mode=mode, seller_mode=mode)
        report = ledger.conservation()
        assert report.holds, report.describe()
    for account in ledger.accounts.values():
        assert all(p.lots == 0 and p.cost == 0 and p.isolated_margin == 0 for p in account.positions.values())
    assert ledger.pools["fee_pool"]["USDT"] > 0 and ledger.pools["fee_pool"]["BTC"] > 0


def test_withdrawing_pnl_of_an_asset_never_deposited_changes_nothing():
    ledger = Ledger()
    ledger.add_asset(Asset("USDT", 6))
    ledger.add_market(LINEAR)
    ledger.open_account("a")
    ledger.open_account("b")
    ledger.apply_trade("a", "b", "BTCUSDT", "0.001", "1.01")  # b short at 1.01
    ledger.apply_trade("b", "a", "BTCUSDT", "0.001", "1.00")  # b closes at 1.00: +0.00001 USDT
    assert ledger.accounts["b"].balance("USDT") == 10
    before = snapshot(ledger)
    try:
        ledger.withdraw("b", "USDT", "0.00001")
    except SolventError:
        assert snapshot(ledger) == before
    finally:
        report = ledger.conservation()
        assert report.holds, report.describe()


# ============================================================================================
# Liquidation prices under the presets
# ============================================================================================

# (preset, market): linear and inverse markets of the presets named in the brief.
VENUE_MARKETS = [
    ("binance", "BTCUSDT"),
    ("hyperliquid", "BTC"),
    ("hyperliquid", "DOGE"),
    ("bybit", "BTCUSDT"),
    ("bybit", "BTCUSD"),  # inverse, BTC-settled
]
NO_FEE_PRESETS = [("binance", "BTCUSDT"), ("hyperliquid", "BTC"), ("hyperliquid", "ETH")]

sides = st.sampled_from([Side.LONG, Side.SHORT])
# Entry prices 0.01 .. 1e6 with cents; sizes by lots; leverage 1.0 .. 200.0.
entry_prices = st.integers(1, 10**8).map(lambda cents: D(cents).scaleb(-2))
leverages = st.integers(10, 2000).map(lambda tenths: D(tenths).scaleb(-1))
lot_counts = st.integers(1, 10**7)

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _venue(preset_name: str, market: str):
    preset = load_preset(preset_name)
    return preset, preset.markets[market], preset.margin_model(market)


def _value(spec, quantity: D, price: D) -> D:
    return quantity * price if spec.kind is ContractKind.LINEAR else quantity / price


def _isolated(preset, spec, model, side, size, entry, leverage, *, bankruptcy=False) -> D | None:
    """LP of an isolated position given its leverage: margin = entry value / leverage."""
    margin = _value(spec, size * spec.contract_size, entry) / leverage
    return position_liquidation_price(
        kind=spec.kind, margin_mode=MarginMode.ISOLATED, side=side, size=size, entry_price=entry,
        margin_model=model, rule=preset.liquidation_price_rule, contract_size=spec.contract_size,
        isolated_margin=margin, leverage=leverage, bankruptcy=bankruptcy,
    )


def _as_price(value: D | None, side: Side) -> D:
    """None means no positive price reaches the threshold: never for a long (0), never for a short (∞)."""
    if value is None:
        return D(0) if side is Side.LONG else D("Infinity")
    return value


@pytest.mark.parametrize("preset_name,market", VENUE_MARKETS)
@FAST
@given(side=sides, lots=lot_counts, entry=entry_prices, low=leverages, high=leverages)
def test_liquidation_price_moves_toward_entry_as_leverage_rises(preset_name, market, side, lots, entry, low, high):
    preset, spec, model = _venue(preset_name, market)
    low, high = sorted((low, high))
    size = spec.size_of(lots)
    calm = _as_price(_isolated(preset, spec, model, side, size, entry, low), side)
    tight = _as_price(_isolated(preset, spec, model, side, size, entry, high), side)
    if side is Side.LONG:
        assert tight >= calm, f"long: LP {tight} at {high}x below LP {calm} at {low}x"
    else:
        assert tight <= calm, f"short: LP {tight} at {high}x above LP {calm} at {low}x"


@pytest.mark.parametrize("preset_name,market", VENUE_MARKETS)
@FAST
@given(side=sides, lots=lot_counts, entry=entry_prices, leverage=leverages)
def test_liquidation_price_is_on_the_losing_side_of_entry(preset_name, market, side, lots, entry, leverage):
    preset, spec, model = _venue(preset_name, market)
    size = spec.size_of(lots)
    quantity = size * spec.contract_size
    notional = _value(spec, quantity, entry)
    margin = notional / leverage
    assume(margin > model.maintenance_margin(notional, size))  # starts above maintenance
    price = _as_price(_isolated(preset, spec, model, side, size, entry, leverage), side)
    if side is Side.LONG:
        assert price < entry
    else:
        assert price > entry


@pytest.mark.parametrize("preset_name,market", NO_FEE_PRESETS)
@FAST
@given(side=sides, lots=lot_counts, entry=entry_prices, leverage=leverages,
       mark_move=st.integers(-30, 30))
def test_cross_equals_isolated_for_a_single_position(preset_name, market, side, lots, entry, leverage, mark_move):
    preset, spec, model = _venue(preset_name, market)
    assert preset.liquidation_price_rule.fee_to_close is False
    size = spec.size_of(lots)
    collateral = _value(spec, size * spec.contract_size, entry) / leverage
    mark = entry * (100 + mark_move) / 100
    common = dict(kind=spec.kind, side=side, size=size, entry_price=entry, margin_model=model,
                  rule=preset.liquidation_price_rule, contract_size=spec.contract_size,
                  fee_rate=preset.fee_rate("taker"), mark_price=mark)
    for bankruptcy in (False, True):
        cross = position_liquidation_price(margin_mode=MarginMode.CROSS, wallet_balance=collateral,
                                           bankruptcy=bankruptcy, **common)
        isolated = position_liquidation_price(margin_mode=MarginMode.ISOLATED, isolated_margin=collateral,
                                              bankruptcy=bankruptcy, **common)
        assert cross == isolated


@pytest.mark.parametrize("preset_name,market", VENUE_MARKETS)
@pytest.mark.parametrize("margin_mode", [MarginMode.ISOLATED, MarginMode.CROSS])
@FAST
@given(side=sides, lots=lot_counts, entry=entry_prices, leverage=leverages)
def test_bankruptcy_price_is_beyond_liquidation_price(preset_name, market, margin_mode, side, lots, entry, leverage):
    preset, spec, model = _venue(preset_name, market)
    size = spec.size_of(lots)
    collateral = _value(spec, size * spec.contract_size, entry) / leverage
    common = dict(kind=spec.kind, margin_mode=margin_mode, side=side, size=size, entry_price=entry,
                  margin_model=model, rule=preset.liquidation_price_rule, contract_size=spec.contract_size,
                  leverage=leverage, fee_rate=preset.fee_rate("taker"))
    if margin_mode is MarginMode.ISOLATED:
        common["isolated_margin"] = collateral
    else:
        common["wallet_balance"] = collateral
    liquidation = _as_price(position_liquidation_price(**common), side)
    bankruptcy = _as_price(position_liquidation_price(**common, bankruptcy=True), side)
    # A venue whose formula rounds the maintenance margin down to a unit (Hyperliquid: USDC's 1e-6)
    # may put a dust position's liquidation price past its bankruptcy price by that unit's worth:
    # at most unit / quantity / (1 − MMR) in price (the margin it rounds off, over the size).
    unit = preset.liquidation_price_rule.maintenance_unit
    rate = model.maintenance_line(_value(spec, size * spec.contract_size, entry), size)[0]
    slack = D(0) if unit is None or spec.kind is not ContractKind.LINEAR else unit / (size * spec.contract_size) / (1 - rate)
    if side is Side.LONG:
        assert bankruptcy <= liquidation + slack
    else:
        assert bankruptcy >= liquidation - slack


def test_liquidation_prices_known_values():
    """Anchors for the properties above: 3 BTC at 60,000, 10x isolated (margin 18,000)."""
    preset, spec, model = _venue("binance", "BTCUSDT")
    # Binance: M + Q·(LP − E) = Q·LP·MMR − cum; the notional at LP (~163k) is in the 50k bracket
    # (MMR 0.5%, cum 50): long LP = (3·60000 − 18000 − 50)/(3·0.995)
    long_lp = _isolated(preset, spec, model, Side.LONG, D(3), D(60000), D(10))
    assert long_lp == (D(180000) - D(18000) - D(50)) / (D(3) * D("0.995"))
    assert _isolated(preset, spec, model, Side.LONG, D(3), D(60000), D(10), bankruptcy=True) == D(54000)
    preset, spec, model = _venue("bybit", "BTCUSDT")
    # Bybit: LP = EP − (IM − MM)/Q with MM at entry: 60000 − (18000 − 900)/3
    assert _isolated(preset, spec, model, Side.LONG, D(3), D(60000), D(10)) == D(54300)


# ============================================================================================
# Tiered margin from random brackets
# ============================================================================================


@st.composite
def bracket_tables(draw):
    count = draw(st.integers(1, 8))
    steps = draw(st.lists(st.integers(1, 10**9), min_size=count - 1, max_size=count - 1))
    floors = [D(0)]
    for step in steps:
        floors.append(floors[-1] + D(step).scaleb(-2))
    # Strictly increasing rates in (0, 1], in steps of 0.0001.
    rate_points = sorted(draw(st.lists(st.integers(1, 10_000), min_size=count, max_size=count, unique=True)))
    rates = [D(point).scaleb(-4) for point in rate_points]
    return floors, rates


@FAST
@given(table=bracket_tables(), probes=st.lists(st.integers(0, 10**12), min_size=2, max_size=30))
def test_tiered_margin_is_continuous_and_non_decreasing(table, probes):
    floors, rates = table
    model = TieredMargin.from_rows([{"floor": str(f), "mmr": str(r)} for f, r in zip(floors, rates)])
    tiers = model.tiers
    assert [t.floor for t in tiers] == floors and [t.maintenance_rate for t in tiers] == rates
    for index in range(1, len(tiers)):
        floor = tiers[index].floor
        previous = tiers[index - 1]
        left = floor * previous.maintenance_rate - previous.deduction  # the lower bracket's line at its end
        right = model.maintenance_margin(floor)  # the upper bracket applies at its floor
        assert model.tier_index(floor) == index
        assert left == right, f"MM jumps at floor {floor}: {left} -> {right}"
        # Just below the floor the lower bracket applies and the value approaches the same limit.
        below = floor - D("1e-6")
        assert model.tier_index(below) == index - 1
        assert abs(model.maintenance_margin(below) - right) <= D("1e-6") * previous.maintenance_rate + D("1e-20")
    notionals = sorted({D(p).scaleb(-2) for p in probes} | set(floors))
    values = [model.maintenance_margin(n) for n in notionals]
    assert all(a <= b for a, b in zip(values, values[1:])), list(zip(notionals, values))
    assert model.maintenance_margin(D(0)) == 0
