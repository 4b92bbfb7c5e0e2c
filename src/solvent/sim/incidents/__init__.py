"""Replays of real solvency incidents, held to what was published (docs/incidents.md).

``solvent simulate --incident NAME`` runs one: the incident's facts file
(``sim/data/incidents/NAME.toml``: its scenario, its calibration and the published facts with
their bands, :mod:`.facts`), the venue's rules of that date, the book and the agents whose
limits caused the failure (each incident's own module), then the comparison of published and
simulated numbers and the same incident under a fix, side by side (:mod:`.registry`).
"""

from .facts import (
           Band,
           Fact,
           FactSpec,
           IncidentFile,
           compare,
           list_incident_files,
           load_incident_file,
)
from .registry import INCIDENTS, IncidentRun, Variant, list_incidents, run_incident

__all__ = [
           "INCIDENTS",
           "Band",
           "Fact",
           "FactSpec",
           "IncidentFile",
           "IncidentRun",
           "Variant",
           "compare",
           "list_incident_files",
           "list_incidents",
           "load_incident_file",
           "run_incident",
]
