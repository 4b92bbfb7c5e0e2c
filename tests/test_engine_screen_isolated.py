"""The screened engine on a book mixing cross and isolated accounts gives the same events as
valuing every holder exactly (``Engine(screen_above=None)``).

Single-position pools, a cross pool with one position or an isolated position, go through the
threshold index (an isolated one under the convention of the venue listing its market: Bybit
values its maintenance at the entry price); cross pools with several positions go through the
vectorized screen, which this test forces into use by lowering the number of multi-position
accounts valued exactly. The slow walk below steps the price finely enough to land between the
liquidation price under one maintenance convention and under the other.
"""

from decimal import Decimal

import numpy as np
import pytest

from solvent.engine import Engine, screen
from solvent.engine import commands as c
from test_engine_screen import same_outcome

# preset → (settle, [(market, first price, lot)]): one or two markets in the same settle asset.
VENUES = {
    "binance": ("USDT", [("BTCUSDT", "60000", "0.001"), ("ZECUSDT", "50", "0.001")]),
    "bybit": ("USDT", [("BTCUSDT", "60000", "0.001")]),
    "hyperliquid": ("USDC", [("BTC", "60000", "0.00001"), ("ETH", "3000", "0.0001")]),
    "drift_v2": ("USDC", [("SOL-PERP", "150", "0.01")]),
    "gmx_v2": ("USDC", [("ETH/USD", "2000", "0.000001")]),
}


def command_stream(preset: str, seed: int, accounts: int = 90, steps: int = 40):
    settle, markets = VENUES[preset]
    rng = np.random.default_rng(seed)
    prices = {market: Decimal(price) for market, price, _ in markets}
    lots = {market: Decimal(lot) for market, _, lot in markets}
    yield c.CreateVenue("v", preset)
    yield c.FundInsurance(settle, str(rng.integers(0, 3) * 5000), venue="v")
    yield c.Deposit("v/book", settle, "100000000")
    yield c.Deposit("v/liquidator", settle, "10000000")
    yield c.OpenAccount("mm", "v")
    yield c.Deposit("mm", settle, "100000000")
    yield c.UpdateOracle("v", {market: str(price) for market, price in prices.items()}, 1)
    isolated_accounts = []
    for index in range(accounts):
        name = f"a{index}"
        yield c.OpenAccount(name, "v")
        yield c.Deposit(name, settle, str(int(rng.integers(300, 4000))))
        kind = rng.choice(["cross", "isolated", "both", "two"] if len(markets) > 1 else ["cross", "isolated", "both"])
        chosen = [markets[0][0]] if kind != "two" else [market for market, _, _ in markets]
        if kind == "both" and len(markets) > 1:
            chosen = [markets[0][0], markets[1][0]]
        for number, market in enumerate(chosen):
            notional = Decimal(int(rng.integers(200, 20000)))
            size = max(lots[market], (notional / prices[market]).quantize(lots[market]))
            long = rng.random() < 0.6
            buyer, seller = (name, "mm") if long else ("mm", name)
            role = "buyer" if long else "seller"
            isolated = kind == "isolated" or (kind == "both" and number == 0)
            extra = {}
            if isolated:
                extra = {f"{role}_margin_mode": "isolated",
                         f"{role}_leverage": str(int(rng.choice([2, 5, 10, 20])))}
                isolated_accounts.append((name, market, long, size))
            yield c.ApplyFill("v", market, buyer, seller, str(size), str(prices[market]), **extra)
    timestamp = 1
    for step in range(steps):
        timestamp += int(rng.integers(1, 20))
        moved = {}
        for market in prices:
            if rng.random() < 0.8:
                factor = Decimal(str(round(float(np.exp(rng.normal(-0.005, 0.025))), 4)))
                prices[market] = max(Decimal(1), (prices[market] * factor).quantize(Decimal("0.01")))
                moved[market] = str(prices[market])
        if rng.random() < 0.2:
            yield c.AdvanceTime(timestamp, seed=int(rng.integers(0, 1000)))
        if moved:
            yield c.UpdateOracle("v", moved, timestamp)
        if isolated_accounts and rng.random() < 0.3:  # margin in or out (may be refused: alike in both)
            name, market, _, _ = isolated_accounts[int(rng.integers(0, len(isolated_accounts)))]
            amount = int(rng.integers(-200, 400)) or 1
            yield c.AdjustIsolatedMargin("v", name, market, str(amount))
        if isolated_accounts and rng.random() < 0.15:  # an isolated position closed by its holder
            name, market, long, size = isolated_accounts.pop(int(rng.integers(0, len(isolated_accounts))))
            buyer, seller = ("mm", name) if long else (name, "mm")
            role = "seller" if long else "buyer"
            yield c.ApplyFill("v", market, buyer, seller, str(size), str(prices[market]),
                              **{f"{role}_margin_mode": "isolated"})


