"""An engine behind its command log: append, then apply, then record the outcome.

``DurableEngine(log).submit(command, recorded_at, key)``:

1. appends the command (committed: from here on it is part of history);
2. applies the command *decoded from the stored payload* to the engine, so that the live run and
   every replay apply exactly the same data;
3. records the outcome in the same entry (committed) and only then acknowledges: returns
   ``Submitted(seq, events)``, or raises :class:`~solvent.engine.CommandRejected` (with ``.seq``)
   when the engine refused it. A refused command stays in the log with its reason: the log is
   the history of what was asked, and replay reproduces the refusal.

Crash semantics. If the process dies after step 1 and before step 3 commits, the entry is
*pending*. Reopening the log (``DurableEngine(log)``) rebuilds the engine from the latest usable
snapshot plus the entries after it, and applies the pending entry, once, to that rebuilt state
(the engine is deterministic, so its outcome is the one the dead process would have recorded),
then records the outcome. The command was never acknowledged, but it was durable, so it is
applied; it is never applied twice, because the in-memory state of the dead process is gone and
the rebuilt one includes each entry exactly once. Every acknowledged command has its outcome
committed before the acknowledgement. A retry of an unacknowledged command under the same
idempotency key returns the recorded entry instead of appending it again.

While rebuilding, every recorded outcome is compared with the recomputed one; a difference
(:class:`~solvent.store.audit.LogMismatch`) means the log or the code changed underneath, and the
engine refuses to start. If applying a command raises something other than ``CommandRejected``
(a defect), the entry stays pending and this DurableEngine refuses further commands: a restart
retries the entry.
"""

from __future__ import annotations

import threading
import warnings
from datetime import datetime
from typing import Any, Callable, NamedTuple

from ..engine import CommandRejected, Engine
from ..engine.commands import Command
from .canonical import canonical
from .log import CommandLog, Entry, StoreError


class Submitted(NamedTuple):
    seq: int
    events: list[dict[str, Any]]


def outcome_of(engine: Engine, command: Command) -> dict[str, Any]:
    """Apply a command: ``{"events": [...]}``, or ``{"rejected": {...}}`` (the engine unchanged)."""
    try:
        events = engine.apply(command)
    except CommandRejected as rejected:
        return {"rejected": {"kind": rejected.kind, "reason": rejected.reason, "field": rejected.field}}
    return {"events": [event.to_dict() for event in events]}


def rejection_error(entry: Entry) -> CommandRejected:
    info = entry.rejection or {}
    error = CommandRejected(info.get("kind", entry.kind), info.get("reason", ""), info.get("field"))
    error.seq = entry.seq
    return error


class DurableEngine:
    """The engine plus its log. ``engine`` is the live state; ``seq`` the last entry applied."""

    def __init__(self, log: CommandLog | str, *, engine_factory: Callable[[], Engine] = Engine,
                 snapshot_every: int | None = None, use_snapshots: bool = True) -> None:
        self._owns_log = not isinstance(log, CommandLog)
        self.log = CommandLog(log) if self._owns_log else log
        self.engine_factory = engine_factory
        self.snapshot_every = snapshot_every
        self.seq = 0
        self.completed: list[int] = []  # pending entries whose outcome this instance recorded at start
        self.restored_from: int | None = None  # the snapshot's seq, if one was used
        self._lock = threading.Lock()
        self._broken: str | None = None
        self.engine = self._restore(use_snapshots)

    # ---------------------------------------------------------------- start

    def _restore(self, use_snapshots: bool) -> Engine:
        from .audit import LogMismatch, describe_difference
        from .snapshots import state_digest

        engine, start = None, 0
        snapshot = self.log.latest_snapshot() if use_snapshots else None
        if snapshot is not None:
            try:
                engine = snapshot.load()
                if state_digest(engine) != snapshot.digest:
                    raise ValueError("its state does not match its digest")
                start = snapshot.seq
                self.restored_from = snapshot.seq
            except Exception as error:  # noqa: BLE001 - any unreadable snapshot: replay everything
                warnings.warn(f"snapshot at entry {snapshot.seq} not used ({error}); replaying the whole log",
                              RuntimeWarning, stacklevel=3)
                engine, start = None, 0
        if engine is None:
            engine = self.engine_factory()
        self.seq = start
        for entry in self.log.entries(start + 1):
            outcome = outcome_of(engine, entry.command())
            if entry.pending:
                self.log.record_outcome(entry.seq, outcome)
                self.completed.append(entry.seq)
            elif canonical(outcome) != entry.outcome:
                raise LogMismatch(entry.seq, describe_difference(entry.outcome, canonical(outcome)))
            self.seq = entry.seq
        return engine

    # ---------------------------------------------------------------- commands

    def submit(self, command: Command, recorded_at: datetime | str | None = None,
               key: str | None = None) -> Submitted:
        """Append, apply, record; see the module docstring. Thread-safe (one command at a time)."""
        with self._lock:
            if self._broken:
                raise StoreError(f"this engine stopped at entry {self._broken}; reopen the log to recover")
            entry, new = self.log.append_entry(command, recorded_at, key)
            if not new:  # a retry under a known key: the recorded outcome, nothing applied
                return self._answer(entry)
            try:
                outcome = outcome_of(self.engine, entry.command())
                entry = self.log.record_outcome(entry.seq, outcome)
            except BaseException:
                # Applied or half-applied in memory, outcome not recorded: only a restart (which
                # rebuilds from the log and completes the entry) knows the true state again.
                self._broken = str(entry.seq)
                raise
            self.seq = entry.seq
            if self.snapshot_every and entry.seq % self.snapshot_every == 0:
                self.log.snapshot(entry.seq, self.engine)
        return self._answer(entry)

    @staticmethod
    def _answer(entry: Entry) -> Submitted:
        if entry.pending:  # only possible for another writer's entry
            raise StoreError(f"entry {entry.seq} has no outcome yet")
        if entry.rejection is not None:
            raise rejection_error(entry)
        return Submitted(entry.seq, entry.events)

    def close(self) -> None:
        """Close the log if this engine opened it (from a URL)."""
        if self._owns_log:
            self.log.close()

    def snapshot(self) -> str:
        """Snapshot the engine at the last applied entry; returns the state digest."""
        with self._lock:
            if self.seq == 0:
                raise StoreError("nothing to snapshot: the log is empty")
            return self.log.snapshot(self.seq, self.engine)
