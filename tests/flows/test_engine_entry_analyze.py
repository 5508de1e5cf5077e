"""A large audience entry (a schedule fire, run_flow) analyses the runs table
once it has committed (flows.engine.entry.analyse_after_entry): the claims
that follow must plan with the new runs counted, or each batch reads and
sorts every run of the flow (run_flow_status_idx) instead of walking
run_due_id_idx in order. PostgreSQL only; a small entry leaves it to
autovacuum."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import flows.engine.entry
from flows.engine.batch import EngineContext
from flows.engine.entry import start_flow_for_segment
from flows.models import Run
from flows.nodes.schedule.firing import fire_schedules
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, document, node, send, steps, utc

MONDAY_17 = utc(2026, 6, 1, 17, 0)
TUESDAY_10 = utc(2026, 6, 2, 10, 0)
ANALYZE = f"ANALYZE {Run._meta.db_table}"


def scheduled(segment: str) -> dict:
    return document(
        [
            node(
                "start",
                "schedule",
                recurrence={"every": "day", "at": "10:00"},
                timezone="flow",
                audience={"segment": segment},
            ),
            steps("mail", send("welcome")),
        ],
        [{"from": "start", "to": "mail"}],
    )


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries]


@pytest.fixture
def audience(welcome):
    ids = [kit.customer(name) for name in ("ann", "bob", "cid")]
    kit.static_segment("vip", ids)
    return ids


@pytest.mark.django_db
def test_a_large_fire_analyses_the_runs_table_after_entering(audience, monkeypatch):
    monkeypatch.setattr(flows.engine.entry, "ANALYZE_AFTER_RUNS", 3)
    with at(MONDAY_17):
        flow = kit.launch(scheduled("vip"))

    with at(TUESDAY_10), CaptureQueriesContext(connection) as queries:
        counts = fire_schedules(ctx=EngineContext())

    assert counts == {"fired": 1, "runs_started": 3}
    ran = statements(queries)
    if connection.vendor == "postgresql":
        assert ran.count(ANALYZE) == 1
        # After the entry: the statistics count its runs.
        inserted = next(i for i, sql in enumerate(ran) if sql.startswith(f"INSERT INTO {Run._meta.db_table}"))
        assert ran.index(ANALYZE) > inserted
    else:
        assert ANALYZE not in ran
    assert Run.objects.filter(flow=flow).count() == 3


@pytest.mark.django_db
def test_a_small_fire_leaves_the_statistics_to_autovacuum(audience, monkeypatch):
    monkeypatch.setattr(flows.engine.entry, "ANALYZE_AFTER_RUNS", 4)
    with at(MONDAY_17):
        kit.launch(scheduled("vip"))

    with at(TUESDAY_10), CaptureQueriesContext(connection) as queries:
        counts = fire_schedules(ctx=EngineContext())

    assert counts["runs_started"] == 3
    assert ANALYZE not in statements(queries)


@pytest.mark.django_db
def test_a_fire_that_raises_analyses_nothing(audience, monkeypatch):
    monkeypatch.setattr(flows.engine.entry, "ANALYZE_AFTER_RUNS", 1)
    with at(MONDAY_17):
        flow = kit.launch(scheduled("vip"))

    def fails(**kwargs):
        raise RuntimeError("an audience rule no validator caught")

    monkeypatch.setattr("flows.nodes.schedule.firing.enter_audience", fails)
    with at(TUESDAY_10), CaptureQueriesContext(connection) as queries:
        counts = fire_schedules(ctx=EngineContext())

    assert counts == {"errors": 1}
    assert ANALYZE not in statements(queries)
    assert not Run.objects.filter(flow=flow).exists()


@pytest.mark.django_db
def test_a_large_run_flow_analyses_the_runs_table(audience, monkeypatch):
    monkeypatch.setattr(flows.engine.entry, "ANALYZE_AFTER_RUNS", 3)
    with at(MONDAY_17):
        flow = kit.launch(scheduled("vip"))
        flow.refresh_from_db()
        with CaptureQueriesContext(connection) as queries:
            started = start_flow_for_segment(flow=flow, segment_slug="vip")

    assert started == 3
    assert statements(queries).count(ANALYZE) == (1 if connection.vendor == "postgresql" else 0)
