"""The customers admin: every page renders, list pages cost the same queries
for 1 row as for 20, and the writes that matter go through the services
(subscription_changed, customer_created, promo code upload)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils.timezone import now

from customers.models import Customer, Event, PointsEntry, PromoCode, PromoPool, Segment, SegmentMembership
from maestra.audit.models import AuditEntry
from tests.customers.kit import MODELS, add_rows

MOMENT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def url(model, view="changelist", *args) -> str:
    return reverse(f"admin:customers_{model._meta.model_name}_{view}", args=args)


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_page_renders(admin_client, model):
    add_rows(3)
    obj = model.objects.order_by("pk").first()

    listing = admin_client.get(url(model))
    detail = admin_client.get(url(model, "change", obj.pk))

    assert listing.status_code == 200
    assert len(listing.context["cl"].result_list) >= 3
    assert detail.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_list_runs_the_same_queries_for_1_and_20_rows(admin_client, model, django_assert_max_num_queries):
    add_rows(1)
    with django_assert_max_num_queries(10) as one:
        assert admin_client.get(url(model)).status_code == 200

    add_rows(19, start=1)
    assert model.objects.count() >= 20
    with django_assert_max_num_queries(10) as twenty:
        assert admin_client.get(url(model)).status_code == 200
    assert len(twenty.captured_queries) == len(one.captured_queries)


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Customer, PromoPool, Segment])
def test_the_add_pages_render(admin_client, model):
    assert admin_client.get(url(model, "add")).status_code == 200


@pytest.mark.django_db
def test_customers_are_found_by_id_email_phone_and_name(admin_client):
    add_rows(3)
    Customer.objects.filter(external_id="c1").update(phone="+491701234567", first_name="Zoe")

    def found(query: str) -> list[str]:
        response = admin_client.get(url(Customer), {"q": query})
        return [c.external_id for c in response.context["cl"].result_list]

    assert found("c2@example") == ["c2"]
    assert found("1701234") == ["c1"]
    assert found("zoe") == ["c1"]
    assert found("Lee0") == ["c0"]


@pytest.mark.django_db
def test_customers_are_filtered_by_email_subscription(admin_client):
    add_rows(3)
    Customer.objects.get(external_id="c1").subscriptions.update(status="requires_confirmation")

    response = admin_client.get(url(Customer), {"email_subscription": "requires_confirmation"})

    assert [c.external_id for c in response.context["cl"].result_list] == ["c1"]


@pytest.mark.django_db
def test_the_customer_page_shows_subscriptions_and_points_balance(admin_client):
    add_rows(1)
    customer = Customer.objects.get()
    PointsEntry.objects.create(customer=customer, amount=5, expires_at=now() - timedelta(days=1))

    response = admin_client.get(url(Customer, "change", customer.pk))

    assert response.context["adminform"].model_admin.points_balance(customer) == 10
    assert "subscriptions-0-status" in response.content.decode()


def customer_form(customer: Customer, subscriptions: list[tuple[int | None, str, str]], **overrides) -> dict:
    data = {
        "external_id": customer.external_id,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "timezone": customer.timezone,
        "email": customer.email,
        "email_valid": "on",
        "phone": customer.phone,
        "push_tokens": "{}",
        "fields": "{}",
        "subscriptions-TOTAL_FORMS": str(len(subscriptions)),
        "subscriptions-INITIAL_FORMS": str(sum(1 for pk, _c, _s in subscriptions if pk)),
        "subscriptions-MIN_NUM_FORMS": "0",
        "subscriptions-MAX_NUM_FORMS": "1000",
    }
    for index, (pk, channel, status) in enumerate(subscriptions):
        data[f"subscriptions-{index}-id"] = str(pk or "")
        data[f"subscriptions-{index}-customer"] = str(customer.pk or "")
        data[f"subscriptions-{index}-channel"] = channel
        data[f"subscriptions-{index}-status"] = status
    data.update(overrides)
    return data


@pytest.fixture
def customer(db) -> Customer:
    """One customer with rows in every table; its one subscription: email, subscribed."""
    add_rows(1)
    return Customer.objects.get()


def save_in_admin(client, customer: Customer, *subscriptions: tuple[str, str], new=(), **overrides):
    """POST the customer's change form: `subscriptions` are (channel, status)
    for its existing email subscription, `new` the rows of subscriptions to add."""
    rows = [(customer.subscriptions.get().pk, *row) for row in subscriptions] + [(None, *row) for row in new]
    return client.post(url(Customer, "change", customer.pk), customer_form(customer, rows, **overrides))


@pytest.mark.django_db
def test_changing_a_subscription_in_the_admin_emits_subscription_changed(admin_client, customer):
    response = save_in_admin(admin_client, customer, ("email", "unsubscribed"), new=[("sms", "subscribed")])

    assert response.status_code == 302
    assert dict(customer.subscriptions.values_list("channel", "status")) == {
        "email": "unsubscribed",
        "sms": "subscribed",
    }
    events = Event.objects.filter(type="subscription_changed").order_by("pk")
    assert [e.payload for e in events] == [
        {"channel": "email", "old": "subscribed", "new": "unsubscribed", "source": "admin"},
        {"channel": "sms", "old": None, "new": "subscribed", "source": "admin"},
    ]


@pytest.mark.django_db
def test_a_subscription_changed_in_the_admin_is_audited_with_the_staff_user(
    admin_client, admin_user, customer
):
    save_in_admin(admin_client, customer, ("email", "unsubscribed"), new=[("sms", "subscribed")])

    entries = AuditEntry.objects.filter(action="subscription.changed").order_by("id")
    assert [(e.user, e.subject, e.data) for e in entries] == [
        (
            admin_user,
            customer,
            {"channel": "email", "old": "subscribed", "new": "unsubscribed", "source": "admin"},
        ),
        (admin_user, customer, {"channel": "sms", "old": None, "new": "subscribed", "source": "admin"}),
    ]
    # Listed in the audit admin under its action.
    response = admin_client.get(
        reverse("admin:audit_auditentry_changelist"), {"action": "subscription.changed"}
    )
    assert response.status_code == 200
    assert f"customer #{customer.pk}" in response.content.decode()


@pytest.mark.django_db
def test_saving_a_customer_without_changing_subscriptions_emits_nothing(admin_client, customer):
    save_in_admin(admin_client, customer, ("email", "subscribed"), first_name="Anna")

    assert Customer.objects.get().first_name == "Anna"
    assert not Event.objects.filter(type="subscription_changed").exists()
    assert not AuditEntry.objects.filter(action="subscription.changed").exists()


@pytest.mark.django_db
def test_the_channel_of_an_existing_subscription_cannot_be_changed(admin_client, customer):
    save_in_admin(admin_client, customer, ("sms", "subscribed"))

    assert list(customer.subscriptions.values_list("channel", "status")) == [("email", "subscribed")]


@pytest.mark.django_db
def test_adding_a_customer_emits_customer_created_and_its_subscriptions(admin_client):
    new = Customer(external_id="new-1", email="new@example.com")

    response = admin_client.post(
        url(Customer, "add"), customer_form(new, [(None, "email", "requires_confirmation")])
    )

    assert response.status_code == 302
    customer = Customer.objects.get(external_id="new-1")
    assert list(customer.subscriptions.values_list("status", flat=True)) == ["requires_confirmation"]
    assert sorted(Event.objects.filter(customer=customer).values_list("type", flat=True)) == [
        "customer_created",
        "subscription_changed",
    ]


@pytest.mark.django_db
def test_segments_list_their_member_count(admin_client):
    add_rows(3)
    Segment.objects.create(
        slug="vip", name="VIP", kind="rule", rule={"field": "points", "op": "gt", "value": 5}
    )

    response = admin_client.get(url(Segment))

    rows = {s.slug: s for s in response.context["cl"].result_list}
    admin = response.context["cl"].model_admin
    assert admin.member_count(rows["newsletter"]) == 3
    assert admin.member_count(rows["s0"]) == 0
    assert admin.member_count(rows["vip"]) == "(rule)"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "rule", "error"),
    [
        ("rule", "", "A rule-based segment needs a rule."),
        ("rule", '{"field": "event.total", "op": "gt", "value": 1}', "event"),
        ("rule", '{"oops": 1}', "oops: unknown key 'oops'"),
        ("static", '{"field": "points", "op": "gt", "value": 1}', "A static segment has members, not a rule"),
    ],
)
def test_a_segment_with_a_bad_rule_is_refused(admin_client, kind, rule, error):
    response = admin_client.post(url(Segment, "add"), {"slug": "x", "name": "X", "kind": kind, "rule": rule})

    assert response.status_code == 200
    assert any(error in message for message in response.context["adminform"].form.errors["rule"])
    assert not Segment.objects.exists()


@pytest.mark.django_db
def test_a_rule_segment_with_a_valid_rule_is_saved(admin_client):
    response = admin_client.post(
        url(Segment, "add"),
        {
            "slug": "vip",
            "name": "VIP",
            "kind": "rule",
            "rule": '{"field": "points", "op": "gte", "value": 100}',
        },
    )

    assert response.status_code == 302
    assert Segment.objects.get().rule == {"field": "points", "op": "gte", "value": 100}


@pytest.mark.django_db
def test_members_are_only_added_to_static_segments(admin_client):
    add_rows(1)
    customer = Customer.objects.get()
    rule_segment = Segment.objects.create(
        slug="vip", name="VIP", kind="rule", rule={"field": "points", "op": "gt", "value": 1}
    )

    refused = admin_client.post(
        url(SegmentMembership, "add"), {"segment": rule_segment.pk, "customer": customer.pk}
    )
    accepted = admin_client.post(
        url(SegmentMembership, "add"), {"segment": Segment.objects.get(slug="s0").pk, "customer": customer.pk}
    )

    assert refused.status_code == 200
    assert accepted.status_code == 302
    assert list(
        SegmentMembership.objects.filter(customer=customer).values_list("segment__slug", flat=True)
    ) == [
        "newsletter",
        "s0",
    ]


@pytest.mark.django_db
def test_promo_pools_list_available_and_issued_codes(admin_client):
    add_rows(2)
    PromoCode.objects.create(pool=PromoPool.objects.get(slug="welcome"), code="FREE1")

    response = admin_client.get(url(PromoPool))

    rows = {p.slug: p for p in response.context["cl"].result_list}
    admin = response.context["cl"].model_admin
    assert (admin.available(rows["welcome"]), admin.issued(rows["welcome"])) == (1, 2)
    assert (admin.available(rows["p0"]), admin.issued(rows["p0"])) == (0, 0)


@pytest.mark.django_db
def test_codes_are_uploaded_to_a_pool_through_the_service(admin_client):
    pool = PromoPool.objects.create(slug="welcome", name="Welcome")
    PromoCode.objects.create(pool=pool, code="A1")

    response = admin_client.post(
        url(PromoPool, "change", pool.pk),
        {"slug": "welcome", "name": "Welcome", "alert_below": "", "add_codes": "A1\nB2\n\n  C3  \nB2\n"},
        follow=True,
    )

    assert sorted(pool.codes.values_list("code", flat=True)) == ["A1", "B2", "C3"]
    assert "2 code(s) added to welcome; 2 skipped (already in the pool or repeated)." in [
        str(m) for m in get_messages(response.wsgi_request)
    ]


@pytest.mark.django_db
def test_an_overlong_code_is_refused_and_nothing_is_uploaded(admin_client):
    pool = PromoPool.objects.create(slug="welcome", name="Welcome")

    response = admin_client.post(
        url(PromoPool, "change", pool.pk),
        {"slug": "welcome", "name": "Welcome", "alert_below": "", "add_codes": "OK1\n" + "X" * 101},
    )

    assert response.status_code == 200
    assert "add_codes" in response.context["adminform"].form.errors
    assert not pool.codes.exists()


@pytest.mark.django_db
def test_events_are_read_only_and_filtered_by_processed(admin_client):
    add_rows(2)
    Event.objects.filter(customer__external_id="c0").update(processed_at=MOMENT)
    event = Event.objects.first()

    processed = admin_client.get(url(Event), {"processed": "yes"})
    waiting = admin_client.get(url(Event), {"processed": "no"})

    assert [e.customer.external_id for e in processed.context["cl"].result_list] == ["c0"]
    assert [e.customer.external_id for e in waiting.context["cl"].result_list] == ["c1"]
    assert admin_client.get(url(Event, "add")).status_code == 403
    assert admin_client.get(url(Event, "change", event.pk)).context["has_change_permission"] is False


@pytest.mark.django_db
def test_issued_promo_codes_and_points_entries_are_not_edited_by_hand(admin_client):
    add_rows(1)
    code, entry = PromoCode.objects.get(), PointsEntry.objects.get()

    for model, obj in ((PromoCode, code), (PointsEntry, entry)):
        response = admin_client.get(url(model, "change", obj.pk))
        assert response.context["has_change_permission"] is False
        assert admin_client.get(url(model, "add")).status_code == 200
