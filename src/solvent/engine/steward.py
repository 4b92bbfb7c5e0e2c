"""Bounded risk-parameter updates: how a dynamic-margin model changes the engine, on the record.

``UpdateRiskParam`` changes one numeric value of a venue's preset (a margin rate, a liquidation
fee, a deviation cap), but only within the bounds the preset's ``[risk_steward]`` table sets for
that path: a maximum change per update (relative or absolute) and a minimum delay since that
path's last update. This is the shape of Aave's risk stewards, which let risk providers move
parameters without a governance vote but only by so much and so often (Aave Generalized Risk
Stewards: e.g. caps 100% relative, liquidation bonus 0.5% absolute, 3 days minimum delay; bgd-labs
aave-proposals-v3 src/20240805_Multi_RiskStewardPhase2/RiskStewardPhase2.md). ``SetParams`` stays
the unbounded, governance-level change. Each accepted update is a logged command with a
``RiskParamUpdated`` event, so ``verify`` can say why a parameter had its value at any moment.
See docs/oracle.md.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.errors import InvalidInput
from ..core.numbers import non_negative, to_decimal, to_int
from . import commands as c
from .commands import Command, command
from .events import Event, event

if TYPE_CHECKING:
    from .engine import Engine

CHANGE_KINDS = ("relative", "absolute")
_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\]]+)\])?$")
MAX_PATH_LENGTH = 200


@command
class UpdateRiskParam(Command):
    """Set the preset value at ``path`` (e.g. ``markets[BTCUSDT].margin.tiers[0].mmr``) to ``value``,
    within the venue's ``[risk_steward]`` bounds, at ``timestamp`` (seconds)."""

    kind: ClassVar[str] = "update_risk_param"
    venue: str
    path: str
    value: str
    timestamp: int
    reason: str = ""


@event
class RiskParamUpdated(Event):
    kind: ClassVar[str] = "risk_param_updated"
    venue: str
    path: str
    old: str
    new: str
    change: str  # relative or absolute, as bounded
    timestamp: int
    reason: str


def registry(engine: Engine) -> dict[str, int]:
    """``engine.steward_updates``: ``venue:path`` → timestamp of its last bounded update (engine state)."""
    if not hasattr(engine, "steward_updates"):
        engine.steward_updates = {}  # type: ignore[attr-defined]
    return engine.steward_updates  # type: ignore[attr-defined]


def steward_handlers(engine: Engine) -> dict[type, Callable]:
    registry(engine)
    return {UpdateRiskParam: lambda command: _update_risk_param(engine, command)}


def _update_risk_param(engine: Engine, command: UpdateRiskParam) -> list[Event]:
    venue = engine.venue(command.venue)
    timestamp = to_int(command.timestamp, "timestamp")
    if timestamp < engine.timestamp:
        raise InvalidInput("timestamp", f"{timestamp} is before the engine's time {engine.timestamp}")
    path = command.path
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_LENGTH:
        raise InvalidInput("path", f"expected a preset path of at most {MAX_PATH_LENGTH} characters")
    steward = venue.preset.data.get("risk_steward") or {}
    bounds = (steward.get("params") or {}).get(path)
    if bounds is None:
        allowed = sorted(steward.get("params") or {})
        raise InvalidInput("path", f"{path!r} is not bounded by the venue's [risk_steward].params "
                           f"(bounded: {', '.join(allowed) or 'none'}); governance changes go through set_params")
    where = f"preset.risk_steward.params.{path}"
    max_change = non_negative(bounds.get("max_change"), f"{where}.max_change")
    change = str(bounds.get("change", "relative"))
    if change not in CHANGE_KINDS:
        raise InvalidInput(f"{where}.change", f"expected relative or absolute, got {change!r}")
    delay = to_int(bounds.get("min_delay_seconds", steward.get("min_delay_seconds", 0)), f"{where}.min_delay_seconds")

    data = venue.preset.data
    top, holder, leaf = _locate(data, path)
    old = to_decimal(holder[leaf], "path")
    new = to_decimal(command.value, "value")
    if new < 0:
        raise InvalidInput("value", f"must not be negative, got {new}")
    moved = abs(new - old) / old if change == "relative" and old != 0 else abs(new - old)
    if change == "relative" and old == 0 and new != 0:
        raise InvalidInput("value", f"{path} is 0: a relative bound cannot move it")
    if moved > max_change:
        raise InvalidInput("value", f"{path} from {old} to {new} is a {change} change of {moved}, above the "
                           f"steward's bound {max_change}")
    key = f"{venue.name}:{path}"
    last = registry(engine).get(key)
    if last is not None and timestamp - last < delay:
        raise InvalidInput("timestamp", f"{path} was updated at {last}: the next update may come at {last + delay} "
                           f"(min_delay_seconds {delay})")

    # Build the override: the whole top-level table or array, with the one value replaced.
    replaced = copy.deepcopy(data[top])
    _, target, leaf_again = _locate({top: replaced}, path)
    target[leaf_again] = str(new)
    events: list[Event] = [RiskParamUpdated(venue.name, path, str(old), str(new), change, timestamp,
                                            str(command.reason)[:500])]
    events += engine._set_params(c.SetParams(venue.name, {top: replaced}))
    registry(engine)[key] = timestamp
    return events


def _locate(data: Mapping[str, Any], path: str) -> tuple[str, Any, Any]:
    """(top-level key, container, key in the container) of the numeric value at ``path``."""
    node: Any = data
    holder: Any = None
    key: Any = None
    parts = path.split(".")
    for position, part in enumerate(parts):
        match = _TOKEN.match(part)
        if match is None:
            raise InvalidInput("path", f"cannot read {part!r} in {path!r} (expected name or name[key])")
        name, selector = match.groups()
        if not isinstance(node, Mapping) or name not in node:
            raise InvalidInput("path", f"{'.'.join(parts[:position + 1])!r} is not in the venue's preset")
        holder, key, node = node, name, node[name]
        if selector is not None:
            holder, key = node, _select(node, selector, path)
            node = holder[key]
    if isinstance(node, (Mapping, list, bool)) or not isinstance(node, (str, int)):
        raise InvalidInput("path", f"{path!r} is not a number in the venue's preset")
    return parts[0].split("[", 1)[0], holder, key


def _select(node: Any, selector: str, path: str) -> Any:
    if isinstance(node, Mapping):
        if selector not in node:
            raise InvalidInput("path", f"no {selector!r} in {path!r}")
        return selector
    if isinstance(node, list):
        if selector.isdigit():
            index = int(selector)
            if index >= len(node):
                raise InvalidInput("path", f"index {index} is out of range in {path!r}")
            return index
        for index, item in enumerate(node):  # markets[BTCUSDT]: the element with that symbol
            if isinstance(item, Mapping) and item.get("symbol") == selector:
                return index
    raise InvalidInput("path", f"no {selector!r} in {path!r}")

