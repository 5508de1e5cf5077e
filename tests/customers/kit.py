"""Shared pieces of the customers tests: rows in every customers table,
promo pools with codes, and the rule tests' clock and selection check."""

from datetime import UTC, datetime

from customers import models
from customers.rules import evaluate_many, to_q

# The rule tests' "now", frozen by the `rules_clock` fixture (conftest.py).
# Half a second past noon: rules compare at second precision.
RULES_NOW = datetime(2024, 6, 15, 12, 0, 0, 500000, tzinfo=UTC)

ROW_MOMENT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)

# Every customers table, in the order the app declares them.
MODELS = [
    models.Customer,
    models.Subscription,
    models.Segment,
    models.SegmentMembership,
    models.Event,
    models.PointsEntry,
    models.PromoPool,
    models.PromoCode,
]


def add_rows(count: int, *, start: int = 0) -> None:
    """`count` rows of every customers table."""
    segment, _ = models.Segment.objects.get_or_create(slug="newsletter", defaults={"name": "Newsletter"})
    pool, _ = models.PromoPool.objects.get_or_create(slug="welcome", defaults={"name": "Welcome"})
    for index in range(start, start + count):
        customer = models.Customer.objects.create(
            external_id=f"c{index}", email=f"c{index}@example.com", first_name="Ann", last_name=f"Lee{index}"
        )
        models.Subscription.objects.create(customer=customer, channel="email", status="subscribed")
        models.SegmentMembership.objects.create(segment=segment, customer=customer)
        models.Event.objects.create(customer=customer, type="order_created", occurred_at=ROW_MOMENT)
        models.PointsEntry.objects.create(customer=customer, amount=10, reason="welcome")
        models.PromoCode.objects.create(
            pool=pool, code=f"CODE{index}", customer=customer, issued_at=ROW_MOMENT
        )
        # Segments and pools are few; give them rows too so their counts grow.
        models.Segment.objects.create(slug=f"s{index}", name=f"Segment {index}")
        models.PromoPool.objects.create(slug=f"p{index}", name=f"Pool {index}")


def promo_pool(slug: str, *issued_at: datetime | None) -> models.PromoPool:
    """A pool with one code per `issued_at`: None is a free code, a moment
    the time the code was given out."""
    pool = models.PromoPool.objects.create(slug=slug, name=slug)
    models.PromoCode.objects.bulk_create(
        [
            models.PromoCode(pool=pool, code=f"{slug}-{index}", issued_at=at)
            for index, at in enumerate(issued_at)
        ]
    )
    return pool


def select(rule, *, events=None) -> set[str]:
    """External ids matched by the rule; SQL (`to_q`) and Python
    (`evaluate_many`) must agree. With `events` given only Python can read
    them, so only Python is asked."""
    ids = list(models.Customer.objects.values_list("id", flat=True))
    by_python = evaluate_many(rule, ids, events=events)
    names = dict(models.Customer.objects.values_list("id", "external_id"))
    if events is None:
        by_sql = set(models.Customer.objects.filter(to_q(rule)).values_list("id", flat=True))
        assert by_sql == by_python, rule
    return {names[customer_id] for customer_id in by_python}
