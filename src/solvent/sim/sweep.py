"""Monte Carlo paths, parameter sweeps and venue comparisons, on an executor of your choice.

Every path gets its own seed, spawned from the base seed with ``numpy.random.SeedSequence``
by its index, so a sweep gives the same numbers in-process, on a local process pool of any
size, or on a Ray cluster (reference: simulation.md §5; radCAD maps the same way).

Executors:

- ``inline``: in this process (tests, debugging);
- ``local`` (default): a ``concurrent.futures`` process pool, one worker per core unless told;
- ``ray``: Ray tasks, on a cluster given by ``address`` or a local Ray (``pip install 'solvent[ray]'``).
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..core.errors import InvalidInput
from ..core.numbers import non_negative
from .metrics import RunMetrics, summarize
from .run import SimConfig, run

CONFIG_FIELDS = {"insurance_fund", "depth_scale", "accounts", "oracle_lag_steps", "backstop_capital", "liquidators",
                 "liquidator_capital", "liquidator_latency_steps"}


def path_seeds(seed: int, paths: int) -> list[int]:
    """One seed per path, from the base seed and the path's index only."""
    if paths <= 0:
        raise InvalidInput("paths", "must be positive")
    if seed < 0:
        raise InvalidInput("seed", "must not be negative")
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(paths)]


#: The run settings a lending run takes (sim.lending_run.LendingSimConfig), by their SimConfig name.
LENDING_FIELDS = {"accounts", "depth_scale", "oracle_lag_steps"}


@functools.lru_cache(maxsize=64)
def _family(preset: str) -> str:
    """``lending`` or ``perpetual``: which simulator runs a preset."""
    from ..presets import load_preset

    return "lending" if load_preset(preset).data.get("kind") == "lending" else "perpetual"


def _run_metrics(config: SimConfig) -> RunMetrics:
    if _family(config.preset) == "lending":
        from .lending_run import LendingSimConfig, run_lending

        if config.book is not None or config.prices is not None:
            raise InvalidInput("book", f"{config.preset}: books and candles are for perpetual presets so far")
        return run_lending(LendingSimConfig(
            scenario=config.scenario, preset=config.preset, borrowers=config.accounts, seed=config.seed,
            depth_scale=config.depth_scale, feedback=config.feedback, oracle_lag_steps=config.oracle_lag_steps,
            overrides=config.overrides)).metrics
    return run(config).metrics


def unused_settings(base: SimConfig, names: Iterable[str], presets: Sequence[str]) -> list[str]:
    """Why a swept run setting would change nothing on these presets (one sentence each)."""
    from ..presets import load_preset

    said = []
    for preset in presets:
        for name in names:
            if _family(preset) == "lending" and name in CONFIG_FIELDS and name not in LENDING_FIELDS:
                said.append(f"{name} is not a setting of lending runs ({preset} is a lending preset): it changes "
                            f"nothing (lending runs take {', '.join(sorted(LENDING_FIELDS))} and preset paths)")
            elif name == "insurance_fund" and _family(preset) == "perpetual":
                layers = load_preset(preset).section("waterfall").get("layers", [])
                if "insurance" not in layers:
                    said.append(f"insurance_fund changes nothing on {preset}: its loss waterfall is "
                                f"{' → '.join(layers) or 'empty'}, with no insurance fund "
                                "(sweep backstop_capital for its vault, or choose a preset with one)")
    return said


Progress = Callable[[int, int], None]  # (tasks done, tasks) as results come in


class InlineExecutor:
    name = "inline"

    def map(self, function: Callable, tasks: Sequence, progress: Progress | None = None) -> list:
        results = []
        for task in tasks:
            results.append(function(task))
            if progress is not None:
                progress(len(results), len(tasks))
        return results


