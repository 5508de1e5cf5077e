"""Alerts: a promo pool running low or empty and a limitation node running out
of places email the flow's owner once per crossing and show on monitoring."""

from datetime import UTC, datetime

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from customers.models import PromoCode, PromoPool
from flows.alerts import check_alerts, current_alerts
from flows.models import Flow, LimitationCounter
from maestra.audit.models import AuditEntry
from tests.flows.conftest import steps_document


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("mia", "mia@shop.example", "pw", is_staff=True)


@pytest.fixture
def pool(db):
    pool = PromoPool.objects.create(slug="spring", name="Spring codes", alert_below=3)
    PromoCode.objects.bulk_create(PromoCode(pool=pool, code=f"SPRING-{n}") for n in range(5))
    return pool


@pytest.fixture
def sale(launched, pool, owner, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    flow = launched(steps_document([{"action": "issue_promo_code", "pool": "spring"}]))
    Flow.objects.filter(pk=flow.pk).update(owner=owner)
    return flow


def issue(pool, n):
    ids = list(PromoCode.objects.filter(pool=pool, issued_at__isnull=True).values_list("id", flat=True)[:n])
    PromoCode.objects.filter(id__in=ids).update(issued_at=timezone.now())


@pytest.mark.django_db
def test_a_pool_running_low_then_empty_alerts_the_owner_once_per_crossing(sale, pool):
    issue(pool, 2)  # 3 free: not below 3
    assert check_alerts() == {"promo_pools": 0, "limitations": 0}
    issue(pool, 1)  # 2 free
    assert check_alerts()["promo_pools"] == 1
    [message] = mail.outbox
    assert message.to == ["mia@shop.example"]
    assert "spring" in message.subject and "2 free code(s) left" in message.subject
    assert "Spring sale" in message.body
    # Still low: no second email.
    issue(pool, 2)
    assert check_alerts()["promo_pools"] == 0 and len(mail.outbox) == 1
    assert [a["detail"] for a in current_alerts()] == ["empty (alert below 3)"]

    # New codes re-arm it; running low again alerts again.
    PromoCode.objects.bulk_create(PromoCode(pool=pool, code=f"MORE-{n}") for n in range(5))
    assert check_alerts()["promo_pools"] == 0
    assert PromoPool.objects.get(pk=pool.pk).alerted is False
    assert current_alerts() == []
    issue(pool, 5)
    assert check_alerts()["promo_pools"] == 1
    assert "is empty" in mail.outbox[-1].subject
    assert AuditEntry.objects.about(sale).filter(action="alert.promo_pool_low").count() == 2


@pytest.mark.django_db
def test_a_pool_without_threshold_or_owner(pool, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAESTRA_ALERT_EMAILS = ["ops@shop.example"]
    issue(pool, 5)
    assert check_alerts()["promo_pools"] == 1  # no flow uses it: the fallback address hears of it
    assert mail.outbox[0].to == ["ops@shop.example"]
    PromoPool.objects.create(slug="quiet", name="No threshold")
    assert check_alerts()["promo_pools"] == 0


@pytest.mark.django_db
def test_a_limitation_below_its_threshold_alerts_once_and_shows_on_monitoring(sale, admin_client):
    counter = LimitationCounter.objects.create(
        flow=sale, node_key="cap", signature="s", window_start=datetime(2026, 1, 1, tzinfo=UTC), used=9
    )
    assert check_alerts()["limitations"] == 0
    LimitationCounter.objects.filter(pk=counter.pk).update(alerted=True)  # what the engine does
    assert check_alerts()["limitations"] == 1
    assert "cap" in mail.outbox[-1].subject and mail.outbox[-1].to == ["mia@shop.example"]
    assert check_alerts()["limitations"] == 0
    page = admin_client.get(reverse("admin:flows_monitoring"))
    assert page.status_code == 200
    assert b"monitoring-alerts" in page.content and b"Spring sale / cap" in page.content


@pytest.mark.django_db
def test_a_broken_mail_server_does_not_break_the_check(sale, pool, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 1
    issue(pool, 5)
    assert check_alerts()["promo_pools"] == 0  # not sent, but claimed: still on the monitoring page
    assert PromoPool.objects.get(pk=pool.pk).alerted is True
    assert current_alerts()[0]["name"] == "spring"
