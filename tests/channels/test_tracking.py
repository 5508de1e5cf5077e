"""Email engagement tracking (SPEC §13) through its public parts: a flow
sends a tracked email to a real SMTP server on loopback, the links and the
pixel in what arrived are fetched with the Django test client, the events
start a flow, and the statistics show unique opens and clicks."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.test import Client
from django.utils import timezone

from channels.delivery import deliver_due
from channels.models import Message
from customers.models import Event
from tests.channels.conftest import queue_one
from tests.flows.conftest import launched  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_client_factory(db):
    from rest_framework.test import APIClient

    from maestra.api.models import ApiKey

    def make() -> APIClient:
        _record, key = ApiKey.objects.create_key(name="tests")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client

    return make


HTML = (
    '<html><body><p>Hi {{ customer.first_name }}, <a href="https://shop.example/sale?a=1&amp;b=2">sale</a>'
    " <a href='https://shop.example/faq'>faq</a> <a href=\"https://shop.example/sale?a=1&amp;b=2\">again</a>"
    ' <a href="mailto:help@shop.example">mail us</a> <a href="{{ links.unsubscribe }}">unsubscribe</a></p>'
    "</body></html>"
)


def _html_of(envelope) -> str:
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    return message.get_body(("html",)).get_content()


def _paths(html: str, kind: str) -> list[str]:
    return re.findall(rf'"https?://[^"/]+(/t/{kind}/[^"]+)"', html)


@pytest.fixture
def sent(smtp_server, make_template, make_customer, settings):
    """Send one email of template `slug` through the outbox and the delivery
    worker to the SMTP server; returns (message row, HTML that arrived)."""
    settings.MAESTRA_PUBLIC_BASE_URL = "https://maestra.example"

    def send(*, purpose: str = "marketing", track=None, customer=None, run_id: int = 1):
        slug = f"t-{purpose}-{run_id}"
        make_template(slug, purpose=purpose, html=HTML, track=track)
        customer = customer or make_customer(subscriptions={"email": "subscribed"})
        row = queue_one(customer, slug, run_id=run_id)
        assert row.status == "queued", row.reason
        before = len(smtp_server.envelopes)
        assert deliver_due()["sent"] == 1
        return Message.objects.get(pk=row.pk), _html_of(smtp_server.envelopes[before])

    return send


def test_a_marketing_email_has_tracked_links_and_the_pixel(sent):
    row, html = sent()
    clicks, opens = _paths(html, "c"), _paths(html, "o")
    assert len(clicks) == 3  # the two shop links (one of them twice); not mailto, not unsubscribe
    assert len(opens) == 1
    assert html.index("/t/o/") < html.index("</body>")
    assert "https://shop.example" not in html.replace("https://maestra.example", "")
    assert "mailto:help@shop.example" in html
    assert "https://maestra.example/p/unsubscribe/" in html
    # The outbox row keeps the original HTML.
    assert "/t/c/" not in row.rendered["html"]
    assert "track" not in _paths(html, "c")[0]


def test_a_click_redirects_to_the_link_and_records_the_event_once(sent, client):
    row, html = sent()
    first, faq, again = _paths(html, "c")
    response = client.get(first)
    assert response.status_code == 302
    assert response["Location"] == "https://shop.example/sale?a=1&b=2"
    assert client.get(again).status_code == 302  # the same URL is the same link
    assert client.get(faq)["Location"] == "https://shop.example/faq"
    events = list(Event.objects.filter(type="email_clicked").order_by("id"))
    assert [e.payload["url"] for e in events] == [
        "https://shop.example/sale?a=1&b=2",
        "https://shop.example/faq",
    ]
    assert events[0].payload == {
        "message": row.pk,
        "flow": None,
        "node": "n",
        "template": row.template_slug,
        "url": "https://shop.example/sale?a=1&b=2",
    }
    assert events[0].customer_id == row.customer_id
    assert events[0].processed_at is None  # left for the engine's sweep, like any event
    row.refresh_from_db()
    assert row.clicked_at is not None


def test_opening_twice_records_one_event(sent, client):
    row, html = sent()
    [pixel] = _paths(html, "o")
    for _ in range(2):
        response = client.get(pixel)
        assert response.status_code == 200
        assert response["Content-Type"] == "image/gif"
    [event] = Event.objects.filter(type="email_opened")
    assert event.payload == {"message": row.pk, "flow": None, "node": "n", "template": row.template_slug}
    row.refresh_from_db()
    first_open = row.opened_at
    assert first_open is not None
    client.get(pixel)
    row.refresh_from_db()
    assert row.opened_at == first_open


@pytest.mark.django_db(transaction=True)
def test_concurrent_opens_store_one_event(sent):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    _row, html = sent()
    [pixel] = _paths(html, "o")
    barrier = threading.Barrier(4)
    statuses = []

    def open_it():
        try:
            barrier.wait()
            statuses.append(Client().get(pixel).status_code)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    assert Event.objects.filter(type="email_opened").count() == 1


def test_a_tampered_token_is_a_404_and_records_nothing(sent, client):
    _row, html = sent()
    [click, *_] = _paths(html, "c")
    [pixel] = _paths(html, "o")
    token = click.rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/t/c/{tampered}").status_code == 404
    assert client.get(pixel[:-1] + ("x" if pixel[-1] != "x" else "y")).status_code == 404
    # A valid open token is no click token (salts differ), and a made-up one is nothing.
    assert client.get("/t/c/" + pixel.rsplit("/", 1)[1]).status_code == 404
    assert client.get("/t/c/evil.example").status_code == 404
    assert not Event.objects.filter(type__in=["email_opened", "email_clicked"]).exists()


def test_an_erased_customer_is_not_tracked(sent, client, django_user_model):
    from flows.privacy import erase_customers

    row, html = sent()
    erase_customers(customer_ids=[row.customer_id])
    [click, *_] = _paths(html, "c")
    [pixel] = _paths(html, "o")
    assert client.get(click).status_code == 302  # the link still works for the reader
    assert client.get(pixel).status_code == 200
    assert not Event.objects.filter(type__in=["email_opened", "email_clicked"]).exists()
    row.refresh_from_db()
    assert (row.opened_at, row.clicked_at) == (None, None)


def test_a_service_template_is_not_tracked_by_default(sent):
    _row, html = sent(purpose="service")
    assert not _paths(html, "c") and not _paths(html, "o")
    assert 'href="https://shop.example/faq"' in html or "href='https://shop.example/faq'" in html


def test_a_template_can_turn_clicks_off_and_the_site_can_turn_everything_off(sent, settings):
    _row, html = sent(track={"opens": True, "clicks": False})
    assert not _paths(html, "c") and len(_paths(html, "o")) == 1
    _row, html = sent(purpose="service", track={"clicks": True}, run_id=2)
    assert len(_paths(html, "c")) == 3 and not _paths(html, "o")
    settings.MAESTRA_EMAIL_TRACKING = False
    _row, html = sent(run_id=3)
    assert not _paths(html, "c") and not _paths(html, "o")


def test_the_template_api_shows_and_checks_track(api_client_factory):
    api = api_client_factory()
    body = {"slug": "n1", "name": "N", "channel": "email", "subject": "Hi", "text": "Hi"}
    response = api.post("/api/v1/templates", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["track"] == {"opens": True, "clicks": True}
    response = api.patch("/api/v1/templates/n1", {"purpose": "service"}, format="json")
    assert response.json()["track"] == {"opens": False, "clicks": False}
    response = api.patch("/api/v1/templates/n1", {"track": {"opens": "yes"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "track.opens"
    response = api.patch("/api/v1/templates/n1", {"track": {"opens": True}}, format="json")
    assert response.json()["track"] == {"opens": True, "clicks": False}


def test_email_events_start_flows_and_the_statistics_count_unique_opens_and_clicks(
    smtp_server,
    make_template,
    make_customer,
    launched,  # noqa: F811
    client,
    settings,
    api_client_factory,
):
    from flows.engine.tick import tick
    from tests.flows.conftest import steps_document

    settings.MAESTRA_PUBLIC_BASE_URL = "https://maestra.example"
    make_template("news", purpose="marketing", html=HTML)
    make_template("thanks", purpose="marketing", text="Thanks for clicking")
    sender = launched(
        steps_document([{"action": "send", "channel": "email", "template": "news"}], name="Sender")
    )
    follow_up = launched(
        steps_document(
            [{"action": "send", "channel": "email", "template": "thanks"}],
            name="Follow-up",
            event_type="email_clicked",
        )
    )
    customers = [make_customer(subscriptions={"email": "subscribed"}) for _ in range(3)]
    from customers.services import store_events

    store_events(
        events=[
            {
                "external_id": f"o-{c.pk}",
                "customer_id": c.pk,
                "type": "order_created",
                "occurred_at": timezone.now(),
                "payload": {},
            }
            for c in customers
        ]
    )
    tick()
    htmls = [_html_of(e) for e in smtp_server.envelopes]
    assert len(htmls) == 3
    for html in htmls[:2]:
        client.get(_paths(html, "o")[0])
        client.get(_paths(html, "o")[0])
    first = _paths(htmls[0], "c")
    client.get(first[0])
    client.get(first[1])
    tick()
    clicked = Event.objects.get(type="email_clicked", payload__url="https://shop.example/sale?a=1&b=2")
    assert clicked.payload["flow"] == sender.pk
    assert clicked.processed_at is not None
    # The click started the follow-up flow: one run, one message (the first click of each link is
    # an event, so the second link started a second run of the every_time flow).
    assert Message.objects.filter(flow_id=follow_up.pk, template_slug="thanks").count() == 2

    api = api_client_factory()
    start = (timezone.now() - timedelta(hours=1)).isoformat()
    response = api.get(f"/api/v1/flows/{sender.pk}/stats", {"start": start})
    assert response.status_code == 200, response.json()
    act = next(node for node in response.json()["nodes"] if node["key"] == "act")
    assert act["email"] == {"sent": 3, "opened": 2, "clicked": 1, "open_rate": 66.67, "click_rate": 33.33}
    start_node = next(node for node in response.json()["nodes"] if node["key"] == "start")
    assert start_node["email"] is None
