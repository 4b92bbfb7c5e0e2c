"""Price paths from the user's world: OHLCV candles from a file, and generated paths named on the command line.

**Candles** (:func:`load_prices`): ccxt's OHLCV columns ``timestamp`` (milliseconds since the epoch,
UTC), ``open, high, low, close, volume`` and a ``symbol`` column (one file for every symbol), or one
file per symbol (``{"BTC": "btc.csv"}``), CSV, Parquet or JSON. Any candle length; resampled to the
run's step (open of the first, highest high, lowest low, close of the last candle in each step; a
step with no candle repeats the previous close). The closes are the exogenous path, exactly: step
``k`` of the run is the close of candle ``k``.

**Wicks**: inside each step (after the first) the venue also sees the candle's two extremes before
its close, in the order a candle most plausibly traced them: a falling candle (close below open)
went up first, then down (open → high → low → close), a rising one the other way (open → low →
high → close). So a long can be liquidated by a low the close never shows, and a short by a high.
Every extreme is moved by the cascade's impact as the close is. Anything that happened inside a
candle beyond its open, high, low and close is unknown and not invented.

**Generated paths** (:func:`generated_scenario`), as ``--scenario`` text:

- ``gbm:BTC=60000,ETH=3000,sigma=0.8,jump_intensity=50,jump_mean=-0.05,jump_std=0.02,steps=1440``:
  correlated GBM with Merton jumps (:func:`~solvent.sim.scenarios.gbm_paths`);
- ``shock:BTC=60000,shock=-0.3,at_step=10,steps=120``: a single instantaneous move
  (:func:`~solvent.sim.scenarios.shock_path`).

Design and formats: docs/your-data.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InvalidInput
from .scenarios import gbm_paths, load_scenario, scenario_paths, shock_path
from .tables import Columns, Problems, read_columns

OHLC = ("open", "high", "low", "close")
QUOTE_SUFFIXES = ("-PERP", "-USD", "USDT", "USDC", "USD", "PERP")


def asset_of_symbol(symbol: str) -> str:
    """The base asset a price file's symbol names: ``BTC/USDT:USDT``, ``BTCUSDT``, ``BTC-PERP``, ``BTC`` → ``BTC``."""
    text = symbol.strip().upper()
    if "/" in text:
        return text.split("/", 1)[0]
    for suffix in QUOTE_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)]
    return text


