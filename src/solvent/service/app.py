"""The live service: REST and WebSocket over one durable engine (FastAPI).

One process, one writer: every command is queued, and whatever is waiting is applied in queue
order as one batch under one lock (:meth:`DurableEngine.stage`: idempotency lookup, validation
against the live state, apply), then written by the committer thread in ONE transaction with its
outcomes (:meth:`DurableEngine.commit_all`). A request is answered only after its batch is
committed, so an acknowledged command survives SIGKILL (and, with SQLite's ``synchronous=FULL``,
power loss), and a retry under the same ``Idempotency-Key`` (or a duplicate in the same batch)
returns the recorded result instead of applying it again. The WebSocket stream is woken by the
committer after each commit (no polling).

What is refused before anything is written (status, ``{"error", "field"}``): missing or unknown
key (401), a role that may not do it (403), a body over the size limit (413), malformed JSON
(400), a malformed command (422: unknown kind or field, NaN, floats, negative, absurd), unknown
venue/market/account (404), a duplicate venue or account, time going backwards, or an
idempotency key reused for another command (409). A command the *engine* refuses is appended and
its refusal recorded (the log is the history of what was asked): 422 with ``seq`` and
``"recorded": true``; its idempotency key answers the same refusal on retry.

Batches. ``POST /v1/commands`` also takes a JSON array of commands, each optionally carrying its
own ``"idempotency_key"`` (the header is refused on a batch): they are applied in order, get
consecutive seqs, are written like single commands, and are answered together, once all of them
are committed. Everything that can be judged without the state (JSON, shape, fields, numbers,
keys, the role's right to each command) is checked for every command first: one bad command
refuses the whole batch, naming it (``"index"``, ``"field": "[3].size"``), and nothing is written.
What needs the state (unknown ids, duplicates, time order, a reused idempotency key) is checked
as each command is reached: the commands before a refused one are applied and written, the
refused one and those after it are not (``424`` "not attempted"); the answer lists every
command's outcome (``results``) and has the refused command's status. A command the engine
refuses is recorded and answered 422 in its place, and the batch goes on, as for single commands.

The command routes are answered by :class:`ServiceAPI` before FastAPI's routing, dependency
injection and middleware (the hot path); the FastAPI routes with the same handler remain, and
describe them in the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from ..engine.commands import Command
from ..store import (
    BatchItem,
    BatchResult,
    DurableEngine,
    Entry,
    IdempotencyConflict,
    LogMismatch,
    StoreError,
    state_digest,
)
from ..store.durable import NotAttempted, Staged, rejection_error
from .keys import ROLES, KeyStore, Principal, key_id
from .limits import Limit, RateLimiter
from .logging import KEY_ID, access_logged  # operations (issue 19)
from .validation import EdgeError, check_references, parse_command, parse_json
from .views import account_view, event_accounts, text, venue_view

MAX_BODY = 64 * 1024  # one command
MAX_BATCH_BODY = 1024 * 1024  # a batch of commands in one request
MAX_REQUEST_COMMANDS = 1000  # commands in one batch request
MAX_KEY = 200
MAX_BATCH = 512  # commands per batch staged at once; a request's batch is never split
MAX_STAGED = 16  # batches staged ahead of the write in progress (then the writer waits)
KEY_FIELD = "idempotency_key"  # a batch item's own idempotency key
# Snapshots by default: a restart loads the latest and replays at most this many entries.
DEFAULT_SNAPSHOT_EVERY = 10_000
MAX_SEQ = 2 ** 63 - 1  # a seq beyond any database's integer

logger = logging.getLogger("solvent.service")

ADMIN_KINDS = {"create_venue", "create_market", "create_backstop", "set_params", "fund_insurance", "open_account",
               "open_lending_account", "fund_reserves"}
OPERATOR_KINDS = {"apply_fill", "update_oracle", "update_prices", "advance_time", "liquidation_call", "absorb",
                  "buy_collateral", "liquidate", "bark", "take", "redo", "liquidate_trove", "deposit", "take_over"}
# "open_positions" is the admin's: it opens accounts and credits their deposits in bulk.
# Not "deposit": a deposit creates money in the engine, so only custody (the operator) reports one.
ACCOUNT_KINDS = {"withdraw", "supply", "withdraw_supply", "borrow", "repay", "set_emode",
                 "set_collateral_enabled", "provide_to_stability_pool", "withdraw_from_stability_pool",
                 "adjust_isolated_margin", "set_isolated_leverage"}


def authorize(principal: Principal, command: Command) -> None:
    """403 unless the principal's role may submit this command (see :mod:`.keys`)."""
    if principal.role == "admin":
        return
    if principal.role == "operator" and command.kind in OPERATOR_KINDS:
        if principal.venue is None:
            return
        if getattr(command, "venue", None) == principal.venue:
            return
        raise EdgeError(403, "venue", f"this operator key acts on venue {principal.venue!r} only")
    if principal.role == "account" and command.kind in ACCOUNT_KINDS:
        account = getattr(command, "account", None)
        acting = getattr(command, "payer", None) or account
        if acting == principal.account and account == principal.account:
            return
        raise EdgeError(403, "account", "an account key acts on its own account only")
    raise EdgeError(403, "kind", f"a {principal.role} key may not submit {command.kind}")


