"""Engine snapshots (for fast restart) and the state digest (for replay to check against).

A snapshot is the engine's object graph as canonical JSON data (format :data:`FORMAT`), never a
pickle: reading one creates only solvent's own classes (modules under ``solvent.``, found by name,
built without running their constructors, except the engine's) and plain values (str, int, bool,
None, Decimal, Fraction, float, enum members of solvent's enums, lists, tuples, dicts, sets);
anything else in the data refuses the snapshot. Nothing in it can name a function or run code.
Shared objects and back references are kept (``{"$ref": n}``), so the state loaded is the state
dumped, and its digest is checked against the digest stored next to it before it is used
(:meth:`~solvent.store.log.Snapshot.load`). Left out: what is not state (the command handlers,
the vectorized screen, caches and the undo journal, rebuilt by the engine itself).

``replay`` and ``verify`` never load a snapshot: they rebuild the state from the commands and
compare its digest with the digest stored next to each snapshot.

``state_digest(engine)``: SHA-256 of the canonical JSON of everything the engine's future
depends on: the ledger (assets, markets, accounts with balances and positions, pools, net
deposits), marks and previous marks, time (the engine's and each venue's), block and seed, the
liquidation bookkeeping (margin calls, accounts in liquidation, partial-liquidation windows,
per-block notional and markers), venue membership, each venue's preset data and markets, the
backstops, and every lending venue's protocol state. Sets are sorted, tuple keys become lists of
pairs; caches are left out (the screen, the ledger's ``touched``/``changed`` sets). The digest
hashes class and attribute names, so it changes when the engine's state gains a field:
:data:`DIGEST_VERSION` names the version, and a snapshot whose format names another version is not
compared (its outcomes still are).
"""

from __future__ import annotations

import importlib
import json
import types
from dataclasses import fields, is_dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any

from ..engine import Engine
from .canonical import canonical, sha256_hex

# 1: pickles (solvent <= this change); 2: JSON object graphs, and per-venue clocks in the state.
DIGEST_VERSION = 2
FORMAT = f"json-graph-1/state-{DIGEST_VERSION}"

# Attributes that are not state: caches, and back references to the engine from the objects it holds.
TRANSIENT = frozenset({"_handlers", "_screen", "_adl_candidates", "_schedules", "_journal", "_rollback_base"})
SKIPPED = TRANSIENT | {"touched", "changed", "settle_assets"}
BACK_REFERENCES = frozenset({"engine", "ledger"})  # skipped on every object but the engine itself
TRUSTED_PREFIX = "solvent."  # the only modules whose classes a snapshot may name


class SnapshotRefused(ValueError):
    """The snapshot's data is not a snapshot this version of solvent can load safely."""


# ------------------------------------------------------------------------------------ dump / load


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slots(cls: type) -> tuple[str, ...]:
    found = _SLOTS.get(cls)
    if found is None:
        found = _SLOTS[cls] = tuple(slot for klass in cls.__mro__ for slot in getattr(klass, "__slots__", ())
                                    if slot not in ("__dict__", "__weakref__"))
    return found


def _attributes(value: Any) -> dict[str, Any]:
    found = dict(vars(value)) if hasattr(value, "__dict__") else {}
    for slot in _slots(type(value)):
        if slot not in found and hasattr(value, slot):
            found[slot] = getattr(value, slot)
    return found


class _Dumper:
    def __init__(self) -> None:
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps every memoized object alive, so that no id is reused

    def ref(self, value: Any) -> int | None:
        found = self.memo.get(id(value))
        if found is None:
            self.memo[id(value)] = len(self.memo)
            self.keep.append(value)
        return found

    def dump(self, value: Any, root: bool = False) -> Any:
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return {"$f": float.hex(value)}
        if kind is Decimal:
            return {"$d": str(value)}
        if kind is Fraction:
            return {"$q": str(value)}
        if isinstance(value, Enum):
            return {"$e": _class_name(kind), "v": self.dump(value.value)}
        if kind is tuple:  # immutable: not shared by reference (so never part of a cycle)
            return {"$t": [self.dump(item) for item in value]}
        if kind is frozenset:
            return {"$fs": [self.dump(item) for item in value]}
        seen = self.ref(value)
        if seen is not None:
            return {"$ref": seen}
        if kind is list:
            return {"$l": [self.dump(item) for item in value]}
        if kind is dict:
            dump = self.dump
            if all(type(key) is str for key in value):  # the common case: an object of JSON, in order
                return {"$ms": {key: dump(item) for key, item in value.items()}}
            return {"$m": [[dump(key), dump(item)] for key, item in value.items()]}
        if kind is set:
            return {"$s": [self.dump(item) for item in value]}
        if not kind.__module__.startswith(TRUSTED_PREFIX) or isinstance(value, (type, types.FunctionType)):
            raise TypeError(f"a snapshot holds solvent's objects and plain values, not {kind.__module__}."
                            f"{kind.__qualname__}")
        skipped = TRANSIENT if root else frozenset()
        dump = self.dump
        return {"$o": _class_name(kind),
                "a": {name: dump(item) for name, item in _attributes(value).items() if name not in skipped}}


_CLASS_NAMES: dict[type, str] = {}


