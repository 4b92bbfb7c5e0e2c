"""A run's results as tables: every event, every liquidation, the per-step series, the per-path metrics.

Tables are ``pyarrow.Table`` (columns typed, amounts kept as the engine's decimal strings so
nothing is rounded on the way out) and are written as Parquet (or CSV) plus ``metrics.json`` by
:func:`write_run` and :func:`write_paths`. The same seed gives the same bytes: no wall-clock time
and no host name goes into a file.

Tables (docs/your-data.md has every column):

- ``events``: every event of the run (setup at step −1), with ``step``, ``time`` (seconds since
  the run's start) and ``utc`` (when the prices carry dates), ``kind``, and the event's fields;
- ``liquidations``: one row per ``position_liquidated``, with the liquidation fee, the insurance
  fund and backstop draws, the size auto-deleveraged against the account and its bad debt in the
  same step (totals per account and step, on the account's first liquidation row of the step);
- ``series``: per step, each asset's price with the cascade (``price.<asset>``) and without it
  (``exogenous.<asset>``), the notional liquidated, the insurance fund and the backstop vault (USD);
- ``paths``: per Monte Carlo path of a sweep or comparison, its parameters, seed and every metric.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InvalidInput

FORMATS = ("parquet", "csv")
LEADING = ("step", "time", "utc", "kind", "account", "venue", "market", "side", "size", "price", "method",
           "counterparty", "amount")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (tuple, list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _utc(start: Any, seconds: Sequence[int]) -> list[datetime] | None:
    if not isinstance(start, datetime):
        return None
    return [start + timedelta(seconds=int(second)) for second in seconds]


def events_table(result: Any):
    """Every kept event of ``result`` (run with ``keep_events=True``), one row each."""
    import pyarrow as pa

    if result.event_log is None:
        raise InvalidInput("keep_events", "the run kept no events: run it with keep_events=True")
    rows: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    step_seconds = result.step_seconds
    for step, _, events in result.event_log:
        for event in events:
            record = {"step": step, "time": max(step, 0) * step_seconds, "kind": event.kind}
            for spec in fields(event):
                names.setdefault(spec.name)
                record[spec.name] = _text(getattr(event, spec.name))
            rows.append(record)
    columns = [name for name in LEADING if name in names or name in ("step", "time", "kind")]
    columns += sorted(name for name in names if name not in LEADING)
    data: dict[str, Any] = {}
    for name in columns:
        if name == "utc":
            continue
        values = [row.get(name) for row in rows]
        data[name] = pa.array(values, pa.int64() if name in ("step", "time") else pa.string())
    utc = _utc(result.start, data["time"].to_pylist())
    table = pa.table(data)
    if utc is not None:
        table = table.add_column(2, "utc", pa.array(utc, pa.timestamp("s", tz="UTC")))
    return table


def liquidations_table(result: Any):
    """One row per liquidation, with what the waterfall did about the account in the same step."""
    import pyarrow as pa

    from .run import _quote_notional

    preset_markets = _markets_of(result)
    out: dict[str, list] = {name: [] for name in (
        "step", "time", "account", "market", "side", "size", "price", "bankruptcy_price", "method", "counterparty",
        "remaining_size", "notional_usd", "fee", "fund_draw", "backstop_draw", "adl_size", "bad_debt")}
    for step, _, events in result.event_log or ():
        totals: dict[tuple[str, str], Decimal] = {}
        for event in events:
            key = None
            if event.kind == "liquidation_fee_charged":
                key = ("fee", event.account)
            elif event.kind == "insurance_fund_drawn":
                key = ("fund_draw", event.account)
            elif event.kind == "backstop_drawn":
                key = ("backstop_draw", event.account)
            elif event.kind == "bad_debt":
                key = ("bad_debt", event.account)
            elif event.kind == "position_auto_deleveraged":
                key = ("adl_size", event.against)
            if key is not None:
                amount = event.size if event.kind == "position_auto_deleveraged" else event.amount
                totals[key] = totals.get(key, Decimal(0)) + Decimal(amount)
        reported: set[str] = set()
        for event in events:
            if event.kind != "position_liquidated":
                continue
            first = event.account not in reported
            reported.add(event.account)
            for name in ("account", "market", "side", "size", "price", "bankruptcy_price", "method", "counterparty",
                         "remaining_size"):
                out[name].append(getattr(event, name))
            out["step"].append(step)
            out["time"].append(step * result.step_seconds)
            spec = preset_markets.get(event.market)
            out["notional_usd"].append(float(_quote_notional(spec, Decimal(event.size), Decimal(event.price)))
                                       if spec is not None else None)
            for name in ("fee", "fund_draw", "backstop_draw", "adl_size", "bad_debt"):
                out[name].append(str(totals.get((name, event.account), Decimal(0))) if first else "0")
    types = {"step": pa.int64(), "time": pa.int64(), "notional_usd": pa.float64()}
    table = pa.table({name: pa.array(values, types.get(name, pa.string())) for name, values in out.items()})
    utc = _utc(result.start, out["time"])
    if utc is not None:
        table = table.add_column(2, "utc", pa.array(utc, pa.timestamp("s", tz="UTC")))
    return table


def _markets_of(result: Any) -> dict:
    from ..presets import load_preset

    preset = load_preset(result.config.preset)
    return preset.markets


def series_table(result: Any):
    """Per step: prices with and without the cascade, liquidated notional, fund and vault (USD)."""
    import pyarrow as pa

    steps = len(result.liquidated_per_step)
    data: dict[str, Any] = {"step": pa.array(np.arange(steps, dtype=np.int64)),
                            "time": pa.array(np.arange(steps, dtype=np.int64) * result.step_seconds)}
    for asset in result.simulated:
        data[f"price.{asset}"] = pa.array(np.asarray(result.simulated[asset], dtype=np.float64))
        data[f"exogenous.{asset}"] = pa.array(np.asarray(result.exogenous[asset], dtype=np.float64))
    data["liquidated_notional"] = pa.array(np.asarray(result.liquidated_per_step, dtype=np.float64))
    data["insurance_fund"] = pa.array(np.asarray(result.fund_per_step, dtype=np.float64))
    if result.backstop_per_step is not None:
        data["backstop_vault"] = pa.array(np.asarray(result.backstop_per_step, dtype=np.float64))
    table = pa.table(data)
    utc = _utc(result.start, data["time"].to_pylist())
    if utc is not None:
        table = table.add_column(2, "utc", pa.array(utc, pa.timestamp("s", tz="UTC")))
    return table


def paths_table(points: Sequence[Any], seeds: Sequence[int]):
    """Per grid point (or preset) and path: its parameters, path index, seed and every metric."""
    import pyarrow as pa

    names: dict[str, None] = {}
    metric_names: dict[str, None] = {}
    rows = []
    for point in points:
        for index, metrics in enumerate(point.runs):
            scalars = metrics.scalars()
            metric_names.update(dict.fromkeys(scalars))
            parameters = dict(point.parameters)
            names.update(dict.fromkeys(parameters))
            rows.append((parameters, index, seeds[index] if index < len(seeds) else None, scalars))
    data: dict[str, Any] = {}
    for name in names:
        data[name] = pa.array([parameters.get(name) for parameters, *_ in rows], pa.string())
    data["path"] = pa.array([index for _, index, _, _ in rows], pa.int64())
    data["seed"] = pa.array([seed for _, _, seed, _ in rows], pa.uint64())
    for name in metric_names:
        data[name] = pa.array([scalars.get(name) for *_, scalars in rows], pa.float64())
    return pa.table(data)


def metrics_document(result: Any) -> dict[str, Any]:
    """``metrics.json`` of one run: the metrics, the counts and what the run was."""
    config = result.config
    return {
        "metrics": {spec.name: getattr(result.metrics, spec.name) for spec in fields(result.metrics)},
        "counts": result.counts,
        "run": {"preset": config.preset, "scenario": str(config.prices or config.scenario), "seed": config.seed,
                "accounts": config.accounts if config.book is None else None,
                "book": None if config.book is None else str(config.book),
                "synthetic_share": config.synthetic_share, "insurance_fund": config.insurance_fund,
                "backstop_capital": config.backstop_capital, "depth_scale": config.depth_scale,
                "feedback": config.feedback, "overrides": dict(config.overrides),
                "step_seconds": result.step_seconds, "steps": len(result.liquidated_per_step),
                "start": None if result.start is None else str(result.start)},
    }


def write_table(table: Any, path: Path, format: str) -> Path:
    if format == "parquet":
        import pyarrow.parquet as pq

        target = path.with_suffix(".parquet")
        pq.write_table(table, target)
    else:
        import pyarrow.csv as pacsv

        target = path.with_suffix(".csv")
        pacsv.write_csv(table, target)
    return target


def _prepare(directory: str | Path, format: str) -> Path:
    if format not in FORMATS:
        raise InvalidInput("format", f"expected parquet or csv, got {format!r}")
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInput("out", f"{directory}: {error}") from None
    return directory


def write_run(result: Any, directory: str | Path, format: str = "parquet") -> list[Path]:
    """events, liquidations, series and metrics.json of one run into ``directory``."""
    directory = _prepare(directory, format)
    written = [write_table(events_table(result), directory / "events", format),
               write_table(liquidations_table(result), directory / "liquidations", format),
               write_table(series_table(result), directory / "series", format)]
    target = directory / "metrics.json"
    target.write_text(json.dumps(metrics_document(result), indent=2, default=str) + "\n")
    return written + [target]


def write_paths(points: Sequence[Any], seeds: Sequence[int], summary: dict[str, Any] | list[dict[str, Any]],
                directory: str | Path,
                format: str = "parquet") -> list[Path]:
    """paths (every path's metrics) and metrics.json (the summaries) of a sweep or comparison."""
    directory = _prepare(directory, format)
    written = [write_table(paths_table(points, seeds), directory / "paths", format)]
    target = directory / "metrics.json"
    target.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return written + [target]
