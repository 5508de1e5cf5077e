"""The delivery pipeline's writes (channels/delivery.py, channels/sending.py):
the claim marks the chunk's first group `sending` and records the previous
chunk's outcomes in the same commit; an in-process email backend takes a
whole group in one call."""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.backends import Backend, Outcome, SendResult
from channels.delivery import deliver_due
from channels.models import Message
from channels.outbox import SendRequest, queue_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(make_template, make_customer):
    make_template("t", purpose="service")

    def make(n: int) -> list[int]:
        reqs = [
            SendRequest(
                customer_id=make_customer().id,
                template_slug="t",
                channel="email",
                run_id=5000 + i,
                node_key="mail",
                step_index=0,
                pass_no=1,
            )
            for i in range(n)
        ]
        results = queue_messages(requests=reqs)
        return [results[r.key].id for r in reqs]

    return make


def statuses() -> dict[int, tuple[str, int]]:
    return {i: (s, a) for i, s, a in Message.objects.values_list("id", "status", "attempts")}


class GroupBackend(Backend):
    """A batch API's shape: the whole group in one call. Notes, at each call,
    the status and attempts of every row."""

    group_size = 5
    seen: list[dict] = []

    def send_many(self, messages):
        GroupBackend.seen.append(statuses())
        return [SendResult(outcome=Outcome.SENT, provider_id=f"g{m.id}") for m in messages]


def use(settings, backend: str, *, chunk: int) -> None:
    settings.MAESTRA_CHANNEL_BACKENDS = {
        **settings.MAESTRA_CHANNEL_BACKENDS,
        "email": f"{__name__}.{backend}",
    }
    settings.MAESTRA_DELIVERY_CHUNK = chunk


def test_the_claim_marks_the_first_group_sending_and_records_the_previous_chunk(queue, settings):
    use(settings, "GroupBackend", chunk=5)
    GroupBackend.seen = []
    ids = queue(15)
    assert deliver_due()["sent"] == 15
    # At the k-th call: the earlier chunks sent, this chunk `sending` (its
    # attempt counted), the later chunks still queued: the claim put the group
    # straight into `sending`, nothing of it was ever only `claimed`.
    for k, seen in enumerate(GroupBackend.seen):
        assert seen == {
            i: ("sent", 1) if n // 5 < k else ("sending", 1) if n // 5 == k else ("queued", 0)
            for n, i in enumerate(ids)
        }
    assert len(GroupBackend.seen) == 3


def test_a_chunk_of_one_group_costs_the_same_statements_whatever_its_size(queue, settings):
    """Per chunk: the claim's transaction (savepoint, the previous outcomes,
    the lane select, consent, one UPDATE that claims and starts, release),
    the read back; the last outcomes once at the end. No statement per row,
    and no write of its own for a group's start or its outcomes."""
    use(settings, "GroupBackend", chunk=5)
    queue(10)
    with CaptureQueriesContext(connection) as two_chunks:
        assert deliver_due()["sent"] == 10
    Message.objects.all().delete()
    use(settings, "GroupBackend", chunk=20)
    GroupBackend.group_size = 20
    try:
        queue(40)
        with CaptureQueriesContext(connection) as two_big_chunks:
            assert deliver_due()["sent"] == 40
    finally:
        GroupBackend.group_size = 5
    assert len(two_chunks) == len(two_big_chunks)
    writes = [
        q["sql"] for q in two_chunks.captured_queries if "channels_message" in q["sql"].split(" SET")[0]
    ]
    updates = [sql for sql in writes if sql.lstrip().upper().startswith(("UPDATE", "WITH"))]
    # The lease sweeps (expired sends, released claims), then per chunk one
    # claim-and-start UPDATE and one outcomes write (the first chunk's goes
    # with the second claim, the second's at the end of the round).
    assert len(updates) == 2 + 2 * 2, updates


def test_an_in_process_email_backend_takes_a_group_in_one_call(queue, settings, monkeypatch):
    from django.core.mail.backends.locmem import EmailBackend

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAESTRA_DELIVERY_CHUNK = 6
    calls = []
    original = EmailBackend.send_messages
    monkeypatch.setattr(
        EmailBackend,
        "send_messages",
        lambda self, emails: calls.append(len(emails)) or original(self, emails),
    )
    mail.outbox = []
    ids = queue(12)
    assert deliver_due()["sent"] == 12
    assert calls == [6, 6]
    assert sorted(m.extra_headers["X-Maestra-Message"] for m in mail.outbox) == sorted(str(i) for i in ids)
