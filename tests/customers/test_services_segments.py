from datetime import UTC, datetime

import pytest
import time_machine

from customers.errors import InvalidInput, SegmentNotStatic, UnknownSegment
from customers.models import SegmentMembership
from customers.services.segments import add_to_segment, remove_from_segment

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 5, 5, 8, 0, tzinfo=UTC)


def members(slug: str = "vip") -> set[str]:
    return set(
        SegmentMembership.objects.filter(segment__slug=slug).values_list("customer__external_id", flat=True)
    )


def test_it_adds_customers_to_a_static_segment_once(make_customers, static_segment):
    a, b, c = make_customers(3)
    with time_machine.travel(T0, tick=False):
        assert add_to_segment(slug="vip", customer_ids=[a.id, b.id, a.id]) == 2
    assert members() == {"c0", "c1"}
    assert SegmentMembership.objects.get(customer=a).added_at == T0
    assert add_to_segment(slug="vip", customer_ids=[a.id, b.id, c.id]) == 1
    assert members() == {"c0", "c1", "c2"}


def test_it_skips_unknown_customers_when_adding(make_customers, static_segment):
    [a] = make_customers(1)
    assert add_to_segment(slug="vip", customer_ids=[a.id, a.id + 500]) == 1
    assert members() == {"c0"}


def test_it_removes_customers_from_a_static_segment(make_customers, static_segment):
    a, b, c = make_customers(3)
    add_to_segment(slug="vip", customer_ids=[a.id, b.id, c.id])
    assert remove_from_segment(slug="vip", customer_ids=[a.id, b.id, 10**9]) == 2
    assert members() == {"c2"}
    assert remove_from_segment(slug="vip", customer_ids=[a.id]) == 0


def test_it_leaves_other_segments_alone(make_customers, static_segment):
    from customers.models import Segment

    Segment.objects.create(slug="other", name="Other")
    [a] = make_customers(1)
    add_to_segment(slug="vip", customer_ids=[a.id])
    add_to_segment(slug="other", customer_ids=[a.id])
    remove_from_segment(slug="vip", customer_ids=[a.id])
    assert members("other") == {"c0"}
    assert members("vip") == set()


def test_it_refuses_rule_segments(make_customers, rule_segment):
    [a] = make_customers(1)
    with pytest.raises(SegmentNotStatic) as raised:
        add_to_segment(slug="gold", customer_ids=[a.id])
    assert "rule-based" in str(raised.value)
    with pytest.raises(SegmentNotStatic):
        remove_from_segment(slug="gold", customer_ids=[a.id])
    assert not SegmentMembership.objects.exists()


def test_it_refuses_unknown_segments(make_customers):
    [a] = make_customers(1)
    with pytest.raises(UnknownSegment) as raised:
        add_to_segment(slug="ghost", customer_ids=[a.id])
    assert raised.value.errors == [{"field": "segment", "message": "segment 'ghost' does not exist"}]
    with pytest.raises(UnknownSegment):
        remove_from_segment(slug="ghost", customer_ids=[])


def test_it_does_nothing_for_no_customers(static_segment):
    assert add_to_segment(slug="vip", customer_ids=[]) == 0
    assert remove_from_segment(slug="vip", customer_ids=[]) == 0


def test_it_rejects_customer_ids_that_are_not_integers(make_customers, static_segment):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput):
        add_to_segment(slug="vip", customer_ids=[a.id, "x"])
    with pytest.raises(InvalidInput):
        remove_from_segment(slug="vip", customer_ids=[None])
    assert not SegmentMembership.objects.exists()
