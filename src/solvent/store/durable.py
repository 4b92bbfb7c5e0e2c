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

Group commit (``submit_batch``, what the service uses): a batch of commands is applied in order
and written with its outcomes in ONE transaction, before any of them is acknowledged. Nothing is
pending in between: a crash before the commit leaves none of the batch in the log (and none of it
was acknowledged); after it, all of it, complete. The single-command path above and the batch
path write the same log, and replay cannot tell them apart. ``submit_batch`` is
``commit(stage(...))``: :meth:`DurableEngine.stage` applies a batch and builds its entries,
:meth:`DurableEngine.commit` writes them; the service stages the next batch while the previous
one is being written (the fsync), and answers a batch only after its commit. A failed write fails
the batches staged after it too, and the engine is rebuilt from the log before anything else is
staged; :meth:`DurableEngine.settle` waits for the commits in flight (reads call it).

While rebuilding, every recorded outcome is compared with the recomputed one; a difference
(:class:`~solvent.store.audit.LogMismatch`) means the log or the code changed underneath, and the
engine refuses to start. If applying a command raises something other than ``CommandRejected``
(a defect), the entry stays pending and this DurableEngine refuses further commands: a restart
retries the entry.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from itertools import islice
from typing import Any, NamedTuple

from ..engine import CommandRejected, Engine
from ..engine.commands import Command, command_from_dict
from .canonical import GENESIS, canonical, canonical_flat, command_hash, entry_hash, is_flat, record
from .log import CommandLog, Entry, IdempotencyConflict, PendingEntry, StoreError, timestamp_text
from .schema import redacted


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


def outcome_text(engine: Engine, command: Command) -> str:
    """``canonical(outcome_of(engine, command))``, without deep-copying every event first."""
    try:
        events = engine.apply(command)
    except CommandRejected as rejected:
        return canonical({"rejected": {"kind": rejected.kind, "reason": rejected.reason, "field": rejected.field}})
    records = [record(event) for event in events]
    for one in records:
        if not is_flat(one):
            return canonical({"events": records})
    return canonical_flat({"events": records})  # the common case: every field a str, int, bool or None


def rejection_error(entry: Entry) -> CommandRejected:
    info = entry.rejection or {}
    error = CommandRejected(info.get("kind", entry.kind), info.get("reason", ""), info.get("field"))
    error.seq = entry.seq
    return error


_UNKNOWN = object()
RECENT_ENTRIES = 4096  # entries kept in memory after their commit, for the event streams


class BatchItem(NamedTuple):
    """One command of a :meth:`DurableEngine.submit_batch`. Items with the same ``group`` (one
    client's batch request) stop at the first one refused: see :class:`NotAttempted`."""

    command: Command
    key: str | None = None
    recorded_at: datetime | str | None = None
    group: int | None = None


class NotAttempted(StoreError):
    """An earlier command of the same group was refused before being written (an idempotency
    conflict, or ``check``): this one was not tried, and nothing was written for it."""

    def __init__(self, index: int) -> None:
        super().__init__(f"not attempted: command {index} of the same batch was refused")
        self.index = index


class BatchResult(NamedTuple):
    """What became of one item of a batch: its entry (new, or the one its idempotency key
    already named: ``replayed``), or ``error``, and then nothing was written for it."""

    entry: Entry | None = None
    replayed: bool = False
    error: BaseException | None = None

    def submitted(self) -> Submitted:
        """:meth:`DurableEngine.submit`'s answer: Submitted, or raises (CommandRejected, ...)."""
        if self.error is not None:
            raise self.error
        assert self.entry is not None  # a result has its entry or its error
        return DurableEngine._answer(self.entry)


class Staged:
    """A batch applied to the engine and not written yet (:meth:`DurableEngine.stage`)."""

    __slots__ = ("after", "applied", "generation", "results", "snapshot_rows", "written")

    def __init__(self, results: list, written: list, after: Entry | None, snapshot_rows: list,
                 generation: int) -> None:
        self.results, self.written, self.after = results, written, after
        self.snapshot_rows, self.generation = snapshot_rows, generation
        self.applied = False  # some command of it was applied to the engine


