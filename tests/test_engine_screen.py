"""The engine's screened path gives the same events as valuing every holder exactly."""

from decimal import Decimal

import numpy as np
import pytest

from solvent.engine import Engine
from solvent.engine import commands as c

VENUES = {"binance": ("BTCUSDT", "USDT"), "hyperliquid": ("BTC", "USDC"), "dydx_v4": ("BTC-USD", "USDC"),
          "drift_v2": ("SOL-PERP", "USDC"), "gmx_v2": ("ETH/USD", "USDC")}


def command_stream(preset: str, seed: int, accounts: int = 60, steps: int = 40):
    market, settle = VENUES[preset]
    rng = np.random.default_rng(seed)
    price = Decimal(100)
    yield c.CreateVenue("v", preset)
    yield c.FundInsurance(settle, str(rng.integers(0, 3) * 5000), venue="v")
    yield c.Deposit("v/book", settle, "100000000")
    yield c.Deposit("v/liquidator", settle, "10000000")
    yield c.OpenAccount("mm", "v")
    yield c.Deposit("mm", settle, "10000000")
    yield c.UpdateOracle("v", {market: str(price)}, 1)
    for index in range(accounts):
        name = f"a{index}"
        yield c.OpenAccount(name, "v")
        yield c.Deposit(name, settle, str(int(rng.integers(50, 2000))))
        size = Decimal(int(rng.integers(1, 400))) / 10
        buyer, seller = (name, "mm") if rng.random() < 0.6 else ("mm", name)
        yield c.ApplyFill("v", market, buyer, seller, str(size), str(price))
    timestamp = 1
    for step in range(steps):
        timestamp += int(rng.integers(1, 20))
        price = max(Decimal(1), (price * Decimal(str(round(float(np.exp(rng.normal(-0.004, 0.02))), 4)))).quantize(
            Decimal("0.01")))
        if rng.random() < 0.2:
            yield c.AdvanceTime(timestamp, seed=int(rng.integers(0, 1000)))
        yield c.UpdateOracle("v", {market: str(price)}, timestamp)


def same_outcome(exact: Engine, screened: Engine, command):
    """Apply ``command`` to both engines; their events (or refusals) must be identical."""
    outcomes = []
    for engine in (exact, screened):
        try:
            outcomes.append([event.to_dict() for event in engine.apply(command)])
        except Exception as error:
            outcomes.append(("rejected", type(error).__name__, str(error)))
    assert outcomes[0] == outcomes[1], command
    return outcomes[0]


@pytest.mark.parametrize("preset", sorted(VENUES))
@pytest.mark.parametrize("seed", [1, 2])
def test_screened_engine_gives_the_same_events(preset, seed):
    exact, screened = Engine(screen_above=None), Engine(screen_above=0)
    liquidations = 0
    for command in command_stream(preset, seed):
        outcome = same_outcome(exact, screened, command)
        if isinstance(outcome, list):
            liquidations += sum(event["kind"] == "liquidation_started" for event in outcome)
    assert screened.conservation().holds
    assert liquidations > 0  # the stream does exercise the pipeline
    assert screened._screen is not None and screened._screen.rebuilds >= 1


def test_a_ledger_too_big_for_the_columns_falls_back_to_the_exact_path():
    engine = Engine(screen_above=0)
    engine.apply(c.CreateVenue("v", "binance"))
    engine.apply(c.Deposit("v/book", "USDT", "1000000000000"))  # 1e20 units: beyond int64
    engine.apply(c.OpenAccount("t", "v"))
    engine.apply(c.OpenAccount("mm", "v"))
    engine.apply(c.Deposit("t", "USDT", "1000"))
    engine.apply(c.Deposit("mm", "USDT", "1000000"))
    engine.apply(c.UpdateOracle("v", {"BTCUSDT": "60000"}, 1))
    engine.apply(c.ApplyFill("v", "BTCUSDT", "t", "mm", "0.5", "60000"))
    events = engine.apply(c.UpdateOracle("v", {"BTCUSDT": "58100"}, 2))
    assert "position_liquidated" in [event.kind for event in events]
    assert engine.conservation().holds


def bulk_book_stream(seed: int, accounts: int = 300, steps: int = 60):
    """Two markets opened in bulk (OpenPositions), some rows at risk from the start, then a walk."""
    rng = np.random.default_rng(seed)
    prices = {"BTC": Decimal(60000), "ETH": Decimal(3000)}
    yield c.CreateVenue("v", "hyperliquid")
    yield c.Deposit("v/book", "USDC", "100000000")
    yield c.Deposit("v/liquidator", "USDC", "10000000")
    yield c.OpenAccount("mm", "v")
    yield c.Deposit("mm", "USDC", "100000000")
    yield c.UpdateOracle("v", {symbol: str(price) for symbol, price in prices.items()}, 1)
    for batch, (symbol, decimals) in enumerate((("BTC", 5), ("ETH", 4), ("BTC", 5))):
        names = tuple(f"{symbol}{batch}_{index}" for index in range(accounts))
        units = rng.integers(10 ** (decimals - 2), 10 ** decimals, accounts) * np.where(rng.random(accounts) < 0.6, 1, -1)
        sizes = tuple(str(Decimal(int(u)).scaleb(-decimals)) for u in units)
        leverage = rng.uniform(2, 24, accounts)  # the riskiest rows start near or past a margin call
        deposits = tuple(str((abs(Decimal(size)) * prices[symbol] / Decimal(str(round(float(lev), 2)))).quantize(
            Decimal("0.01"))) for size, lev in zip(sizes, leverage))
        yield c.OpenPositions("v", symbol, "mm", names, deposits, sizes, tuple(str(prices[symbol]) for _ in names))
    timestamp = 1
    for step in range(steps):
        timestamp += 10
        for symbol in prices:
            move = Decimal(str(round(float(np.exp(rng.normal(-0.003, 0.012))), 4)))
            prices[symbol] = (prices[symbol] * move).quantize(Decimal("0.1"))
        yield c.AdvanceTime(timestamp, seed=step)
        yield c.UpdateOracle("v", {symbol: str(price) for symbol, price in prices.items()}, timestamp)


@pytest.mark.parametrize("seed", [3, 4])
def test_a_book_opened_in_bulk_is_screened_from_its_opening(seed):
    """OpenPositions on a screened book enters its accounts into the screen's index in bulk; the
    first price update then finds them there (no rebuild) and every event is the exact path's."""
    exact, screened = Engine(screen_above=None), Engine(screen_above=100)
    liquidations = margin_calls = 0
    for command in bulk_book_stream(seed):
        outcome = same_outcome(exact, screened, command)
        if isinstance(command, c.OpenPositions):
            assert screened._screen is not None and screened._screen.index is not None
            assert not set(command.accounts) & screened.ledger.touched
        kinds = [event["kind"] for event in outcome]
        liquidations += kinds.count("liquidation_started")
        margin_calls += kinds.count("margin_call_issued")
    assert liquidations > 20 and margin_calls > liquidations
    assert screened._screen.rebuilds == 1  # built at the first OpenPositions, never again
    assert screened.conservation().holds
