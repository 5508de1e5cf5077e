"""Fixtures that test modules of several packages import."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts and ends with the process-wide cache empty: throttle
    counters, cached catalogues and the A/B check throttle live there, and
    time-machine moves the clock back and forth between tests."""
    cache.clear()
    yield
    cache.clear()
