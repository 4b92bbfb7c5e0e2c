"""The command log: the source of truth of an engine's history.

``CommandLog(url)`` opens (and by default creates) the log in an SQLite file or a PostgreSQL
database. Each entry is written in two steps, each one committed transaction:

1. :meth:`CommandLog.append`: the command, with its sequence number, timestamp, idempotency key
   and ``command_hash`` chained to the previous entry. Durable before the engine sees it.
2. :meth:`CommandLog.record_outcome`: what the engine did with it (its events, or why it refused
   it), and ``hash``, which chains the outcome too (see :mod:`.canonical`).

:meth:`CommandLog.write_entries` is the group-commit path: entries already complete (command,
outcome, both hashes, see :meth:`~solvent.store.durable.DurableEngine.submit_batch`) are written
many at a time in one transaction, all or none.

So at most one entry, the last, can be *pending* (appended, outcome not yet recorded): the process
stopped between the two steps. :class:`~solvent.store.durable.DurableEngine` completes it when it
reopens the log; until then :meth:`append` refuses to add anything after it.

One writer per log: the engine's state lives in one process. A second writer cannot fork the
chain: the primary key on ``seq`` (and the unique idempotency key) make its append fail.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..core.errors import SolventError
from ..engine import Engine
from ..engine.commands import Command, command_from_dict
from .canonical import GENESIS, canonical, command_hash, entry_hash
from .schema import commands, database_url, metadata, redacted, snapshots, sqlite_file


class StoreError(SolventError):
    """The log cannot do what was asked (missing, pending entry, conflicting writer or key)."""


class PendingEntry(StoreError):
    """The last entry has no outcome yet: reopen the log with a DurableEngine to complete it."""


class IdempotencyConflict(StoreError):
    """An idempotency key already names a different command."""


@dataclass(frozen=True)
class Entry:
    """One row of the log, as stored (payload and outcome are canonical JSON text)."""

    seq: int
    recorded_at: str
    idempotency_key: str | None
    kind: str
    payload: str
    prev_hash: str
    command_hash: str
    outcome: str | None
    hash: str | None

    @property
    def pending(self) -> bool:
        return self.outcome is None

    def command(self) -> Command:
        """The command, decoded from the payload (what the engine applies, live and in replay)."""
        return command_from_dict(json.loads(self.payload))

    @property
    def result(self) -> dict[str, Any] | None:
        return None if self.outcome is None else json.loads(self.outcome)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events the engine produced (empty if rejected or pending)."""
        result = self.result
        return [] if result is None else list(result.get("events", []))

    @property
    def rejection(self) -> dict[str, Any] | None:
        """``{"kind", "reason", "field"}`` if the engine refused the command, else None."""
        result = self.result
        return None if result is None else result.get("rejected")


@dataclass(frozen=True)
class Snapshot:
    seq: int
    taken_at: str
    format: str
    digest: str
    state: bytes

    def load(self) -> Engine:
        """The engine as it was after entry ``seq``: data only (never a pickle, see
        :mod:`.snapshots`), refused unless its state hashes to the digest stored with it."""
        from .snapshots import SnapshotRefused, load_engine, state_digest

        engine = load_engine(self.state, self.format)
        if state_digest(engine) != self.digest:
            raise SnapshotRefused(f"the state of the snapshot at entry {self.seq} does not match its digest")
        return engine


ENTRY_FIELDS = tuple(f.name for f in fields(Entry))
COLUMNS = ", ".join(ENTRY_FIELDS)  # the commands table's columns, in Entry's order
assert tuple(column.name for column in commands.columns) == ENTRY_FIELDS


def astuple_entry(entry: Entry) -> tuple:
    return (entry.seq, entry.recorded_at, entry.idempotency_key, entry.kind, entry.payload, entry.prev_hash,
            entry.command_hash, entry.outcome, entry.hash)


