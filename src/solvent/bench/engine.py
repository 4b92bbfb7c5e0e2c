"""Benchmark of the engine on a big book: price updates with the screen against valuing every
holder exactly (the baseline, measured in the same run on the same commands)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal

import numpy as np

from ..engine import Engine
from ..engine import commands as c


@dataclass(frozen=True)
class EngineBenchmark:
    accounts: int
    updates: int
    isolated: float  # share of the accounts holding their position in isolated margin
    exact_seconds_per_update: float
    screened_seconds_per_update: float
    speedup: float
    first_screened_update_seconds: float  # includes building the columnar copy
    liquidations: int
    same_events: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _book(engine: Engine, accounts: int, seed: int, isolated: float = 0.0) -> None:
    """Traders with one BTCUSDT position each; a share ``isolated`` of them in isolated margin,
    at the leverage their deposit carries (2× to 50×)."""
    rng = np.random.default_rng(seed)
    engine.apply(c.CreateVenue("v", "binance"))
    engine.apply(c.Deposit("v/book", "USDT", "10000000000"))
    engine.apply(c.FundInsurance("USDT", "10000000", venue="v"))
    engine.apply(c.OpenAccount("maker", "v"))
    engine.apply(c.Deposit("maker", "USDT", "10000000000"))
    engine.apply(c.UpdateOracle("v", {"BTCUSDT": "60000"}, 1))
    for index in range(accounts):
        name = f"a{index}"
        engine.apply(c.OpenAccount(name, "v"))
        deposit = int(rng.integers(100, 5000))
        engine.apply(c.Deposit(name, "USDT", str(deposit)))
        size = Decimal(int(rng.integers(1, 300))) / 1000
        long = rng.random() < 0.5
        buyer, seller = (name, "maker") if long else ("maker", name)
        extra = {}
        if rng.random() < isolated:
            role = "buyer" if long else "seller"
            leverage = min(50, max(2, int(size * 60000 / deposit) + 1))
            size = min(size, (Decimal(deposit) * leverage / 60000 * Decimal("0.9")).quantize(Decimal("0.001")))
            extra = {f"{role}_margin_mode": "isolated", f"{role}_leverage": str(leverage)}
        engine.apply(c.ApplyFill("v", "BTCUSDT", buyer, seller, str(size), "60000", **extra))


def run_engine_benchmark(accounts: int = 20_000, updates: int = 20, seed: int = 3,
                         progress: Callable[[str], None] | None = None, isolated: float = 0.0) -> EngineBenchmark:
    say = progress or (lambda message: None)
    rng = np.random.default_rng(seed + 1)
    path = [Decimal(60000)]
    for _ in range(updates):  # a drifting, mostly calm path with a few sharp moves
        move = float(rng.normal(-0.0005, 0.004))
        path.append((path[-1] * Decimal(str(round(float(np.exp(move)), 6)))).quantize(Decimal("0.1")))
    results = {}
    for label, screen_above in (("exact", None), ("screened", 0)):
        say(f"building {accounts:,} accounts ({label})")
        engine = Engine(screen_above=screen_above)
        _book(engine, accounts, seed, isolated)
        timings, events = [], []
        for step, price in enumerate(path[1:]):
            began = time.perf_counter()
            events.append([event.to_dict() for event in engine.apply(c.UpdateOracle("v", {"BTCUSDT": str(price)},
                                                                                       2 + step))])
            timings.append(time.perf_counter() - began)
        results[label] = (timings, events)
    exact, screened = results["exact"], results["screened"]
    exact_mean = sum(exact[0]) / len(exact[0])
    screened_mean = sum(screened[0][1:]) / max(len(screened[0]) - 1, 1)
    liquidations = sum(event["kind"] == "liquidation_started" for step in exact[1] for event in step)
    return EngineBenchmark(accounts, updates, isolated, exact_mean, screened_mean, exact_mean / screened_mean,
                           screened[0][0], liquidations, exact[1] == screened[1])
