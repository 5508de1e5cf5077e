"""deliver_task asks more cluster workers to drain alongside it when the
backlog is big (MAESTRA_DELIVERY_WORKERS), once per while, never in sync mode."""

import pytest
from django.core.cache import cache

from channels import tasks
from channels.models import Message
from channels.outbox import queue_messages
from tests.channels.conftest import send_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(settings, make_template, make_customer):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAESTRA_DELIVERY_CHUNK = 5
    settings.MAESTRA_DELIVERY_WORKERS = 3
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    cache.delete(tasks.HELPERS_KEY)
    make_template("t", purpose="service")
    customer = make_customer()
    runs = iter(range(1, 1_000_000))

    def queue(n: int) -> None:
        queue_messages(requests=[send_request(customer.id, "t", run_id=next(runs)) for _ in range(n)])

    yield queue
    cache.delete(tasks.HELPERS_KEY)


@pytest.fixture
def asked(monkeypatch):
    calls = []
    monkeypatch.setattr("channels.tasks.async_task", lambda path, *args, **kw: calls.append((path, *args)))
    return calls


def test_a_big_backlog_gets_helpers_once(queued, asked):
    queued(10)  # two chunks
    assert tasks.deliver_task()["sent"] == 10
    assert asked == [("channels.tasks.deliver_helper_task",)] * 2
    queued(10)
    tasks.deliver_task()
    assert len(asked) == 2  # asked recently: not again
    assert Message.objects.filter(status="sent").count() == 20


def test_a_small_backlog_or_sync_mode_gets_none(queued, asked, settings):
    queued(9)
    tasks.deliver_task()
    queued(10)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    tasks.deliver_task()
    assert asked == []


def test_a_helper_drains_and_the_service_lane_can_be_asked_alone(queued, asked):
    queued(3)
    assert tasks.deliver_helper_task()["sent"] == 3
    queued(2)
    assert tasks.deliver_task(lanes=["service"])["sent"] == 2


def test_a_helper_landing_beside_a_drain_passes_itself_on_a_few_times(queued, asked):
    # The wake listener's thread drains in a worker process whose own loop
    # may be handed the helper: two drains in one process share one core.
    queued(3)
    with tasks._draining():
        assert tasks.deliver_helper_task() == {"passed_on": 1}
        assert asked == [("channels.tasks.deliver_helper_task", 1)]
        assert Message.objects.filter(status="sent").count() == 0
        # After HELPER_HOPS hops it drains where it is.
        assert tasks.deliver_helper_task(tasks.HELPER_HOPS)["sent"] == 3
    assert len(asked) == 1
    queued(2)
    assert tasks.deliver_helper_task(1)["sent"] == 2  # alone in its process: drains at once
