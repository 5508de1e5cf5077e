"""The audience preview counts through the rule of real entry
(flows.engine.entry.entering_customers): a schedule fire at the same moment starts
exactly `would_enter` runs, for exactly the customers of the sample. Before,
the preview used the plain launch limit and missed the `once` rule that keeps
customers who launched under an earlier `once` version out for good."""

from datetime import timedelta

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from customers.models import Customer, SegmentMembership
from flows.engine.tick import tick
from flows.models import LaunchRecord, Run
from flows.nodes.schedule.firing import fire_schedules
from flows.selectors.audience import audience_preview, flow_audience_preview
from maestra.api.models import ApiKey
from tests.flows.engine_kit import (
    at,
    customer,
    document,
    email_templates,
    launch,
    node,
    relaunch,
    send,
    static_segment,
    steps,
    utc,
)
from tests.flows.engine_kit import launch_limit as limit


def api_client() -> APIClient:
    _record, key = ApiKey.objects.create_key(name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


DAY_0 = utc(2026, 6, 1, 9, 0)
FIRE_0 = utc(2026, 6, 1, 10, 0)


def daily(launch_limit: dict) -> dict:
    return document(
        [
            node(
                "start", "schedule", recurrence={"every": "day", "at": "10:00"}, audience={"segment": "all"}
            ),
            steps("mail", send("welcome")),
        ],
        [{"from": "start", "to": "mail"}],
        launch_limit=launch_limit,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("first", "then", "days_later", "would_enter"),
    [
        # Ann and Bob launched under `once`: they stay out of every later
        # version (the preview counted them in: 3).
        ("once", limit("every_time"), 1, 1),
        ("once", limit("every_time", max_total=2), 1, 1),
        ("once", limit("periodic", "P7D"), 1, 1),
        ("once", limit("periodic", "P7D"), 10, 1),
        # Without a `once` past: the period alone decides.
        ("every_time", limit("periodic", "P7D"), 1, 1),
        ("every_time", limit("periodic", "P7D"), 10, 3),
    ],
)
def test_the_preview_counts_exactly_who_then_enters(first, then, days_later, would_enter):
    with at(DAY_0):
        email_templates("welcome")
        ann, bob = customer("ann"), customer("bob")
        everyone = static_segment("all", [ann, bob])
        flow = launch(daily(limit(first)))
    with at(FIRE_0):
        tick(deliver=False)  # Ann and Bob enter and launch
    assert sorted(LaunchRecord.objects.filter(flow=flow).values_list("launches", flat=True)) == [1, 1]

    carl = customer("carl")
    SegmentMembership.objects.create(segment=everyone, customer_id=carl)
    with at(DAY_0 + timedelta(days=days_later)):
        flow = relaunch(flow, daily(then))
    version = flow.live_version

    fire = FIRE_0 + timedelta(days=days_later)
    with at(fire):
        preview = audience_preview(version=version, now=fire, sample_size=20)
        started = fire_schedules()["runs_started"]

    assert preview["matching"] == 3
    assert preview["would_enter"] == would_enter
    assert preview["blocked_by_launch_limit"] == 3 - would_enter
    assert started == preview["would_enter"]
    entered = Run.objects.filter(version=version).values_list("customer_id", flat=True)
    assert sorted(Customer.objects.filter(id__in=entered).values_list("external_id", flat=True)) == sorted(
        preview["sample"]
    )


@pytest.mark.django_db
def test_the_api_and_the_admin_page_show_the_preview_of_who_then_enters(admin_client):
    """flow_audience_preview is the one selector behind the API's
    audience-preview and the admin's Audience page: both show the same
    figures, and a fire at that moment starts exactly `would_enter` runs."""
    with at(DAY_0):
        email_templates("welcome")
        ann, bob = customer("ann"), customer("bob")
        everyone = static_segment("all", [ann, bob])
        flow = launch(daily(limit("once")))
    with at(FIRE_0):
        tick(deliver=False)  # Ann and Bob enter and launch under `once`
    SegmentMembership.objects.create(segment=everyone, customer_id=customer("carl"))
    with at(DAY_0 + timedelta(days=1)):
        flow = relaunch(flow, daily(limit("every_time")))

    fire = FIRE_0 + timedelta(days=1)
    with at(fire):
        preview = flow_audience_preview(flow=flow, now=fire, sample=True)
        page = admin_client.get(reverse("admin:flows_flow_audience", args=[flow.pk]))
        answer = api_client().get(f"/api/v1/flows/{flow.pk}/audience-preview", {"sample": "true"})
        started = fire_schedules()["runs_started"]

    assert page.context["preview"] == preview
    assert answer.status_code == 200 and answer.json() == preview
    assert (preview["matching"], preview["blocked_by_launch_limit"], preview["would_enter"]) == (3, 2, 1)
    assert started == preview["would_enter"]
    entered = Run.objects.filter(version=flow.live_version).values_list("customer__external_id", flat=True)
    assert sorted(entered) == preview["sample"] == ["carl"]
