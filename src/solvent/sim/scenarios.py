"""Exogenous price paths for the cascade simulator: anchored bridges, GBM with jumps, shocks.

These are the simulator's outside world, before any forced sale moves a price, so they are
floats (the engine that consumes them stays exact). Every generator takes a
``numpy.random.Generator`` or anything ``numpy.random.default_rng`` accepts (an int seed, a
``SeedSequence``); nothing here touches global randomness, so one seed gives one path, bit for
bit.

A path for ``steps`` steps has ``steps + 1`` prices: index 0 is the start, index ``k`` the price
after ``k`` steps of ``step_seconds`` each. Volatilities are annualised over a 365-day year
(crypto trades around the clock), so one step's log-return standard deviation is
``volatility * sqrt(step_seconds / SECONDS_PER_YEAR)``.

Three kinds of path (reference/simulation.md §6, "Price paths"):

- :func:`scenario_paths` / :func:`bridge_path`: historical-shaped paths pinned to published
  anchor prices by Brownian bridges in log price, Gauntlet's method for hitting target levels
  without rejection sampling (reference §1.2, §3.3). The anchors ship as small TOML files in
  ``data/`` with a source for every number; no exchange data is shipped (reference §4).
- :func:`gbm_paths`: correlated geometric Brownian motion with Merton jumps (reference §1.6:
  crvUSDrisk's GBM plus flash-crash jumps).
- :func:`shock_path`: a single instantaneous move, the Block Analitica style one-shot shock
  (reference §1.4).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InvalidInput, UnknownName

SECONDS_PER_YEAR = 365 * 24 * 60 * 60
DATA_DIR = Path(__file__).parent / "data"

Anchors = tuple[tuple[int, float], ...]
RandomLike = Any  # np.random.Generator | int | np.random.SeedSequence | None


def step_sigma(volatility: float, step_seconds: float) -> float:
    """One step's log-return standard deviation for an annualised ``volatility``."""
    return float(volatility) * math.sqrt(step_seconds / SECONDS_PER_YEAR)


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """A historical-shaped scenario: anchor prices per asset, to be bridged into minute paths.

    ``assets`` maps each asset to its anchors ``((step, price), ...)`` in increasing step order;
    ``volatility`` is the annualised volatility of the bridge noise per asset; ``correlation`` is
    the correlation of the per-step shocks across assets (one shared normal component, see
    :func:`correlated_normals`). ``start`` is the UTC time of step 0 when the file gives one.
    """

    name: str
    title: str
    description: str
    sources: tuple[str, ...]
    step_seconds: int
    steps: int
    assets: dict[str, Anchors]
    volatility: dict[str, float]
    correlation: float
    start: datetime | None = None

    def __post_init__(self) -> None:
        if self.step_seconds <= 0:
            raise InvalidInput(f"scenario[{self.name}].step_seconds", "must be positive")
        if self.steps <= 0:
            raise InvalidInput(f"scenario[{self.name}].steps", "must be positive")
        if not 0.0 <= self.correlation <= 1.0:
            raise InvalidInput(f"scenario[{self.name}].correlation", "must be within [0, 1]")
        if not self.assets:
            raise InvalidInput(f"scenario[{self.name}].assets", "at least one asset is needed")
        for asset, anchors in self.assets.items():
            _check_anchors(anchors, self.steps, f"scenario[{self.name}].assets.{asset}")
            vol = self.volatility.get(asset)
            if vol is None or not vol > 0:
                raise InvalidInput(f"scenario[{self.name}].assets.{asset}.volatility", "must be positive")

    def widened(self, start: datetime, end: datetime) -> Scenario:
        """The same anchors over a wider window (e.g. the whole day around a crash): the path runs
        free before the first anchor and after the last, as it does inside the file's window."""
        if self.start is None:
            raise InvalidInput(f"scenario[{self.name}].start", "this scenario has no start time")
        shift = _step_of(self.start, start, self.step_seconds, "start")
        steps = _step_of(end, start, self.step_seconds, "end")
        if shift < 0 or steps < shift + self.steps:
            raise InvalidInput("end", f"{start}..{end} does not contain the scenario's window")
        assets = {asset: tuple((step + shift, price) for step, price in anchors) for asset, anchors in self.assets.items()}
        return replace(self, name=f"{self.name} ({start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M})", steps=steps,
                       assets=assets, start=start)

    def anchor_step(self, when: datetime) -> int:
        """The step index of a UTC time inside this scenario (needs ``start``)."""
        if self.start is None:
            raise InvalidInput(f"scenario[{self.name}].start", "this scenario has no start time")
        return _step_of(when, self.start, self.step_seconds, f"scenario[{self.name}]")


