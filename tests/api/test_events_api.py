"""POST /api/v1/events: all-or-nothing batches through flows.engine.ingestion,
idempotent by event id, unknown customers created."""

from datetime import UTC, datetime, timedelta

import django_q.conf
import pytest
import time_machine

from customers.models import Customer, Event

NOW = datetime(2025, 6, 10, 10, 0, tzinfo=UTC)


def _event(number: int = 1, **changes) -> dict:
    return {
        "id": f"evt-{number}",
        "customer": "c-1",
        "type": "order_created",
        "occurred_at": "2025-06-06T20:00:00+02:00",
        "payload": {"total": 59.9},
        **changes,
    }


def _post(api, events):
    return api.post("/api/v1/events", {"events": events}, format="json")


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.mark.django_db
def test_it_stores_events_and_answers_202_with_counts(api):
    response = _post(api, [_event(1), _event(2, payload={})])
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "duplicates": 0}
    stored = Event.objects.filter(external_id__isnull=False).order_by("external_id")
    assert [(e.external_id, e.type, e.payload) for e in stored] == [
        ("evt-1", "order_created", {"total": 59.9}),
        ("evt-2", "order_created", {}),
    ]
    assert stored[0].occurred_at == datetime(2025, 6, 6, 18, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_it_creates_an_unknown_customer(api):
    assert _post(api, [_event(customer="new-customer")]).status_code == 202
    customer = Customer.objects.get(external_id="new-customer")
    assert Event.objects.filter(customer=customer, type="customer_created").count() == 1
    assert Event.objects.filter(customer=customer, type="order_created").count() == 1


@pytest.mark.django_db
def test_it_ignores_duplicates_within_and_across_batches(api):
    assert _post(api, [_event(1), _event(1), _event(2)]).json() == {"accepted": 2, "duplicates": 1}
    assert _post(api, [_event(1), _event(2), _event(3)]).json() == {"accepted": 1, "duplicates": 2}
    assert Event.objects.filter(external_id__isnull=False).count() == 3
    # Re-sending does not create the customer twice either.
    assert Customer.objects.filter(external_id="c-1").count() == 1


@pytest.mark.django_db
def test_it_accepts_an_empty_batch(api):
    assert _post(api, []).json() == {"accepted": 0, "duplicates": 0}


BAD_ITEMS = [
    ({"occurred_at": "2025-06-06T20:00:00"}, "occurred_at", "UTC offset"),
    ({"occurred_at": "2025-06-06"}, "occurred_at", "UTC offset"),
    ({"occurred_at": "yesterday"}, "occurred_at", "ISO 8601"),
    ({"occurred_at": 1717700000}, "occurred_at", "ISO 8601"),
    ({"occurred_at": None}, "occurred_at", "required"),
    ({"occurred_at": "2025-06-10T12:00:00Z"}, "occurred_at", "future"),
    ({"occurred_at": "1969-12-31T23:00:00Z"}, "occurred_at", "1970"),
    ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at", "range"),
    ({"type": None}, "type", "required"),
    ({"type": ""}, "type", "empty"),
    ({"type": "x" * 101}, "type", "100"),
    ({"type": 5}, "type", "string"),
    ({"id": None}, "id", "required"),
    ({"id": "  "}, "id", "empty"),
    ({"id": 17}, "id", "string"),
    ({"customer": None}, "customer", "required"),
    ({"customer": "x" * 201}, "customer", "200"),
    ({"payload": [1, 2]}, "payload", "object"),
    ({"payload": "text"}, "payload", "object"),
    ({"payload": {"": 1}}, "payload", "keys"),
    ({"extra": 1}, "extra", "unknown"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("changes", "field", "words"), BAD_ITEMS)
def test_it_refuses_a_bad_item_and_stores_nothing(api, changes, field, words):
    item = _event(2)
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    response = _post(api, [_event(1, customer="someone-new"), item])
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, field)]
    assert words in errors[0]["message"]
    assert not Event.objects.exists()
    assert not Customer.objects.exists()


@pytest.mark.django_db
def test_it_lists_every_bad_item(api):
    items = [
        _event(1),
        "not an object",
        _event(3, occurred_at="2025-06-06T20:00"),
        _event(4, type="", payload=[]),
    ]
    response = _post(api, items)
    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [
        (1, ""),
        (2, "occurred_at"),
        (3, "type"),
        (3, "payload"),
    ]


@pytest.mark.django_db
def test_it_refuses_more_than_1000_events(api):
    response = _post(api, [_event(n) for n in range(1001)])
    assert response.status_code == 400
    assert "at most 1000" in response.json()["errors"][0]["message"]
    assert _post(api, [_event(n) for n in range(1000)]).json() == {"accepted": 1000, "duplicates": 0}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "events"), ({"events": {"id": 1}}, "events"), ({"events": [], "more": 1}, "more")],
)
def test_it_refuses_a_body_of_the_wrong_shape(api, body, field):
    response = api.post("/api/v1/events", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.django_db(transaction=True)
def test_it_enqueues_the_sweep_after_commit_so_a_cluster_reacts_at_once(api, monkeypatch):
    calls = []
    monkeypatch.setattr("flows.tasks.sweep_task", lambda: calls.append("swept") or {})
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)
    assert _post(api, [_event(1)]).status_code == 202
    assert calls == ["swept"]
    # Nothing new (all duplicates): nothing to sweep.
    assert _post(api, [_event(1)]).json() == {"accepted": 0, "duplicates": 1}
    assert calls == ["swept"]


@pytest.mark.django_db(transaction=True)
def test_it_matches_the_events_at_once_when_tasks_run(api, monkeypatch):
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)
    assert _post(api, [_event(1)]).status_code == 202
    assert not Event.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_events_when_the_broker_is_down(api, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("django_q.tasks.async_task", down)
    assert _post(api, [_event(1)]).status_code == 202
    assert Event.objects.filter(external_id="evt-1").exists()


def test_the_event_time_tolerance_is_one_hour():
    from flows.engine.ingestion import parse_occurred_at

    assert parse_occurred_at("2025-06-10T10:59:00Z", now=NOW) == NOW + timedelta(minutes=59)
    with pytest.raises(ValueError, match="future"):
        parse_occurred_at("2025-06-10T11:01:00Z", now=NOW)
