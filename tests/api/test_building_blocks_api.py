"""Templates, segments (+ members) and promo pools (+ codes) through the API."""

import pytest

from channels.models import Template
from customers.models import Customer, PromoCode, PromoPool, Segment, SegmentMembership

EMAIL = {
    "slug": "welcome",
    "name": "Welcome",
    "channel": "email",
    "subject": "Hi {{ customer.first_name }}",
    "text": "Hello",
}
WEBHOOK = {
    "slug": "crm",
    "name": "CRM",
    "channel": "webhook",
    "url": "https://crm.example.com/hook",
    "headers": {"X-Source": "maestra"},
    "text": '{"id": "{{ customer.external_id }}"}',
}


# --- templates ----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_reads_lists_updates_and_deletes_a_template(api):
    created = api.post("/api/v1/templates", EMAIL, format="json")
    assert created.status_code == 201
    assert created.json()["purpose"] == "marketing"
    assert api.get("/api/v1/templates/welcome").json()["subject"] == "Hi {{ customer.first_name }}"
    assert api.get("/api/v1/templates").json()["count"] == 1
    patched = api.patch("/api/v1/templates/welcome", {"purpose": "service"}, format="json")
    assert (patched.json()["purpose"], patched.json()["text"]) == ("service", "Hello")
    replaced = api.put("/api/v1/templates/welcome", {**EMAIL, "text": "Bye"}, format="json")
    assert replaced.json()["text"] == "Bye"
    assert api.delete("/api/v1/templates/welcome").status_code == 204
    assert api.get("/api/v1/templates/welcome").status_code == 404


@pytest.mark.django_db
def test_it_generates_a_webhook_secret_and_never_shows_it(api):
    body = api.post("/api/v1/templates", WEBHOOK, format="json").json()
    assert "secret" not in body
    generated = Template.objects.get(slug="crm").secret
    assert len(generated) >= 32
    assert "secret" not in api.get("/api/v1/templates/crm").json()
    api.patch("/api/v1/templates/crm", {"name": "CRM sync"}, format="json")
    assert Template.objects.get(slug="crm").secret == generated
    api.patch("/api/v1/templates/crm", {"secret": "s" * 40}, format="json")
    assert Template.objects.get(slug="crm").secret == "s" * 40
    assert generated not in str(api.get("/api/v1/templates").json())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"slug": "not a slug"}, "slug"),
        ({"channel": "pigeon"}, "channel"),
        ({"subject": "{% if %}"}, "subject"),
        ({"text": "{{ customer.name|nosuchfilter }}"}, "text"),
        ({"text": "", "html": ""}, "text"),
        ({"purpose": "spam"}, "purpose"),
        ({"colour": "red"}, "colour"),
        ({"headers": {"X": {"nested": 1}}}, "headers.X"),
    ],
)
def test_it_refuses_a_bad_template(api, changes, field):
    response = api.post("/api/v1/templates", {**EMAIL, **changes}, format="json")
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not Template.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_webhook_without_url_a_duplicate_slug_and_a_slug_change(api):
    assert api.post("/api/v1/templates", {**WEBHOOK, "url": ""}, format="json").status_code == 400
    assert api.post("/api/v1/templates", EMAIL, format="json").status_code == 201
    duplicate = api.post("/api/v1/templates", EMAIL, format="json")
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"][0]["field"] == "slug"
    renamed = api.patch("/api/v1/templates/welcome", {"slug": "other"}, format="json")
    assert renamed.status_code == 400
    assert Template.objects.get().slug == "welcome"


# --- segments -----------------------------------------------------------------------------

GOLD_RULE = {"field": "customer.fields.tier", "op": "eq", "value": "gold"}


