"""Two people (or a task and flows_tick) acting on one flow at the same moment:
the row lock on the flow makes them queue, so there is still one draft and
one launch. Needs PostgreSQL (SQLite has no row locks and one writer)."""

import threading

import pytest
from django.db import connection

from flows import lifecycle
from flows.models import Flow
from maestra.audit.models import AuditEntry

S = Flow.Status


def together(*calls):
    """Run the calls in threads released at the same moment; their results."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:  # reported to the test below
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_creates_one_draft_when_two_edits_race(flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    results = together(*[lambda: lifecycle.edit_flow(flow=flow)] * 4)

    assert all(not isinstance(result, Exception) for result in results), results
    assert len({draft.pk for draft in results}) == 1
    assert flow.versions.filter(state="draft").count() == 1
    assert Flow.objects.get(pk=flow.pk).status == S.ACTIVE


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_finishes_a_launch_once_when_the_task_and_the_tick_race(flow_in):
    flow = flow_in(S.LAUNCHING)

    results = together(
        lambda: lifecycle.finish_launch(flow_id=flow.pk),
        lifecycle.finish_pending_launches,
        lifecycle.finish_pending_launches,
    )

    assert all(not isinstance(result, Exception) for result in results), results
    assert sum(results[1:]) <= 1
    assert Flow.objects.get(pk=flow.pk).status == S.ACTIVE
    assert AuditEntry.objects.about(flow).filter(action="flow.launched").count() == 1


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_two_racing_launches_through(flow_in):
    flow = flow_in(S.READY)

    results = together(
        lambda: lifecycle.launch_flow(flow=flow, enqueue=False),
        lambda: lifecycle.launch_flow(flow=flow, enqueue=False),
    )

    refusals = [result for result in results if isinstance(result, lifecycle.LifecycleError)]
    assert len(refusals) == 1
    assert "Cannot launch a flow that is launching" in refusals[0].message
    assert AuditEntry.objects.about(flow).filter(action="flow.launch_requested").count() == 1
