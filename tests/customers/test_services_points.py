from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from customers.errors import InvalidInput
from customers.models import PointsEntry
from customers.services.points import grant_points, points_balances

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 8, 10, 13, 0, tzinfo=UTC)


def entry(customer_id: int, amount: int = 100, source_key: str | None = None, **changes) -> dict:
    base = {
        "customer_id": customer_id,
        "amount": amount,
        "reason": "welcome bonus",
        "expires_at": None,
        "source_key": source_key,
    }
    return {**base, **changes}


def test_it_grants_points(make_customers):
    a, b = make_customers(2)
    expiry = T0 + timedelta(days=30)
    with time_machine.travel(T0, tick=False):
        written = grant_points(
            entries=[entry(a.id, 100, "r1:n:0:1", expires_at=expiry), entry(b.id, -20, "r2:n:0:1")]
        )
    assert written == 2
    first = PointsEntry.objects.get(customer=a)
    assert (first.amount, first.reason, first.expires_at, first.created_at, first.source_key) == (
        100,
        "welcome bonus",
        expiry,
        T0,
        "r1:n:0:1",
    )
    assert PointsEntry.objects.get(customer=b).amount == -20


def test_it_grants_once_per_source_key(make_customers):
    [a] = make_customers(1)
    assert grant_points(entries=[entry(a.id, 10, "k1"), entry(a.id, 10, "k1"), entry(a.id, 5, "k2")]) == 2
    assert grant_points(entries=[entry(a.id, 10, "k1"), entry(a.id, 5, "k2")]) == 0
    assert PointsEntry.objects.count() == 2


def test_it_grants_every_time_without_a_source_key(make_customers):
    [a] = make_customers(1)
    assert grant_points(entries=[entry(a.id), entry(a.id)]) == 2
    assert grant_points(entries=[entry(a.id)]) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 2**31}, "amount"),
        ({"amount": -(10**30)}, "amount"),
        ({"customer_id": "1"}, "customer_id"),
        ({"expires_at": datetime(2025, 1, 1)}, "expires_at"),
        ({"expires_at": "2025-01-01"}, "expires_at"),
        ({"reason": "x" * 201}, "reason"),
        ({"source_key": ""}, "source_key"),
        ({"bonus": 1}, "bonus"),
    ],
)
def test_it_rejects_a_bad_entry_and_writes_nothing(make_customers, changes, field):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput) as raised:
        grant_points(entries=[entry(a.id, source_key="ok"), {**entry(a.id), **changes}])
    assert (raised.value.errors[0]["index"], raised.value.errors[0]["field"]) == (1, field)
    assert not PointsEntry.objects.exists()


def test_it_rejects_points_for_an_unknown_customer(make_customers):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput) as raised:
        grant_points(entries=[entry(a.id), entry(a.id + 50)])
    assert raised.value.errors[0]["field"] == "customer_id"
    assert not PointsEntry.objects.exists()


def test_balances_sum_the_unexpired_entries(make_customers):
    a, b, c = make_customers(3)
    with time_machine.travel(T0, tick=False):
        grant_points(
            entries=[
                entry(a.id, 100),
                entry(a.id, 50, expires_at=T0 + timedelta(days=1)),
                entry(a.id, 30, expires_at=T0 - timedelta(seconds=1)),
                entry(a.id, -40),
                entry(b.id, 7),
            ]
        )
        assert points_balances(customer_ids=[a.id, b.id, c.id]) == {a.id: 110, b.id: 7, c.id: 0}
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        # expiring exactly now counts as expired
        assert points_balances(customer_ids=[a.id]) == {a.id: 60}


def test_balances_of_no_customers_are_empty():
    assert points_balances(customer_ids=[]) == {}
