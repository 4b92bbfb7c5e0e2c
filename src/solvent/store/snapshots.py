"""Engine snapshots (for fast restart) and the state digest (for replay to check against).

A snapshot is the pickled :class:`~solvent.engine.Engine`, minus what is not state: its command
handlers (bound methods and closures, rebuilt by the constructor) and the vectorized screen's
columnar copy (a cache, rebuilt on the next large price update). Unpickling runs code chosen by
whoever wrote the bytes, so a snapshot is trusted exactly as far as the database it came from;
``replay`` and ``verify`` never unpickle: they rebuild the state from the commands and compare
its digest with the digest stored next to each snapshot. A restart checks the digest of the state
it unpickled and falls back to a full replay if it differs or the snapshot cannot be loaded (e.g.
written by another version of solvent).

``state_digest(engine)``: SHA-256 of the canonical JSON of everything the engine's future
depends on: the ledger (assets, markets, accounts with balances and positions, pools, net
deposits), marks and previous marks, time, block and seed, the liquidation bookkeeping (margin
calls, accounts in liquidation, partial-liquidation windows, per-block notional and markers),
venue membership, each venue's preset data and markets, the backstops, and every lending venue's
protocol state. Sets are sorted, tuple keys become lists of pairs; caches are left out (the
screen, the ledger's ``touched``/``changed`` sets).
"""

from __future__ import annotations

import copyreg
import io
import pickle
import types
from dataclasses import fields, is_dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any

from ..engine import Engine
from .canonical import canonical, sha256_hex

from .. import __version__

# A snapshot is only loaded by the version of solvent that wrote it; any other replays the log.
FORMAT = f"pickle-5/solvent-{__version__}"

# Attributes that are not state: caches, and back references to the engine from the objects it holds.
TRANSIENT = frozenset({"_handlers", "_screen", "_adl_candidates", "_schedules", "_journal", "_rollback_base"})  # rebuilt by the engine itself
SKIPPED = TRANSIENT | {"touched", "changed", "settle_assets"}
BACK_REFERENCES = frozenset({"engine", "ledger"})  # skipped on every object but the engine itself


# ------------------------------------------------------------------------------------ pickling


def _rebuild_engine(cls: type) -> Engine:
    return cls()  # the constructor builds the handlers, bound to this very object


def _reduce_engine(engine: Engine):
    state = {name: value for name, value in vars(engine).items() if name not in TRANSIENT}
    # (callable, args, state): the object exists (and is memoized) before its state is unpickled,
    # so the lending venues' back references to the engine resolve to it.
    return _rebuild_engine, (type(engine),), state


def dump_engine(engine: Engine) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[type(engine)] = _reduce_engine
    pickler.dump(engine)
    return buffer.getvalue()


def load_engine(data: bytes, format: str = FORMAT) -> Engine:
    if format != FORMAT:
        raise ValueError(f"snapshot format {format!r} is not {FORMAT!r}")
    engine = pickle.loads(data)
    if not isinstance(engine, Engine):
        raise ValueError(f"the snapshot holds a {type(engine).__name__}, not an Engine")
    engine._screen = None
    engine.set_rollback_base(lambda: load_engine(data, format))  # undo starts from this state, not from scratch
    return engine


# ------------------------------------------------------------------------------------ digest


def _state(value: Any, seen: frozenset[int] = frozenset()) -> Any:
    """Plain, deterministic data of an object graph (objects by their attributes)."""
    if value is None or isinstance(value, (bool, int, str, float)):
        return value
    if isinstance(value, (Decimal, Fraction)):
        return str(value)
    if isinstance(value, Enum):
        return [type(value).__name__, _state(value.value)]
    if isinstance(value, (type, types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return getattr(value, "__qualname__", type(value).__name__)
    if id(value) in seen:
        raise ValueError(f"cycle through a {type(value).__name__} in the engine's state")
    seen = seen | {id(value)}
    if isinstance(value, dict) or hasattr(value, "items") and hasattr(value, "keys"):
        items = [(_state(key, seen), _state(item, seen)) for key, item in value.items()]
        if all(isinstance(key, str) for key, _ in items):
            return dict(items)
        return sorted(([key, item] for key, item in items), key=canonical)
    if isinstance(value, (list, tuple)):
        return [_state(item, seen) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_state(item, seen) for item in value), key=canonical)
    if is_dataclass(value):
        names = [f.name for f in fields(value)]
    elif hasattr(value, "__dict__"):
        names = sorted(vars(value))
    else:
        names = sorted(getattr(value, "__slots__", ()))
        if not names:
            text = str(value)
            return type(value).__qualname__ if " at 0x" in text else text
    skipped = SKIPPED if isinstance(value, Engine) else SKIPPED | BACK_REFERENCES
    body = {name: _state(getattr(value, name), seen) for name in names if name not in skipped}
    return {"__type__": type(value).__qualname__, **body}


def engine_state(engine: Engine) -> dict[str, Any]:
    """The engine's state as plain data (what :func:`state_digest` hashes)."""
    return _state(engine)


def state_digest(engine: Engine) -> str:
    return sha256_hex(canonical(engine_state(engine)))
