"""Benchmark of the simulator: account-steps per second of the default scenario, and a Monte
Carlo sweep timed on one worker and on every core (the baseline, in the same run)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Callable

from ..sim.run import SimConfig, run
from ..sim.sweep import LocalExecutor, monte_carlo


@dataclass(frozen=True)
class SimulateBenchmark:
    accounts: int
    steps: int
    run_seconds: float
    account_steps_per_second: float
    paths: int
    workers: int
    sweep_seconds_one_worker: float
    sweep_seconds_all_workers: float
    speedup: float
    projected_1000_paths_seconds: float  # extrapolated from the measured sweep, all workers

    def as_dict(self) -> dict:
        return asdict(self)


def run_simulate_benchmark(accounts: int = 20_000, paths: int = 4, workers: int | None = None,
                           progress: Callable[[str], None] | None = None) -> SimulateBenchmark:
    say = progress or (lambda message: None)
    workers = workers or os.cpu_count() or 1
    config = SimConfig(accounts=accounts)
    say(f"one run of {config.scenario} with {accounts:,} accounts")
    began = time.perf_counter()
    result = run(config)
    run_seconds = time.perf_counter() - began
    steps = len(next(iter(result.simulated.values())))
    say(f"{paths} paths on 1 worker")
    began = time.perf_counter()
    single = monte_carlo(config, paths, LocalExecutor(1))
    one = time.perf_counter() - began
    say(f"{paths} paths on {workers} workers")
    began = time.perf_counter()
    pooled = monte_carlo(config, paths, LocalExecutor(workers))
    many = time.perf_counter() - began
    assert single == pooled, "the executor changed the results"
    return SimulateBenchmark(accounts, steps, run_seconds, accounts * steps / run_seconds, paths, workers, one, many,
                             one / many, many / paths * 1000)
