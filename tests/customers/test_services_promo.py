from collections import Counter
from datetime import UTC, datetime

import pytest
import time_machine

from customers.errors import InvalidInput, UnknownPromoPool
from customers.models import PromoCode
from customers.services.promo_codes import add_promo_codes, issue_promo_codes, pool_available

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)


def test_it_issues_free_codes_in_upload_order(make_customers, make_pool):
    a, b = make_customers(2)
    make_pool("welcome", codes=3)
    with time_machine.travel(T0, tick=False):
        issued = issue_promo_codes(pool_slug="welcome", requests=[(a.id, "run1:s:0:1"), (b.id, "run2:s:0:1")])
    assert issued == {"run1:s:0:1": "WELCOME-00000", "run2:s:0:1": "WELCOME-00001"}
    code = PromoCode.objects.get(code="WELCOME-00000")
    assert (code.customer_id, code.issue_key, code.issued_at) == (a.id, "run1:s:0:1", T0)
    assert pool_available(slugs=["welcome"]) == {"welcome": 1}


def test_reissuing_a_key_returns_the_same_code(make_customers, make_pool):
    a, b = make_customers(2)
    make_pool("welcome", codes=5)
    first = issue_promo_codes(pool_slug="welcome", requests=[(a.id, "k1")])
    again = issue_promo_codes(pool_slug="welcome", requests=[(b.id, "k2"), (a.id, "k1")])
    assert again["k1"] == first["k1"]
    assert again["k2"] not in (None, first["k1"])
    assert PromoCode.objects.filter(issued_at__isnull=False).count() == 2
    # a key repeated within the batch for the same customer is one code
    assert issue_promo_codes(pool_slug="welcome", requests=[(a.id, "k3"), (a.id, "k3")]) == {
        "k3": "WELCOME-00002"
    }


def test_it_answers_none_when_the_pool_runs_out(make_customers, make_pool):
    customers = make_customers(4)
    make_pool("tiny", codes=2)
    issued = issue_promo_codes(pool_slug="tiny", requests=[(c.id, f"k{c.id}") for c in customers])
    assert Counter(issued.values()) == Counter({"TINY-00000": 1, "TINY-00001": 1, None: 2})
    assert pool_available(slugs=["tiny"]) == {"tiny": 0}
    # a later upload serves the keys that got nothing
    add_promo_codes(pool_slug="tiny", codes=["NEW-1", "NEW-2"])
    retry = issue_promo_codes(pool_slug="tiny", requests=[(c.id, f"k{c.id}") for c in customers])
    assert sorted(retry.values()) == ["NEW-1", "NEW-2", "TINY-00000", "TINY-00001"]


def test_it_does_not_take_codes_from_another_pool(make_customers, make_pool):
    [a] = make_customers(1)
    make_pool("empty")
    make_pool("other", codes=3)
    assert issue_promo_codes(pool_slug="empty", requests=[(a.id, "k")]) == {"k": None}
    assert pool_available(slugs=["other", "empty", "missing"]) == {"other": 3, "empty": 0, "missing": 0}


def test_it_refuses_an_unknown_pool(make_customers):
    [a] = make_customers(1)
    with pytest.raises(UnknownPromoPool) as raised:
        issue_promo_codes(pool_slug="nope", requests=[(a.id, "k")])
    assert "nope" in str(raised.value)
    with pytest.raises(UnknownPromoPool):
        add_promo_codes(pool_slug="nope", codes=["A"])


@pytest.mark.parametrize(
    ("request_", "field"),
    [(("1", "k"), "customer_id"), ((1, ""), "issue_key"), ((1, None), "issue_key"), ((1,), "")],
)
def test_it_rejects_bad_requests(make_customers, make_pool, request_, field):
    make_customers(1)
    make_pool("welcome", codes=1)
    with pytest.raises(InvalidInput) as raised:
        issue_promo_codes(pool_slug="welcome", requests=[request_])
    assert raised.value.errors[0]["field"] == field
    assert pool_available(slugs=["welcome"]) == {"welcome": 1}


