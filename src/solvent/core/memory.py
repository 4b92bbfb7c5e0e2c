"""Pausing Python's cyclic garbage collector around bulk work.

Building a book of 100,000 accounts, or running a simulation over it, allocates millions of
long-lived objects. The cyclic collector runs a generation-2 pass every so many allocations, and
each pass walks the whole heap: on a 100,000-account run that was a third of the time spent
building the book and a fifth of a whole run. Reference counting still frees every object that is
not part of a cycle while the collector is paused, so memory does not grow with the run (the
10 Oct 2025 crash day peaks at the same 221 MB either way); the collector resumes, if it was on,
when the block ends. The service freezes its start-up heap instead (``gc.freeze``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block; nested pauses resume it only at the outermost."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