def _class_name(cls: type) -> str:
    found = _CLASS_NAMES.get(cls)
    if found is None:
        found = _CLASS_NAMES[cls] = f"{cls.__module__}:{cls.__qualname__}"
    return found


def _trusted_class(name: Any) -> type:
    if not isinstance(name, str) or ":" not in name:
        raise SnapshotRefused(f"not a class name: {name!r}")
    module, _, qualname = name.partition(":")
    if not module.startswith(TRUSTED_PREFIX) or not module.replace("_", "a").replace(".", "a").isalnum():
        raise SnapshotRefused(f"{module} is not one of solvent's modules")
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            if part.startswith("__"):
                raise SnapshotRefused(f"{name}: no dunder names")
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise SnapshotRefused(f"unknown class {name}: {error}") from None
    if not isinstance(found, type) or getattr(found, "__module__", "") != module:
        raise SnapshotRefused(f"{name} is not a class of {module}")
    return found


class _Loader:
    def __init__(self) -> None:
        self.memo: list[Any] = []

    def load(self, data: Any, root: bool = False) -> Any:
        if data is None or type(data) in (bool, int, str):
            return data
        if type(data) is dict and "$o" in data:
            return self.load_object(data, root)
        if type(data) is not dict or len(data) not in (1, 2):
            raise SnapshotRefused(f"unexpected {type(data).__name__} in the data")
        tag = next(iter(data))
        body = data[tag]
        if tag == "$f":
            return float.fromhex(body)
        if tag == "$d":
            return Decimal(body)
        if tag == "$q":
            return Fraction(body)
        if tag == "$e":
            cls = _trusted_class(body)
            if not issubclass(cls, Enum):
                raise SnapshotRefused(f"{body} is not an enum")
            return cls(self.load(data["v"]))
        if tag == "$ref":
            if type(body) is not int or not 0 <= body < len(self.memo):
                raise SnapshotRefused(f"bad reference {body!r}")
            return self.memo[body]
        if tag != "$ms" and type(body) is not list:
            raise SnapshotRefused(f"{tag}: expected a list")
        if tag in ("$t", "$fs"):  # immutable: built from its items, not memoized (see _Dumper)
            items = [self.load(item) for item in body]
            return tuple(items) if tag == "$t" else frozenset(items)
        if tag == "$l":
            result: Any = []
            self.memo.append(result)
            result.extend(self.load(item) for item in body)
            return result
        if tag == "$ms":
            if type(body) is not dict:
                raise SnapshotRefused("$ms: expected an object")
            strings: dict = {}
            self.memo.append(strings)
            load = self.load
            for key, item in body.items():
                strings[key] = load(item)
            return strings
        if type(body) is not list:
            raise SnapshotRefused(f"{tag}: expected a list")
        if tag == "$m":
            mapping: dict = {}
            self.memo.append(mapping)
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise SnapshotRefused("a map entry is a [key, value] pair")
                mapping[self.load(pair[0])] = self.load(pair[1])
            return mapping
        if tag == "$s":
            values: set = set()
            self.memo.append(values)
            values.update(self.load(item) for item in body)
            return values
        raise SnapshotRefused(f"unknown tag {tag!r}")

    def load_object(self, data: dict, root: bool) -> Any:
        cls = _trusted_class(data.get("$o"))
        attributes = data.get("a")
        if type(attributes) is not dict:
            raise SnapshotRefused("an object's attributes are an object of name: value")
        if root:
            if not issubclass(cls, Engine):
                raise SnapshotRefused(f"the snapshot holds a {cls.__qualname__}, not an Engine")
            value = cls()  # the constructor builds the handlers, bound to this very object
        else:
            value = object.__new__(cls)
        self.memo.append(value)
        slots = _slots(cls)
        plain = hasattr(value, "__dict__")
        load = self.load
        for name, item in attributes.items():
            if name.startswith("__") or (root and name in TRANSIENT):
                raise SnapshotRefused(f"{name!r} is not an attribute a snapshot may set")
            if plain and name not in slots:
                value.__dict__[name] = load(item)  # no __setattr__ runs (frozen dataclasses included)
            else:
                object.__setattr__(value, name, load(item))
        return value



def dump_engine(engine: Engine) -> bytes:
    """The engine's state as canonical JSON bytes (see the module docstring)."""
    return _ENCODE(_Dumper().dump(engine, root=True)).encode("utf-8")


# Insertion order kept (dicts and attributes load in the order they were dumped), no NaN.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False).encode


def load_engine(data: bytes, format: str = FORMAT) -> Engine:
    """The engine a snapshot holds; :class:`SnapshotRefused` (a ValueError) for any other data."""
    if format != FORMAT:
        raise SnapshotRefused(f"snapshot format {format!r} is not {FORMAT!r}")
    try:
        tree = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise SnapshotRefused(f"not JSON: {error}") from None
    if type(tree) is not dict or "$o" not in tree:
        raise SnapshotRefused("the snapshot does not hold an engine")
    try:
        engine = _Loader().load_object(tree, root=True)
    except SnapshotRefused:
        raise
    except (TypeError, ValueError, ArithmeticError, RecursionError) as error:
        raise SnapshotRefused(f"malformed snapshot: {type(error).__name__}: {error}") from None
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
    if isinstance(value, dict) or (hasattr(value, "items") and hasattr(value, "keys")):
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