@pytest.mark.django_db
def test_it_manages_static_and_rule_segments(api):
    static = api.post("/api/v1/segments", {"slug": "newsletter", "name": "Newsletter"}, format="json")
    assert static.status_code == 201
    assert static.json() == {**static.json(), "kind": "static", "rule": None, "members": 0}
    Customer.objects.create(external_id="g", fields={"tier": "gold"})
    Customer.objects.create(external_id="b", fields={"tier": "basic"})
    rule = api.post(
        "/api/v1/segments", {"slug": "gold", "name": "Gold", "kind": "rule", "rule": GOLD_RULE}, format="json"
    )
    assert rule.status_code == 201
    assert rule.json()["members"] == 1
    listed = api.get("/api/v1/segments").json()
    assert [(row["slug"], row["members"]) for row in listed["results"]] == [("gold", None), ("newsletter", 0)]
    changed = api.patch("/api/v1/segments/gold", {"rule": {**GOLD_RULE, "value": "basic"}}, format="json")
    assert changed.json()["members"] == 1
    assert api.patch("/api/v1/segments/gold", {"kind": "static"}, format="json").json()["rule"] is None
    assert api.delete("/api/v1/segments/gold").status_code == 204
    assert not Segment.objects.filter(slug="gold").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "rule"}, "rule"),
        ({"kind": "rule", "rule": {"field": "event.total", "op": "gt", "value": 1}}, "rule"),
        ({"kind": "rule", "rule": {"field": "customer.fields.tier", "op": "explode", "value": 1}}, "rule"),
        ({"kind": "static", "rule": GOLD_RULE}, "rule"),
        ({"kind": "dynamic"}, "kind"),
    ],
)
def test_it_refuses_a_bad_segment(api, body, field):
    response = api.post("/api/v1/segments", {"slug": "s", "name": "S", **body}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith(field)
    assert not Segment.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_rule_segment_that_refers_to_itself(api):
    body = {
        "slug": "loop",
        "name": "Loop",
        "kind": "rule",
        "rule": {"field": "segment", "op": "in", "value": ["loop"]},
    }
    response = api.post("/api/v1/segments", body, format="json")
    assert response.status_code == 400
    assert "refer" in response.json()["errors"][0]["message"]
    assert not Segment.objects.exists()


@pytest.mark.django_db
def test_it_adds_members_to_a_static_segment(api):
    Segment.objects.create(slug="newsletter", name="Newsletter")
    for n in range(3):
        Customer.objects.create(external_id=f"c-{n}")
    response = api.post(
        "/api/v1/segments/newsletter/members", {"customers": ["c-0", "c-1", "c-1"]}, format="json"
    )
    assert response.json() == {"added": 2, "already_members": 0}
    again = api.post("/api/v1/segments/newsletter/members", {"customers": ["c-1", "c-2"]}, format="json")
    assert again.json() == {"added": 1, "already_members": 1}
    assert SegmentMembership.objects.count() == 3


@pytest.mark.django_db
def test_it_refuses_unknown_members_listing_each_and_adds_none(api):
    Segment.objects.create(slug="newsletter", name="Newsletter")
    Customer.objects.create(external_id="c-0")
    response = api.post(
        "/api/v1/segments/newsletter/members", {"customers": ["c-0", "ghost", 5]}, format="json"
    )
    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(2, "customers")]
    response = api.post("/api/v1/segments/newsletter/members", {"customers": ["c-0", "ghost"]}, format="json")
    assert [(e["index"], "ghost" in e["message"]) for e in response.json()["errors"]] == [(1, True)]
    assert not SegmentMembership.objects.exists()


@pytest.mark.django_db
def test_it_refuses_members_for_a_rule_segment_and_an_unknown_segment(api):
    Segment.objects.create(slug="gold", name="Gold", kind="rule", rule=GOLD_RULE)
    Customer.objects.create(external_id="c-0")
    refused = api.post("/api/v1/segments/gold/members", {"customers": ["c-0"]}, format="json")
    assert refused.status_code == 409
    assert "rule-based" in refused.json()["errors"][0]["message"]
    assert api.post("/api/v1/segments/none/members", {"customers": ["c-0"]}, format="json").status_code == 404
    too_many = api.post("/api/v1/segments/gold/members", {"customers": ["c"] * 10_001}, format="json")
    assert too_many.status_code == 400


# --- promo pools ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_manages_promo_pools_and_uploads_codes(api):
    created = api.post(
        "/api/v1/promo-pools", {"slug": "welcome", "name": "Welcome", "alert_below": 10}, format="json"
    )
    assert created.status_code == 201
    assert (created.json()["available"], created.json()["issued"]) == (0, 0)
    upload = api.post(
        "/api/v1/promo-pools/welcome/codes", {"codes": ["A1", "B2", "B2", " C3 "]}, format="json"
    )
    assert upload.json() == {"added": 3, "duplicates": 1}
    assert api.post("/api/v1/promo-pools/welcome/codes", {"codes": ["A1", "D4"]}, format="json").json() == {
        "added": 1,
        "duplicates": 1,
    }
    PromoCode.objects.filter(code="A1").update(issued_at="2025-01-01T00:00:00Z")
    pool = api.get("/api/v1/promo-pools/welcome").json()
    assert (pool["available"], pool["issued"], pool["alert_below"]) == (3, 1, 10)
    assert api.get("/api/v1/promo-pools").json()["results"][0]["available"] == 3
    assert (
        api.patch("/api/v1/promo-pools/welcome", {"name": "Hello"}, format="json").json()["name"] == "Hello"
    )
    assert api.delete("/api/v1/promo-pools/welcome").status_code == 204
    assert not PromoCode.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"codes": "A1"}, "codes"),
        ({"codes": ["ok", ""]}, "code"),
        ({"codes": [5]}, "code"),
        ({"other": []}, "other"),
    ],
)
def test_it_refuses_bad_codes_and_adds_none(api, body, field):
    PromoPool.objects.create(slug="welcome", name="Welcome")
    response = api.post("/api/v1/promo-pools/welcome/codes", body, format="json")
    assert response.status_code == 400
    assert field in [e["field"] for e in response.json()["errors"]]
    assert not PromoCode.objects.exists()


@pytest.mark.django_db
def test_it_answers_404_for_codes_of_an_unknown_pool(api):
    assert api.post("/api/v1/promo-pools/none/codes", {"codes": ["A"]}, format="json").status_code == 404