class _Waiter:
    """One queued request (one command, or a client's batch): resolved by the writer thread, on
    its event loop or a thread."""

    __slots__ = ("event", "future", "grouped", "items", "key_id", "loop", "results")

    def __init__(self, items: list[tuple[Command, str | None]], grouped: bool,
                 loop: asyncio.AbstractEventLoop | None) -> None:
        self.items, self.grouped, self.loop = items, grouped, loop
        self.future = loop.create_future() if loop is not None else None
        self.event = threading.Event() if loop is None else None
        self.results: list[BatchResult] | None = None
        self.key_id = KEY_ID.get()  # who sent it, for the command log lines


def _deliver(events: list[asyncio.Event], pairs: list[tuple[asyncio.Future, list[BatchResult]]]) -> None:
    """On an event loop: wake its streams, then resolve its requests' futures."""
    for event in events:
        event.set()
    for future, results in pairs:
        if not future.done():  # the client may have gone away
            future.set_result(results)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


EVENTS_PREFIX = '{"events":'


def _events_text(entry: Entry) -> str:
    """The entry's events as JSON text, cut from its canonical outcome (no decode, no re-encode)."""
    outcome = entry.outcome or ""
    if outcome.startswith(EVENTS_PREFIX) and outcome.endswith("}"):
        return outcome[len(EVENTS_PREFIX):-1]
    return json.dumps(entry.events, ensure_ascii=False, separators=(",", ":"))  # pragma: no cover


def _check_key(key: Any, field: str) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or not key.isprintable():
        raise EdgeError(422, field, f"1 to {MAX_KEY} printable characters")
    return key


