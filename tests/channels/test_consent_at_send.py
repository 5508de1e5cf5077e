"""Consent is read again when a message is sent: an unsubscribe, or an
erasure, between queueing and sending wins. Marketing messages need
`subscribed` at send time too; service messages go to anyone who has not
unsubscribed from the channel."""

import pytest
from django.core import mail
from django.test import Client

from channels.backends import Backend, Outcome, SendResult
from channels.delivery import claim_chunk, deliver_all_due, deliver_due
from channels.links import link_url
from channels.models import Message
from customers.models import Subscription
from customers.services import set_subscriptions
from flows.privacy import erase_customers
from tests.channels.conftest import queue_one, use_backend

pytestmark = pytest.mark.django_db

ERASED = "unsubscribed: the customer was erased"


@pytest.fixture
def templates(make_template):
    make_template("promo", purpose="marketing")
    make_template("receipt", purpose="service")
    make_template("sms_promo", channel="sms", purpose="marketing", text="Sale")
    make_template("sms_code", channel="sms", purpose="service", text="Code 1234")
    make_template("hook", channel="webhook", purpose="marketing", url="https://hooks.example/x", text="{}")


def queue(customer, slug, channel="email", run_id=1) -> int:
    row = queue_one(customer, slug, channel, run_id)
    assert row.status == "queued", row.reason
    return row.id


def outcome(message_id: int) -> tuple[str, str]:
    row = Message.objects.get(id=message_id)
    return row.status, row.reason


@pytest.mark.parametrize(
    "channel, marketing, service",
    [("email", "promo", "receipt"), ("sms", "sms_promo", "sms_code")],
)
def test_an_unsubscribe_after_queueing_wins(templates, make_customer, capsys, channel, marketing, service):
    ann = make_customer(subscriptions={channel: "subscribed"})
    ids = [queue(ann, marketing, channel, run_id=1), queue(ann, service, channel, run_id=2)]
    set_subscriptions(changes=[(ann.id, channel, "unsubscribed")], source="link")

    counts = deliver_due()

    assert [outcome(i) for i in ids] == [("not_sent", "unsubscribed")] * 2
    assert (counts["claimed"], counts["sent"], counts["not_sent"]) == (0, 0, 2)
    assert mail.outbox == []
    assert "maestra sms message" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "channel, marketing, service", [("email", "promo", "receipt"), ("sms", "sms_promo", "sms_code")]
)
def test_a_marketing_message_needs_a_subscription_still_a_service_message_does_not(
    templates, make_customer, channel, marketing, service
):
    """Back to `requires_confirmation` (or the subscription deleted): the
    marketing message is not_sent, the receipt still goes."""
    ann = make_customer(subscriptions={channel: "subscribed"})
    bob = make_customer(subscriptions={channel: "subscribed"})
    ann_promo, ann_receipt = queue(ann, marketing, channel, run_id=1), queue(ann, service, channel, run_id=2)
    bob_promo = queue(bob, marketing, channel, run_id=3)
    set_subscriptions(changes=[(ann.id, channel, "requires_confirmation")])
    Subscription.objects.filter(customer=bob).delete()

    deliver_all_due()

    assert outcome(ann_promo) == ("not_sent", "not_subscribed")
    assert outcome(bob_promo) == ("not_sent", "not_subscribed")
    assert outcome(ann_receipt) == ("sent", "")


def test_consent_on_one_channel_does_not_hold_another(templates, make_customer):
    ann = make_customer(subscriptions={"email": "subscribed", "sms": "subscribed"})
    email_id, sms_id = queue(ann, "promo", run_id=1), queue(ann, "sms_promo", "sms", run_id=2)
    set_subscriptions(changes=[(ann.id, "sms", "unsubscribed")])
    deliver_all_due()
    assert outcome(email_id) == ("sent", "")
    assert outcome(sms_id) == ("not_sent", "unsubscribed")


def test_webhooks_need_no_consent(templates, make_customer, settings):
    use_backend(settings, "channels.backends.console.ConsoleBackend", "webhook")
    ann = make_customer(subscriptions={"email": "unsubscribed"})
    hook = queue(ann, "hook", "webhook")
    deliver_all_due()
    assert outcome(hook) == ("sent", "")


def test_a_one_click_unsubscribe_before_the_send_wins(templates, make_customer, settings):
    """The RFC 8058 POST of an earlier email's List-Unsubscribe URL."""
    settings.MAESTRA_PUBLIC_BASE_URL = "https://mail.shop.example/"
    ann = make_customer(subscriptions={"email": "subscribed"})
    promo = queue(ann, "promo")
    url = link_url(customer_id=ann.id, channel="email", action="unsubscribe")
    response = Client().post(url.removeprefix("https://mail.shop.example"), {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    deliver_all_due()
    assert outcome(promo) == ("not_sent", "unsubscribed")
    assert mail.outbox == []


def test_the_consent_read_is_one_query_for_the_whole_chunk(
    templates, make_customer, django_assert_num_queries
):
    customers = [make_customer(subscriptions={"email": "subscribed", "sms": "subscribed"}) for _ in range(12)]
    for n, customer in enumerate(customers):
        queue(customer, "promo", run_id=2 * n)
        queue(customer, "sms_code", "sms", run_id=2 * n + 1)
    set_subscriptions(changes=[(c.id, "email", "unsubscribed") for c in customers[::2]])
    # Savepoint, one select per lane (service, marketing), the chunk's
    # subscriptions, one UPDATE for the refused rows, claim, release, read
    # back: the same for 24 rows as for 1.
    due = Message.objects.latest("id").next_attempt_at
    with django_assert_num_queries(8):
        rows, held = claim_chunk(now=due, size=24)
    assert (len(rows), held["not_sent"]) == (18, 6)


def test_an_erased_customer_gets_nothing_that_was_queued(templates, make_customer):
    ann = make_customer(subscriptions={"email": "subscribed", "sms": "subscribed"})
    ids = [
        queue(ann, "receipt", run_id=1),
        queue(ann, "sms_code", "sms", run_id=2),
        queue(ann, "promo", run_id=3),
    ]
    erase_customers(customer_ids=[ann.id])
    assert deliver_all_due()["claimed"] == 0
    assert [outcome(i) for i in ids] == [("not_sent", ERASED)] * 3
    assert mail.outbox == []


class ErasingBackend(Backend):
    """The first send erases the other customer, whose message the same
    worker has already claimed (and read) in the same chunk."""

    sent: list[int] = []
    victim: int = 0

    def send(self, message):
        if not ErasingBackend.sent:
            erase_customers(customer_ids=[ErasingBackend.victim])
        ErasingBackend.sent.append(message.id)
        return SendResult(outcome=Outcome.SENT, provider_id=f"p{message.id}")


def test_an_erasure_while_the_message_is_claimed_wins(templates, make_customer, settings):
    use_backend(settings, f"{__name__}.ErasingBackend")
    ann, bob = make_customer(), make_customer()
    first, second = queue(ann, "receipt", run_id=1), queue(bob, "receipt", run_id=2)
    ErasingBackend.sent, ErasingBackend.victim = [], bob.id
    deliver_due()
    assert ErasingBackend.sent == [first]
    assert outcome(second) == ("not_sent", ERASED)
