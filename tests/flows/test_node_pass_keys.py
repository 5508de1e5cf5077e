"""Node passes carry no foreign-key constraint in the database (flows/models.py,
NodePass: checking them cost more than writing the passes). What the
constraint guarded still holds: passes are written only for existing runs,
and deleting runs, customers or flows through the ORM deletes their passes."""

from __future__ import annotations

import pytest
from django.db import connection

from customers.models import Customer
from flows.models import Flow, NodePass, Run
from tests.flows.engine_kit import (
    email_templates,
    launch_at,
    node,
    post_and_tick,
    send,
    start_then,
    steps,
    tick_at,
    utc,
)

pytestmark = pytest.mark.django_db

NOW = utc(2026, 3, 2, 9)


def _flow_with_passes():
    email_templates("hello")
    doc = start_then(
        steps("hello", send("hello")),
        node("pause", "wait", mode="fixed", duration="PT1H"),
        steps("bye", send("hello")),
    )
    flow, ann, bob = launch_at(NOW, doc, "ann", "bob", email="someone@example.com")
    post_and_tick(NOW, ann, bob)
    tick_at(utc(2026, 3, 2, 11))
    return flow, ann, bob


def test_the_database_does_not_check_node_pass_keys():
    with connection.cursor() as cursor:
        keys = connection.introspection.get_relations(cursor, NodePass._meta.db_table)
    assert keys == {}


def test_every_pass_the_engine_writes_points_at_its_run_and_version():
    flow, _ann, _bob = _flow_with_passes()
    passes = list(NodePass.objects.filter(run__flow=flow).values_list("run_id", "version_id", "node_key"))
    assert len(passes) == 2 * 4  # start, hello, pause, bye for each
    runs = dict(Run.objects.filter(flow=flow).values_list("id", "version_id"))
    assert all(runs[run_id] == version_id for run_id, version_id, _key in passes)
    assert not NodePass.objects.exclude(run_id__in=Run.objects.values("id")).exists()


def test_deleting_a_customer_deletes_their_passes():
    flow, ann, bob = _flow_with_passes()
    Customer.objects.filter(id=ann).delete()
    assert not NodePass.objects.filter(run__customer_id=ann).exists()
    assert not NodePass.objects.exclude(run_id__in=Run.objects.values("id")).exists()
    assert NodePass.objects.filter(run__customer_id=bob).count() == 4


def test_deleting_runs_or_a_flow_deletes_their_passes():
    flow, ann, _bob = _flow_with_passes()
    Run.objects.filter(customer_id=ann).delete()
    assert NodePass.objects.count() == 4
    Flow.objects.filter(pk=flow.pk).delete()  # versions and runs go with it
    assert NodePass.objects.count() == 0
