"""Audience preview with ?sample=true: up to 20 external ids of the customers
who would enter (launch-limit blocked ones left out)."""

import json

import pytest

from customers.models import Customer, Segment, SegmentMembership
from flows.models import LaunchRecord
from tests.api.test_flows_api import SCHEDULE_DOCUMENT, _active, _create


@pytest.fixture
def newsletter(db):
    segment = Segment.objects.create(slug="newsletter", name="Newsletter")
    customers = Customer.objects.bulk_create(
        Customer(external_id=f"c-{n:03}", fields={"tier": "gold" if n % 2 else "basic"}) for n in range(30)
    )
    SegmentMembership.objects.bulk_create(SegmentMembership(segment=segment, customer=c) for c in customers)
    return list(Customer.objects.order_by("id"))


@pytest.mark.django_db
def test_it_lists_a_sample_of_20_only_when_asked(api, newsletter):
    flow_id = _create(api, SCHEDULE_DOCUMENT)["id"]
    plain = api.get(f"/api/v1/flows/{flow_id}/audience-preview").json()
    assert "sample" not in plain and plain["matching"] == 30
    body = api.get(f"/api/v1/flows/{flow_id}/audience-preview?sample=true").json()
    assert body["sample"] == [c.external_id for c in newsletter[:20]]


@pytest.mark.django_db
def test_the_sample_leaves_out_blocked_customers_and_follows_a_rule(api, newsletter):
    flow_id = _active(api, SCHEDULE_DOCUMENT)
    LaunchRecord.objects.create(flow_id=flow_id, customer=newsletter[0], launches=1)
    body = api.get(f"/api/v1/flows/{flow_id}/audience-preview?sample=1").json()
    assert newsletter[0].external_id not in body["sample"]
    assert body["sample"][0] == newsletter[1].external_id and len(body["sample"]) == 20
    rule = json.dumps({"field": "customer.fields.tier", "op": "eq", "value": "gold"})
    body = api.get(f"/api/v1/flows/{flow_id}/audience-preview", {"rule": rule, "sample": "true"}).json()
    assert body["matching"] == 15
    assert body["sample"] == [c.external_id for c in newsletter if c.fields["tier"] == "gold"][:20]
    assert api.get(f"/api/v1/flows/{flow_id}/audience-preview?sample=maybe").status_code == 400
