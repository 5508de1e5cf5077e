from datetime import UTC, datetime

import pytest
import time_machine

from customers.errors import CustomerServiceError, InvalidInput
from customers.models import Customer, Event, Subscription
from customers.services.customers import ensure_customers, upsert_customers
from customers.services.fields import set_field, set_field_values
from customers.services.subscriptions import set_subscriptions
from maestra.audit.models import AuditEntry

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def events_of(event_type: str) -> list[tuple[str, dict]]:
    return [
        (external_id, payload)
        for external_id, payload in Event.objects.filter(type=event_type)
        .order_by("id")
        .values_list("customer__external_id", "payload")
    ]


# --- upsert_customers ----------------------------------------------------------


def test_it_creates_customers_with_all_attributes():
    with time_machine.travel(T0, tick=False):
        result = upsert_customers(
            rows=[
                {
                    "external_id": "u1",
                    "email": " ann@example.com ",
                    "phone": "+4930123",
                    "first_name": "Ann",
                    "last_name": "Lee",
                    "timezone": "Europe/Berlin",
                    "fields": {"tier": "gold", "birthday": "1990-05-01"},
                    "subscriptions": {"email": "subscribed"},
                },
                {"external_id": "u2"},
            ]
        )
    ann = Customer.objects.get(external_id="u1")
    assert result == {"u1": ann.id, "u2": Customer.objects.get(external_id="u2").id}
    assert list(result) == ["u1", "u2"]
    assert result.created == {"u1", "u2"}
    assert result.changed == set()
    assert (ann.email, ann.phone, ann.first_name, ann.last_name, ann.timezone) == (
        "ann@example.com",
        "+4930123",
        "Ann",
        "Lee",
        "Europe/Berlin",
    )
    assert ann.fields == {"tier": "gold", "birthday": "1990-05-01"}
    # stored like the ORM stores it, so every JSON lookup finds it
    assert Customer.objects.filter(fields={"tier": "gold", "birthday": "1990-05-01"}).count() == 1
    assert Customer.objects.filter(fields__tier="gold").count() == 1
    assert ann.push_tokens == {}
    assert ann.email_valid is True
    assert ann.created_at == T0
    assert ann.updated_at == T0
    assert Customer.objects.get(external_id="u2").fields == {}
    assert Subscription.objects.get(customer=ann).status == "subscribed"


def test_it_emits_customer_created_then_subscription_changed_for_new_customers():
    with time_machine.travel(T0, tick=False):
        upsert_customers(rows=[{"external_id": "u1", "subscriptions": {"email": "requires_confirmation"}}])
    assert events_of("customer_created") == [("u1", {})]
    assert events_of("subscription_changed") == [
        ("u1", {"channel": "email", "old": None, "new": "requires_confirmation", "source": "api"})
    ]
    first, second = Event.objects.order_by("id")
    assert first.type == "customer_created"
    assert second.type == "subscription_changed"
    assert first.occurred_at == T0
    assert first.processed_at is None
    assert first.depth == 0
    assert first.external_id is None


def test_it_updates_only_the_given_attributes_and_merges_fields():
    upsert_customers(
        rows=[
            {"external_id": "u1", "email": "a@example.com", "first_name": "Ann", "fields": {"a": 1, "b": 2}}
        ]
    )
    later = datetime(2025, 3, 2, tzinfo=UTC)
    with time_machine.travel(later, tick=False):
        result = upsert_customers(
            rows=[{"external_id": "u1", "last_name": "Lee", "fields": {"b": 3, "c": None}}]
        )
    ann = Customer.objects.get(external_id="u1")
    assert result.created == set()
    assert result.changed == {"u1"}
    assert (ann.email, ann.first_name, ann.last_name) == ("a@example.com", "Ann", "Lee")
    assert ann.fields == {"a": 1, "b": 3, "c": None}
    assert ann.updated_at == later
    assert Event.objects.filter(type="customer_created").count() == 1


def test_it_clears_an_attribute_given_as_none_or_empty():
    upsert_customers(rows=[{"external_id": "u1", "email": "a@example.com", "phone": "123"}])
    upsert_customers(rows=[{"external_id": "u1", "email": None, "phone": ""}])
    ann = Customer.objects.get(external_id="u1")
    assert (ann.email, ann.phone) == ("", "")