class Service:
    """The durable engine, its keys, and the committer thread.

    Group commit. Requests are validated statelessly and authorized where they arrive, then
    queued. What is queued (up to :attr:`max_batch` commands, whole requests) is staged under
    :attr:`lock` by :meth:`DurableEngine.stage`: idempotency keys, validation against the live
    state (each command sees the state the commands before it produced), apply. Requests from an
    event loop are staged on that loop, by a callback it runs once the requests that arrived
    together are all queued (:meth:`_drain`); requests from threads (:meth:`submit`), by a
    writer thread. Staged batches go, in stage order, to the committer thread, which writes every
    batch waiting in ONE transaction (:meth:`DurableEngine.commit_all`) while the next ones are
    applied; only after the commit are the requests answered and the streams woken. Reads take
    :attr:`lock` and wait for the commits in flight (:meth:`DurableEngine.settle`), so they
    never see a state the log does not hold yet.
    """

    def __init__(self, url: str, *, snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY, admin_key: str | None = None,
                 max_body: int = MAX_BODY, max_batch: int = MAX_BATCH,
                 max_batch_body: int = MAX_BATCH_BODY, rate_limits: dict[str, Limit | None] | None = None) -> None:
        self.durable = DurableEngine(url, snapshot_every=snapshot_every)
        self.limiter = RateLimiter(rate_limits)
        self.log = self.durable.log
        self.log.checkpoint_in_background()  # no commit waits for a WAL checkpoint (SQLite)
        # The chain after the snapshot was checked at start; the entries before it are checked
        # here, while serving: a break stops acknowledgement (503) and names the seq.
        self.prefix_checked: threading.Event = threading.Event()
        threading.Thread(target=self._check_prefix, name="solvent-chain-check", daemon=True).start()
        self.keys = KeyStore(self.log.db, log_command=self._log_key_command, registered=self._key_registered)
        self.lock = threading.Lock()
        self.max_body = max_body
        self.max_batch = max_batch
        self.max_batch_body = max(max_batch_body, max_body)
        self._queue: list[_Waiter] = []
        self._queued = threading.Condition(threading.Lock())
        self._writer: threading.Thread | None = None
        self._committer: threading.Thread | None = None
        # (waiters, Staged) for the committer (None: stop). While one write is being synced, the
        # writer stages the next requests; the committer then writes all of them at once.
        self._staged: queue.Queue = queue.Queue(maxsize=MAX_STAGED)
        self._closing = False
        self._drains: set[asyncio.AbstractEventLoop] = set()  # loops with a _drain scheduled
        self._listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._listeners_lock = threading.Lock()
        self.observer: Callable[[list, float], None] | None = None  # after each commit (metrics, logs)
        if admin_key:
            self.keys.add("admin", key=admin_key, label="bootstrap")

    def close(self) -> None:
        with self._queued:
            self._closing = True
            self._queued.notify_all()
            writer, committer = self._writer, self._committer
            self._writer = self._committer = None  # a second close() has nothing to stop
        if writer is not None:
            writer.join(30)
        if committer is not None:
            with self.lock:  # after any batch being staged: the committer writes it, then stops
                self._staged.put(None)
            committer.join(30)
        self.durable.close()

    # ------------------------------------------------------------ the writer

    def _enqueue(self, waiter: _Waiter) -> None:
        """Queue a request for the next batch. A request from an event loop is staged by that
        loop itself, once the requests that arrived with it are queued too (:meth:`_drain`,
        scheduled with ``call_soon``); one from a thread, by the writer thread."""
        with self._queued:
            if self._closing:
                raise StoreError("the service is stopping")
            self._queue.append(waiter)
            if self._committer is None:
                self._committer = threading.Thread(target=self._commit_loop, name="solvent-committer", daemon=True)
                self._committer.start()
            loop = waiter.loop
            if loop is None:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_loop, name="solvent-writer", daemon=True)
                    self._writer.start()
                self._queued.notify()
                return
            if loop in self._drains:
                return
            self._drains.add(loop)
        loop.call_soon(self._drain, loop)

    def _take(self) -> list[_Waiter]:
        """The next batch: whole requests from the queue, up to max_batch commands (at least one
        request). Under ``self._queued``."""
        taken = size = 0
        for waiter in self._queue:
            if taken and size + len(waiter.items) > self.max_batch:
                break
            taken += 1
            size += len(waiter.items)
        batch = self._queue[:taken]
        del self._queue[:taken]
        return batch

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop: stage what is queued and hand it to the committer (see _stage).
        Applying on the loop's own thread rather than on a writer thread of its own spares the
        interpreter a switch of the GIL between the two for every batch, and the loop reads the
        next requests while the committer syncs this batch."""
        with self._queued:
            self._drains.discard(loop)
            batch = self._take()
            more = bool(self._queue) and not self._closing
            if more:
                self._drains.add(loop)
            closed = self._closing
        if more:  # the rest after the I/O waiting meanwhile
            loop.call_soon(self._drain, loop)
        if closed:  # close() stopped the committer: nobody would write these
            self._answer_batch(batch, [BatchResult(error=StoreError("the service is stopping"))
                                       for waiter in batch for _ in waiter.items])
        elif batch:
            if self.durable.rebuild_pending:  # a write failed: the rebuild from the log runs off the event loop
                threading.Thread(target=self._stage, args=(batch,), name="solvent-rebuild", daemon=True).start()
            else:
                self._stage(batch)

    def _write_loop(self) -> None:
        """The writer thread (for requests submitted from threads): stage what is queued and hand
        it to the committer, then go on with the next requests while it is written."""
        while True:
            with self._queued:
                while not self._queue and not self._closing:
                    self._queued.wait()
                if not self._queue:
                    return
                batch = self._take()
            self._stage(batch)

    def _stage(self, batch: list[_Waiter]) -> None:
        """Apply a batch (:meth:`DurableEngine.stage`) and hand it to the committer, in stage
        order (both under :attr:`lock`)."""
        items: list[BatchItem] = []
        for number, waiter in enumerate(batch):
            group = number if waiter.grouped else None  # a client's batch stops at its first refusal
            items.extend(BatchItem(command, key, group=group) for command, key in waiter.items)
        with self.lock:
            try:
                staged: Staged | list[BatchResult] = self.durable.stage(items, check=check_references)
            except BaseException as error:
                staged = [BatchResult(error=error) for _ in items]
            self._staged.put((batch, staged))

    def _commit_loop(self) -> None:
        """Write what the writer staged: every batch waiting at once, in one transaction (one
        fsync for all of them: when a write is slow, the batches staged meanwhile share the next
        one), then answer their requests."""
        stopping = False
        while not stopping:
            work = [self._staged.get()]
            while True:  # and whatever else is already staged
                try:
                    work.append(self._staged.get_nowait())
                except queue.Empty:
                    break
            if None in work:
                stopping = True
                work = work[:work.index(None)]
            if not work:
                continue
            staged = [item for _, item in work if not isinstance(item, list)]
            started = time.perf_counter()
            try:
                committed = iter(self.durable.commit_all(staged)) if staged else iter(())
                answers = [(batch, item if isinstance(item, list) else next(committed)) for batch, item in work]
            except BaseException as error:
                answers = [(batch, [BatchResult(error=error) for waiter in batch for _ in waiter.items])
                           for batch, _ in work]
            if self.observer is not None:
                try:
                    self.observer(answers, time.perf_counter() - started)
                except Exception:
                    logger.exception("the commit observer failed")
            self._answer_all(answers)

    def _answer_all(self, answers: list[tuple[list[_Waiter], list[BatchResult]]]) -> None:
        """Answer each request of these batches and wake every stream (their entries are
        committed, or nothing of them was written): per event loop, ONE ``call_soon_threadsafe``
        (one wake-up of the loop) sets the streams' events and resolves the requests' futures."""
        by_loop: dict[asyncio.AbstractEventLoop, tuple[list, list]] = {}
        with self._listeners_lock:
            for loop, event in self._listeners:
                by_loop.setdefault(loop, ([], []))[0].append(event)
        for batch, results in answers:
            offset = 0
            for waiter in batch:
                mine = results[offset:offset + len(waiter.items)]
                offset += len(waiter.items)
                if waiter.loop is None:
                    waiter.results = mine
                    assert waiter.event is not None  # a waiter without a loop waits on its event
                    waiter.event.set()
                else:
                    by_loop.setdefault(waiter.loop, ([], []))[1].append((waiter.future, mine))
        for loop, (events, pairs) in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, events, pairs)
            except RuntimeError:  # that event loop is closed: nobody is waiting any more
                pass

    def _answer_batch(self, batch: list[_Waiter], results: list[BatchResult]) -> None:
        """Answer each request of one batch (and wake the streams)."""
        self._answer_all([(batch, results)])

    def listen(self) -> asyncio.Event:
        """An event the writer sets after each commit (call from the event loop; see :meth:`unlisten`)."""
        event = asyncio.Event()
        with self._listeners_lock:
            self._listeners.add((asyncio.get_running_loop(), event))
        return event

    def _check_prefix(self) -> None:
        try:
            self.durable.check_prefix()
        except LogMismatch as mismatch:
            logger.error("the command log does not verify at seq %s: %s; nothing more is acknowledged "
                         "(see solvent verify and solvent recover)", mismatch.seq, mismatch.message)
        except Exception:
            logger.exception("the background check of the hash chain failed")
        finally:
            self.prefix_checked.set()

    def _log_key_command(self, command: Command) -> None:
        with self.lock:
            self.durable.submit(command)  # raises CommandRejected if the engine refuses it

    def _key_registered(self, digest: str) -> bool:
        return digest in self.durable.engine.api_keys  # a dict read: safe while the writer runs

    def wake_streams(self) -> None:
        """Wake every stream (e.g. after a key was revoked: each one checks its key again)."""
        self._answer_all([])

    def has_venue(self, venue: str) -> bool:
        from .validation import venue_exists

        with self.lock:
            self.durable.settle()
            return venue_exists(self.durable.engine, venue)

    def unlisten(self, event: asyncio.Event) -> None:
        with self._listeners_lock:
            self._listeners = {pair for pair in self._listeners if pair[1] is not event}

    # ------------------------------------------------------------ commands

    def _prepare(self, principal: Principal, data: Any) -> Command:
        command = parse_command(data)
        authorize(principal, command)
        return command

    def _prepare_batch(self, principal: Principal, data: list) -> list[tuple[Command, str | None]]:
        """Every command of a batch parsed and authorized, or EdgeError naming the first bad one."""
        if not data:
            raise EdgeError(422, None, "an empty batch: send at least one command")
        if len(data) > MAX_REQUEST_COMMANDS:
            raise EdgeError(413, None, f"more than {MAX_REQUEST_COMMANDS} commands in one batch")
        items = []
        for index, item in enumerate(data):
            try:
                if not isinstance(item, dict):
                    raise EdgeError(422, None, "each command is a JSON object: {\"kind\": ..., ...}")
                key = None
                if KEY_FIELD in item:
                    key = _check_key(item[KEY_FIELD], KEY_FIELD)
                    item = {name: value for name, value in item.items() if name != KEY_FIELD}
                items.append((self._prepare(principal, item), key))
            except EdgeError as error:
                field = f"[{index}]" + (f".{error.field}" if error.field else "")
                raise EdgeError(error.status, field, error.message, index=index) from None
        return items

    def _enqueue_items(self, items: list[tuple[Command, str | None]], grouped: bool,
                       loop: asyncio.AbstractEventLoop | None) -> _Waiter:
        waiter = _Waiter(items, grouped, loop)
        self._enqueue(waiter)
        return waiter

    def submit(self, principal: Principal, data: Any, key: str | None) -> Response:
        """Submit one command (a dict) or a batch (a list) from a thread: blocks until committed."""
        if isinstance(data, list):
            waiter = self._enqueue_items(self._prepare_batch(principal, data), True, None)
            assert waiter.event is not None  # no loop: the waiter has an event
            waiter.event.wait()
            assert waiter.results is not None  # set before the event is
            return _response(*self._batch_answer(waiter.items, waiter.results))
        waiter = self._enqueue_items([(self._prepare(principal, data), key)], False, None)
        assert waiter.event is not None  # no loop: the waiter has an event
        waiter.event.wait()
        assert waiter.results is not None  # set before the event is
        return _response(*self._answer(waiter.items[0][0], waiter.results[0]))

    async def submit_async(self, principal: Principal, data: Any, key: str | None) -> Response:
        """Submit from the event loop: awaits the commit without holding a thread."""
        return _response(*await self.command(principal, data, key))

    async def command(self, principal: Principal, data: Any, key: str | None,
                      kind: str | None = None) -> tuple[int, bytes]:
        """One command (``data`` a dict; ``kind`` fixed by a convenience route) or a batch (a
        list): ``(status, JSON body)`` once committed, or EdgeError / StoreError."""
        loop = asyncio.get_running_loop()
        if isinstance(data, list) and kind is None:
            if key is not None:
                raise EdgeError(422, "Idempotency-Key", f"a batch carries an {KEY_FIELD!r} per command, not the header")
            waiter = self._enqueue_items(self._prepare_batch(principal, data), True, loop)
            assert waiter.future is not None  # on a loop: the waiter has a future
            return self._batch_answer(waiter.items, await waiter.future)
        if kind is not None:
            if not isinstance(data, dict):
                raise EdgeError(422, None, "the body must be a JSON object")
            if data.setdefault("kind", kind) != kind:
                raise EdgeError(422, "kind", f"this route takes {kind} commands")
        waiter = self._enqueue_items([(self._prepare(principal, data), key)], False, loop)
        assert waiter.future is not None  # on a loop: the waiter has a future
        [result] = await waiter.future
        return self._answer(waiter.items[0][0], result)

    @staticmethod
    def _answer(command: Command, result: BatchResult) -> tuple[int, bytes]:
        """One command's answer; a refusal before writing is raised (EdgeError, StoreError, ...)."""
        error = result.error
        if error is not None:
            if isinstance(error, IdempotencyConflict):
                raise EdgeError(409, "Idempotency-Key", str(error))
            raise error
        entry = result.entry
        assert entry is not None  # a result without an error has its entry
        if entry.outcome is not None and not entry.outcome.startswith(EVENTS_PREFIX):  # refused by the engine
            rejected = rejection_error(entry)
            return 422, _dumps({"error": rejected.reason, "field": rejected.field, "kind": rejected.kind,
                                "seq": entry.seq, "recorded": True, "replayed": result.replayed})
        if entry.pending:  # pragma: no cover - only another writer's entry
            raise StoreError(f"entry {entry.seq} has no outcome yet")
        return 200, (f'{{"seq":{entry.seq},"kind":{json.dumps(command.kind)},"events":{_events_text(entry)},'
                     f'"replayed":{"true" if result.replayed else "false"}}}').encode()

    @staticmethod
    def _batch_answer(items: list[tuple[Command, str | None]], results: list[BatchResult]) -> tuple[int, bytes]:
        """``{"results": [one per command, with its "status"], "committed": n}``: 200 when every
        command was committed (applied, or refused by the engine and recorded), else the status
        of the first command refused before being written."""
        parts, status, committed = [], 200, 0
        for (command, _key), result in zip(items, results):
            kind = json.dumps(command.kind)
            entry = result.entry
            if entry is not None and entry.outcome is not None and entry.outcome.startswith(EVENTS_PREFIX):
                committed += 1
                parts.append(f'{{"seq":{entry.seq},"kind":{kind},"status":200,"events":{_events_text(entry)},'
                             f'"replayed":{"true" if result.replayed else "false"}}}')
                continue
            if entry is not None and entry.outcome is not None:  # refused by the engine, recorded
                committed += 1
                rejected = rejection_error(entry)
                parts.append(_dumps({"seq": entry.seq, "kind": command.kind, "status": 422, "error": rejected.reason,
                                     "field": rejected.field, "recorded": True,
                                     "replayed": result.replayed}).decode("utf-8"))
                continue
            error = result.error
            if error is None:  # pragma: no cover - only another writer's pending entry
                assert entry is not None  # a result without an error has its entry
                error = StoreError(f"entry {entry.seq} has no outcome yet")
            if isinstance(error, EdgeError):
                code, field = error.status, error.field
            elif isinstance(error, IdempotencyConflict):
                code, field = 409, KEY_FIELD
            elif isinstance(error, NotAttempted):
                code, field = 424, None
            elif isinstance(error, StoreError):
                code, field = 503, None
            else:
                logger.error("command %s failed", command.kind, exc_info=error)
                code, field = 500, None
            message = str(error) if code != 500 else f"internal error: {type(error).__name__}"
            if status == 200:
                status = code
            parts.append(_dumps({"kind": command.kind, "status": code, "error": message, "field": field,
                                 "recorded": False}).decode("utf-8"))
        return status, f'{{"results":[{",".join(parts)}],"committed":{committed}}}'.encode()

    # ------------------------------------------------------------ reads

    def account(self, principal: Principal, account: str) -> dict[str, Any]:
        if principal.role == "account" and principal.account != account:
            raise EdgeError(403, "account", "an account key reads its own account only")
        with self.lock:
            self.durable.settle()  # no state the log does not hold yet
            engine = self.durable.engine
            if account not in engine.ledger.accounts:
                raise EdgeError(404, "account", f"unknown account {account!r}")
            return account_view(engine, account)

    def has_account(self, account: str) -> bool:
        with self.lock:
            self.durable.settle()
            return account in self.durable.engine.ledger.accounts

    def venue(self, venue: str) -> dict[str, Any]:
        from .validation import venue_exists

        with self.lock:
            self.durable.settle()
            engine = self.durable.engine
            if not venue_exists(engine, venue):
                raise EdgeError(404, "venue", f"unknown venue {venue!r}")
            return venue_view(engine, venue)

    def state(self) -> dict[str, Any]:
        with self.lock:
            self.durable.settle()
            return {"seq": self.durable.seq, "digest": state_digest(self.durable.engine), "entries": self.log.count()}


