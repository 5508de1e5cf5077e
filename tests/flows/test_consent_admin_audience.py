"""The flow's admin Audience page: count and a sample of 20, for the schedule
start or a posted rule, as the API computes them."""

import json

import pytest
from django.urls import reverse

from customers.models import Customer, Segment, SegmentMembership
from flows import lifecycle


@pytest.fixture
def newsletter(db, templates):
    segment = Segment.objects.create(slug="newsletter", name="Newsletter")
    customers = Customer.objects.bulk_create(
        Customer(external_id=f"n-{n:03}", fields={"tier": "gold" if n < 3 else "basic"}) for n in range(25)
    )
    SegmentMembership.objects.bulk_create(SegmentMembership(segment=segment, customer=c) for c in customers)
    return list(Customer.objects.order_by("id").values_list("external_id", flat=True))


@pytest.mark.django_db
def test_the_audience_page_shows_count_and_sample(admin_client, newsletter):
    from tests.api.test_flows_api import SCHEDULE_DOCUMENT as API_SCHEDULE

    flow = lifecycle.create_flow(document=API_SCHEDULE)
    url = reverse("admin:flows_flow_audience", args=[flow.pk])
    assert url.encode() in admin_client.get(reverse("admin:flows_flow_change", args=[flow.pk])).content
    page = admin_client.get(url)
    assert page.status_code == 200
    assert page.context["preview"]["would_enter"] == 25
    assert page.context["preview"]["sample"] == newsletter[:20]
    assert b'id="audience-sample"' in page.content

    rule = json.dumps({"field": "customer.fields.tier", "op": "eq", "value": "gold"})
    page = admin_client.get(url, {"rule": rule})
    assert page.context["preview"]["matching"] == 3
    assert page.context["preview"]["sample"] == newsletter[:3]

    bad = admin_client.get(url, {"rule": "{not json"})
    assert bad.status_code == 200 and bad.context["preview"] is None
    assert bad.context["errors"][0]["field"] == "rule"


@pytest.mark.django_db
def test_an_event_flow_says_it_has_no_audience(admin_client, flow_in):
    flow = flow_in("ready")
    page = admin_client.get(reverse("admin:flows_flow_audience", args=[flow.pk]))
    assert page.status_code == 200 and page.context["preview"] is None
    assert "events" in page.context["errors"][0]["message"]
    assert admin_client.get(reverse("admin:flows_flow_audience", args=[999999])).status_code == 404
