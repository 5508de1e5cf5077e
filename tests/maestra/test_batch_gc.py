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
