"""The cyclic garbage collector during a batch job (an engine tick).

A tick allocates millions of small containers (rows, dicts of rendered
messages, run states), nearly all freed by reference counting as soon as a
batch is written. With the default thresholds (700, 10, 10) the collector
still runs thousands of times per 100k runs, and each collection of the old
generations walks everything the process holds: the app's modules, classes
and caches loaded at start-up, which can never be garbage. Measured on the
benchmark's S1 stages, the collector took about a fifth of the engine's CPU.

`fewer_collections` keeps what exists before the job out of the collector's
walks (gc.freeze: those objects are moved to a permanent generation for the
job's duration) and lets the youngest generation fill up to GEN0_THRESHOLD
objects before a collection. Garbage cycles are still collected, only less
often; everything is put back as it was when the job ends."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations (minus deallocations) of container objects between two
# collections of the youngest generation (the default is 700).
GEN0_THRESHOLD = 20_000

# The collector is one per process, and ticks may run in several threads at
# once (a test's racing workers, a threaded server): the first job in changes
# it, the last one out puts it back.
_lock = threading.Lock()
_jobs = 0
_saved: tuple[tuple[int, ...], bool] | None = None  # (thresholds, froze) of the first job in


@contextmanager
def fewer_collections() -> Iterator[None]:
    global _jobs, _saved
    with _lock:
        if _jobs == 0:
            _saved = _start() if gc.isenabled() else None
        _jobs += 1
    try:
        yield
    finally:
        with _lock:
            _jobs -= 1
            if _jobs == 0 and _saved is not None:
                thresholds, froze = _saved
                gc.set_threshold(*thresholds)
                if froze:
                    gc.unfreeze()
                _saved = None


def _start() -> tuple[tuple[int, ...], bool]:
    thresholds = gc.get_threshold()
    # Objects someone else froze (a server that freezes after loading the
    # app) stay frozen: unfreezing at the end would hand them back.
    froze = gc.get_freeze_count() == 0
    if froze:
        gc.freeze()
    gc.set_threshold(max(thresholds[0], GEN0_THRESHOLD), *thresholds[1:])
    return thresholds, froze
