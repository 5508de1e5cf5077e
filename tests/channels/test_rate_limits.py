"""Per-provider send rate limits (MAESTRA_RATE_LIMITS): the setting is
checked at start, the token buckets (a database row, or Redis) grant at most
the limit, and two delivery workers sending to a real SMTP server on loopback
never make it receive more than the limit in any second."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from channels.checks import check_policy
from channels.models import Message, Template
from channels.outbox import queue_messages
from channels.ratelimit import DatabaseBuckets, Rate, RateLimitError, RedisBuckets, parse_rate_limits
from customers.models import Customer
from tests.channels.conftest import free_port, send_request
from tests.channels.delivery_workers import run_two_workers

# Redis for the tests that need one: db 13 unless told otherwise; skipped
# when nothing answers there.
TEST_REDIS_URL = os.environ.get("MAESTRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def redis_or_skip() -> str:
    import redis

    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {TEST_REDIS_URL}")
    return TEST_REDIS_URL


# --- the setting ---------------------------------------------------------------------


def test_the_setting_is_parsed():
    assert parse_rate_limits("") == {}
    assert parse_rate_limits("email=50/s, sms=600/m ,webhook=10/h") == {
        "email": Rate(50, 1),
        "sms": Rate(600, 60),
        "webhook": Rate(10, 3600),
    }


@pytest.mark.parametrize(
    "value",
    ["email", "email=50", "email=0/s", "email=50/d", "fax=1/s", "email=1/s,email=2/s", "email=-1/s", 5],
)
def test_a_bad_setting_is_a_check_error_naming_it(settings, value):
    with pytest.raises(RateLimitError):
        parse_rate_limits(value)
    settings.MAESTRA_RATE_LIMITS = value
    [error] = check_policy()
    assert error.id == "channels.E004"
    assert error.msg.startswith(f"MAESTRA_RATE_LIMITS={value!r}: ")


def test_the_bucket_is_sized_so_that_no_window_of_the_period_holds_more_than_the_limit():
    for limit in (1, 2, 9, 10, 14, 50, 1000):
        rate = Rate(limit, 1)
        # A full bucket, then one token every 1/refill inside the window.
        most = rate.capacity + int(-(-rate.refill * 1 // 1)) - 1
        assert most == limit, (limit, rate)


# --- the buckets -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_database_bucket_grants_its_capacity_then_refills_with_time():
    buckets = DatabaseBuckets()
    rate = Rate(50, 1)  # capacity 5, 46 tokens a second
    with time_machine.travel(datetime(2026, 5, 4, 12, 0, tzinfo=UTC), tick=False) as clock:
        assert buckets.take("email", rate, 8) == (5, pytest.approx(1 / 46))
        granted, wait = buckets.take("email", rate, 1)
        assert granted == 0 and wait == pytest.approx(1 / 46)
        clock.shift(timedelta(milliseconds=50))  # 2.3 tokens
        assert buckets.take("email", rate, 5)[0] == 2
        clock.shift(timedelta(seconds=10))  # never more than the capacity
        assert buckets.take("email", rate, 50)[0] == 5
    # Another channel, or another limit, is another bucket.
    assert buckets.take("sms", rate, 5)[0] == 5


def test_the_redis_bucket_grants_its_capacity_then_refills_with_time():
    import redis

    url = redis_or_skip()
    redis.Redis.from_url(url).delete("maestra:rate:email:50/1")
    buckets = RedisBuckets(url)
    try:
        rate = Rate(50, 1)
        granted, _wait = buckets.take("email", rate, 8)
        assert granted == 5
        granted, wait = buckets.take("email", rate, 1)
        assert granted == 0 and 0 < wait <= 1 / 46
        before = time.monotonic()
        time.sleep(0.05)  # 2.3 tokens on Redis's own clock (more if the machine is slow)
        granted = buckets.take("email", rate, 5)[0]
        assert 2 <= granted <= min(5, int(46 * (time.monotonic() - before)) + 1)
        assert buckets.take("email", rate, 5)[0] == 0
    finally:
        buckets.close()


# --- two workers, a real SMTP server ------------------------------------------------

LIMIT = 20  # per second
MESSAGES = 110


class ArrivalClock:
    """aiosmtpd handler: the wall-clock time each message arrives."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    async def handle_DATA(self, server, session, envelope):
        self.arrivals.append(time.time())
        return "250 Message accepted"


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["database", "redis"])
def test_two_workers_never_exceed_the_limit_at_the_server(settings, store):
    from aiosmtpd.controller import Controller

    settings.REDIS_URL = redis_or_skip() if store == "redis" else ""
    if store == "redis":
        import redis

        redis.Redis.from_url(settings.REDIS_URL).delete(f"maestra:rate:email:{LIMIT}/1")
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = ArrivalClock()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 30
    settings.MAESTRA_RATE_LIMITS = f"email={LIMIT}/s"
    settings.MAESTRA_DELIVERY_CHUNK = 10
    try:
        _queue_service_emails(MESSAGES)
        started = time.time()
        results = run_two_workers(limit=1000)
        elapsed = time.time() - started
    finally:
        controller.stop()
    sent = {name: counts["sent"] for name, counts in results.items()}
    per_second = Counter(int(t) for t in handler.arrivals)
    print(
        f"{store}: {MESSAGES} messages in {elapsed:.2f} s by {sent}; arrivals per second {sorted(per_second.items())}"
    )
    assert len(handler.arrivals) == MESSAGES == sum(sent.values())
    assert min(sent.values()) > 0, "one worker did everything: the shared bucket was not tested"
    # Never more than the limit in a second at the server …
    assert max(per_second.values()) <= LIMIT
    # … and the limit did pace them: without it the sends take well under a second.
    assert elapsed >= (MESSAGES - 2 * LIMIT) / LIMIT
    assert Counter(Message.objects.values_list("status", flat=True)) == {"sent": MESSAGES}


def _queue_service_emails(count: int) -> None:
    Template.objects.create(slug="r", name="r", channel="email", purpose="service", subject="S", text="Hi")
    Customer.objects.bulk_create(
        Customer(external_id=f"r{i}", email=f"r{i}@example.com") for i in range(count)
    )
    requests = [
        send_request(cid, "r", run_id=cid)
        for cid in Customer.objects.order_by("id").values_list("id", flat=True)
    ]
    results = queue_messages(requests=requests)
    assert Counter(r.status for r in results.values()) == {"queued": count}
