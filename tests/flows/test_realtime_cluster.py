"""Event to inbox through a real cluster (issue 13, item 1): `runserver` and
`manage.py qcluster` as subprocesses with default settings, a real SMTP
server on loopback. The periodic schedules are deleted first, so only the
wake-ups can make the emails arrive: an event through the API, and the
system event of PUT /customers. Arrival is asserted, never a time (the
figures are bench/s4_latency.py's).

The ORM broker always; Redis too when TEST_REDIS_URL names a database for
it (.ci/run sets redis://127.0.0.1:6379/15). The database is a fresh one
next to DATABASE_URL's on PostgreSQL (dropped after), else a SQLite file.
"""

from __future__ import annotations

import os

import pytest

from bench.realtime import Sink, Stack

pytestmark = pytest.mark.slow

# Generous: the wait bounds a broken wake-up path, it measures nothing.
ARRIVAL_TIMEOUT = 120

BROKERS = [
    pytest.param("", id="orm"),
    pytest.param(
        os.environ.get("TEST_REDIS_URL", ""),
        id="redis",
        marks=pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set"),
    ),
]


@pytest.mark.parametrize("redis_url", BROKERS)
def test_events_and_customer_changes_reach_the_inbox_through_the_wake_ups(redis_url):
    database_url = os.environ.get("DATABASE_URL", "")
    with (
        Sink() as sink,
        Stack(
            sink=sink, database_url=database_url, redis_url=redis_url, customers=5, no_schedules=True
        ) as stack,
    ):
        for i in range(5):
            stack.post_event(f"c{i}", f"order-{i}", order=i)
        stack.subscribe("new-1", "new-1@example.com")
        wanted = {f"c{i}@example.com" for i in range(5)} | {"new-1@example.com"}
        arrived = sink.wait_for(wanted, ARRIVAL_TIMEOUT)
        assert set(arrived) == wanted, f"missing: {sorted(wanted - set(arrived))}\n{stack.log_text()}"
