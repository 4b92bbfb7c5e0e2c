"""The store: the engine's command log (the source of truth), snapshots, replay and verify.

SQLAlchemy Core over SQLite (embedded default, a file) or PostgreSQL (psycopg 3), one schema for
both. The command log is append-then-apply and hash-chained; see :mod:`.log` (tables and writes),
:mod:`.canonical` (canonical JSON and the chain), :mod:`.durable` (the engine behind its log, crash
semantics), :mod:`.snapshots` (fast restart, the state digest) and :mod:`.audit` (replay, verify).
"""

from .audit import LogMismatch, ReplayReport, check_chain, replay_log, verify_log
from .canonical import GENESIS, canonical
from .durable import BatchItem, BatchResult, DurableEngine, Submitted, outcome_of
from .log import CommandLog, Entry, IdempotencyConflict, PendingEntry, Snapshot, StoreError
from .schema import DEFAULT_URL, database_url
from .snapshots import dump_engine, engine_state, load_engine, state_digest

__all__ = [
    "DEFAULT_URL",
    "GENESIS",
    "BatchItem",
    "BatchResult",
    "CommandLog",
    "DurableEngine",
    "Entry",
    "IdempotencyConflict",
    "LogMismatch",
    "PendingEntry",
    "ReplayReport",
    "Snapshot",
    "StoreError",
    "Submitted",
    "canonical",
    "check_chain",
    "database_url",
    "dump_engine",
    "engine_state",
    "load_engine",
    "outcome_of",
    "replay_log",
    "state_digest",
    "verify_log",
]
