import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.addresses import normalize_phone
from channels.models import Message, Template
from channels.outbox import queue_messages
from tests.channels.conftest import send_request

pytestmark = pytest.mark.django_db

run_ids = itertools.count(1)


def request(
    customer, slug, channel="email", *, run_id=None, step_index=0, pass_no=1, is_test=False, **context
):
    return send_request(
        customer.id,
        slug,
        channel,
        run_id=run_id if run_id is not None else next(run_ids),
        node_key="steps",
        step_index=step_index,
        pass_no=pass_no,
        flow_id=7,
        is_test=is_test,
        context=context,
    )


def queue_one(req):
    return queue_messages(requests=[req])[req.key]


# purpose, subscription status (None = no row), address → expected (status, reason)
MATRIX = [
    ("marketing", "subscribed", "ok", ("queued", "")),
    ("marketing", "requires_confirmation", "ok", ("not_sent", "not_subscribed")),
    ("marketing", "unsubscribed", "ok", ("not_sent", "unsubscribed")),
    ("marketing", None, "ok", ("not_sent", "not_subscribed")),
    ("marketing", "subscribed", "absent", ("not_sent", "no_address")),
    ("marketing", "subscribed", "invalid", ("not_sent", "invalid_address")),
    ("marketing", "subscribed", "malformed", ("not_sent", "invalid_address")),
    ("marketing", None, "absent", ("not_sent", "not_subscribed")),
    ("service", "subscribed", "ok", ("queued", "")),
    ("service", "requires_confirmation", "ok", ("queued", "")),
    ("service", None, "ok", ("queued", "")),
    ("service", "unsubscribed", "ok", ("not_sent", "unsubscribed")),
    ("service", None, "absent", ("not_sent", "no_address")),
    ("service", "requires_confirmation", "invalid", ("not_sent", "invalid_address")),
    ("service", "unsubscribed", "absent", ("not_sent", "unsubscribed")),
]
ADDRESSES = {
    "ok": {"email": "ann@example.com", "email_valid": True},
    "absent": {"email": "", "email_valid": True},
    "invalid": {"email": "ann@example.com", "email_valid": False},  # hard bounce
    "malformed": {"email": "not an address", "email_valid": True},
}


@pytest.mark.parametrize("purpose, status, address, expected", MATRIX)
def test_email_eligibility_matrix(make_customer, make_template, purpose, status, address, expected):
    make_template("t", purpose=purpose)
    customer = make_customer(subscriptions={"email": status} if status else {}, **ADDRESSES[address])
    outcome = queue_one(request(customer, "t"))
    row = Message.objects.get()
    assert (outcome.status, outcome.reason) == expected == (row.status, row.reason)
    assert outcome.id == row.id
    if expected[0] == "queued":
        assert row.rendered == {"to": "ann@example.com", "subject": "Hello Ann", "text": "Hi Ann", "html": ""}
    else:
        assert row.rendered == {}  # nothing rendered for a message that may not go


def test_a_subscription_to_another_channel_does_not_count(make_customer, make_template):
    make_template("t")
    customer = make_customer(subscriptions={"sms": "subscribed"})
    assert queue_one(request(customer, "t")).reason == "not_subscribed"


@pytest.mark.parametrize(
    "channel, push_tokens, phone, expected",
    [
        ("sms", {}, "+49 (151) 234-5678", ("queued", "")),
        ("sms", {}, "", ("not_sent", "no_address")),
        ("sms", {}, "call me", ("not_sent", "invalid_address")),
        ("mobile_push", {"mobile_push": ["tok1", "", 5]}, "", ("queued", "")),
        ("mobile_push", {"mobile_push": []}, "", ("not_sent", "no_token")),
        ("mobile_push", {}, "", ("not_sent", "no_token")),
        (
            "web_push",
            {"web_push": [{"endpoint": "https://push.example/1", "keys": {"p256dh": "a", "auth": "b"}}]},
            "",
            ("queued", ""),
        ),
        ("web_push", {"web_push": [{"endpoint": "https://push.example/1"}]}, "", ("not_sent", "no_token")),
        ("web_push", {"web_push": "garbage"}, "", ("not_sent", "no_token")),
    ],
)
def test_addresses_and_tokens_per_channel(
    make_customer, make_template, channel, push_tokens, phone, expected
):
    make_template("t", channel=channel, purpose="service", subject="T", text="Body")
    customer = make_customer(push_tokens=push_tokens, phone=phone)
    outcome = queue_one(request(customer, "t", channel))
    assert (outcome.status, outcome.reason) == expected
    row = Message.objects.get()
    if channel == "sms" and expected[0] == "queued":
        assert row.rendered == {"to": "+491512345678", "text": "Body"}
    if channel == "mobile_push" and expected[0] == "queued":
        assert row.rendered["to"] == ["tok1"]
    if channel == "web_push" and expected[0] == "queued":
        assert row.rendered["to"][0]["endpoint"] == "https://push.example/1"


