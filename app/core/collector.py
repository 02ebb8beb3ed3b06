"""Pausing CPython's cyclic garbage collector around bulk work."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off.

    A lead import keeps tens of thousands of young containers (validated models, built rows)
    alive across its pipeline's stages, so they survive into the oldest generation and set off
    full collections that walk every object of the process: a quarter of a 100,000-row
    import's time (bench/README.md). Reference counting still frees everything outside a
    cycle; cycles made meanwhile, by the block or by the worker's other requests, wait until
    the collector runs again. Overlapping blocks (two imports in one worker) share one pause,
    which ends with the last of them; a collector that was already off stays off."""
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()
