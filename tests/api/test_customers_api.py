"""PUT/GET /api/v1/customers/{external_id} and the customer's activity."""

from datetime import UTC, datetime, timedelta

import pytest

from customers.models import Customer, Event, PointsEntry, Segment, SegmentMembership, Subscription
from flows.models import Flow, FlowVersion, Node, Run
from tests.flows import admin_kit as kit


@pytest.mark.django_db
def test_it_creates_then_updates_a_customer(api):
    created = api.put(
        "/api/v1/customers/c-1",
        {
            "email": "ada@example.com",
            "first_name": "Ada",
            "timezone": "Europe/Berlin",
            "fields": {"tier": "gold", "age": 36},
            "subscriptions": {"email": "requires_confirmation"},
        },
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["external_id"], body["email"], body["fields"]) == (
        "c-1",
        "ada@example.com",
        {"tier": "gold", "age": 36},
    )
    assert body["subscriptions"] == {"email": "requires_confirmation"}
    updated = api.put(
        "/api/v1/customers/c-1",
        {"fields": {"age": 37}, "last_name": "Lovelace", "subscriptions": {"email": "subscribed"}},
        format="json",
    )
    assert updated.status_code == 200
    body = updated.json()
    assert (body["first_name"], body["last_name"]) == ("Ada", "Lovelace")
    assert body["fields"] == {"tier": "gold", "age": 37}
    assert body["subscriptions"] == {"email": "subscribed"}
    changes = Event.objects.filter(type="subscription_changed").order_by("id")
    assert [(e.payload["old"], e.payload["new"], e.payload["source"]) for e in changes] == [
        (None, "requires_confirmation", "api"),
        ("requires_confirmation", "subscribed", "api"),
    ]
    assert Event.objects.filter(type="customer_created").count() == 1


