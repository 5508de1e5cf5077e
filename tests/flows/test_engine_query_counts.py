"""Batch-first, measured: moving a batch takes a fixed number of queries,
whatever its size (DESIGN "The engine: batches, not customers").

The only statements that still grow with the batch are Django bulk_create
calls outside the engine, which SQLite caps at 999 parameters per statement:
the outbox rows (channels/outbox.py) and the runs started by events
(flows/nodes/event.py, flows/engine/entry.py). They are counted apart and checked against Django's own
chunk size, so the engine's share is still pinned exactly; on PostgreSQL the
totals are the same for 1,000 and 5,000."""

import math
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.models import Message
from customers.services import store_events
from flows.engine.batch import EngineContext
from flows.engine.entry import start_flow_for_segment
from flows.engine.move import process_due_runs
from flows.models import FlowVersion, Run
from flows.nodes.event import match_events
from flows.nodes.schedule.firing import fire_schedules
from tests.flows import engine_builders as builders
from tests.flows.engine_builders import chained, document, email_template, event_start, make_customers
from tests.flows.engine_kit import edge, launch, node, send, static_segment, steps

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SIZES = [1000, 5000]
MAX_QUERIES = 27  # a ceiling; what the tests assert is that it does not grow with the batch


@pytest.fixture(autouse=True)
def big_batches(settings):
    settings.MAESTRA_BATCH_SIZE = 5000


def bulk_create_statements(model, rows: int) -> int:
    """How many INSERTs Django's bulk_create needs for `rows` rows of `model`
    on this database (1 on PostgreSQL; SQLite: 999 parameters each)."""
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    per_statement = connection.ops.bulk_batch_size(fields, [None] * rows)
    return math.ceil(rows / per_statement)


def split(queries, table: str) -> tuple[list[str], int]:
    """(the other statements, how many INSERT INTO `table` there were)."""
    marker = f'INTO "{table}"'
    inserts = [q["sql"] for q in queries if q["sql"].startswith("INSERT") and marker in q["sql"]]
    return [q["sql"] for q in queries if q["sql"] not in inserts], len(inserts)


def two_emails_flow():
    """start → hello (email) → an hour → again (email)."""
    email_template("hello")
    email_template("again")
    hour = node("hour", "wait", mode="fixed", duration="PT1H")
    return launch(chained(steps("hello", send("hello")), hour, steps("again", send("again"))))


def measure(fn):
    with CaptureQueriesContext(connection) as captured:
        result = fn()
    return result, captured.captured_queries


@pytest.fixture
def moved_twice(db):
    """For each size: the queries of the batch that takes the audience through
    the first email into the wait, and of the batch that wakes them up and
    sends the second email."""
    figures = {}
    with time_machine.travel(T0, tick=False):
        flow = two_emails_flow()
    for size in SIZES:
        Run.objects.all().delete()
        with time_machine.travel(T0, tick=False):
            ids = make_customers(size, prefix=f"s{size}-")
            static_segment(f"audience-{size}", ids)
            start_flow_for_segment(flow=flow, segment_slug=f"audience-{size}")
            first, first_queries = measure(lambda: process_due_runs(ctx=EngineContext(), max_batches=1))
        with time_machine.travel(T0 + timedelta(hours=1, seconds=1), tick=False):
            second, second_queries = measure(lambda: process_due_runs(ctx=EngineContext(), max_batches=1))
        assert first["runs"] == size and first["waiting"] == size and first["batches"] == 1
        assert second["runs"] == size and second["completed"] == size
        figures[size] = (first_queries, second_queries)
    return figures


@pytest.mark.slow
def test_moving_a_batch_through_a_send_and_a_wait_takes_the_same_queries_for_1000_and_5000(moved_twice):
    engine_counts = []
    for first, second in moved_twice.values():
        for queries in (first, second):
            others, outbox_inserts = split(queries, Message._meta.db_table)
            # Django's chunks today; one statement once channels/outbox.py inserts in one go.
            assert outbox_inserts == 1
            assert len(others) <= MAX_QUERIES, "\n".join(others)
            engine_counts.append(len(others))
    print("engine queries (enter wait, wake up) for", SIZES, ":", engine_counts)
    # 1,000 and 5,000 alike, for both batches.
    assert engine_counts[:2] == engine_counts[2:]
    if connection.vendor == "postgresql":
        totals = [len(queries) for pair in moved_twice.values() for queries in pair]
        assert totals[:2] == totals[2:]


