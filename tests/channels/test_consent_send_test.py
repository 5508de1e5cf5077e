"""Send a test: a template rendered for a chosen customer, sent now through the
channel backend (real SMTP / HTTP servers), recorded as is_test, never a launch."""

import email
import email.policy

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from channels.models import Message
from channels.sendtest import SendTestError, send_test
from maestra.api.models import ApiKey
from tests.channels.conftest import use_backend

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db):
    cache.clear()
    _record, key = ApiKey.objects.create_key(name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def parse(envelope):
    return email.message_from_bytes(envelope.original_content, policy=email.policy.default)


def test_it_sends_to_the_customer_through_smtp_as_a_test_row(smtp_server, make_customer, make_template):
    ann = make_customer(email="ann@example.com", first_name="Ann", subscriptions={"email": "unsubscribed"})
    template = make_template("news", text="Hi {{ customer.first_name }}, bye: {{ links.unsubscribe }}")
    message = send_test(template=template, customer=ann)
    assert message.status == Message.Status.SENT
    assert message.is_test and message.run_id is None and message.flow_id is None
    assert message.sent_at is not None and message.provider_id.startswith("<maestra-")
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["ann@example.com"]
    received = parse(envelope)
    assert received["Subject"] == "Hello Ann"
    assert "Hi Ann, bye: http" in received.get_content()
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # like the real thing
    # Nothing was queued for the delivery worker.
    assert not Message.objects.filter(status=Message.Status.QUEUED).exists()


def test_it_sends_to_a_given_address_rendered_for_the_customer(smtp_server, make_customer, make_template):
    ann = make_customer(email="ann@example.com", first_name="Ann")
    template = make_template("welcome", purpose="service")
    message = send_test(template=template, customer=ann, to="tester@shop.example")
    assert message.status == Message.Status.SENT
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["tester@shop.example"]
    assert parse(envelope)["Subject"] == "Hello Ann"
    assert parse(envelope)["List-Unsubscribe"] is None  # service template


def test_a_refusal_is_recorded_as_failed_not_retried(smtp_server, make_customer, make_template):
    smtp_server.refuse["nobody@example.com"] = "550 no such user"
    ann = make_customer()
    template = make_template("welcome")
    message = send_test(template=template, customer=ann, to="nobody@example.com")
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.reason.startswith("smtp_recipient_refused")
    assert message.lease_until is None


def test_a_template_error_is_a_failed_row(make_customer, make_template):
    ann = make_customer()
    template = make_template("broken", text="{{ customer.first_name|rjust:5000 }}")
    message = send_test(template=template, customer=ann)
    assert message.status == Message.Status.FAILED
    assert message.reason.startswith("template_error")


def test_bad_destinations_write_nothing(make_customer, make_template):
    nobody = make_customer(email="", phone="")
    with pytest.raises(SendTestError, match="no usable email"):
        send_test(template=make_template("e"), customer=nobody)
    with pytest.raises(SendTestError, match="not an email address"):
        send_test(template=make_template("e2"), customer=nobody, to="not-an-address")
    with pytest.raises(SendTestError, match="not a phone number"):
        send_test(template=make_template("s", channel="sms"), customer=nobody, to="call me")
    assert not Message.objects.exists()


def test_sms_goes_to_the_normalized_number_through_the_sms_backend(make_customer, make_template, settings):
    use_backend(settings, "channels.backends.console.ConsoleBackend", "sms")
    ann = make_customer(first_name="Ann")
    message = send_test(template=make_template("sms", channel="sms"), customer=ann, to="+49 151 999-9999")
    assert message.status == Message.Status.SENT
    assert message.rendered == {"text": "Hi Ann", "to": "+491519999999"}


def test_the_api_sends_a_test(api, smtp_server, make_customer, make_template):
    make_customer(external_id="c-ann", email="ann@example.com")
    make_template("news")
    response = api.post("/api/v1/templates/news/send-test", {"customer": "c-ann"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "sent" and body["to"] == "ann@example.com"
    assert Message.objects.get(id=body["id"]).is_test
    assert len(smtp_server.envelopes) == 1


def test_the_api_refuses_bad_input_with_the_error_contract(api, make_customer, make_template):
    make_customer(external_id="c-ann")
    make_template("news")
    cases = [
        ("/api/v1/templates/nope/send-test", {"customer": "c-ann"}, 404),
        ("/api/v1/templates/news/send-test", {"customer": "c-nobody"}, 404),
        ("/api/v1/templates/news/send-test", {}, 400),
        ("/api/v1/templates/news/send-test", {"customer": "c-ann", "to": 5}, 400),
        ("/api/v1/templates/news/send-test", {"customer": "c-ann", "extra": 1}, 400),
        ("/api/v1/templates/news/send-test", {"customer": "c-ann", "to": "bad"}, 400),
    ]
    for url, body, code in cases:
        response = api.post(url, body, format="json")
        assert response.status_code == code, (body, response.content)
        assert response.json()["errors"][0]["message"]
    assert not Message.objects.exists()
    assert APIClient().post("/api/v1/templates/news/send-test", {"customer": "c-ann"}).status_code in (
        401,
        403,
    )


def test_the_admin_page_sends_a_test(admin_client, smtp_server, make_customer, make_template):
    make_customer(external_id="c-ann", email="ann@example.com")
    template = make_template("news")
    change = admin_client.get(reverse("admin:channels_template_change", args=[template.pk]))
    url = reverse("admin:channels_template_send_test", args=[template.pk])
    assert url.encode() in change.content
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"customer": "c-ann", "to": "me@shop.example"})
    assert response.status_code == 200
    assert b"sent" in response.content
    assert smtp_server.envelopes[0].rcpt_tos == ["me@shop.example"]
    response = admin_client.post(url, {"customer": "c-nobody"})
    assert b"No customer" in response.content
    assert Message.objects.count() == 1