@pytest.mark.parametrize("preset", sorted(VENUES))
@pytest.mark.parametrize("seed", [1, 2])
def test_screened_engine_gives_the_same_events_on_a_mixed_book(preset, seed, monkeypatch):
    monkeypatch.setattr(screen, "EXACT_COMPLEX_UP_TO", 3)  # the vectorized screen takes the multi-position ones
    exact, screened = Engine(screen_above=None), Engine(screen_above=0)
    liquidations = isolated_liquidations = 0
    for command in command_stream(preset, seed):
        isolated_before = {(account, market.split("/", 1)[1])
                           for account in screened.isolated_accounts
                           for (market, _), position in screened.ledger.accounts[account].positions.items()
                           if position.lots and position.margin_mode.value == "isolated"}
        outcome = same_outcome(exact, screened, command)
        if isinstance(outcome, list):
            assert "liquidation_failed" not in [event["kind"] for event in outcome], outcome
            for event in outcome:
                if event["kind"] == "position_liquidated":
                    liquidations += 1
                    isolated_liquidations += (event["account"], event["market"]) in isolated_before
        assert screened.conservation().holds
    assert liquidations > 0 and isolated_liquidations > 0  # the stream does exercise both pipelines
    assert screened._screen is not None and screened._screen.rebuilds >= 1
    assert screened.isolated_accounts == exact.isolated_accounts


@pytest.mark.parametrize("preset", ["binance", "bybit", "hyperliquid"])
def test_isolated_pools_are_screened_under_their_venues_convention_on_a_slow_walk(preset):
    settle, markets = VENUES[preset]
    market, first, _ = markets[0]
    rng = np.random.default_rng(7)
    exact, screened = Engine(screen_above=None), Engine(screen_above=0)
    commands = [c.CreateVenue("v", preset), c.FundInsurance(settle, "1000000", venue="v"),
                c.Deposit("v/book", settle, "100000000"), c.Deposit("v/liquidator", settle, "10000000"),
                c.OpenAccount("mm", "v"), c.Deposit("mm", settle, "100000000"),
                c.UpdateOracle("v", {market: first}, 1)]
    for index in range(40):
        name = f"i{index}"
        long = index % 2 == 0
        buyer, seller = (name, "mm") if long else ("mm", name)
        role = "buyer" if long else "seller"
        leverage = int(rng.choice([5, 8, 10, 15, 20, 25]))
        commands += [c.OpenAccount(name, "v"), c.Deposit(name, settle, "100000"),
                     c.ApplyFill("v", market, buyer, seller, str(Decimal("0.1") + Decimal(index) / 100), first,
                                 **{f"{role}_margin_mode": "isolated", f"{role}_leverage": str(leverage)})]
    price, timestamp = Decimal(first), 1
    for factor in [Decimal("0.9995")] * 300 + [Decimal("1.0005")] * 600:  # down about 14%, then up
        price = (price * factor).quantize(Decimal("0.1"))
        timestamp += 1
        commands.append(c.UpdateOracle("v", {market: str(price)}, timestamp))
    liquidated = 0
    for command in commands:
        outcome = same_outcome(exact, screened, command)
        if isinstance(outcome, list):
            liquidated += sum(event["kind"] == "position_liquidated" for event in outcome)
    assert liquidated >= 20  # most of the book went through the isolated pipeline
    assert screened._screen is not None and not screened._screen.always