def test_it_marks_a_changed_email_as_valid_again():
    upsert_customers(rows=[{"external_id": "u1", "email": "old@example.com"}])
    Customer.objects.update(email_valid=False)  # hard bounce
    upsert_customers(rows=[{"external_id": "u1", "first_name": "Ann"}])
    assert Customer.objects.get().email_valid is False
    upsert_customers(rows=[{"external_id": "u1", "email": "new@example.com"}])
    assert Customer.objects.get().email_valid is True


def test_calling_it_twice_writes_nothing_new():
    rows = [
        {
            "external_id": "u1",
            "email": "a@example.com",
            "fields": {"x": 1},
            "subscriptions": {"sms": "subscribed"},
        },
        {"external_id": "u2", "subscriptions": {"email": "unsubscribed"}},
    ]
    upsert_customers(rows=rows)
    stamps = dict(Customer.objects.values_list("external_id", "updated_at"))
    events = Event.objects.count()
    later = datetime(2030, 1, 1, tzinfo=UTC)
    with time_machine.travel(later, tick=False):
        result = upsert_customers(rows=rows)
    assert result.created == set()
    assert result.changed == set()
    assert Event.objects.count() == events
    assert dict(Customer.objects.values_list("external_id", "updated_at")) == stamps
    assert Subscription.objects.count() == 2


def test_it_emits_subscription_changed_only_for_real_changes():
    upsert_customers(
        rows=[{"external_id": "u1", "subscriptions": {"email": "subscribed", "sms": "subscribed"}}]
    )
    Event.objects.all().delete()
    result = upsert_customers(
        rows=[{"external_id": "u1", "subscriptions": {"email": "subscribed", "sms": "unsubscribed"}}]
    )
    assert result.changed == {"u1"}
    assert events_of("subscription_changed") == [
        ("u1", {"channel": "sms", "old": "subscribed", "new": "unsubscribed", "source": "api"})
    ]
    assert dict(Subscription.objects.values_list("channel", "status")) == {
        "email": "subscribed",
        "sms": "unsubscribed",
    }


def test_it_merges_rows_repeating_an_external_id_later_values_winning():
    result = upsert_customers(
        rows=[
            {
                "external_id": "u1",
                "email": "a@example.com",
                "fields": {"a": 1},
                "subscriptions": {"sms": "subscribed"},
            },
            {"external_id": "u2"},
            {
                "external_id": "u1",
                "email": "b@example.com",
                "fields": {"b": 2},
                "subscriptions": {"sms": "unsubscribed"},
            },
        ]
    )
    assert list(result) == ["u1", "u2"]
    ann = Customer.objects.get(external_id="u1")
    assert ann.email == "b@example.com"
    assert ann.fields == {"a": 1, "b": 2}
    assert Subscription.objects.get(customer=ann).status == "unsubscribed"
    assert events_of("subscription_changed") == [
        ("u1", {"channel": "sms", "old": None, "new": "unsubscribed", "source": "api"})
    ]


def test_it_records_where_a_subscription_change_came_from():
    upsert_customers(rows=[{"external_id": "u1", "subscriptions": {"sms": "subscribed"}}], source="import")
    assert events_of("subscription_changed")[0][1]["source"] == "import"
    with pytest.raises(InvalidInput):
        upsert_customers(rows=[{"external_id": "u2"}], source="")


def test_it_merges_fields_into_a_stored_value_that_is_not_an_object():
    upsert_customers(rows=[{"external_id": "u1"}])
    Customer.objects.update(fields=["legacy"])
    upsert_customers(rows=[{"external_id": "u1", "first_name": "Ann"}])
    assert Customer.objects.get().fields == ["legacy"]  # untouched when no fields are given
    upsert_customers(rows=[{"external_id": "u1", "fields": {"a": 1}}])
    assert Customer.objects.get().fields == {"a": 1}


def test_it_accepts_an_empty_batch():
    assert upsert_customers(rows=[]) == {}