def test_webhooks_need_neither_consent_nor_address(make_customer, make_template):
    make_template("hook", channel="webhook", url="https://crm.example/x", text="{}")
    customer = make_customer(email="", phone="", subscriptions={"webhook": "unsubscribed"})
    outcome = queue_one(request(customer, "hook", "webhook"))
    assert outcome.status == "queued"
    assert Message.objects.get().rendered == {
        "method": "POST",
        "url": "https://crm.example/x",
        "headers": {},
        "body": "{}",
        "to": "",
    }


def test_queueing_the_same_keys_twice_writes_one_row(make_customer, make_template):
    make_template("t", purpose="service")
    customer = make_customer()
    req = request(customer, "t", run_id=42)
    first = queue_messages(requests=[req, req])  # repeated inside one batch, too
    Message.objects.filter(id=first[req.key].id).update(status="sent")
    second = queue_messages(requests=[req])
    assert Message.objects.count() == 1
    assert second[req.key].id == first[req.key].id
    # The engine learns the row's current state, so it knows the step was attempted.
    assert second[req.key].status == "sent"


def test_other_steps_and_passes_are_separate_rows(make_customer, make_template):
    make_template("t", purpose="service")
    customer = make_customer()
    reqs = [request(customer, "t", run_id=5, step_index=s, pass_no=p) for s in (0, 1) for p in (1, 2)]
    results = queue_messages(requests=reqs)
    assert len({r.id for r in results.values()}) == 4 == Message.objects.count()


def test_a_template_error_fails_that_row_only(make_customer, make_template):
    make_template("good", purpose="service")
    make_template("bad", purpose="service", text="{% load static %}{% static 'x' %}")
    customer = make_customer()
    good, bad = request(customer, "good"), request(customer, "bad")
    results = queue_messages(requests=[good, bad])
    assert results[good.key].status == "queued"
    assert results[bad.key].status == "failed"
    assert results[bad.key].reason.startswith("template_error: text: Invalid block tag on line 1: 'load'")
    assert results[bad.key].failed_on_the_spot
    assert not results[good.key].failed_on_the_spot


def test_missing_template_and_wrong_channel_fail_on_the_spot(make_customer, make_template):
    make_template("sms-only", channel="sms")
    customer = make_customer(subscriptions={"email": "subscribed"})
    missing, wrong = request(customer, "nope"), request(customer, "sms-only", "email")
    results = queue_messages(requests=[missing, wrong])
    assert results[missing.key].reason == "template_missing: no template 'nope'"
    assert results[wrong.key].reason.startswith("template_channel_mismatch")
    assert all(r.status == "failed" and r.failed_on_the_spot for r in results.values())
    assert Message.objects.filter(template__isnull=True, template_slug="nope").exists()


def test_a_deleted_customer_gets_no_row(make_customer, make_template):
    make_template("t")
    customer = make_customer()
    req = request(customer, "t")
    customer.delete()
    outcome = queue_one(req)
    assert (outcome.id, outcome.status, outcome.reason) == (None, "failed", "customer_missing")
    assert not Message.objects.exists()


def test_test_mode_renders_and_never_queues(make_customer, make_template):
    make_template("t", text="Hi {{ customer.first_name }}, code {{ promo_code }}")
    subscribed = make_customer(subscriptions={"email": "subscribed"})
    stranger = make_customer()
    a, b = request(subscribed, "t", is_test=True, promo_code="X1"), request(stranger, "t", is_test=True)
    results = queue_messages(requests=[a, b])
    assert {(r.status, r.reason) for r in results.values()} == {("not_sent", "test_mode")}
    row_a = Message.objects.get(id=results[a.key].id)
    assert row_a.is_test and row_a.rendered["text"] == "Hi Ann, code X1"
    assert row_a.rendered["test_verdict"] == "would_send"
    assert Message.objects.get(id=results[b.key].id).rendered["test_verdict"] == "not_subscribed"
    assert not Message.objects.filter(status="queued").exists()


