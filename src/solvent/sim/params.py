"""A parameters file (TOML): run settings, preset overrides and a sweep grid, validated before any run.

```toml
[run]                       # settings of the run (SimConfig)
insurance_fund = "5000000"
depth_scale = 0.5

[preset]                    # overrides of the venue preset, as nested tables
execution.fee = "0.01"
waterfall.adl_rule = "pro_rata"

[sweep]                     # the grid of `solvent sweep`: a run setting or a preset path, and its values
insurance_fund = ["0", "2000000"]
"execution.fee" = ["0", "0.005", "0.01"]
```

A key the file may not hold is refused naming its path: a ``[run]`` key that is not a run setting,
a ``[preset]`` path that the preset schema does not know (``solvent presets --schema``). Numbers are
kept as their decimal text.

Design: docs/your-data.md.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInput

RUN_SETTINGS = {"accounts", "seed", "insurance_fund", "backstop_capital", "depth_scale", "feedback",
                "oracle_lag_steps", "liquidators", "liquidator_capital", "liquidator_latency_steps", "synthetic_share"}
SECTIONS = ("run", "preset", "sweep")


@dataclass(frozen=True)
class Params:
    run: dict[str, Any]
    overrides: tuple[tuple[str, Any], ...]  # (dotted preset path, value)
    grid: dict[str, list[str]]


def _text(value: Any, where: str) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return value
    raise InvalidInput(where, f"expected a number, text, true/false or a list, got {type(value).__name__}")


def _flatten(table: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    pairs = []
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            pairs += _flatten(value, f"{path}.")
        else:
            pairs.append((path, value))
    return pairs


def check_preset_path(path: str, where: str) -> None:
    """A preset path the preset schema knows (``solvent presets --schema``), else refused naming ``where``."""
    from ..presets.schema import check_path

    check_path(path, where)


def load_params(path: str | Path) -> Params:
    """Read and validate a parameters file (see the module)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise InvalidInput("params", f"{path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput("params", f"{path} is not TOML: {error}") from None
    return params_from_data(data)


def params_from_data(data: Mapping[str, Any]) -> Params:
    for key, value in data.items():
        if key not in SECTIONS or not isinstance(value, Mapping):
            raise InvalidInput(f"params.{key}", f"expected one of the tables [{'], ['.join(SECTIONS)}]")
    run: dict[str, Any] = {}
    for key, value in data.get("run", {}).items():
        if key not in RUN_SETTINGS:
            raise InvalidInput(f"params.run.{key}", f"not a run setting ({', '.join(sorted(RUN_SETTINGS))})")
        run[key] = _text(value, f"params.run.{key}")
    overrides = []
    for path, value in _flatten(data.get("preset", {})):
        check_preset_path(path, f"params.preset.{path}")
        overrides.append((path, _text(value, f"params.preset.{path}")))
    grid: dict[str, list[str]] = {}
    for name, values in data.get("sweep", {}).items():
        where = f"params.sweep.{name}"
        if isinstance(values, Mapping):
            raise InvalidInput(where, "quote a dotted preset path as one key: \"execution.fee\" = [...]")
        if not isinstance(values, list) or not values:
            raise InvalidInput(where, "expected a non-empty list of values")
        if name not in RUN_SETTINGS:
            if "." not in name:
                raise InvalidInput(where, f"neither a run setting ({', '.join(sorted(RUN_SETTINGS))}) nor a dotted "
                                          "preset path")
            check_preset_path(name, where)
        grid[name] = [str(_text(value, f"{where}[{i}]")) for i, value in enumerate(values)]
    return Params(run, tuple(overrides), grid)


def configured(config: Any, params: Params) -> Any:
    """``config`` (a SimConfig) with the file's run settings and preset overrides applied."""
    from dataclasses import replace

    kinds = {spec.name: spec.type for spec in fields(config)}
    settings: dict[str, Any] = {}
    for name, value in params.run.items():
        current = getattr(config, name)
        try:
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError
                settings[name] = value
            elif isinstance(current, int):
                settings[name] = int(value)
            elif isinstance(current, float):
                settings[name] = float(value)
            else:
                settings[name] = str(value)
        except ValueError:
            raise InvalidInput(f"params.run.{name}", f"{value!r} is not a {kinds.get(name)}") from None
    overrides = tuple(config.overrides) + tuple((path, value) for path, value in params.overrides)
    return replace(config, overrides=overrides, **settings)
