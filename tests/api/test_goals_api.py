"""Flow goal and exit criteria through the REST API (SPEC §13): the document
shapes (malformed → 400 naming the field, semantic errors stored with the
draft, export = what was saved), and the goal statistics of
GET /api/v1/flows/{id}/stats per flow, node, A/B variant and splitter branch,
from events posted through the API and ticks of the engine."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from flows.engine.tick import tick

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _document(**extra) -> dict:
    return {
        "format": "maestra.flow/1",
        "name": "Welcome",
        "nodes": [
            {"key": "start", "kind": "event", "config": {"event_type": "signed_up"}},
            {
                "key": "ab",
                "kind": "ab_test",
                "config": {
                    "variants": [
                        {"name": "a", "percent": 100, "control": False},
                        {"name": "b", "percent": 0, "control": True},
                    ]
                },
            },
            {
                "key": "split",
                "kind": "splitter",
                "config": {"branches": [{"name": "left", "percent": 100}, {"name": "right", "percent": 0}]},
            },
            {"key": "day", "kind": "wait", "config": {"mode": "fixed", "duration": "P1D"}},
        ],
        "edges": [
            {"from": "start", "to": "ab"},
            {"from": "ab", "port": "a", "to": "split"},
            {"from": "split", "port": "left", "to": "day"},
        ],
        **extra,
    }


GOAL = {
    "event_type": "order_created",
    "filter": {"field": "event.total", "op": "gte", "value": 10},
    "window": "P7D",
    "value_field": "event.total",
}
EXIT = {"event_type": "unsubscribed", "filter": None}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"goal": "order_created"}, "goal"),
        ({"goal": {"filter": None}}, "goal.event_type"),
        ({"goal": {**GOAL, "window": 7}}, "goal.window"),
        ({"goal": {**GOAL, "colour": "red"}}, "goal.colour"),
        ({"exit": {"event_type": "x", "filter": "total > 3"}}, "exit.filter"),
        ({"exit": {"event_type": "x", "window": "P1D"}}, "exit.window"),
        ({"exit": []}, "exit"),
    ],
)
@pytest.mark.django_db
def test_a_malformed_goal_or_exit_is_a_400_naming_the_field(api, extra, field):
    response = api.post("/api/v1/flows", _document(**extra), format="json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert field in [error["field"] for error in response.json()["errors"]]


@pytest.mark.django_db
def test_semantic_errors_are_stored_with_the_draft_and_block_the_launch(api):
    bad = {
        "goal": {**GOAL, "window": "P0D", "value_field": "customer.email"},
        "exit": {"event_type": "unsubscribed", "filter": {"field": "points", "op": "gt", "value": 1}},
    }
    response = api.post("/api/v1/flows", _document(**bad), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft"
    assert {"goal.window", "goal.value_field", "exit.filter.field"} <= {e["field"] for e in body["errors"]}
    response = api.post(f"/api/v1/flows/{body['id']}/launch")
    assert response.status_code == 409
    # Fixed through the draft.
    response = api.put(f"/api/v1/flows/{body['id']}/draft", _document(goal=GOAL, exit=EXIT), format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["errors"] == []


@pytest.mark.django_db
def test_export_returns_the_goal_and_exit_exactly(api):
    document = _document(goal=GOAL, exit=EXIT)
    flow_id = api.post("/api/v1/flows", document, format="json").json()["id"]
    exported = api.get(f"/api/v1/flows/{flow_id}/document", {"version": "draft"}).json()
    assert exported == document


def _post(api, *events) -> None:
    items = [
        {
            "id": f"e-{customer}-{event_type}-{at.isoformat()}",
            "customer": customer,
            "type": event_type,
            "occurred_at": at.isoformat(),
            "payload": payload,
        }
        for customer, event_type, at, payload in events
    ]
    response = api.post("/api/v1/events", {"events": items}, format="json")
    assert response.status_code == 202, response.json()


@pytest.mark.django_db(transaction=True)
def test_goal_statistics_and_exit_from_events_posted_through_the_api(api):
    with time_machine.travel(NOW, tick=False):
        response = api.post("/api/v1/flows", _document(goal=GOAL, exit=EXIT), format="json")
        assert response.status_code == 201 and response.json()["errors"] == [], response.json()
        flow_id = response.json()["id"]
        assert api.post(f"/api/v1/flows/{flow_id}/launch").status_code == 202
        tick(deliver=False)
        _post(api, *[(name, "signed_up", NOW, {}) for name in ("ann", "bob", "cid", "dan")])
        tick(deliver=False)
    later = NOW + timedelta(hours=2)
    with time_machine.travel(later, tick=False):
        _post(
            api,
            ("ann", "order_created", later, {"total": 40}),
            ("ann", "order_created", later + timedelta(minutes=1), {"total": 99}),  # converts once
            ("bob", "order_created", later, {"total": 5}),  # below the goal's filter
            ("cid", "order_created", NOW - timedelta(days=1), {"total": 50}),  # before entering
            ("dan", "unsubscribed", later, {}),  # the exit
        )
        tick(deliver=False)
    with time_machine.travel(NOW + timedelta(days=9), tick=False):
        _post(api, ("bob", "order_created", NOW + timedelta(days=9), {"total": 70}))  # after the window
        tick(deliver=False)
        stats = api.get(f"/api/v1/flows/{flow_id}/stats", {"start": (NOW - timedelta(hours=1)).isoformat()})
    assert stats.status_code == 200, stats.json()
    body = stats.json()
    goal = body["goal"]
    assert (goal["event_type"], goal["window"], goal["value_field"]) == (
        "order_created",
        "P7D",
        "event.total",
    )
    assert (goal["entered"], goal["converted"], goal["rate"], goal["value"]) == (4, 1, 0.25, 40.0)
    assert goal["nodes"]["ab"]["ports"]["a"] == {"entered": 4, "converted": 1, "rate": 0.25, "value": 40.0}
    assert goal["nodes"]["split"]["ports"]["left"]["converted"] == 1
    # Dan stopped at the wait with exit_criteria (3 left it by "next" a day later).
    day = next(node for node in body["nodes"] if node["key"] == "day")
    assert {stop["reason"]: stop["count"] for stop in day["stops"]} == {"exit_criteria": 1}
    assert goal["nodes"]["day"]["entered"] == 4  # every run passed it (one stopped there)


@pytest.mark.django_db
def test_a_flow_without_a_goal_has_null_goal_statistics(api):
    flow_id = api.post("/api/v1/flows", _document(), format="json").json()["id"]
    assert api.get(f"/api/v1/flows/{flow_id}/stats").json()["goal"] is None
