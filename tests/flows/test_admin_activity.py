"""Customer activity in the admin: search by external id, email, phone or
name; a customer's runs as a timeline with the settings in force then, their
messages and the stop reason."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from customers.models import Customer
from flows import lifecycle
from flows.models import Flow
from flows.selectors.activity import search_customers
from tests.flows import admin_kit as kit

S = Flow.Status
SEARCH = reverse("admin:flows_customer_activity_search")
DAY = datetime(2025, 6, 5, 10, 0, tzinfo=UTC)


def activity_url(customer: Customer) -> str:
    return reverse("admin:flows_customer_activity", args=[customer.pk])


@pytest.fixture
def people(db):
    return {
        "anna": Customer.objects.create(
            external_id="A-1",
            email="anna@example.com",
            phone="+4915100000001",
            first_name="Anna",
            last_name="Berg",
        ),
        "anne": Customer.objects.create(
            external_id="A-2", email="anne@example.org", first_name="Anne", last_name="Bergmann"
        ),
        "carl": Customer.objects.create(
            external_id="C-3", email="carl@example.com", first_name="Carl", last_name="Stone"
        ),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, expected",
    [
        ("A-1", ["anna"]),
        ("ANNA@example.com", ["anna"]),
        ("+4915100000001", ["anna"]),
        ("example.org", ["anne"]),
        ("berg", ["anna", "anne"]),
        ("anna berg", ["anna"]),
        ("stone", ["carl"]),
        ("nobody", []),
        ("   ", []),
    ],
)
def test_it_finds_customers_by_external_id_email_phone_or_name(people, query, expected):
    by_pk = {customer.pk: name for name, customer in people.items()}
    assert [by_pk[c.pk] for c in search_customers(query=query)] == expected


@pytest.mark.django_db
def test_one_match_opens_the_customer_and_several_are_listed(admin_client, people):
    one = admin_client.get(SEARCH, {"q": "anna@example.com"})
    several = admin_client.get(SEARCH, {"q": "berg"})
    none = admin_client.get(SEARCH, {"q": "zzz"})

    assert one.status_code == 302 and one["Location"] == activity_url(people["anna"])
    assert several.status_code == 200
    assert [c.pk for c in several.context["results"]] == [people["anna"].pk, people["anne"].pk]
    assert activity_url(people["anne"]) in several.content.decode()
    assert "No customer matches" in none.content.decode()


@pytest.mark.django_db
def test_the_timeline_shows_nodes_settings_messages_and_the_stop_reason(
    admin_client, flow_in, people, spec_document
):
    flow = flow_in(S.ACTIVE, with_draft=False)
    v1 = flow.live_version
    anna = people["anna"]
    done = kit.run_in(
        flow,
        anna,
        version=v1,
        status="stopped",
        node_key="remind",
        clock=DAY,
        entered_at=DAY,
        ended_at=DAY + timedelta(days=1),
        stop_reason="relevance_expired",
    )
    kit.pass_through(done, "start", "event", 1, at=DAY, exited_at=DAY, port="next")
    kit.pass_through(done, "ask", "steps", 2, at=DAY, exited_at=DAY, port="next")
    kit.pass_through(done, "remind", "steps", 3, at=DAY + timedelta(days=1), stop_reason="relevance_expired")
    kit.message_to(anna, flow=flow, run=done, status="sent", node_key="ask", created_at=DAY, sent_at=DAY)
    # A later version changes the wait; a run in it shows the new settings.
    lifecycle.edit_flow(flow=flow)
    spec_document["nodes"][1]["config"]["relevance"] = "P3D"
    lifecycle.save_draft(flow=flow, document=spec_document)
    lifecycle.launch_flow(flow=flow, enqueue=False)
    flow = lifecycle.finish_launch(flow_id=flow.pk)
    waiting = kit.run_in(flow, anna, clock=DAY, entered_at=DAY + timedelta(days=3))
    kit.pass_through(waiting, "ask", "steps", 2, at=DAY + timedelta(days=3), port="next")
    kit.message_to(
        anna, flow=flow, run=waiting, status="not_sent", reason="unsubscribed", node_key="ask", created_at=DAY
    )
    kit.run_in(flow, people["carl"], clock=DAY)

    response = admin_client.get(activity_url(anna))

    assert response.status_code == 200
    runs = response.context["runs"]
    assert [run["id"] for run in runs] == [waiting.pk, done.pk]  # newest first, only Anna's
    old, new = runs[1], runs[0]
    assert [n["key"] for n in old["nodes"]] == ["start", "ask", "remind"]
    assert old["stop_reason"] == "relevance_expired"
    assert old["nodes"][1]["settings"]["relevance"] == "P1D"
    assert new["nodes"][0]["settings"]["relevance"] == "P3D"  # the settings in force then
    assert new["current_node"] == "day"
    assert [(m["template"], m["status"]) for m in old["messages"]] == [("confirm", "sent")]
    assert [(m["status"], m["reason"]) for m in new["messages"]] == [("not_sent", "unsubscribed")]
    page = response.content.decode()
    # The stop reason in words, its code as the tooltip (flows/plain_language.py).
    assert (
        'stopped: <span class="stop-reason" title="relevance_expired">The steps were no longer relevant'
        in page
    )
    assert "now at <strong>day</strong>" in page
    assert "&quot;relevance&quot;: &quot;P3D&quot;" in page
    assert "unsubscribed" in page


@pytest.mark.django_db
def test_the_timeline_costs_the_same_queries_for_one_run_as_for_twenty(
    admin_client, flow_in, people, django_assert_max_num_queries
):
    flow = flow_in(S.ACTIVE, with_draft=False)
    anna = people["anna"]

    def add_run():
        run = kit.run_in(flow, anna, status="completed", node_key="ask", clock=DAY)
        kit.pass_through(run, "start", "event", 1, at=DAY, port="next")
        kit.message_to(anna, run=run, node_key="ask", created_at=DAY)

    add_run()
    with django_assert_max_num_queries(15) as one:
        admin_client.get(activity_url(anna))
    for _ in range(19):
        add_run()
    with django_assert_max_num_queries(15) as twenty:
        response = admin_client.get(activity_url(anna))
    assert len(response.context["runs"]) == 20
    assert len(twenty.captured_queries) == len(one.captured_queries)


@pytest.mark.django_db
def test_an_unknown_customer_is_a_404_and_a_customer_without_runs_says_so(admin_client, people):
    assert admin_client.get(reverse("admin:flows_customer_activity", args=[99999])).status_code == 404
    assert "No runs yet" in admin_client.get(activity_url(people["carl"])).content.decode()


@pytest.mark.django_db
def test_activity_needs_the_customer_and_run_view_permissions(people, django_user_model):
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client = Client()
    client.force_login(staff)
    assert client.get(activity_url(people["anna"])).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get(activity_url(people["anna"])).status_code == 200


@pytest.mark.django_db
def test_the_customer_page_links_to_the_activity(admin_client, people):
    anna = people["anna"]
    change = admin_client.get(reverse("admin:customers_customer_change", args=[anna.pk])).content.decode()
    listing = admin_client.get(reverse("admin:customers_customer_changelist")).content.decode()
    assert activity_url(anna) in change
    assert activity_url(anna) in listing
