import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from channels.delivery import deliver_due
from channels.models import Message
from channels.outbox import queue_messages
from tests.channels.conftest import Reply, send_request

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def allow_local(settings, http_server):
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{http_server.port}"]
    settings.MAESTRA_RETRY_DELAY = 300
    settings.MAESTRA_MAX_RETRIES = 3
    return http_server


@pytest.fixture
def hook(make_template, make_customer, http_server):
    """Queue one webhook message to the local server; returns its row."""

    def make(*, method="POST", text=None, headers=None, url=None) -> Message:
        template = make_template(
            f"hook-{method.lower()}",
            channel="webhook",
            method=method,
            url=url or http_server.url("/hooks/{{ customer.external_id }}"),
            headers=headers if headers is not None else {"Authorization": "Bearer abc"},
            text=text
            if text is not None
            else '{"customer": {{ customer.external_id|json }}, "total": {{ event.total }}}',
        )
        customer = make_customer(external_id="cust-1")
        req = send_request(customer.id, template.slug, "webhook", run_id=1, context={"event": {"total": 99}})
        return Message.objects.get(id=queue_messages(requests=[req])[req.key].id)

    return make


def test_it_posts_a_signed_body(allow_local, hook):
    with time_machine.travel(T0, tick=False):
        row = hook()
        assert deliver_due() == {"claimed": 1, "sent": 1, "retried": 0, "failed": 0, "expired": 0}
    [got] = allow_local.requests
    assert (got.method, got.path) == ("POST", "/hooks/cust-1")
    assert got.json() == {"customer": "cust-1", "total": 99}
    secret = row.template.secret
    expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-maestra-signature"] == expected
    assert got.headers["idempotency-key"] == f"maestra-{row.id}"
    assert got.headers["authorization"] == "Bearer abc"
    assert got.headers["content-type"] == "application/json"
    row.refresh_from_db()
    assert (row.status, row.response_status, row.attempts, row.sent_at) == ("sent", 200, 1, T0)
    assert json.loads(row.response_body) == {"id": "prov-1"}
    assert row.lease_until is None
    # The secret never lands on the row.
    assert secret not in json.dumps(row.rendered)


def test_a_500_is_retried_after_the_delay(allow_local, hook):
    allow_local.script(Reply(status=500, body=b"oops"))
    with time_machine.travel(T0, tick=False):
        row = hook()
        assert deliver_due()["retried"] == 1
        row.refresh_from_db()
        assert (row.status, row.reason, row.attempts, row.response_status) == ("queued", "http_500", 1, 500)
        assert row.next_attempt_at == T0 + timedelta(seconds=300)
        # Not due yet: nothing is sent again.
        assert deliver_due()["claimed"] == 0
    with time_machine.travel(T0 + timedelta(seconds=301), tick=False):
        assert deliver_due()["sent"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.reason) == ("sent", 2, "")
    assert len(allow_local.requests) == 2
    # Same row, same idempotency key on the retry.
    assert {r.headers["idempotency-key"] for r in allow_local.requests} == {f"maestra-{row.id}"}


def test_a_404_fails_at_once(allow_local, hook):
    allow_local.script(Reply(status=404, body=b"no such hook"))
    with time_machine.travel(T0, tick=False):
        row = hook()
        assert deliver_due()["failed"] == 1
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        assert deliver_due()["claimed"] == 0
    row.refresh_from_db()
    assert (row.status, row.reason, row.response_body) == ("failed", "http_404", "no such hook")
    assert len(allow_local.requests) == 1


def delivered_at_t0(hook, outcome: str, **hook_fields) -> Message:
    """One webhook message queued and delivered at T0 (`outcome` counted
    once), read back."""
    with time_machine.travel(T0, tick=False):
        row = hook(**hook_fields)
        assert deliver_due()[outcome] == 1
    row.refresh_from_db()
    return row