class DurableEngine:
    """The engine plus its log. ``engine`` is the live state; ``seq`` the last entry applied."""

    def __init__(self, log: CommandLog | str, *, engine_factory: Callable[[], Engine] = Engine,
                 snapshot_every: int | None = None, use_snapshots: bool = True,
                 remember: int = RECENT_ENTRIES) -> None:
        self._owns_log = not isinstance(log, CommandLog)
        self.log: CommandLog = log if isinstance(log, CommandLog) else CommandLog(log)
        self.engine_factory = engine_factory
        self.snapshot_every = snapshot_every
        self.seq = 0
        self.completed: list[int] = []  # pending entries whose outcome this instance recorded at start
        self.restored_from: int | None = None  # the snapshot's seq, if one was used
        self._lock = threading.Lock()
        self._head: Entry | object | None = _UNKNOWN  # the last entry, as submit_batch last wrote it
        self._broken: str | None = None
        self._recent: deque[Entry] = deque(maxlen=remember)  # the last entries written, in seq order
        self._recent_lock = threading.Lock()
        # Staged batches (applied, not yet written; see stage and commit): how many, their keys,
        # the last seq they reach, and a generation that a failed write ends.
        self._commit_lock = threading.Lock()
        self._settled = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._inflight_keys: dict[str, Entry] = {}
        self._generation = 0
        self._rebuild_needed = False
        self.engine = self._restore(use_snapshots)
        self._staged_seq = self.seq

    # ---------------------------------------------------------------- start

    def _restore(self, use_snapshots: bool, *, check_chain: bool = True) -> Engine:
        """The engine rebuilt from the latest usable snapshot and the entries after it. With
        ``check_chain`` (at start), the whole hash chain is checked first, entry by entry: a log that
        does not verify (an edited, missing, reordered or unlinked entry) is refused with
        :class:`LogMismatch` naming the seq, until an operator recovers it (``solvent recover``)."""
        from .audit import ChainChecker, LogMismatch, describe_difference

        engine, start = None, 0
        snapshot = self.log.latest_snapshot() if use_snapshots else None
        last = self.log.last()
        if snapshot is not None and (last is None or snapshot.seq > last.seq):
            raise LogMismatch(snapshot.seq, f"a snapshot was taken at entry {snapshot.seq} but the log ends at "
                                            f"{0 if last is None else last.seq}: entries were removed")
        if snapshot is not None:
            try:
                engine = snapshot.load()  # data only, checked against its digest
                start = snapshot.seq
                self.restored_from = snapshot.seq
            except Exception as error:
                warnings.warn(f"snapshot at entry {snapshot.seq} not used ({error}); replaying the whole log",
                              RuntimeWarning, stacklevel=3)
                engine, start = None, 0
        if engine is None:
            engine = self.engine_factory()
        chain = None
        if check_chain:
            # From the snapshot's own entry on (the entries before it: check_prefix, which the
            # service runs in the background, and verify): a restart costs the same at any length.
            first = self.log.entry(start) if start else None
            chain = ChainChecker() if first is None else ChainChecker(first.prev_hash, start)
            if first is not None:
                chain.check(first)
        self.seq = start
        for entry in self.log.entries(start + 1):
            if chain is not None:
                chain.check(entry)
            outcome = outcome_text(engine, entry.command())
            if entry.pending:
                self.log.record_outcome(entry.seq, json.loads(outcome))
                self.completed.append(entry.seq)
            elif outcome != entry.outcome:
                raise LogMismatch(entry.seq, describe_difference(entry.outcome, outcome))
            self.seq = entry.seq
        return engine

    # ---------------------------------------------------------------- commands

    def submit(self, command: Command, recorded_at: datetime | str | None = None,
               key: str | None = None) -> Submitted:
        """Append, apply, record; see the module docstring. Thread-safe (one command at a time)."""
        self.settle()
        with self._lock:
            if self._broken:
                raise StoreError(f"this engine stopped at entry {self._broken}; reopen the log to recover")
            self._head = _UNKNOWN
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
            self.seq = self._staged_seq = entry.seq
            self._remember([entry])
            if self.snapshot_every and entry.seq % self.snapshot_every == 0:
                self.log.snapshot(entry.seq, self.engine)
        return self._answer(entry)

    def submit_batch(self, items: Sequence[BatchItem], *,
                     check: Callable[[Engine, Command], None] | None = None) -> list[BatchResult]:
        """Group commit: apply a batch of commands in order and record them in ONE transaction.

        For each item, in order: a known idempotency key (in the log, or earlier in this batch)
        answers its original entry, applying nothing (:class:`IdempotencyConflict` if it names
        another command); otherwise ``check(engine, command)`` (validation at the edge, against
        the state every earlier command of the batch produced) may refuse it, and nothing is
        written for it; otherwise the command, decoded from its canonical payload exactly as a
        replay decodes it, is applied to the engine and its complete entry (command, outcome,
        both hashes) is chained after the previous one. Then every new entry (and any snapshot
        due, of the state right after its entry) is written in one transaction, and only then
        are the results returned: acknowledged ⇒ durable, seq order = batch order.

        Groups. Items sharing a ``group`` (one client's batch request) are taken in order, as a
        client sending them one by one and stopping at the first refusal would: once one of
        them is refused before being written (idempotency conflict, ``check``, undecodable), the
        group's later items are answered :class:`NotAttempted` and nothing is written for them;
        the ones before it are applied and written as usual. A command the *engine* refuses is
        written with its refusal and does not stop its group.

        Crash semantics. Nothing of the batch is in the log until its transaction commits, and
        then all of it is, with its outcomes: a crash before the commit loses only commands no
        one was answered for (a client retries under its idempotency key); a crash after it
        loses nothing. No entry is left pending, except when applying a command raises
        something other than ``CommandRejected`` (a defect): as in :meth:`submit`, that entry is
        written pending (after the ones before it, complete), the items after it are refused
        with :class:`StoreError`, this instance refuses further commands, and a restart applies
        the pending entry exactly once. If the write itself fails, the engine has applied
        commands the log does not hold: it is rebuilt from the log (the batch's items are
        answered with :class:`StoreError`; nothing of them was written).
        """
        return self.commit(self.stage(items, check=check), settle=True)

    def stage(self, items: Sequence[BatchItem], *,
              check: Callable[[Engine, Command], None] | None = None) -> Staged:
        """The first half of :meth:`submit_batch`: apply the batch to the engine and build its
        entries, without writing them. :meth:`commit` writes them (call it once per stage, in
        stage order; one thread may stage the next batch while another commits this one). Until
        then the engine holds a state the log does not: :meth:`settle` waits for the commits."""
        with self._lock:
            if self._rebuild_needed:
                self._wait_in_flight()  # the batches staged before the failure are written or failed
                self._rebuild()
            with self._settled:
                generation = self._generation
            staged = Staged([None] * len(items), [], None, [], generation)
            try:
                self._stage(staged, items, check)
            except BaseException:
                if staged.applied:  # the engine holds commands that will not be written: rebuild it
                    with self._settled:  # (after the batches staged before this one are written)
                        self._rebuild_needed = True
                raise
            with self._settled:
                self._in_flight += 1
            return staged

    def _stage(self, staged: Staged, items: Sequence[BatchItem],
               check: Callable[[Engine, Command], None] | None) -> None:
        from .snapshots import FORMAT, dump_engine, load_engine, state_digest

        results = staged.results  # (called under self._lock)
        if self._broken:
            error = StoreError(f"this engine stopped at entry {self._broken}; reopen the log to recover")
            staged.results = [BatchResult(error=error) for _ in items]
            return
        prepared: list[tuple[str, Command] | None] = []
        for index, item in enumerate(items):
            try:
                data = record(item.command)
                # What replay applies: the command decoded from its payload. When every field is
                # a str, int, bool or None, that is the command itself (JSON round-trips them),
                # and its canonical text needs no copy through plain().
                if is_flat(data):
                    prepared.append((canonical_flat(data), item.command))
                else:
                    payload = canonical(data)
                    prepared.append((payload, command_from_dict(json.loads(payload))))
            except Exception as error:
                prepared.append(None)
                results[index] = BatchResult(error=error)
        # The head as this instance last staged it (re-read after any other kind of write); if
        # another writer appended since, the insert of the next seq fails: nothing is forked.
        # Keys of staged batches not written yet are known here, not in the log.
        head_known = self._head is not _UNKNOWN
        with self._settled:
            inflight = dict(self._inflight_keys)
        wanted = [item.key for item in items if item.key is not None and item.key not in inflight]
        last, known = self.log.head_and_keys(wanted, head=not head_known)
        known.update((item.key, inflight[item.key]) for item in items if item.key in inflight)
        if head_known:
            assert self._head is None or isinstance(self._head, Entry)  # known: not the _UNKNOWN sentinel
            last = self._head
        staged.after = last
        if last is not None and last.pending:
            refusal: StoreError = PendingEntry(f"entry {last.seq} has no outcome yet: reopen the log to complete it")
            staged.results = [BatchResult(error=refusal) for _ in items]
            return
        if (0 if last is None else last.seq) != self._staged_seq:
            refusal = StoreError(f"another writer appended to {redacted(self.log.url)}: one writer per log")
            staged.results = [BatchResult(error=refusal) for _ in items]
            return
        previous, seq = (GENESIS, 0) if last is None else (last.hash, last.seq)
        assert previous is not None  # the head is complete (not pending, checked above): it has its hash
        now = timestamp_text(None)  # one commit, one time, unless an item brings its own
        written = staged.written
        snapshot_rows = staged.snapshot_rows
        stopped: BaseException | None = None
        refused: dict[int, int] = {}  # group -> the position (within its group) of its refused item
        position: dict[int, int] = {}  # group -> items of it seen so far
        for index, item in enumerate(items):
            group = item.group
            if group is not None:
                at = position[group] = position.get(group, -1) + 1
                if group in refused:
                    results[index] = BatchResult(error=NotAttempted(refused[group]))
                    continue
            if results[index] is not None:
                if group is not None:
                    refused[group] = at
                continue
            if stopped is not None:
                results[index] = BatchResult(error=StoreError(
                    f"this engine stopped at entry {self._broken}; reopen the log to recover"))
                continue
            ready = prepared[index]
            assert ready is not None  # an item that did not parse has its result (the error) already
            payload, command = ready
            if item.key is not None and item.key in known:
                original = known[item.key]
                if original.payload != payload:
                    results[index] = BatchResult(error=IdempotencyConflict(
                        f"idempotency key {item.key!r} already names entry {original.seq} ({original.kind}), "
                        "a different command"))
                    if group is not None:
                        refused[group] = at
                else:
                    results[index] = BatchResult(original, replayed=True)
                continue
            if check is not None:
                try:
                    check(self.engine, command)
                except Exception as error:
                    results[index] = BatchResult(error=error)
                    if group is not None:
                        refused[group] = at
                    continue
            seq += 1
            staged.applied = True
            when = now if item.recorded_at is None else timestamp_text(item.recorded_at)
            digest = command_hash(previous, seq, when, item.key, command.kind, payload)
            try:
                outcome = outcome_text(self.engine, command)
            except BaseException as error:  # a defect: written pending, see the docstring
                written.append(Entry(seq, when, item.key, command.kind, payload, previous, digest, None, None))
                self._broken = str(seq)
                stopped = error
                results[index] = BatchResult(error=error)
                continue
            chained = entry_hash(digest, outcome)
            entry = Entry(seq, when, item.key, command.kind, payload, previous, digest, outcome, chained)
            written.append(entry)
            previous = chained
            results[index] = BatchResult(entry)
            if item.key is not None:
                known[item.key] = entry
            if self.snapshot_every and seq % self.snapshot_every == 0:
                state = dump_engine(self.engine)
                snapshot_rows.append({"seq": seq, "taken_at": timestamp_text(None), "format": FORMAT,
                                      "state": state, "digest": state_digest(self.engine)})
                # Undo (Engine._roll_back) starts from this state: the journal before it is dropped.
                self.engine.set_rollback_base(partial(load_engine, state))
        fresh = {}
        for entry in written:
            if entry.idempotency_key is not None and not entry.pending:
                fresh[entry.idempotency_key] = entry
        with self._settled:
            self._inflight_keys.update(fresh)
        if written:
            self._staged_seq = written[-1].seq
            self._head = _UNKNOWN if written[-1].pending else written[-1]

    def commit(self, staged: Staged, *, settle: bool = False) -> list[BatchResult]:
        """Write a staged batch in ONE transaction and return its results (see
        :meth:`submit_batch`). If an earlier staged batch could not be written, nothing of this
        one is either (its items answer StoreError), and the engine is rebuilt from the log by
        the next :meth:`stage` or :meth:`settle`."""
        return self.commit_all([staged], settle=settle)[0]

    def commit_all(self, batches: Sequence[Staged], *, settle: bool = False) -> list[list[BatchResult]]:
        """:meth:`commit` of several staged batches (in stage order) in ONE transaction: what
        the service's committer does with every batch staged while the previous write was
        being synced, so that a slow fsync is paid once for all of them. All of them are written,
        or none (their items answer StoreError, as in :meth:`commit`)."""
        written: list[Entry] = []
        try:
            with self._commit_lock:
                live = [staged for staged in batches if staged.generation == self._generation]
                for staged in batches:
                    if staged.generation != self._generation:
                        self._fail(staged, StoreError("an earlier batch could not be written: this one was not either"))
                for staged in live:
                    written.extend(staged.written)
                if live:
                    try:
                        self.log.write_entries(written, live[0].after,
                                               [row for staged in live for row in staged.snapshot_rows])
                    except BaseException as error:
                        if written:
                            with self._settled:
                                self._generation += 1  # every batch staged after these fails too
                                self._rebuild_needed = True
                        failure = error if isinstance(error, StoreError) else StoreError(
                            f"the log could not be written: {type(error).__name__}: {error}")
                        for staged in live:
                            self._fail(staged, failure)
                        if not isinstance(error, Exception):
                            raise
                    else:
                        self._remember(written)
                        done = [entry for entry in written if not entry.pending]
                        if done:
                            self.seq = done[-1].seq
        finally:
            with self._settled:
                for entry in written:
                    key = entry.idempotency_key
                    if key is not None and self._inflight_keys.get(key) is entry:
                        del self._inflight_keys[key]
                self._in_flight -= len(batches)
                self._settled.notify_all()
            if settle:
                self.settle()
        return [staged.results for staged in batches]

    def _fail(self, staged: Staged, failure: StoreError) -> None:
        """A staged batch was not written: its new entries answer ``failure``, and so does a
        retry that named an entry not written (yet) either."""
        with self._settled:
            for entry in staged.written:
                key = entry.idempotency_key
                if key is not None and self._inflight_keys.get(key) is entry:
                    del self._inflight_keys[key]
        results = staged.results
        for index, result in enumerate(results):
            if result is not None and result.entry is not None and result.entry.seq > self.seq:
                results[index] = BatchResult(error=failure)

    def check_prefix(self) -> int:
        """Check the hash chain of the entries up to the snapshot this instance started from (the
        rest was checked at start). On a break, this instance refuses further commands (a restart
        then refuses the log, until ``solvent recover``) and the LogMismatch is raised. Returns how
        many entries were checked. Safe to run on another thread while commands are served."""
        from .audit import ChainChecker, LogMismatch

        end = self.restored_from or 0
        checker = ChainChecker()
        try:
            for entry in self.log.entries(1, end):
                checker.check(entry)
            if end and checker.expected != end + 1:
                raise LogMismatch(checker.expected, f"entry {checker.expected} is missing")
        except LogMismatch as mismatch:
            self._broken = f"{mismatch.seq} (the hash chain does not verify: {mismatch.message})"
            raise
        return end

    @property
    def rebuild_pending(self) -> bool:
        """A write failed: the next :meth:`stage` (or :meth:`settle`) rebuilds the engine from the log."""
        return self._rebuild_needed

    def settle(self) -> None:
        """Wait until every staged batch is committed (or failed); after a failed write, rebuild
        the engine from the log. Then the engine's state is the log's."""
        if self._wait_in_flight():
            with self._lock:
                if self._rebuild_needed:
                    self._wait_in_flight()
                    self._rebuild()

    def _wait_in_flight(self) -> bool:
        """Wait until no staged batch is waiting for its commit; True if a rebuild is needed."""
        with self._settled:
            while self._in_flight:
                self._settled.wait()
            return self._rebuild_needed

    def _remember(self, entries: list[Entry]) -> None:
        if not entries:
            return
        with self._recent_lock:
            if self._recent and entries[0].seq != self._recent[-1].seq + 1:
                self._recent.clear()  # only ever a contiguous run of the log
            self._recent.extend(entries)

    def recent(self, from_seq: int, limit: int = 500) -> list[Entry] | None:
        """Up to ``limit`` entries from ``from_seq`` on, from memory, as this instance committed
        them (what the event streams read); None when ``from_seq`` is older than what is kept
        (read the log instead). Thread-safe."""
        with self._recent_lock:
            if not self._recent:
                return [] if from_seq > self.seq else None
            if from_seq < self._recent[0].seq:
                return None
            behind = self._recent[-1].seq - from_seq + 1  # entries from from_seq to the last one
            if behind <= 0:
                return []
            entries = list(islice(reversed(self._recent), behind))  # from the end: O(behind)
        entries.reverse()
        return entries[:limit]

    def _rebuild(self) -> None:
        """The engine applied commands that are not in the log: rebuild it from the log, or stop.
        (Under ``self._lock``, with no batch in flight.)"""
        with self._recent_lock:
            self._recent.clear()
        with self._settled:
            self._rebuild_needed = False
            self._inflight_keys.clear()
        self._head = _UNKNOWN
        try:
            self.log.check_file()  # a database file that went away is not reopened (that would create it empty)
            self.engine = self._restore(True, check_chain=False)  # checked at start; only this instance wrote since
        except Exception as error:
            self._broken = f"{self.seq + 1} ({error})"
        self._staged_seq = self.seq

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
        self.settle()
        with self._lock:
            if self.seq == 0:
                raise StoreError("nothing to snapshot: the log is empty")
            return self.log.snapshot(self.seq, self.engine)