@pytest.mark.django_db
@pytest.mark.parametrize("size", SIZES)
def test_matching_events_takes_a_bounded_number_of_queries(size):
    email_template("hello")
    with time_machine.travel(T0, tick=False):
        ids = make_customers(size)
        launch(document([event_start("signed_up"), steps("hello", send("hello"))], [edge("start", "hello")]))
        store_events(events=[{"customer_id": i, "type": "signed_up", "occurred_at": T0} for i in ids])
        counts, queries = measure(lambda: match_events(ctx=EngineContext(), limit=size))
    assert counts["runs_started"] == size
    others, run_inserts = split(queries, Run._meta.db_table)
    print(f"match_events({size}): {len(others)} queries + {run_inserts} run inserts")
    assert len(others) <= MAX_QUERIES, "\n".join(others)
    # flows/nodes/event.py creates the runs with bulk_create(batch_size=2000) today; one
    # statement once it inserts them in one go.
    assert run_inserts in (1, max(bulk_create_statements(Run, size), math.ceil(size / 2000)))


@pytest.mark.django_db
def test_firing_a_schedule_for_5000_customers_takes_as_many_queries_as_for_1000():
    email_template("hello")
    counts = []
    for size in SIZES:
        slug = f"audience-{size}"
        ids = make_customers(size, prefix=f"s{size}-")
        static_segment(slug, ids)
        with time_machine.travel(datetime(2026, 3, 1, 8, tzinfo=UTC), tick=False):
            launch(
                document(
                    [builders.schedule_start(slug), steps("hello", send("hello"))], [edge("start", "hello")]
                )
            )
        with time_machine.travel(datetime(2026, 3, 1, 10, 1, tzinfo=UTC), tick=False):
            fired, queries = measure(lambda: fire_schedules(ctx=EngineContext()))
        assert fired == {"fired": 1, "runs_started": size}
        counts.append(len(queries))
        # Only the next size's flow is due next time round.
        Run.objects.all().delete()
        FlowVersion.objects.update(next_fire_at=None)
    print("fire_schedules queries for", SIZES, ":", counts)
    assert counts[0] == counts[1] <= MAX_QUERIES


@pytest.mark.slow
@pytest.mark.django_db
def test_a_limitation_node_takes_the_same_queries_for_1000_and_5000():
    email_template("hello")
    with time_machine.travel(T0, tick=False):
        cap = node("cap", "limitation", max=3000, period={"unit": "days", "every": 1}, alert_below=None)
        nodes = [event_start("never"), cap, steps("hello", send("hello"))]
        flow = launch(document(nodes, [edge("start", "cap"), edge("cap", "hello", "within")]))
        # The counter exists from here on, as it does for all but the first batch.
        static_segment("first", make_customers(1, prefix="first-"))
        start_flow_for_segment(flow=flow, segment_slug="first")
        process_due_runs(ctx=EngineContext())
    counts = []
    for size in SIZES:
        with time_machine.travel(T0 + timedelta(days=len(counts) * 2, minutes=1), tick=False):
            ids = make_customers(size, prefix=f"s{size}-")
            static_segment(f"audience-{size}", ids)
            start_flow_for_segment(flow=flow, segment_slug=f"audience-{size}")
            moved, queries = measure(lambda: process_due_runs(ctx=EngineContext(), max_batches=1))
        assert moved["runs"] == size and moved["completed"] == size
        others, outbox_inserts = split(queries, Message._meta.db_table)
        assert outbox_inserts == 1
        counts.append(len(others))
    print("limitation → email, queries for", SIZES, ":", counts)
    assert counts[0] == counts[1] <= MAX_QUERIES
