"""Send steps through a launched flow and flows.engine.tick.tick(), delivered to real
servers on 127.0.0.1: SMTP (aiosmtpd), an HTTP JSON gateway (SMS, mobile
push), a web push endpoint (decrypted here) and a webhook receiver (HMAC)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from channels.models import Message, Template
from customers.models import Customer, PointsEntry, PromoPool, Subscription
from customers.services import add_promo_codes, upsert_customers
from flows.engine.tick import tick
from flows.models import LaunchRecord, NodeStat, Run
from tests.channels.conftest import Reply
from tests.channels.test_webpush import Browser, vapid_keys  # noqa: F401 (a fixture)
from tests.flows import engine_kit as kit
from tests.flows.conftest import steps_document

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)


def make_customer(external_id: str, *, subscriptions: dict | None = None, **fields) -> Customer:
    upsert_customers(
        rows=[
            {
                "external_id": external_id,
                "email": f"{external_id}@example.com",
                "first_name": external_id.title(),
                "last_name": "Lee",
                "phone": "+49 151 2345678",
                "fields": {"tier": "gold"},
                "subscriptions": subscriptions
                if subscriptions is not None
                else {"email": "subscribed", "sms": "subscribed", "mobile_push": "subscribed"},
                **fields,
            }
        ]
    )
    return Customer.objects.get(external_id=external_id)


@pytest.fixture
def launch_and_post(launched, post_events):
    """Launch a steps flow, post one event for each of `who` at NOW, tick once."""

    def run(steps: list[dict], *, who: list[str], payload=None) -> dict:
        launched(steps_document(steps))
        with time_machine.travel(NOW, tick=False):
            post_events(who, payload=payload)
            return tick()

    return run


def test_it_emails_through_smtp_with_customer_event_code_and_flow(smtp_server, launch_and_post):
    ann = make_customer("ann")
    kit.template(
        "welcome",
        subject="{{ flow.name }}: {{ customer.first_name }}, {{ event.plan }}",
        text="Code {{ promo_code }} for {{ customer.fields.tier }}",
        html="<p>Hi {{ customer.full_name }} <b>{{ promo_code }}</b> {{ event.note }}</p>",
        # The exact HTML is compared: no open pixel (tests/channels/test_tracking.py).
        track={"opens": False, "clicks": False},
    )
    PromoPool.objects.create(slug="spring", name="Spring")
    add_promo_codes(pool_slug="spring", codes=["SPRING-1"])
    counts = launch_and_post(
        [
            {"action": "issue_promo_code", "pool": "spring"},
            {"action": "send", "channel": "email", "template": "welcome"},
        ],
        who=["ann"],
        payload={"plan": "pro", "note": "<script>"},
    )
    assert counts["messages.sent"] == 1
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["ann@example.com"]
    parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert parsed["Subject"] == "Spring sale: Ann, pro"
    assert parsed.get_body(("plain",)).get_content().strip() == "Code SPRING-1 for gold"
    # HTML is autoescaped: the event's "<script>" arrives as text.
    assert parsed.get_body(("html",)).get_content().strip() == (
        "<p>Hi Ann Lee <b>SPRING-1</b> &lt;script&gt;</p>"
    )
    message = Message.objects.get()
    assert parsed["Message-ID"] == f"<maestra-{message.pk}@localhost>"
    assert (message.status, message.node_key, message.step_index) == ("sent", "act", 1)
    assert message.context["promo_code"] == "SPRING-1"
    assert LaunchRecord.objects.get(customer=ann).launches == 1
    assert Run.objects.get(customer=ann).status == Run.Status.COMPLETED


# The HTTP JSON gateway's settings per channel, but for the URL (the test server's).
SMS_GATEWAY = {
    "headers": {"Authorization": "Bearer sms-token"},
    "body": {"to": "{to}", "text": "{text}", "ref": "{message_id}"},
    "id_field": "id",
}
PUSH_GATEWAY = {"body": {"token": "{to}", "title": "{title}", "body": "{body}", "data": "{data}"}}


@pytest.fixture
def gateway(settings, http_server):
    http_json = "channels.backends.http_json.HttpJsonBackend"
    backends = {**settings.MAESTRA_CHANNEL_BACKENDS, "sms": http_json, "mobile_push": http_json}
    settings.MAESTRA_CHANNEL_BACKENDS = backends
    settings.MAESTRA_HTTP_JSON = {
        "sms": {**SMS_GATEWAY, "url": http_server.url("/v1/sms")},
        "mobile_push": {**PUSH_GATEWAY, "url": http_server.url("/v1/push")},
    }
    return http_server


def test_it_sends_sms_and_mobile_push_through_the_http_json_gateway(gateway, launch_and_post):
    make_customer("ann")
    Customer.objects.filter(external_id="ann").update(push_tokens={"mobile_push": ["tok-a", "tok-b"]})
    kit.template("sms-hi", "sms", text="{{ customer.first_name }}: {{ event.total }} EUR")
    push = {"subject": "{{ flow.name }}", "text": "Thanks {{ customer.first_name }}"}
    kit.template("push-hi", "mobile_push", **push, url="https://shop.example/o/{{ event.order }}")
    counts = launch_and_post(
        [kit.send("sms-hi", "sms"), kit.send("push-hi", "mobile_push")],
        who=["ann"],
        payload={"total": 42, "order": "o-7"},
    )
    assert counts["messages.sent"] == 2
    sms = Message.objects.get(channel="sms")
    by_path = {}
    for got in gateway.requests:
        by_path.setdefault(got.path, []).append(got)
    [sms_request] = by_path["/v1/sms"]
    assert sms_request.headers["authorization"] == "Bearer sms-token"
    assert sms_request.headers["idempotency-key"] == f"maestra-{sms.pk}"
    assert sms_request.json() == {"to": "+491512345678", "text": "Ann: 42 EUR", "ref": str(sms.pk)}
    assert [r.json() for r in by_path["/v1/push"]] == [
        {
            "token": token,
            "title": "Spring sale",
            "body": "Thanks Ann",
            "data": {"url": "https://shop.example/o/o-7"},
        }
        for token in ("tok-a", "tok-b")
    ]
    assert set(Message.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.usefixtures("vapid_keys")
def test_it_sends_an_encrypted_web_push_the_browser_can_read(http_server, launch_and_post):
    browser = Browser(http_server.url("/push/device-1"))
    http_server.script(Reply(status=201, body=b""))
    make_customer("ann", subscriptions={"web_push": "subscribed"})
    Customer.objects.filter(external_id="ann").update(push_tokens={"web_push": [browser.subscription]})
    PromoPool.objects.create(slug="spring", name="Spring")
    add_promo_codes(pool_slug="spring", codes=["WEB-1"])
    sale = {"subject": "Sale for {{ customer.first_name }}", "text": "Use {{ promo_code }}"}
    kit.template("sale", "web_push", **sale, url="https://shop.example/sale")
    counts = launch_and_post(
        [
            {"action": "issue_promo_code", "pool": "spring"},
            {"action": "send", "channel": "web_push", "template": "sale"},
        ],
        who=["ann"],
    )
    assert counts["messages.sent"] == 1
    [got] = http_server.requests
    assert (got.path, got.headers["content-encoding"]) == ("/push/device-1", "aes128gcm")
    assert browser.decrypt(got.body) == {
        "title": "Sale for Ann",
        "body": "Use WEB-1",
        "data": {"url": "https://shop.example/sale", "message_id": Message.objects.get().pk},
    }


def test_it_calls_a_signed_webhook_on_an_allow_listed_local_server(settings, http_server, launch_and_post):
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{http_server.port}"]
    make_customer("ann", subscriptions={})
    template = Template.objects.create(
        slug="crm",
        name="CRM",
        channel="webhook",
        method="PUT",
        url=http_server.url("/crm/{{ customer.external_id }}"),
        headers={"X-Flow": "{{ flow.name }}"},
        text='{"customer": {{ customer.external_id|json }}, "order": {{ event|json }}}',
    )
    counts = launch_and_post(
        [{"action": "send", "channel": "webhook", "template": "crm"}],
        who=["ann"],
        payload={"total": 99},
    )
    assert counts["messages.sent"] == 1
    [got] = http_server.requests
    assert (got.method, got.path, got.headers["x-flow"]) == ("PUT", "/crm/ann", "Spring sale")
    assert got.json() == {"customer": "ann", "order": {"total": 99}}
    expected = "sha256=" + hmac.new(template.secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["x-maestra-signature"], expected)
    message = Message.objects.get()
    assert (message.status, message.response_status) == ("sent", 200)


def test_a_webhook_to_a_local_server_not_allow_listed_fails_but_is_a_launch(http_server, launch_and_post):
    ann = make_customer("ann", subscriptions={})
    Template.objects.create(slug="crm", name="CRM", channel="webhook", url=http_server.url("/x"), text="{}")
    launch_and_post([{"action": "send", "channel": "webhook", "template": "crm"}], who=["ann"])
    assert http_server.requests == []
    message = Message.objects.get()
    assert message.status == "failed"
    assert message.reason.startswith("destination_not_allowed")
    # The step was attempted: a delivery failure after the fact is still a launch.
    assert LaunchRecord.objects.get(customer=ann).launches == 1


def test_a_failing_provider_is_retried_in_later_ticks(settings, http_server, launch_and_post):
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{http_server.port}"]
    settings.MAESTRA_RETRY_DELAY = 300
    make_customer("ann", subscriptions={})
    Template.objects.create(slug="crm", name="CRM", channel="webhook", url=http_server.url("/x"), text="{}")
    http_server.script(Reply(status=503, body=b"busy"))
    counts = launch_and_post([{"action": "send", "channel": "webhook", "template": "crm"}], who=["ann"])
    assert counts["messages.retried"] == 1
    with time_machine.travel(NOW + timedelta(seconds=299), tick=False):
        assert "messages.sent" not in tick()
    with time_machine.travel(NOW + timedelta(seconds=301), tick=False):
        assert tick()["messages.sent"] == 1
    message = Message.objects.get()
    assert (message.status, message.attempts) == ("sent", 2)
    assert len(http_server.requests) == 2


@pytest.mark.parametrize(
    ("purpose", "subscription", "status", "reason"),
    [
        ("marketing", "unsubscribed", "not_sent", "unsubscribed"),
        ("marketing", "requires_confirmation", "not_sent", "not_subscribed"),
        ("marketing", None, "not_sent", "not_subscribed"),
        ("service", "unsubscribed", "not_sent", "unsubscribed"),
        ("service", "requires_confirmation", "sent", ""),
        ("service", None, "sent", ""),
        ("marketing", "subscribed", "sent", ""),
    ],
)
def test_consent_decides_and_not_sent_is_still_a_launch(
    smtp_server, purpose, subscription, status, reason, launch_and_post
):
    ann = make_customer("ann", subscriptions={"email": subscription} if subscription else {})
    assert Subscription.objects.filter(customer=ann).count() == (1 if subscription else 0)
    Template.objects.create(slug="news", name="News", channel="email", purpose=purpose, subject="S", text="T")
    launch_and_post(
        [
            {"action": "send", "channel": "email", "template": "news"},
            {"action": "points", "amount": 5, "reason": "after the send"},
        ],
        who=["ann"],
    )
    message = Message.objects.get()
    assert (message.status, message.reason) == (status, reason)
    assert len(smtp_server.envelopes) == (1 if status == "sent" else 0)
    # An attempt recorded as not sent is still a launch, and the group goes on.
    assert LaunchRecord.objects.get(customer=ann).launches == 1
    assert Run.objects.get(customer=ann).status == Run.Status.COMPLETED
    assert PointsEntry.objects.get(customer=ann).amount == 5


@pytest.mark.parametrize(
    "text",
    ["{% if %}broken", "{{ customer.first_name|floatformat:900 }}", "{% for x in customer.fields %}"],
)
def test_a_template_error_fails_the_step_stops_the_run_and_is_no_launch(
    smtp_server, launched, post_events, text
):
    ann = make_customer("ann")
    Template.objects.create(slug="bad", name="Bad", channel="email", subject="S", text="fine")
    launched(
        steps_document(
            [
                {"action": "send", "channel": "email", "template": "bad"},
                {"action": "points", "amount": 5},
            ]
        )
    )
    # Broken after the launch, as a row saved before templates were checked on save.
    Template.objects.filter(slug="bad").update(text=text)
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"])
        tick()
    run = Run.objects.get(customer=ann)
    assert (run.status, run.stop_reason, run.launched) == ("stopped", "template_error", False)
    message = Message.objects.get()
    assert message.status == "failed"
    assert message.reason.startswith("template_error: text:")
    assert smtp_server.envelopes == []
    assert not PointsEntry.objects.exists()  # the group stopped at the failing step
    assert not LaunchRecord.objects.filter(customer=ann, launches__gt=0).exists()
    assert NodeStat.objects.get(node_key="act", metric="stop:template_error").count == 1


def test_a_template_deleted_after_launch_fails_the_step(smtp_server, launched, post_events):
    ann = make_customer("ann")
    Template.objects.create(slug="gone", name="Gone", channel="email", subject="S", text="T")
    launched(steps_document([{"action": "send", "channel": "email", "template": "gone"}]))
    Template.objects.filter(slug="gone").delete()
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"])
        tick()
    run = Run.objects.get(customer=ann)
    assert (run.status, run.stop_reason) == ("stopped", "template_missing")
    assert not LaunchRecord.objects.filter(customer=ann, launches__gt=0).exists()


def test_one_bad_address_does_not_hold_back_the_others(smtp_server, launch_and_post):
    make_customer("ann")
    make_customer("bob", email="")
    Template.objects.create(
        slug="news", name="News", channel="email", subject="Hi", text="{{ customer.first_name }}"
    )
    launch_and_post(
        [{"action": "send", "channel": "email", "template": "news"}],
        who=["ann", "bob"],
    )
    assert dict(Message.objects.values_list("customer__external_id", "reason")) == {
        "ann": "",
        "bob": "no_address",
    }
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [["ann@example.com"]]
    assert LaunchRecord.objects.filter(launches=1).count() == 2
    # Sent once: a second tick finds nothing left to do.
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        tick()
    assert len(smtp_server.envelopes) == 1
    assert Message.objects.get(customer__external_id="ann").rendered["to"] == "ann@example.com"
