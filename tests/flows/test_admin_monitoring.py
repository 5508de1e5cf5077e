"""The monitoring page: failed and not-sent messages and failed steps with
their errors, filtered by flow, channel, reason and period."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from customers.models import Customer
from flows.models import Flow
from tests.flows import admin_kit as kit

S = Flow.Status
URL = reverse("admin:flows_monitoring")
DAY = datetime(2025, 6, 5, 10, 0, tzinfo=UTC)
NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)
    other = flow_in(S.ACTIVE, with_draft=False)
    Flow.objects.filter(pk=other.pk).update(name="Other flow")
    anna = Customer.objects.create(external_id="anna", email="anna@example.com")
    ben = Customer.objects.create(external_id="ben", phone="+4915100000001")

    def message(customer, status, reason="", *, flow=flow, channel="email", at=DAY, **extra):
        return kit.message_to(
            customer,
            flow=flow,
            channel=channel,
            status=status,
            reason=reason,
            node_key="ask",
            created_at=at,
            **extra,
        )

    failed = message(
        anna,
        "failed",
        "provider_error: 550 mailbox unavailable",
        response_status=550,
        response_body="550 no such user",
    )
    not_sent = message(ben, "not_sent", "no_address", channel="sms")
    other_failed = message(anna, "failed", "unknown_outcome", flow=other)
    old = message(anna, "failed", "template_error: x", at=datetime(2025, 5, 1, tzinfo=UTC))
    message(anna, "sent")
    message(anna, "queued")

    def stopped(customer, reason, *, flow=flow, at=DAY):
        run = kit.run_in(
            flow, customer, status="stopped", node_key="ask", clock=at, ended_at=at, stop_reason=reason
        )
        kit.pass_through(run, "ask", "steps", 2, at=at, stop_reason=reason)
        return run

    pool_run = stopped(anna, "promo_pool_empty")
    template_run = stopped(ben, "template_error")
    kit.message_to(
        ben,
        flow=flow,
        run=template_run,
        status="failed",
        reason="template_error: subject: unknown filter 'shout'",
        node_key="ask",
        created_at=DAY,
    )
    stopped(anna, "relevance_expired")  # not a step failure
    return {
        "flow": flow,
        "other": other,
        "failed": failed,
        "not_sent": not_sent,
        "other_failed": other_failed,
        "old": old,
        "pool_run": pool_run,
        "template_run": template_run,
    }


def rows(response) -> list:
    return response.context["rows"]


@pytest.mark.django_db
def test_it_lists_failed_and_not_sent_messages_of_the_period_with_their_errors(admin_client, world):
    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(URL)

    assert response.status_code == 200
    listed = {m.pk for m in rows(response)}
    # the template_error message of template_run is failed too
    assert {world["failed"].pk, world["not_sent"].pk, world["other_failed"].pk} <= listed
    assert world["old"].pk not in listed
    assert all(m.status in ("failed", "not_sent") for m in rows(response))
    page = response.content.decode()
    assert "provider_error: 550 mailbox unavailable" in page
    assert "550 no such user" in page
    assert response.context["message_count"] == 4
    assert response.context["step_count"] == 2


@pytest.mark.django_db
def test_it_filters_messages_by_flow_channel_reason_and_period(admin_client, world):
    with time_machine.travel(NOW, tick=False):
        by_flow = admin_client.get(URL, {"flow": world["other"].pk})
        by_channel = admin_client.get(URL, {"channel": "sms"})
        by_reason = admin_client.get(URL, {"reason": "provider_error"})
        by_period = admin_client.get(URL, {"from": "2025-04-25", "to": "2025-05-02"})

    assert [m.pk for m in rows(by_flow)] == [world["other_failed"].pk]
    assert [m.pk for m in rows(by_channel)] == [world["not_sent"].pk]
    assert [m.pk for m in rows(by_reason)] == [world["failed"].pk]
    assert [m.pk for m in rows(by_period)] == [world["old"].pk]


@pytest.mark.django_db
def test_it_lists_failed_steps_with_the_error_text(admin_client, world):
    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(URL, {"show": "steps"})
        only_pool = admin_client.get(URL, {"show": "steps", "reason": "promo_pool_empty"})

    by_run = {run.pk: run for run in rows(response)}
    assert set(by_run) == {world["pool_run"].pk, world["template_run"].pk}
    assert by_run[world["template_run"].pk].error_text == "template_error: subject: unknown filter 'shout'"
    assert by_run[world["pool_run"].pk].error_text == "The promo pool had no free code left."
    assert by_run[world["pool_run"].pk].failed_node == "ask"
    assert "unknown filter" in response.content.decode()
    assert [run.pk for run in rows(only_pool)] == [world["pool_run"].pk]


@pytest.mark.django_db
def test_a_bad_period_falls_back_to_the_last_week_and_says_so(admin_client, world):
    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(URL, {"from": "soon"})

    assert response.status_code == 200
    assert "is not a date" in response.context["period_error"]
    assert "showing the last 7 days" in response.content.decode()


@pytest.mark.django_db
def test_the_page_costs_the_same_queries_for_one_row_as_for_fifty(
    admin_client, world, django_assert_max_num_queries
):
    customer = Customer.objects.create(external_id="many")
    with time_machine.travel(NOW, tick=False):
        with django_assert_max_num_queries(14) as few:
            admin_client.get(URL, {"show": "steps"})
        for _ in range(50):
            run = kit.run_in(
                world["flow"],
                customer,
                status="stopped",
                node_key="ask",
                clock=DAY,
                ended_at=DAY,
                stop_reason="promo_pool_empty",
            )
            kit.message_to(
                customer, flow=world["flow"], run=run, template_slug="t", status="failed", created_at=DAY
            )
        with django_assert_max_num_queries(14) as many:
            admin_client.get(URL, {"show": "steps"})
        with django_assert_max_num_queries(14):
            admin_client.get(URL)
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.django_db
def test_monitoring_needs_the_message_and_run_view_permissions(world, django_user_model):
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_message"))
    assert client.get(URL).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_run"))
    staff = django_user_model.objects.get(pk=staff.pk)  # fresh permission cache
    client.force_login(staff)
    assert client.get(URL).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("flow", ["abc", "3.5", "-1", "0", str(2**70), ""])
def test_a_flow_filter_that_is_no_flow_id_is_ignored_not_a_500(admin_client, world, flow):
    # The filters are a django-filter FilterSet (flows/selectors/monitoring.py):
    # a value its form refuses is dropped before it reaches the database.
    with time_machine.travel(NOW, tick=False):
        messages = admin_client.get(URL, {"flow": flow})
        steps = admin_client.get(URL, {"flow": flow, "show": "steps"})

    assert messages.status_code == steps.status_code == 200
    assert messages.context["filters"]["flow"] is None
    assert messages.context["message_count"] == 4 and messages.context["step_count"] == 2


@pytest.mark.django_db
def test_the_filters_apply_to_both_lists_as_the_selector_reads_them(world):
    from django.http import QueryDict

    from flows.selectors.monitoring import failures

    params = QueryDict(mutable=True)
    params.update({"flow": str(world["flow"].pk), "reason": " template_error ", "show": "nonsense"})
    found = failures(params, since=datetime(2025, 6, 1, tzinfo=UTC), until=NOW)

    assert found.flow == world["flow"].pk and found.reason == "template_error" and found.show == "messages"
    assert [m.reason for m in found.messages] == ["template_error: subject: unknown filter 'shout'"]
    assert [run.pk for run in found.steps] == [world["template_run"].pk]
