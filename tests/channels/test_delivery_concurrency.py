"""Two delivery workers on PostgreSQL share one outbox: every message is sent
exactly once (SELECT … FOR UPDATE SKIP LOCKED claims)."""

import threading
import time
from collections import Counter

import pytest
from django.core import mail
from django.db import connection

from channels.backends.email import DjangoEmailBackend
from channels.delivery import deliver_all_due
from channels.models import Message, Template
from channels.outbox import SendRequest, queue_messages
from customers.models import Customer

MESSAGES = 2000


class SlowLocmemBackend(DjangoEmailBackend):
    """The locmem email backend, a millisecond per message, noting which worker
    sent it, so the two workers really overlap."""

    def send(self, message):
        time.sleep(0.001)
        result = super().send(message)
        result.extra["worker"] = threading.current_thread().name
        SENT_BY[threading.current_thread().name] += 1
        return result


SENT_BY: Counter[str] = Counter()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_send_each_message_exactly_once(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAESTRA_CHANNEL_BACKENDS = {
        **settings.MAESTRA_CHANNEL_BACKENDS,
        "email": f"{__name__}.SlowLocmemBackend",
    }
    settings.MAESTRA_DELIVERY_CHUNK = 25
    SENT_BY.clear()
    mail.outbox = []

    Template.objects.create(slug="t", name="t", channel="email", purpose="service", subject="S", text="Hi")
    Customer.objects.bulk_create(
        Customer(external_id=f"cc{i}", email=f"cc{i}@example.com") for i in range(MESSAGES)
    )
    ids = list(Customer.objects.order_by("id").values_list("id", flat=True))
    results = queue_messages(
        requests=[
            SendRequest(
                customer_id=cid,
                template_slug="t",
                channel="email",
                run_id=cid,
                node_key="n",
                step_index=0,
                pass_no=1,
            )
            for cid in ids
        ]
    )
    assert Counter(r.status for r in results.values()) == {"queued": MESSAGES}

    start = threading.Barrier(2)
    claimed: dict[str, int] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            start.wait()
            claimed[name] = deliver_all_due(limit=100)["claimed"]
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=worker, args=(f"w{i}",), name=f"w{i}") for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sum(claimed.values()) == MESSAGES
    # Both workers did part of the work …
    assert min(SENT_BY.values()) > 0 and len(SENT_BY) == 2, SENT_BY
    # … and no message went out twice.
    message_ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(message_ids) == MESSAGES == len(set(message_ids))
    assert Counter(Message.objects.values_list("status", "attempts")) == {("sent", 1): MESSAGES}