def timestamp_text(value: datetime | str | None) -> str:
    """ISO-8601 text of a timestamp (now, in UTC, if None). The store is an edge: it may read the
    clock; the engine never does (the timestamp is not a command field)."""
    if value is None:
        value = datetime.now(UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise StoreError("recorded_at: give a timezone-aware datetime (or ISO-8601 text)")
        return value.isoformat()
    return str(value)


def _entry(row) -> Entry:
    return Entry(int(row.seq), row.recorded_at, row.idempotency_key, row.kind, row.payload, row.prev_hash,
                 row.command_hash, row.outcome, row.hash)


class CommandLog:
    """The command log in an SQLite file or a PostgreSQL database (see the module docstring)."""

    def __init__(self, url: str | Path, *, create: bool = True, echo: bool = False) -> None:
        self.url = database_url(url)
        path = sqlite_file(self.url)
        if path is not None and not create and not path.is_file():
            raise StoreError(f"no log at {path}")
        try:
            # SQLite: room in the driver's statement cache for the group commit's statement
            # shapes (see _insert_many) next to everything else.
            extra = {"connect_args": {"cached_statements": 512}} if path is not None else {}
            self.db = sa.create_engine(self.url, echo=echo, **extra)
        except (sa.exc.ArgumentError, ImportError) as error:
            raise StoreError(f"cannot open {self.url.split('://', 1)[0]}:// logs: {error}") from None
        self._mark = "?" if self.db.dialect.paramstyle in ("qmark", "numeric") else "%s"
        self._autocheckpoint = True
        # Driver connections of the group-commit path (see _driver), one per thread, and all of them
        # (to close them).
        self._drivers = threading.local()
        self._driver_connections: list = []
        self._drivers_lock = threading.Lock()
        self._select_keys: dict[int, str] = {}
        self._inserts: dict[int, str] = {}
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        if self.db.dialect.name == "sqlite":
            sa.event.listen(self.db, "connect", self._sqlite_pragmas)
        self._file = path
        self._inode: int | None = None
        self._lost: str | None = None  # set once the SQLite file was removed or replaced: no more writes
        try:
            if create:
                metadata.create_all(self.db)
            elif not sa.inspect(self.db).has_table("commands"):
                raise StoreError(f"{redacted(self.url)} holds no command log (no table 'commands')")
        except sa.exc.SQLAlchemyError as error:
            self.db.dispose()
            raise StoreError(f"cannot open {redacted(self.url)}: {getattr(error, 'orig', None) or error}") from None
        if path is not None:
            try:
                self._inode = path.stat().st_ino
            except OSError:
                self._inode = None

    def check_file(self) -> None:
        """SQLite: the database file is still the one opened. If it was deleted (or replaced), a
        write would go to a file nobody can open again: refuse it, and every write after it, so that
        nothing more is acknowledged (:class:`StoreError`, answered 503)."""
        if self._lost is None and self._file is not None and self._inode is not None:
            try:
                inode = self._file.stat().st_ino
            except OSError:
                inode = None
            if inode != self._inode:
                self._lost = (f"the database file {self._file} was " + ("removed" if inode is None else "replaced")
                              + " while in use: nothing more is acknowledged; restore it and restart")
        if self._lost is not None:
            raise StoreError(self._lost)

    def __repr__(self) -> str:
        return f"CommandLog({redacted(self.url)!r})"

    def close(self) -> None:
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join(30)
            self._checkpointer = None
        self._close_drivers()
        self.db.dispose()

    # ---------------------------------------------------------------- driver connections

    def _driver(self):
        """This thread's driver (DBAPI) connection for the group-commit path
        (:meth:`head_and_keys`, :meth:`write_entries`), which runs for every batch: SQLAlchemy's
        checkout, transaction and result objects cost more than SQLite's own work there. Opened
        through the pool (so with the same pragmas: WAL, ``synchronous=FULL``), then kept, in
        autocommit mode: one statement is one transaction unless :meth:`write_entries` opens
        one itself. Closed (never returned to the pool) by :meth:`close`."""
        connection = getattr(self._drivers, "connection", None)
        if connection is None:
            connection = self.db.raw_connection()
            try:
                driver = connection.driver_connection
                if self.db.dialect.name == "sqlite":
                    driver.isolation_level = None
                else:
                    driver.autocommit = True
            except BaseException:
                connection.invalidate()
                raise
            with self._drivers_lock:
                self._driver_connections.append(connection)
            self._drivers.connection = connection
        return connection

    def _drop_driver(self, connection) -> None:
        """Close a driver connection after an error (the next call opens a fresh one)."""
        if getattr(self._drivers, "connection", None) is connection:
            self._drivers.connection = None
        with self._drivers_lock:
            if connection in self._driver_connections:
                self._driver_connections.remove(connection)
        try:
            connection.invalidate()
        except Exception:
            pass

    def _close_drivers(self) -> None:
        with self._drivers_lock:
            connections, self._driver_connections = self._driver_connections, []
        for connection in connections:
            try:
                connection.invalidate()  # closed, not returned to the pool (it is in autocommit mode)
            except Exception:
                pass
        self._drivers = threading.local()

    def checkpoint_in_background(self, interval: float = 0.2) -> None:
        """SQLite: copy the write-ahead log into the database file from a thread of its own, every
        ``interval`` seconds, instead of inside whichever commit crosses SQLite's threshold (which
        then takes ten times longer than the others). Durability is the same: a commit is durable
        once its WAL frames are synced (``synchronous=FULL``); the checkpoint only moves committed
        pages. Does nothing on PostgreSQL, or if already on. :meth:`close` stops it."""
        path = sqlite_file(self.url)
        if path is None or self._checkpointer is not None:
            return
        self._autocheckpoint = False
        self._close_drivers()
        self.db.dispose()  # pooled connections reopen without the automatic checkpoint
        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(path, interval),
                                              name="solvent-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self, path: Path, interval: float) -> None:
        connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=10000")
            connection.execute("PRAGMA synchronous=FULL")
            while not self._stop_checkpoints.wait(interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # busy or failing: the next tick tries again; commits go on
                    pass
        finally:
            connection.close()

    def _sqlite_pragmas(self, connection, _record) -> None:
        # WAL: readers (replay, verify) never block the writer; FULL: a commit survives power loss.
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        if not self._autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint_in_background
        cursor.close()

    def __enter__(self) -> CommandLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- writing

    def append(self, command: Command, recorded_at: datetime | str | None = None,
               idempotency_key: str | None = None) -> Entry:
        """Append a command (one transaction) and return its entry, pending its outcome.

        A known ``idempotency_key`` returns the entry first recorded under it and appends nothing
        (:class:`IdempotencyConflict` if that entry holds another command). Refused while the last
        entry is pending (:class:`PendingEntry`).
        """
        return self.append_entry(command, recorded_at, idempotency_key)[0]

    def append_entry(self, command: Command, recorded_at: datetime | str | None = None,
                     idempotency_key: str | None = None) -> tuple[Entry, bool]:
        """:meth:`append`, also telling whether the entry is new (False: the key's original)."""
        self.check_file()
        payload = canonical(command.to_dict())
        command_from_dict(json.loads(payload))  # it must decode, or replay could not apply it
        when = timestamp_text(recorded_at)
        try:
            with self.db.begin() as connection:
                if idempotency_key is not None:
                    known = self._by_key(connection, idempotency_key)
                    if known is not None:
                        return self._check_same(known, payload), False
                last = self._last(connection)
                if last is not None and last.pending:
                    raise PendingEntry(f"entry {last.seq} has no outcome yet: reopen the log to complete it")
                seq = 1 if last is None else last.seq + 1
                prev = GENESIS if last is None else last.hash
                assert prev is not None  # the last entry is complete (not pending, checked above): it has its hash
                digest = command_hash(prev, seq, when, idempotency_key, command.kind, payload)
                connection.execute(commands.insert().values(
                    seq=seq, recorded_at=when, idempotency_key=idempotency_key, kind=command.kind,
                    payload=payload, prev_hash=prev, command_hash=digest, outcome=None, hash=None))
        except sa.exc.IntegrityError:
            # Another writer got there first: the same key (return its entry) or the same seq.
            known = self.by_key(idempotency_key) if idempotency_key is not None else None
            if known is not None:
                return self._check_same(known, payload), False
            raise StoreError(f"another writer appended to {redacted(self.url)}: one writer per log") from None
        return Entry(seq, when, idempotency_key, command.kind, payload, prev, digest, None, None), True

    @staticmethod
    def _check_same(known: Entry, payload: str) -> Entry:
        if known.payload != payload:
            raise IdempotencyConflict(f"idempotency key {known.idempotency_key!r} already names entry {known.seq} "
                                      f"({known.kind}), a different command")
        return known

    def record_outcome(self, seq: int, outcome: dict[str, Any]) -> Entry:
        """Record what the engine did with pending entry ``seq`` and close its link of the chain."""
        self.check_file()
        text = canonical(outcome)
        with self.db.begin() as connection:
            row = connection.execute(sa.select(commands).where(commands.c.seq == seq)).one_or_none()
            if row is None:
                raise StoreError(f"no entry {seq}")
            entry = _entry(row)
            if not entry.pending:
                if entry.outcome == text:
                    return entry
                raise StoreError(f"entry {seq} already has another outcome")
            digest = entry_hash(entry.command_hash, text)
            done = connection.execute(commands.update().where(commands.c.seq == seq, commands.c.outcome.is_(None))
                                      .values(outcome=text, hash=digest))
            if done.rowcount != 1:
                raise StoreError(f"entry {seq} was completed by another writer")
        return Entry(**{**entry.__dict__, "outcome": text, "hash": digest})

    # ---------------------------------------------------------------- group commit

    def head_and_keys(self, keys: Iterable[str] = (), *, head: bool = True) -> tuple[Entry | None, dict[str, Entry]]:
        """The last entry (None if ``head`` is false) and the entries recorded under any of
        ``keys``: what :meth:`DurableEngine.submit_batch` reads before applying a batch."""
        wanted = sorted(set(keys))
        found: dict[str, Entry] = {}
        if not head and not wanted:
            return None, found
        connection = self._driver()
        try:
            cursor = connection.cursor()
            try:
                last = None
                if head:
                    cursor.execute(f"SELECT {COLUMNS} FROM commands ORDER BY seq DESC LIMIT 1")
                    row = cursor.fetchone()
                    last = None if row is None else Entry(int(row[0]), *row[1:])
                for start in range(0, len(wanted), 512):
                    chunk = wanted[start:start + 512]
                    # A few statement shapes (sizes rounded up to a power of two, padded with
                    # NULL, which matches nothing), so that the driver's statement cache holds them.
                    size = 1 << (len(chunk) - 1).bit_length()
                    cursor.execute(self._select_by_keys(size), tuple(chunk) + (None,) * (size - len(chunk)))
                    for row in cursor.fetchall():
                        entry = Entry(int(row[0]), *row[1:])
                        assert entry.idempotency_key is not None  # selected by key (NULL matches nothing)
                        found[entry.idempotency_key] = entry
            finally:
                cursor.close()
        except Exception:
            self._drop_driver(connection)
            raise
        return last, found

    INSERT_CHUNK = 128  # rows per INSERT statement (9 parameters each: within every backend's limit)

    def _insert_many(self, size: int) -> str:
        """``INSERT INTO commands ... VALUES (...), (...), ...`` of ``size`` rows (1 to
        :attr:`INSERT_CHUNK`; at most that many shapes, which the driver's statement cache keeps)."""
        sql = self._inserts.get(size)
        if sql is None:
            row = f"({', '.join([self._mark] * len(ENTRY_FIELDS))})"
            sql = self._inserts[size] = f"INSERT INTO commands ({COLUMNS}) VALUES {', '.join([row] * size)}"
        return sql

    def _select_by_keys(self, size: int) -> str:
        sql = self._select_keys.get(size)
        if sql is None:
            sql = self._select_keys[size] = (f"SELECT {COLUMNS} FROM commands WHERE idempotency_key IN "
                                             f"({', '.join([self._mark] * size)})")
        return sql

    def write_entries(self, entries: list[Entry], after: Entry | None,
                      snapshot_rows: Sequence[dict[str, Any]] = ()) -> None:
        """Write complete entries (command *and* outcome, hashes chained) after entry ``after``,
        and any snapshots of states between them, in ONE transaction: all of them or none.

        Only the last entry may be pending (a defect in the engine stopped the batch there). The
        chain is checked before anything is written: ``entries`` must follow ``after`` (which must
        still be the last entry) link by link, so a second writer cannot fork the log."""
        previous, seq = (GENESIS, 0) if after is None else (after.hash, after.seq)
        for index, entry in enumerate(entries):
            if entry.seq != seq + 1 or entry.prev_hash != previous or previous is None:
                raise StoreError(f"entry {entry.seq} does not follow entry {seq} in the chain")
            if entry.pending and index != len(entries) - 1:
                raise StoreError(f"entry {entry.seq} has no outcome but is not the last of its batch")
            previous, seq = entry.hash, entry.seq
        if not entries and not snapshot_rows:
            return
        self.check_file()
        # On this thread's driver connection (see _driver), in as few statements as possible: the
        # driver releases the GIL around each one, and while the writer thread applies the next
        # batch, taking it back waits for the interpreter's switch interval (a millisecond). A
        # write of at most INSERT_CHUNK entries is ONE multi-row INSERT, in autocommit mode: one
        # transaction, all rows or none, synced before it returns (SQLite: WAL, synchronous=FULL).
        # More entries, or snapshots with them: BEGIN, the INSERTs, COMMIT.
        connection = self._driver()
        rows = [astuple_entry(entry) for entry in entries]
        try:
            cursor = connection.cursor()
            try:
                if len(rows) <= self.INSERT_CHUNK and not snapshot_rows:
                    # Inserting seq `after.seq + 1` fails (primary key) if anyone appended since.
                    cursor.execute(self._insert_many(len(rows)), [value for row in rows for value in row])
                else:
                    cursor.execute("BEGIN")
                    try:
                        for start in range(0, len(rows), self.INSERT_CHUNK):
                            chunk = rows[start:start + self.INSERT_CHUNK]
                            cursor.execute(self._insert_many(len(chunk)), [value for row in chunk for value in row])
                        for row in snapshot_rows:
                            cursor.execute(f"DELETE FROM snapshots WHERE seq = {self._mark}", (row["seq"],))
                            cursor.execute(f"INSERT INTO snapshots (seq, taken_at, format, state, digest) VALUES "
                                           f"({', '.join([self._mark] * 5)})",
                                           (row["seq"], row["taken_at"], row["format"], row["state"], row["digest"]))
                    except BaseException:
                        cursor.execute("ROLLBACK")
                        raise
                    cursor.execute("COMMIT")
            finally:
                cursor.close()
        except BaseException as error:
            if isinstance(error, self.db.dialect.loaded_dbapi.IntegrityError):
                raise StoreError(f"another writer appended to {redacted(self.url)}: one writer per log") from None
            self._drop_driver(connection)
            raise
        self.check_file()  # committed, but to a file that is gone: not acknowledged

    # ---------------------------------------------------------------- reading

    def entry(self, seq: int) -> Entry | None:
        with self.db.connect() as connection:
            row = connection.execute(sa.select(commands).where(commands.c.seq == seq)).one_or_none()
        return None if row is None else _entry(row)

    def by_key(self, idempotency_key: str) -> Entry | None:
        with self.db.connect() as connection:
            return self._by_key(connection, idempotency_key)

    def last(self) -> Entry | None:
        with self.db.connect() as connection:
            return self._last(connection)

    def count(self) -> int:
        with self.db.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(commands)).scalar_one())

    def entries(self, from_seq: int = 0, to_seq: int | None = None, *, batch: int = 1000) -> Iterator[Entry]:
        """Entries with ``from_seq <= seq <= to_seq`` in order, read in batches (no connection is
        held between them, so the caller may write to the log while iterating)."""
        cursor = from_seq
        while True:
            query = sa.select(commands).where(commands.c.seq >= cursor)
            if to_seq is not None:
                query = query.where(commands.c.seq <= to_seq)
            with self.db.connect() as connection:
                rows = connection.execute(query.order_by(commands.c.seq).limit(batch)).all()
            for row in rows:
                yield _entry(row)
            if len(rows) < batch:
                return
            cursor = int(rows[-1].seq) + 1

    @staticmethod
    def _by_key(connection, key: str) -> Entry | None:
        row = connection.execute(sa.select(commands).where(commands.c.idempotency_key == key)).one_or_none()
        return None if row is None else _entry(row)

    @staticmethod
    def _last(connection) -> Entry | None:
        row = connection.execute(sa.select(commands).order_by(commands.c.seq.desc()).limit(1)).one_or_none()
        return None if row is None else _entry(row)

    # ---------------------------------------------------------------- snapshots

    def snapshot(self, seq: int, engine: Engine, taken_at: datetime | str | None = None) -> str:
        """Store the engine's state as it is after entry ``seq`` (which must have its outcome);
        returns the state digest. Replaces an older snapshot of the same seq."""
        from .snapshots import FORMAT, dump_engine, load_engine, state_digest

        entry = self.entry(seq)
        if entry is None or entry.pending:
            raise StoreError(f"cannot snapshot at entry {seq}: " + ("no such entry" if entry is None else "pending"))
        digest = state_digest(engine)
        state = dump_engine(engine)
        engine.set_rollback_base(lambda: load_engine(state))  # undo starts from here (see Engine._roll_back)
        with self.db.begin() as connection:
            connection.execute(snapshots.delete().where(snapshots.c.seq == seq))
            connection.execute(snapshots.insert().values(seq=seq, taken_at=timestamp_text(taken_at), format=FORMAT,
                                                         state=state, digest=digest))
        return digest

    def latest_snapshot(self, max_seq: int | None = None) -> Snapshot | None:
        query = sa.select(snapshots)
        if max_seq is not None:
            query = query.where(snapshots.c.seq <= max_seq)
        with self.db.connect() as connection:
            row = connection.execute(query.order_by(snapshots.c.seq.desc()).limit(1)).one_or_none()
        if row is None:
            return None
        return Snapshot(int(row.seq), row.taken_at, row.format, row.digest, bytes(row.state))

    def snapshot_digests(self) -> dict[int, tuple[str, str]]:
        """seq → (format, digest) of every snapshot (without loading any state). The format names
        the version of solvent that took it: another version's state digest is of another engine."""
        with self.db.connect() as connection:
            rows = connection.execute(sa.select(snapshots.c.seq, snapshots.c.format, snapshots.c.digest)
                                      .order_by(snapshots.c.seq)).all()
        return {int(row.seq): (row.format, row.digest) for row in rows}


def truncate_after(log: CommandLog, seq: int, export: Path) -> int:
    """Recovery (``solvent recover``): write the entries after ``seq`` to ``export`` (JSON lines,
    every column), then delete them and the snapshots after ``seq``, in one transaction. Returns
    how many entries were removed."""
    rows = [entry for entry in log.entries(seq + 1)]
    with Path(export).open("a") as handle:
        for entry in rows:
            handle.write(canonical(entry.__dict__) + "\n")
    with log.db.begin() as connection:
        connection.execute(commands.delete().where(commands.c.seq > seq))
        connection.execute(snapshots.delete().where(snapshots.c.seq > seq))
    return len(rows)
