"""Every service handles a batch in a fixed number of queries: 5,000
customers cost exactly what 1,000 cost. (Speed is for the benchmark script;
these tests pin the shape of the work.)"""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer, Event, PointsEntry, PromoCode, SegmentMembership, Subscription
from customers.services.customers import ensure_customers, upsert_customers
from customers.services.events import emit_events, store_events
from customers.services.fields import set_field
from customers.services.points import grant_points, points_balances
from customers.services.promo_codes import add_promo_codes, issue_promo_codes
from customers.services.segments import add_to_segment, remove_from_segment
from customers.services.subscriptions import set_subscriptions

pytestmark = pytest.mark.django_db

SIZES = (1000, 5000)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def queries_for_each_size(run: Callable[[int, str], object], bound: int) -> list[int]:
    """Run `run(size, tag)` for each size (tag keeps the batches apart);
    return the query counts, each checked against `bound`."""
    counts = []
    for size in SIZES:
        with CaptureQueriesContext(connection) as captured:
            run(size, f"s{size}-")
        counts.append(len(captured))
        assert len(captured) <= bound, [q["sql"][:120] for q in captured]
    return counts


@pytest.fixture
def customer_ids(make_customers) -> dict[int, list[int]]:
    """size -> ids of that many customers of their own."""
    return {size: [c.id for c in make_customers(size, prefix=f"s{size}-")] for size in SIZES}


def test_upserting_new_customers_with_subscriptions_takes_the_same_queries():
    def run(size, tag):
        upsert_customers(
            rows=[
                {
                    "external_id": f"new-{tag}{i}",
                    "email": f"x{i}@example.com",
                    "fields": {"i": i},
                    "subscriptions": {"email": "subscribed", "sms": "unsubscribed"},
                }
                for i in range(size)
            ]
        )

    counts = queries_for_each_size(run, bound=8)
    assert counts[0] == counts[1]
    assert Customer.objects.count() == sum(SIZES)
    assert Subscription.objects.count() == 2 * sum(SIZES)
    assert Event.objects.filter(type="subscription_changed").count() == 2 * sum(SIZES)


def test_upserting_existing_customers_takes_the_same_queries(customer_ids):
    def run(size, tag):
        upsert_customers(
            rows=[
                {
                    "external_id": f"{tag}{i}",
                    "last_name": "Lee",
                    "fields": {"v": 2},
                    "subscriptions": {"email": "subscribed"},
                }
                for i in range(size)
            ]
        )

    counts = queries_for_each_size(run, bound=8)
    assert counts[0] == counts[1]
    assert Customer.objects.filter(last_name="Lee", fields={"v": 2}).count() == sum(SIZES)


def test_ensuring_customers_takes_the_same_queries(customer_ids):
    def run(size, tag):
        # half exist, half are new
        ensure_customers(
            external_ids=[f"{tag}{i}" for i in range(size // 2)] + [f"n{tag}{i}" for i in range(size // 2)]
        )

    counts = queries_for_each_size(run, bound=6)
    assert counts[0] == counts[1]
    assert Event.objects.filter(type="customer_created").count() == sum(SIZES) // 2


def test_setting_subscriptions_takes_the_same_queries(customer_ids):
    counts = queries_for_each_size(
        lambda size, tag: set_subscriptions(
            changes=[(cid, "email", "subscribed") for cid in customer_ids[size]]
        ),
        bound=6,
    )
    assert counts[0] == counts[1]
    assert Subscription.objects.count() == sum(SIZES)


def test_storing_events_takes_the_same_queries(customer_ids):
    def run(size, tag):
        store_events(
            events=[
                {
                    "external_id": f"{tag}{cid}",
                    "customer_id": cid,
                    "type": "order",
                    "occurred_at": T0,
                    "payload": {},
                }
                for cid in customer_ids[size]
            ]
        )

    counts = queries_for_each_size(run, bound=3)
    assert counts[0] == counts[1]
    assert Event.objects.count() == sum(SIZES)


def test_emitting_events_takes_the_same_queries(customer_ids):
    counts = queries_for_each_size(
        lambda size, tag: emit_events(customer_ids=customer_ids[size], event_type="e", payload={}, depth=1),
        bound=3,
    )
    assert counts[0] == counts[1]


def test_points_take_the_same_queries(customer_ids):
    def run(size, tag):
        grant_points(
            entries=[
                {"customer_id": cid, "amount": 5, "reason": "", "expires_at": None, "source_key": f"k{cid}"}
                for cid in customer_ids[size]
            ]
        )
        assert set(points_balances(customer_ids=customer_ids[size]).values()) == {5}

    counts = queries_for_each_size(run, bound=3)
    assert counts[0] == counts[1]
    assert PointsEntry.objects.count() == sum(SIZES)


def test_promo_codes_take_the_same_queries(customer_ids, make_pool):
    make_pool("big")

    def run(size, tag):
        add_promo_codes(pool_slug="big", codes=[f"{tag}{i}" for i in range(size)])
        issued = issue_promo_codes(
            pool_slug="big", requests=[(cid, f"key{cid}") for cid in customer_ids[size]]
        )
        assert None not in issued.values()

    counts = queries_for_each_size(run, bound=10)
    assert counts[0] == counts[1]
    assert PromoCode.objects.filter(issued_at__isnull=False).count() == sum(SIZES)


def test_set_field_takes_the_same_queries(customer_ids):
    def run(size, tag):
        set_field(customer_ids=customer_ids[size], field="vip", value=True)
        set_field(customer_ids=customer_ids[size], field="timezone", value="Europe/Paris")

    counts = queries_for_each_size(run, bound=2)
    assert counts[0] == counts[1]
    assert Customer.objects.filter(fields__vip=True, timezone="Europe/Paris").count() == sum(SIZES)


def test_segments_take_the_same_queries(customer_ids, static_segment):
    def run(size, tag):
        add_to_segment(slug="vip", customer_ids=customer_ids[size])
        remove_from_segment(slug="vip", customer_ids=customer_ids[size][: size // 2])

    counts = queries_for_each_size(run, bound=4)
    assert counts[0] == counts[1]
    assert SegmentMembership.objects.count() == sum(SIZES) // 2
