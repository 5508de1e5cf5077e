"""Identical event batches posted at the same moment (a client retrying on a
timeout) store and trigger each event once: a real threaded server, real
parallel requests, PostgreSQL row locks."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from customers.models import Customer, Event
from flows import lifecycle
from flows.engine.tick import tick
from flows.models import Run

PARALLEL = 8

DOCUMENT = {
    "format": "maestra.flow/1",
    "name": "Orders",
    "nodes": [
        {"key": "start", "kind": "event", "config": {"event_type": "order_created", "max_age": "P3650D"}},
        {"key": "later", "kind": "wait", "config": {"mode": "fixed", "duration": "P1D"}},
    ],
    "edges": [{"from": "start", "to": "later"}],
}


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_stores_and_triggers_each_event_once_when_identical_requests_race(live_server, api_key):
    flow = lifecycle.create_flow(document=DOCUMENT)
    assert flow.status == "ready", flow.versions.get().errors
    lifecycle.finish_launch(flow_id=lifecycle.launch_flow(flow=flow, enqueue=False).pk)
    batch = {
        "events": [
            {
                "id": f"order-{n}",
                "customer": f"new-{n % 10}",
                "type": "order_created",
                "occurred_at": "2025-06-06T20:00:00+02:00",
                "payload": {"n": n},
            }
            for n in range(50)
        ]
    }
    barrier = threading.Barrier(PARALLEL)

    def post(_):
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            barrier.wait()
            return client.post("/api/v1/events", json=batch, headers={"Authorization": f"Api-Key {api_key}"})

    with ThreadPoolExecutor(PARALLEL) as pool:
        responses = list(pool.map(post, range(PARALLEL)))

    assert [r.status_code for r in responses] == [202] * PARALLEL, [r.text for r in responses]
    assert sum(r.json()["accepted"] for r in responses) == 50
    assert sum(r.json()["duplicates"] for r in responses) == 50 * (PARALLEL - 1)
    assert Event.objects.filter(type="order_created").count() == 50
    assert Customer.objects.filter(external_id__startswith="new-").count() == 10
    assert Event.objects.filter(type="customer_created").count() == 10

    tick(deliver=False)
    assert Run.objects.filter(flow=flow).count() == 50
    assert Run.objects.filter(flow=flow).values("trigger_event_id").distinct().count() == 50
