"""Rate limits per API key: a token bucket each, in commands.

Every command a key submits takes one token, whether the engine accepts or refuses it (a refused
command is written to the log too: it is history, and it costs the same). A request that finds
too few tokens is answered 429 with ``Retry-After`` and nothing of it is written. Limits are per
role (``ROLE_LIMITS``, overridable per service); ``None`` means unlimited. The edge reads the
clock here, never the engine.
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple


class Limit(NamedTuple):
    rate: float  # tokens (commands) added per second
    burst: int  # the most a bucket holds: commands accepted at once after a quiet spell


# A trader's key: a few commands a second is generous for withdrawals and margin moves. Operators
# (the matching engine, the price feeder) and admins are trusted for throughput by default.
ROLE_LIMITS: dict[str, Limit | None] = {"account": Limit(20.0, 100), "operator": None, "admin": None}


class RateLimiter:
    def __init__(self, limits: dict[str, Limit | None] | None = None, clock=time.monotonic) -> None:
        self.limits = dict(ROLE_LIMITS if limits is None else limits)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id → (tokens, when)
        self._lock = threading.Lock()
        self.refused = 0  # requests answered 429 so far

    def take(self, key_id: str, role: str, commands: int) -> float | None:
        """Take ``commands`` tokens from the key's bucket: None if granted, else the seconds to wait."""
        limit = self.limits.get(role)
        if limit is None:
            return None
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.get(key_id, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - when) * limit.rate)
            if commands > tokens:
                self._buckets[key_id] = (tokens, now)
                self.refused += 1
                return (min(commands, limit.burst) - tokens) / limit.rate
            self._buckets[key_id] = (tokens - commands, now)
        return None

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._buckets.pop(key_id, None)
