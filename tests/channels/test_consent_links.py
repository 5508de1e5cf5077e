"""Confirm / unsubscribe / preferences links: signed tokens, public pages,
RFC 8058 one-click unsubscribe through a real SMTP server."""

import email
import email.policy
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.test import Client

from channels.delivery import deliver_due
from channels.links import InvalidLink, link_url, links_for, make_token, read_token
from channels.models import Message
from customers.models import Event, Subscription
from tests.channels.conftest import queue_one as queue

pytestmark = pytest.mark.django_db

BASE = "https://mail.shop.example"


@pytest.fixture(autouse=True)
def public_base(settings):
    settings.MAESTRA_PUBLIC_BASE_URL = BASE + "/"


def path_of(url: str) -> str:
    assert url.startswith(BASE + "/p/"), url
    return urlsplit(url).path


def status_of(customer, channel="email"):
    return Subscription.objects.get(customer=customer, channel=channel).status


def subscription_events(customer):
    return list(
        Event.objects.filter(customer=customer, type="subscription_changed").values_list("payload", flat=True)
    )


def test_it_round_trips_a_token_bound_to_customer_channel_and_action():
    token = make_token(customer_id=7, channel="sms", action="unsubscribe")
    assert read_token(token=token, action="unsubscribe") == (7, "sms")
    # Another action's salt refuses it: an unsubscribe token cannot confirm.
    with pytest.raises(InvalidLink):
        read_token(token=token, action="confirm")
    with pytest.raises(InvalidLink):
        read_token(token=token.replace(":", "x", 1), action="unsubscribe")
    with pytest.raises(InvalidLink):
        read_token(token="", action="unsubscribe")
    with pytest.raises(ValueError):
        make_token(customer_id=7, channel="sms", action="delete_everything")


def test_tokens_expire_after_the_configured_age(settings):
    settings.MAESTRA_LINK_MAX_AGE = 3600
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False):
        token = make_token(customer_id=1, channel="email", action="confirm")
    with time_machine.travel(datetime(2026, 1, 1, 0, 59, tzinfo=UTC), tick=False):
        assert read_token(token=token, action="confirm") == (1, "email")
    with (
        time_machine.travel(datetime(2026, 1, 1, 1, 1, tzinfo=UTC), tick=False),
        pytest.raises(InvalidLink, match="expired"),
    ):
        read_token(token=token, action="confirm")


def test_templates_get_absolute_links_for_the_message_channel(make_customer, make_template):
    ann = make_customer(subscriptions={"sms": "subscribed"})
    make_template(
        "sms-news", channel="sms", text="News! Stop: {{ links.unsubscribe }} Prefs: {{ links.preferences }}"
    )
    row = queue(ann, "sms-news", channel="sms")
    assert row.status == Message.Status.QUEUED
    text = row.rendered["text"]
    unsubscribe = text.split("Stop: ")[1].split(" ")[0]
    assert read_token(token=path_of(unsubscribe).rsplit("/", 1)[1], action="unsubscribe") == (ann.id, "sms")
    assert f"{BASE}/p/preferences/" in text
    # SMS carries no email header.
    assert "list_unsubscribe" not in row.rendered
    assert set(links_for(customer_id=ann.id, channel="email")) == {"confirm", "unsubscribe", "preferences"}
    assert links_for(customer_id=ann.id, channel="webhook") == {}


def test_marketing_email_carries_rfc8058_headers_and_one_click_post_unsubscribes(
    smtp_server, make_customer, make_template, settings
):
    settings.MAESTRA_EMAIL_FROM = "Shop <news@shop.example>"
    ann = make_customer(email="ann@example.com", subscriptions={"email": "subscribed"})
    make_template("news", text="Our news. Unsubscribe: {{ links.unsubscribe }}")
    queue(ann, "news")
    counts = deliver_due()
    # Seen failing once in a full parallel run and never alone: say why if it does again.
    assert counts["sent"] == 1, (counts, list(Message.objects.values("status", "reason", "attempts")))

    [envelope] = smtp_server.envelopes
    received = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header = str(received["List-Unsubscribe"]).strip()  # long: folded onto its own line
    assert header.startswith("<") and header.endswith(">")
    url = header[1:-1]
    assert url in received.get_content()  # the body's link is the same page

    # A mail provider's one-click POST: no CSRF token, no cookie, no login.
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        path_of(url), data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert status_of(ann) == Subscription.Status.UNSUBSCRIBED
    [payload] = subscription_events(ann)
    assert payload["old"] == "subscribed" and payload["new"] == "unsubscribed"
    assert payload["source"] == "link" and payload["channel"] == "email"

    # Posting again changes nothing more (no second event).
    assert client.post(path_of(url)).status_code == 200
    assert len(subscription_events(ann)) == 1


def test_service_email_has_no_list_unsubscribe_header(smtp_server, make_customer, make_template):
    ann = make_customer(subscriptions={"email": "requires_confirmation"})
    make_template("confirm", purpose="service", text="Confirm: {{ links.confirm }}")
    row = queue(ann, "confirm")
    assert row.status == Message.Status.QUEUED
    assert f"{BASE}/p/confirm/" in row.rendered["text"]
    assert deliver_due()["sent"] == 1
    [envelope] = smtp_server.envelopes
    received = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert received["List-Unsubscribe"] is None and received["List-Unsubscribe-Post"] is None
    assert received["Message-ID"]


