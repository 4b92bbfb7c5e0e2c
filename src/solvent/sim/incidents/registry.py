"""The incidents that can be replayed, and one replay's outcome: the run as it happened and the
same incident under each counterfactual fix, each compared with the published facts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import InvalidInput, UnknownName
from .facts import Fact, IncidentFile, compare, load_incident_file


@dataclass
class Variant:
    """One run of the incident: ``label`` says under which rules; ``metrics`` the numbers it gave
    (the run's usual metrics and the incident's own), ``facts`` their comparison with the record."""

    label: str
    metrics: dict[str, float | None]
    facts: list[Fact] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "metrics": self.metrics, "facts": [fact.to_json() for fact in self.facts]}


@dataclass
class IncidentRun:
    name: str
    title: str
    seed: int
    scale: float
    replay: Variant  # the rules of that date
    counterfactuals: list[Variant]
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def facts(self) -> list[Fact]:
        return self.replay.facts

    def to_json(self) -> dict[str, Any]:
        return {"incident": self.name, "title": self.title, "seed": self.seed, "scale": self.scale,
                "metrics": self.replay.metrics, "facts": [fact.to_json() for fact in self.replay.facts],
                "counterfactuals": [variant.to_json() for variant in self.counterfactuals],
                "notes": self.notes, "seconds": self.seconds}


# An incident's runner: (its facts file, seed, scale, with counterfactuals) → (the replay, the
# counterfactuals, notes). Each returns metrics only; facts are compared here, the same way for all.
Runner = Callable[[IncidentFile, int, float, bool], tuple[dict, list[tuple[str, dict]], list[str]]]


# Incident name → the module (in this package) whose ``replay`` runs it.
_MODULES = {"hyperliquid-2025-10-10": "hyperliquid_2025_10_10", "maker-2020-03-12": "maker_2020_03_12"}
INCIDENTS = tuple(_MODULES)


def _runner(name: str) -> Runner:
    from importlib import import_module

    return import_module(f"{__package__}.{_MODULES[name]}").replay


def list_incidents() -> list[str]:
    return list(INCIDENTS)


def run_incident(name: str, seed: int = 7, scale: float = 1.0, counterfactuals: bool = True) -> IncidentRun:
    """Replay incident ``name`` (``scale``: the share of its full-size book, for quick runs)."""
    if name not in INCIDENTS:
        raise UnknownName("incident", name, list(INCIDENTS))
    if seed < 0:
        raise InvalidInput("seed", "must not be negative")
    if not 0 < scale <= 1:
        raise InvalidInput("scale", "must be in (0, 1]")
    spec = load_incident_file(name)
    began = time.perf_counter()
    replay, others, notes = _runner(name)(spec, seed, scale, counterfactuals)
    variants = [Variant(label, metrics, compare(spec.facts, metrics)) for label, metrics in others]
    return IncidentRun(name, spec.title, seed, scale, Variant("as it happened", replay, compare(spec.facts, replay)),
                       variants, time.perf_counter() - began, notes)
