"""An incident's facts file: the published numbers a replay is held to, with their bands.

One TOML file per incident in ``solvent/sim/data/incidents/``: ``title``, ``date``,
``description``, ``sources``; a ``[scenario]`` table in the scenario-file layout
(:func:`solvent.sim.scenarios.load_scenario`); ``[calibration]``, the incident's own inputs
(open interest, the vault's capital, the auction's parameters ...), each documented in the file;
and ``[[facts]]``, each a published number with the band the simulated number must fall in:

- ``band = { factor = 1.5 }``: inside when ``published / 1.5 <= simulated <= published × 1.5``
  (notionals, counts);
- ``band = { plus_minus = 15 }``: inside when ``|simulated − published| <= 15`` in the fact's own
  unit (percentage points for shares, seconds for delays);
- ``band = { range = [low, high] }``: inside when ``low <= simulated <= high``.

Bands are stated in the file, before any run: a replay does not choose its own yardstick.
See docs/incidents.md.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.errors import InvalidInput, UnknownName
from ..scenarios import Scenario, _scenario_from_data

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "incidents"
UNITS = ("usd", "count", "percent", "seconds", "dai", "ratio")


@dataclass(frozen=True)
class Band:
    """How far a simulated number may sit from the published one (see the module docstring)."""

    kind: str  # "factor", "plus_minus" or "range"
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0

    @classmethod
    def parse(cls, table: object, where: str) -> Band:
        if not isinstance(table, Mapping) or len(table) != 1:
            raise InvalidInput(where, "expected one of { factor = F }, { plus_minus = X }, { range = [low, high] }")
        (kind, value), = table.items()
        if kind == "factor":
            if not isinstance(value, (int, float)) or value < 1:
                raise InvalidInput(f"{where}.factor", "must be a number >= 1")
            return cls("factor", float(value))
        if kind == "plus_minus":
            if not isinstance(value, (int, float)) or value < 0:
                raise InvalidInput(f"{where}.plus_minus", "must be a number >= 0")
            return cls("plus_minus", float(value))
        if kind == "range":
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, (int, float)) for v in value) or value[0] > value[1]):
                raise InvalidInput(f"{where}.range", "must be [low, high] with low <= high")
            return cls("range", low=float(value[0]), high=float(value[1]))
        raise InvalidInput(where, f"unknown band {kind!r} (factor, plus_minus or range)")

    def bounds(self, published: float) -> tuple[float, float]:
        if self.kind == "factor":
            low, high = sorted((published / self.value, published * self.value))
            return low, high
        if self.kind == "plus_minus":
            return published - self.value, published + self.value
        return self.low, self.high

    def holds(self, published: float, simulated: float) -> bool:
        low, high = self.bounds(published)
        return low <= simulated <= high

    def describe(self) -> str:
        if self.kind == "factor":
            return f"x/÷{self.value:g}"
        if self.kind == "plus_minus":
            return f"±{self.value:g}"
        return f"[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class FactSpec:
    """A published number of the incident and its band."""

    name: str  # the key of the simulated metric it is compared with
    label: str
    published: float
    band: Band
    unit: str
    source: str


@dataclass(frozen=True)
class Fact:
    """One comparison: the published number, the simulated one, the band, and whether it holds."""

    name: str
    label: str
    published: float
    simulated: float | None
    band: str
    inside: bool
    unit: str

    @property
    def ratio(self) -> float | None:
        if self.simulated is None or self.published == 0:
            return None
        return self.simulated / self.published

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "published": self.published, "simulated": self.simulated,
                "band": self.band, "inside": self.inside}


@dataclass(frozen=True)
class IncidentFile:
    name: str
    title: str
    date: str
    description: str
    sources: tuple[str, ...]
    scenario: Scenario | None
    calibration: Mapping[str, Any]
    facts: tuple[FactSpec, ...]

    def number(self, key: str) -> float:
        """A number of ``[calibration]`` (a value, or a table with ``value`` and its ``source``)."""
        entry = self.calibration.get(key)
        if isinstance(entry, Mapping):
            entry = entry.get("value")
        if not isinstance(entry, (int, float)) or isinstance(entry, bool):
            raise InvalidInput(f"incident[{self.name}].calibration.{key}", "missing or not a number")
        return float(entry)


def list_incident_files() -> list[str]:
    return sorted(path.stem for path in DATA_DIR.glob("*.toml"))


def load_incident_file(name: str) -> IncidentFile:
    path = DATA_DIR / f"{name}.toml"
    if not path.is_file():
        raise UnknownName("incident", name, list_incident_files())
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    where = f"incident[{name}]"
    facts = []
    for index, row in enumerate(data.get("facts", [])):
        at = f"{where}.facts[{index}]"
        for key in ("name", "published", "band", "unit", "source"):
            if key not in row:
                raise InvalidInput(f"{at}.{key}", "missing")
        if row["unit"] not in UNITS:
            raise InvalidInput(f"{at}.unit", f"expected one of {', '.join(UNITS)}")
        facts.append(FactSpec(str(row["name"]), str(row.get("label", row["name"])), float(row["published"]),
                              Band.parse(row["band"], f"{at}.band"), str(row["unit"]), str(row["source"])))
    scenario = _scenario_from_data(name, data["scenario"]) if "scenario" in data else None
    return IncidentFile(name, str(data.get("title", name)), str(data.get("date", "")),
                        str(data.get("description", "")).strip(), tuple(str(s) for s in data.get("sources", ())),
                        scenario, data.get("calibration", {}), tuple(facts))


def compare(specs: tuple[FactSpec, ...], simulated: Mapping[str, float | None]) -> list[Fact]:
    """Each published fact against the simulated number of the same name (None: not simulated,
    which is never inside)."""
    facts = []
    for spec in specs:
        value = simulated.get(spec.name)
        inside = value is not None and spec.band.holds(spec.published, float(value))
        facts.append(Fact(spec.name, spec.label, spec.published, None if value is None else float(value),
                          spec.band.describe(), inside, spec.unit))
    return facts