class LocalExecutor:
    """A process pool; results come back in task order whatever the number of workers."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1

    def map(self, function: Callable, tasks: Sequence, progress: Progress | None = None) -> list:
        if self.workers == 1 or len(tasks) == 1:
            return InlineExecutor().map(function, tasks, progress)
        results: list = [None] * len(tasks)
        pool = ProcessPoolExecutor(max_workers=self.workers)
        try:
            pending = {pool.submit(function, task): index for index, task in enumerate(tasks)}
            for done, future in enumerate(as_completed(pending), start=1):
                results[pending[future]] = future.result()  # a worker's SolventError is raised here, as itself
                if progress is not None:
                    progress(done, len(tasks))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the first error ends the map: no queued run starts
            raise
        pool.shutdown(wait=True)
        return results


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InvalidInput("executor", "Ray is not installed: pip install 'solvent[ray]' "
                               "(or choose --executor local)") from None
        self.address = address

    def map(self, function: Callable, tasks: Sequence, progress: Progress | None = None) -> list:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        remote = ray.remote(function)
        refs = [remote.remote(task) for task in tasks]
        waiting = list(refs)
        while waiting:
            _, waiting = ray.wait(waiting, num_returns=1)
            if progress is not None:
                progress(len(refs) - len(waiting), len(refs))
        return ray.get(refs)


def executor_for(name: str, workers: int | None = None, address: str | None = None):
    if name == "inline":
        return InlineExecutor()
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address)
    raise InvalidInput("executor", f"expected inline, local or ray, got {name!r}")


def monte_carlo(config: SimConfig, paths: int, executor=None, progress: Progress | None = None) -> list[RunMetrics]:
    """``paths`` runs of one configuration, each with its own spawned seed."""
    tasks = [replace(config, seed=seed) for seed in path_seeds(config.seed, paths)]
    return (executor or LocalExecutor()).map(_run_metrics, tasks, progress)


@dataclass(frozen=True)
class GridPoint:
    parameters: tuple[tuple[str, str], ...]
    summary: dict[str, dict[str, float | None]]
    runs: tuple[RunMetrics, ...]


def parse_grid(specs: Iterable[str]) -> dict[str, list[str]]:
    """``NAME=V1,V2,...`` → {NAME: [V1, V2, ...]}; NAME is a run setting (insurance_fund,
    depth_scale, accounts, oracle_lag_steps, backstop_capital, liquidators, liquidator_capital,
    liquidator_latency_steps) or a dotted preset path
    (``execution.fee``, ``execution.partial_fraction``, ``waterfall.adl_rule``, ...)."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        name, separator, values = spec.partition("=")
        name = name.strip()
        if not separator or not name or not values.strip():
            raise InvalidInput("param", f"expected NAME=V1,V2,... got {spec!r}")
        if name not in CONFIG_FIELDS and "." not in name:
            raise InvalidInput("param", f"{name!r} is neither a run setting ({', '.join(sorted(CONFIG_FIELDS))}) "
                               "nor a dotted preset path such as execution.fee")
        grid[name] = [value.strip() for value in values.split(",") if value.strip()]
    return grid


def _configure(base: SimConfig, parameters: dict[str, str]) -> SimConfig:
    settings: dict[str, Any] = {}
    overrides = list(base.overrides)
    for name, value in parameters.items():
        if name in CONFIG_FIELDS:
            kind = type(getattr(base, name))
            if kind is str:  # an amount of money (insurance_fund, backstop_capital, liquidator_capital)
                non_negative(value, f"param.{name}")  # refused here, not in a worker
                settings[name] = value
                continue
            try:
                settings[name] = kind(value)
            except ValueError:
                raise InvalidInput(f"param.{name}", f"{value!r} is not a {kind.__name__}") from None
        else:
            overrides.append((name, value))
    return replace(base, overrides=tuple(overrides), **settings)


def sweep(base: SimConfig, grid: dict[str, list[str]], paths: int, executor=None,
          progress: Progress | None = None) -> list[GridPoint]:
    """Every combination of the grid, ``paths`` Monte Carlo runs each (the same seeds for every
    combination, so differences come from the parameters, not the draws)."""
    names = list(grid)
    for name in names:
        if _family(base.preset) == "lending" and name in CONFIG_FIELDS and name not in LENDING_FIELDS:
            raise InvalidInput(f"param.{name}", unused_settings(base, [name], [base.preset])[0])
    combinations = list(itertools.product(*(grid[name] for name in names))) or [()]
    configs = [_configure(base, dict(zip(names, values))) for values in combinations]
    seeds = path_seeds(base.seed, paths)
    tasks = [replace(config, seed=seed) for config in configs for seed in seeds]
    results = (executor or LocalExecutor()).map(_run_metrics, tasks, progress)
    points = []
    for index, values in enumerate(combinations):
        runs = tuple(results[index * paths:(index + 1) * paths])
        points.append(GridPoint(tuple(zip(names, values)), summarize(list(runs)), runs))
    return points


def compare(base: SimConfig, presets: Sequence[str], paths: int, executor=None,
            progress: Progress | None = None) -> dict[str, GridPoint]:
    """The same scenario, book and seeds under each preset."""
    if not presets:
        raise InvalidInput("presets", "name at least one preset")
    seeds = path_seeds(base.seed, paths)
    tasks = [replace(base, preset=preset, seed=seed) for preset in presets for seed in seeds]
    results = (executor or LocalExecutor()).map(_run_metrics, tasks, progress)
    table = {}
    for index, preset in enumerate(presets):
        runs = tuple(results[index * paths:(index + 1) * paths])
        table[preset] = GridPoint((("preset", preset),), summarize(list(runs)), runs)
    return table