@dataclass(frozen=True, eq=False)
class PriceHistory:
    """Candles per asset on one time grid of ``step_seconds`` from ``start_ms``; index ``k`` is step ``k``."""

    source: str
    step_seconds: int
    start_ms: int
    open: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    low: dict[str, np.ndarray]
    close: dict[str, np.ndarray]

    def __repr__(self) -> str:
        return (f"PriceHistory({self.source!r}, {', '.join(self.close)}, {self.steps:,} steps of "
                f"{self.step_seconds} s from {self.start:%Y-%m-%d %H:%M})")

    __str__ = __repr__

    # the face of a Scenario the simulator reads
    @property
    def name(self) -> str:
        return self.source

    @property
    def assets(self) -> list[str]:
        return list(self.close)

    @property
    def steps(self) -> int:
        return len(next(iter(self.close.values())))

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, tz=UTC)

    def paths(self, rng: Any = None) -> dict[str, np.ndarray]:
        """The closes, as they are (no draw)."""
        return {asset: close.copy() for asset, close in self.close.items()}

    def intrabar(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The first and the second extreme each step's candle reached before its close (see the module)."""
        first, second = {}, {}
        for asset in self.close:
            falling = self.close[asset] < self.open[asset]
            first[asset] = np.where(falling, self.high[asset], self.low[asset])
            second[asset] = np.where(falling, self.low[asset], self.high[asset])
        return first, second

    def resampled(self, step_seconds: int) -> PriceHistory:
        """The same candles on a coarser grid (a whole multiple of this one's step)."""
        if step_seconds == self.step_seconds:
            return self
        if step_seconds <= 0 or step_seconds % self.step_seconds:
            raise InvalidInput("step", f"{step_seconds} s is not a whole multiple of the candles' {self.step_seconds} s")
        factor = step_seconds // self.step_seconds
        bins = -(-self.steps // factor)
        starts = np.arange(bins) * factor
        ends = np.minimum(starts + factor, self.steps) - 1
        return PriceHistory(
            self.source, step_seconds, self.start_ms,
            {a: v[starts] for a, v in self.open.items()},
            {a: np.maximum.reduceat(v, starts) for a, v in self.high.items()},
            {a: np.minimum.reduceat(v, starts) for a, v in self.low.items()},
            {a: v[ends] for a, v in self.close.items()})


def load_prices(files: Mapping[str, str | Path] | str | Path, step_seconds: int | None = None) -> PriceHistory:
    """Candles from one file with a ``symbol`` column, or ``{asset: file}``; on a grid of
    ``step_seconds`` (default: the candles' own step)."""
    if isinstance(files, (str, Path)):
        columns = read_columns(Path(files), "prices")
        name = Path(files).name
        per_asset = _split_by_symbol(columns, name)
    else:
        per_asset = {}
        for asset, path in files.items():
            columns = read_columns(Path(path), f"prices[{asset}]")
            per_asset[asset.upper()] = (Path(path).name, columns, list(range(1, len(columns.get("close", [])) + 1)))
        name = ",".join(f"{asset}={Path(path).name}" for asset, path in files.items())
    if not per_asset:
        raise InvalidInput("prices", "no candles")
    candles = {asset: _candles(source, columns, rows) for asset, (source, columns, rows) in per_asset.items()}
    steps = {int(np.min(np.diff(times))) if len(times) > 1 else 0 for times, _ in candles.values()}
    native = min(step for step in steps if step > 0) if any(steps) else 60_000
    if any(step % native for step in steps if step):
        raise InvalidInput("prices.timestamp", "the symbols' candles are not on one grid")
    start = max(times[0] for times, _ in candles.values())
    end = min(times[-1] for times, _ in candles.values())
    if end < start:
        raise InvalidInput("prices.timestamp", "the symbols' candles do not overlap in time")
    grid = np.arange(start, end + 1, native, dtype=np.int64)
    series: dict[str, dict[str, np.ndarray]] = {field: {} for field in OHLC}
    for asset, (times, values) in candles.items():
        # Each grid time takes the last candle at or before it; a gap repeats the previous close flat.
        at = np.searchsorted(times, grid, side="right") - 1
        exact = times[at] == grid
        close = values["close"][at]
        for field in OHLC:
            series[field][asset] = np.where(exact, values[field][at], close)
    if native % 1000:
        raise InvalidInput("prices.timestamp", f"candles every {native} ms: a step must be whole seconds")
    history = PriceHistory(name, native // 1000, int(start), series["open"], series["high"], series["low"],
                           series["close"])
    if history.steps < 2:
        raise InvalidInput("prices", "at least two candles are needed")
    return history.resampled(step_seconds) if step_seconds else history


def _split_by_symbol(columns: Columns, source: str) -> dict[str, tuple[str, Columns, list[int]]]:
    if "symbol" not in columns:
        raise InvalidInput(f"{source}.columns", "no symbol column: add one, or give one file per symbol as BTC=btc.csv")
    groups: dict[str, list[int]] = {}
    for index, symbol in enumerate(columns["symbol"]):
        if not symbol:
            raise InvalidInput(f"{source}[row {index + 1}].symbol", "missing")
        groups.setdefault(asset_of_symbol(symbol), []).append(index)
    return {asset: (source, {name: [values[i] for i in rows] for name, values in columns.items()},
                    [i + 1 for i in rows]) for asset, rows in groups.items()}


def _candles(source: str, columns: Columns, rows: list[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One symbol's candles, validated (every bad value named by row and column) and sorted by time."""
    missing = [name for name in ("timestamp", *OHLC) if name not in columns]
    if missing:
        raise InvalidInput(f"{source}.columns", f"missing {', '.join(missing)} (has: {', '.join(columns)})")
    problems = Problems(source)
    count = len(columns["timestamp"])
    times = np.zeros(count, dtype=np.int64)
    values = {field: np.zeros(count) for field in OHLC}
    for index in range(count):
        row = rows[index] if index < len(rows) else index + 1
        text = columns["timestamp"][index]
        try:
            times[index] = int(float(text)) if "." in text or "e" in text.lower() else int(text)
        except ValueError:
            problems.add(row, "timestamp", f"{text!r} is not milliseconds since the epoch")
        for field in OHLC:
            cell = columns[field][index]
            try:
                value = float(cell)
            except ValueError:
                value = float("nan")
            if not value > 0 or value == float("inf"):
                problems.add(row, field, f"{cell!r} is not a positive price")
            values[field][index] = value
        low, high = values["low"][index], values["high"][index]
        if low > high or not low <= min(values["open"][index], values["close"][index]) \
                or not high >= max(values["open"][index], values["close"][index]):
            problems.add(row, "low" if low > min(values["open"][index], values["close"][index]) else "high",
                         "low ≤ open, close ≤ high does not hold")
    problems.raise_if_any()
    order = np.argsort(times, kind="stable")
    times = times[order]
    if len(times) > 1 and (np.diff(times) == 0).any():
        duplicate = int(order[int(np.flatnonzero(np.diff(times) == 0)[0]) + 1])
        raise InvalidInput(f"{source}[row {rows[duplicate] if duplicate < len(rows) else duplicate + 1}].timestamp",
                           "a second candle at the same time")
    return times, {field: column[order] for field, column in values.items()}


# ------------------------------------------------------------------ generated paths


@dataclass(frozen=True)
class GeneratedScenario:
    """A GBM-with-jumps or single-shock path, named by its ``--scenario`` text."""

    name: str
    kind: str  # gbm or shock
    s0: tuple[tuple[str, float], ...]
    settings: tuple[tuple[str, float], ...]
    per_asset: tuple[tuple[str, str, float], ...]  # (setting, asset, value): sigma.BTC=0.6
    steps: int
    step_seconds: int
    start = None

    @property
    def assets(self) -> list[str]:
        return [asset for asset, _ in self.s0]

    def paths(self, rng: Any) -> dict[str, np.ndarray]:
        settings = dict(self.settings)
        start = dict(self.s0)
        if self.kind == "shock":
            return {asset: shock_path(price, settings.get("shock", -0.3), self.steps, int(settings.get("at_step", 1)))
                    for asset, price in start.items()}

        def each(name: str, default: float) -> dict[str, float]:
            values = {asset: settings.get(name, default) for asset in start}
            values.update({asset: value for setting, asset, value in self.per_asset if setting == name})
            return values

        return gbm_paths(start, each("mu", 0.0), each("sigma", 0.8), settings.get("correlation", 0.8), self.steps,
                         self.step_seconds, rng, jump_intensity=settings.get("jump_intensity", 0.0),
                         jump_mean=each("jump_mean", 0.0), jump_std=each("jump_std", 0.0))


GENERATED_SETTINGS = {"gbm": {"mu", "sigma", "correlation", "jump_intensity", "jump_mean", "jump_std", "steps",
                              "step_seconds"},
                      "shock": {"shock", "at_step", "steps", "step_seconds"}}


def generated_scenario(text: str) -> GeneratedScenario:
    """``gbm:BTC=60000,sigma=0.8,...`` or ``shock:BTC=60000,shock=-0.3,...`` (see the module);
    an upper-case name is an asset and its starting price, a lower-case one a setting."""
    kind, _, spec = text.partition(":")
    kind = kind.strip().lower()
    allowed = GENERATED_SETTINGS[kind]
    s0, settings, per_asset = [], {}, []
    for part in (part.strip() for part in spec.split(",") if part.strip()):
        name, separator, value = part.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not separator or math.isnan(number):
            raise InvalidInput(f"scenario.{name or part}", f"expected NAME=NUMBER, got {part!r}")
        setting, dot, asset = name.partition(".")
        if name.isupper():
            if not number > 0:
                raise InvalidInput(f"scenario.{name}", "a starting price must be positive")
            s0.append((name, number))
        elif dot and setting in allowed and asset.isupper():
            per_asset.append((setting, asset, number))
        elif name in allowed:
            settings[name] = number
        else:
            raise InvalidInput(f"scenario.{name}", f"not a {kind} setting (settings: {', '.join(sorted(allowed))}; "
                               "assets in upper case with their starting price, e.g. BTC=60000)")
    if not s0:
        raise InvalidInput("scenario", f"{kind}: name at least one asset and its starting price, e.g. BTC=60000")
    steps = settings.pop("steps", 1440 if kind == "gbm" else 120)
    step_seconds = settings.pop("step_seconds", 60)
    if steps != int(steps) or steps <= 0 or step_seconds != int(step_seconds) or step_seconds <= 0:
        raise InvalidInput("scenario.steps", "steps and step_seconds must be positive whole numbers")
    return GeneratedScenario(text, kind, tuple(s0), tuple(sorted(settings.items())), tuple(per_asset), int(steps),
                             int(step_seconds))


def resolve_scenario(config: Any, scenario: Any = None) -> Any:
    """What drives a run's prices: the given scenario, the configuration's price history, a generated
    path named ``gbm:...`` / ``shock:...``, or a scenario file or name."""
    if scenario is not None:
        return scenario
    if getattr(config, "prices", None) is not None:
        return config.prices
    name = str(config.scenario)
    if name.split(":", 1)[0].strip().lower() in GENERATED_SETTINGS and ":" in name:
        return generated_scenario(name)
    return load_scenario(name)


def exogenous_paths(scenario: Any, rng: Any) -> dict[str, np.ndarray]:
    """The exogenous path of every asset of ``scenario`` (any of the kinds :func:`resolve_scenario` gives)."""
    if hasattr(scenario, "paths"):
        return scenario.paths(rng)
    return scenario_paths(scenario, rng)
