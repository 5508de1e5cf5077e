"""Web push to a local endpoint: the test holds the subscription's private key
and decrypts what the push service would relay to the browser."""

import base64
import io
import json
import os

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from py_vapid import Vapid

from channels.delivery import deliver_due
from channels.models import Message
from channels.outbox import queue_messages
from customers.models import Customer
from tests.channels.conftest import Reply, send_request, use_backend

pytestmark = pytest.mark.django_db


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """A browser's push subscription: its key pair and auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> dict:
        plain = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"
        )
        return json.loads(plain)


def generated_vapid_keys() -> dict[str, str]:
    """A fresh key pair, as `manage.py generate_vapid_keys` prints it."""
    out = io.StringIO()
    call_command("generate_vapid_keys", stdout=out)
    return dict(line.split("=", 1) for line in out.getvalue().split())


@pytest.fixture
def vapid_keys(settings):
    keys = generated_vapid_keys()
    settings.MAESTRA_VAPID_PRIVATE_KEY = keys["MAESTRA_VAPID_PRIVATE_KEY"]
    settings.MAESTRA_VAPID_SUBJECT = "mailto:ops@shop.example"
    use_backend(settings, "channels.backends.webpush.WebPushBackend", "web_push")
    settings.MAESTRA_WEBPUSH_ALLOWED_HOSTS = ["127.0.0.1"]
    return keys


@pytest.fixture
def push_to(make_template, make_customer):
    make_template(
        "sale",
        channel="web_push",
        subject="Sale for {{ customer.first_name }}",
        text="Use {{ promo_code }}",
        url="https://shop.example/sale",
    )

    def queue(*browsers: Browser) -> tuple[Customer, int]:
        customer = make_customer(
            subscriptions={"web_push": "subscribed"},
            push_tokens={"web_push": [b.subscription for b in browsers]},
        )
        req = send_request(
            customer.id, "sale", "web_push", run_id=customer.id, context={"promo_code": "WEB20"}
        )
        return customer, queue_messages(requests=[req])[req.key].id

    return queue


def test_it_sends_an_encrypted_vapid_signed_push(vapid_keys, push_to, http_server):
    browser = Browser(http_server.url("/push/device-1"))
    http_server.script(Reply(status=201, body=b"", headers={"Location": "https://push/msg/77"}))
    _customer, message_id = push_to(browser)
    assert deliver_due()["sent"] == 1

    [got] = http_server.requests
    assert (got.method, got.path) == ("POST", "/push/device-1")
    assert got.headers["content-encoding"] == "aes128gcm"
    assert got.headers["ttl"] == "86400"
    assert browser.decrypt(got.body) == {
        "title": "Sale for Ann",
        "body": "Use WEB20",
        "data": {"url": "https://shop.example/sale", "message_id": message_id},
    }
    # The VAPID token is signed by our key, for this push service, by us.
    auth = got.headers["authorization"]
    assert Vapid.verify(auth)
    params = dict(part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    assert params["k"] == vapid_keys["MAESTRA_VAPID_PUBLIC_KEY"]
    claims = json.loads(b64url_decode(params["t"].split(".")[1]))
    assert claims["aud"] == f"http://127.0.0.1:{http_server.port}"
    assert claims["sub"] == "mailto:ops@shop.example"
    row = Message.objects.get(id=message_id)
    assert (row.status, row.response_status, row.provider_id) == ("sent", 201, "https://push/msg/77")


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_fails_and_is_forgotten(vapid_keys, push_to, http_server, status):
    http_server.script(Reply(status=status, body=b""))
    customer, message_id = push_to(Browser(http_server.url("/push/old")))
    assert deliver_due()["failed"] == 1
    row = Message.objects.get(id=message_id)
    assert (row.status, row.reason) == ("failed", f"push_subscription_gone: http_{status}")
    customer.refresh_from_db()
    assert customer.push_tokens["web_push"] == []


def test_one_device_gone_one_reached_is_sent(vapid_keys, push_to, http_server):
    gone, alive = Browser(http_server.url("/push/gone")), Browser(http_server.url("/push/alive"))
    http_server.script(Reply(status=410, body=b""), Reply(status=201, body=b""))
    customer, message_id = push_to(gone, alive)
    assert deliver_due()["sent"] == 1
    assert [r.path for r in http_server.requests] == ["/push/gone", "/push/alive"]
    assert alive.decrypt(http_server.requests[1].body)["title"] == "Sale for Ann"
    customer.refresh_from_db()
    assert [s["endpoint"] for s in customer.push_tokens["web_push"]] == [alive.subscription["endpoint"]]
    assert "push_subscription_gone" in Message.objects.get(id=message_id).response_body


def test_a_push_service_error_is_retried(vapid_keys, push_to, http_server):
    http_server.script(Reply(status=503, body=b""))
    _customer, message_id = push_to(Browser(http_server.url("/push/x")))
    assert deliver_due()["retried"] == 1
    assert Message.objects.get(id=message_id).reason == "http_503"


def test_a_private_endpoint_is_refused_unless_allow_listed(vapid_keys, push_to, http_server, settings):
    settings.MAESTRA_WEBPUSH_ALLOWED_HOSTS = []
    _customer, message_id = push_to(Browser(http_server.url("/push/x")))
    assert deliver_due()["failed"] == 1
    assert Message.objects.get(id=message_id).reason.startswith("destination_not_allowed")
    assert http_server.requests == []


def test_broken_keys_fail_that_subscription(vapid_keys, push_to, http_server):
    browser = Browser(http_server.url("/push/x"))
    browser.subscription["keys"]["p256dh"] = b64url(b"short")
    _customer, message_id = push_to(browser)
    assert deliver_due()["failed"] == 1
    assert Message.objects.get(id=message_id).reason.startswith("push_invalid_subscription")
    assert http_server.requests == []


def test_without_a_vapid_key_messages_wait(vapid_keys, push_to, http_server, settings):
    settings.MAESTRA_VAPID_PRIVATE_KEY = ""
    _customer, message_id = push_to(Browser(http_server.url("/push/x")))
    assert deliver_due()["retried"] == 1
    assert Message.objects.get(id=message_id).reason.startswith(
        "backend_misconfigured: MAESTRA_VAPID_PRIVATE_KEY"
    )


def test_generated_keys_are_a_matching_pair(vapid_keys):
    vapid = Vapid.from_string(vapid_keys["MAESTRA_VAPID_PRIVATE_KEY"])
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert b64url(public) == vapid_keys["MAESTRA_VAPID_PUBLIC_KEY"]
    assert len(b64url_decode(vapid_keys["MAESTRA_VAPID_PRIVATE_KEY"])) == 32
