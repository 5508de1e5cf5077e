"""A provider's batch API through BatchJsonBackend, against a local HTTP server:
many messages per request, one kept-alive connection, per-item outcomes."""

import json

import pytest

from channels.backends import BackendMisconfigured
from channels.backends.batch_json import BatchJsonBackend
from channels.delivery import deliver_all_due
from channels.models import Message
from channels.outbox import queue_messages
from tests.channels.conftest import Reply, send_request, use_backend

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch_gateway(settings, http_server):
    use_backend(settings, "channels.backends.batch_json.BatchJsonBackend", "sms")
    sms = dict(
        url=http_server.url("/v1/batch"),
        headers={"Authorization": "Bearer t"},
        item={"to": "{to}", "text": "{text}", "ref": "{idempotency_key}"},
        envelope="messages",
        batch_size=10,
        results="data.results",
        id_field="sid",
        error_field="error",
    )
    settings.MAESTRA_BATCH_JSON = {"sms": sms}
    return http_server


@pytest.fixture
def queue_sms(make_template, make_customer):
    make_template("code", channel="sms", purpose="service", text="Code {{ promo_code }}")

    def queue(n: int) -> list[int]:
        requests = [
            send_request(
                make_customer(phone=f"+49 151 {1000000 + i}").id,
                "code",
                "sms",
                run_id=i + 1,
                context={"promo_code": f"P{i}"},
            )
            for i in range(n)
        ]
        results = queue_messages(requests=requests)
        return [results[r.key].id for r in requests]

    return queue


def answer(results: list[dict]) -> Reply:
    return Reply(body=json.dumps({"data": {"results": results}}).encode())


def test_messages_go_in_batches_over_one_connection_with_per_item_outcomes(batch_gateway, queue_sms):
    ids = queue_sms(25)
    # Second batch: its 4th item refused by the provider.
    second = [{"sid": f"s{i}"} for i in range(10)]
    second[3] = {"error": "invalid number"}
    batch_gateway.script(
        answer([{"sid": f"f{i}"} for i in range(10)]),
        answer(second),
        answer([{"sid": f"t{i}"} for i in range(5)]),
    )
    counts = deliver_all_due()
    assert (counts["sent"], counts["failed"]) == (24, 1)
    requests = batch_gateway.requests
    assert [len(r.json()["messages"]) for r in requests] == [10, 10, 5]
    first = requests[0]
    assert first.headers["authorization"] == "Bearer t"
    assert first.json()["messages"][0] == {
        "to": "+491511000000",
        "text": "Code P0",
        "ref": f"maestra-{ids[0]}",
    }
    assert first.headers["idempotency-key"] == f"maestra-{ids[0]}..maestra-{ids[9]}"
    rows = {m.id: m for m in Message.objects.all()}
    assert rows[ids[0]].provider_id == "f0" and rows[ids[0]].status == "sent"
    assert rows[ids[13]].status == "failed" and rows[ids[13]].reason == "provider_error: invalid number"
    assert rows[ids[24]].provider_id == "t4"


def test_a_batch_answered_429_is_retried_whole_and_keep_alive_reuses_one_connection(
    batch_gateway, queue_sms, settings
):
    ids = queue_sms(20)
    batch_gateway.script(Reply(status=429, headers={"Retry-After": "600"}, body=b"slow down"))
    counts = deliver_all_due()
    assert (counts["sent"], counts["retried"]) == (10, 10)
    retried = Message.objects.filter(id__in=ids[:10])
    assert set(retried.values_list("status", "reason", "response_status")) == {("queued", "http_429", 429)}
    # One client for the drain: the second batch went over the same connection.
    assert len(batch_gateway.requests) == 2
    assert len({r.peer for r in batch_gateway.requests}) == 1


def test_without_a_results_list_the_status_speaks_for_the_batch(batch_gateway, queue_sms, settings):
    settings.MAESTRA_BATCH_JSON["sms"]["results"] = ""
    queue_sms(3)
    assert deliver_all_due()["sent"] == 3


def test_a_backend_without_url_or_with_a_bad_size_is_misconfigured(settings):
    settings.MAESTRA_BATCH_JSON = {}
    with pytest.raises(BackendMisconfigured):
        BatchJsonBackend(channel="sms")
    settings.MAESTRA_BATCH_JSON = {"sms": {"url": "http://127.0.0.1:1/", "batch_size": "many"}}
    with pytest.raises(BackendMisconfigured):
        BatchJsonBackend(channel="sms")