def list_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``data/`` (file stems), sorted."""
    return sorted(path.stem for path in DATA_DIR.glob("*.toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name (``"oct_10_2025"``) or any scenario TOML file by path.

    File layout: ``title``, ``description``, ``sources`` (list), ``step_seconds``, either
    ``start`` and ``end`` (UTC datetimes) or ``steps``, ``correlation``, and per asset
    ``[assets.<NAME>]`` with ``volatility`` and ``anchors``: a list of inline tables with
    ``price`` and either ``time`` (a UTC datetime, needs ``start``) or ``step``. Any other key
    (``source``, ``note``, ``basis``) documents the number and is ignored by the loader.
    """
    path = Path(name_or_path)
    if not path.is_file():
        path = DATA_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise UnknownName("scenario", str(name_or_path), list_scenarios())
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as error:
        raise InvalidInput("scenario", f"{path} is not a readable scenario file (TOML): {error}") from None
    return _scenario_from_data(path.stem, data)


def _scenario_from_data(name: str, data: Mapping[str, Any]) -> Scenario:
    where = f"scenario[{name}]"
    for key in ("title", "step_seconds", "assets"):
        if key not in data:
            raise InvalidInput(f"{where}.{key}", "missing")
    step_seconds = int(data["step_seconds"])
    start = data.get("start")
    if "steps" in data:
        steps = int(data["steps"])
    elif start is not None and "end" in data:
        steps = _step_of(data["end"], start, step_seconds, f"{where}.end")
    else:
        raise InvalidInput(f"{where}.steps", "give steps, or start and end")

    assets: dict[str, Anchors] = {}
    volatility: dict[str, float] = {}
    for asset, spec in data["assets"].items():
        anchors = []
        for i, anchor in enumerate(spec.get("anchors", [])):
            field = f"{where}.assets.{asset}.anchors[{i}]"
            if "step" in anchor:
                step = int(anchor["step"])
            elif "time" in anchor and start is not None:
                step = _step_of(anchor["time"], start, step_seconds, field)
            else:
                raise InvalidInput(field, "give step, or time with a scenario start")
            anchors.append((step, float(anchor["price"])))
        assets[asset] = tuple(anchors)
        volatility[asset] = float(spec.get("volatility", 0.0))

    return Scenario(
        name=name,
        title=str(data["title"]),
        description=str(data.get("description", "")).strip(),
        sources=tuple(str(source) for source in data.get("sources", ())),
        step_seconds=step_seconds,
        steps=steps,
        assets=assets,
        volatility=volatility,
        correlation=float(data.get("correlation", 0.0)),
        start=start,
    )


