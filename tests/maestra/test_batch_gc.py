"""fewer_collections: during a batch job the collector runs less often and
leaves what existed before alone; garbage cycles are still collected, and
the collector is as it was once the job ends (even when it raises)."""

from __future__ import annotations

import gc
import weakref

import pytest

from maestra.batch_gc import GEN0_THRESHOLD, fewer_collections


class Node:
    pass


def test_it_raises_the_threshold_freezes_and_puts_everything_back():
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    with fewer_collections():
        assert gc.get_threshold() == (max(before[0], GEN0_THRESHOLD), *before[1:])
        assert gc.get_freeze_count() > frozen_before
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before


def test_it_puts_everything_back_when_the_job_raises():
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before


def test_cycles_made_during_the_job_are_still_collected():
    with fewer_collections():
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        gc.collect()
        assert alive() is None


def test_a_disabled_collector_is_left_alone():
    gc.disable()
    try:
        before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
        with fewer_collections():
            assert gc.get_threshold() == before
            assert gc.get_freeze_count() == frozen_before
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_jobs_in_several_threads_put_the_collector_back_once_the_last_ends():
    import threading

    before = gc.get_threshold()
    inside = threading.Barrier(3)
    leave = threading.Event()
    seen = []

    def job():
        with fewer_collections():
            inside.wait()
            leave.wait()
            seen.append(gc.get_threshold()[0])

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert gc.get_threshold()[0] == max(before[0], GEN0_THRESHOLD)
    leave.set()
    for thread in threads:
        thread.join()
    # Each job saw the raised threshold until it ended; none of them left it raised.
    assert seen == [max(before[0], GEN0_THRESHOLD)] * 2
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_objects_frozen_by_someone_else_stay_frozen():
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        with fewer_collections():
            pass
        # Still frozen (unfreezing empties the permanent generation; its
        # exact count may drop meanwhile as frozen objects are freed).
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
