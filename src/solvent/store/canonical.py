"""Canonical JSON and the hash chain of the command log.

Canonical JSON: keys sorted, no whitespace, UTF-8, decimals as strings, tuples as lists, sets as
sorted lists. Commands and events are already plain data (numbers as strings), so canonical JSON
of a command's ``to_dict()`` round-trips through ``command_from_dict`` to an equal command.

The chain. Every entry is hashed twice:

- at append, before the engine sees the command: ``command_hash = H(prev_hash, seq, recorded_at,
  idempotency_key, kind, payload)``;
- when its outcome is recorded (the events, or the rejection): ``hash = H(command_hash, outcome)``.

The next entry's ``prev_hash`` is the previous entry's ``hash``, so the head hash pins every
command *and* every outcome before it: editing a recorded event amount breaks the chain at that
entry exactly like editing a command does. ``H`` is SHA-256 over the canonical JSON of a list that
starts with :data:`HASH_VERSION`, computed over the stored text columns as they are (so checking
the chain never depends on re-serializing anything). The first entry's ``prev_hash`` is
:data:`GENESIS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _string  # what the encoder uses with ensure_ascii=False
from typing import Any

HASH_VERSION = "solvent-log/1"
GENESIS = "0" * 64


def plain(value: Any) -> Any:
    """JSON-ready plain data: decimals as strings, tuples as lists, sets sorted."""
    # Exact types first (what commands and events hold): the hot path of every log write.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {key if type(key) is str else str(key): plain(item) for key, item in value.items()}
    if kind is tuple or kind is list:
        return [plain(item) for item in value]
    return _plain(value)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, (Decimal, Fraction)):
        return str(value)
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain(item) for item in value), key=canonical)
    if is_dataclass(value) and not isinstance(value, type):
        return {name: plain(getattr(value, name)) for name in field_names(type(value))}
    raise TypeError(f"{type(value).__name__} is not plain data: {value!r}")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, in order (cached: ``fields()`` is slow on a hot path)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def record(value: Any) -> dict[str, Any]:
    """``{"kind", ...fields}`` of a command or an event: its ``to_dict()`` without the deep copy
    (nested values are left as they are; :func:`canonical` of both is the same text)."""
    return {"kind": value.kind, **{name: getattr(value, name) for name in field_names(type(value))}}


_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def canonical(value: Any) -> str:
    # = json.dumps(plain(value), sort_keys=True, ...), without building an encoder per call
    return _ENCODE(plain(value))


FLAT = frozenset({str, int, bool, type(None)})  # values that plain() leaves as they are

# The C encoder with canonical's settings, called directly (JSONEncoder.encode builds one per call).
# No default and no circular check: only for values already plain (see canonical_flat).
_C_ENCODE = None if _c_make_encoder is None else _c_make_encoder(None, None, _string, None, ":", ",", True,
                                                                 False, False)


def is_flat(record_: dict[str, Any]) -> bool:
    """True if a record's values are all str, int, bool or None (exact types): then ``plain``
    changes nothing in it, provided its keys are str (field names)."""
    for value in record_.values():
        if type(value) not in FLAT:
            return False
    return True


def canonical_flat(value: Any) -> str:
    """``canonical(value)`` of a value that is already plain (str keys; str, int, bool, None,
    lists and dicts of them): the same text, without copying it through :func:`plain` first."""
    if _C_ENCODE is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODE(value)
    return "".join(_C_ENCODE(value, 0))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _flat_list(items: list) -> str:
    """``canonical(items)`` for a list of str, int and None (what the hashes cover), by hand."""
    parts = []
    for item in items:
        kind = type(item)
        if kind is str:
            parts.append(_string(item))
        elif kind is int:
            parts.append(int.__repr__(item))
        elif item is None:
            parts.append("null")
        else:
            return canonical(items)
    return "[" + ",".join(parts) + "]"


def command_hash(prev_hash: str, seq: int, recorded_at: str, idempotency_key: str | None, kind: str,
                 payload: str) -> str:
    return sha256_hex(_flat_list([HASH_VERSION, prev_hash, seq, recorded_at, idempotency_key, kind, payload]))


def entry_hash(command_hash_: str, outcome: str) -> str:
    return sha256_hex(_flat_list([HASH_VERSION, command_hash_, outcome]))
