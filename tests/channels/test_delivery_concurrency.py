"""Two delivery workers on PostgreSQL share one outbox: every message is sent
exactly once (SELECT … FOR UPDATE SKIP LOCKED claims)."""

from collections import Counter

import pytest
from django.core import mail

from channels.models import Message, Template
from channels.outbox import SendRequest, queue_messages
from customers.models import Customer
from tests.channels.delivery_workers import SENT_BY, SLOW_LOCMEM, run_two_workers

MESSAGES = 2000


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_send_each_message_exactly_once(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAESTRA_CHANNEL_BACKENDS = {
        **settings.MAESTRA_CHANNEL_BACKENDS,
        "email": SLOW_LOCMEM,
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

    claimed = {name: counts["claimed"] for name, counts in run_two_workers(limit=100).items()}
    assert sum(claimed.values()) == MESSAGES
    # Both workers did part of the work …
    assert min(SENT_BY.values()) > 0 and len(SENT_BY) == 2, SENT_BY
    # … and no message went out twice.
    message_ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(message_ids) == MESSAGES == len(set(message_ids))
    assert Counter(Message.objects.values_list("status", "attempts")) == {("sent", 1): MESSAGES}
