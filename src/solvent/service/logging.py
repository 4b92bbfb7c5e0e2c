"""JSON logs of the service: one line per HTTP request and one per command outcome.

The standard library's :mod:`logging` with a JSON formatter, not structlog: the service already
logs through ``logging.getLogger("solvent.service")``, uvicorn and SQLAlchemy log through it too,
and a formatter is all that is missing to make every one of those lines JSON; it adds no
dependency. Lines go to **stdout** (the container convention; ``solvent serve``'s stderr is kept for
errors at start-up) through a :class:`~logging.handlers.QueueHandler`: the committer thread and the
event loop only put a record on a queue, a listener thread formats and writes it, so a slow
terminal or pipe never holds a commit or a request.

A line: ``{"ts", "level", "logger", "msg", ...fields}`` with, per request, ``event: "request"``,
``method``, ``path``, ``status``, ``ms``, ``key_id`` (or null); per command, ``event: "command"``,
``seq``, ``kind``, ``outcome`` (applied, rejected, replayed, refused), ``key_id``, ``ms`` (commit
latency of its batch) and, for a refusal, ``error``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TextIO

ACCESS = logging.getLogger("solvent.access")
COMMANDS = logging.getLogger("solvent.commands")

# The public id of the key of the request being handled (set once it is authenticated).
KEY_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("solvent_key_id", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":"))


_listener: logging.handlers.QueueListener | None = None


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Route every logger's records, as JSON lines, to ``stream`` (stdout) via a queue and a
    writer thread. Idempotent: a second call replaces the first's handler."""
    global _listener
    stop()
    target = logging.StreamHandler(stream or sys.stdout)
    target.setFormatter(JsonFormatter())
    records: queue.SimpleQueue = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, target, respect_handler_level=False)
    _listener.start()
    root = logging.getLogger()
    root.handlers = [handler for handler in root.handlers if not getattr(handler, "_solvent", False)]
    handler = logging.handlers.QueueHandler(records)
    handler._solvent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's own lines as JSON too
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ours has the key id and latency


def stop() -> None:
    """Flush and stop the writer thread (at shutdown)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


Handler = Callable[[dict, Callable, Callable], Awaitable[None]]


async def access_logged(handler: Handler, scope: dict, receive: Callable, send: Callable) -> None:
    """Run an ASGI HTTP request through ``handler`` and log one line for it: method, path, status,
    milliseconds to the last byte, and the id of its key."""
    started = time.perf_counter()
    status = 0
    token = KEY_ID.set(None)

    async def sending(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await handler(scope, receive, sending)
    finally:
        if ACCESS.isEnabledFor(logging.INFO):
            ACCESS.info("request", extra={"event": "request", "method": scope.get("method"),
                                          "path": scope.get("path"), "status": status,
                                          "ms": round((time.perf_counter() - started) * 1000, 3),
                                          "key_id": KEY_ID.get()})
        KEY_ID.reset(token)


def log_command(seq: int | None, kind: str, outcome: str, key_id: str | None, seconds: float,
                error: str | None = None) -> None:
    """One command's outcome (from the committer thread, after its batch was committed)."""
    fields: dict[str, Any] = {"event": "command", "seq": seq, "kind": kind, "outcome": outcome, "key_id": key_id,
                              "ms": round(seconds * 1000, 3)}
    if error is not None:
        fields["error"] = error
    COMMANDS.info("command", extra=fields)