def _key_from(headers, query=None) -> str | None:
    value = headers.get("x-api-key")
    authorization = headers.get("authorization", "")
    if not value and authorization.lower().startswith("bearer "):
        value = authorization[7:].strip()
    if not value and query is not None:
        value = query.get("key")
    return value or None


async def authenticate(service: Service, headers: Mapping[str, str]) -> Principal:
    key = _key_from(headers)
    if key is None:
        raise EdgeError(401, "Authorization", "an API key is required (Authorization: Bearer <key> or X-API-Key)")
    found = service.keys.cached(key)
    if found is None:
        found = await run_in_threadpool(service.keys.lookup, key)
    if found is None:
        raise EdgeError(401, "Authorization", "unknown API key")
    KEY_ID.set(key_id(key))
    return found


BodyReader = Callable[[int], Awaitable[bytes]]


async def command_request(service: Service, headers: Mapping[str, str], read: BodyReader,
                          kind: str | None) -> tuple[int, bytes]:
    """``POST`` of a command (or, on /v1/commands, a batch): authenticate, read, validate, submit;
    ``(status, JSON body)``, or EdgeError / StoreError. The one handler of both HTTP paths."""
    who = await authenticate(service, headers)
    key = _check_key(headers.get("idempotency-key"), "Idempotency-Key")
    body = await read(service.max_batch_body if kind is None else service.max_body)
    if len(body) > service.max_body and not body.lstrip().startswith(b"["):
        raise EdgeError(413, None, f"payload larger than {service.max_body} bytes")
    data = parse_json(body)
    commands = len(data) if isinstance(data, list) and kind is None else 1
    wait = service.limiter.take(who.key_id or "", who.role, max(commands, 1))  # refused ones count too
    if wait is not None:
        raise EdgeError(429, None, f"rate limit of this key: retry in {wait:.2f} s", retry_after=wait)
    return await service.command(who, data, key, kind)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise EdgeError(413, None, f"payload larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise EdgeError(413, None, f"payload larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _Disconnected(Exception):
    pass


def _response(status: int, body: bytes) -> Response:
    return Response(content=body, status_code=status, media_type="application/json")


class ServiceAPI(FastAPI):
    """FastAPI, except that ``POST`` of commands is answered straight from ASGI, before the
    middleware stack, routing, dependency injection and response models: the hot path. It runs
    :func:`command_request`, the handler of the FastAPI routes of the same paths (which the
    OpenAPI document describes), so both answer alike."""

    command_paths: dict[str, str | None] = {}  # noqa: RUF012 - replaced per app in create_app; path -> the command kind it fixes (None: any, or a batch)
    service: Service | None = None
    access_log = False  # one JSON line per request (solvent.service.logging)

    async def __call__(self, scope, receive, send) -> None:
        if self.access_log and scope["type"] == "http":
            await access_logged(self._dispatch, scope, receive, send)
            return
        await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.command_paths:
            await self._command(scope, receive, send, self.command_paths[scope["path"]])
            return
        await super().__call__(scope, receive, send)

    async def _command(self, scope, receive, send, kind: str | None) -> None:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))

        async def read(limit: int) -> bytes:
            declared = headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise EdgeError(413, None, f"payload larger than {limit} bytes")
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise EdgeError(413, None, f"payload larger than {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

        extra: list[tuple[bytes, bytes]] = []
        assert self.service is not None  # create_app sets it along with the command paths
        try:
            status, body = await command_request(self.service, headers, read, kind)
        except EdgeError as error:
            status, body = error.status, _dumps(error.body())
            if error.retry_after is not None:
                extra.append((b"retry-after", str(max(1, round(error.retry_after))).encode("latin-1")))
        except StoreError as error:
            status, body = 503, _dumps({"error": str(error), "field": None})
        except _Disconnected:
            return
        except Exception:
            logger.exception("POST %s failed", scope["path"])
            status, body = 500, _dumps({"error": "internal server error", "field": None})
        start = {"type": "http.response.start", "status": status,
                 "headers": [(b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode("latin-1")), *extra]}
        await send(start)
        await send({"type": "http.response.body", "body": body})


class NewKey(BaseModel):
    role: str
    account: str | None = None
    venue: str | None = None
    label: str | None = None


CONVENIENCE = {  # path → command kind: the body is the command without "kind"
    "/v1/venues": "create_venue", "/v1/markets": "create_market", "/v1/accounts": "open_account",
    "/v1/deposits": "deposit", "/v1/withdrawals": "withdraw", "/v1/insurance": "fund_insurance",
    "/v1/params": "set_params", "/v1/fills": "apply_fill", "/v1/prices": "update_oracle", "/v1/time": "advance_time",
}

COMMAND_SCHEMA = {"type": "object", "description": "A command: {\"kind\": ..., ...fields} (numbers as decimal strings)",
                  "additionalProperties": True}
COMMAND_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": COMMAND_SCHEMA}}}}
COMMANDS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
    COMMAND_SCHEMA,
    {"type": "array", "minItems": 1, "maxItems": MAX_REQUEST_COMMANDS,
     "description": "A batch: commands applied in order, each with an optional \"idempotency_key\"; "
                    "answered {\"results\": [...], \"committed\": n}",
     "items": {**COMMAND_SCHEMA, "properties": {KEY_FIELD: {"type": "string", "minLength": 1,
                                                          "maxLength": MAX_KEY}}}},
]}}}}}