def test_it_rejects_one_key_for_two_customers(make_customers, make_pool):
    a, b = make_customers(2)
    make_pool("welcome", codes=2)
    with pytest.raises(InvalidInput):
        issue_promo_codes(pool_slug="welcome", requests=[(a.id, "k"), (b.id, "k")])
    assert pool_available(slugs=["welcome"]) == {"welcome": 2}


def test_it_rejects_codes_for_unknown_customers(make_customers, make_pool):
    [a] = make_customers(1)
    make_pool("welcome", codes=2)
    with pytest.raises(InvalidInput) as raised:
        issue_promo_codes(pool_slug="welcome", requests=[(a.id, "k1"), (a.id + 77, "k2")])
    assert raised.value.errors[0]["field"] == "customer_id"
    assert pool_available(slugs=["welcome"]) == {"welcome": 2}


def test_it_uploads_codes_ignoring_duplicates(make_pool):
    make_pool("welcome")
    make_pool("other")
    assert add_promo_codes(pool_slug="welcome", codes=["A", " B ", "A", "C"]) == {"added": 3, "duplicates": 1}
    assert add_promo_codes(pool_slug="welcome", codes=["C", "D"]) == {"added": 1, "duplicates": 1}
    # the same code may exist in another pool
    assert add_promo_codes(pool_slug="other", codes=["A"]) == {"added": 1, "duplicates": 0}
    assert sorted(PromoCode.objects.filter(pool__slug="welcome").values_list("code", flat=True)) == [
        "A",
        "B",
        "C",
        "D",
    ]
    assert add_promo_codes(pool_slug="welcome", codes=[]) == {"added": 0, "duplicates": 0}


@pytest.mark.parametrize("bad", ["", "   ", None, 5, "x" * 101])
def test_it_rejects_bad_codes_and_uploads_nothing(make_pool, bad):
    make_pool("welcome")
    with pytest.raises(InvalidInput) as raised:
        add_promo_codes(pool_slug="welcome", codes=["GOOD", bad])
    assert (raised.value.errors[0]["index"], raised.value.errors[0]["field"]) == (1, "code")
    assert not PromoCode.objects.exists()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_parallel_workers_never_issue_a_code_twice(make_customers, make_pool, run_in_threads):
    customers = make_customers(500)
    make_pool("race", codes=300)
    slices = [customers[i::4] for i in range(4)]

    def worker(i: int) -> dict:
        issued = {}
        mine = slices[i]
        for start in range(0, len(mine), 25):
            batch = mine[start : start + 25]
            issued.update(
                issue_promo_codes(pool_slug="race", requests=[(c.id, f"key-{c.id}") for c in batch])
            )
        return issued

    results = run_in_threads(4, worker)

    issued = {key: code for result in results for key, code in result.items()}
    assert len(issued) == 500
    codes = [code for code in issued.values() if code is not None]
    assert len(codes) == 300
    assert len(set(codes)) == 300
    assert list(issued.values()).count(None) == 200
    assert PromoCode.objects.filter(issued_at__isnull=True).count() == 0
    per_customer = Counter(PromoCode.objects.values_list("customer_id", flat=True))
    assert max(per_customer.values()) == 1
    # every answer matches what the database recorded
    stored = dict(PromoCode.objects.values_list("issue_key", "code"))
    assert {key: code for key, code in issued.items() if code is not None} == stored


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_parallel_retries_of_the_same_keys_get_the_same_codes(make_customers, make_pool, run_in_threads):
    customers = make_customers(100)
    make_pool("race", codes=150)
    requests = [(c.id, f"key-{c.id}") for c in customers]

    results = run_in_threads(4, lambda i: issue_promo_codes(pool_slug="race", requests=requests))

    assert all(result == results[0] for result in results)
    assert None not in results[0].values()
    assert PromoCode.objects.filter(issued_at__isnull=False).count() == 100
