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
from dataclasses import fields, is_dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any, Mapping

HASH_VERSION = "solvent-log/1"
GENESIS = "0" * 64


def plain(value: Any) -> Any:
    """JSON-ready plain data: decimals as strings, tuples as lists, sets sorted."""
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
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    raise TypeError(f"{type(value).__name__} is not plain data: {value!r}")


def canonical(value: Any) -> str:
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def command_hash(prev_hash: str, seq: int, recorded_at: str, idempotency_key: str | None, kind: str,
                 payload: str) -> str:
    return sha256_hex(canonical([HASH_VERSION, prev_hash, seq, recorded_at, idempotency_key, kind, payload]))


def entry_hash(command_hash_: str, outcome: str) -> str:
    return sha256_hex(canonical([HASH_VERSION, command_hash_, outcome]))