def test_a_429_is_retried_honouring_retry_after(allow_local, hook):
    allow_local.script(Reply(status=429, headers={"Retry-After": "600"}))
    row = delivered_at_t0(hook, "retried")
    assert (row.status, row.reason) == ("queued", "http_429")
    assert row.next_attempt_at == T0 + timedelta(seconds=600)


def test_a_timeout_is_retried(allow_local, hook, settings):
    settings.MAESTRA_WEBHOOK_TIMEOUT = 0.3
    allow_local.script(Reply(delay=1.0))
    row = delivered_at_t0(hook, "retried")
    assert row.status == "queued"
    assert row.reason.startswith("timeout")


def test_a_refused_connection_is_retried(settings, hook, http_server):
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    row = delivered_at_t0(hook, "retried", url="http://127.0.0.1:1/closed")
    assert row.reason.startswith("connection_error")


def test_it_gives_up_after_the_last_retry(allow_local, hook):
    allow_local.script(*[Reply(status=503) for _ in range(4)])
    with time_machine.travel(T0, tick=False) as traveller:
        row = hook()
        for _ in range(4):
            deliver_due()
            traveller.shift(timedelta(seconds=301))
        assert deliver_due()["claimed"] == 0
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 4)
    assert row.reason == "http_503 (gave up after 4 attempts)"
    assert len(allow_local.requests) == 4


def test_loopback_is_refused_unless_allow_listed(settings, hook, http_server):
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = []
    row = delivered_at_t0(hook, "failed")
    assert row.status == "failed"
    assert row.reason.startswith("destination_not_allowed")
    assert http_server.requests == []


@pytest.mark.parametrize("entry", ["127.0.0.0/8", "127.0.0.1", "PORT"])
def test_allow_list_takes_cidr_ip_or_host_port(settings, hook, http_server, entry):
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = [entry.replace("PORT", f"127.0.0.1:{http_server.port}")]
    hook()
    assert deliver_due()["sent"] == 1


def test_allow_listing_another_port_does_not_open_this_one(settings, hook, http_server):
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{http_server.port + 1}", "10.0.0.0/8"]
    hook()
    assert deliver_due()["failed"] == 1
    assert http_server.requests == []


def test_localhost_by_name_is_refused(settings, hook, http_server):
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = []
    row = hook(url=f"http://localhost:{http_server.port}/x")
    deliver_due()
    row.refresh_from_db()
    assert row.reason.startswith("destination_not_allowed")


def test_the_response_body_is_capped(allow_local, hook):
    allow_local.script(Reply(body=b"x" * 100_000))
    row = hook()
    deliver_due()
    row.refresh_from_db()
    assert row.status == "sent"
    assert row.response_body == "x" * 4096


def test_a_redirect_is_not_followed(allow_local, hook):
    allow_local.script(Reply(status=302, headers={"Location": "http://10.0.0.1/"}))
    row = hook()
    deliver_due()
    row.refresh_from_db()
    assert (row.status, row.reason) == ("failed", "http_302")
    assert len(allow_local.requests) == 1


def test_get_sends_no_body_and_signs_the_empty_body(allow_local, hook):
    row = hook(method="GET", text="ignored", headers={})
    deliver_due()
    [got] = allow_local.requests
    assert (got.method, got.body) == ("GET", b"")
    secret = row.template.secret
    assert (
        got.headers["x-maestra-signature"]
        == "sha256=" + hmac.new(secret.encode(), b"", hashlib.sha256).hexdigest()
    )


def test_a_plain_text_body_gets_a_text_content_type(allow_local, hook):
    hook(text="hello {{ customer.external_id }}", headers={})
    deliver_due()
    [got] = allow_local.requests
    assert got.body == b"hello cust-1"
    assert got.headers["content-type"].startswith("text/plain")


def test_a_deleted_template_fails_the_message(allow_local, hook):
    row = hook()
    row.template.delete()
    deliver_due()
    row.refresh_from_db()
    assert (row.status, row.reason) == ("failed", "template_missing: no signing secret")
    assert allow_local.requests == []
