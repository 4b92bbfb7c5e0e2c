"""An engine price-and-vol update on many option accounts: screened by the vectorized grid against
valuing every account, with the events compared (they must be identical). See docs/options-engine.md."""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

DAY = 86400
EXPIRIES = (7 * DAY, 30 * DAY, 90 * DAY)
STRIKES = (2400, 2700, 3000, 3300, 3600)


@dataclass(frozen=True)
class EngineUpdateResult:
    accounts: int
    positions: int
    setup_seconds: float
    screened_seconds: float
    every_account_seconds: float
    screened_candidates: int
    events: int
    events_identical: bool
    liquidations_started: int
    time_events_identical: bool  # a day later (AdvanceTime), screened and not
    load_average: float

    @property
    def speedup(self) -> float:
        return self.every_account_seconds / self.screened_seconds if self.screened_seconds else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup}


def _surface(spot: float, vol: float, timestamp: int):
    from ..engine.options import commands as oc

    feeds = tuple({"expiry": expiry, "forward": f"{spot:.2f}", "vol": f"{vol:.4f}", "rate": "0.03"}
                  for expiry in EXPIRIES)
    return oc.UpdateVolSurface("v", "ETH", f"{spot:.2f}", timestamp, feeds)


def build_engine(accounts: int, *, seed: int = 16, preset: str = "derive", screen_above: int | None = 256):
    """Pairs of accounts: each seller writes 1–4 options (straddles, strangles, puts) to its own buyer."""
    from ..engine import commands as c
    from ..engine.engine import CommandRejected, Engine
    from ..engine.options import commands as oc

    rng = random.Random(seed)
    engine = Engine(screen_above=screen_above)
    engine.apply(c.CreateVenue("v", preset))
    for expiry in EXPIRIES:
        for strike in STRIKES:
            for option in ("call", "put"):
                engine.apply(oc.CreateOptionMarket("v", f"ETH-{expiry // DAY}-{strike}-{option[0].upper()}", "ETH",
                                                   expiry, str(strike), option, size_decimals=2))
    engine.apply(_surface(3000.0, 0.6, 0))
    positions = 0
    for pair in range(accounts // 2):
        seller, buyer = f"s{pair}", f"b{pair}"
        cash = rng.choice([600, 900, 1500, 3000, 8000])
        for account, amount in ((seller, cash), (buyer, 100_000)):
            engine.apply(c.OpenAccount(account, "v"))
            engine.apply(c.Deposit(account, "USDC", str(amount)))
        expiry = rng.choice(EXPIRIES) // DAY
        for _ in range(rng.randint(1, 4)):
            symbol = f"ETH-{expiry}-{rng.choice(STRIKES)}-{rng.choice('CP')}"
            try:
                engine.apply(oc.ApplyOptionFill("v", symbol, buyer, seller, str(rng.choice([0.5, 1, 2])), "0"))
                positions += 1
            except CommandRejected:  # a fill the seller's margin refuses is part of the book's shape
                pass
    return engine, positions


def run_engine_update_benchmark(accounts: int = 2_000, *, seed: int = 16, preset: str = "derive",
                                spot_move: float = -0.08, vol_multiplier: float = 1.6) -> EngineUpdateResult:
    """Two engines built by the same commands; one update applied to each, screened and not."""
    from ..engine.options import options_venue

    started = time.perf_counter()
    screened_engine, positions = build_engine(accounts, seed=seed, preset=preset)
    setup = time.perf_counter() - started
    every_engine, _ = build_engine(accounts, seed=seed, preset=preset, screen_above=None)
    update = _surface(3000.0 * (1 + spot_move), 0.6 * vol_multiplier, 3600)
    t0 = time.perf_counter()
    screened_events = screened_engine.apply(update)
    t1 = time.perf_counter()
    every_events = every_engine.apply(update)
    t2 = time.perf_counter()
    from ..engine import commands as c

    later = c.AdvanceTime(3600 + DAY)
    time_identical = [event.to_dict() for event in screened_engine.apply(later)] == [
        event.to_dict() for event in every_engine.apply(later)]
    return EngineUpdateResult(
        accounts=accounts, positions=positions, setup_seconds=setup, screened_seconds=t1 - t0,
        every_account_seconds=t2 - t1, screened_candidates=options_venue(screened_engine, "v").last_screened,
        events=len(screened_events), events_identical=[event.to_dict() for event in screened_events] == [
            event.to_dict() for event in every_events],
        liquidations_started=sum(1 for event in screened_events if event.kind == "liquidation_started"),
        time_events_identical=time_identical, load_average=os.getloadavg()[0])
