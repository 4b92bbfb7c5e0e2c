"""Committed events to NATS JetStream (``solvent serve --publish nats://host:4222``).

One message per log entry that has events, in seq order, on ``<subject>`` (default
``solvent.events``) of the JetStream stream ``<stream>`` (default ``SOLVENT``, created with that
subject if missing). The body is ``{"seq": n, "events": [...]}`` (the entry's events as the
WebSocket stream sends them, numbers as decimal strings); the headers carry ``Nats-Msg-Id: <seq>``
(JetStream drops a second message with the same id within the stream's duplicate window) and
``Solvent-Seq: <seq>``.

Guarantees:

- **Nothing before it is committed.** The publisher reads only entries the committer has written
  (the in-memory tail of committed entries, or the log), woken after each commit.
- **Nothing committed is skipped, nothing twice.** On start it asks the stream for its last
  message on the subject and resumes at the seq after it, so entries committed while the
  publisher was down (killed between commit and publish, NATS unreachable) are published on
  restart; each publish waits for JetStream's acknowledgement before the next, and a publish whose
  ack was lost is retried under the same ``Nats-Msg-Id``, which JetStream deduplicates. The stream
  (its subject) must be written by this publisher only.
- Entries refused by the engine have no events and are not published (their seqs are skipped).

It runs on a thread of its own with its own event loop, so publishing never holds a request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Entry
    from .app import Service

logger = logging.getLogger("solvent.bus")

EVENTS_PREFIX = '{"events":'
PAGE = 500


class Publisher:
    def __init__(self, service: Service, url: str, *, stream: str = "SOLVENT", subject: str = "solvent.events",
                 on_published=None) -> None:
        self.service, self.url, self.stream, self.subject = service, url, stream, subject
        self.published: int | None = None  # the last seq known to be on the stream
        self.on_published = on_published
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="solvent-publisher", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stopping is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._loop.close()

    async def _run(self) -> None:
        self._stopping = asyncio.Event()
        self._ready.set()
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await self._publish_forever()
                return
            except Exception as error:
                logger.warning("publisher: %s; retrying in %.1f s", error, delay,
                               extra={"event": "bus_error", "url": self.url})
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 5.0)

    async def _connect(self):
        import nats
        from nats.js.errors import NotFoundError

        client = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=-1, allow_reconnect=True)
        js = client.jetstream()
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(name=self.stream, subjects=[self.subject])
        return client, js

    async def last_published(self, js) -> int:
        """The seq of the last message on the subject (0 when none)."""
        from nats.js.errors import NotFoundError

        try:
            message = await js.get_last_msg(self.stream, self.subject)
        except NotFoundError:
            return 0
        return int((message.headers or {}).get("Solvent-Seq", 0))

    async def _publish_forever(self) -> None:
        client, js = await self._connect()
        service = self.service
        stop = self._stopping
        assert stop is not None  # set by _run before this
        committed = service.listen()
        try:
            last = await self.last_published(js)
            self._mark(last)
            next_seq = last + 1
            logger.info("publisher: resuming after seq %d", last,
                        extra={"event": "bus_resume", "seq": last, "stream": self.stream})
            while not stop.is_set():
                committed.clear()
                recent = service.durable.recent(next_seq, PAGE)
                entries: list[Entry] = recent if recent is not None else await asyncio.get_running_loop(
                ).run_in_executor(None, _read, service, next_seq)
                for entry in entries:
                    if entry.pending:  # pragma: no cover - only another writer's entry
                        break
                    outcome = entry.outcome or ""
                    events = entry.events if outcome.startswith(EVENTS_PREFIX) else []
                    if events:
                        body = json.dumps({"seq": entry.seq, "events": _text(events)}, ensure_ascii=False,
                                          separators=(",", ":")).encode("utf-8")
                        ident = str(entry.seq)
                        await js.publish(self.subject, body, stream=self.stream, timeout=5,
                                         headers={"Nats-Msg-Id": ident, "Solvent-Seq": ident})
                        self._mark(entry.seq)
                    next_seq = entry.seq + 1
                if len(entries) < PAGE:  # caught up: wait for the next commit (at most a second)
                    waiting = asyncio.ensure_future(committed.wait())
                    stopping = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({waiting, stopping}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    stopping.cancel()
        finally:
            service.unlisten(committed)
            try:
                await client.drain()
            except Exception:
                pass

    def _mark(self, seq: int) -> None:
        self.published = seq
        if self.on_published is not None:
            self.on_published(seq)


def _read(service: Service, start: int) -> list[Entry]:
    """Committed entries from the log, from ``start`` on (when no longer in memory)."""
    return list(service.log.entries(start, start + PAGE - 1))


def _text(events):
    from .views import text

    return text(events)
