"""POST /api/v1/inbound/provider-events: bounces, complaints, SMS STOP."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from channels.inbound import message_pk
from channels.models import Message
from customers.models import Customer, Event, Subscription

pytestmark = pytest.mark.django_db

URL = "/api/v1/inbound/provider-events"
SECRET = "s3cret-shared-with-the-provider"


@pytest.fixture(autouse=True)
def inbound_secret(settings):
    cache.clear()
    settings.MAESTRA_INBOUND_SECRET = SECRET


def post(body, secret=SECRET):
    client = APIClient()
    headers = {"HTTP_X_MAESTRA_INBOUND_SECRET": secret} if secret is not None else {}
    return client.post(URL, body, format="json", **headers)


def sent_message(customer, channel="email") -> Message:
    return Message.objects.create(
        customer=customer, template_slug="news", channel=channel, status=Message.Status.SENT
    )


def changes(customer):
    return [
        (p["channel"], p["new"], p["source"])
        for p in Event.objects.filter(customer=customer, type="subscription_changed").values_list(
            "payload", flat=True
        )
    ]


def test_it_reads_our_message_ids():
    assert message_pk("<maestra-812@shop.example>") == 812
    assert message_pk("maestra-7") == 7
    assert message_pk("812") == 812
    assert message_pk(5) == 5
    assert message_pk("<something-else@x>") is None
    assert message_pk(True) is None


def test_a_hard_bounce_invalidates_the_address_and_fails_the_message(make_customer):
    ann = make_customer(subscriptions={"email": "subscribed"})
    message = sent_message(ann)
    response = post(
        {
            "events": [
                {
                    "type": "bounce",
                    "message_id": f"<maestra-{message.pk}@shop.example>",
                    "bounce_type": "hard",
                }
            ]
        }
    )
    assert response.status_code == 200, response.json()
    assert response.json()["bounced_hard"] == 1
    ann.refresh_from_db()
    message.refresh_from_db()
    assert ann.email_valid is False and ann.email  # kept, not used
    assert (message.status, message.reason) == ("failed", "bounced: hard")
    # Still subscribed: the address is broken, not the consent.
    assert Subscription.objects.get(customer=ann, channel="email").status == "subscribed"


def test_a_soft_bounce_is_only_recorded(make_customer):
    ann = make_customer()
    message = sent_message(ann)
    assert (
        post({"events": [{"type": "bounce", "message_id": str(message.pk), "bounce_type": "soft"}]}).json()[
            "bounced_soft"
        ]
        == 1
    )
    ann.refresh_from_db()
    message.refresh_from_db()
    assert ann.email_valid is True
    assert (message.status, message.reason) == ("sent", "bounced: soft")


def test_a_complaint_by_email_unsubscribes_and_emits_subscription_changed(make_customer):
    ann = make_customer(email="Ann@Example.com", subscriptions={"email": "subscribed", "sms": "subscribed"})
    response = post({"events": [{"type": "complaint", "email": "ann@example.COM"}]})
    assert response.json()["complaints"] == 1
    assert Subscription.objects.get(customer=ann, channel="email").status == "unsubscribed"
    assert Subscription.objects.get(customer=ann, channel="sms").status == "subscribed"
    assert changes(ann) == [("email", "unsubscribed", "provider")]


def test_a_complaint_on_a_message_marks_it(make_customer):
    ann = make_customer(subscriptions={"email": "subscribed"})
    message = sent_message(ann)
    post({"events": [{"type": "complaint", "message_id": message.pk}]})
    message.refresh_from_db()
    assert message.reason == "complained"
    assert Subscription.objects.get(customer=ann, channel="email").status == "unsubscribed"


@pytest.mark.parametrize("text", ["STOP", " stop ", "Unsubscribe"])
def test_an_sms_stop_unsubscribes_from_sms(make_customer, text):
    ann = make_customer(
        phone="+49 (151) 234-5678", subscriptions={"sms": "subscribed", "email": "subscribed"}
    )
    response = post({"events": [{"type": "sms_reply", "phone": "+491512345678", "text": text}]})
    assert response.json()["sms_stops"] == 1
    assert Subscription.objects.get(customer=ann, channel="sms").status == "unsubscribed"
    assert Subscription.objects.get(customer=ann, channel="email").status == "subscribed"
    assert changes(ann) == [("sms", "unsubscribed", "provider")]


def test_other_replies_and_unknown_recipients_are_ignored(make_customer):
    ann = make_customer(phone="+491512345678", subscriptions={"sms": "subscribed"})
    response = post(
        {
            "events": [
                {"type": "sms_reply", "phone": "+491512345678", "text": "stop please?"},
                {"type": "sms_reply", "phone": "+4900000000", "text": "STOP"},
                {"type": "bounce", "email": "nobody@example.com", "bounce_type": "hard"},
                {"type": "complaint", "message_id": "<maestra-999999@shop.example>"},
            ]
        }
    )
    assert response.json() == {
        "bounced_hard": 0,
        "bounced_soft": 0,
        "complaints": 0,
        "sms_stops": 0,
        "ignored": 4,
    }
    assert Subscription.objects.get(customer=ann, channel="sms").status == "subscribed"


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x"])
def test_a_bad_secret_is_a_json_403_and_changes_nothing(make_customer, secret):
    ann = make_customer(subscriptions={"email": "subscribed"})
    response = post({"events": [{"type": "complaint", "email": ann.email}]}, secret=secret)
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "X-Maestra-Inbound-Secret"
    assert Subscription.objects.get(customer=ann, channel="email").status == "subscribed"


def test_without_a_configured_secret_the_endpoint_is_closed(settings, make_customer):
    settings.MAESTRA_INBOUND_SECRET = ""
    assert post({"events": []}, secret="").status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"events": "x"},
        {"events": [{"type": "delivered"}]},
        {"events": [{"type": "bounce", "email": "a@b.c"}]},
        {"events": [{"type": "bounce", "bounce_type": "hard"}]},
        {"events": [{"type": "sms_reply", "text": "STOP"}]},
        {"events": [{"type": "complaint", "email": 5}]},
        {"events": [{"type": "complaint", "email": "a@b.c", "extra": 1}]},
        {"events": [], "more": 1},
    ],
)
def test_bad_bodies_are_400_with_the_error_contract(make_customer, body):
    ann = make_customer(email="a@b.c", subscriptions={"email": "subscribed"})
    response = post(body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]
    assert Customer.objects.get(pk=ann.pk).email_valid is True
    assert Subscription.objects.get(customer=ann, channel="email").status == "subscribed"