def test_context_is_stored_and_used(make_customer, make_template):
    make_template(
        "t", purpose="service", subject="{{ flow.name }}", text="{{ event.order.id }} {{ promo_code }}"
    )
    customer = make_customer()
    context = {"event": {"order": {"id": "A-1"}}, "promo_code": "P", "flow": {"name": "Thanks"}}
    queue_one(request(customer, "t", **context))
    row = Message.objects.get()
    assert row.context == context
    assert (row.rendered["subject"], row.rendered["text"]) == ("Thanks", "A-1 P")
    assert (row.flow_id, row.node_key, row.pass_no, row.template.slug) == (7, "steps", 1, "t")


def test_a_big_batch_takes_a_constant_number_of_queries(make_customer, make_template):
    make_template("t", purpose="service")
    customers = [make_customer(subscriptions={"email": "subscribed"}) for _ in range(30)]
    with CaptureQueriesContext(connection) as small:
        queue_messages(requests=[request(c, "t") for c in customers[:3]])
    with CaptureQueriesContext(connection) as big:
        queue_messages(requests=[request(c, "t") for c in customers])
    assert len(big) == len(small) <= 6
    assert Message.objects.filter(status="queued").count() == 33


def test_an_empty_batch_does_nothing():
    assert queue_messages(requests=[]) == {}


# Typed phone number → the stored one (None: not a phone number).
PHONES = {
    "+49 151 234-5678": "+491512345678",
    "(030) 1234567": "0301234567",
    "12": None,
    "abc": None,
    "": None,
}


@pytest.mark.parametrize("raw, expected", PHONES.items())
def test_phone_normalization(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+49 (151) 234-5678", "+491512345678"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 (202) 555-0123", "+12025550123"),
        # The national trunk prefix written after the country code goes.
        ("+49 (0)151 234-5678", "+491512345678"),
        # Too short for any number of its country, or no such country code.
        ("+123", None),
        ("+1234567", None),
        ("+999 123 456 789", None),
        # Longer than E.164 allows; letters are not read as a vanity number.
        ("+49 151 2345 6789 0123", None),
        ("+1 800 FLOWERS", None),
    ],
)
def test_phone_numbers_with_a_country_code_are_sent_in_e164(raw, expected):
    assert normalize_phone(raw) == expected


def test_an_sms_goes_to_the_e164_form_of_the_customers_number(make_customer, make_template):
    make_template("t", channel="sms", purpose="service", text="Body")
    customer = make_customer(phone="+49 (0)151 234-5678")
    outcome = queue_one(request(customer, "t", "sms"))
    assert (outcome.status, Message.objects.get().rendered["to"]) == ("queued", "+491512345678")


def test_the_template_purpose_defaults_to_marketing(make_template):
    assert make_template("t").purpose == Template.Purpose.MARKETING


def test_hostile_templates_fail_their_own_rows_and_leak_nothing(make_customer, make_template, settings):
    sources = {
        "settings": "[{{ settings.SECRET_KEY }}]",
        "meta": "{{ customer._meta }}",
        "load": "{% load static %}",
        "include": '{% include "x" %}',
        "debug": "{% debug %}",
    }
    for slug, source in sources.items():
        make_template(slug, purpose="service", text=source)
    make_template("fine", purpose="service")
    customer = make_customer()
    reqs = {slug: request(customer, slug) for slug in [*sources, "fine"]}
    results = queue_messages(requests=list(reqs.values()))
    status = {slug: (results[r.key].status, results[r.key].reason) for slug, r in reqs.items()}
    assert status["fine"] == ("queued", "")
    assert status["settings"] == ("queued", "")
    assert Message.objects.get(id=results[reqs["settings"].key].id).rendered["text"] == "[]"
    assert settings.SECRET_KEY not in str(list(Message.objects.values_list("rendered", flat=True)))
    assert status["meta"] == (
        "failed",
        "template_error: text: Variables and attributes may not begin with underscores: 'customer._meta'",
    )
    for slug in ("load", "include", "debug"):
        assert status[slug][0] == "failed"
        assert status[slug][1].startswith(f"template_error: text: Invalid block tag on line 1: '{slug}'")
