"""SMS and mobile push through HttpJsonBackend to a local HTTP server."""

import pytest

from channels.backends import BackendMisconfigured
from channels.backends.http_json import dig, fill
from channels.delivery import deliver_due
from channels.models import Message
from channels.outbox import queue_messages
from tests.channels.conftest import Reply, send_request, use_backend

pytestmark = pytest.mark.django_db


@pytest.fixture
def sms_gateway(settings, http_server):
    use_backend(settings, "channels.backends.http_json.HttpJsonBackend", "sms", "mobile_push")
    settings.MAESTRA_HTTP_JSON = {
        "sms": {
            "url": http_server.url("/v1/sms"),
            "headers": {"Authorization": "Bearer sms-token"},
            "body": {
                "to": "{to}",
                "message": "Shop: {text}",
                "sender": "SHOP",
                "meta": {"ref": "{message_id}"},
            },
            "id_field": "result.sid",
        },
        "mobile_push": {
            "url": http_server.url("/v1/push"),
            "body": {
                "token": "{to}",
                "notification": {"title": "{title}", "body": "{body}"},
                "data": "{data}",
            },
        },
    }
    return http_server


def queue(make_template, make_customer, channel: str, **customer_fields) -> int:
    make_template(
        channel,
        channel=channel,
        purpose="service",
        subject="Hi {{ customer.first_name }}",
        text="Your code {{ promo_code }}",
    )
    customer = make_customer(**customer_fields)
    req = send_request(customer.id, channel, channel, run_id=1, context={"promo_code": "X7"})
    return queue_messages(requests=[req])[req.key].id


def test_it_posts_sms_json_with_the_mapping(sms_gateway, make_template, make_customer):
    sms_gateway.script(Reply(status=202, body=b'{"result": {"sid": "SM123"}}'))
    message_id = queue(make_template, make_customer, "sms", phone="+49 151 555 0000")
    assert deliver_due()["sent"] == 1
    [got] = sms_gateway.requests
    assert got.path == "/v1/sms"
    assert got.headers["authorization"] == "Bearer sms-token"
    assert got.headers["idempotency-key"] == f"maestra-{message_id}"
    assert got.json() == {
        "to": "+491515550000",
        "message": "Shop: Your code X7",
        "sender": "SHOP",
        "meta": {"ref": str(message_id)},
    }
    row = Message.objects.get(id=message_id)
    assert (row.status, row.provider_id, row.response_status) == ("sent", "SM123", 202)


def test_a_gateway_400_fails_and_a_502_is_retried(sms_gateway, make_template, make_customer):
    sms_gateway.script(Reply(status=400, body=b'{"error": "bad number"}'))
    message_id = queue(make_template, make_customer, "sms")
    assert deliver_due()["failed"] == 1
    row = Message.objects.get(id=message_id)
    assert (row.reason, row.response_body) == ("http_400", '{"error": "bad number"}')

    Message.objects.filter(id=message_id).update(status="queued", attempts=0)
    sms_gateway.script(Reply(status=502, body=b""))
    assert deliver_due()["retried"] == 1


def test_mobile_push_goes_to_every_token(sms_gateway, make_template, make_customer):
    message_id = queue(
        make_template, make_customer, "mobile_push", push_tokens={"mobile_push": ["tokA", "tokB"]}
    )
    assert deliver_due()["sent"] == 1
    bodies = [r.json() for r in sms_gateway.requests]
    assert bodies == [
        {"token": tok, "notification": {"title": "Hi Ann", "body": "Your code X7"}, "data": {}}
        for tok in ("tokA", "tokB")
    ]
    assert Message.objects.get(id=message_id).provider_id == "prov-1,prov-1"


def test_a_misconfigured_gateway_retries(sms_gateway, settings, make_template, make_customer):
    settings.MAESTRA_HTTP_JSON = {"sms": {}}
    message_id = queue(make_template, make_customer, "sms")
    assert deliver_due()["retried"] == 1
    assert (
        Message.objects.get(id=message_id).reason
        == "backend_misconfigured: MAESTRA_HTTP_JSON['sms'] has no url"
    )


def test_fill_keeps_types_for_whole_placeholders_and_refuses_unknown_ones():
    values = {"to": "+1", "data": {"a": 1}, "text": "hi"}
    assert fill({"x": "{data}", "y": ["{to}", "say {text} {data}"], "z": 3}, values) == {
        "x": {"a": 1},
        "y": ["+1", 'say hi {"a": 1}'],
        "z": 3,
    }
    with pytest.raises(BackendMisconfigured, match="unknown placeholder"):
        fill({"x": "{nope}"}, values)


def test_dig_reads_dotted_paths():
    doc = {"messages": [{"id": "m1"}], "n": 5}
    assert (dig(doc, "messages.0.id"), dig(doc, "n"), dig(doc, "missing.x"), dig(doc, "messages")) == (
        "m1",
        "5",
        "",
        "",
    )
