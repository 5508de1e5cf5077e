"""SPEC §11 through the API only: templates, a customer, the flow document,
launch, an event, one tick -> the first message is delivered."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from channels.models import Message
from flows.engine.tick import tick
from tests.flows.conftest import SPEC_EXAMPLE

NOW = datetime(2025, 6, 10, 10, 0, tzinfo=UTC)


def _create_templates(api) -> None:
    for slug in ("confirm", "reminder"):
        response = api.post(
            "/api/v1/templates",
            {
                "slug": slug,
                "name": slug.title(),
                "channel": "email",
                "purpose": "service",
                "subject": "Please {{ customer.first_name }}, " + slug,
                "text": "Hello {{ customer.first_name }}, please " + slug + ".",
            },
            format="json",
        )
        assert response.status_code == 201, response.json()


@pytest.mark.django_db(transaction=True)
def test_it_sends_the_first_message_of_the_spec_flow_for_an_event_posted_through_the_api(api, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with time_machine.travel(NOW, tick=False):
        _create_templates(api)
        response = api.put(
            "/api/v1/customers/c-1",
            {
                "email": "ada@example.com",
                "first_name": "Ada",
                "subscriptions": {"email": "requires_confirmation"},
            },
            format="json",
        )
        assert response.status_code == 201, response.json()
        tick()  # the customer's own events are matched while no flow is live yet

        document = json.loads(SPEC_EXAMPLE.read_text(encoding="utf-8"))
        response = api.post("/api/v1/flows", document, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["status"] == "ready"
        flow_id = response.json()["id"]

        response = api.post(f"/api/v1/flows/{flow_id}/launch")
        assert response.status_code == 202, response.json()
        assert response.json()["status"] == "launching"
        tick()  # finishes the launch without a cluster
        assert api.get(f"/api/v1/flows/{flow_id}").json()["status"] == "active"
        assert mail.outbox == []

    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        response = api.post(
            "/api/v1/events",
            {
                "events": [
                    {
                        "id": "evt-1",
                        "customer": "c-1",
                        "type": "subscription_changed",
                        "occurred_at": (NOW + timedelta(minutes=4)).isoformat(),
                        "payload": {"channel": "email", "new": "requires_confirmation"},
                    }
                ]
            },
            format="json",
        )
        assert response.status_code == 202, response.json()
        assert response.json() == {"accepted": 1, "duplicates": 0}
        tick()

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ada@example.com"]
    assert mail.outbox[0].subject == "Please Ada, confirm"
    message = Message.objects.get()
    assert (message.flow_id, message.node_key, message.status) == (flow_id, "ask", Message.Status.SENT)

    activity = api.get("/api/v1/customers/c-1/activity").json()
    assert activity["count"] == 1
    run = activity["runs"][0]
    assert run["flow"] == flow_id
    assert [node["key"] for node in run["nodes"]][:2] == ["start", "ask"]
    assert run["messages"][0]["template"] == "confirm"
    assert run["messages"][0]["status"] == "sent"

    stats = api.get(f"/api/v1/flows/{flow_id}/stats", {"end": (NOW + timedelta(hours=1)).isoformat()}).json()
    by_key = {node["key"]: node for node in stats["nodes"]}
    assert stats["start_entered"] == 1
    assert by_key["ask"]["entered"] == 1
    assert by_key["ask"]["entered_percent"] == 100.0
    assert by_key["ask"]["messages"] == {"sent": 1}
    assert by_key["day"]["waiting_now"] == 1
