"""The priority lane: service messages are claimed before marketing ones,
however long the marketing backlog, and a drain busy with marketing picks up
a service message queued meanwhile at its next chunk."""

import pytest

from channels.backends import Backend, Outcome, SendResult
from channels.delivery import claim, deliver_all_due, drain
from channels.models import Message
from channels.outbox import queue_messages
from tests.channels.conftest import send_request, use_backend

pytestmark = pytest.mark.django_db

RECORDING = f"{__name__}.RecordingBackend"


class RecordingBackend(Backend):
    """Notes the order of sends; `hook` runs before the n-th send."""

    order: list[int] = []
    hooks: dict = {}

    def send(self, message):
        hook = RecordingBackend.hooks.pop(len(RecordingBackend.order), None)
        if hook:
            hook()
        RecordingBackend.order.append(message.id)
        return SendResult(outcome=Outcome.SENT, provider_id=f"p{message.id}")


@pytest.fixture
def lanes(settings, make_template, make_customer):
    use_backend(settings, RECORDING)
    RecordingBackend.order = []
    RecordingBackend.hooks = {}
    make_template("promo", purpose="marketing")
    make_template("reset", purpose="service")
    customers = [make_customer(subscriptions={"email": "subscribed"}) for _ in range(3)]
    runs = iter(range(1, 1_000_000))

    def queue(slug: str, n: int) -> list[int]:
        requests = [send_request(customers[i % len(customers)].id, slug, run_id=next(runs)) for i in range(n)]
        results = queue_messages(requests=requests)
        assert {results[r.key].status for r in requests} == {"queued"}
        return [results[r.key].id for r in requests]

    return queue


def test_service_messages_are_claimed_before_an_older_marketing_backlog(lanes):
    marketing = lanes("promo", 40)
    service = lanes("reset", 3)
    assert Message.objects.filter(id__in=marketing, marketing=True).count() == 40
    now = Message.objects.latest("id").next_attempt_at
    rows = claim(now=now, size=10)
    # The three service rows first, though they are the newest; then the
    # oldest marketing rows fill the chunk.
    assert [row["id"] for row in rows] == service + marketing[:7]


def test_a_marketing_drain_sends_a_service_message_queued_meanwhile_at_its_next_chunk(lanes, settings):
    settings.MAESTRA_DELIVERY_CHUNK = 5
    marketing = lanes("promo", 30)
    late: list[int] = []
    # While the drain sends the third marketing message, a password reset is queued.
    RecordingBackend.hooks[2] = lambda: late.extend(lanes("reset", 2))
    counts = deliver_all_due(limit=1000)
    assert counts["sent"] == 32
    order = RecordingBackend.order
    # The chunk in hand is finished (5 marketing), then the service lane
    # goes first: the two resets are the 6th and 7th sends, before 25 older
    # marketing messages.
    assert order[:5] == marketing[:5]
    assert order[5:7] == late
    assert order[7:] == marketing[5:]


def test_a_service_only_drain_leaves_the_marketing_backlog(lanes):
    marketing = lanes("promo", 10)
    service = lanes("reset", 4)
    counts = drain(lanes=("service",))
    assert counts["sent"] == 4
    assert RecordingBackend.order == service
    assert set(Message.objects.filter(id__in=marketing).values_list("status", flat=True)) == {"queued"}