def nested(levels: int) -> dict:
    """{"a": {"a": … {}}}: `levels` objects inside each other."""
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_it_accepts_fields_nested_32_levels():
    # The fields object is level 1, so one field's value may nest 31 levels.
    result = upsert_customers(rows=[{"external_id": "deep", "fields": {"a": nested(31)}}])
    assert Customer.objects.get(pk=result["deep"]).fields == {"a": nested(31)}


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"email": "a@example.com"}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": 17}, "external_id"),
        ({"external_id": "x" * 201}, "external_id"),
        ({"external_id": "u", "email": "not-an-email"}, "email"),
        ({"external_id": "u", "timezone": "Mars/Olympus"}, "timezone"),
        ({"external_id": "u", "timezone": "localtime"}, "timezone"),
        ({"external_id": "u", "first_name": 5}, "first_name"),
        ({"external_id": "u", "phone": "1" * 40}, "phone"),
        ({"external_id": "u", "fields": ["a"]}, "fields"),
        ({"external_id": "u", "fields": {"when": datetime(2025, 1, 1)}}, "fields.when"),
        ({"external_id": "u", "fields": {"x": float("nan")}}, "fields.x"),
        ({"external_id": "u", "fields": {"a": nested(32)}}, "fields.a" + ".a" * 31),
        ({"external_id": "u", "fields": {"a": nested(500)}}, "fields.a" + ".a" * 31),
        ({"external_id": "u", "fields": {"name": "Ad\ud800a"}}, "fields.name"),
        ({"external_id": "u", "fields": {"tags": ["ok", "\udfff"]}}, "fields.tags.1"),
        ({"external_id": "u", "first_name": "Ad\ud800a"}, "first_name"),
        ({"external_id": "u", "first_name": "Ad\x00a"}, "first_name"),
        ({"external_id": "u", "fields": {"note": "a\x00b"}}, "fields.note"),
        ({"external_id": "u", "fields": {"a\x00": 1}}, "fields"),
        ({"external_id": "u\ud800"}, "external_id"),
        ({"external_id": "u", "subscriptions": {"fax": "subscribed"}}, "subscriptions.fax"),
        ({"external_id": "u", "subscriptions": {"email": "maybe"}}, "subscriptions.email"),
        ({"external_id": "u", "subscriptions": "email"}, "subscriptions"),
        ({"external_id": "u", "push_tokens": {}}, "push_tokens"),
    ],
)
def test_it_rejects_a_bad_row_and_writes_nothing(row, field):
    with pytest.raises(InvalidInput) as raised:
        upsert_customers(rows=[{"external_id": "good"}, row])
    assert {"index": 1, "field": field} == {k: raised.value.errors[0][k] for k in ("index", "field")}
    assert raised.value.errors[0]["message"]
    assert isinstance(raised.value, CustomerServiceError)
    assert not Customer.objects.exists()
    assert not Event.objects.exists()


def test_it_lists_every_problem_of_the_batch():
    with pytest.raises(InvalidInput) as raised:
        upsert_customers(
            rows=[{"external_id": "a", "email": "x"}, "nope", {"external_id": "b", "timezone": "Nowhere"}]
        )
    assert [(e["index"], e["field"]) for e in raised.value.errors] == [(0, "email"), (1, ""), (2, "timezone")]
    assert "item 0, email" in str(raised.value)


# --- ensure_customers ----------------------------------------------------------


def test_it_ensures_customers_creating_only_the_missing_ones(make_customers):
    [existing] = make_customers(1, prefix="old")
    ids = ensure_customers(external_ids=["new1", "old0", "new1", "new2"])
    assert list(ids) == ["new1", "old0", "new2"]
    assert ids["old0"] == existing.id
    assert Customer.objects.count() == 3
    assert sorted(x for x, _ in events_of("customer_created")) == ["new1", "new2"]
    assert ensure_customers(external_ids=["new1", "new2"]) == {"new1": ids["new1"], "new2": ids["new2"]}
    assert Event.objects.count() == 2


def test_it_rejects_bad_external_ids_for_ensure():
    with pytest.raises(InvalidInput) as raised:
        ensure_customers(external_ids=["ok", "", None])
    assert [(e["index"], e["field"]) for e in raised.value.errors] == [(1, "external_id"), (2, "external_id")]
    assert not Customer.objects.exists()


# --- set_subscriptions ---------------------------------------------------------