@pytest.mark.django_db
def test_it_clears_an_attribute_with_null(api):
    api.put("/api/v1/customers/c-1", {"phone": "+4930123"}, format="json")
    assert api.put("/api/v1/customers/c-1", {"phone": None}, format="json").json()["phone"] == ""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"subscriptions": {"email": "maybe"}}, "subscriptions.email"),
        ({"subscriptions": {"fax": "subscribed"}}, "subscriptions.fax"),
        ({"subscriptions": ["email"]}, "subscriptions"),
        ({"fields": [1]}, "fields"),
        ({"first_name": 5}, "first_name"),
        ({"frist_name": "Ada"}, "frist_name"),
        ({"external_id": "someone-else"}, "external_id"),
    ],
)
def test_it_refuses_a_bad_customer_and_writes_nothing(api, body, field):
    response = api.put("/api/v1/customers/c-1", body, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in [e["field"] for e in errors]
    assert all("index" not in e for e in errors)
    assert not Customer.objects.exists()


@pytest.mark.django_db
def test_it_reads_profile_points_and_static_and_rule_segments(api):
    customer = Customer.objects.create(external_id="c-1", email="ada@example.com", fields={"tier": "gold"})
    Subscription.objects.create(customer=customer, channel="email", status="subscribed")
    PointsEntry.objects.create(customer=customer, amount=100)
    PointsEntry.objects.create(customer=customer, amount=50, expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    newsletter = Segment.objects.create(slug="newsletter", name="Newsletter")
    Segment.objects.create(slug="other", name="Other")
    SegmentMembership.objects.create(segment=newsletter, customer=customer)
    gold = {"field": "customer.fields.tier", "op": "eq", "value": "gold"}
    Segment.objects.create(slug="gold", name="Gold", kind="rule", rule=gold)
    Segment.objects.create(slug="silver", name="Silver", kind="rule", rule={**gold, "value": "silver"})
    Segment.objects.create(
        slug="gold-news",
        name="Both",
        kind="rule",
        rule={"all": [gold, {"field": "segment", "op": "in", "value": ["newsletter"]}]},
    )
    body = api.get("/api/v1/customers/c-1").json()
    assert body["points"] == 100
    assert body["subscriptions"] == {"email": "subscribed"}
    assert body["segments"] == ["gold", "gold-news", "newsletter"]


@pytest.mark.django_db
def test_it_reads_a_customer_in_a_few_queries_however_many_segments(api, django_assert_max_num_queries):
    customer = Customer.objects.create(external_id="c-1")
    for n in range(30):
        segment = Segment.objects.create(slug=f"s{n}", name="S")
        SegmentMembership.objects.create(segment=segment, customer=customer)
        Segment.objects.create(
            slug=f"r{n}", name="R", kind="rule", rule={"field": "customer.email", "op": "exists"}
        )
    with django_assert_max_num_queries(10):
        assert len(api.get("/api/v1/customers/c-1").json()["segments"]) == 30


@pytest.mark.django_db
def test_it_still_shows_static_segments_when_rule_segments_refer_to_each_other(api):
    customer = Customer.objects.create(external_id="c-1")
    SegmentMembership.objects.create(segment=Segment.objects.create(slug="news", name="N"), customer=customer)
    Segment.objects.create(
        slug="a", name="A", kind="rule", rule={"field": "segment", "op": "in", "value": ["b"]}
    )
    Segment.objects.create(
        slug="b", name="B", kind="rule", rule={"field": "segment", "op": "in", "value": ["a"]}
    )
    assert api.get("/api/v1/customers/c-1").json()["segments"] == ["news"]


# --- activity -----------------------------------------------------------------------------

T0 = datetime(2025, 6, 10, 10, 0, tzinfo=UTC)


def _run_with_history(customer, *, flow, version, number: int) -> Run:
    run = kit.run_in(
        flow,
        customer,
        version=version,
        status=Run.Status.WAITING,
        clock=T0,
        entered_at=T0 + timedelta(minutes=number),
    )
    kit.pass_through(run, "start", "event", 0, at=T0, port="next")
    kit.pass_through(run, "ask", "steps", 1, at=T0, port="next")
    kit.message_to(customer, flow=flow, run=run, status="sent", node_key="ask")
    return run


@pytest.fixture
def history(db):
    customer = Customer.objects.create(external_id="c-1")
    flow = Flow.objects.create(name="Confirm")
    version = FlowVersion.objects.create(flow=flow, number=1, document_json="{}")
    Node.objects.create(version=version, key="start", kind="event", config={"event_type": "signup"})
    Node.objects.create(version=version, key="ask", kind="steps", config={"relevance": "P1D", "steps": []})
    runs = [_run_with_history(customer, flow=flow, version=version, number=n) for n in range(6)]
    Run.objects.filter(pk=runs[0].pk).update(status="stopped", stop_reason="relevance_expired", ended_at=T0)
    return runs


@pytest.mark.django_db
def test_it_shows_a_customers_runs_with_nodes_settings_and_messages(api, history):
    body = api.get("/api/v1/customers/c-1/activity").json()
    assert body["count"] == 6
    newest, oldest = body["runs"][0], body["runs"][-1]
    assert newest["id"] == history[-1].pk
    assert (newest["status"], newest["current_node"], newest["version"]) == ("waiting", "day", 1)
    assert [(n["key"], n["kind"], n["port"]) for n in newest["nodes"]] == [
        ("start", "event", "next"),
        ("ask", "steps", "next"),
    ]
    assert newest["nodes"][0]["settings"] == {"event_type": "signup"}
    assert [(m["node"], m["template"], m["status"]) for m in newest["messages"]] == [
        ("ask", "confirm", "sent")
    ]
    assert (oldest["status"], oldest["stop_reason"], oldest["current_node"]) == (
        "stopped",
        "relevance_expired",
        None,
    )


@pytest.mark.django_db
def test_it_shows_why_the_engine_stopped_a_run(api, history):
    error = "OverflowError: date value out of range (at node 'cap' (limitation) of flow 1)"
    Run.objects.filter(pk=history[1].pk).update(
        status="stopped", stop_reason="engine_error", error=error, ended_at=T0
    )
    runs = {run["id"]: run for run in api.get("/api/v1/customers/c-1/activity").json()["runs"]}
    assert (runs[history[1].pk]["stop_reason"], runs[history[1].pk]["error"]) == ("engine_error", error)
    assert runs[history[0].pk]["error"] is None  # stopped for another reason
    assert runs[history[2].pk]["error"] is None


@pytest.mark.django_db
def test_it_pages_the_activity_in_a_constant_number_of_queries(api, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(9):
        page = api.get("/api/v1/customers/c-1/activity", {"page_size": 4}).json()
    assert len(page["runs"]) == 4 and page["next"]
    with django_assert_max_num_queries(9):
        assert len(api.get("/api/v1/customers/c-1/activity", {"page_size": 500}).json()["runs"]) == 6


@pytest.mark.django_db
def test_it_filters_the_activity_by_flow_and_refuses_bad_parameters(api, history):
    flow_id = history[0].flow_id
    assert api.get("/api/v1/customers/c-1/activity", {"flow": flow_id}).json()["count"] == 6
    assert api.get("/api/v1/customers/c-1/activity", {"flow": flow_id + 1}).json()["count"] == 0
    assert api.get("/api/v1/customers/c-1/activity", {"flow": "x"}).status_code == 400
    assert api.get("/api/v1/customers/c-1/activity", {"since": "x"}).status_code == 400
    assert api.get("/api/v1/customers/nobody/activity").status_code == 404