def _step_of(when: datetime, start: datetime, step_seconds: int, field: str) -> int:
    seconds = (when - start).total_seconds()
    if seconds % step_seconds:
        raise InvalidInput(field, f"{when} is not a whole number of {step_seconds} s steps after {start}")
    return int(seconds // step_seconds)


def _check_anchors(anchors: Anchors, steps: int, field: str) -> None:
    if not anchors:
        raise InvalidInput(field, "needs at least one anchor")
    previous = -1
    for step, price in anchors:
        if not 0 <= step <= steps:
            raise InvalidInput(field, f"anchor step {step} is outside 0..{steps}")
        if step <= previous:
            raise InvalidInput(field, "anchor steps must be strictly increasing")
        if not price > 0:
            raise InvalidInput(field, f"anchor price {price} must be positive")
        previous = step


# --------------------------------------------------------------------------- shocks


def correlated_normals(assets: int, steps: int, correlation: float, rng: RandomLike) -> np.ndarray:
    """Standard normal shocks of shape ``(assets, steps)`` with pairwise correlation ``correlation``.

    One-factor construction: ``z_i = sqrt(rho)·c + sqrt(1 − rho)·e_i`` with a shared component
    ``c`` and independent ``e_i``, which gives every pair the same correlation ``rho`` (so
    ``rho`` must lie in [0, 1]). Draw order: ``c`` first, then ``e`` for the assets in order.
    """
    if not 0.0 <= correlation <= 1.0:
        raise InvalidInput("correlation", "must be within [0, 1]")
    rng = np.random.default_rng(rng)
    common = rng.standard_normal(steps)
    own = rng.standard_normal((assets, steps))
    return math.sqrt(correlation) * common + math.sqrt(1.0 - correlation) * own


# --------------------------------------------------------------------------- bridges


def bridge_path(anchors: Sequence[tuple[int, float]], steps: int, volatility: float, step_seconds: int,
                rng: RandomLike) -> np.ndarray:
    """A price path of ``steps + 1`` points through every anchor (Brownian bridges in log price).

    See :func:`bridge_from_shocks`; this draws its own independent standard normal shocks.
    """
    shocks = np.random.default_rng(rng).standard_normal(steps)
    return bridge_from_shocks(anchors, step_sigma(volatility, step_seconds), shocks)


def bridge_from_shocks(anchors: Sequence[tuple[int, float]], sigma: float, shocks: np.ndarray) -> np.ndarray:
    """Pin a Brownian motion built from ``shocks`` to the anchors.

    With ``W`` the random walk of ``sigma``-scaled shocks (``W_0 = 0``), between consecutive
    anchors ``(a, A)`` and ``(b, B)`` the log price is
    ``log A + (t − a)/(b − a)·(log B − log A) + (W_t − W_a) − (t − a)/(b − a)·(W_b − W_a)``:
    a straight line in log price plus a Brownian bridge that is zero at both ends (reference
    §3.3, Gauntlet §1.2). Before the first anchor and after the last the walk runs free from
    that anchor. The anchors' own prices are written back exactly, so the path passes through
    every anchor bit for bit (``exp(log p)`` need not round-trip).
    """
    shocks = np.asarray(shocks, dtype=np.float64)
    steps = shocks.shape[0]
    anchors = tuple((int(step), float(price)) for step, price in anchors)
    _check_anchors(anchors, steps, "anchors")
    walk = np.concatenate(([0.0], np.cumsum(sigma * shocks)))
    t = np.arange(steps + 1)
    log_path = np.empty(steps + 1)

    first_step, first_price = anchors[0]
    log_path[: first_step + 1] = math.log(first_price) + walk[: first_step + 1] - walk[first_step]
    for (a, price_a), (b, price_b) in zip(anchors, anchors[1:]):
        span = t[a : b + 1]
        weight = (span - a) / (b - a)
        line = math.log(price_a) + weight * (math.log(price_b) - math.log(price_a))
        log_path[a : b + 1] = line + (walk[a : b + 1] - walk[a]) - weight * (walk[b] - walk[a])
    last_step, last_price = anchors[-1]
    log_path[last_step:] = math.log(last_price) + walk[last_step:] - walk[last_step]

    path = np.exp(log_path)
    for step, price in anchors:
        path[step] = price
    return path


def scenario_paths(scenario: Scenario, rng: RandomLike) -> dict[str, np.ndarray]:
    """One bridged path per asset of ``scenario``, with correlated shocks.

    The shocks come from :func:`correlated_normals` with the scenario's correlation, drawn for
    the assets in the order the scenario lists them; each asset's bridge noise uses its own
    volatility. Same scenario and seed, same paths.
    """
    names = list(scenario.assets)
    shocks = correlated_normals(len(names), scenario.steps, scenario.correlation, rng)
    return {
        name: bridge_from_shocks(scenario.assets[name], step_sigma(scenario.volatility[name], scenario.step_seconds),
                                 shocks[i])
        for i, name in enumerate(names)
    }


# --------------------------------------------------------------------------- GBM with jumps


def gbm_paths(s0: Mapping[str, float], mu: float | Mapping[str, float], sigma: Mapping[str, float],
              correlation: float, steps: int, step_seconds: int, rng: RandomLike, jump_intensity: float = 0.0,
              jump_mean: float | Mapping[str, float] = 0.0,
              jump_std: float | Mapping[str, float] = 0.0) -> dict[str, np.ndarray]:
    """Correlated geometric Brownian motion with Merton jumps, ``steps + 1`` prices per asset.

    Per step of length ``dt = step_seconds / SECONDS_PER_YEAR`` the log return of asset ``i`` is
    ``(mu_i − sigma_i²/2)·dt + sigma_i·sqrt(dt)·z_i + J_i`` with ``z`` from
    :func:`correlated_normals`. Jumps (Merton 1976): a market-wide count ``N ~ Poisson(
    jump_intensity·dt)`` per step (``jump_intensity`` in jumps per year, shared by all assets, since
    a flash crash hits every asset at once) and log jump sizes normal with ``jump_mean`` and
    ``jump_std`` per jump, so ``J_i = N·m_i + sqrt(N)·s_i·y_i`` with ``y`` correlated like ``z``.
    crvUSDrisk's flash-crash jumps are −4.3% (BTC) and −5.6% (ETH) adverse, −11.1% / −13.5%
    severe (reference §1.6).

    Jumps are not compensated: ``mu`` is the diffusion's drift and negative jumps pull the path
    down on top of it, which is what a stress scenario wants. The jump draws come after the
    diffusion draws and only when ``jump_intensity > 0``, so with the same seed a run with jumps
    has exactly the diffusion of the run without.
    """
    names = list(s0)
    if set(sigma) != set(names):
        raise InvalidInput("sigma", "needs one volatility per asset of s0")
    if steps <= 0 or step_seconds <= 0:
        raise InvalidInput("steps", "steps and step_seconds must be positive")
    if jump_intensity < 0:
        raise InvalidInput("jump_intensity", "must be non-negative")
    rng = np.random.default_rng(rng)
    dt = step_seconds / SECONDS_PER_YEAR

    def per_asset(value: float | Mapping[str, float], name: str) -> float:
        return float(value[name] if isinstance(value, Mapping) else value)

    z = correlated_normals(len(names), steps, correlation, rng)
    drift = np.array([(per_asset(mu, n) - 0.5 * sigma[n] ** 2) * dt for n in names])[:, None]
    vol = np.array([sigma[n] * math.sqrt(dt) for n in names])[:, None]
    log_returns = drift + vol * z
    if jump_intensity > 0:
        counts = rng.poisson(jump_intensity * dt, steps).astype(np.float64)
        sizes = correlated_normals(len(names), steps, correlation, rng)
        means = np.array([per_asset(jump_mean, n) for n in names])[:, None]
        stds = np.array([per_asset(jump_std, n) for n in names])[:, None]
        log_returns += counts * means + np.sqrt(counts) * stds * sizes

    paths = {}
    for i, name in enumerate(names):
        log_path = np.concatenate(([0.0], np.cumsum(log_returns[i])))
        paths[name] = float(s0[name]) * np.exp(log_path)
        paths[name][0] = float(s0[name])
    return paths


def shock_path(s0: float, shock: float, steps: int, at_step: int) -> np.ndarray:
    """A flat path that moves once by ``shock`` (a fraction, −0.3 for −30%) at ``at_step``.

    ``steps + 1`` prices: ``s0`` before ``at_step``, ``s0·(1 + shock)`` from ``at_step`` on.
    """
    if not shock > -1.0:
        raise InvalidInput("shock", "must be above −1 (a price cannot reach zero)")
    if not 0 <= at_step <= steps:
        raise InvalidInput("at_step", f"must be within 0..{steps}")
    path = np.full(steps + 1, float(s0))
    path[at_step:] = float(s0) * (1.0 + shock)
    return path