def test_it_sets_subscriptions_and_emits_only_real_changes(make_customers):
    a, b = make_customers(2)
    Subscription.objects.create(customer=a, channel="email", status="subscribed")
    with time_machine.travel(T0, tick=False):
        changed = set_subscriptions(
            changes=[
                (a.id, "email", "subscribed"),  # no change
                (a.id, "sms", "requires_confirmation"),
                (b.id, "email", "subscribed"),
                (b.id, "email", "unsubscribed"),  # last one wins
            ],
            source="unsubscribe_link",
        )
    assert changed == 2
    assert dict(Subscription.objects.filter(customer=b).values_list("channel", "status")) == {
        "email": "unsubscribed"
    }
    assert events_of("subscription_changed") == [
        ("c0", {"channel": "sms", "old": None, "new": "requires_confirmation", "source": "unsubscribe_link"}),
        ("c1", {"channel": "email", "old": None, "new": "unsubscribed", "source": "unsubscribe_link"}),
    ]
    assert Subscription.objects.get(customer=a, channel="sms").updated_at == T0
    assert set_subscriptions(changes=[(b.id, "email", "unsubscribed")]) == 0
    assert Event.objects.count() == 2


def test_changes_made_by_staff_are_audited_as_subscription_changed(make_customers, django_user_model):
    staff = django_user_model.objects.create_user("staff", password=None, is_staff=True)
    a, b = make_customers(2)
    Subscription.objects.create(customer=a, channel="email", status="subscribed")
    with time_machine.travel(T0, tick=False):
        changed = set_subscriptions(
            changes=[
                (a.id, "email", "subscribed"),
                (a.id, "sms", "subscribed"),
                (b.id, "email", "unsubscribed"),
            ],
            source="admin",
            user=staff,
        )
    assert changed == 2
    entries = list(AuditEntry.objects.order_by("id"))
    # One entry per real change (not for the unchanged email of a), with the event's data.
    assert [(e.action, e.user, e.subject, e.at, e.data) for e in entries] == [
        (
            "subscription.changed",
            staff,
            a,
            T0,
            {"channel": "sms", "old": None, "new": "subscribed", "source": "admin"},
        ),
        (
            "subscription.changed",
            staff,
            b,
            T0,
            {"channel": "email", "old": None, "new": "unsubscribed", "source": "admin"},
        ),
    ]
    # No personal data in the entry's name of its subject.
    assert [e.subject_repr for e in entries] == [f"customer #{a.id}", f"customer #{b.id}"]


def test_changes_without_a_user_are_not_audited(make_customers):
    # The API, links, provider events and imports: the event's source tells them apart.
    [a] = make_customers(1)
    assert set_subscriptions(changes=[(a.id, "email", "subscribed")], source="api") == 1
    assert not AuditEntry.objects.exists()


def test_a_refused_change_by_staff_writes_no_audit_entry(make_customers, django_user_model):
    staff = django_user_model.objects.create_user("staff", password=None, is_staff=True)
    [a] = make_customers(1)
    with pytest.raises(InvalidInput):
        set_subscriptions(
            changes=[(a.id, "email", "subscribed"), (a.id + 999, "email", "subscribed")],
            source="admin",
            user=staff,
        )
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("1", "email", "subscribed"), "customer_id"),
        ((None, "fax", "subscribed"), "customer_id"),
        ((1, "fax", "subscribed"), "channel"),
        ((1, "email", "yes"), "status"),
        ((1, "email"), ""),
    ],
)
def test_it_rejects_bad_subscription_changes(make_customers, change, field):
    make_customers(1)
    with pytest.raises(InvalidInput) as raised:
        set_subscriptions(changes=[change])
    assert raised.value.errors[0]["field"] == field
    assert not Subscription.objects.exists()


def test_it_rejects_subscription_changes_for_unknown_customers_writing_nothing(make_customers):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput) as raised:
        set_subscriptions(changes=[(a.id, "email", "subscribed"), (a.id + 999, "email", "subscribed")])
    assert raised.value.errors == [
        {"index": 1, "field": "customer_id", "message": f"customer {a.id + 999} does not exist"}
    ]
    assert not Subscription.objects.exists()
    assert not Event.objects.exists()


# --- set_field -----------------------------------------------------------------


def test_it_sets_a_custom_field_keeping_the_others(make_customers):
    a, b, c = make_customers(3)
    Customer.objects.filter(id=a.id).update(fields={"tier": "silver", "keep": 1})
    with time_machine.travel(T0, tick=False):
        assert set_field(customer_ids=[a.id, b.id], field="tier", value="gold") == 2
    assert Customer.objects.get(id=a.id).fields == {"tier": "gold", "keep": 1}
    assert Customer.objects.get(id=b.id).fields == {"tier": "gold"}
    assert Customer.objects.get(id=c.id).fields == {}
    assert Customer.objects.get(id=a.id).updated_at == T0


