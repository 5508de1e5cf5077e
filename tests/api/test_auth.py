"""Every /api/v1/ endpoint needs a key (or a staff session); keys are stored
hashed, revocable, and throttled per key."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from maestra.api.models import ApiKey

METHODS = ("get", "post", "put", "patch", "delete")


def _v1_endpoints() -> list[tuple[str, str]]:
    """(method, concrete URL) for every method of every URL pattern under /api/v1/."""
    api = next(
        p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "api/"
    )
    v1 = next(p for p in api.url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "v1/")
    endpoints = []
    for pattern in v1.url_patterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        for converter, value in (("<int:flow_id>", "1"), ("<str:external_id>", "c-1"), ("<slug:slug>", "x")):
            route = route.replace(converter, value)
        assert "<" not in route, route
        view = pattern.callback.view_class
        for method in METHODS:
            if hasattr(view, method):
                endpoints.append((method, f"/api/v1/{route}"))
    return endpoints


ENDPOINTS = _v1_endpoints()


def test_it_knows_every_endpoint_of_the_spec():
    urls = {url for _method, url in ENDPOINTS}
    assert len(ENDPOINTS) >= 38
    for expected in (
        "/api/v1/customers/c-1",
        "/api/v1/customers/c-1/activity",
        "/api/v1/events",
        "/api/v1/flows",
        "/api/v1/flows/1/audience-preview",
        "/api/v1/segments/x/members",
        "/api/v1/promo-pools/x/codes",
    ):
        assert expected in urls


def _call(client: APIClient, method: str, url: str):
    return getattr(client, method)(url, {} if method in ("post", "put", "patch") else None, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_it_refuses_a_request_without_a_key(method, url):
    response = _call(APIClient(), method, url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert response["Content-Type"] == "application/json"
    assert response.json()["errors"][0]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_it_refuses_a_revoked_key(method, url):
    record, key = ApiKey.objects.create_key(name="old")
    record.revoked = True
    record.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = _call(client, method, url)
    assert response.status_code == 401
    assert "revoked" in response.json()["errors"][0]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        "Api-Key wrong.key",
        "Api-Key ",
        "Api-Key nodot",
        "Bearer something",
        "Api-Key " + "x" * 5000,
    ],
)
def test_it_refuses_wrong_keys_and_schemes(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/flows")
    assert response.status_code == 401
    assert "errors" in response.json()


@pytest.mark.django_db
def test_it_refuses_an_expired_key():
    _record, key = ApiKey.objects.create_key(name="old", expiry_date=timezone.now() - timedelta(minutes=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/flows").status_code == 401


@pytest.mark.django_db
def test_it_accepts_a_valid_key_and_stores_only_its_hash(api, api_key):
    assert api.get("/api/v1/flows").status_code == 200
    record = ApiKey.objects.get()
    assert api_key not in (record.id, record.hashed_key)
    assert record.prefix == api_key.split(".")[0]


@pytest.mark.django_db
def test_it_lets_staff_use_the_browsable_api_with_their_session(django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_flow"))
    client = APIClient()
    client.force_login(staff)
    response = client.get("/api/v1/flows", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert client.get("/api/v1/flows").json()["count"] == 0


@pytest.mark.django_db
def test_it_refuses_a_logged_in_user_who_is_not_staff(django_user_model):
    user = django_user_model.objects.create_user("someone", password="pw")
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/flows", HTTP_ACCEPT="text/html")
    assert response.status_code == 403
    # Errors are JSON even when the browser asks for HTML.
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_it_throttles_per_key_with_a_json_429(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"}}
    clients = []
    for name in ("a", "b"):
        _record, key = ApiKey.objects.create_key(name=name)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        clients.append(client)
    first, second = clients
    assert [first.get("/api/v1/flows").status_code for _ in range(3)] == [200, 200, 200]
    refused = first.get("/api/v1/flows")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "throttled" in refused.json()["errors"][0]["message"].lower()
    # Another key has its own budget.
    assert second.get("/api/v1/flows").status_code == 200


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_alone_on_its_last_line(capsys):
    call_command("create_api_key", "shop")
    out = capsys.readouterr()
    key = out.out.strip().splitlines()[-1]
    assert ApiKey.objects.get_from_key(key).name == "shop"
    assert key not in out.err
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/flows").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", "   ", "x" * 51])
def test_create_api_key_refuses_a_bad_name(name):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_api_key", name)
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_the_browsable_api_renders_every_endpoint_for_staff(django_user_model, flow_in):
    from customers.models import Customer, PromoPool, Segment

    flow = flow_in("active")
    Customer.objects.create(external_id="c-1")
    Segment.objects.create(slug="x", name="X")
    PromoPool.objects.create(slug="x", name="X")
    staff = django_user_model.objects.create_superuser("staff", password="pw")
    client = APIClient()
    client.force_login(staff)
    for method, url in ENDPOINTS:
        if method != "get":
            continue
        response = client.get(url.replace("/flows/1", f"/flows/{flow.pk}"), HTTP_ACCEPT="text/html")
        assert response.status_code < 500, url
        if response.status_code == 200:
            assert response["Content-Type"].startswith("text/html"), url