def test_get_on_the_unsubscribe_page_changes_nothing(make_customer, client):
    ann = make_customer(subscriptions={"email": "subscribed"})
    url = link_url(customer_id=ann.id, channel="email", action="unsubscribe")
    response = client.get(path_of(url))
    assert response.status_code == 200
    assert b'<form method="post"' in response.content
    assert status_of(ann) == Subscription.Status.SUBSCRIBED
    assert subscription_events(ann) == []


@pytest.mark.parametrize("action", ["unsubscribe", "confirm", "preferences"])
def test_a_tampered_or_foreign_token_changes_nothing_and_says_so(make_customer, client, action):
    ann = make_customer(subscriptions={"email": "requires_confirmation"})
    bob = make_customer(subscriptions={"email": "requires_confirmation"})
    good = make_token(customer_id=ann.id, channel="email", action=action)
    # The same payload pointing at Bob, keeping Ann's signature: forged.
    forged_payload = make_token(customer_id=bob.id, channel="email", action=action).split(":")[0]
    forged = ":".join([forged_payload, *good.split(":")[1:]])
    other_action = make_token(
        customer_id=ann.id, channel="email", action="preferences" if action != "preferences" else "confirm"
    )
    for token in (good[:-2] + ("AA" if not good.endswith("AA") else "BB"), forged, other_action, "x"):
        response = client.post(f"/p/{action}/{token}", {"email": "unsubscribed"})
        assert response.status_code == 400
        assert b"Nothing was changed" in response.content
        assert client.get(f"/p/{action}/{token}").status_code == 400
    assert status_of(ann) == status_of(bob) == Subscription.Status.REQUIRES_CONFIRMATION
    assert Event.objects.filter(type="subscription_changed").count() == 0


def test_an_expired_link_says_so_plainly(make_customer, client, settings):
    settings.MAESTRA_LINK_MAX_AGE = 60
    ann = make_customer(subscriptions={"email": "subscribed"})
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        url = link_url(customer_id=ann.id, channel="email", action="unsubscribe")
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        response = client.post(path_of(url))
    assert response.status_code == 400
    assert b"expired" in response.content
    assert status_of(ann) == Subscription.Status.SUBSCRIBED


def test_confirm_link_subscribes_on_post_only(make_customer, client):
    ann = make_customer(subscriptions={"email": "requires_confirmation"})
    url = path_of(link_url(customer_id=ann.id, channel="email", action="confirm"))
    assert client.get(url).status_code == 200
    assert status_of(ann) == Subscription.Status.REQUIRES_CONFIRMATION
    response = client.post(url)
    assert response.status_code == 200 and b"confirmed" in response.content
    assert status_of(ann) == Subscription.Status.SUBSCRIBED
    [payload] = subscription_events(ann)
    assert (payload["old"], payload["new"], payload["source"]) == (
        "requires_confirmation",
        "subscribed",
        "link",
    )


def test_confirm_page_is_csrf_protected_unlike_the_one_click_unsubscribe(make_customer):
    ann = make_customer(subscriptions={"email": "requires_confirmation"})
    client = Client(enforce_csrf_checks=True)
    url = path_of(link_url(customer_id=ann.id, channel="email", action="confirm"))
    assert client.post(url).status_code == 403
    assert status_of(ann) == Subscription.Status.REQUIRES_CONFIRMATION


def test_preferences_page_changes_several_channels(make_customer, client):
    ann = make_customer(subscriptions={"email": "subscribed", "sms": "subscribed"})
    url = path_of(link_url(customer_id=ann.id, channel="email", action="preferences"))
    page = client.get(url)
    assert page.status_code == 200 and b"Mobile push" in page.content
    response = client.post(url, {"email": "subscribed", "sms": "unsubscribed", "web_push": "subscribed"})
    assert response.status_code == 200 and b"Saved" in response.content
    assert status_of(ann, "sms") == Subscription.Status.UNSUBSCRIBED
    assert status_of(ann, "web_push") == Subscription.Status.SUBSCRIBED
    assert status_of(ann, "email") == Subscription.Status.SUBSCRIBED
    assert sorted(p["channel"] for p in subscription_events(ann)) == ["sms", "web_push"]
    # A value that is not a choice is refused, and nothing changes.
    bad = client.post(url, {"sms": "maybe", "email": "unsubscribed"})
    assert bad.status_code == 400
    assert status_of(ann, "email") == Subscription.Status.SUBSCRIBED


def test_a_link_of_a_deleted_customer_changes_nothing(make_customer, client):
    ann = make_customer(subscriptions={"email": "subscribed"})
    url = path_of(link_url(customer_id=ann.id, channel="email", action="unsubscribe"))
    ann.delete()
    assert client.post(url).status_code == 400
    assert not Subscription.objects.exists()
