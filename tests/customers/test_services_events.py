from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from customers.errors import InvalidInput
from customers.models import Event
from customers.services.events import emit_events, store_events

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 6, 10, 10, 0, tzinfo=UTC)


def event(customer_id: int, external_id: str | None = None, **changes) -> dict:
    base = {
        "external_id": external_id,
        "customer_id": customer_id,
        "type": "order_created",
        "occurred_at": T0 - timedelta(hours=1),
        "payload": {"total": 42.5, "items": ["a"]},
    }
    return {**base, **changes}


def test_it_stores_events_unprocessed(make_customers):
    a, b = make_customers(2)
    with time_machine.travel(T0, tick=False):
        result = store_events(events=[event(a.id, "o1"), event(b.id, None, type="page_view", payload={})])
    assert result["accepted"] == 2
    assert result["duplicates"] == 0
    assert result["dropped"] == 0
    stored = list(Event.objects.order_by("id"))
    assert result["ids"] == [e.id for e in stored]
    first = Event.objects.get(external_id="o1")
    second = Event.objects.get(external_id__isnull=True)
    assert (first.external_id, first.customer_id, first.type) == ("o1", a.id, "order_created")
    assert first.payload == {"total": 42.5, "items": ["a"]}
    assert first.occurred_at == T0 - timedelta(hours=1)
    assert first.received_at == T0
    assert first.processed_at is None
    assert first.depth == 0
    assert (second.external_id, second.type, second.payload) == (None, "page_view", {})


def test_it_ignores_duplicates_stored_before_and_within_the_batch(make_customers):
    [a] = make_customers(1)
    store_events(events=[event(a.id, "o1")])
    result = store_events(
        events=[event(a.id, "o1"), event(a.id, "o2"), event(a.id, "o2", payload={"other": 1}), event(a.id)]
    )
    assert (result["accepted"], result["duplicates"]) == (2, 2)
    assert Event.objects.count() == 3
    # the first of the repeated ids wins
    assert Event.objects.get(external_id="o2").payload == {"total": 42.5, "items": ["a"]}


def test_storing_the_same_batch_twice_stores_nothing_new(make_customers):
    [a] = make_customers(1)
    batch = [event(a.id, f"o{i}") for i in range(5)]
    assert store_events(events=batch)["accepted"] == 5
    again = store_events(events=batch)
    assert again == {"accepted": 0, "duplicates": 5, "dropped": 0, "ids": []}
    assert Event.objects.count() == 5


def test_it_stores_events_without_external_id_every_time(make_customers):
    [a] = make_customers(1)
    store_events(events=[event(a.id)])
    store_events(events=[event(a.id)])
    assert Event.objects.count() == 2


@override_settings(MAESTRA_MAX_EVENT_DEPTH=2)
def test_it_drops_events_deeper_than_the_limit(make_customers):
    [a] = make_customers(1)
    assert store_events(events=[event(a.id, "d2")], depth=2)["accepted"] == 1
    result = store_events(events=[event(a.id, "d3"), event(a.id)], depth=3)
    assert result == {"accepted": 0, "duplicates": 0, "dropped": 2, "ids": []}
    assert list(Event.objects.values_list("external_id", "depth")) == [("d2", 2)]


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_it_accepts_a_payload_nested_32_levels(make_customers):
    [a] = make_customers(1)
    payload = nested(32)
    store_events(events=[event(a.id, "deep", payload=payload)])
    assert Event.objects.get(external_id="deep").payload == payload


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer_id": "1"}, "customer_id"),
        ({"customer_id": None}, "customer_id"),
        ({"type": ""}, "type"),
        ({"type": None}, "type"),
        ({"type": "x" * 101}, "type"),
        ({"occurred_at": "2025-01-01T00:00:00Z"}, "occurred_at"),
        ({"occurred_at": datetime(2025, 1, 1)}, "occurred_at"),
        ({"payload": [1]}, "payload"),
        ({"payload": {"at": datetime(2025, 1, 1, tzinfo=UTC)}}, "payload.at"),
        ({"payload": {"a": nested(32)}}, "payload.a" + ".a" * 31),
        ({"payload": {"a": nested(500)}}, "payload.a" + ".a" * 31),
        ({"payload": {"items": [{"sku": "x\ud800"}]}}, "payload.items.0.sku"),
        ({"type": "order\udc00"}, "type"),
        ({"payload": {"note": "\x00"}}, "payload.note"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": 5}, "external_id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_it_rejects_a_bad_event_and_stores_nothing(make_customers, changes, field):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput) as raised:
        store_events(events=[event(a.id, "ok"), {**event(a.id, "bad"), **changes}])
    assert (raised.value.errors[0]["index"], raised.value.errors[0]["field"]) == (1, field)
    assert not Event.objects.exists()


def test_it_rejects_events_for_unknown_customers(make_customers):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput) as raised:
        store_events(events=[event(a.id, "ok"), event(a.id + 1000, "x")])
    assert raised.value.errors == [
        {"index": 1, "field": "customer_id", "message": f"customer {a.id + 1000} does not exist"}
    ]
    assert not Event.objects.exists()


@pytest.mark.parametrize("depth", [-1, "1", None, 1.0])
def test_it_rejects_a_bad_depth(make_customers, depth):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput):
        store_events(events=[event(a.id)], depth=depth)


def test_it_accepts_an_empty_batch():
    assert store_events(events=[]) == {"accepted": 0, "duplicates": 0, "dropped": 0, "ids": []}


def test_it_emits_one_event_per_customer_at_the_given_depth(make_customers):
    a, b = make_customers(2)
    with time_machine.travel(T0, tick=False):
        assert (
            emit_events(customer_ids=[a.id, b.id, a.id], event_type="vip_reached", payload={"k": 1}, depth=1)
            == 2
        )
    rows = list(
        Event.objects.order_by("id").values_list("customer_id", "type", "payload", "depth", "occurred_at")
    )
    assert rows == [(a.id, "vip_reached", {"k": 1}, 1, T0), (b.id, "vip_reached", {"k": 1}, 1, T0)]


@override_settings(MAESTRA_MAX_EVENT_DEPTH=3)
def test_emitting_beyond_the_depth_limit_stores_nothing(make_customers):
    [a] = make_customers(1)
    assert emit_events(customer_ids=[a.id], event_type="ping", payload={}, depth=4) == 0
    assert not Event.objects.exists()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_identical_batches_stored_concurrently_store_each_id_once(make_customers, run_in_threads):
    customers = make_customers(50)
    batch = [event(customer.id, f"order-{i}-{j}") for i, customer in enumerate(customers) for j in range(4)]

    results = run_in_threads(4, lambda i: store_events(events=batch if i % 2 == 0 else list(reversed(batch))))

    assert Event.objects.count() == 200
    assert Event.objects.values("external_id").distinct().count() == 200
    assert sum(r["accepted"] for r in results) == 200
    assert sum(r["duplicates"] for r in results) == 600
    assert sorted(i for r in results for i in r["ids"]) == sorted(Event.objects.values_list("id", flat=True))
