import threading
from collections.abc import Callable

import pytest
import time_machine
from django.db import connection

from customers.models import Customer, PromoCode, PromoPool, Segment
from tests.customers.kit import RULES_NOW


@pytest.fixture
def make_customers() -> Callable[..., list[Customer]]:
    """n customers with external ids `<prefix>0 … <prefix>n-1`, in one INSERT per 500."""

    def make(n: int, *, prefix: str = "c", **attributes) -> list[Customer]:
        return Customer.objects.bulk_create(
            [Customer(external_id=f"{prefix}{i}", **attributes) for i in range(n)], batch_size=500
        )

    return make


@pytest.fixture
def make_pool() -> Callable[..., PromoPool]:
    def make(slug: str = "welcome", *, codes: int = 0) -> PromoPool:
        pool = PromoPool.objects.create(slug=slug, name=slug.title())
        PromoCode.objects.bulk_create(
            [PromoCode(pool=pool, code=f"{slug.upper()}-{i:05d}") for i in range(codes)], batch_size=500
        )
        return pool

    return make


@pytest.fixture
def static_segment() -> Segment:
    return Segment.objects.create(slug="vip", name="VIP", kind=Segment.Kind.STATIC)


@pytest.fixture
def rule_segment() -> Segment:
    return Segment.objects.create(
        slug="gold", name="Gold", kind=Segment.Kind.RULE, rule={"field": "points", "op": "gte", "value": 1000}
    )


@pytest.fixture
def run_in_threads() -> Callable[..., list]:
    """Run `target(i)` in n threads started together; each thread uses its
    own database connection and closes it at the end. Returns the results in
    thread order and re-raises the first exception of any thread."""

    def run(n: int, target: Callable[[int], object]) -> list:
        barrier = threading.Barrier(n)
        results: list = [None] * n
        failures: list[BaseException] = []

        def work(i: int) -> None:
            try:
                barrier.wait(timeout=30)
                results[i] = target(i)
            except BaseException as exc:
                failures.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        if failures:
            raise failures[0]
        return results

    return run


@pytest.fixture
def rules_clock():
    """The rule tests' clock stands still at RULES_NOW."""
    with time_machine.travel(RULES_NOW, tick=False):
        yield
