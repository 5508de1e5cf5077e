"""The rule builder's data endpoint (customers/admin_catalogue.py): JSON for
staff allowed to view customers (the Marketer group), a JSON 401/403 for
everyone else; the catalogue (customers/catalogue.py) lists the custom
fields and event payload keys seen in recent rows with their types, in a
fixed number of queries whatever the number of rows, from a cache."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from customers import catalogue
from customers.models import Customer, Event, PromoPool, Segment
from tests.helpers import marketer_group
from tests.maestra.kit import empty_cache  # noqa: F401 (autouse: the catalogue is cached)

MOMENT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
URL = "/admin/customers/customer/rule-catalogue/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def data():
    ann = Customer.objects.create(
        external_id="ann",
        fields={"tier": "gold", "vip": True, "birthday": "1990-05-01", "address": {"city": "Berlin"}, "é": 1},
    )
    bob = Customer.objects.create(external_id="bob", fields={"tier": "silver", "score": 5, "tags": ["a"]})
    Event.objects.create(
        customer=ann, type="order_created", occurred_at=MOMENT, payload={"total": 12.5, "currency": "EUR"}
    )
    Event.objects.create(customer=bob, type="order_created", occurred_at=MOMENT, payload={"total": 3})
    Event.objects.create(
        customer=bob, type="page_view", occurred_at=MOMENT, payload={"url": "/", "bad key": 1}
    )
    Segment.objects.create(slug="news", name="News")
    PromoPool.objects.create(slug="welcome", name="Welcome")


def test_the_url_is_the_admins():
    assert reverse("admin:customers_rule_catalogue") == URL


def test_anonymous_visitors_get_a_json_401(client, data):
    response = client.get(URL)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert "message" in response.json()


def test_staff_without_the_permission_get_a_json_403(client, django_user_model, data):
    user = django_user_model.objects.create_user("sam", password=None, is_staff=True)
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json() == {"message": "You may not do this."}


def test_a_customer_login_that_is_not_staff_gets_a_403(client, django_user_model, data):
    user = django_user_model.objects.create_user("pat", password=None)
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_only_get_is_allowed(client, django_user_model):
    user = django_user_model.objects.create_user("mia", password=None, is_staff=True)
    user.groups.add(marketer_group())
    client.force_login(user)
    assert client.post(URL).status_code == 405


def test_the_marketer_group_reads_fields_events_and_types(client, django_user_model, data):
    user = django_user_model.objects.create_user("mia", password=None, is_staff=True)
    user.groups.add(marketer_group())
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 200
    body = response.json()
    fields = {item["path"]: item["type"] for item in body["fields"]}
    assert fields == {
        "address": "object",
        "address.city": "string",
        "birthday": "date",
        "score": "number",
        "tags": "list",
        "tier": "string",
        "vip": "boolean",
    }  # "é" cannot be named in a rule path: left out
    events = {item["type"]: item for item in body["events"]}
    assert events["order_created"]["seen"] == 2
    assert {key["path"]: key["type"] for key in events["order_created"]["keys"]} == {
        "currency": "string",
        "total": "number",
    }
    assert [key["path"] for key in events["page_view"]["keys"]] == ["url"]
    assert events["customer_created"]["seen"] == 0  # the product's own types are always offered
    assert {"path": "customer.created_at", "type": "datetime_attr"} in body["attributes"]
    assert body["segments"] == [{"slug": "news", "name": "News", "kind": "static"}]
    assert body["pools"] == [{"slug": "welcome", "name": "Welcome"}]
    assert body["ops_by_type"]["date"] == ["before", "after", "within_last", "exists", "not_exists"]
    assert body["event_ops"] == ["count_gte", "count_lte", "count_eq", "exists", "not_exists"]
    assert body["strings"]["add_event"] == "Add event condition"


def test_the_catalogue_costs_a_fixed_number_of_queries_and_is_cached(data, django_assert_num_queries):
    Customer.objects.bulk_create(
        Customer(external_id=f"x{index}", fields={"n": index}) for index in range(50)
    )
    with django_assert_num_queries(4):  # customers, events, segments, pools
        first = catalogue.rule_catalogue()
    Customer.objects.create(external_id="late", fields={"new_name": 1})
    with django_assert_num_queries(2):  # segments and pools: the samples come from the cache
        assert catalogue.rule_catalogue() == first


def test_only_the_most_recent_rows_are_sampled(data, monkeypatch):
    monkeypatch.setattr(catalogue, "CUSTOMER_SAMPLE", 1)
    monkeypatch.setattr(catalogue, "EVENT_SAMPLE", 1)
    result = catalogue.rule_catalogue(fresh=True)
    assert {item["path"] for item in result["fields"]} == {"score", "tags", "tier"}  # bob only
    assert [item["type"] for item in result["events"] if item["seen"]] == ["page_view"]