@pytest.mark.parametrize(
    "value", [True, False, None, 0, 12.5, "text", "", [1, "two"], {"nested": {"deep": [None]}}, 'quote"s']
)
def test_it_keeps_the_json_type_of_a_field_value(make_customers, value):
    [a] = make_customers(1)
    set_field(customer_ids=[a.id], field="x", value=value)
    assert Customer.objects.get().fields == {"x": value}
    # the stored value is queryable like any ORM-written one
    assert Customer.objects.filter(fields__x=value).count() == 1


def test_it_sets_field_names_with_dots_and_spaces(make_customers):
    [a] = make_customers(1)
    set_field(customer_ids=[a.id], field="Loyalty tier.v2", value="gold")
    assert Customer.objects.get().fields == {"Loyalty tier.v2": "gold"}


def test_it_replaces_a_fields_value_that_is_not_an_object(make_customers):
    [a] = make_customers(1)
    Customer.objects.update(fields=[1, 2])
    set_field(customer_ids=[a.id], field="x", value=1)
    assert Customer.objects.get().fields == {"x": 1}


def test_it_sets_per_customer_field_values(make_customers):
    a, b = make_customers(2)
    assert set_field_values(field="city", values={a.id: "Berlin", b.id: "Paris", 10**9: "Nowhere"}) == 2
    assert dict(Customer.objects.values_list("external_id", "fields")) == {
        "c0": {"city": "Berlin"},
        "c1": {"city": "Paris"},
    }


def test_it_sets_profile_attributes_through_set_field(make_customers):
    a, b = make_customers(2, email="old@example.com")
    Customer.objects.update(email_valid=False)
    assert set_field(customer_ids=[a.id], field="timezone", value="Asia/Tokyo") == 1
    assert set_field(customer_ids=[a.id, b.id], field="first_name", value=" Kim ") == 2
    assert set_field(customer_ids=[a.id], field="email", value="new@example.com") == 1
    assert set_field(customer_ids=[b.id], field="email", value="old@example.com") == 1
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.timezone, a.first_name, a.email, a.email_valid) == (
        "Asia/Tokyo",
        "Kim",
        "new@example.com",
        True,
    )
    assert (b.first_name, b.email, b.email_valid) == ("Kim", "old@example.com", False)
    assert a.fields == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus"),
        ("email", "nope"),
        ("first_name", 12),
        ("x", float("inf")),
        ("x", object()),
        ("x", nested(32)),
        ("x", "\ud800"),
        ("", 1),
        ('bad"name', 1),
        (None, 1),
    ],
)
def test_it_rejects_a_bad_set_field(make_customers, field, value):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput):
        set_field(customer_ids=[a.id], field=field, value=value)
    a.refresh_from_db()
    assert (a.timezone, a.email, a.first_name, a.fields) == ("", "", "", {})


def test_it_rejects_customer_ids_that_are_not_integers(make_customers):
    [a] = make_customers(1)
    with pytest.raises(InvalidInput) as raised:
        set_field_values(field="x", values={a.id: 1, "7": 2})
    assert raised.value.errors == [{"index": 1, "field": "customer_id", "message": "must be an integer"}]
    assert Customer.objects.get().fields == {}


def test_it_sets_nothing_for_no_customers():
    assert set_field(customer_ids=[], field="x", value=1) == 0


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_upserts_of_the_same_customers_create_each_once(run_in_threads):
    import random

    external_ids = [f"p{i}" for i in range(3000)]

    def worker(i: int):
        mine = external_ids[:]
        # Each worker in its own order: rows are inserted sorted, so they never
        # deadlock (this size deadlocks reliably when they are not).
        random.Random(i).shuffle(mine)
        return upsert_customers(
            rows=[
                {"external_id": x, "fields": {f"t{i}": i}, "subscriptions": {"email": "subscribed"}}
                for x in mine
            ]
        )

    results = run_in_threads(4, worker)

    assert Customer.objects.count() == 3000
    assert sum(len(result.created) for result in results) == 3000
    assert all(set(result) == set(external_ids) for result in results)
    assert Event.objects.filter(type="customer_created").count() == 3000
    assert Event.objects.filter(type="subscription_changed").count() == 3000
    # every worker's fields were merged, none lost
    assert all(
        fields == {"t0": 0, "t1": 1, "t2": 2, "t3": 3}
        for fields in Customer.objects.values_list("fields", flat=True)
    )
