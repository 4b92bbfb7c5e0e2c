"""Lending and CDP venues on the engine (Aave, Compound, Maker, Liquity, Euler, Morpho).

Not driven yet: the protocols' policies live in :mod:`solvent.policies.lending` and pass their
conformance vectors, but a lending preset cannot be made a venue of the engine yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..core.errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from ..presets import Preset
    from .engine import Engine


def create_lending_venue(engine: "Engine", name: str, preset: "Preset", overrides: dict[str, Any]):
    raise InvalidInput("preset", f"{preset.name} is a lending protocol: its policies and conformance checks exist, "
                       "but the engine does not drive lending venues yet")


def lending_handlers(engine: "Engine") -> dict[type, Callable]:
    """Handlers of the lending commands, registered by the engine."""
    return {}
