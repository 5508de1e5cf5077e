"""Nobody gets more than their role (issue 11, SPEC §12): an API key reaches
only the endpoints of its scopes, an admin session only what its model
permissions allow — one table (maestra/api/access.py), one permission class."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from channels.models import Template
from customers.models import Customer, Event, PromoCode, PromoPool, Segment
from flows.models import Flow
from maestra.api.access import ACCESS, access_for
from maestra.api.models import ApiKey, Scope
from tests.helpers import marketer_group

METHODS = ("get", "post", "put", "patch", "delete")
EVENT = {"id": "e-1", "customer": "c-1", "type": "order", "occurred_at": "2025-01-01T00:00:00Z"}


def _v1_routes() -> list[tuple[str, str, type]]:
    """(URL name, route, view class) of every /api/v1/ endpoint."""
    api = next(
        p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "api/"
    )
    v1 = next(p for p in api.url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "v1/")
    return [
        (p.name, str(p.pattern), p.callback.view_class) for p in v1.url_patterns if isinstance(p, URLPattern)
    ]


def _endpoints() -> list[tuple[str, str, str]]:
    """(URL name, METHOD, concrete URL) for every method of every endpoint,
    pointing at the objects of the `objects` fixture."""
    found = []
    for name, route, view in _v1_routes():
        url = "/api/v1/" + re.sub(r"<int:flow_id>", "{flow}", route)
        url = url.replace("<str:external_id>", "c-1")
        url = url.replace(
            "<slug:slug>", "pool" if "promo" in route else "news" if "segment" in route else "t"
        )
        found += [(name, method.upper(), url) for method in METHODS if hasattr(view, method)]
    return found


ENDPOINTS = _endpoints()


def _openapi_path(route: str) -> str:
    return re.sub(r"<[a-z]+:([a-z_]+)>", r"{\1}", route)


@pytest.fixture
def objects(db, flow_in) -> dict:
    Customer.objects.create(external_id="c-1", email="c1@example.com")
    Segment.objects.create(slug="news", name="News")
    PromoPool.objects.create(slug="pool", name="Pool")
    Template.objects.create(slug="t", name="T", channel="email", purpose="service", text="Hi")
    return {"flow": flow_in("active")}


def _key_client(*scopes: str) -> APIClient:
    _record, key = ApiKey.objects.create_key(name="k", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def _session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _call(client: APIClient, method: str, url: str):
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return getattr(client, method.lower())(url, body, format="json")


def _refused(response, words: str) -> None:
    assert response.status_code == 403, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert words in response.json()["errors"][0]["message"]


# --- The table -------------------------------------------------------------------


def test_every_endpoint_and_method_has_exactly_one_rule():
    listed = {(name, method) for name, methods in ACCESS.items() for method in methods}
    served = {(name, method) for name, method, _url in ENDPOINTS}
    assert listed == served
    for name, method, _url in ENDPOINTS:
        rule = access_for(name, method)
        assert rule.scopes and set(rule.scopes) <= set(Scope.values), (name, method)
        assert rule.perms and all(re.fullmatch(r"[a-z]+\.[a-z]+_[a-z]+", perm) for perm in rule.perms)


@pytest.mark.django_db
def test_every_permission_of_the_table_exists():
    known = {
        f"{app}.{codename}"
        for app, codename in Permission.objects.values_list("content_type__app_label", "codename")
    }
    assert {perm for methods in ACCESS.values() for rule in methods.values() for perm in rule.perms} <= known


def test_every_scope_opens_something():
    used = {scope for methods in ACCESS.values() for rule in methods.values() for scope in rule.scopes}
    assert used == set(Scope.values)


# --- Keys: a test per scope, allowed and refused ---------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("scope", Scope.values)
def test_a_key_with_one_scope_reaches_exactly_the_endpoints_of_that_scope(objects, scope):
    client = _key_client(scope)
    for name, method, url in ENDPOINTS:
        response = _call(client, method, url.format(flow=objects["flow"].pk))
        if scope in access_for(name, method).scopes:
            assert response.status_code != 403, (method, url, response.content[:300])
        else:
            _refused(response, "lacks the scope")


@pytest.mark.django_db
def test_events_write_posts_events_and_nothing_else_does(objects):
    _refused(
        _key_client(*(s for s in Scope.values if s != "events:write")).post(
            "/api/v1/events", {"events": [EVENT]}, format="json"
        ),
        "events:write",
    )
    assert not Event.objects.exists()

    response = _key_client("events:write").post("/api/v1/events", {"events": [EVENT]}, format="json")

    assert response.status_code == 202
    assert Event.objects.filter(external_id="e-1").exists()


@pytest.mark.django_db
def test_customers_read_reads_but_does_not_write_customers(objects):
    client = _key_client("customers:read")

    assert client.get("/api/v1/customers/c-1").json()["email"] == "c1@example.com"
    assert client.get("/api/v1/customers/c-1/activity").status_code == 200
    _refused(
        client.put("/api/v1/customers/c-2", {"email": "x@example.com"}, format="json"), "customers:write"
    )
    assert not Customer.objects.filter(external_id="c-2").exists()


@pytest.mark.django_db
def test_customers_write_writes_but_does_not_read_customers(objects):
    client = _key_client("customers:write")

    assert client.put("/api/v1/customers/c-2", {"first_name": "Bo"}, format="json").status_code == 201
    _refused(client.get("/api/v1/customers/c-2"), "customers:read")


@pytest.mark.django_db
def test_flows_read_reads_flows_and_building_blocks_but_changes_nothing(objects, spec_document):
    client = _key_client("flows:read")
    flow = objects["flow"]

    assert client.get(f"/api/v1/flows/{flow.pk}").json()["status"] == "active"
    assert client.get("/api/v1/templates/t").status_code == 200
    _refused(client.post(f"/api/v1/flows/{flow.pk}/pause"), "flows:write")
    _refused(client.post("/api/v1/flows", spec_document, format="json"), "flows:write")
    _refused(client.delete("/api/v1/templates/t"), "content:write")
    assert Flow.objects.get(pk=flow.pk).status == "active"
    assert Flow.objects.count() == 1 and Template.objects.filter(slug="t").exists()


@pytest.mark.django_db
def test_flows_write_changes_flows_but_not_content_or_customers(objects):
    client = _key_client("flows:write")
    flow = objects["flow"]

    assert client.post(f"/api/v1/flows/{flow.pk}/pause").status_code == 200
    assert Flow.objects.get(pk=flow.pk).status == "paused"
    _refused(client.get(f"/api/v1/flows/{flow.pk}"), "flows:read")
    _refused(client.post("/api/v1/segments", {"slug": "s", "name": "S"}, format="json"), "content:write")
    assert not Segment.objects.filter(slug="s").exists()


@pytest.mark.django_db
def test_content_write_manages_templates_segments_and_promo_pools_only(objects):
    client = _key_client("content:write")

    assert client.post("/api/v1/segments", {"slug": "s", "name": "S"}, format="json").status_code == 201
    assert client.post("/api/v1/segments/news/members", {"customers": ["c-1"]}, format="json").json() == {
        "added": 1,
        "already_members": 0,
    }
    assert client.post("/api/v1/promo-pools/pool/codes", {"codes": ["A1"]}, format="json").status_code == 200
    assert client.get("/api/v1/segments/s").status_code == 200
    assert PromoCode.objects.filter(code="A1").exists()
    _refused(client.get("/api/v1/flows"), "flows:read")
    _refused(client.get("/api/v1/customers/c-1"), "customers:read")


@pytest.mark.django_db
def test_privacy_erases_and_exports_and_nothing_else_does(objects):
    everything_else = _key_client(*(s for s in Scope.values if s != "privacy"))
    _refused(everything_else.post("/api/v1/customers/c-1/erase"), "privacy")
    _refused(everything_else.get("/api/v1/customers/c-1/export"), "privacy")
    assert Customer.objects.filter(external_id="c-1", email="c1@example.com").exists()

    client = _key_client("privacy")
    assert client.get("/api/v1/customers/c-1/export").json()["profile"]["email"] == "c1@example.com"
    assert client.post("/api/v1/customers/c-1/erase").json()["erased"] is True
    assert not Customer.objects.filter(email="c1@example.com").exists()
    _refused(client.get("/api/v1/customers/c-1"), "customers:read")


@pytest.mark.django_db
def test_a_key_made_without_scopes_has_them_all(objects):
    _record, key = ApiKey.objects.create_key(name="default")
    assert _record.scopes == Scope.values


@pytest.mark.django_db
def test_options_is_not_part_of_the_api_and_answers_405(objects):
    response = _key_client("flows:read").options("/api/v1/flows")

    assert response.status_code == 405
    assert response.json()["errors"][0]["message"]


@pytest.mark.django_db
def test_a_method_the_endpoint_lacks_is_still_a_405_not_a_403(objects):
    response = _key_client("customers:read").delete("/api/v1/events")
    assert response.status_code == 405


# --- Sessions: model permissions -----------------------------------------------------------


@pytest.fixture
def marketer(db, django_user_model) -> APIClient:
    user = django_user_model.objects.create_user("mia", is_staff=True)
    user.groups.add(marketer_group())
    return _session(user)


@pytest.mark.django_db
def test_a_marketer_reads_customers_but_cannot_create_post_events_erase_or_export(objects, marketer):
    assert marketer.get("/api/v1/customers/c-1").status_code == 200

    _refused(
        marketer.put("/api/v1/customers/c-2", {"email": "x@example.com"}, format="json"),
        "customers.add_customer",
    )
    _refused(marketer.post("/api/v1/events", {"events": [EVENT]}, format="json"), "customers.add_event")
    _refused(marketer.post("/api/v1/customers/c-1/erase"), "customers.erase_customer")
    _refused(marketer.get("/api/v1/customers/c-1/export"), "customers.export_customer")

    assert list(Customer.objects.values_list("external_id", "email")) == [("c-1", "c1@example.com")]
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_marketer_works_with_flows_and_building_blocks_as_in_the_admin(objects, marketer, spec_document):
    assert marketer.post("/api/v1/flows", spec_document, format="json").status_code == 201
    assert marketer.post(f"/api/v1/flows/{objects['flow'].pk}/pause").status_code == 200
    assert marketer.post("/api/v1/segments", {"slug": "s", "name": "S"}, format="json").status_code == 201
    assert (
        marketer.post("/api/v1/segments/news/members", {"customers": ["c-1"]}, format="json").status_code
        == 200
    )
    assert marketer.get(f"/api/v1/flows/{objects['flow'].pk}/audience-preview").status_code in (200, 409)


@pytest.mark.django_db
def test_a_marketer_session_gets_what_the_table_grants_the_group(objects, marketer):
    group = Group.objects.get(name="Marketer")
    granted = {f"{a}.{c}" for a, c in group.permissions.values_list("content_type__app_label", "codename")}
    for name, method, url in ENDPOINTS:
        response = _call(marketer, method, url.format(flow=objects["flow"].pk))
        if set(access_for(name, method).perms) <= granted:
            assert response.status_code != 403, (method, url, response.content[:300])
        else:
            _refused(response, "lacks the permission")


@pytest.mark.django_db
def test_staff_without_permissions_reach_nothing(objects, django_user_model):
    client = _session(django_user_model.objects.create_user("bare", is_staff=True))
    for _name, method, url in ENDPOINTS:
        _refused(_call(client, method, url.format(flow=objects["flow"].pk)), "lacks the permission")


@pytest.mark.django_db
def test_the_privacy_permissions_let_a_session_erase_and_export(objects, django_user_model):
    user = django_user_model.objects.create_user("dpo", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["erase_customer", "export_customer"]))
    client = _session(user)

    assert client.get("/api/v1/customers/c-1/export").status_code == 200
    assert client.post("/api/v1/customers/c-1/erase").status_code == 200
    _refused(client.get("/api/v1/customers/c-1"), "customers.view_customer")


@pytest.mark.django_db
def test_the_admin_erase_and_export_actions_need_the_privacy_permissions(objects, django_user_model):
    from django.test import Client

    user = django_user_model.objects.create_user("editor", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_customer", "delete_customer"]))
    client = Client()
    client.force_login(user)
    url = "/admin/customers/customer/"
    actions = client.get(url).context["action_form"].fields["action"].choices
    assert not {"erase_selected_customers", "export_selected_customers"} & {name for name, _ in actions}

    user.user_permissions.add(*Permission.objects.filter(codename__in=["erase_customer", "export_customer"]))
    actions = client.get(url).context["action_form"].fields["action"].choices
    assert {"erase_selected_customers", "export_selected_customers"} <= {name for name, _ in actions}


# --- create_api_key, the admin, the existing keys -------------------------------------------


@pytest.mark.django_db
def test_create_api_key_gives_every_scope_by_default(capsys):
    call_command("create_api_key", "shop")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiKey.objects.get_from_key(key).scopes == Scope.values


@pytest.mark.django_db
def test_create_api_key_gives_the_scopes_asked_for(capsys, objects):
    call_command("create_api_key", "crm", "--scopes", " customers:read,events:write ,customers:read")
    out = capsys.readouterr()
    key = out.out.strip().splitlines()[-1]
    assert ApiKey.objects.get_from_key(key).scopes == ["events:write", "customers:read"]
    assert "events:write, customers:read" in out.err
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/customers/c-1").status_code == 200
    _refused(client.get("/api/v1/flows"), "flows:read")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scopes", "words"),
    [("events:write,flows:admin", "flows:admin"), ("", "at least one"), (" , ", "at least one")],
)
def test_create_api_key_refuses_unknown_or_no_scopes_with_one_line(scopes, words):
    with pytest.raises(CommandError) as refused:
        call_command("create_api_key", "crm", "--scopes", scopes)
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_the_admin_edits_scopes_with_checkboxes(admin_client):
    page = admin_client.get("/admin/api/apikey/add/").content.decode()
    for scope in Scope.values:
        assert re.search(
            rf'<input type="checkbox" name="scopes" value="{re.escape(scope)}"[^>]*checked', page
        ), scope

    response = admin_client.post(
        "/admin/api/apikey/add/", {"name": "crm", "scopes": ["flows:read", "customers:read"]}
    )
    assert response.status_code == 302
    key = ApiKey.objects.get()
    assert key.scopes == ["customers:read", "flows:read"]

    response = admin_client.post(
        f"/admin/api/apikey/{key.pk}/change/", {"name": "crm", "scopes": ["privacy"]}
    )
    assert response.status_code == 302
    assert ApiKey.objects.get().scopes == ["privacy"]

    response = admin_client.post(f"/admin/api/apikey/{key.pk}/change/", {"name": "crm"})
    assert response.status_code == 200
    assert "Tick at least one scope." in response.content.decode()
    assert ApiKey.objects.get().scopes == ["privacy"]
    assert "privacy" in admin_client.get("/admin/api/apikey/").content.decode()


@pytest.mark.django_db
def test_the_library_admin_for_keys_without_scopes_is_gone(admin_client):
    assert admin_client.get("/admin/rest_framework_api_key/apikey/").status_code == 404


# --- The schema and the docs say it ---------------------------------------------------------


@pytest.mark.django_db
def test_the_schema_names_the_scope_and_permissions_of_every_operation(client):
    schema = client.get("/api/schema/?format=json").json()
    routes = {"/api/v1/" + _openapi_path(route): name for name, route, _v in _v1_routes()}
    seen = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            rule = access_for(routes[path], method)
            assert operation["x-scopes"] == list(rule.scopes), (method, path)
            assert operation["x-permissions"] == list(rule.perms)
            assert f"`{rule.scopes[0]}`" in operation["description"]
            seen += 1
    assert seen == len(ENDPOINTS)


def test_the_docs_table_lists_every_endpoint_with_its_scope_and_permissions():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    for name, route, view in _v1_routes():
        path = "/" + _openapi_path(route)
        for method in METHODS:
            if not hasattr(view, method):
                continue
            rule = access_for(name, method)
            scopes = " or ".join(f"`{scope}`" for scope in rule.scopes)
            perms = ", ".join(f"`{perm}`" for perm in rule.perms)
            row = f"| `{method.upper()} {path}` | {scopes} | {perms} |"
            assert row in docs, row


def test_the_docs_name_every_scope():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    assert all(f"`{scope}`" in docs for scope in Scope.values)
