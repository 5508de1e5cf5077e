"""Content-Security-Policy (django-csp, SPEC §12): every page sends one that
allows scripts only from our own static files, and no page of the admin, the
public consent pages or the API docs has an inline script or an inline event
handler that the policy would block."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.urls import reverse

from channels.links import link_url
from channels.models import Template
from customers.models import Channel, Customer

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "frame-src": "'self'",
    "frame-ancestors": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


def directives(response) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))


class InlineCode(HTMLParser):
    """Collects what a policy without 'unsafe-inline' would refuse to run."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().startswith(
                "javascript:"
            ):
                self.found.append(f"<{tag} {name}=javascript:…>")
        if tag == "script":
            # A JSON data block (json_script) is not run; a script needs a src.
            self._in_script = "src" not in attributes and attributes.get("type") != "application/json"

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.found.append(f"<script>{data.strip()[:60]}…")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def assert_policed(response) -> None:
    assert response.status_code == 200, response
    assert directives(response) == POLICY
    assert inline_code(response.content.decode()) == []


@pytest.fixture
def world(db, templates, flow_in):
    """A flow with a draft on the canvas, a template, a customer."""
    from flows.models import Flow

    customer = Customer.objects.create(external_id="ann", email="ann@example.com", first_name="Ann")
    return {"flow": flow_in(Flow.Status.ACTIVE), "template": templates["confirm"], "customer": customer}


def admin_pages(world) -> list[str]:
    flow, template, customer = world["flow"], world["template"], world["customer"]
    pages = [reverse("admin:index"), reverse("admin:password_change")]
    for model in admin.site._registry:
        pages.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
    pages += [
        reverse("admin:flows_flow_change", args=[flow.pk]),
        reverse("admin:flows_flow_add"),
        reverse("admin:flows_flow_audience", args=[flow.pk]),
        reverse("admin:flows_flow_version", args=[flow.pk, 1]),
        reverse("admin:flows_monitoring"),
        reverse("admin:flows_customer_activity", args=[customer.pk]),
        reverse("admin:channels_template_change", args=[template.pk]),
        reverse("admin:channels_template_add"),
        reverse("admin:channels_template_preview", args=[template.pk]) + "?customer=ann",
        reverse("admin:channels_template_send_test", args=[template.pk]),
        reverse("admin:customers_customer_change", args=[customer.pk]),
    ]
    return pages


@pytest.mark.django_db
def test_every_admin_page_sends_the_policy_and_has_no_inline_code(admin_client, world):
    for page in admin_pages(world):
        assert_policed(admin_client.get(page))


@pytest.mark.django_db
def test_the_login_page_and_the_public_consent_pages_are_policed(client, world):
    customer = world["customer"]
    assert_policed(client.get(reverse("admin:login")))
    for action in ("confirm", "unsubscribe", "preferences"):
        assert_policed(client.get(link_url(customer_id=customer.pk, channel=Channel.EMAIL, action=action)))
    # An invalid link's page too.
    response = client.get(reverse("public-unsubscribe", args=["not-a-token"]))
    assert directives(response) == POLICY
    assert inline_code(response.content.decode()) == []


@pytest.mark.django_db
def test_the_api_docs_load_their_start_up_script_from_a_url(client):
    page = client.get("/api/docs/")
    assert_policed(page)
    html = page.content.decode()
    assert 'src="/api/docs/?script="' in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


@pytest.mark.django_db
def test_the_policy_refuses_inline_scripts(admin_client):
    policy = directives(admin_client.get(reverse("admin:index")))
    assert policy["script-src"] == "'self'"
    assert "unsafe" not in policy["script-src"] and "unsafe" not in policy["default-src"]
    assert policy["object-src"] == "'none'"


def test_the_checker_finds_inline_code():
    assert inline_code(
        '<script>alert(1)</script><img src=x onerror="alert(1)"><a href="javascript:alert(1)">x</a>'
        '<script src="/static/a.js"></script><script type="application/json">{"a": 1}</script>'
    ) == ["<script>alert(1)…", "<img onerror=…>", "<a href=javascript:…>"]


@pytest.mark.django_db
def test_a_template_change_page_with_customer_data_in_it_is_policed(admin_client):
    script, img = "<script>alert(1)</script>", "<img onerror=alert(1)>"
    template = Template.objects.create(slug="x", name=script, channel="email", subject="S", text=img)
    assert_policed(admin_client.get(reverse("admin:channels_template_change", args=[template.pk])))