GC_THRESHOLDS = (10_000, 10, 10)  # allocations before a young collection (Python's default: 700), ...


def settle_gc() -> None:
    """Once the server is up (modules imported, engine restored from its snapshot and log):
    collect, then move every object alive into the collector's permanent generation
    (``gc.freeze``), which later collections do not traverse. A full collection otherwise walks
    every module, class and engine object, tens of milliseconds during which no request moves
    (the p99 of a busy server); now it walks only what was allocated since start-up. Young
    collections are made rarer too: nearly everything a request allocates is freed by reference
    counting, so each one found almost nothing. What is frozen is not freed if it later becomes
    part of a garbage cycle (the engine's long-lived state, not per-request objects)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(url: str, *, snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY, admin_key: str | None = None,
               max_body: int = MAX_BODY, rate_limits: dict[str, Limit | None] | None = None,
               publish: str | None = None, publish_stream: str = "SOLVENT", publish_subject: str = "solvent.events",
               access_log: bool = False) -> ServiceAPI:
    service = Service(url, snapshot_every=snapshot_every, admin_key=admin_key, max_body=max_body,
                      rate_limits=rate_limits)

    @asynccontextmanager
    async def lifespan(_app):
        settle_gc()
        app.state.ops.start()  # the bus publisher (issue 19)
        yield
        app.state.ops.stop()
        service.close()

    app = ServiceAPI(title="solvent", summary="Margin and liquidation engine: commands in, events out.",
                     version="1", lifespan=lifespan)
    app.state.service = service
    app.service = service
    app.command_paths = {"/v1/commands": None, **CONVENIENCE}
    app.access_log = access_log
    from .ops import install  # /metrics, /v1/ready, local docs, the bus (issue 19)

    install(app, service, publish=publish, stream=publish_stream, subject=publish_subject)

    @app.exception_handler(EdgeError)
    async def edge_error(_request, error: EdgeError):
        headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after is not None else None
        return JSONResponse(status_code=error.status, content=error.body(), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        return JSONResponse(status_code=422, content={"error": first.get("msg", "invalid request"), "field": field})

    @app.exception_handler(StoreError)
    async def store_error(_request, error: StoreError):
        return JSONResponse(status_code=503, content={"error": str(error), "field": None})

    async def principal(request: Request) -> Principal:
        return await authenticate(service, request.headers)

    def admin(who: Principal = Depends(principal)) -> Principal:
        if who.role != "admin":
            raise EdgeError(403, "Authorization", "an admin key is required")
        return who

    async def command_response(request: Request, kind: str | None) -> Response:
        return _response(*await command_request(service, request.headers, lambda limit: read_body(request, limit),
                                                kind))

    @app.get("/v1/health", tags=["service"])
    async def health(request: Request) -> dict[str, Any]:
        """Up or not; the number of commands only to a caller with a key (it tells activity)."""
        if _key_from(request.headers) is None:
            return {"status": "ok"}
        await authenticate(service, request.headers)
        return {"status": "ok", "seq": service.durable.seq}

    @app.post("/v1/commands", tags=["commands"], openapi_extra=COMMANDS_BODY,
              summary="Submit any command (header Idempotency-Key optional), or a batch of them (a JSON array)")
    async def submit(request: Request):
        return await command_response(request, None)

    def convenience(kind: str):
        async def route(request: Request):
            return await command_response(request, kind)
        route.__name__ = f"submit_{kind}"
        return route

    for path, kind in CONVENIENCE.items():
        app.post(path, tags=["commands"], openapi_extra=COMMAND_BODY, summary=f"Submit a {kind} command")(
            convenience(kind))

    @app.get("/v1/accounts/{account:path}", tags=["reads"])
    def read_account(account: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        return service.account(who, account)

    @app.get("/v1/venues/{venue:path}", tags=["reads"])
    def read_venue(venue: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        return service.venue(venue)

    @app.get("/v1/state", tags=["service"])
    def read_state(who: Principal = Depends(admin)) -> dict[str, Any]:
        return service.state()

    @app.get("/v1/commands/{seq}", tags=["reads"])
    def read_command(seq: int, who: Principal = Depends(principal)) -> dict[str, Any]:
        if who.role == "account":
            raise EdgeError(403, "Authorization", "account keys read their account and stream only")
        entry = service.log.entry(seq) if 0 < seq <= MAX_SEQ else None
        if entry is None:
            raise EdgeError(404, "seq", f"no entry {seq}")
        return {"seq": entry.seq, "recordedAt": entry.recorded_at, "idempotencyKey": entry.idempotency_key,
                "command": json.loads(entry.payload), "outcome": entry.result, "hash": entry.hash}

    @app.post("/v1/keys", tags=["service"], status_code=201)
    def create_key(body: NewKey, who: Principal = Depends(admin)) -> dict[str, Any]:
        if body.role not in ROLES:
            raise EdgeError(422, "role", f"one of {', '.join(ROLES)}")
        if body.role == "account":
            if not body.account:
                raise EdgeError(422, "account", "an account key needs its account")
            if not service.has_account(body.account):
                raise EdgeError(404, "account", f"unknown account {body.account!r}")
        if body.role == "operator" and body.venue is not None and not service.has_venue(body.venue):
            raise EdgeError(404, "venue", f"unknown venue {body.venue!r}")
        key = service.keys.add(body.role, account=body.account, venue=body.venue, label=body.label)
        return {"key": key, "id": key_id(key), "role": body.role,
                "account": body.account if body.role == "account" else None,
                "venue": body.venue if body.role == "operator" else None}

    @app.get("/v1/keys", tags=["service"])
    def list_keys(who: Principal = Depends(admin)) -> list[dict[str, Any]]:
        """Every key's id, role, scope, label and creation time (never the key)."""
        return service.keys.list()

    @app.delete("/v1/keys/{key}", tags=["service"], status_code=204)
    def revoke_key(key: str, who: Principal = Depends(admin)) -> Response:
        """Revoke a key by its id (returned when it was created); it stops working at once."""
        try:
            revoked = service.keys.revoke(key)
        except ValueError as error:
            raise EdgeError(422, "key", str(error)) from None
        if not revoked:
            raise EdgeError(404, "key", f"no key with id {key!r}")
        service.limiter.forget(key)
        service.wake_streams()  # open streams of the key notice at once and close
        return Response(status_code=204)

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket):
        """Every recorded event from ``from_seq`` on, then live ones: ``{"seq", "index", "event"}``.
        ``key`` (query) or the usual headers authenticate; account keys get their own events only;
        ``kinds`` (comma-separated) filters by event kind."""
        key = _key_from(websocket.headers, websocket.query_params)
        who = service.keys.lookup(key) if key else None
        try:
            from_seq = int(websocket.query_params.get("from_seq", "1"))
        except ValueError:
            from_seq = -1
        if who is None or from_seq < 0:
            await websocket.close(code=4401 if who is None else 4422)
            return
        assert key is not None  # who was looked up by it
        kinds = {k for k in websocket.query_params.get("kinds", "").split(",") if k}
        # An entry holding one of these kinds has its canonical text: skip the others undecoded
        # (one scan of the text for all of them).
        needles = re.compile("|".join(re.escape(f'"kind":{json.dumps(k, ensure_ascii=False)}')
                                      for k in sorted(kinds))).search if kinds else None
        await websocket.accept()
        next_seq = max(from_seq, 1)
        committed = service.listen()  # set by the writer after each commit: no polling delay
        receiving = asyncio.ensure_future(websocket.receive())  # notices a client that went away
        try:
            while True:
                committed.clear()
                if service.keys.cached(key) is None and await run_in_threadpool(service.keys.lookup, key) is None:
                    await websocket.close(code=4401, reason="the key was revoked")  # revocation is immediate
                    return
                entries = service.durable.recent(next_seq, 500)  # just committed: from memory
                if entries is None:
                    def page(start: int = next_seq) -> list[Entry]:
                        return list(service.log.entries(start, start + 499))

                    entries = await run_in_threadpool(page)
                for entry in entries:
                    if entry.pending:
                        break
                    assert entry.outcome is not None  # not pending (checked above)
                    if needles is not None and not needles(entry.outcome):
                        next_seq = entry.seq + 1
                        continue
                    for index, event in enumerate(entry.events):
                        if kinds and event.get("kind") not in kinds:
                            continue
                        if who.role == "account" and who.account not in event_accounts(event):
                            continue
                        await websocket.send_json({"seq": entry.seq, "index": index, "event": text(event)})
                    next_seq = entry.seq + 1
                if len(entries) < 500:  # caught up: wait for the next commit (or, at most, a second)
                    waiting = asyncio.ensure_future(committed.wait())
                    done, _ = await asyncio.wait({receiving, waiting}, timeout=1.0,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    if receiving in done:
                        if receiving.result().get("type") == "websocket.disconnect":
                            return
                        receiving = asyncio.ensure_future(websocket.receive())
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            service.unlisten(committed)
            receiving.cancel()

    return app
